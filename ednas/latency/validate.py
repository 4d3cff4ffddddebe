"""Self-check of a latency table: predicted vs measured end-to-end latency on random
architectures of its space, each timed interleaved with the probe model.

"raw" compares with the absolute median now; "compensated" puts the measurement on the
table's time scale (per-pair ratio to the probe x the table's probe latency), which removes
the machine getting slower or faster since the table was built. Computing the report and
plotting it are separate (`validate`, `plot_report`).
"""

from __future__ import annotations

import csv
import logging
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ednas.arch import ArchSpec
from ednas.latency import runner
from ednas.latency.export import export_arch
from ednas.latency.predictor import LatencyPredictor
from ednas.latency.profiler import arch_hash, export_probe
from ednas.latency.table import LatencyTable, LatencyTableError
from ednas.arch.space import SearchSpace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accuracy:
    mape: float  # mean absolute percentage error (%)
    within5: float  # share of architectures within +-5 % (%)
    within10: float  # share within +-10 % (%)

    @classmethod
    def of(cls, predicted: list[float], measured: list[float]) -> "Accuracy":
        errors = [abs(p - m) / m * 100 for p, m in zip(predicted, measured)]
        n = len(errors)
        return cls(statistics.fmean(errors), 100 * sum(e <= 5 for e in errors) / n,
                   100 * sum(e <= 10 for e in errors) / n)


@dataclass(frozen=True)
class Sample:
    name: str
    arch: ArchSpec
    predicted_ms: float
    measured_ms: float  # median now
    compensated_ms: float  # on the table's probe scale (median over the passes)
    probe_ms: float  # probe median during this model's pairs
    passes_ms: tuple[float, ...] = ()  # compensated latency of each measuring pass


@dataclass(frozen=True)
class Report:
    samples: list[Sample]
    raw: Accuracy
    compensated: Accuracy
    probe_now_ms: float
    repeat: Accuracy | None = None  # pass 2 against pass 1: the measurement's own noise floor


def describe(arch: ArchSpec) -> str:
    """A one-line gene summary for tables and plots."""
    bb = arch.backbone
    widths = ",".join(f"{w:g}" for w in bb.widths)  # type: ignore[union-attr]
    kr = "".join(str(int(k)) for k in bb.kr)  # type: ignore[union-attr]
    types = "".join(t[0] for t in arch.neck.block_types)
    return f"w={widths} kr={kr} neck={arch.neck.width}/{types} size={arch.input_size}"


def validate(table: LatencyTable, space: SearchSpace, n: int, out: Path, seed: int = 0,
             progress: bool = True, passes: int = 1) -> Report:
    """Sample `n` architectures, export them to `out`, measure, and write validation.csv.

    With `passes` > 1 every model is measured again after all the others were (minutes
    later, like the table's own units were), and the report says how far a second
    measurement of the *same file* lands from the first: no predictor can be checked more
    precisely than that on this machine."""
    from tqdm import tqdm

    m = table.meta
    predictor = LatencyPredictor(table)
    # a stream of its own, and never a model the calibration was fitted on: a held-out check
    rng = random.Random(f"validate-{seed}")
    fitted = {arch_hash(ArchSpec.from_dict(d)) for d in m.calib_archs.values()}
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        probe = runner.Timed(export_probe(Path(tmp) / "probe.onnx"), m.threads, m.spin)
    bar = tqdm(total=n * (1 + passes), desc="validating", unit="step", disable=not progress)
    archs, paths = [], []
    for i in range(n):  # export everything first, so that passes are minutes apart
        archs.append(_held_out_sample(space, rng, fitted))
        archs[i].save(out / f"arch_{i:03d}.yml")
        paths.append(export_arch(archs[i], out / f"arch_{i:03d}.onnx", m.precision))  # type: ignore[arg-type]
        bar.update()
    runs: list[list[dict[str, float]]] = [[] for _ in paths]
    for _ in range(passes):
        for i, path in enumerate(paths):
            runs[i].append(runner.time_pair(runner.Timed(path, m.threads, m.spin), probe, **runner.MODEL_TIMING))
            bar.update()
    bar.close()
    samples = []
    for i, (arch, stats) in enumerate(zip(archs, runs)):
        comp = tuple(s["ratio"] * m.probe_ms for s in stats)
        samples.append(Sample(f"arch_{i:03d}", arch, predictor.predict(arch),
                              statistics.median(s["median_ms"] for s in stats), statistics.median(comp),
                              statistics.median(s["probe_ms"] for s in stats), comp))
    _write_csv(samples, out / "validation.csv")
    repeat = None
    if passes > 1:
        repeat = Accuracy.of([s.passes_ms[0] for s in samples], [s.passes_ms[1] for s in samples])
    return Report(
        samples, repeat=repeat,
        raw=Accuracy.of([s.predicted_ms for s in samples], [s.measured_ms for s in samples]),
        compensated=Accuracy.of([s.predicted_ms for s in samples], [s.compensated_ms for s in samples]),
        probe_now_ms=statistics.median(s.probe_ms for s in samples),
    )


def _held_out_sample(space: SearchSpace, rng: random.Random, fitted: set[str]) -> ArchSpec:
    """A random architecture of `space` that is not one of the calibration models."""
    for _ in range(10_000):
        arch = space.sample(rng)
        if arch_hash(arch) not in fitted:
            return arch
    raise LatencyTableError(f"space {space.name!r}: every architecture sampled is a calibration model of the "
                            "table, so nothing is left to check it on")


def _write_csv(samples: list[Sample], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "arch", "predicted_ms", "measured_ms", "measured_compensated_ms", "probe_ms",
                    "passes_compensated_ms"])
        for s in samples:
            w.writerow([s.name, describe(s.arch), f"{s.predicted_ms:.4f}", f"{s.measured_ms:.4f}",
                        f"{s.compensated_ms:.4f}", f"{s.probe_ms:.4f}",
                        " ".join(f"{v:.4f}" for v in s.passes_ms)])


def plot_report(report: Report, path: Path) -> Path:
    """Scatter of predicted vs measured (compensated and raw) with the +-10 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = [s.predicted_ms for s in report.samples]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter([s.measured_ms for s in report.samples], pred, s=14, alpha=0.35, label="raw")
    ax.scatter([s.compensated_ms for s in report.samples], pred, s=18, label="probe-compensated")
    top = max(pred + [s.measured_ms for s in report.samples]) * 1.05
    ax.plot([0, top], [0, top], "k-", lw=0.8)
    ax.fill_between([0, top], [0, 0.9 * top], [0, 1.1 * top], color="k", alpha=0.08, label="±10 %")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="measured (ms)", ylabel="predicted (ms)",
           title=f"MAPE {report.compensated.mape:.1f} % (raw {report.raw.mape:.1f} %)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def measure_probe(table: LatencyTable, seconds: float = 1.0) -> float:
    """The probe model's median latency on this machine now (same threads and spinning)."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = runner.Timed(export_probe(Path(tmp) / "probe.onnx"), table.meta.threads, table.meta.spin)
    return runner.time_pair(probe, probe, min_seconds=seconds)["median_ms"]
