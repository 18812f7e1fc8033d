"""Ready-made pipelines: the default CNN and the SBR clinical baseline."""

from __future__ import annotations

from collections.abc import Sequence

from spectclf.classifier import Spect3DClassifier
from spectclf.features import make_sbr_baseline
from spectclf.sampling import PatientPipeline, check_network_input
from spectclf.transforms import (
    CenterCrop,
    IntensityNormalizer,
    StriatumCrop,
    VolumeResizer,
)

__all__ = ["make_default_pipeline", "make_sbr_baseline"]


def make_default_pipeline(
    shape: Sequence[int] = (32, 64, 64),
    *,
    crop: str | float | Sequence[float] | None = "striatum",
    sampler=None,
    class_weight: str | dict | None = "auto",
    **classifier_params,
) -> PatientPipeline:
    """The default spectclf model: resize, normalise, crop on the striatum, (balance),
    ResNet.

    Parameters
    ----------
    shape : tuple of 3 ints, default=(32, 64, 64)
        ``(D, H, W)`` every volume is resampled to.
    crop : "striatum", float, tuple of 3 floats or None, default="striatum"
        ``"striatum"``: :class:`~spectclf.StriatumCrop` finds the striatum in each
        volume and keeps a block around it sized relative to the brain, resampled to
        0.625 x ``shape`` (``(20, 40, 40)`` of ``(32, 64, 64)``): the same anatomy
        whatever the field of view, head position or zoom, and the ~85 % of voxels
        without stage information dropped (about 3x faster training). A float (or
        three) keeps that central fraction of the field of view instead
        (:class:`~spectclf.CenterCrop`, for data already centred on the striatum);
        None keeps everything. With ``"striatum"``, ``module__striatal_ratios=True``
        also gives the network's head the block's striatal binding ratios
        (:class:`~spectclf.nets.ResNet3D`; other crops refuse it with a
        ``ValueError``, here and again in ``fit`` after any ``set_params``); it is
        off by default (measured on the
        eight robustness cohorts: balanced accuracy 0.83 vs 0.82 on average, but
        fewer stage-4 patients found and less calibrated probabilities).
    sampler : imblearn sampler, default=None
        Optional balancing step (e.g. :class:`~spectclf.VolumeRandomOverSampler`),
        named ``"balance"``.
    class_weight : "auto", None, "balanced" or dict, default="auto"
        The classifier's loss weights. ``"auto"``: ``"balanced"`` without a
        ``sampler``, None with one or with ``criterion="logit_adjusted"`` (a
        sampler or the adjusted loss already balances the stages; both would
        over-correct). "balanced" was chosen on the four robustness
        cohorts (``benchmarks/robustness.py``): against no weighting it kept the
        balanced accuracy (within 0.015 on every cohort) and raised stage-4 recall
        on two of them (0.73 -> 0.80), never lowering it; on the demo cohort alone it
        had looked worse. Its probabilities are less calibrated (ECE up by ~0.03).
    **classifier_params
        Passed to :class:`~spectclf.Spect3DClassifier` (``max_epochs``,
        ``random_state``, ``module__width``...).

    Returns
    -------
    pipeline : PatientPipeline
        Steps ``resize``, ``norm``, ``crop``, ``balance`` (``"passthrough"`` when not
        used) and ``clf``; ``fit(X, y, groups=...)`` keeps patient ids aligned.

    Examples
    --------
    >>> pipe = make_default_pipeline(max_epochs=5, random_state=0)
    >>> [name for name, _ in pipe.steps]
    ['resize', 'norm', 'crop', 'balance', 'clf']
    >>> pipe.named_steps["crop"]
    StriatumCrop()
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(class_weight, str) and class_weight == "auto":
        rebalanced = sampler is not None or (
            classifier_params.get("criterion") == "logit_adjusted"
        )
        class_weight = None if rebalanced else "balanced"
    crop_step = "passthrough"
    if isinstance(crop, str):
        if crop != "striatum":
            raise ValueError(
                f"crop must be 'striatum', a fraction or None, got {crop!r}"
            )
        crop_step = StriatumCrop(tuple(max(4, round(s * 0.625)) for s in shape))
    elif crop is not None:
        frac = (crop,) * 3 if isinstance(crop, (int, float)) else tuple(crop)
        if len(frac) != 3 or not all(0 < f <= 1 for f in frac):
            raise ValueError(
                f"crop must be a fraction in (0, 1] or three of them, got {crop!r}"
            )
        crop_step = CenterCrop(
            tuple(max(1, round(s * f)) for s, f in zip(shape, frac, strict=True))
        )
    pipeline = PatientPipeline(
        [
            ("resize", VolumeResizer(shape)),
            ("norm", IntensityNormalizer(method="reference")),
            ("crop", crop_step),
            ("balance", sampler if sampler is not None else "passthrough"),
            ("clf", Spect3DClassifier(class_weight=class_weight, **classifier_params)),
        ]
    )
    # refused here already (fit checks again, after any set_params)
    check_network_input(pipeline.steps[:-1], pipeline.steps[-1][1])
    return pipeline
