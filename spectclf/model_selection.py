"""Patient-grouped model selection: splitters, leakage checks and CV evaluation.

Every split here is made at patient level: all volumes (or slices) of one patient fall
on one side. Stages are stratified so that the rare stage 4 appears in every fold.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable

import numpy as np
from sklearn.base import clone
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils import Bunch

from spectclf.exceptions import PatientLeakageError
from spectclf.metrics import get_metric, score_predictions
from spectclf.patient_groups import (
    GroupedValidSplit,
    check_groups_consistent,
    final_estimator,
    fit_with_groups,
    grouped_train_valid_split,
    require_groups,
)

__all__ = [
    "PatientStratifiedGroupKFold",
    "check_no_patient_leakage",
    "grouped_train_valid_split",
    "GroupedValidSplit",
    "check_groups_consistent",
    "evaluate",
    "aggregate_by_patient",
    "fold_scores",
]


class PatientStratifiedGroupKFold(StratifiedGroupKFold):
    """Stratified K-fold over patients: no patient in two folds, stages balanced.

    :class:`sklearn.model_selection.StratifiedGroupKFold` with two safeguards:
    ``groups`` are required (a missing ``groups`` raises instead of silently splitting
    slices of one patient apart), and a stage with fewer patients than ``n_splits``
    raises an error that names the stage, instead of producing folds without it.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds; each stage needs at least this many patients.
    shuffle : bool, default=True
        Shuffle patients before splitting (within each stage).
    random_state : int, RandomState instance or None, default=None
        Seed for the shuffle.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat([1, 2], 6); groups = np.repeat(np.arange(6), 2)
    >>> cv = PatientStratifiedGroupKFold(n_splits=3, random_state=0)
    >>> [len(test) for _, test in cv.split(np.zeros(12), y, groups)]
    [4, 4, 4]
    """

    def __init__(self, n_splits: int = 5, *, shuffle: bool = True, random_state=None):
        super().__init__(n_splits=n_splits, shuffle=shuffle, random_state=random_state)

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` index arrays; ``y`` and ``groups`` are required."""
        if groups is None:
            raise PatientLeakageError(
                "PatientStratifiedGroupKFold needs groups= (one patient id per row); "
                "without them slices of one patient could land in train and test."
            )
        if y is None:
            raise ValueError("PatientStratifiedGroupKFold needs y (the stages).")
        y, groups = np.asarray(y), np.asarray(groups)
        check_groups_consistent(y, groups)
        for stage in np.unique(y):
            n = len(np.unique(groups[y == stage]))
            if n < self.n_splits:
                raise ValueError(
                    f"Stage {stage} has {n} patient(s) but n_splits={self.n_splits}: "
                    "each fold needs at least one patient of every stage. Use "
                    f"n_splits<={n}, or pool stage {stage} with a neighbour."
                )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class")
            yield from super().split(X, y, groups)


def check_no_patient_leakage(
    splits: Iterable[tuple[np.ndarray, np.ndarray]], groups
) -> None:
    """Raise :class:`PatientLeakageError` if any split shares a patient across sides.

    Parameters
    ----------
    splits : iterable of (train_indices, test_indices)
        E.g. ``cv.split(X, y, groups)``.
    groups : array-like of shape (n_samples,)
        Patient id of each row.

    Examples
    --------
    >>> import numpy as np
    >>> groups = np.array(["a", "a", "b", "b"])
    >>> check_no_patient_leakage([([0, 1], [2, 3])], groups)  # fine
    >>> check_no_patient_leakage([([0, 2], [1, 3])], groups)
    Traceback (most recent call last):
    ...
    spectclf.exceptions.PatientLeakageError: Split 0 puts patient(s) ['a', 'b'] on both sides...
    """
    groups = np.asarray(groups)
    for k, (train, test) in enumerate(splits):
        shared = np.intersect1d(groups[np.asarray(train)], groups[np.asarray(test)])
        if len(shared):
            raise PatientLeakageError(
                f"Split {k} puts patient(s) {shared[:10].tolist()} on both sides "
                f"({len(shared)} in all); split by patient, e.g. with "
                "PatientStratifiedGroupKFold and groups=patient ids."
            )


def aggregate_by_patient(proba, groups, y=None):
    """Mean class probability per patient, for slice-level predictions.

    Parameters
    ----------
    proba : ndarray of shape (n_rows, n_classes)
    groups : array-like of shape (n_rows,)
        Patient id per row.
    y : array-like of shape (n_rows,), default=None
        Per-row labels (constant within a patient).

    Returns
    -------
    patients : ndarray of patient ids
    patient_proba : ndarray of shape (n_patients, n_classes)
    patient_y : ndarray or None
    """
    groups = np.asarray(groups)
    patients, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((len(patients), proba.shape[1]))
    np.add.at(sums, inverse, proba)
    counts = np.bincount(inverse, minlength=len(patients))[:, None]
    patient_y = None
    if y is not None:
        y = np.asarray(y)
        patient_y = np.empty(len(patients), dtype=y.dtype)
        patient_y[inverse] = y
    return patients, sums / counts, patient_y


def _ci95(values, low: float = -np.inf, high: float = np.inf) -> tuple[float, float]:
    """t-based 95 % confidence interval of the mean, clipped to the metric's range."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return (float("nan"), float("nan"))
    half = (
        stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    )
    return (
        float(max(low, values.mean() - half)),
        float(min(high, values.mean() + half)),
    )


def fold_scores(estimator, X_test, y_test, groups_test, classes, metrics=None):
    """Score a fitted estimator on one test fold, per patient.

    The one scoring path of :func:`evaluate` and :func:`~spectclf.tune`:
    probabilities are aligned to ``classes``, averaged over each patient's rows, and
    every metric is computed on the patients.

    Returns
    -------
    scores : dict of str -> float
    patients, y_patient, proba_patient : ndarray
    """
    classes = np.asarray(classes)
    proba = estimator.predict_proba(X_test)
    est_classes = np.asarray(getattr(estimator, "classes_", classes))
    full = np.zeros((len(y_test), len(classes)))
    full[:, np.searchsorted(classes, est_classes)] = proba
    pats, pproba, py = aggregate_by_patient(full, groups_test, y_test)
    return score_predictions(py, pproba, classes, metrics), pats, py, pproba


def evaluate(
    estimator,
    X,
    y,
    groups,
    *,
    cv=5,
    random_state=None,
    verbose: int = 1,
    return_estimators: bool = False,
):
    """Patient-grouped cross-validation with the ordinal-aware spectclf metrics.

    Each fold holds out whole patients (stratified by stage). The training patients'
    ids reach every step that uses them (see
    :func:`spectclf.patient_groups.fit_with_groups`), so internal validation splits
    and samplers stay grouped; a pipeline that would drop them is refused. When a
    patient has several rows (slices, scans), probabilities are averaged per patient
    and every score is computed per patient.

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
        Cloned for every fold.
    X : array-like of shape (n, ...)
    y : array-like of shape (n,)
    groups : array-like of shape (n,)
        Patient ids; required.
    cv : int or splitter, default=5
        Folds; an int gives :class:`PatientStratifiedGroupKFold`.
    random_state : int or None, default=None
        Seed of the fold assignment (when ``cv`` is an int).
    verbose : int, default=1
        Print one line per fold.
    return_estimators : bool, default=False
        Keep the fitted estimator of each fold (e.g. to build an ensemble).

    Returns
    -------
    result : Bunch
        ``per_fold`` (dict metric -> list), ``summary`` (dict metric -> {mean, std,
        ci95}), ``patients``, ``y_true``, ``y_pred``, ``proba`` (out-of-fold, per
        patient), ``fold`` (test fold of each patient), ``classes``,
        ``confusion_matrix``, ``histories`` (per-fold training curves, if any),
        ``fit_time``, and ``estimators`` if asked. Nothing is returned for an
        interrupted run: a ``KeyboardInterrupt`` propagates.
    """
    y = np.asarray(y)
    groups = require_groups(groups, len(y), "evaluate")
    if len(y) != len(X):
        raise ValueError(
            f"X, y and groups differ in length: {len(X)}, {len(y)}, {len(groups)}"
        )
    if isinstance(cv, (int, np.integer)):
        cv = PatientStratifiedGroupKFold(n_splits=int(cv), random_state=random_state)
    splits = list(cv.split(X, y, groups))
    check_no_patient_leakage(splits, groups)
    classes = np.unique(y)
    per_fold: dict[str, list[float]] = {}
    fold_rows = []
    histories, estimators, fit_times = [], [], []
    for k, (train, test) in enumerate(splits):
        start = time.perf_counter()
        est = fit_with_groups(clone(estimator), X[train], y[train], groups[train])
        fit_times.append(time.perf_counter() - start)
        scores, pats, py, pproba = fold_scores(
            est, X[test], y[test], groups[test], classes
        )
        pred = classes[np.argmax(pproba, axis=1)]
        for name, value in scores.items():
            per_fold.setdefault(name, []).append(float(value))
        fold_rows.append((pats, py, pred, pproba, np.full(len(pats), k)))
        history = _history_of(est)
        if history is not None:
            histories.append(history)
        if return_estimators:
            estimators.append(est)
        if verbose:
            print(
                f"[spectclf] fold {k + 1}/{len(splits)}: "
                f"balanced accuracy {scores['balanced_accuracy']:.3f}, "
                f"QWK {scores['qwk']:.3f}, "
                f"stage {classes[-1]} recall {scores[f'recall_stage_{classes[-1]}']:.2f}"
                f" ({len(pats)} test patients, fit {fit_times[-1]:.1f} s)",
                flush=True,
            )
    patients, y_true, y_pred, proba, fold = (
        np.concatenate(c) for c in zip(*fold_rows, strict=True)
    )
    summary = {}
    for name, v in per_fold.items():
        metric = get_metric(name)
        summary[name] = {
            "mean": float(np.nanmean(v)),
            "std": float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0,
            "ci95": _ci95(v, metric.low, metric.high),
        }
    result = Bunch(
        per_fold=per_fold,
        summary=summary,
        patients=patients,
        y_true=y_true,
        y_pred=y_pred,
        proba=proba,
        fold=fold,
        classes=classes,
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=classes),
        histories=histories,
        fit_time=fit_times,
    )
    if return_estimators:
        result.estimators = estimators
    return result


def _history_of(estimator):
    """Per-epoch losses of a fitted Spect3DClassifier (alone or last in a pipeline)."""
    history = getattr(final_estimator(estimator), "history_", None)
    if history is None:
        return None
    keys = ("epoch", "train_loss", "valid_loss", "valid_acc")
    return [{k: row[k] for k in keys if k in row} for row in history]
