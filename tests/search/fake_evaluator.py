"""An accuracy evaluator for search tests that need no supernet: a deterministic score from the
architecture (wider, larger and KR-on score higher), optionally slow, logging every call.

`from_file(path, ...)` reads `path` as a search-space YAML. Environment:
    EDNAS_FAKE_EVAL_LOG   append "pid hash" per evaluation (checks "never evaluated twice")
    EDNAS_FAKE_EVAL_S     seconds each evaluation takes (room to kill a worker mid-trial)
    EDNAS_FAKE_EVAL_PEERS an evaluation returns only once this many processes have evaluated
                          (so a test of N workers does not depend on how fast they start)
"""

from __future__ import annotations

import os
import time

from ednas.arch import ArchSpec
from ednas.arch.space import SearchSpace


class FakeEvaluator:
    def __init__(self, space: SearchSpace, metric: str = "mAP") -> None:
        self.space = space
        self.metric = metric
        self.eval_images = 7

    def __call__(self, arch: ArchSpec) -> float:
        log = os.environ.get("EDNAS_FAKE_EVAL_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {arch.hash()}\n")
        time.sleep(float(os.environ.get("EDNAS_FAKE_EVAL_S", "0")))
        peers = int(os.environ.get("EDNAS_FAKE_EVAL_PEERS", "0"))
        deadline = time.time() + 120
        while log and peers and time.time() < deadline:  # hold on until every worker has joined
            with open(log) as f:
                if len({line.split()[0] for line in f if line.strip()}) >= peers:
                    break
            time.sleep(0.1)
        b = arch.backbone
        width = sum(b.widths) / len(b.widths)
        kr = sum(b.kr) / max(1, len(b.kr))
        plus = sum(t == "plus" for t in arch.neck.block_types) / len(arch.neck.block_types)
        jitter = int(arch.hash()[:4], 16) / 65535 * 0.01
        return 0.2 * width + 0.002 * arch.input_size / 32 + 0.01 * kr + 0.01 * plus + 0.0005 * arch.neck.width / 8 + jitter


def from_file(path: str, images=None, ann=None, calib_images: int = 64, eval_images=None, metric: str = "mAP",
              threads: int = 1) -> FakeEvaluator:
    return FakeEvaluator(SearchSpace.load(path), metric)
