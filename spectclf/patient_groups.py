"""Patient ids (``groups``): the one home for keeping each patient on one side.

Requiring and checking groups, fitting any estimator with them (through
``PatientPipeline``, a scikit-learn ``Pipeline``'s step routing, or scikit-learn's
metadata routing), the grouped validation split used inside
:class:`~spectclf.Spect3DClassifier`, and the warning for splits made without them.
Every module that touches patient ids uses these functions.
"""

from __future__ import annotations

import hashlib
import inspect
import warnings

import numpy as np
import sklearn
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold
from sklearn.utils import check_random_state

from spectclf.exceptions import PatientLeakageError, PatientLeakageWarning

__all__ = [
    "GroupedValidSplit",
    "HOW_TO_PASS_GROUPS",
    "accepts_groups",
    "check_groups_consistent",
    "duplicate_groups",
    "final_estimator",
    "fit_with_groups",
    "grouped_train_valid_split",
    "require_groups",
    "routing_enabled",
    "validation_patients",
    "warn_ungrouped",
]

HOW_TO_PASS_GROUPS = (
    "Pass patient ids: clf.fit(X, y, groups=ids) or PatientPipeline.fit(X, y, "
    "groups=ids); in a scikit-learn Pipeline, pipe.fit(X, y, clf__groups=ids); in "
    "GridSearchCV, cross_validate and friends, call "
    "sklearn.set_config(enable_metadata_routing=True) and then "
    "search.fit(X, y, groups=ids); or use spectclf.evaluate / spectclf.tune."
)


def routing_enabled() -> bool:
    """Whether scikit-learn's metadata routing is switched on."""
    return bool(sklearn.get_config().get("enable_metadata_routing", False))


def require_groups(groups, n_rows: int, what: str) -> np.ndarray:
    """``groups`` as an array of ``n_rows`` patient ids, or a clear error."""
    if groups is None:
        raise PatientLeakageError(
            f"{what} needs groups= (one patient id per row): without them, slices or "
            "copies of one patient can land on both sides of a split."
        )
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n_rows:
        raise ValueError(
            f"{what}: groups has shape {groups.shape} but X has {n_rows} rows; give "
            "one patient id per row."
        )
    if groups.dtype.kind in "OUS" and any(str(g).strip() == "" for g in groups):
        raise ValueError(f"{what}: groups holds blank patient ids.")
    return groups


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


def duplicate_groups(X: np.ndarray) -> np.ndarray:
    """One group id per distinct row: exact copies (from oversampling) share one."""
    keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in X]
    return np.unique(np.asarray(keys, dtype=object), return_inverse=True)[1]


def warn_ungrouped(what: str, stacklevel: int = 3) -> None:
    """Warn :class:`PatientLeakageWarning`: ``what`` ran without patient ids."""
    warnings.warn(
        f"{what} without groups: every row is treated as its own patient, so several "
        "rows (slices, scans, resampled copies) of one patient can land on both "
        f"sides. {HOW_TO_PASS_GROUPS}",
        PatientLeakageWarning,
        stacklevel=stacklevel,
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
    # StratifiedGroupKFold needs n_splits <= the patient count of the largest stage;
    # with one patient per stage no stratified split exists: hold out whole patients
    # at random instead
    _, first = np.unique(groups, return_index=True)
    largest = np.unique(y[first], return_counts=True)[1].max()
    rng = check_random_state(random_state)
    if largest < 2:
        cv = GroupShuffleSplit(
            n_splits=1, test_size=valid_size, random_state=rng.randint(2**31 - 1)
        )
        return next(cv.split(np.zeros(len(y)), y, groups))
    n_splits = int(np.clip(round(1.0 / float(valid_size)), 2, largest))
    cv = StratifiedGroupKFold(
        n_splits=n_splits, shuffle=True, random_state=rng.randint(2**31 - 1)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        train, valid = next(cv.split(np.zeros(len(y)), y, groups))
    return train, valid


def validation_patients(X, y, groups, valid_size, random_state, *, owner: str):
    """Rows and ids of the patients an estimator holds out for validation.

    ``groups=None`` counts each row as its own patient (identical rows kept
    together) and warns (:func:`warn_ungrouped`) on behalf of ``owner``; a
    ``groups`` of another length than ``y`` is refused.

    Returns
    -------
    valid_idx : ndarray of int or None
        None when ``valid_size`` is None.
    valid_groups : ndarray or None
        The held-out patients' ids.
    """
    if groups is not None and len(groups) != len(y):
        raise ValueError(
            f"groups has {len(groups)} entries but X has {len(y)} rows. If a "
            "sampler resampled X before this step, resample groups with it: "
            "use spectclf.PatientPipeline."
        )
    if valid_size is None:
        return None, None
    if groups is None:
        groups = duplicate_groups(X)
        warn_ungrouped(
            f"{owner}'s validation split (valid_size={valid_size}) of {len(y)} rows "
            f"({len(y) - len(np.unique(groups))} repeated)"
        )
    groups = np.asarray(groups)
    _, valid_idx = grouped_train_valid_split(
        y, groups, valid_size, random_state=random_state
    )
    return valid_idx, np.unique(groups[valid_idx])


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

        mask = np.zeros(len(dataset), dtype=bool)
        mask[self.valid_indices] = True
        return (
            Subset(dataset, np.flatnonzero(~mask).tolist()),
            Subset(dataset, np.flatnonzero(mask).tolist()),
        )

    def __repr__(self) -> str:
        return f"GroupedValidSplit(n_valid={len(self.valid_indices)})"


def final_estimator(estimator):
    """The last step of a (nested) pipeline, or the estimator itself."""
    while hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def accepts_groups(estimator) -> bool:
    """Whether ``estimator.fit`` has a ``groups`` parameter."""
    try:
        return "groups" in inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def _is_sampler(step) -> bool:
    return hasattr(step, "fit_resample")


def fit_with_groups(estimator, X, y, groups):
    """Fit ``estimator`` so that patient ids reach every step that uses them.

    - ``fit`` takes ``groups`` (our estimators, ``PatientPipeline``): passed directly.
    - A scikit-learn / imbalanced-learn ``Pipeline`` whose final step takes
      ``groups``: routed to that step (``<step>__groups``, or through metadata
      routing when it is on). A sampler in such a pipeline would resample ``X`` but
      not the ids, so it is refused with :class:`PatientLeakageError` — use
      :class:`~spectclf.PatientPipeline`.
    - Anything else is fitted without ``groups`` (it cannot split internally by
      patient, and its own fit sees no test data).
    """
    if groups is None:
        return estimator.fit(X, y)
    if accepts_groups(estimator):
        return estimator.fit(X, y, groups=groups)
    if hasattr(estimator, "steps"):
        name, final = estimator.steps[-1]
        if final is None or final == "passthrough" or not accepts_groups(final):
            return estimator.fit(X, y)
        samplers = [n for n, s in estimator.steps[:-1] if _is_sampler(s)]
        if samplers:
            raise PatientLeakageError(
                f"{type(estimator).__name__} step(s) {samplers} resample rows, but "
                "this pipeline cannot resample patient ids with them, so "
                f"{type(final).__name__}'s validation split would mix patients. Use "
                "spectclf.PatientPipeline (same steps), which carries groups "
                "through samplers."
            )
        if routing_enabled():
            return estimator.fit(X, y, groups=groups)
        return estimator.fit(X, y, **{f"{name}__groups": groups})
    return estimator.fit(X, y)
