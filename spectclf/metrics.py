"""The one metric registry: ordinal-aware stage metrics, calibration, and scorers.

Stages are ordered: predicting stage 3 for a stage-4 patient is a smaller error than
predicting stage 1. Besides balanced accuracy and macro F1 we therefore report the
quadratic weighted kappa and the mean absolute error in stages, per-stage recall (the
rare stage 4 matters most), and how trustworthy the probabilities are (expected
calibration error, Brier score, log-loss).

Every consumer — :func:`~spectclf.evaluate`, :func:`~spectclf.tune`, the scorers, the
report and the plots — reads :data:`METRICS`; adding a metric is one :func:`register`
call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    cohen_kappa_score,
    f1_score,
    log_loss,
    make_scorer,
    precision_recall_fscore_support,
    roc_auc_score,
)

__all__ = [
    "METRICS",
    "Metric",
    "brier_score",
    "calibrated_resamples",
    "calibration_p_value",
    "ece_sampling_floor",
    "expected_calibration_error",
    "get_metric",
    "get_scorers",
    "mean_absolute_stage_error",
    "metric_names",
    "quadratic_weighted_kappa",
    "register",
    "score_predictions",
    "stage_recall",
    "stage_report",
]


def quadratic_weighted_kappa(y_true, y_pred) -> float:
    """Cohen's kappa with quadratic weights: agreement beyond chance, penalising
    distant stages more.

    Examples
    --------
    >>> quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 3, 4])
    1.0
    >>> round(quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 4, 4]), 3)
    0.917
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


def _one_hot(y_true, classes) -> np.ndarray:
    y_true, classes = np.asarray(y_true), np.asarray(classes)
    return (y_true[:, None] == classes[None, :]).astype(float)


def expected_calibration_error(y_true, proba, classes, *, n_bins: int = 10) -> float:
    """Top-label expected calibration error (Guo et al., 2017).

    Predictions are binned by their confidence (the largest probability) into
    ``n_bins`` equal-width bins; the ECE is the patient-weighted mean gap between
    each bin's accuracy and its mean confidence. 0 is perfectly calibrated, but on a
    few hundred patients even a calibrated model scores above 0: compare with
    :func:`ece_sampling_floor`.

    Examples
    --------
    >>> import numpy as np
    >>> expected_calibration_error([1, 2], np.array([[1.0, 0.0], [0.0, 1.0]]), [1, 2])
    0.0
    >>> expected_calibration_error([1, 1], np.array([[0.0, 1.0], [0.0, 1.0]]), [1, 2])
    1.0
    """
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes)
    conf, bins = confidence_bins(proba, n_bins)
    correct = classes[np.argmax(proba, axis=1)] == np.asarray(y_true)
    _, _, ece = binned_calibration(correct[None], conf, bins, n_bins)
    return float(ece[0])


def confidence_bins(proba, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence of each row and its equal-width bin."""
    conf = np.asarray(proba, dtype=float).max(axis=1)
    return conf, np.minimum((conf * n_bins).astype(int), n_bins - 1)


def binned_calibration(correct, conf, bins, n_bins: int):
    """Mean confidence per bin, and per row of ``correct`` (shape ``(r, n)``) the
    accuracy per bin (NaN where empty) and the ECE: the patient-weighted mean gap."""
    counts = np.bincount(bins, minlength=n_bins)
    used = counts > 0
    mean_conf = np.full(n_bins, np.nan)
    mean_conf[used] = np.bincount(bins, conf, minlength=n_bins)[used] / counts[used]
    hits = np.asarray(correct, dtype=float) @ (bins[:, None] == np.arange(n_bins))
    accuracy = np.full(hits.shape, np.nan)
    accuracy[:, used] = hits[:, used] / counts[used]
    gaps = np.abs(accuracy[:, used] - mean_conf[used]) * counts[used] / len(conf)
    return mean_conf, accuracy, gaps.sum(axis=1)


def calibrated_resamples(
    proba, *, n_bins: int = 10, n_resamples: int = 1000, random_state=0
) -> tuple[np.ndarray, np.ndarray]:
    """Bin accuracies and ECEs of a *perfectly calibrated* model with these
    confidences: each top-stage prediction is drawn correct with probability equal to
    its confidence (consistency resampling, Broecker & Smith 2007).

    Returns
    -------
    accuracy : ndarray of shape (n_resamples, n_bins)
        Accuracy per confidence bin in each resample (NaN for empty bins).
    ece : ndarray of shape (n_resamples,)
        Expected calibration error of each resample.
    """
    conf, bins = confidence_bins(proba, n_bins)
    rng = np.random.default_rng(random_state)
    correct = rng.random((n_resamples, len(conf))) < conf
    _, accuracy, ece = binned_calibration(correct, conf, bins, n_bins)
    return accuracy, ece


def ece_sampling_floor(
    proba, *, n_bins: int = 10, n_resamples: int = 1000, random_state=0
) -> float:
    """The ECE that sampling alone produces: the mean ECE of a perfectly calibrated
    model with these confidences on this many patients.

    The binned ECE is biased upwards on small samples: on 165 patients a perfectly
    calibrated model scores about 0.05 (0.052-0.059 with the confidences of the
    robustness benchmark's models), not 0. Read an observed ECE against this
    floor rather than against 0 (see :func:`calibrated_resamples`).

    Examples
    --------
    >>> import numpy as np
    >>> ece_sampling_floor(np.array([[1.0, 0.0], [0.0, 1.0]]))
    0.0
    >>> floor_20 = ece_sampling_floor(np.full((20, 2), 0.5) + [0.2, -0.2])
    >>> floor_2000 = ece_sampling_floor(np.full((2000, 2), 0.5) + [0.2, -0.2])
    >>> bool(floor_2000 < floor_20 / 5)
    True
    """
    _, ece = calibrated_resamples(
        proba, n_bins=n_bins, n_resamples=n_resamples, random_state=random_state
    )
    return float(ece.mean())


def calibration_p_value(
    y_true, proba, classes, *, n_bins: int = 10, n_resamples: int = 1000, random_state=0
) -> float:
    """How often a *perfectly calibrated* model with these confidences scores an ECE
    at least as high as the observed one on the same patients.

    A small value (e.g. < 0.05) is evidence of miscalibration; a large one says the
    observed ECE is what sampling alone produces on this many patients (see
    :func:`calibrated_resamples`). A consistency-resampling test (Broecker & Smith
    2007) of the top-label ECE.

    Examples
    --------
    >>> import numpy as np
    >>> proba = np.tile([0.9, 0.1], (200, 1))
    >>> calibration_p_value(np.ones(200), proba, [1, 2]) < 0.05  # 100 % right at 0.9
    True
    >>> y = np.r_[np.ones(180), np.full(20, 2)]  # 90 % right at 0.9
    >>> calibration_p_value(y, proba, [1, 2]) > 0.5
    True
    """
    observed = expected_calibration_error(y_true, proba, classes, n_bins=n_bins)
    _, ece = calibrated_resamples(
        proba, n_bins=n_bins, n_resamples=n_resamples, random_state=random_state
    )
    # compare with a little tolerance: identical ECEs may differ in the last bits
    return float(np.mean(ece >= observed - 1e-12))


def brier_score(y_true, proba, classes) -> float:
    """Multi-class Brier score: mean squared distance to the one-hot truth (0 best).

    Examples
    --------
    >>> import numpy as np
    >>> brier_score([1, 2], np.array([[1.0, 0.0], [0.5, 0.5]]), [1, 2])
    0.25
    """
    diff = np.asarray(proba, dtype=float) - _one_hot(y_true, classes)
    return float(np.mean(np.sum(diff**2, axis=1)))


@dataclass(frozen=True)
class Metric:
    """One registry entry.

    Attributes
    ----------
    name : str
        Key in results and scorer dicts.
    label : str
        Human-readable name for tables and plots.
    func : callable
        ``func(y_true, y_pred, proba, classes) -> float`` on per-patient data.
    low, high : float
        Range of the values (confidence intervals are clipped to it).
    needs_proba : bool
        Reads ``proba`` (so needs ``predict_proba``).
    greater_is_better : bool
    numeric_labels : bool
        Only defined for numeric stage labels.
    """

    name: str
    label: str
    func: Callable
    low: float = 0.0
    high: float = 1.0
    needs_proba: bool = False
    greater_is_better: bool = True
    numeric_labels: bool = False


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add (or replace) a metric in :data:`METRICS`."""
    METRICS[metric.name] = metric
    return metric


def _labels_only(fn, **kwargs):
    return lambda yt, yp, proba, classes: fn(yt, yp, **kwargs)


def _roc_auc(yt, yp, proba, classes):
    try:
        return roc_auc_score(yt, proba, multi_class="ovr", labels=classes)
    except ValueError:  # a fold without every stage
        return float("nan")


for _m in (
    Metric(
        "balanced_accuracy",
        "Balanced accuracy",
        _labels_only(balanced_accuracy_score),
    ),
    Metric(
        "f1_macro",
        "Macro F1",
        _labels_only(f1_score, average="macro", zero_division=0),
    ),
    Metric(
        "qwk",
        "Quadratic weighted kappa",
        _labels_only(quadratic_weighted_kappa),
        low=-1.0,
    ),
    Metric(
        "mae",
        "Mean absolute error (stages)",
        _labels_only(mean_absolute_stage_error),
        high=np.inf,
        greater_is_better=False,
        numeric_labels=True,
    ),
    Metric("roc_auc_ovr", "ROC AUC (one-vs-rest)", _roc_auc, needs_proba=True),
    Metric(
        "ece",
        "Expected calibration error",
        lambda yt, yp, proba, classes: expected_calibration_error(yt, proba, classes),
        needs_proba=True,
        greater_is_better=False,
    ),
    Metric(
        "brier",
        "Brier score",
        lambda yt, yp, proba, classes: brier_score(yt, proba, classes),
        high=2.0,
        needs_proba=True,
        greater_is_better=False,
    ),
    Metric(
        "log_loss",
        "Log-loss",
        lambda yt, yp, proba, classes: log_loss(yt, proba, labels=classes),
        high=np.inf,
        needs_proba=True,
        greater_is_better=False,
    ),
):
    register(_m)


def _stage_metric(stage) -> Metric:
    return Metric(
        f"recall_stage_{stage}",
        f"Recall, stage {stage}",
        _labels_only(stage_recall, stage=stage),
    )


def get_metric(name: str) -> Metric:
    """The registry entry for ``name`` (``recall_stage_<s>`` for any stage ``s``)."""
    if name in METRICS:
        return METRICS[name]
    if name.startswith("recall_stage_"):
        stage = name[len("recall_stage_") :]
        return _stage_metric(int(stage) if stage.lstrip("-").isdigit() else stage)
    raise ValueError(
        f"Unknown metric {name!r}; choose one of {sorted(METRICS)} or "
        "'recall_stage_<stage>'."
    )


def metric_names(classes, *, numeric: bool = True, proba: bool = True) -> list[str]:
    """Names of every registered metric that applies, plus one recall per stage."""
    names = [
        m.name
        for m in METRICS.values()
        if (numeric or not m.numeric_labels) and (proba or not m.needs_proba)
    ]
    return names + [f"recall_stage_{s}" for s in classes]


def score_predictions(
    y_true, proba, classes, metrics: Sequence[str] | None = None
) -> dict[str, float]:
    """Every metric of per-patient predictions (``y_pred`` is the argmax of ``proba``).

    Parameters
    ----------
    y_true : array-like of shape (n_patients,)
    proba : ndarray of shape (n_patients, n_classes)
        Columns in the order of ``classes``.
    classes : array-like of shape (n_classes,)
    metrics : sequence of str, default=None
        Names to compute; None computes :func:`metric_names`.

    Returns
    -------
    scores : dict of str -> float

    Examples
    --------
    >>> import numpy as np
    >>> s = score_predictions([1, 2], np.array([[0.9, 0.1], [0.2, 0.8]]), [1, 2])
    >>> s["balanced_accuracy"], s["recall_stage_2"]
    (1.0, 1.0)
    """
    y_true, classes = np.asarray(y_true), np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    # float32 models (e.g. a LogisticRegression on float32 features) sum to 1 only
    # within ~1e-7; the log-loss insists on float64 precision
    proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-300)
    y_pred = classes[np.argmax(proba, axis=1)]
    if metrics is None:
        metrics = metric_names(classes, numeric=y_true.dtype.kind in "iuf")
    return {
        name: float(get_metric(name).func(y_true, y_pred, proba, classes))
        for name in metrics
    }


def _scorer_func(y_true, y_score, *, name, classes):
    classes = np.asarray(classes)
    metric = get_metric(name)
    if metric.needs_proba:
        return metric.func(y_true, None, y_score, classes)
    return metric.func(y_true, y_score, None, classes)


def get_scorers(classes=(1, 2, 3, 4), *, proba: bool = True) -> dict:
    """scikit-learn scorers for every registered metric (row-level, as sklearn scores).

    For patient-level scores of slice data use :func:`~spectclf.evaluate` or
    :func:`~spectclf.tune`, which average probabilities per patient first.

    Parameters
    ----------
    classes : sequence, default=(1, 2, 3, 4)
        Stage labels; one ``recall_stage_<s>`` scorer is made per stage.
    proba : bool, default=True
        Include the metrics that need ``predict_proba``.

    Returns
    -------
    scorers : dict of str -> scorer
        Lower-is-better metrics (``mae``, ``ece``...) are negated, as sklearn
        scorers are.
    """
    scorers = {}
    for name in metric_names(classes, proba=proba):
        metric = get_metric(name)
        scorers[name] = make_scorer(
            partial(_scorer_func, name=name, classes=tuple(classes)),
            greater_is_better=metric.greater_is_better,
            response_method="predict_proba" if metric.needs_proba else "predict",
        )
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
    short = {"balanced_accuracy": "balanced accuracy", "f1_macro": "macro F1"}
    names = ["balanced_accuracy", "f1_macro", "qwk"]
    if y_true.dtype.kind in "iuf":
        names.append("mae")
    parts = []
    for name in names:
        value = get_metric(name).func(y_true, y_pred, None, labels)
        text = short.get(name, name.upper())
        parts.append(
            f"{text} {value:.{digits}f}" + (" stages" if name == "mae" else "")
        )
    lines.append(" | ".join(parts))
    text = "\n".join(lines)
    if print_:
        print(text)
    return text
