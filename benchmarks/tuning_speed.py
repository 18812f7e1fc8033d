"""Tuning wall time with and without within-first-fold pruning, same seed, same budget.

A study of the default search space (``spectclf.default_search_space``) over the
default pipeline, on the same phantom cohort and patient partitions, run three ways:
per-fold pruning only (``epoch_pruning=False``, the 0.2 behaviour), epoch pruning in
the first fold with the default median pruner, and with successive halving. Printed
and stored (``benchmarks/results/tuning_speed.json``): wall time, trials completed /
pruned, best score and the best trial's parameters.

    python benchmarks/tuning_speed.py [--trials 12] [--epochs 10]   # ~6 min, 2 cores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import optuna

from spectclf import make_default_pipeline, make_spect_phantoms, tune
from spectclf.tuning import default_pruner, trial_counts


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    d = make_spect_phantoms((14, 14, 14, 8), shape=(24, 48, 48), random_state=args.seed)
    pipe = make_default_pipeline(random_state=args.seed).set_params(
        clf__max_epochs=args.epochs
    )
    ways = {
        "per-fold pruning only (0.2)": dict(
            epoch_pruning=False, pruner=default_pruner()
        ),
        "epoch pruning, median (default)": dict(pruner=default_pruner()),
        "epoch pruning, successive halving": dict(
            pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=2)
        ),
    }
    rows = {}
    for name, kwargs in ways.items():
        start = time.perf_counter()
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
        rows[name] = {
            "wall_s": round(wall, 1),
            "best_score": round(res.best_score, 3),
            "trials": trial_counts(res.study),
            "best_params": res.study.best_trial.params,
        }
        print(
            f"{name:36s} {wall:6.0f} s  best {res.best_score:.3f}  {trial_counts(res.study)}",
            flush=True,
        )
    ref = rows["per-fold pruning only (0.2)"]["wall_s"]
    for row in rows.values():
        row["speedup"] = round(ref / row["wall_s"], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"cohort": "phantoms 14/14/14/8, 24x48x48", **vars(args), "rows": rows}
    result["out"] = str(result["out"])
    (args.out / "tuning_speed.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
