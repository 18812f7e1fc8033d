"""Robustness benchmark: the default pipeline and the SBR baseline on cohorts that are
not the demo.

Each cohort is generated with different geometry and rendering knobs of
``make_spect_phantoms`` / ``write_slice_folders`` (or, for ``indep_A``, ``indep_B``,
``indep_C``, by ``benchmarks.independent_cohorts``, a generator written without
the library's phantom code; the cohorts are in ``benchmarks.cohorts``, the models in
``benchmarks.models``), written as slice folders, read back
with the library's default loader (colormap detection included) and cross-validated
by patient (5 folds, the same folds for every model). Results go to
``benchmarks/results/robustness-full.json`` (``-quick`` with ``--quick``; rows of
later runs are merged in) and a Markdown table on stdout.

Run: ``nox -s robustness`` or ``python -m benchmarks.robustness [--quick]
[--models default,unweighted,ordinal,calibrated,ensemble,hybrid,sbr]
[--cohorts whole_head,slab_90mm,...]``; ``--table`` prints every stored row;
``--odds default@30ep`` how often a redraw of each cohort's patients keeps a model at
or above the SBR baseline on both measures; ``--compare 3`` runs
``spectclf.compare_models`` (the default CNN against the SBR baseline on 3 repeated,
identical patient partitions) on each cohort and stores the paired differences in
``robustness-compare-full.json`` (``-quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from benchmarks.cohorts import (
    COHORTS,
    DEFAULT_COHORTS,
    N_PER_STAGE,
    QUICK_N_PER_STAGE,
    QUICK_SHAPE,
    SHAPE,
    build_cohort,
    cohort_key,
)
from benchmarks.models import MODELS
from spectclf import evaluate
from spectclf.classifier import DEFAULT_MAX_EPOCHS
from spectclf.ensemble import UNCERTAINTY_THRESHOLD
from spectclf.metrics import (
    calibration_p_value,
    ece_sampling_floor,
    expected_calibration_error,
)


def ensemble_uncertainty(res, data) -> np.ndarray:
    """Out-of-fold ``StageEnsemble.predict_uncertainty`` of every patient (``1 - max
    mean probability + members' spread``), from the fold's fitted ensemble."""
    rows = {str(g): i for i, g in enumerate(data.groups)}
    out = np.zeros(len(res.patients))
    for k, ens in enumerate(res.estimators):
        test = np.flatnonzero(res.fold == k)
        idx = [rows[str(p)] for p in res.patients[test]]
        out[test] = ens.predict_uncertainty(data.X[idx])
    return out


def flagged_error_rates(res, uncertainty=None) -> dict:
    """Error rate of the patients an uncertainty flag would send to a reader, and of
    the rest (out-of-fold predictions), flagged as ``spectclf predict`` does.
    ``uncertainty`` defaults to ``1 - max probability``."""
    if uncertainty is None:
        uncertainty = 1.0 - res.proba.max(axis=1)
    uncertain = uncertainty > UNCERTAINTY_THRESHOLD
    wrong = res.y_pred != res.y_true

    def rate(rows):
        return round(float(wrong[rows].mean()), 3) if rows.any() else None

    return {
        "n_flagged": int(uncertain.sum()),
        "error_flagged": rate(uncertain),
        "error_rest": rate(~uncertain),
    }


def run(args, path: Path) -> dict:
    """Cross-validate every model on every cohort.

    Each row is merged into the results in ``path`` as soon as it is measured (one
    file per mode, so runs of single models or cohorts add up to one table, and an
    interrupted run keeps what it finished).
    """
    results = {}
    for cohort in args.cohorts:
        t0 = time.perf_counter()
        data = build_cohort(cohort, args.data, args.n_per_stage, args.shape, args.seed)
        print(
            f"## {cohort}: {len(data.y)} patients, {data.X.shape[1:]}, colormap "
            f"{data.colormap!r} (residual {data.colour_residual:.1f})",
            flush=True,
        )
        key = cohort_key(cohort, args.seed)
        results[key] = {"load_s": round(time.perf_counter() - t0, 1)}
        for model in args.models:
            t0 = time.perf_counter()
            estimator = MODELS[model](args.seed, args.epochs)
            spread = hasattr(estimator, "predict_uncertainty")
            res = evaluate(
                estimator,
                data.X,
                data.y,
                data.groups,
                cv=args.folds,
                random_state=args.seed,
                verbose=0,
                return_estimators=spread,
            )
            # peak resident memory of this process so far (Linux: KiB)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            s = res.summary
            row = {
                k: {"mean": s[k]["mean"], "ci95": s[k]["ci95"]}
                for k in ("balanced_accuracy", "qwk", "recall_stage_4", "ece", "mae")
            }
            row["flags"] = flagged_error_rates(res)
            if spread:
                # the ensemble's own flag: uncertainty plus the members' disagreement
                row["flags_spread"] = flagged_error_rates(
                    res, ensemble_uncertainty(res, data)
                )
            # ECE of all out-of-fold predictions pooled: the per-fold ECE of ~33
            # patients is biased upwards by its few samples per bin
            row["ece_pooled"] = round(
                expected_calibration_error(res.y_true, res.proba, res.classes), 3
            )
            # what a perfectly calibrated model with these confidences would score
            row["ece_floor"] = round(ece_sampling_floor(res.proba), 3)
            row["oof"] = {
                "patients": [str(p) for p in res.patients],
                "y_true": np.asarray(res.y_true).tolist(),
                "proba": np.round(res.proba, 4).tolist(),
            }
            row["time_s"] = round(time.perf_counter() - t0, 1)
            row["peak_rss_mb"] = round(peak, 1)
            # the SBR baseline trains no epochs: a tag such as "@30ep" is not its own
            name = model if model == "sbr" else model + args.tag
            results[key][name] = row
            # read again: another run may have added rows meanwhile
            stored = json.loads(path.read_text()) if path.exists() else {}
            stored.setdefault(key, {})[name] = row
            path.write_text(json.dumps(stored, indent=2))
            print(
                f"  {name:>9}: bal.acc {_fmt(s['balanced_accuracy'])}, QWK "
                f"{_fmt(s['qwk'])}, stage-4 recall {_fmt(s['recall_stage_4'])}, ECE "
                f"{s['ece']['mean']:.3f} (pooled {row['ece_pooled']:.3f}, calibrated model "
                f"~{row['ece_floor']:.3f}), flagged "
                f"{row['flags']} "
                f"({row['time_s']:.0f} s)",
                flush=True,
            )
    return results


def _fmt(s) -> str:
    lo, hi = s["ci95"]
    return f"{s['mean']:.3f} [{lo:.2f}, {hi:.2f}]"


def _rate(r) -> str:
    return "-" if r is None else f"{r:.2f}"


def markdown(results: dict) -> str:
    """One row per cohort and model: accuracy with 95 % CIs over folds, calibration
    (per fold, pooled, and what a calibrated model would score on the pooled
    patients), flagged-patient error rates and time."""
    lines = [
        "| cohort | model | bal. acc | QWK | stage-4 recall | ECE per fold | "
        "ECE pooled (calibrated ~, p) | flagged: n, wrong / rest wrong | time s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = {name: i for i, name in enumerate([*COHORTS, *MODELS])}

    def rank(name: str) -> tuple:
        # "whole_head#seed1" after "whole_head" (seed 2 before 10), "default@30ep"
        # next to "default"
        head, _, seed = name.partition("#seed")
        base = head.split("@")[0]
        return order.get(base, len(order)), int(seed or 0), name

    for cohort in sorted(results, key=rank):
        rows = results[cohort]
        for model in sorted(rows, key=rank):
            r = rows[model]
            if not isinstance(r, dict):
                continue
            pooled = ""
            if "oof" in r:
                o = r["oof"]
                proba = np.asarray(o["proba"])
                classes = np.arange(1, proba.shape[1] + 1)
                pooled = (
                    f"{r['ece_pooled']:.3f} ({ece_sampling_floor(proba):.3f}, p "
                    f"{calibration_p_value(o['y_true'], proba, classes):.2f})"
                )
            flagged = "; ".join(
                f"{label}{f['n_flagged']}: {_rate(f['error_flagged'])} / "
                f"{_rate(f['error_rest'])}"
                for label, f in (
                    ("", r.get("flags")),
                    ("spread ", r.get("flags_spread")),
                )
                if f and f.get("n_flagged")
            )
            lines.append(
                f"| {cohort} | {model} | {_fmt(r['balanced_accuracy'])} | "
                f"{_fmt(r['qwk'])} | {_fmt(r['recall_stage_4'])} | "
                f"{r['ece']['mean']:.3f} | {pooled} | {flagged} | "
                f"{r['time_s']:.0f} |"
            )
    return "\n".join(lines)


def every_cohort_odds(results: dict, model: str, draws: int = 2000, seed: int = 0):
    """How often ``model`` is at or above the SBR baseline on both balanced accuracy
    and stage-4 patients found, per cohort, when the cohort's patients are drawn
    again (paired bootstrap of the stored out-of-fold predictions; training noise
    not included); and the chance of that on every cohort at once."""
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(seed)
    lines = [f"| cohort | P({model} >= sbr on both) |", "|---|---|"]
    probs = []
    for cohort, rows in results.items():
        if "oof" not in rows.get(model, {}) or "oof" not in rows.get("sbr", {}):
            continue
        a, b = rows[model]["oof"], rows["sbr"]["oof"]
        if a["patients"] != b["patients"]:
            raise ValueError(f"{cohort}: the two rows hold other patients")
        y = np.asarray(a["y_true"])
        stage4 = y.max()
        pred_a = np.argmax(a["proba"], axis=1) + 1
        pred_b = np.argmax(b["proba"], axis=1) + 1
        hits, used = 0, 0
        while used < draws:
            i = rng.integers(0, len(y), len(y))
            if len(np.unique(y[i])) < len(np.unique(y)):
                continue  # a draw without some stage has no balanced accuracy
            used += 1
            ya = balanced_accuracy_score(y[i], pred_a[i])
            yb = balanced_accuracy_score(y[i], pred_b[i])
            sa = np.sum((y[i] == stage4) & (pred_a[i] == stage4))
            sb = np.sum((y[i] == stage4) & (pred_b[i] == stage4))
            hits += ya >= yb and sa >= sb
        probs.append(hits / draws)
        lines.append(f"| {cohort} | {probs[-1]:.2f} |")
    lines.append(
        f"| **expected cohorts; all {len(probs)} at once** | "
        f"**{sum(probs):.1f}; {np.prod(probs):.1e}** |"
    )
    return "\n".join(lines)


def compare(args, path: Path) -> dict:
    """The default CNN against the SBR baseline on ``args.compare`` repeated,
    identical partitions per cohort (:func:`spectclf.compare_models`)."""
    from spectclf import compare_models

    results = json.loads(path.read_text()) if path.exists() else {}
    for cohort in args.cohorts:
        data = build_cohort(cohort, args.data, args.n_per_stage, args.shape, args.seed)
        t0 = time.perf_counter()
        c = compare_models(
            MODELS["default"](args.seed, args.epochs),
            MODELS["sbr"](args.seed, args.epochs),
            data.X,
            data.y,
            data.groups,
            cv=args.folds,
            n_repeats=args.compare,
            random_state=args.seed,
            names=("CNN", "SBR baseline"),
        )
        key = cohort_key(cohort, args.seed)
        results[key] = {**c.to_dict(), "time_s": round(time.perf_counter() - t0, 1)}
        path.write_text(json.dumps(results, indent=2))
        print(f"## {cohort} ({results[key]['time_s']:.0f} s): {c.sentence()}")
        for name, m in c.metrics.items():
            print(
                f"  {name:>18}: {m.mean_a:.3f} vs {m.mean_b:.3f}, difference "
                f"{m.estimate:+.3f} (95 % CI {m.ci_low:+.3f} to {m.ci_high:+.3f}), "
                f"p {m.p_value:.3f}",
                flush=True,
            )
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--cohorts",
        default=",".join(DEFAULT_COHORTS),
        help=f"comma-separated, of {', '.join(COHORTS)}",
    )
    p.add_argument("--models", default="default,sbr")
    p.add_argument("--epochs", type=int, default=DEFAULT_MAX_EPOCHS)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the cohorts, the folds and the models (not 0: rows stored as "
        "'<cohort>#seed<N>')",
    )
    p.add_argument(
        "--tag",
        default="",
        help="appended to the CNN models' names in the stored rows (e.g. '@30ep')",
    )
    p.add_argument("--data", type=Path, default=Path("benchmarks/.cohorts"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument(
        "--quick",
        action="store_true",
        help="29 patients, 16x32x32 (the independent cohorts keep their own geometry), "
        "5 epochs, 3 folds",
    )
    p.add_argument(
        "--table",
        action="store_true",
        help="print the table of every stored result and run nothing",
    )
    p.add_argument(
        "--odds",
        metavar="MODEL",
        help="print, for a stored model (e.g. 'default@30ep'), how often a redraw of "
        "each cohort's patients keeps it at or above the SBR baseline on both "
        "measures, and run nothing",
    )
    p.add_argument(
        "--compare",
        type=int,
        metavar="R",
        help="compare the default CNN with the SBR baseline on R repeated, identical "
        "partitions per cohort (compare_models), and run nothing else",
    )
    args = p.parse_args(argv)
    args.cohorts = args.cohorts.split(",")
    args.models = args.models.split(",")
    args.n_per_stage, args.shape = N_PER_STAGE, SHAPE
    if args.quick:
        args.n_per_stage, args.shape = QUICK_N_PER_STAGE, QUICK_SHAPE
        args.epochs, args.folds = min(args.epochs, 5), 3
    unknown = set(args.cohorts) - set(COHORTS) | set(args.models) - set(MODELS)
    if unknown:
        p.error(f"unknown cohorts or models: {sorted(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "quick" if args.quick else "full"
    path = args.out / f"robustness-{tag}.json"
    if args.table:
        print(markdown(json.loads(path.read_text())))
        return
    if args.odds:
        print(every_cohort_odds(json.loads(path.read_text()), args.odds))
        return
    if args.compare:
        compare(args, args.out / f"robustness-compare-{tag}.json")
        return
    results = run(args, path)
    print()
    print(markdown(results))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
