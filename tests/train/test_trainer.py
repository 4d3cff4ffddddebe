"""The training loop on a tiny model and a synthetic set: a step, EMA, schedule, resume."""

import dataclasses
import math

import pytest
import torch

from conftest import RectangleDataset, tiny_recipe
from ednas.data.transforms import collate
from ednas.errors import InputError
from ednas.models import build_model, save_checkpoint
from ednas.models.checkpoint import read_checkpoint
from ednas.train.ema import ModelEMA
from ednas.train.schedule import WarmupCosine
from ednas.train.trainer import Trainer, init_from_checkpoint


@pytest.mark.parametrize("channels_last", [False, True])
def test_one_step_updates_weights_and_ema(tmp_path, rect_data, channels_last):
    recipe = tiny_recipe()
    recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, channels_last=channels_last))
    trainer = Trainer(recipe, tmp_path, rect_data, progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    parts = trainer.train_step(collate([rect_data[i] for i in range(4)]), detach_aux=False)
    assert {"loss", "qfl", "giou", "dfl", "aux_qfl", "aux_giou", "aux_dfl"} <= set(parts)
    assert all(math.isfinite(v) for v in parts.values())
    after = trainer.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("backbone.") for k in changed) and any(k.startswith("aux_head.") for k in changed)
    assert trainer.step == 1 and trainer.ema.updates == 1
    # detached aux branch: no gradient from the aux losses reaches the backbone through it
    trainer.train_step(collate([rect_data[i] for i in range(4)]), detach_aux=True)
    assert trainer.step == 2


def test_schedule_warmup_then_cosine():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = WarmupCosine(opt, base_lr=1e-3, min_lr=5e-5, total_steps=1000, warmup_steps=500, warmup_ratio=1e-4)
    assert s.lr_at(0) == pytest.approx(1e-7)
    assert s.lr_at(500) == pytest.approx(5e-5 + (1e-3 - 5e-5) * 0.5 * (1 + math.cos(math.pi / 2)))
    assert s.lr_at(1000) == pytest.approx(5e-5)
    assert s.lr_at(250) < s.lr_at(400)
    assert s.apply() == opt.param_groups[0]["lr"]


def test_ema_follows_quickly_at_first_then_slowly():
    model = torch.nn.Linear(2, 2)
    ema = ModelEMA(model, decay=0.9998, warmup=2000)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # decay 0.9998 * (1 - e^(-1/2000)) ~ 5e-4: almost a copy
    assert torch.allclose(ema.model.weight, model.weight, atol=1e-3)
    ema.updates = 10**6
    w = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.model.weight, w + 2e-4, atol=1e-6)


def test_checkpoint_contents_and_exact_resume(tmp_path):
    recipe = tiny_recipe(epochs=2, batch_size=2)
    data = RectangleDataset(4)

    straight = Trainer(recipe, tmp_path / "a", data, progress=False)
    straight.fit()

    first = Trainer(recipe, tmp_path / "b", data, progress=False)
    first.fit(stop_after=1)
    ckpt = read_checkpoint(tmp_path / "b" / "last.ckpt")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2
    assert {"model", "ema", "optimizer", "scheduler", "rng", "arch", "recipe"} <= set(ckpt)

    resumed = Trainer(recipe, tmp_path / "b", data, progress=False, resume=True)
    assert (resumed.epoch, resumed.step, resumed.scheduler.step_count) == (1, 2, 2)
    assert resumed.ema.updates == ckpt["ema"]["updates"]
    state = resumed.optimizer.state_dict()["state"]
    saved = ckpt["optimizer"]["state"]
    assert all(torch.equal(state[k]["exp_avg"], saved[k]["exp_avg"]) for k in saved)
    resumed.fit()
    assert resumed.epoch == 2 and resumed.step == 4
    for a, b in ((straight.model, resumed.model), (straight.ema.model, resumed.ema.model)):
        b_state = b.state_dict()
        for k, v in a.state_dict().items():
            assert torch.allclose(v, b_state[k], atol=1e-5), k


def test_resume_without_checkpoint_is_a_user_error(tmp_path, rect_data):
    with pytest.raises(InputError, match="nothing to resume"):
        Trainer(tiny_recipe(), tmp_path, rect_data, progress=False, resume=True)


def test_weights_without_aux_and_with_other_classes(tmp_path):
    recipe = tiny_recipe()
    deploy = build_model(recipe.model)  # no aux branch, as imported from ONNX
    save_checkpoint(tmp_path / "deploy.ckpt", deploy)

    model = build_model(recipe.model, aux=True)
    init_from_checkpoint(model, tmp_path / "deploy.ckpt")
    loaded = model.state_dict()
    for name, value in deploy.state_dict().items():
        assert torch.equal(loaded[name], value), name
        if name.startswith("fpn."):  # the aux neck starts as a copy of the loaded neck
            assert torch.equal(loaded["aux_" + name], value), name

    three = build_model(recipe.model.replace(num_classes=3), aux=True)
    init_from_checkpoint(three, tmp_path / "deploy.ckpt")  # class convs stay re-initialised
    loaded = three.state_dict()
    for name, value in deploy.state_dict().items():
        if ".gfl_cls." not in name:
            assert torch.equal(loaded[name], value), name
    assert three.head.gfl_cls[0].weight.shape[0] == 3 + 32
