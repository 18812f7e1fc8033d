"""Left-right flip test-time averaging, measured on the robustness cohorts.

For each cohort: one patient-grouped 5-fold CV of the default pipeline (the folds,
seeds and cached cohorts of ``benchmarks.robustness``), then every fold's held-out
patients predicted twice by the same fitted model, as stored and mirrored left-right;
the averaged probabilities are scored against the plain ones (fold-mean balanced
accuracy, stage-4 patients found, pooled ECE). Rows go to
``results/flip_tta.json``.

    python -m benchmarks.flip_tta --seed 0 --cohorts whole_head,slab_90mm
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from benchmarks.cohorts import COHORTS, N_PER_STAGE, SHAPE, build_cohort, cohort_key
from benchmarks.models import cnn
from spectclf import evaluate
from spectclf.explain import split_pipeline
from spectclf.metrics import expected_calibration_error


def held_out_proba(res, data) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities, plain and flip-averaged, by the fitted folds."""
    row = {g: i for i, g in enumerate(np.asarray(data.groups))}
    plain, flipped = np.zeros_like(res.proba), np.zeros_like(res.proba)
    for k, est in enumerate(res.estimators):
        held = res.fold == k
        # the pipeline's transformers (samplers skipped), then its classifier
        clf, Xt = split_pipeline(est, data.X[[row[p] for p in res.patients[held]]])
        plain[held] = clf.predict_proba(Xt)
        flipped[held] = clf.predict_proba(np.ascontiguousarray(Xt[..., ::-1]))
    if not np.allclose(plain, res.proba, atol=1e-5):
        raise RuntimeError("re-predicting the held-out patients changed them")
    return plain, (plain + flipped) / 2


def scores(res, proba) -> dict:
    pred = res.classes[proba.argmax(axis=1)]
    folds = np.unique(res.fold)
    bal = [
        balanced_accuracy_score(res.y_true[res.fold == k], pred[res.fold == k])
        for k in folds
    ]
    return {
        "balanced_accuracy": round(float(np.mean(bal)), 3),
        "stage_4_found": int(((pred == 4) & (res.y_true == 4)).sum()),
        "ece_pooled": round(
            float(expected_calibration_error(res.y_true, proba, res.classes)), 3
        ),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cohorts", default=",".join(COHORTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--data", type=Path, default=Path("benchmarks/.cohorts"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    path = args.out / "flip_tta.json"
    for cohort in args.cohorts.split(","):
        data = build_cohort(cohort, args.data, N_PER_STAGE, SHAPE, args.seed)
        t0 = time.perf_counter()
        res = evaluate(
            cnn(args.seed, args.epochs),
            data.X,
            data.y,
            data.groups,
            cv=5,
            random_state=args.seed,
            verbose=0,
            return_estimators=True,
        )
        plain, flip = held_out_proba(res, data)
        key = cohort_key(cohort, args.seed)
        row = {
            "plain": scores(res, plain),
            "flip": scores(res, flip),
            "time_s": round(time.perf_counter() - t0, 1),
        }
        print(key, row, flush=True)
        stored = json.loads(path.read_text()) if path.exists() else {}
        stored[key] = row
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2))


if __name__ == "__main__":
    main()
