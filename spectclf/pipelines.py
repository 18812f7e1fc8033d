"""Ready-made pipelines: the default CNN and the SBR clinical baseline."""

from __future__ import annotations

from collections.abc import Sequence

from spectclf.classifier import Spect3DClassifier
from spectclf.features import make_sbr_baseline
from spectclf.sampling import PatientPipeline
from spectclf.transforms import IntensityNormalizer, VolumeResizer

__all__ = ["make_default_pipeline", "make_sbr_baseline"]


def make_default_pipeline(
    shape: Sequence[int] = (32, 64, 64),
    *,
    sampler=None,
    **classifier_params,
) -> PatientPipeline:
    """The default spectclf model: resize, reference-normalise, (balance), 3-D ResNet.

    Parameters
    ----------
    shape : tuple of 3 ints, default=(32, 64, 64)
        ``(D, H, W)`` every volume is resampled to.
    sampler : imblearn sampler, default=None
        Optional balancing step (e.g. :class:`~spectclf.VolumeRandomOverSampler`),
        named ``"balance"``.
    **classifier_params
        Passed to :class:`~spectclf.Spect3DClassifier` (``max_epochs``,
        ``random_state``, ``module__width``...).

    Returns
    -------
    pipeline : PatientPipeline
        Steps ``resize``, ``norm``, ``balance`` (``"passthrough"`` without a sampler)
        and ``clf``; ``fit(X, y, groups=...)`` keeps patient ids aligned.

    Examples
    --------
    >>> pipe = make_default_pipeline(max_epochs=5, random_state=0)
    >>> [name for name, _ in pipe.steps]
    ['resize', 'norm', 'balance', 'clf']
    """
    return PatientPipeline(
        [
            ("resize", VolumeResizer(shape)),
            ("norm", IntensityNormalizer(method="reference")),
            ("balance", sampler if sampler is not None else "passthrough"),
            ("clf", Spect3DClassifier(**classifier_params)),
        ]
    )
