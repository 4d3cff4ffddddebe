"""BatchNorm recalibration: statistics of the whole set, as eval mode will see it."""

import torch
from torch import nn

from ednas.models.layers import recalibrate_batchnorms


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5))


def test_statistics_are_those_of_the_whole_set_not_averaged_batches() -> None:
    torch.manual_seed(1)
    images = torch.cat([torch.randn(4, 3, 8, 8) + 3 * k for k in range(4)])  # batch means differ
    net = _net()
    recalibrate_batchnorms(net, list(images.split(4)))
    with torch.no_grad():
        first = net[0](images)
    assert torch.allclose(net[1].running_mean, first.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(net[1].running_var, first.var(dim=(0, 2, 3)), rtol=1e-3)
    # the second BN's statistics are those of its input in eval mode with the first one's new statistics
    with torch.no_grad():
        second = net[3](net[2](net[1](first)))
    assert torch.allclose(net[4].running_mean, second.mean(dim=(0, 2, 3)), atol=1e-3)  # (unbiased vs biased var)
    assert torch.allclose(net[4].running_var, second.var(dim=(0, 2, 3)), rtol=1e-3)
    assert not net.training and net[1].momentum == 0.1  # eval mode and the momentum restored


def test_sets_larger_than_one_pass_average_the_passes() -> None:
    images = torch.randn(6, 3, 8, 8)
    one, split = _net(), _net()
    recalibrate_batchnorms(one, [images])
    recalibrate_batchnorms(split, [images], max_pixels=3 * 8 * 8)  # passes of 3 images
    assert torch.allclose(one[1].running_mean, split[1].running_mean, atol=1e-5)
    assert not torch.allclose(one[4].running_var, split[4].running_var, rtol=1e-6)


def test_the_callers_memory_format_is_kept() -> None:
    """The pass runs channels-last (faster on CPU); the model comes back in the layout it had."""
    images = [torch.randn(4, 3, 8, 8)]
    for layout in (torch.contiguous_format, torch.channels_last):
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).to(memory_format=layout)
        recalibrate_batchnorms(net, images)
        assert net[0].weight.is_contiguous(memory_format=layout) and not net.training
