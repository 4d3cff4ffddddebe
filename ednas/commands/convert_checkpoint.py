"""`ednas convert-checkpoint`: rewrite a trusted torch file (e.g. from an older ednas) as plain
data, so it loads with `torch.load(weights_only=True)` like every file ednas reads."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-checkpoint", help="rewrite a trusted old checkpoint as plain data (tensors, numbers, strings)",
        description="ednas reads checkpoints, training states and supernets as data only and refuses a file "
                    "that holds pickled objects (they could run code). A file written by an older ednas "
                    "(numpy random state in last.ckpt) is converted without running any pickled code; a "
                    "file that needs any other type is refused unless --trust is given, which reads it "
                    "with full pickle and so RUNS THE CODE IT HOLDS: only for files whose source you trust.",
    )
    p.add_argument("src", metavar="OLD", help="the torch file to convert (kept unchanged)")
    p.add_argument("--out", required=True, metavar="NEW", help="where to write the plain-data copy")
    p.add_argument("--trust", action="store_true",
                   help="read a file holding other than numpy data with full pickle (runs its code)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.models.checkpoint import convert

    done = convert(args.src, args.out, trust=args.trust)
    how = ("read with full pickle (its code ran, as you trusted it)" if done.ran_pickle
           else "read without running code")
    print(f"wrote {done.out}: plain data, loads with weights_only ({args.src} {how})")
    return 0
