"""Patient-grouped model selection: splitters, leakage checks and CV evaluation.

Every split here is made at patient level: all volumes (or slices) of one patient fall
on one side. Stages are stratified so that the rare stage 4 appears in every fold.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils import check_random_state

from spectclf.exceptions import PatientLeakageError, PatientLeakageWarning

__all__ = [
    "PatientStratifiedGroupKFold",
    "check_no_patient_leakage",
    "grouped_train_valid_split",
    "GroupedValidSplit",
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
                    f"Stage {stage!r} has {n} patient(s) but n_splits={self.n_splits}: "
                    "each fold needs at least one patient of every stage. Use "
                    f"n_splits<={n}, or pool stage {stage!r} with a neighbour."
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
