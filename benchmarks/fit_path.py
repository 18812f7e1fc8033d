"""Where the time of ``Spect3DClassifier.fit`` goes, against the network alone.

In one process and on the same data (64 volumes, 3 epochs): the seed's approach (a
plain PyTorch loop over its CNN, batch 16, the reference), a plain loop over the
default network (forward, backward, AdamW step, batch 8 — the ceiling), then
``Spect3DClassifier.fit`` with and without augmentation, and a cProfile breakdown of
the default fit by function. Ratios, not absolute numbers, are what carry over between
machines.

Run: ``python -m benchmarks.fit_path [--shape D H W] [--profile]``; the measurements
are in ``benchmarks.fit_timing``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats

import numpy as np
import torch

from benchmarks.fit_timing import (
    classifier_fit,
    inference_ms_per_patient,
    measure_fit_path,
)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=(32, 64, 64))
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.random((args.n, 1, *args.shape), dtype=np.float32)
    y = np.tile(np.arange(4), args.n // 4).astype(np.int64)
    rows = measure_fit_path(X, y, args.epochs, args.batch)
    seed, net = list(rows.values())[:2]
    print(
        f"input 1x{'x'.join(map(str, args.shape))}, {args.n} volumes, "
        f"{args.epochs} epochs, batch {args.batch}, {torch.get_num_threads()} threads"
    )
    print("| path | volumes/s | x the seed | share of the network alone |")
    print("|---|---|---|---|")
    for name, v in rows.items():
        print(f"| {name} | {v:.1f} | {v / seed:.2f} | {v / net:.0%} |")
    per = inference_ms_per_patient(args.n)
    print(f"\ndefault pipeline predict_proba: {per:.1f} ms per patient volume")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        classifier_fit(X, y, args.epochs, args.batch)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
        print(out.getvalue())


if __name__ == "__main__":
    main()
