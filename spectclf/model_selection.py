"""Patient-grouped model selection: splitters, leakage checks and CV evaluation.

Every split here is made at patient level: all volumes (or slices) of one patient fall
on one side. Stages are stratified so that the rare stage 4 appears in every fold.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable

import numpy as np
from sklearn.base import clone
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils import Bunch, check_random_state

from spectclf.caching import per_volume_cache
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
    "RepeatedPatientStratifiedGroupKFold",
    "PatientPartitions",
    "make_partitions",
    "out_of_fold",
    "evaluate",
    "summarise_folds",
    "aggregate_by_patient",
    "aligned_proba",
    "corrected_t_interval",
    "fold_scores",
    "quiet_params",
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


def corrected_t_interval(
    values,
    test_train_ratio: float,
    *,
    confidence: float = 0.95,
    low: float = -np.inf,
    high: float = np.inf,
) -> tuple[float, float, float, float]:
    """Mean, interval and p-value of fold-level values, corrected for the overlap
    of the training sets (Nadeau & Bengio, 2003; Bouckaert & Frank, 2004).

    The ``J`` values of ``R`` x ``K`` cross-validation folds are not independent:
    every pair of folds shares most of its training patients, and the folds of one
    repeat share all of their patients. A plain t-interval over them is far too
    narrow. The corrected resampled t-statistic replaces the variance of the mean
    ``s^2 / J`` by ``(1 / J + n_test / n_train) s^2``, with ``J - 1`` degrees of
    freedom. The interval is about the performance of the modelling *procedure*
    (train on ``n_train`` patients from this population, test on others); it is not
    an interval over new cohorts.

    Parameters
    ----------
    values : array-like of shape (J,)
        One value per fold (NaN folds are left out).
    test_train_ratio : float
        ``n_test / n_train`` in patients (``1 / (K - 1)`` for K folds).
    confidence : float, default=0.95
    low, high : float
        Range of the metric; the interval is clipped to it.

    Returns
    -------
    mean, ci_low, ci_high, p_value : float
        ``p_value`` tests mean = 0 (two-sided), as used for paired differences;
        NaN with fewer than two finite values. Identical values give a zero-width
        interval and ``p_value`` 1 if the mean is 0.

    References
    ----------
    .. [1] C. Nadeau and Y. Bengio, "Inference for the generalization error",
       Machine Learning 52 (2003) 239-281.
    .. [2] R. R. Bouckaert and E. Frank, "Evaluating the replicability of
       significance tests for comparing learning algorithms", PAKDD 2004.

    Examples
    --------
    >>> m, lo, hi, p = corrected_t_interval([0.1, 0.2, 0.15, 0.12, 0.18], 0.25)
    >>> round(m, 3), round(lo, 3), round(hi, 3), p < 0.05
    (0.15, 0.073, 0.227, True)
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    nan = float("nan")
    if len(values) < 2:
        return (float(values.mean()) if len(values) else nan, nan, nan, nan)
    mean = float(values.mean())
    se = np.sqrt((1.0 / len(values) + test_train_ratio) * values.var(ddof=1))
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * se
    if se == 0:
        p_value = 1.0 if mean == 0 else 0.0
    else:
        p_value = float(2 * stats.t.sf(abs(mean) / se, len(values) - 1))
    return (
        mean,
        float(max(low, mean - half)),
        float(min(high, mean + half)),
        p_value,
    )


def aligned_proba(estimator, X, classes) -> np.ndarray:
    """``estimator.predict_proba(X)`` with one column per class of ``classes``.

    A model trained on a fold that missed a stage has fewer columns; the missing
    stages get probability 0.
    """
    classes = np.asarray(classes)
    proba = estimator.predict_proba(X)
    est_classes = np.asarray(getattr(estimator, "classes_", classes))
    full = np.zeros((len(proba), len(classes)))
    full[:, np.searchsorted(classes, est_classes)] = proba
    return full


def fold_scores(estimator, X_test, y_test, groups_test, classes, metrics=None):
    """Score a fitted estimator on one test fold, per patient.

    The one scoring path of the out-of-fold engine (:func:`out_of_fold`):
    probabilities are aligned to ``classes``, averaged over each patient's rows, and
    every metric is computed on the patients.

    Returns
    -------
    scores : dict of str -> float
    patients, y_patient, proba_patient : ndarray
    """
    row_proba = aligned_proba(estimator, X_test, classes)
    return _patient_scores(row_proba, groups_test, y_test, classes, metrics)


def _patient_scores(row_proba, groups, y, classes, metrics):
    pats, pproba, py = aggregate_by_patient(row_proba, groups, y)
    return score_predictions(py, pproba, classes, metrics), pats, py, pproba


class RepeatedPatientStratifiedGroupKFold:
    """``n_repeats`` different stage-stratified patient partitions of K folds.

    Repeat 0 is exactly ``PatientStratifiedGroupKFold(n_splits,
    random_state=random_state)``; later repeats continue the same random stream,
    so one integer seed fixes all of them. Every partition is checked for shared
    patients.

    Parameters
    ----------
    n_splits : int, default=5
    n_repeats : int, default=3
    random_state : int or None, default=None

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat([1, 2], 6); groups = np.arange(12)
    >>> cv = RepeatedPatientStratifiedGroupKFold(3, n_repeats=2, random_state=0)
    >>> cv.get_n_splits(), len(cv.partitions(None, y, groups).repeats)
    (6, 2)
    """

    def __init__(self, n_splits: int = 5, *, n_repeats: int = 3, random_state=None):
        self.n_splits = n_splits
        self.n_repeats = n_repeats
        self.random_state = random_state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_splits={self.n_splits}, "
            f"n_repeats={self.n_repeats}, random_state={self.random_state!r})"
        )

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits * self.n_repeats

    def partitions(self, X, y, groups) -> PatientPartitions:
        """The ``n_repeats`` partitions as a :class:`PatientPartitions`."""
        for name in ("n_splits", "n_repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an int, got {value!r}")
            if value < (2 if name == "n_splits" else 1):
                raise ValueError(f"{name}={value} is too small")
        if y is None:
            raise ValueError(f"{type(self).__name__} needs y (the stages).")
        X = np.zeros(len(y)) if X is None else X
        # one generator for all repeats: the first partition sees it fresh, exactly
        # as PatientStratifiedGroupKFold(random_state=<int>) does
        rng = check_random_state(self.random_state)
        repeats = [
            list(
                PatientStratifiedGroupKFold(self.n_splits, random_state=rng).split(
                    X, y, groups
                )
            )
            for _ in range(self.n_repeats)
        ]
        return PatientPartitions(repeats, groups)

    def split(self, X, y=None, groups=None):
        """Yield the ``n_splits * n_repeats`` ``(train, test)`` pairs, repeat by
        repeat."""
        yield from self.partitions(X, y, groups).split()


class PatientPartitions:
    """Fixed patient partitions: the same folds for every model of a comparison.

    A scikit-learn splitter (``split`` / ``get_n_splits``) that replays stored
    folds, built by :func:`make_partitions`. Every stored split is checked for
    shared patients when it is built.

    Attributes
    ----------
    repeats : list of list of (train, test)
        ``repeats[r][k]``: the row indices of fold ``k`` of repeat ``r``.
    n_repeats, n_splits : int
    """

    def __init__(self, repeats, groups):
        self.repeats = [
            [(np.asarray(tr), np.asarray(te)) for tr, te in r] for r in repeats
        ]
        self._groups = require_groups(groups, len(groups), "PatientPartitions")
        check_no_patient_leakage([s for r in self.repeats for s in r], self._groups)

    @property
    def n_repeats(self) -> int:
        return len(self.repeats)

    @property
    def n_splits(self) -> int:
        return len(self.repeats[0])

    def __repr__(self) -> str:
        return f"PatientPartitions({self.n_repeats} repeat(s) of {self.n_splits} folds)"

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return sum(len(r) for r in self.repeats)

    def check_groups(self, groups) -> None:
        """Refuse ``groups`` other than the patient ids the partitions were made for."""
        if groups is not None and not np.array_equal(np.asarray(groups), self._groups):
            raise PatientLeakageError(
                "These partitions were made for other patient ids (groups); "
                "build them again with make_partitions on this data."
            )

    def split(self, X=None, y=None, groups=None):
        """Yield the stored ``(train, test)`` pairs, repeat by repeat."""
        self.check_groups(groups)
        for r in self.repeats:
            yield from r

    def test_train_ratio(self) -> float:
        """Mean ``n_test / n_train`` in patients over the stored folds."""
        ratios = [
            len(np.unique(self._groups[te])) / len(np.unique(self._groups[tr]))
            for r in self.repeats
            for tr, te in r
        ]
        return float(np.mean(ratios))

    def patient_ids(self) -> list[list[list]]:
        """Test patients of every fold: ``[repeat][fold] -> sorted ids``."""
        return [
            [sorted(np.unique(self._groups[te]).tolist()) for _, te in r]
            for r in self.repeats
        ]


def make_partitions(
    X, y, groups, *, cv=5, n_repeats: int = 1, random_state=None
) -> PatientPartitions:
    """Patient partitions for :func:`out_of_fold` (and any scikit-learn tool).

    Parameters
    ----------
    X, y : array-like
    groups : array-like of shape (n,)
        Patient ids; required.
    cv : int, splitter or PatientPartitions, default=5
        An int gives ``n_repeats`` partitions of
        :class:`PatientStratifiedGroupKFold`; a
        :class:`RepeatedPatientStratifiedGroupKFold` gives its repeats; another
        splitter gives one partition (its splits, whatever they are) and needs
        ``n_repeats=1``; :class:`PatientPartitions` are returned as they are.
    n_repeats : int, default=1
    random_state : int or None, default=None
        Seed of the partitions when ``cv`` is an int.

    Returns
    -------
    PatientPartitions
        Checked for shared patients.
    """
    groups = require_groups(groups, len(y), "the cross-validation")
    if isinstance(cv, PatientPartitions):
        cv.check_groups(groups)
        return cv
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        cv = RepeatedPatientStratifiedGroupKFold(
            int(cv), n_repeats=n_repeats, random_state=random_state
        )
    if isinstance(cv, RepeatedPatientStratifiedGroupKFold):
        return cv.partitions(X, y, groups)
    if n_repeats != 1:
        raise ValueError(
            f"n_repeats={n_repeats} needs cv to be an int (the number of folds) or a "
            f"RepeatedPatientStratifiedGroupKFold, got {cv!r}."
        )
    if not hasattr(cv, "split"):
        raise ValueError(f"cv must be an int or a splitter, got {cv!r}")
    return PatientPartitions([list(cv.split(X, y, groups))], groups)


def out_of_fold(
    estimator,
    X,
    y,
    groups,
    *,
    cv=5,
    n_repeats: int = 1,
    random_state=None,
    metrics=None,
    params: dict | None = None,
    on_fold: Callable[[Bunch], None] | None = None,
    return_estimators: bool = False,
    verbose: int = 0,
    fold_params: Callable[[int, int, np.ndarray], dict] | None = None,
) -> list[Bunch]:
    """The one patient-grouped out-of-fold loop of spectclf.

    Partition (:func:`make_partitions`, leakage-checked) -> for every fold of every
    repeat: clone, set ``params``, fit with the training patients' ids
    (:func:`~spectclf.patient_groups.fit_with_groups`), predict the held-out rows
    with columns aligned to the stages of ``y``, average per patient, score. The
    per-volume preprocessing is computed once per volume for all folds and repeats
    (:func:`~spectclf.caching.per_volume_cache`).
    :func:`evaluate`, :func:`~spectclf.compare_models`, :func:`~spectclf.tune`,
    :class:`~spectclf.StageEnsemble` and :class:`~spectclf.HybridSBRClassifier` all
    run on it.

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
    X, y : array-like
    groups : array-like of shape (n,)
        Patient ids; required.
    cv, n_repeats, random_state
        See :func:`make_partitions`.
    metrics : sequence of str, default=None
        Metrics per fold (None: every metric that applies; ``[]``: none).
    params : dict, default=None
        ``set_params`` of each clone (a tuning trial's parameters).
    on_fold : callable, default=None
        Called with each fold's Bunch as soon as it is scored (e.g. to report to a
        pruner; an exception it raises ends the loop).
    return_estimators : bool, default=False
        Keep each fold's fitted estimator.
    verbose : int, default=0
        One line per fold.
    fold_params : callable, default=None
        ``(repeat, fold, train rows) -> dict``: more ``set_params`` for one fold
        (e.g. :func:`~spectclf.tune`'s pruning callback in the first fold only).

    Returns
    -------
    folds : list of Bunch
        In order of repeat and fold: ``repeat``, ``fold``, ``train``, ``test`` (row
        indices), ``row_proba`` (aligned, per test row), ``patients``, ``y_true``,
        ``proba`` (per test patient), ``scores``, ``fit_time``, ``history`` (or
        None), ``estimator`` (or None), and ``partitions`` (the same object for
        every fold).
    """
    y = np.asarray(y)
    groups = require_groups(groups, len(y), "the cross-validation")
    if len(y) != len(X):
        raise ValueError(
            f"X, y and groups differ in length: {len(X)}, {len(y)}, {len(groups)}"
        )
    partitions = make_partitions(
        X, y, groups, cv=cv, n_repeats=n_repeats, random_state=random_state
    )
    with per_volume_cache():
        return _fold_loop(
            estimator,
            X,
            y,
            groups,
            partitions,
            metrics,
            params,
            fold_params,
            on_fold,
            return_estimators,
            verbose,
        )


def _fold_loop(
    estimator,
    X,
    y,
    groups,
    partitions,
    metrics,
    params,
    fold_params,
    on_fold,
    return_estimators,
    verbose,
) -> list[Bunch]:
    classes = np.unique(y)
    folds = []
    for r, repeat in enumerate(partitions.repeats):
        for k, (train, test) in enumerate(repeat):
            start = time.perf_counter()
            est = clone(estimator)
            if params:
                est.set_params(**params)
            if fold_params is not None:
                est.set_params(**fold_params(r, k, train))
            est = fit_with_groups(est, X[train], y[train], groups[train])
            fit_time = time.perf_counter() - start
            row_proba = aligned_proba(est, X[test], classes)
            wall_time = time.perf_counter() - start
            scores, pats, py, pproba = _patient_scores(
                row_proba, groups[test], y[test], classes, metrics
            )
            fold = Bunch(
                repeat=r,
                fold=k,
                train=train,
                test=test,
                row_proba=row_proba,
                patients=pats,
                y_true=py,
                proba=pproba,
                scores=scores,
                fit_time=fit_time,
                wall_time=wall_time,
                history=_history_of(est),
                estimator=est if return_estimators else None,
                partitions=partitions,
            )
            folds.append(fold)
            if verbose:
                _print_fold(fold, partitions, classes)
            if on_fold is not None:
                on_fold(fold)
    return folds


def quiet_params(estimator, verbose: int = 0) -> dict:
    """``set_params`` that silence every ``verbose`` parameter of ``estimator`` (its
    steps' included) when ``verbose`` is 0; ``{}`` otherwise.

    How a caller's ``verbose=0`` reaches the models it fits (a fitted model's
    results do not depend on its verbosity).
    """
    if verbose or not hasattr(estimator, "get_params"):
        return {}
    return {
        key: 0
        for key, value in estimator.get_params(deep=True).items()
        if (key == "verbose" or key.endswith("__verbose"))
        and isinstance(value, (int, np.integer))
        and value
    }


def _print_fold(fold, partitions, classes) -> None:
    where = f"fold {fold.fold + 1}/{partitions.n_splits}"
    if partitions.n_repeats > 1:
        where = f"repeat {fold.repeat + 1}/{partitions.n_repeats}, " + where
    s, last = fold.scores, classes[-1]
    scores = ", ".join(
        f"{label} {s[key]:{fmt}}"
        for key, label, fmt in (
            ("balanced_accuracy", "balanced accuracy", ".3f"),
            ("qwk", "QWK", ".3f"),
            (f"recall_stage_{last}", f"stage {last} recall", ".2f"),
        )
        if key in s
    )
    print(
        f"[spectclf] {where}: {scores} ({len(fold.patients)} test patients, "
        f"fit {fold.fit_time:.1f} s)",
        flush=True,
    )


def evaluate(
    estimator,
    X,
    y,
    groups,
    *,
    cv=5,
    n_repeats: int = 1,
    random_state=None,
    metrics=None,
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
    cv : int, splitter or PatientPartitions, default=5
        Folds; an int gives :class:`PatientStratifiedGroupKFold`. Pass the same
        :class:`PatientPartitions` (from :func:`make_partitions`) to evaluate
        several models on identical folds.
    n_repeats : int, default=1
        Repeat the K-fold CV on this many different patient partitions (``cv`` an
        int).
    random_state : int or None, default=None
        Seed of the fold assignment (when ``cv`` is an int).
    metrics : sequence of str, default=None
        Metrics to compute (None: every metric of the registry that applies).
    verbose : int, default=1
        Print one line per fold; 0 also silences the estimator's own progress
        lines (every ``verbose`` parameter, see :func:`quiet_params`).
    return_estimators : bool, default=False
        Keep the fitted estimator of each fold (e.g. to build an ensemble).

    Returns
    -------
    result : Bunch
        ``per_fold`` (dict metric -> list over all repeats' folds), ``summary``
        (dict metric -> {mean, std, ci95}), ``per_repeat`` (dict metric -> list:
        the metric of each repeat's pooled out-of-fold predictions),
        ``patients``, ``y_true``, ``y_pred``, ``proba``, ``fold`` (out-of-fold, per
        patient, of the first repeat), ``oof`` (the same for every repeat, with a
        ``repeat`` column), ``partitions``, ``classes``, ``confusion_matrix`` (first
        repeat), ``histories`` (per-fold training curves, if any), ``fit_time``
        (per fold), ``repeat_time`` (seconds each repeat spent fitting and
        predicting) and ``estimators`` if asked. Nothing is returned for an interrupted run: a
        ``KeyboardInterrupt`` propagates.

    Notes
    -----
    ``summary[m]["mean"]`` is the mean over all ``R x K`` folds and ``ci95`` the
    corrected resampled t-interval of :func:`corrected_t_interval`: it accounts for
    the folds sharing training patients (and, with repeats, the same patients), so
    it does not narrow as ``R`` grows the way an interval over ``R x K``
    independent samples would. It is an interval for this modelling procedure on
    patients like these, not for another site's cohort.
    """
    folds = out_of_fold(
        estimator,
        X,
        y,
        groups,
        cv=cv,
        n_repeats=n_repeats,
        random_state=random_state,
        metrics=metrics,
        params=quiet_params(estimator, verbose),
        verbose=verbose,
        return_estimators=return_estimators,
    )
    return summarise_folds(folds, np.unique(np.asarray(y)))


def summarise_folds(folds: list[Bunch], classes) -> Bunch:
    """The :func:`evaluate` result of :func:`out_of_fold`'s folds."""
    classes = np.asarray(classes)
    partitions = folds[0].partitions
    ratio = partitions.test_train_ratio()
    per_fold: dict[str, list[float]] = {}
    for f in folds:
        for name, value in f.scores.items():
            per_fold.setdefault(name, []).append(float(value))
    summary = {}
    for name, v in per_fold.items():
        metric = get_metric(name)
        _, low, high, _ = corrected_t_interval(
            v, ratio, low=metric.low, high=metric.high
        )
        summary[name] = {
            "mean": float(np.nanmean(v)),
            "std": float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0,
            "ci95": (low, high),
        }
    oof = {
        key: np.concatenate([getattr(f, key) for f in folds])
        for key in ("patients", "y_true", "proba")
    }
    oof["y_pred"] = classes[np.argmax(oof["proba"], axis=1)]
    oof["repeat"] = np.concatenate([np.full(len(f.patients), f.repeat) for f in folds])
    oof["fold"] = np.concatenate([np.full(len(f.patients), f.fold) for f in folds])
    per_repeat: dict[str, list[float]] = {}
    for r in range(partitions.n_repeats):
        mask = oof["repeat"] == r
        pooled = score_predictions(
            oof["y_true"][mask], oof["proba"][mask], classes, list(per_fold)
        )
        for name, value in pooled.items():
            per_repeat.setdefault(name, []).append(value)
    first = oof["repeat"] == 0
    result = Bunch(
        per_fold=per_fold,
        summary=summary,
        per_repeat=per_repeat,
        patients=oof["patients"][first],
        y_true=oof["y_true"][first],
        y_pred=oof["y_pred"][first],
        proba=oof["proba"][first],
        fold=oof["fold"][first],
        oof=oof,
        partitions=partitions,
        n_repeats=partitions.n_repeats,
        classes=classes,
        confusion_matrix=confusion_matrix(
            oof["y_true"][first], oof["y_pred"][first], labels=classes
        ),
        histories=[f.history for f in folds if f.history is not None],
        fit_time=[f.fit_time for f in folds],
        repeat_time=[
            sum(f.wall_time for f in folds if f.repeat == r)
            for r in range(partitions.n_repeats)
        ],
    )
    if folds[0].estimator is not None:
        result.estimators = [f.estimator for f in folds]
    return result


def _history_of(estimator):
    """Per-epoch losses of a fitted Spect3DClassifier (alone or last in a pipeline)."""
    history = getattr(final_estimator(estimator), "history_", None)
    if history is None:
        return None
    keys = ("epoch", "train_loss", "valid_loss", "valid_acc")
    return [{k: row[k] for k in keys if k in row} for row in history]
