"""Parameters and multiply-accumulates of the inference model.

MACs are counted with torch.utils.flop_counter (FLOPs / 2), which also sees the functional
1x1 conv of the kernel-refine gate (thop and torch-pruning's counter miss it).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ednas.models.detector import Detector


def complexity(model: Detector, input_size: int | None = None) -> dict:
    """{"params", "macs", "flops", "input_size", "parts": {part: {"params", "macs"}}}."""
    size = input_size or model.arch.input_size
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, size, size))
    model.train(was_training)
    by_module = counter.get_flop_counts()
    parts = {}
    for part in ("backbone", "fpn", "head"):
        key = next((k for k in by_module if k.split(".")[-1] == part), None)
        macs = sum(by_module[key].values()) / 2 if key else 0.0
        params = sum(p.numel() for p in getattr(model, part).parameters())
        parts[part] = {"params": params, "macs": macs}
    flops = counter.get_total_flops()
    return {"params": model.num_params(), "macs": flops / 2, "flops": flops, "input_size": size, "parts": parts}
