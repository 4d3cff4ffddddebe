"""Interleaved timing: one function, one ratio direction (relative = candidate / reference)."""

from __future__ import annotations

from ednas.latency import runner


class Fake:
    """A 'model' whose runs take the given times in turn (ms), recording the call order."""

    def __init__(self, name: str, times: list[float], log: list[str]) -> None:
        self.name, self.times, self.log, self.i = name, times, log, 0

    def __call__(self) -> float:
        self.log.append(self.name)
        self.i += 1
        return self.times[(self.i - 1) % len(self.times)]


def test_rounds_rotate_and_ratios_point_candidate_over_reference():
    log: list[str] = []
    ref, fast, slow = Fake("r", [2.0], log), Fake("f", [1.0], log), Fake("s", [4.0], log)
    out = runner.time_models(ref, [fast, slow], warmup=0, min_rounds=3, min_seconds=0.0, max_rounds=3)
    assert out["rounds"] == 3 and log == ["r", "f", "s", "f", "s", "r", "s", "r", "f"]
    assert out["reference"]["median_ms"] == 2.0
    assert [c["relative"] for c in out["candidates"]] == [0.5, 2.0]


def test_time_pair_row_is_relative_to_the_probe():
    log: list[str] = []
    row = runner.time_pair(Fake("t", [3.0, 6.0], log), Fake("p", [3.0], log), warmup=0, min_pairs=4,
                           min_seconds=0.0, max_pairs=4)
    assert row["pairs"] == 4 and row["probe_ms"] == 3.0 and row["ratio_p10"] == 1.0 and row["ratio_p90"] == 2.0
    assert set(runner.COLUMNS) - {"key", "kind"} <= set(row)


def test_quantize_speedup_is_the_inverse_direction(monkeypatch):
    from ednas.compress.quantize import timing

    log: list[str] = []
    monkeypatch.setattr(runner, "Timed", lambda path, threads: Fake(str(path), [1.0 if path == "int8" else 3.0], log))
    t = timing.time_pair("fp32", "int8", threads=1, runs=5, warmup=0)
    assert t.speedup == 3.0 and t.reference_ms == 3.0 and t.candidate_ms == 1.0 and t.runs == 5
