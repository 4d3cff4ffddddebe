import dataclasses

import pytest

from ednas.arch import ArchSpec, MobileNeXtArch
from ednas.errors import ConfigError
from ednas.models import build_model
from ednas.arch.zoo import arch_names, get_arch


@pytest.mark.parametrize("name", arch_names())
def test_yaml_round_trip(name, tmp_path):
    arch = get_arch(name)
    arch.save(tmp_path / "a.yml")
    assert ArchSpec.load(tmp_path / "a.yml") == arch


def test_searchable_fields_build():
    base = get_arch("enhanced_nanodet_s")
    bb = dataclasses.replace(base.backbone, widths=(1.0, 0.5, 0.75, 1.25, 0.5), kr=(True, False) * 4)
    arch = base.replace(
        backbone=bb, input_size=256,
        neck=dataclasses.replace(base.neck, width=64, block_types=("plus", "normal", "plus", "normal")),
    )
    model = build_model(ArchSpec.from_dict(arch.to_dict()))
    kr_blocks = [b for b in bb.blocks() if b.kr]
    assert len(kr_blocks) == 4
    assert model.num_params() < 813_632


def test_unknown_key_lists_valid_keys():
    data = get_arch("enhanced_nanodet_s").to_dict()
    data["neck"]["widht"] = 96
    with pytest.raises(ConfigError, match=r"unknown key 'widht'; valid keys are: width, block_types"):
        ArchSpec.from_dict(data)


def test_wrong_kr_length_is_a_config_error():
    data = get_arch("enhanced_nanodet_s").to_dict()
    data["backbone"]["kr"] = [True, False]
    with pytest.raises(ConfigError, match="8 KR-eligible blocks"):
        ArchSpec.from_dict(data)


def test_unknown_backbone_type():
    data = get_arch("enhanced_nanodet_s").to_dict()
    data["backbone"]["type"] = "resnet"
    with pytest.raises(ConfigError, match="'mobilenext', 'shufflenetv2'"):
        ArchSpec.from_dict(data)


def test_kr_placement_defaults_to_all_eligible_blocks():
    assert MobileNeXtArch().kr == (True,) * 8
