"""PIPELINE.yml parsing: both shipped pipelines load, unknown keys and bad values are one-line
errors, --set overrides, paths are taken from the file's folder (or the cwd for --set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ednas.errors import ConfigError, EdnasError
from ednas.pipeline.config import load_pipeline

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_pipelines_load():
    synth = load_pipeline(ROOT / "recipes" / "pipeline_synthetic.yml")
    assert synth.data.kind == "synthetic" and Path(synth.space).is_file() and Path(synth.recipe).is_file()
    coco = load_pipeline(ROOT / "recipes" / "pipeline_coco_s.yml",
                         ["data.images=/data/coco/images", "data.ann=/data/coco/ann.json"])
    assert coco.data.kind == "coco" and coco.data.images == "/data/coco/images"
    assert coco.supernet.source and coco.supernet.source.endswith("enhanced_nanodet_s.onnx")


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, needle", [
    ("space: s.yml\nrecipe: r.yml\nsearh: {trials: 3}\n", "unknown key 'searh'"),
    ("space: s.yml\nrecipe: r.yml\nsearch: {trails: 3}\n", "unknown key 'trails'"),
    ("space: s.yml\nrecipe: r.yml\nsearch: {sampler: grid}\n", "sampler"),
    ("space: s.yml\nrecipe: r.yml\nprune: {ratio: 1.5}\n", "ratio"),
    ("recipe: r.yml\n", "missing required key 'space'"),
    ("space: s.yml\nrecipe: r.yml\ndata: {kind: coco, images: /x}\n", "data.ann"),
    ("- a\n- b\n", "mapping"),
    ("space: s.yml\nrecipe: r.yml\nquantize: {finetune: sometimes}\n", "finetune"),
    ("space: s.yml\nrecipe: r.yml\nquantize: {finetune_steps: 0}\n", "finetune_steps"),
])
def test_bad_files_name_the_problem(tmp_path, text, needle):
    with pytest.raises(EdnasError) as err:
        load_pipeline(_write(tmp_path, text))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unknown_key_lists_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="valid keys are: .*trials"):
        load_pipeline(_write(tmp_path, "space: s.yml\nrecipe: r.yml\nsearch: {trails: 3}\n"))


def test_paths_from_file_folder_and_set_from_cwd(tmp_path, monkeypatch):
    p = _write(tmp_path, "space: spaces/s.yml\nrecipe: synthetic_shapes\nsupernet: {source: m.onnx}\n")
    monkeypatch.chdir(ROOT)
    c = load_pipeline(p, ["search.trials=7", "search.budget=6ms", "profile.table=t.csv", "extract.baselines=false"])
    assert c.space == str(tmp_path / "spaces" / "s.yml")
    assert c.recipe == "synthetic_shapes"  # a bundled recipe name stays a name
    assert c.supernet.source == str(tmp_path / "m.onnx")
    assert c.profile.table == str(ROOT / "t.csv")
    assert (c.search.trials, c.search.budget, c.extract.baselines) == (7, "6ms", False)


@pytest.mark.parametrize("override", ["search.trials", "=3", "search.trials.x=3"])
def test_bad_overrides(tmp_path, override):
    with pytest.raises(ConfigError):
        load_pipeline(_write(tmp_path, "space: s.yml\nrecipe: r.yml\nsearch: {trials: 3}\n"), [override])


def test_quantize_section_becomes_the_quantize_job_settings(tmp_path):
    plain = load_pipeline(_write(tmp_path, "space: s.yml\nrecipe: r.yml\n")).quantize.job_config(2)
    assert (plain.finetune, plain.threads, plain.calib_method) == ("off", 2, "percentile")
    tuned = load_pipeline(_write(tmp_path, "space: s.yml\nrecipe: r.yml\nquantize: {num_calib: 16}\n"),
                          ["quantize.finetune=true", "quantize.finetune_steps=50"]).quantize.job_config(None)
    assert (tuned.finetune, tuned.finetune_steps, tuned.num_calib) == ("always", 50, 16)
