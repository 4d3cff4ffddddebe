"""`ednas run` at the command line: one-line errors before any work, and pick_front."""

from __future__ import annotations

from pathlib import Path

import pytest

from ednas.cli import main
from ednas.pipeline.stages import STAGE_NAMES, pick_front

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv, needle", [
    (["--from", "serch"], "--from 'serch': not a stage; stages are data, profile"),
    (["--set", "search.trails=3"], "unknown key 'trails'"),
    (["--set", "search.trials"], "write KEY=VALUE"),
])
def test_bad_arguments_fail_in_one_line(tmp_path, capsys, argv, needle):
    code = main(["run", str(ROOT / "recipes" / "pipeline_synthetic.yml"), "--out", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and "\n" not in err
    assert not (tmp_path / "r" / "stages").exists()


def test_coco_pipeline_names_the_missing_input(tmp_path, capsys):
    code = main(["run", str(ROOT / "recipes" / "pipeline_coco_s.yml"), "--out", str(tmp_path / "r"),
                 "--set", f"supernet.source={tmp_path / 'missing.onnx'}"])
    err = capsys.readouterr().err
    assert code == 2 and "supernet.source: no such file" in err and "--set supernet.source=PATH" in err


def test_stage_order():
    assert STAGE_NAMES[0] == "data" and STAGE_NAMES[-1] == "report"
    assert STAGE_NAMES.index("search") < STAGE_NAMES.index("quantize") < STAGE_NAMES.index("evaluate")


def _row(name: str, ms: float, acc: float, kind: str = "pareto") -> dict[str, str]:
    return {"name": name, "kind": kind, "predicted_ms": str(ms), "map": str(acc)}


def test_pick_front_spreads_over_latency():
    rows = [_row(f"t{i}", ms=i + 1.0, acc=0.1 * i) for i in range(9)] + [_row("base", 5.0, 0.3, "baseline")]
    picked = [r["name"] for r in pick_front(rows, 3)]
    assert picked == ["t0", "t4", "t8"]  # fastest, middle, most accurate
    assert [r["name"] for r in pick_front(rows, 20)] == [f"t{i}" for i in range(9)]
    assert [r["name"] for r in pick_front(rows, 1)] == ["t8"]


def test_an_int8_model_no_faster_than_its_parent_is_withheld(tmp_path):
    """The pipeline's rule: quantize's own interleaved timing decides; at or below 1.0x the
    INT8 variant is listed as withheld (FP32 stays the point's model); a summary without a
    valid speed-up is refused in one line, never read as a number."""
    from ednas.errors import InputError
    from ednas.pipeline.stages import _int8_speedup, _withheld

    assert _withheld({"int8_speedup": 1.31}) == ""
    assert _withheld({"int8_speedup": 0.97}).startswith("not shipped: 0.97x the speed of its FP32 parent")
    assert _withheld({"int8_speedup": 1.0}) != ""
    model = tmp_path / "m.int8.onnx"
    for text in ('{"speedup": 1.4}', '{"speedup": -1}', '{"speedup": "fast"}', "{", '{"speedup": true}'):
        model.with_suffix(".json").write_text(text)
        if text == '{"speedup": 1.4}':
            assert _int8_speedup(model) == 1.4
        else:
            with pytest.raises(InputError, match="no valid INT8 speed-up .*--from quantize"):
                _int8_speedup(model)
    with pytest.raises(InputError, match="predates INT8 speed checks"):
        _withheld({})
