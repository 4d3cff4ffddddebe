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
    ("space: s.yml\nrecipe: r.yml\ndata: {kind: coco, images: /x, ann: /a.json, holdout_images: /h}\n",
     "holdout_ann"),
    ("space: s.yml\nrecipe: r.yml\ndata: {holdout_images: /h, holdout_ann: /h.json}\n", "kind coco"),
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
    assert (plain.finetune, plain.adaround, plain.threads, plain.calib_method) == ("off", "off", 2, "percentile")
    tuned = load_pipeline(_write(tmp_path, "space: s.yml\nrecipe: r.yml\nquantize: {num_calib: 16}\n"),
                          ["quantize.finetune=true", "quantize.finetune_steps=50"]).quantize.job_config(None)
    assert (tuned.finetune, tuned.finetune_steps, tuned.num_calib) == ("always", 50, 16)


def test_a_holdout_set_evaluates_and_the_whole_folder_trains_and_selects(tmp_path):
    """data.holdout_images/ann: the evaluate stage reads only them; sharing an image with
    data.images is refused in one line before any work."""
    import json

    from ednas.pipeline.runner import Context
    from ednas.pipeline.stages import stage_data

    def coco(name: str, files: list[str]) -> Path:
        (tmp_path / name).mkdir()
        ann = tmp_path / f"{name}.json"
        ann.write_text(json.dumps({"images": [{"id": i, "file_name": f, "width": 8, "height": 8}
                                              for i, f in enumerate(files)], "annotations": [], "categories": []}))
        return ann

    train, held, clash = coco("train", ["a.jpg", "b.jpg"]), coco("held", ["c.jpg"]), coco("clash", ["b.jpg"])
    text = f"space: s.yml\nrecipe: r.yml\ndata: {{kind: coco, images: {tmp_path / 'train'}, ann: {train}}}\n"
    config = load_pipeline(_write(tmp_path, text), [f"data.holdout_images={tmp_path / 'held'}",
                                                    f"data.holdout_ann={held}"])
    result, _ = stage_data(Context(config, tmp_path / "run"))
    assert result["counts"] == {"train": 2, "select": 2, "heldout": 1}
    assert Path(result["heldout"][1]) == held and Path(result["select"][1]) == train
    config = load_pipeline(_write(tmp_path, text), [f"data.holdout_images={tmp_path / 'clash'}",
                                                    f"data.holdout_ann={clash}"])
    with pytest.raises(EdnasError, match="shares 1 images with data.images .*b.jpg"):
        stage_data(Context(config, tmp_path / "run2"))
