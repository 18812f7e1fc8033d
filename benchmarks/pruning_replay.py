"""Choose the tuning pruner on recorded learning curves, over many seeds.

A real study answers "how fast, how good" for one seed and one pruner, in minutes.
This benchmark records, once per seed, everything a pruner could see: a study of the
default search space run with no pruning at all (every trial's first-fold score after
each epoch, its later folds, and the wall clock at each report) and each trial's
score in a plain grouped CV on the same partitions (the yardstick: what the chosen
parameters are worth). Any pruner is then *replayed* on those curves with Optuna's
ask-and-tell interface in milliseconds: which trials it stops, when, what the study
costs and which parameters it picks.

The replay is exact for the TPE sampler's random start-up trials (the first 10 of
the default 12: their parameters do not depend on what was pruned) and an
approximation for the trials after it; a real run of the chosen default
(``python -m benchmarks.tuning_speed``) confirms it.

    python -m benchmarks.pruning_replay record --seeds 0 1 2 3   # ~4 min per seed
    python -m benchmarks.pruning_replay replay                   # seconds

The curves recorded for the docs are in ``benchmarks/curves/`` (``50-patients``: the
cohort of :mod:`benchmarks.tuning_speed`, seeds 0-11; ``100-patients``: 30/30/30/10,
``record --patients 30 30 30 10``, ~15 min per seed).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import time
from pathlib import Path

import numpy as np
import optuna
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

import spectclf.tuning as tuning
from benchmarks.cohorts import tuning_cohort
from spectclf import tune
from spectclf.caching import per_volume_cache
from spectclf.model_selection import out_of_fold, quiet_params

# the recorded curves are kept in the repository (an hour of 2-core time per 12 seeds)
CURVES = Path(__file__).parent / "curves"


class _Clock(optuna.pruners.BasePruner):
    """Never prunes; notes the wall clock at every report."""

    def __init__(self):
        self.times: dict[tuple[int, int], float] = {}

    def prune(self, study, trial) -> bool:
        self.times[(trial.number, trial.last_step)] = time.time()
        return False


def _plain_row(t, clock, seen, epochs, d, pipe, seed, folds) -> dict:
    """One recorded trial: its reports and their times, and its plain CV."""
    start = t.datetime_start.timestamp()
    params = tuning.default_search_space(
        optuna.trial.FixedTrial(t.params, number=t.number), pipe
    )
    fold_ends = []
    begin = time.time()
    plain = out_of_fold(
        pipe,
        d.X,
        d.y,
        d.groups,
        cv=folds,
        random_state=seed,
        params={**params, **quiet_params(pipe, 0)},
        metrics=["balanced_accuracy"],
        on_fold=lambda f: fold_ends.append(time.time() - begin),
    )
    steps = sorted(t.intermediate_values)
    row = {
        "number": t.number,
        "params": t.params,
        "value": t.value,
        "steps": steps,
        "intermediate": [t.intermediate_values[s] for s in steps],
        "elapsed": [clock.times[(t.number, s)] - start for s in steps],
        "wall": t.datetime_complete.timestamp() - start,
        "first_fold_valid": seen[t.number * epochs : (t.number + 1) * epochs],
        "plain_folds": [f.scores["balanced_accuracy"] for f in plain],
        "plain_elapsed": fold_ends,
    }
    print(
        f"seed {seed} trial {t.number}: study {t.value:.3f}, plain CV "
        f"{np.mean(row['plain_folds']):.3f}",
        flush=True,
    )
    return row


def record(seed: int, trials: int, folds: int, out: Path, patients) -> Path:
    """One unpruned study and the plain CV of each of its parameter sets."""
    d, pipe = tuning_cohort(seed, patients=patients)
    clock, seen = _Clock(), []
    soft = tuning.soft_balanced_accuracy

    def watch(y, proba):  # every epoch of every first fold: what the callback saw
        seen.append((np.asarray(y).tolist(), np.asarray(proba).round(5).tolist()))
        return soft(y, proba)

    tuning.soft_balanced_accuracy = watch
    try:
        res = tune(
            pipe,
            d.X,
            d.y,
            d.groups,
            n_trials=trials,
            cv=folds,
            random_state=seed,
            refit=False,
            verbose=0,
            pruner=clock,
            epoch_pruning=True,  # the first fold's per-epoch reports are the point
        )
    finally:
        tuning.soft_balanced_accuracy = soft
    epochs = int(pipe.named_steps["clf"].max_epochs)
    rows = []
    with per_volume_cache():  # as in the study: each volume preprocessed once
        for t in res.study.trials:
            rows.append(_plain_row(t, clock, seen, epochs, d, pipe, seed, folds))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"seed{seed}.json.gz"  # what load and replay read
    meta = {"seed": seed, "epochs": epochs, "patients": list(patients), "folds": folds}
    path.write_bytes(gzip.compress(json.dumps({**meta, "trials": rows}).encode()))
    return path


def load(path) -> dict:
    """One seed's recorded curves."""
    return json.loads(gzip.decompress(Path(path).read_bytes()))


# --- replay --------------------------------------------------------------------------


def log_loss_signal(y, proba) -> float:
    """Negative class-balanced log-loss of the validation patients (higher is better)."""
    y, proba = np.asarray(y), np.clip(np.asarray(proba), 1e-7, 1)
    nll = -np.log(proba[np.arange(len(y)), y])
    return -float(np.mean([nll[y == c].mean() for c in np.unique(y)]))


def hard_signal(y, proba) -> float:
    """Balanced accuracy of the validation patients."""
    return float(balanced_accuracy_score(y, np.argmax(proba, axis=1)))


def auc_signal(y, proba) -> float:
    """Macro one-vs-rest ROC AUC over the stages present (blind to confidence)."""
    y, proba = np.asarray(y), np.asarray(proba)
    aucs = [
        roc_auc_score(y == c, proba[:, c])
        for c in np.unique(y)
        if 0 < np.sum(y == c) < len(y)
    ]
    return float(np.mean(aucs)) if aucs else 0.5


def hard_soft_signal(y, proba) -> float:
    """Balanced accuracy, ties broken by the soft balanced accuracy."""
    return hard_signal(y, proba) + 0.1 * tuning.soft_balanced_accuracy(y, proba)


SIGNALS = {
    "soft": None,  # what 0.3 reported: the class-balanced mean true-stage probability
    "logloss": log_loss_signal,
    "hard": hard_signal,
    "auc": auc_signal,
    "hard+soft": hard_soft_signal,
}


def replay(curves: dict, pruner, *, signal=None, per_fold: bool = False) -> dict:
    """Run ``pruner`` over one seed's recorded trials; cost, pick and its worth.

    ``per_fold``: 0.2's way (a plain CV, the running mean reported after each
    fold, no first-fold epochs).
    """
    epochs = curves["epochs"]
    study = optuna.create_study(direction="maximize", pruner=pruner)
    cost, pruned = 0.0, 0
    for row in curves["trials"]:
        trial = study.ask()
        if per_fold:
            means = np.cumsum(row["plain_folds"]) / np.arange(
                1, 1 + len(row["plain_folds"])
            )
            reports = list(
                zip(range(len(means)), means, row["plain_elapsed"], strict=True)
            )
            wall, value = row["plain_elapsed"][-1], float(means[-1])
        else:
            values = list(row["intermediate"])
            if signal is not None:
                values[:epochs] = [signal(y, p) for y, p in row["first_fold_valid"]]
            reports = list(zip(row["steps"], values, row["elapsed"], strict=True))
            wall, value = row["wall"], row["value"]
        stopped = None
        for step, v, elapsed in reports:
            trial.report(float(v), step)
            if trial.should_prune():
                stopped = elapsed
                break
        if stopped is None:
            cost += wall
            study.tell(trial, value)
        else:
            cost += stopped
            pruned += 1
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    best = study.best_trial.number
    return {
        "cost": cost,
        "pruned": pruned,
        "best": best,
        "worth": float(np.mean(curves["trials"][best]["plain_folds"])),
    }


def candidates(epochs: int) -> dict:
    """Pruners to replay, by name; ``epochs`` of the recorded first folds."""
    P = optuna.pruners
    out = {"spectclf default": lambda: tuning.default_pruner(epochs)}
    for s in (3, 4, 5):
        for w in (2, 4, 6):
            out[f"median({s},{w})"] = lambda s=s, w=w: P.MedianPruner(s, w)
    for q in (0.0, 10.0, 25.0, 33.0):
        for w in (2, 4):
            out[f"percentile({q:.0f}, 3, {w})"] = lambda q=q, w=w: P.PercentilePruner(
                q, n_startup_trials=3, n_warmup_steps=w
            )
    for r in (1, 2, 3, 4):
        for f in (3, 4):
            out[f"halving(min {r}, factor {f})"] = lambda r=r, f=f: (
                P.SuccessiveHalvingPruner(min_resource=r, reduction_factor=f)
            )
    # (no Hyperband: its brackets hash the study name, so a replay is not repeatable)
    out["no pruning"] = P.NopPruner
    return out


def summarise(seeds, signals=("soft",), only=None) -> list[dict]:
    """Every candidate pruner replayed on every seed's curves (``load``), against
    pruning after whole folds."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    refs = [replay(c, optuna.pruners.MedianPruner(5, 1), per_fold=True) for c in seeds]
    table = []
    for sig in signals:
        for name, make in candidates(seeds[0]["epochs"]).items():
            if only and not any(o in name for o in only):
                continue
            runs = [replay(c, make(), signal=SIGNALS[sig]) for c in seeds]
            speed = [r0["cost"] / r["cost"] for r0, r in zip(refs, runs, strict=True)]
            loss = [r["worth"] - r0["worth"] for r0, r in zip(refs, runs, strict=True)]
            table.append(
                {
                    "signal": sig,
                    "pruner": name,
                    "geo_speedup": math.exp(np.mean(np.log(speed))),
                    "min_speedup": min(speed),
                    "mean_score_diff": float(np.mean(loss)),
                    "worst_score_diff": min(loss),
                    "seeds_worse": sum(x < -1e-9 for x in loss),
                    "speedup_per_seed": [round(x, 2) for x in speed],
                    "score_diff_per_seed": [round(x, 3) for x in loss],
                    "seeds_2x_same_or_better": sum(
                        s >= 2 and x >= -1e-9 for s, x in zip(speed, loss, strict=True)
                    ),
                }
            )
    return table


def signal_quality(seeds, signals) -> dict:
    """Spearman correlation, per epoch, of each signal with the trials' plain-CV
    score (mean over the seeds' curves): how well an epoch's report predicts what a
    trial is worth."""
    from scipy.stats import spearmanr

    out = {}
    for sig in signals:
        f = SIGNALS[sig] or tuning.soft_balanced_accuracy
        out[sig] = [
            float(
                np.nanmean(
                    [
                        spearmanr(
                            [f(*r["first_fold_valid"][e]) for r in c["trials"]],
                            [np.mean(r["plain_folds"]) for r in c["trials"]],
                        ).statistic
                        for c in seeds
                    ]
                )
            )
            for e in range(seeds[0]["epochs"])
        ]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("record")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    r.add_argument("--trials", type=int, default=12)
    r.add_argument("--folds", type=int, default=3)
    r.add_argument("--out", type=Path, default=CURVES / "50-patients")
    r.add_argument(
        "--patients",
        type=int,
        nargs=4,
        default=[14, 14, 14, 8],
        help="patients per stage (default: 14 14 14 8, as benchmarks.tuning_speed)",
    )
    s = sub.add_parser("replay")
    s.add_argument("--curves", type=Path, default=CURVES / "50-patients")
    s.add_argument("--signals", nargs="+", default=list(SIGNALS), choices=list(SIGNALS))
    s.add_argument(
        "--pruners", nargs="+", help="only pruners whose name holds one of these"
    )
    s.add_argument("--seeds", type=int, nargs="+", help="only these recorded seeds")
    s.add_argument(
        "--out",
        type=Path,
        help="default: benchmarks/results/replay-<curves folder>.json",
    )
    args = p.parse_args(argv)
    if args.what == "record":
        for seed in args.seeds:
            print(
                "wrote",
                record(seed, args.trials, args.folds, args.out, args.patients),
                flush=True,
            )
        return None
    paths = sorted(args.curves.glob("seed*.json.gz"), key=lambda p: int(p.name[4:-8]))
    if args.seeds:
        paths = [p for p in paths if int(p.name[4:-8]) in args.seeds]
    seeds = [load(p) for p in paths]
    quality = signal_quality(seeds, args.signals)
    print("Spearman of each epoch's report with the trial's plain-CV score:")
    for sig, rho in quality.items():
        print(f"  {sig:9s} " + " ".join(f"{r:+.2f}" for r in rho))
    table = summarise(seeds, args.signals, args.pruners)
    print(
        f"{len(paths)} seeds; against the default: pruning after whole folds, MedianPruner(5, 1)"
    )
    for row in table:
        print(
            f"{row['signal']:9s} {row['pruner']:26s} x{row['geo_speedup']:.2f} "
            f"(min {row['min_speedup']:.2f})  score {row['mean_score_diff']:+.3f} "
            f"(worst {row['worst_score_diff']:+.3f}, {row['seeds_worse']} worse)  "
            f"2x & same/better on {row['seeds_2x_same_or_better']}"
        )
    result = {"seeds": [p.name for p in paths], "quality": quality, "table": table}
    out = args.out or Path("benchmarks/results") / f"replay-{args.curves.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return table


if __name__ == "__main__":
    main()
