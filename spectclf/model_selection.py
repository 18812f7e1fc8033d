"""Patient-grouped model selection: splitters, leakage checks and CV evaluation.

Every split here is made at patient level: all volumes (or slices) of one patient fall
on one side. Stages are stratified so that the rare stage 4 appears in every fold.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Iterable

import numpy as np
from sklearn.base import clone
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils import Bunch, check_random_state

from spectclf.exceptions import PatientLeakageError, PatientLeakageWarning
from spectclf.metrics import (
    mean_absolute_stage_error,
    quadratic_weighted_kappa,
    stage_recall,
)

__all__ = [
    "PatientStratifiedGroupKFold",
    "check_no_patient_leakage",
    "grouped_train_valid_split",
    "GroupedValidSplit",
    "evaluate",
    "aggregate_by_patient",
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


def check_groups_consistent(y, groups) -> None:
    """Raise if one patient id carries two different stages."""
    y, groups = np.asarray(y), np.asarray(groups)
    if len(y) != len(groups):
        raise ValueError(
            f"y has {len(y)} rows but groups has {len(groups)}; give one "
            "patient id per row of X."
        )
    order = np.argsort(groups, kind="stable")
    g, s = groups[order], y[order]
    bad = np.unique(g[1:][(g[1:] == g[:-1]) & (s[1:] != s[:-1])])
    if len(bad):
        raise ValueError(
            f"Patient(s) {bad[:5].tolist()} carry more than one stage; "
            "a patient has exactly one stage."
        )


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


def grouped_train_valid_split(y, groups, valid_size: float, random_state=None):
    """Hold out about ``valid_size`` of the patients, stratified by stage.

    Returns
    -------
    train_idx, valid_idx : ndarray of int
    """
    y, groups = np.asarray(y), np.asarray(groups)
    if not 0.0 < float(valid_size) < 1.0:
        raise ValueError(f"valid_size must be in (0, 1), got {valid_size!r}")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(
            f"valid_size={valid_size} needs at least 2 patients, got {n_groups}."
        )
    # StratifiedGroupKFold needs n_splits <= the patient count of the largest stage
    _, first = np.unique(groups, return_index=True)
    largest = np.unique(y[first], return_counts=True)[1].max()
    n_splits = int(np.clip(round(1.0 / float(valid_size)), 2, max(2, largest)))
    rng = check_random_state(random_state)
    cv = StratifiedGroupKFold(
        n_splits=n_splits, shuffle=True, random_state=rng.randint(2**31 - 1)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        train, valid = next(cv.split(np.zeros(len(y)), y, groups))
    return train, valid


class GroupedValidSplit:
    """skorch ``train_split`` that holds out fixed rows (whole patients).

    skorch's own ``ValidSplit`` cannot group by patient; :class:`Spect3DClassifier`
    computes the held-out patients with :func:`grouped_train_valid_split` and hands
    skorch this picklable callable.

    Parameters
    ----------
    valid_indices : array-like of int
        Rows of the training data that form the validation set.
    """

    def __init__(self, valid_indices):
        self.valid_indices = np.asarray(valid_indices, dtype=np.int64)

    def __call__(self, dataset, y=None, groups=None):
        from torch.utils.data import Subset

        n = len(dataset)
        mask = np.zeros(n, dtype=bool)
        mask[self.valid_indices] = True
        return (
            Subset(dataset, np.flatnonzero(~mask).tolist()),
            Subset(dataset, np.flatnonzero(mask).tolist()),
        )

    def __repr__(self) -> str:
        return f"GroupedValidSplit(n_valid={len(self.valid_indices)})"


def _warn_ungrouped(what: str) -> None:
    warnings.warn(
        f"{what} without groups: rows are treated as separate patients. If several "
        "rows (slices, resampled copies) belong to one patient, pass groups= or they "
        "will leak across the split.",
        PatientLeakageWarning,
        stacklevel=3,
    )


def _fit_with_groups(estimator, X, y, groups):
    """Fit, handing ``groups`` to estimators (or pipelines) whose ``fit`` takes them."""
    if groups is not None and "groups" in inspect.signature(estimator.fit).parameters:
        return estimator.fit(X, y, groups=groups)
    return estimator.fit(X, y)


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


def _metric_range(name: str) -> tuple[float, float]:
    if name == "mae":
        return (0.0, np.inf)
    if name == "qwk":
        return (-1.0, 1.0)
    return (0.0, 1.0)


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

    Each fold holds out whole patients (stratified by stage); estimators whose ``fit``
    takes ``groups`` (``Spect3DClassifier``, ``PatientPipeline``) get the training
    patients' ids, so their internal validation is grouped too. When a patient has
    several rows (slices), probabilities are averaged per patient and every score is
    computed per patient.

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
        Keep the fitted estimator of each fold.

    Returns
    -------
    result : Bunch
        ``per_fold`` (dict metric -> list), ``summary`` (dict metric -> {mean, std,
        ci95}), ``patients``, ``y_true``, ``y_pred``, ``proba`` (out-of-fold, per
        patient), ``fold`` (test fold of each patient), ``classes``,
        ``confusion_matrix``, ``histories`` (per-fold training curves, if any),
        ``fit_time``, and ``estimators`` if asked.
    """
    if groups is None:
        raise PatientLeakageError(
            "evaluate needs groups= (patient ids): without them, slices or copies of "
            "one patient can be in training and test folds."
        )
    y = np.asarray(y)
    groups = np.asarray(groups)
    if len(y) != len(groups) or len(y) != len(X):
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
        est = _fit_with_groups(clone(estimator), X[train], y[train], groups[train])
        fit_times.append(time.perf_counter() - start)
        proba = est.predict_proba(X[test])
        est_classes = getattr(est, "classes_", classes)
        full = np.zeros((len(test), len(classes)))
        full[:, np.searchsorted(classes, est_classes)] = proba
        pats, pproba, py = aggregate_by_patient(full, groups[test], y[test])
        pred = classes[np.argmax(pproba, axis=1)]
        scores = {
            "balanced_accuracy": balanced_accuracy_score(py, pred),
            "f1_macro": f1_score(py, pred, average="macro", zero_division=0),
            "qwk": quadratic_weighted_kappa(py, pred),
        }
        if y.dtype.kind in "iuf":
            scores["mae"] = mean_absolute_stage_error(py, pred)
        for s in classes:
            scores[f"recall_stage_{s}"] = stage_recall(py, pred, stage=s)
        try:
            scores["roc_auc_ovr"] = roc_auc_score(
                py, pproba, multi_class="ovr", labels=classes
            )
        except ValueError:
            scores["roc_auc_ovr"] = float("nan")
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
    summary = {
        name: {
            "mean": float(np.nanmean(v)),
            "std": float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0,
            "ci95": _ci95(v, *_metric_range(name)),
        }
        for name, v in per_fold.items()
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
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    history = getattr(final, "history_", None)
    if history is None:
        return None
    keys = ("epoch", "train_loss", "valid_loss", "valid_acc")
    return [{k: row[k] for k in keys if k in row} for row in history]
