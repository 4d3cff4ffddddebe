"""Loading weights from a training state: its EMA is stored with its update count."""

import dataclasses

import torch

from ednas.arch import AuxArch, NeckArch
from ednas.arch.zoo import get_arch
from ednas.models import build_model, load_checkpoint, save_checkpoint


def test_ema_weights_of_a_training_state_load(tmp_path):
    base = get_arch("enhanced_nanodet_s")
    arch = dataclasses.replace(base, neck=NeckArch(width=32), head=dataclasses.replace(base.head, feat_channels=32),
                               aux=AuxArch(feat_channels=32, num_groups=8), input_size=64)
    torch.manual_seed(0)
    trained, ema = build_model(arch), build_model(arch)
    save_checkpoint(tmp_path / "last.ckpt", trained, ema={"model": ema.state_dict(), "updates": 7})  # as the trainer
    fresh = build_model(arch)
    load_checkpoint(fresh, tmp_path / "last.ckpt", key="ema")
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), ema.state_dict().values()))
    load_checkpoint(fresh, tmp_path / "last.ckpt")  # the plain weights too
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), trained.state_dict().values()))
