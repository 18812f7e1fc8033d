"""Command-line interface: ``spectclf demo``."""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _demo(args) -> int:
    from spectclf import load_demo

    data = load_demo(args.data_home, verbose=1)
    counts = {int(s): int(n) for s, n in zip(*np.unique(data.y, return_counts=True))}
    print(
        f"demo cohort: {len(data.y)} patients, per stage {counts}, "
        f"volume shape {data.X.shape[1:]}"
    )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="spectclf")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the main job on the demo cohort")
    p.add_argument("--out", default="spectclf-demo")
    p.add_argument("--data-home", default=None)
    p.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
