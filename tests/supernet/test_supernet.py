"""Supernet: slicing is exact, init keeps the trained model, wider sub-networks start as it,
bad inputs fail in one line."""

from __future__ import annotations

import random

import pytest
import torch

from ednas.cli import main
from ednas.models.checkpoint import save_checkpoint
from ednas.models.detector import build_model
from ednas.arch.space import SearchSpace
from ednas.supernet.init import channel_order, init_supernet, permute
from ednas.supernet.layout import entries
from ednas.supernet.supernet import Supernet, SupernetError, widest
from ednas.supernet.train import smallest


def _x(arch, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, arch.input_size, arch.input_size, generator=g)


def test_layout_covers_every_tensor_with_matching_sizes(tiny_space):
    rng = random.Random(0)
    big = widest(tiny_space)
    for arch in [tiny_space.base, smallest(tiny_space), big] + [tiny_space.sample(rng) for _ in range(8)]:
        state = build_model(arch).state_dict()
        es = entries(arch, big)
        assert {e.name for e in es} == set(state)
        for e in es:
            for d, dim in enumerate(e.dims):
                if dim is not None:
                    assert sum(n for _, n, _ in dim) == state[e.name].shape[d], e.name


def test_extracted_model_equals_supernet_forward(tiny_space):
    torch.manual_seed(0)
    sn = Supernet(tiny_space)
    for t in sn.parameters():  # not the default init: make every slice matter
        t.normal_(0, 0.3)
    rng = random.Random(1)
    for _ in range(20):
        arch = tiny_space.sample(rng)
        x = _x(arch)
        with torch.no_grad():
            assert torch.allclose(sn.extract(arch)(x), sn.forward(arch, x, train=False), atol=1e-5)


def test_channel_sorting_keeps_the_function(tiny_space):
    torch.manual_seed(0)
    model = build_model(tiny_space.base).eval()
    for m in model.modules():  # give BNs non-trivial statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = _x(tiny_space.base)
    with torch.no_grad():
        before = model(x)
        order = channel_order(model)
        assert any(not torch.equal(p, torch.arange(len(p))) for p in order.values())
        permute(model, order)
        assert torch.allclose(model(x), before, atol=1e-4)


@pytest.fixture()
def trained_base(tiny_space, tmp_path):
    torch.manual_seed(3)
    model = build_model(tiny_space.base)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "base.ckpt"
    save_checkpoint(path, model)
    return model.eval(), path


def test_init_from_a_trained_model(tiny_space, trained_base, synth, tmp_path):
    model, path = trained_base
    sn = init_supernet(tiny_space, tmp_path / "s.pt", path, synth / "images", calib_images=8, fit_steps=5)
    x = _x(tiny_space.base)
    with torch.no_grad():
        ref = model(x)
        # the base sub-network IS the trained model (its channels sorted)
        assert torch.allclose(sn.extract(tiny_space.base)(x), ref, atol=1e-4)
        # wider sub-networks start as the trained function (new inputs zero, KR kernels tiny)
        wide = tiny_space.uniform(0.5)
        assert (sn.extract(wide)(x) - ref).abs().max() < 1e-2
    loaded = Supernet.load(tmp_path / "s.pt", tiny_space)
    assert torch.equal(loaded.tensors["head.gfl_cls.0.weight"], sn.tensors["head.gfl_cls.0.weight"])
    assert set(sn.meta["fit_error"]) == {f"fpn.top_down_blocks.{i}" for i in range(2)} | {
        f"fpn.bottom_up_blocks.{i}" for i in range(2)}


def test_architecture_outside_the_space_is_refused(tiny_space):
    sn = Supernet(tiny_space)
    with pytest.raises(SupernetError, match="outside the supernet's space"):
        sn.extract(tiny_space.uniform(1.0))


def test_supernet_of_another_space_is_refused(tiny_space, tmp_path):
    Supernet(tiny_space).save(tmp_path / "s.pt")
    other = SearchSpace(tiny_space.config, tiny_space.base.replace(input_size=64), "other")
    with pytest.raises(SupernetError, match="built for space"):
        Supernet.load(tmp_path / "s.pt", other)


def test_truncated_supernet_file_is_one_line(tiny_space, tmp_path, capsys):
    path = tmp_path / "s.pt"
    Supernet(tiny_space).save(path)
    path.write_bytes(path.read_bytes()[:1000])
    assert main(["supernet", "eval", str(path), "base", "--images", str(tmp_path), "--ann", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "supernet" in err[0]


def test_cli_extract_then_test(tiny_space_file, synth, tmp_path, capsys):
    sup, ckpt = tmp_path / "s.pt", tmp_path / "sub.ckpt"
    assert main(["supernet", "init", "--space", str(tiny_space_file), "--classes", "shapes", "--out", str(sup)]) == 0
    assert main(["supernet", "extract", str(sup), "smallest", "--images", str(synth / "images"), "--out", str(ckpt)]) == 0
    assert ckpt.is_file() and ckpt.with_suffix(".arch.yml").is_file()
    assert main(["supernet", "eval", str(sup), str(ckpt.with_suffix(".arch.yml")), "--images", str(synth / "images"),
                 "--ann", str(synth / "annotations" / "val.json")]) == 0
    assert "mAP" in capsys.readouterr().out


def test_teacher_with_other_classes_is_refused(tiny_space, tiny_space_file, tiny_recipe, tmp_path, capsys):
    sup, teacher = tmp_path / "s.pt", tmp_path / "t.ckpt"
    assert main(["supernet", "init", "--space", str(tiny_space_file), "--classes", "shapes", "--out", str(sup)]) == 0
    save_checkpoint(teacher, build_model(tiny_space.base.replace(num_classes=3)))
    capsys.readouterr()
    assert main(["supernet", "train", str(sup), "--recipe", str(tiny_recipe), "--teacher", str(teacher),
                 "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classes" in err[0]


def test_subnets_are_recalibrated_at_the_base_input_size(tiny_space, synth):
    """A sub-network at a smaller input size gets the BN statistics of base-size images (its
    weights were trained on those), not of its own size."""
    from ednas.supernet.evaluate import CalibImages, recalibrate, recalibrated_subnet

    sup = Supernet(tiny_space)
    small = smallest(tiny_space)
    assert small.input_size < tiny_space.base.input_size
    calib = CalibImages(synth / "images", 4)
    got = recalibrated_subnet(sup, small, calib)
    at_base = recalibrate(sup.extract(small), calib.batches(tiny_space.base.input_size))
    at_own = recalibrate(sup.extract(small), calib.batches(small.input_size))
    means = [[m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
             for model in (got, at_base, at_own)]
    assert all(torch.equal(a, b) for a, b in zip(means[0], means[1]))
    assert not all(torch.allclose(a, c) for a, c in zip(means[0], means[2]))
