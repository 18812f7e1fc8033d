"""Saliency benchmark: how much of each method's map falls on the striatum.

Trains the default pipeline on phantoms of two geometries (whole head; a 90 mm slab
with shifted heads), explains held-out patients of every stage with each
:func:`spectclf.saliency` method, maps the phantoms' true striatum masks into the
classifier's input block (the same resize and striatum crop as the volumes) and
reports, per method: the share of saliency mass inside the striatum, inside the
striatum grown by 2 voxels (about one SPECT FWHM), what an even spread would get
(the mask's volume share), how often the map's peak voxel lies in the grown
striatum, and the share for stage-4 patients alone (little uptake left to point at). Results go to ``benchmarks/results/saliency.{json,md}``.

Run: ``python -m benchmarks.saliency [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation

from spectclf import make_default_pipeline, make_spect_phantoms, saliency
from spectclf.anatomy import locate_striatum, striatum_block
from spectclf.explain import METHODS, saliency_share

GEOMETRIES = {
    "whole_head": {},
    "slab_shifted": {
        "fov_centre": (-0.1, 0.0, 0.0),
        "fov_extent": (0.9, 0.45, 0.9),
        "offset_sd": 0.06,
    },
}


def masks_in_block(pipe, X, masks) -> np.ndarray:
    """True striatum masks carried through the pipeline's resize and striatum crop."""
    resize, norm, crop = (pipe.named_steps[k] for k in ("resize", "norm", "crop"))
    Xn = norm.transform(resize.transform(X))
    Mr = resize.transform(masks[:, None].astype(np.float32))
    shape = crop.transform(Xn[:1]).shape[2:]
    out = [
        striatum_block(
            m,
            shape,
            size=crop.size,
            location=locate_striatum(x.mean(axis=0), min_contrast=crop.min_contrast),
        )[0]
        > 0.5
        for m, x in zip(Mr, Xn, strict=True)
    ]
    return np.stack(out)


def run(args) -> dict:
    results = {}
    for name, geometry in GEOMETRIES.items():
        train = make_spect_phantoms(args.n_train, random_state=1, **geometry)
        test = make_spect_phantoms(
            args.n_test, random_state=2, return_masks=True, **geometry
        )
        t0 = time.perf_counter()
        pipe = make_default_pipeline(
            max_epochs=args.epochs, random_state=0, verbose=0
        ).fit(train.X, train.y, groups=train.groups)
        fit_s = time.perf_counter() - t0
        mask = masks_in_block(pipe, test.X, test.striatum_mask)
        grown = np.stack([binary_dilation(m, iterations=2) for m in mask])
        row = {
            "fit_s": round(fit_s, 1),
            "accuracy": float((pipe.predict(test.X) == test.y).mean()),
            "even_spread": float(mask.mean()),
            "even_spread_grown": float(grown.mean()),
        }
        for method in METHODS:
            t0 = time.perf_counter()
            sal, _ = saliency(pipe, test.X, method=method)
            peaks = [g.flat[np.argmax(s)] for s, g in zip(sal, grown, strict=True)]
            share = saliency_share(sal, mask)
            row[method] = {
                "share": float(share.mean()),
                "share_stage_4": float(share[test.y == 4].mean()),
                "share_grown": float(saliency_share(sal, grown).mean()),
                "peak_in_grown": float(np.mean(peaks)),
                "s_per_volume": round((time.perf_counter() - t0) / len(sal), 3),
            }
        results[name] = row
        print(f"## {name}: test accuracy {row['accuracy']:.2f}, fit {fit_s:.0f} s")
        print(markdown({name: row}))
    return results


def markdown(results: dict) -> str:
    lines = [
        "| geometry | method | share in striatum | share in striatum + 2 vox | "
        "peak in striatum + 2 vox | share in striatum, stage 4 | s / volume |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | (even spread) | {row['even_spread']:.3f} | "
            f"{row['even_spread_grown']:.3f} | | | |"
        )
        for method in METHODS:
            r = row[method]
            lines.append(
                f"| {name} | {method} | {r['share']:.3f} | {r['share_grown']:.3f} | "
                f"{r['peak_in_grown']:.2f} | {r['share_stage_4']:.3f} | "
                f"{r['s_per_volume']:.2f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--quick", action="store_true", help="tiny cohorts, 3 epochs")
    args = p.parse_args(argv)
    args.n_train, args.n_test = (20, 20, 20, 8), (4, 4, 4, 4)
    if args.quick:
        args.n_train, args.n_test, args.epochs = (4, 4, 4, 4), (1, 1, 1, 1), 3
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "-quick" if args.quick else ""
    (args.out / f"saliency{tag}.json").write_text(json.dumps(results, indent=2))
    (args.out / f"saliency{tag}.md").write_text(markdown(results) + "\n")


if __name__ == "__main__":
    main()
