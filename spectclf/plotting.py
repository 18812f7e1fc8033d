"""Plots for reports: confusion matrices, fold scores, learning curves, ROC, montages.

Every function draws on a new figure and returns it, so callers can save or show it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from spectclf.comparison import format_p_value
from spectclf.metrics import get_metric

__all__ = [
    "plot_confusion_matrix",
    "plot_fold_scores",
    "plot_paired_differences",
    "plot_learning_curves",
    "plot_reliability",
    "plot_roc_ovr",
    "plot_stage_montage",
]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _stage_names(classes) -> list[str]:
    return [f"stage {c}" for c in classes]


def plot_confusion_matrix(cm, classes, *, title="Out-of-fold confusion matrix"):
    """Counts and row-normalised recall side by side."""
    plt = _plt()
    cm = np.asarray(cm)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    names = _stage_names(classes)
    for ax, data, sub, fmt in (
        (axes[0], cm, "patients", "d"),
        (axes[1], norm, "share of true stage (recall on diagonal)", ".2f"),
    ):
        im = ax.imshow(data, cmap="Blues", vmin=0)
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted stage")
        ax.set_ylabel("true stage")
        ax.set_title(sub)
        peak = data.max() if data.size else 1
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                ax.text(
                    j,
                    i,
                    format(data[i, j], fmt),
                    ha="center",
                    va="center",
                    color="white" if data[i, j] > 0.6 * peak else "black",
                )
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title)
    return fig


def plot_fold_scores(
    per_fold: dict,
    metrics: Sequence[str] = ("balanced_accuracy", "f1_macro", "qwk", "roc_auc_ovr"),
):
    """One dot per fold and the mean (bar) for each metric."""
    plt = _plt()
    metrics = [m for m in metrics if m in per_fold]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for i, m in enumerate(metrics):
        vals = np.asarray(per_fold[m], dtype=float)
        ax.bar(i, np.nanmean(vals), color="#9ecae1", width=0.6)
        ax.scatter(
            np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)),
            vals,
            color="#08519c",
            zorder=3,
            s=18,
            label="fold" if i == 0 else None,
        )
    labels = [get_metric(m).label.replace(" (", "\n(") for m in metrics]
    ax.set_xticks(range(len(metrics)), labels, fontsize=8)
    n_classes = sum(k.startswith("recall_stage_") for k in per_fold) or 4
    if "balanced_accuracy" in metrics:
        ax.hlines(
            1 / n_classes,
            -0.4,
            0.4,
            colors="grey",
            linestyles=":",
            label="chance (balanced accuracy)",
        )
    ax.set_ylim(min(0, ax.get_ylim()[0]), 1.05)
    ax.set_ylabel("score (1 = perfect)")
    ax.set_title("Patient-grouped cross-validation: score per fold (bar = mean)")
    ax.legend(loc="lower right")
    return fig


def plot_paired_differences(comparison):
    """Per metric: each fold's difference (dots), each repeat's pooled difference
    (diamonds), the mean and its confidence interval (bar), and zero.

    Parameters
    ----------
    comparison : ModelComparison
        From :func:`~spectclf.compare_models`.
    """
    plt = _plt()
    items = list(comparison.metrics.values())
    a, b = comparison.names
    fig, axes = plt.subplots(
        1, len(items), figsize=(2.6 * len(items) + 1, 3.8), constrained_layout=True
    )
    for ax, m in zip(np.atleast_1d(axes), items, strict=True):
        folds = np.asarray(m.per_fold, dtype=float)
        ax.axhline(0, color="grey", lw=1, ls=":")
        ax.scatter(
            np.linspace(-0.25, 0.25, len(folds)),
            folds,
            s=12,
            color="#9ecae1",
            label="fold",
        )
        ax.scatter(
            np.linspace(-0.1, 0.1, len(m.per_repeat)),
            m.per_repeat,
            marker="D",
            s=30,
            color="#08519c",
            zorder=3,
            label="repeat (pooled)",
        )
        ax.errorbar(
            [0.45],
            [m.estimate],
            yerr=[[m.estimate - m.ci_low], [m.ci_high - m.estimate]],
            fmt="o",
            color="#cb181d",
            capsize=5,
            label=f"mean, {round(100 * comparison.confidence)} % CI",
        )
        ax.set_xlim(-0.5, 0.7)
        ax.set_xticks([])
        better = "higher" if m.greater_is_better else "lower"
        ax.set_title(f"{m.label}\n({better} is better)", fontsize=9)
        ax.set_xlabel(format_p_value(m.p_value, label=True))
    np.atleast_1d(axes)[0].set_ylabel(f"{a} - {b}")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"Paired differences, {a} - {b} ({comparison.n_repeats} repeat(s) of "
        f"{comparison.n_splits} patient-grouped folds)"
    )
    return fig


def plot_learning_curves(histories: list[list[dict]]):
    """Training (and validation) loss per epoch, one line per fold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for k, hist in enumerate(histories):
        epochs = [h["epoch"] for h in hist]
        ax.plot(
            epochs,
            [h["train_loss"] for h in hist],
            color="C0",
            alpha=0.7,
            label="train" if k == 0 else None,
        )
        if all("valid_loss" in h for h in hist):
            ax.plot(
                epochs,
                [h["valid_loss"] for h in hist],
                color="C1",
                alpha=0.7,
                ls="--",
                label="validation (held-out patients)" if k == 0 else None,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(f"Learning curves ({len(histories)} folds)")
    ax.legend()
    return fig


def plot_roc_ovr(y_true, proba, classes):
    """One-vs-rest ROC curve per stage, with its AUC."""
    from sklearn.metrics import auc, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
    y_true = np.asarray(y_true)
    for i, c in enumerate(classes):
        if (y_true == c).all() or not (y_true == c).any():
            continue
        fpr, tpr, _ = roc_curve(y_true == c, proba[:, i])
        ax.plot(fpr, tpr, label=f"stage {c} (AUC {auc(fpr, tpr):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="chance")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("One-vs-rest ROC, out-of-fold")
    ax.legend(loc="lower right")
    ax.set_aspect("equal")
    return fig


def plot_reliability(y_true, proba, classes, *, n_bins: int = 10):
    """Reliability diagram: accuracy against confidence of the top-stage prediction.

    A calibrated model's dots lie on the diagonal; dots below it are over-confident.
    The grey band is where 90 % of the dots of a *perfectly calibrated* model with
    the same confidences would fall on this many patients (consistency resampling):
    dots inside it are no evidence of miscalibration. The title gives the ECE, the
    ECE such a calibrated model would score, and how often it scores at least the
    observed one (:func:`~spectclf.metrics.calibration_p_value`). Bar heights below
    show how many patients fall in each confidence bin.
    """
    from spectclf.metrics import (
        binned_calibration,
        calibrated_resamples,
        calibration_p_value,
        confidence_bins,
    )

    plt = _plt()
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes)
    conf, bins = confidence_bins(proba, n_bins)
    correct = classes[np.argmax(proba, axis=1)] == np.asarray(y_true)
    fig, (ax, axn) = plt.subplots(
        2,
        1,
        figsize=(5.5, 6),
        height_ratios=(3, 1),
        sharex=True,
        constrained_layout=True,
    )
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfect calibration")
    used = np.unique(bins)
    mean_conf, observed, ece = binned_calibration(correct[None], conf, bins, n_bins)
    accuracy, floor = calibrated_resamples(proba, n_bins=n_bins)
    low, high = np.nanpercentile(accuracy[:, used], [5, 95], axis=0)
    ax.vlines(
        mean_conf[used], low, high, color="0.75", lw=6, label="90 % range if calibrated"
    )
    ax.plot(mean_conf[used], observed[0, used], "o-", color="C3", label="model")
    ece = ece[0]
    p_value = calibration_p_value(y_true, proba, classes, n_bins=n_bins)
    ax.set_ylabel("accuracy in bin")
    ax.set_title(
        f"Reliability, out-of-fold: ECE {ece:.3f}\n(a calibrated model would "
        f"score ~{floor.mean():.3f} on this sample;\np = {p_value:.2f}: "
        f"{'likely miscalibrated' if p_value < 0.05 else 'consistent with calibration'})",
        fontsize="medium",
    )
    ax.legend(loc="upper left")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    axn.bar(
        (np.arange(n_bins) + 0.5) / n_bins,
        np.bincount(bins, minlength=n_bins),
        width=0.9 / n_bins,
        color="#9ecae1",
    )
    axn.set_xlabel("confidence (highest stage probability)")
    axn.set_ylabel("patients")
    return fig


def plot_stage_montage(
    X,
    y,
    *,
    saliency=None,
    n_slices: int = 6,
    patient_ids=None,
    title="Coronal slices, one patient per stage",
):
    """Coronal slices of one patient per stage, with saliency overlays if given.

    Parameters
    ----------
    X : ndarray of shape (n, C, D, H, W)
        One volume per row to show (e.g. the first patient of each stage).
    y : array-like of shape (n,)
        Their stages (row titles).
    saliency : ndarray of shape (n, D, H, W), default=None
        Saliency maps (:func:`spectclf.saliency`), drawn as a translucent overlay
        lightly smoothed (0.75 voxel) for legibility, scaled per patient to its
        99th percentile and hidden below a quarter of it.
    n_slices : int, default=6
        Evenly spaced slices through the middle 60 % of the volume.
    """
    plt = _plt()
    X = np.asarray(X)
    depth = X.shape[2]
    idx = np.linspace(0.2 * depth, 0.8 * depth, n_slices).astype(int)
    fig, axes = plt.subplots(
        len(X),
        n_slices,
        figsize=(1.9 * n_slices, 2.0 * len(X)),
        squeeze=False,
        constrained_layout=True,
    )
    for r, vol in enumerate(X):
        img = vol[0]
        vmax = np.percentile(img, 99.5) or 1
        if saliency is not None:
            # robust scale: the 99th percentile, not one peak voxel, is "most salient"
            sal_vol = gaussian_filter(np.asarray(saliency[r], dtype=float), 0.75)
            top = np.percentile(sal_vol, 99)
            sal_vol = np.clip(sal_vol / (top if top > 0 else 1.0), 0, 1)
        for c, d in enumerate(idx):
            ax = axes[r, c]
            ax.imshow(img[d], cmap="gray", vmin=0, vmax=vmax)
            if saliency is not None:
                # only the salient part is coloured, so the anatomy stays readable
                sal = np.ma.masked_less(sal_vol[d], 0.25)
                ax.imshow(sal, cmap="jet", alpha=0.6, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"slice {d + 1}/{depth}", fontsize=9)
            if c == 0:
                who = "" if patient_ids is None else f"\n{patient_ids[r]}"
                ax.set_ylabel(f"stage {y[r]}{who}", fontsize=10)
    extra = (
        " — saliency overlay (red = most influential)" if saliency is not None else ""
    )
    fig.suptitle(
        title + extra + "\nanterior -> posterior; image left = patient right",
        fontsize=10,
    )
    return fig
