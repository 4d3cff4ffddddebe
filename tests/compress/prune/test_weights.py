import pytest
import torch

from ednas.arch import ArchSpec, make_divisible
from ednas.compress.prune.job import parse_target
from ednas.compress.prune.latency_target import find_ratio
from ednas.compress.prune.weights import PruningError, prune_weights, shrink_arch
from ednas.errors import InputError
from ednas.models import build_model
from ednas.models.complexity import complexity
from ednas.models.export import export_onnx
from ednas.arch.zoo import get_arch


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return build_model(get_arch("enhanced_nanodet_s").replace(input_size=96)).eval()


def test_shrink_keeps_multiples_of_eight():
    arch = shrink_arch(get_arch("enhanced_nanodet_s"), 0.3)
    for (_, c, _, _), w in zip(arch.backbone.rows, arch.backbone.widths):
        assert make_divisible(c * w, 8) % 8 == 0 and make_divisible(c * w, 8) <= c
    assert arch.neck.width == 64 and arch.head.feat_channels == 64
    assert ArchSpec.from_dict(arch.to_dict()) == arch


def test_zero_ratio_is_identity(small):
    pruned = prune_weights(small, shrink_arch(small.arch, 0.0))
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(pruned.inference(x), small.inference(x))


def test_pruned_model_rebuilds_runs_and_exports(small, tmp_path):
    target = shrink_arch(small.arch, 0.5)
    pruned = prune_weights(small, target)
    assert pruned.arch == target
    assert complexity(pruned)["macs"] < 0.5 * complexity(small)["macs"]
    with torch.no_grad():
        out = pruned.inference(torch.randn(2, 3, 96, 96))
    assert out.shape == (2, 144 + 36 + 9 + 4, 112) and torch.isfinite(out).all()
    target.save(tmp_path / "arch.yml")
    rebuilt = build_model(ArchSpec.load(tmp_path / "arch.yml"))
    rebuilt.load_state_dict(pruned.state_dict())
    export_onnx(pruned, tmp_path / "pruned.onnx")
    assert (tmp_path / "pruned.onnx").stat().st_size > 0


def test_most_important_channels_survive(small):
    model = build_model(small.arch).eval()
    model.load_state_dict(small.state_dict())
    conv = model.fpn.reduce_layers[0].conv  # 96 output channels
    strong = [3, 17, 40, 41, 90]
    with torch.no_grad():
        conv.weight[strong] *= 1000.0
    pruned = prune_weights(model, shrink_arch(model.arch, 0.5))
    kept = pruned.fpn.reduce_layers[0].conv.weight  # (48, C_in', 1, 1): inputs were pruned too
    assert (kept.abs().amax(dim=(1, 2, 3)) > 0.5).sum() == len(strong)  # all scaled rows survived


def test_kernel_refine_gate_follows_pruned_kernel(small):
    pruned = prune_weights(small, shrink_arch(small.arch, 0.5))
    kr = pruned.backbone.features[4].layers[0].conv
    x = torch.randn(1, kr.conv.in_channels, 12, 12)
    with torch.no_grad():
        assert kr(x).shape == x.shape


def test_shufflenet_is_refused():
    model = build_model(get_arch("nanodet_plus_m").replace(input_size=96))
    with pytest.raises(PruningError, match="MobileNeXt"):
        prune_weights(model, model.arch)


def test_find_ratio_meets_target_and_reports_unreachable():
    base = get_arch("enhanced_nanodet_s")

    def cost(arch):  # a quick MAC-like proxy: quadratic in every width
        rows = sum((make_divisible(c * w, 8)) ** 2 for (_, c, _, _), w in zip(arch.backbone.rows, arch.backbone.widths))
        return rows + arch.neck.width ** 2

    base_cost = cost(base)
    latency = lambda arch: 0.15 + 0.85 * cost(arch) / base_cost  # noqa: E731 - affine in cost, like real models
    ratio, arch, rel = find_ratio(lambda r: shrink_arch(base, r), latency, 0.75, cost=cost)
    assert 0.735 <= rel <= 0.765 and 0 < ratio < 0.5
    ratio, _, rel = find_ratio(lambda r: shrink_arch(base, r), latency, 0.001, cost=cost)
    assert rel > 0.001 and ratio == 0.9


@pytest.mark.parametrize("text,expected", [("8ms", ("ms", 8.0)), ("7500us", ("ms", 7.5)),
                                           ("75%", ("relative", 0.75)), ("0.6x", ("relative", 0.6))])
def test_parse_target(text, expected):
    target = parse_target(text)
    assert (target.kind, target.value, target.text) == (*expected, text)


def test_parse_target_rejects_garbage():
    with pytest.raises(InputError, match="write e.g. 8ms or 75%"):
        parse_target("fast")


@pytest.mark.parametrize("text", ["8", "0.75", " 8 "])
def test_parse_target_needs_a_unit(text):
    """A bare number could be ms or a fraction: refused like search's budget (issue 30)."""
    with pytest.raises(InputError, match=f"has no unit; write {text.strip()}ms .* or {text.strip()}%"):
        parse_target(text)


def test_recalibration_tracks_the_data():
    from torch import nn

    from ednas.compress.prune.weights import recalibrate_batchnorms

    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
    batches = [torch.randn(8, 3, 5, 5) * 2 + 1 for _ in range(3)]
    recalibrate_batchnorms(net, batches)
    with torch.no_grad():
        feats = torch.cat([net[0](b) for b in batches])
    torch.testing.assert_close(net[1].running_mean, feats.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    assert not net.training and net[1].momentum == 0.1


def test_pruning_with_calibration_runs(small):
    calib = [torch.randn(4, 3, 96, 96)]
    pruned = prune_weights(small, shrink_arch(small.arch, 0.25), calib)
    with torch.no_grad():
        assert torch.isfinite(pruned.inference(torch.randn(1, 3, 96, 96))).all()
