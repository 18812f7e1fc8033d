"""Ordinal-aware metrics for stage classification, and matching sklearn scorers.

Stages are ordered: predicting stage 3 for a stage-4 patient is a smaller error than
predicting stage 1. Besides balanced accuracy and macro F1 we therefore report the
quadratic weighted kappa and the mean absolute error in stages, and per-stage recall
(the rare stage 4 matters most).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    cohen_kappa_score,
    f1_score,
    make_scorer,
    precision_recall_fscore_support,
)

__all__ = [
    "quadratic_weighted_kappa",
    "mean_absolute_stage_error",
    "stage_recall",
    "get_scorers",
    "stage_report",
]


def quadratic_weighted_kappa(y_true, y_pred) -> float:
    """Cohen's kappa with quadratic weights: agreement beyond chance, penalising
    distant stages more.

    Examples
    --------
    >>> quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 3, 4])
    1.0
    """
    return float(cohen_kappa_score(y_true, y_pred, weights="quadratic"))


def mean_absolute_stage_error(y_true, y_pred) -> float:
    """Mean absolute difference between true and predicted stage (numeric labels).

    Examples
    --------
    >>> mean_absolute_stage_error([1, 2, 4], [1, 3, 2])
    1.0
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    return float(np.mean(np.abs(y_true - y_pred)))


def stage_recall(y_true, y_pred, *, stage) -> float:
    """Recall (sensitivity) for one stage: the share of its patients found.

    Examples
    --------
    >>> stage_recall([4, 4, 1], [4, 3, 1], stage=4)
    0.5
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    mask = y_true == stage
    return float(np.mean(y_pred[mask] == stage)) if mask.any() else float("nan")


def get_scorers(classes=(1, 2, 3, 4), *, proba: bool = True) -> dict:
    """The standard spectclf scorers, for ``cross_validate``, ``evaluate`` or ``tune``.

    Parameters
    ----------
    classes : sequence, default=(1, 2, 3, 4)
        Stage labels; one ``recall_stage_<s>`` scorer is made per stage.
    proba : bool, default=True
        Include ``roc_auc_ovr`` (needs ``predict_proba``).

    Returns
    -------
    scorers : dict of str -> scorer
        ``balanced_accuracy``, ``f1_macro``, ``qwk``, ``mae`` (negated, so greater is
        better, as sklearn scorers are), ``recall_stage_<s>``, ``roc_auc_ovr``.
    """
    scorers = {
        "balanced_accuracy": make_scorer(balanced_accuracy_score),
        "f1_macro": make_scorer(f1_score, average="macro", zero_division=0),
        "qwk": make_scorer(quadratic_weighted_kappa),
        "mae": make_scorer(mean_absolute_stage_error, greater_is_better=False),
    }
    for s in classes:
        scorers[f"recall_stage_{s}"] = make_scorer(stage_recall, stage=s)
    if proba:
        scorers["roc_auc_ovr"] = "roc_auc_ovr"
    return scorers


def stage_report(y_true, y_pred, *, digits: int = 3, print_: bool = True) -> str:
    """A per-stage table (patients, recall, precision, F1) and the overall metrics.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    digits : int, default=3
    print_ : bool, default=True
        Also print the table.

    Returns
    -------
    report : str

    Examples
    --------
    >>> print(stage_report([1, 2, 3, 4], [1, 2, 4, 4], print_=False))  # doctest: +NORMALIZE_WHITESPACE
    stage  patients  recall  precision     f1
        1         1   1.000      1.000  1.000
        2         1   1.000      1.000  1.000
        3         1   0.000      0.000  0.000
        4         1   1.000      0.500  0.667
    balanced accuracy 0.750 | macro F1 0.667 | QWK 0.917 | MAE 0.250 stages
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    p, r, f, n = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    lines = [
        f"{'stage':>5}  {'patients':>8}  {'recall':>6}  {'precision':>9}  {'f1':>5}"
    ]
    for lab, pi, ri, fi, ni in zip(labels, p, r, f, n, strict=True):
        lines.append(
            f"{lab!s:>5}  {ni:>8d}  {ri:>6.{digits}f}  {pi:>9.{digits}f}  "
            f"{fi:>5.{digits}f}"
        )
    summary = (
        f"balanced accuracy {balanced_accuracy_score(y_true, y_pred):.{digits}f}"
        f" | macro F1 {f1_score(y_true, y_pred, average='macro', zero_division=0):.{digits}f}"
        f" | QWK {quadratic_weighted_kappa(y_true, y_pred):.{digits}f}"
    )
    if y_true.dtype.kind in "iuf":
        summary += (
            f" | MAE {mean_absolute_stage_error(y_true, y_pred):.{digits}f} stages"
        )
    lines.append(summary)
    text = "\n".join(lines)
    if print_:
        print(text)
    return text
