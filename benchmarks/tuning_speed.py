"""Tuning wall time with and without within-first-fold pruning, same seed, same budget.

A study of the default search space (``spectclf.default_search_space``) over the
default pipeline, on the same phantom cohort and patient partitions, run up to four
ways: ``before``, as 0.2 ran it (a median pruner fed after each fold,
``MedianPruner(5, 1)``, preprocessing recomputed in every fold); ``cache``, the same
with the per-volume preprocessing cache (:mod:`spectclf.caching`): no within-fold
pruning, everything else as now; ``default``, :func:`spectclf.tune` as it is (which
now prunes after whole folds only, like ``cache``);
``epoch``, epoch pruning in the first fold forced, with the default pruner;
``median``, the same with ``MedianPruner(3, 4)`` (the default of the first 0.3
builds). The first way listed is the reference of the speed-ups. Printed and stored
(``benchmarks/results/tuning_speed.json``): wall time, speed-up, trials completed /
pruned, the study's best score, the best parameters' score in a plain grouped CV on
the same partitions (the same yardstick for every row) and the parameters.

    python -m benchmarks.tuning_speed [--seed 0] [--ways cache,epoch]   # ~4 min
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import optuna

from benchmarks.cohorts import tuning_cohort
from spectclf import tune
from spectclf.caching import no_per_volume_cache
from spectclf.model_selection import out_of_fold, quiet_params
from spectclf.tuning import trial_counts

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
        default="cache,epoch",
        help="comma-separated ways among before, cache, default, epoch, median; "
        "the first is the reference of the speed-ups",
    )
    args = p.parse_args(argv)
    d, pipe = tuning_cohort(args.seed, epochs=args.epochs)
    per_fold = dict(
        epoch_pruning=False,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    ways = {
        "before": (BEFORE, per_fold, no_per_volume_cache),
        "cache": ("per-fold pruning only, per-volume cache", per_fold, nullcontext),
        "default": ("0.3: tune's defaults (cache)", {}, nullcontext),
        "epoch": (
            "epoch pruning forced, default pruner, cache",
            dict(epoch_pruning=True),
            nullcontext,
        ),
        "median": (
            "epoch pruning forced, MedianPruner(3, 4), cache",
            dict(epoch_pruning=True, pruner=optuna.pruners.MedianPruner(3, 4)),
            nullcontext,
        ),
    }
    chosen = args.ways.split(",")
    unknown = set(chosen) - set(ways)
    if unknown:
        p.error(f"--ways: unknown {sorted(unknown)}; choose from {sorted(ways)}")
    ways = {ways[k][0]: ways[k][1:] for k in chosen}
    reference = next(iter(ways))
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
            f"{name:42s} {wall:6.0f} s  best {res.best_score:.3f} (plain CV "
            f"{rescored[key]:.3f})  {trial_counts(res.study)}",
            flush=True,
        )
    ref = rows[reference]["wall_s"]
    for row in rows.values():
        row["speedup"] = round(ref / row["wall_s"], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"cohort": "phantoms 14/14/14/8, 24x48x48", **vars(args), "rows": rows}
    result["ways"], result["reference"] = chosen, reference
    result["out"] = str(result["out"])
    (args.out / "tuning_speed.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
