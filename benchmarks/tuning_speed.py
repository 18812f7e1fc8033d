"""Tuning wall time with and without within-first-fold pruning, same seed, same budget.

A study of the default search space (``spectclf.default_search_space``) over the
default pipeline, on the same phantom cohort and patient partitions, run four ways:
as 0.2 ran it (a median pruner fed after each fold, ``MedianPruner(5, 1)``,
preprocessing recomputed in every fold); the same with the per-volume preprocessing
cache (:mod:`spectclf.caching`); epoch pruning in the first fold with the default
median pruner, cached (0.3's default); and with successive halving. Printed and
stored (``benchmarks/results/tuning_speed.json``): wall time, speed-up over the
first row, trials completed / pruned, the study's best score, the best parameters' score in a plain grouped CV
on the same partitions (the same yardstick for every row) and the parameters.

    python -m benchmarks.tuning_speed [--trials 12] [--epochs 10]   # ~6 min, 2 cores
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import optuna

from spectclf import make_default_pipeline, make_spect_phantoms, tune
from spectclf.caching import no_per_volume_cache
from spectclf.model_selection import out_of_fold, quiet_params
from spectclf.tuning import default_pruner, trial_counts

BEFORE = "0.2: median pruner after each fold, no cache"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument(
        "--ways",
        default="before,cache,median,halving",
        help="comma-separated subset of the four ways, in this order (default: all)",
    )
    args = p.parse_args(argv)
    d = make_spect_phantoms((14, 14, 14, 8), shape=(24, 48, 48), random_state=args.seed)
    pipe = make_default_pipeline(random_state=args.seed).set_params(
        clf__max_epochs=args.epochs
    )
    per_fold = dict(
        epoch_pruning=False,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    ways = {
        BEFORE: (per_fold, no_per_volume_cache),
        "the same, per-volume cache": (per_fold, contextlib.nullcontext),
        "epoch pruning, median (0.3 default), cache": (
            dict(pruner=default_pruner()),
            contextlib.nullcontext,
        ),
        "epoch pruning, successive halving, cache": (
            dict(pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=2)),
            contextlib.nullcontext,
        ),
    }
    chosen = args.ways.split(",")
    keys = dict(zip(("before", "cache", "median", "halving"), ways, strict=True))
    ways = {keys[k]: ways[keys[k]] for k in keys if k in chosen}
    if BEFORE not in ways:
        p.error("--ways must include 'before' (the reference of the speed-ups)")
    rows, rescored = {}, {}
    for name, (kwargs, caching) in ways.items():
        start = time.perf_counter()
        with caching():
            res = tune(
                pipe,
                d.X,
                d.y,
                d.groups,
                n_trials=args.trials,
                cv=args.folds,
                random_state=args.seed,
                refit=False,
                verbose=0,
                **kwargs,
            )
        wall = time.perf_counter() - start
        # the best parameters scored one way for every row: a plain grouped CV on
        # the same partitions (with epoch pruning the study's own scores come from a
        # first fold trained on 80 % of its patients)
        key = repr(sorted(res.study.best_trial.params.items()))
        if key not in rescored:
            with caching():
                folds = out_of_fold(
                    pipe,
                    d.X,
                    d.y,
                    d.groups,
                    cv=args.folds,
                    random_state=args.seed,
                    params={**res.best_params, **quiet_params(pipe, 0)},
                    metrics=["balanced_accuracy"],
                )
            rescored[key] = float(
                np.mean([f.scores["balanced_accuracy"] for f in folds])
            )
        rows[name] = {
            "wall_s": round(wall, 1),
            "best_score": round(res.best_score, 3),
            "best_params_plain_cv": round(rescored[key], 3),
            "trials": trial_counts(res.study),
            "best_params": res.study.best_trial.params,
        }
        print(
            f"{name:46s} {wall:6.0f} s  best {res.best_score:.3f} (plain CV "
            f"{rescored[key]:.3f})  {trial_counts(res.study)}",
            flush=True,
        )
    ref = rows[BEFORE]["wall_s"]
    for row in rows.values():
        row["speedup"] = round(ref / row["wall_s"], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"cohort": "phantoms 14/14/14/8, 24x48x48", **vars(args), "rows": rows}
    result["ways"] = chosen
    result["out"] = str(result["out"])
    (args.out / "tuning_speed.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
