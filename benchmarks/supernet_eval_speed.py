"""How long the search waits per sub-network: slice + BN recalibration + COCO mAP.

    python benchmarks/supernet_eval_speed.py --supernet SUPER.pt --images odd/ --ann odd.json --calib even/

Median over 10 random architectures of the supernet's space at 320 px, 64 calibration and 64
evaluation images, 2 threads (target: <= 10 s on a 2-core machine). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from ednas.data import build_dataset, split_from_paths
from ednas.latency.runner import machine_info
from ednas.supernet.evaluate import CalibImages, SupernetEvaluator, class_names, subset
from ednas.supernet.supernet import Supernet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--ann", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--archs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sn = Supernet.load(args.supernet)
    ds = subset(build_dataset(split_from_paths(args.images, args.ann), class_names(sn)), 64)
    ev = SupernetEvaluator(sn, ds, CalibImages(args.calib, 64), threads=args.threads)
    rng = random.Random(7)
    times = []
    for _ in range(args.archs):
        arch = sn.space.sample(rng).replace(input_size=args.size)
        t0 = time.perf_counter()
        ev(arch)
        times.append(time.perf_counter() - t0)
    m = machine_info(args.threads)
    print(f"CPU {m['cpu']} ({' '.join(m.get('cpu_flags', []))}), {args.threads} threads")
    print(f"evaluator at {args.size} px, 64 calibration + {len(ds)} evaluation images: median "
          f"{statistics.median(times):.1f} s over {len(times)} architectures (min {min(times):.1f}, "
          f"max {max(times):.1f}); target <= 10 s")


if __name__ == "__main__":
    main()
