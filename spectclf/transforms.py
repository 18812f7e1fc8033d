"""scikit-learn transformers on volume arrays ``(n, C, D, H, W)``.

All accept ``(n, D, H, W)`` too (read as one channel) and return 5-D float32 arrays,
so they chain in :class:`sklearn.pipeline.Pipeline` or imblearn's pipeline in front of
:class:`~spectclf.Spect3DClassifier`.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from spectclf.anatomy import BLOCK_SIZE, locate_striatum, striatum_block
from spectclf.arrays import as_volumes, check_shape3, resample_volumes
from spectclf.caching import cached_per_volume
from spectclf.colour import LUMA_WEIGHTS, invert_colormap

__all__ = [
    "StriatumCrop",
    "ColormapToIntensity",
    "ToGrayscale",
    "VolumeResizer",
    "CenterCrop",
    "IntensityNormalizer",
    "as_volumes",
]


class _StatelessVolumeTransformer(TransformerMixin, BaseEstimator):
    """Base for transforms that learn nothing: ``fit`` only validates."""

    def fit(self, X, y=None):
        """Validate parameters and input; learns nothing. Returns self."""
        self._check_params()
        as_volumes(X)
        return self

    def _check_params(self) -> None:
        """The parameter constraints, then what they cannot express."""
        self._validate_params()

    def transform(self, X) -> np.ndarray:
        """Transform volumes ``(n, C, D, H, W)``."""
        # these need no fit (requires_fit=False), so transform checks as well
        self._check_params()
        return cached_per_volume(self, as_volumes(X), self._transform)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags


class _ShapedVolumeTransformer(_StatelessVolumeTransformer):
    """Base for transforms with a ``shape`` parameter ``(D, H, W)`` (three positive
    ints: more than a constraint says, so ``_check_params`` checks it)."""

    def _check_params(self) -> None:
        super()._check_params()
        self._target_shape()

    def _target_shape(self) -> tuple[int, int, int]:
        return check_shape3(self.shape, f"{type(self).__name__} shape")


class ColormapToIntensity(_StatelessVolumeTransformer):
    """Map colormap-rendered RGB volumes back to scalar intensity.

    Each voxel's colour is replaced by the position (0 to 1) of the nearest colour in
    the colormap's 256-entry look-up table.

    Parameters
    ----------
    colormap : str, default="hot"
        Matplotlib colormap the images were rendered with.

    Examples
    --------
    >>> import numpy as np, matplotlib
    >>> rgb = matplotlib.colormaps["hot"](np.array([0.0, 0.5, 1.0]))[:, :3]
    >>> X = rgb.T.reshape(1, 3, 1, 1, 3)
    >>> ColormapToIntensity("hot").transform(X).round(2).ravel().tolist()
    [0.0, 0.5, 1.0]
    """

    _parameter_constraints: dict = {"colormap": [str]}

    def __init__(self, colormap: str = "hot"):
        self.colormap = colormap

    def _check_params(self) -> None:
        import matplotlib

        super()._check_params()
        if self.colormap not in matplotlib.colormaps:
            raise ValueError(
                "ColormapToIntensity colormap must be a matplotlib colormap name "
                f"(e.g. 'hot', 'jet', 'gray'), got {self.colormap!r}"
            )

    def _transform(self, X):
        if X.shape[1] != 3:
            raise ValueError(
                f"ColormapToIntensity needs RGB volumes (C=3), got C={X.shape[1]}"
            )
        rgb = np.moveaxis(X, 1, -1)
        return invert_colormap(rgb, self.colormap)[:, None]


class ToGrayscale(_StatelessVolumeTransformer):
    """Luminance of RGB volumes: ``0.299 R + 0.587 G + 0.114 B`` (C: 3 -> 1).

    Single-channel input passes through unchanged.

    Parameters
    ----------
    weights : tuple of 3 floats, default=(0.299, 0.587, 0.114)
    """

    _parameter_constraints: dict = {"weights": ["array-like"]}

    def __init__(self, weights: Sequence[float] = LUMA_WEIGHTS):
        self.weights = weights

    def _check_params(self) -> None:
        super()._check_params()
        try:
            w = np.asarray(self.weights, dtype=np.float64)
        except (TypeError, ValueError):
            w = np.empty(0)
        if w.shape != (3,) or not np.isfinite(w).all():
            raise ValueError(
                f"ToGrayscale weights must be 3 numbers (R, G, B), got {self.weights!r}"
            )

    def _transform(self, X):
        if X.shape[1] == 1:
            return X
        if X.shape[1] != 3:
            raise ValueError(f"ToGrayscale needs 1 or 3 channels, got {X.shape[1]}")
        w = np.asarray(self.weights, dtype=np.float32)
        return np.tensordot(w, X, axes=([0], [1]))[:, None].astype(np.float32)


class VolumeResizer(_ShapedVolumeTransformer):
    """Resample volumes to a fixed ``(D, H, W)`` by trilinear interpolation.

    Parameters
    ----------
    shape : tuple of 3 ints, default=(32, 64, 64)
        Output ``(D, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> VolumeResizer((4, 8, 8)).transform(np.ones((2, 1, 30, 64, 64))).shape
    (2, 1, 4, 8, 8)
    """

    _parameter_constraints: dict = {"shape": ["array-like"]}

    def __init__(self, shape: Sequence[int] = (32, 64, 64)):
        self.shape = shape

    def _transform(self, X):
        return resample_volumes(X, self._target_shape())


class CenterCrop(_ShapedVolumeTransformer):
    """Crop the central ``(D, H, W)`` block of every volume.

    Parameters
    ----------
    shape : tuple of 3 ints
        Output ``(D, H, W)``; each must be at most the input's.
    """

    _parameter_constraints: dict = {"shape": ["array-like"]}

    def __init__(self, shape: Sequence[int] = (24, 48, 48)):
        self.shape = shape

    def _transform(self, X):
        shape = self._target_shape()
        if any(o > i for o, i in zip(shape, X.shape[2:], strict=True)):
            raise ValueError(
                f"CenterCrop shape {shape} is larger than the volumes {X.shape[2:]}"
            )
        sl = tuple(
            slice((i - o) // 2, (i - o) // 2 + o)
            for o, i in zip(shape, X.shape[2:], strict=True)
        )
        return np.ascontiguousarray(X[(slice(None), slice(None), *sl)])


class StriatumCrop(_ShapedVolumeTransformer):
    """Find the striatum in each volume and crop a block centred on it.

    Each volume (channels averaged) is smoothed; the non-specific brain level, the
    brain mask and the intensity-weighted centre of the hot (striatal) voxels are
    found from the data (:func:`spectclf.anatomy.locate_striatum`). A block of
    ``size`` x the brain's extent per axis, centred there, is resampled to ``shape``.
    Whole-head scans, slabs around the striatum, shifted or zoomed heads therefore
    give blocks that show the same anatomy.

    A volume where no striatum stands out (hottest brain voxels below
    ``min_contrast`` x the brain level, e.g. a stage-4 scan with almost no uptake)
    is cropped around the brain's centroid shifted by the canonical brain-to-striatum
    offset, so the block still covers where the striatum must be
    (``spectclf.anatomy.locate_striatum(volume).found`` tells which volumes).

    Parameters
    ----------
    shape : tuple of 3 ints, default=(20, 40, 40)
        Output ``(D, H, W)``.
    size : float, default=0.55
        Block edge as a fraction of the brain extent on each axis; 0.55 holds both
        striata with a margin of non-specific brain.
    min_contrast : float, default=1.3
        Peak-to-brain ratio below which the striatum counts as not found.

    Examples
    --------
    >>> from spectclf import make_spect_phantoms
    >>> d = make_spect_phantoms((1, 0, 0, 1), shape=(30, 64, 64), random_state=0)
    >>> StriatumCrop((10, 20, 20)).transform(d.X).shape
    (2, 1, 10, 20, 20)
    """

    _parameter_constraints: dict = {
        "shape": ["array-like"],
        "size": [Interval(Real, 0, 2, closed="right")],
        "min_contrast": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        shape: Sequence[int] = (20, 40, 40),
        size: float = BLOCK_SIZE,
        min_contrast: float = 1.3,
    ):
        self.shape = shape
        self.size = size
        self.min_contrast = min_contrast

    def _transform(self, X):
        shape = self._target_shape()
        out = np.empty((*X.shape[:2], *shape), dtype=np.float32)
        for i, vol in enumerate(X):
            loc = locate_striatum(vol.mean(axis=0), min_contrast=self.min_contrast)
            out[i] = striatum_block(vol, shape, size=self.size, location=loc)
        return out


class IntensityNormalizer(TransformerMixin, BaseEstimator):
    """Normalise each volume's intensities on its own.

    Parameters
    ----------
    method : {"minmax", "zscore", "percentile", "reference"}, default="reference"
        ``"minmax"`` scales to [0, 1]; ``"zscore"`` to mean 0, sd 1; ``"percentile"``
        maps the ``percentiles`` to 0 and 1 (robust to hot voxels); ``"reference"``
        divides by the non-specific uptake, as clinical striatal binding ratios do, so
        1 means non-specific uptake. The reference is found in each volume from the
        data — the median brain uptake (:func:`spectclf.anatomy.locate_striatum`) —
        so it means the same on a whole-head scan, a slab or a shifted head.
    percentiles : tuple of 2 floats, default=(1.0, 99.0)
        Used by ``"percentile"``.
    reference_mask : ndarray of shape (D, H, W) of bool, default=None
        A fixed reference region for ``"reference"`` (e.g. an occipital mask in a
        registered space); by default the brain level found in each volume.

    Attributes
    ----------
    reference_mask_ : ndarray of bool or None
        The reference region used (``"reference"`` only).
    volume_shape_ : tuple
        ``(D, H, W)`` seen in ``fit``.
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"minmax", "zscore", "percentile", "reference"})],
        "percentiles": ["array-like"],
        "reference_mask": ["array-like", None],
    }

    def __init__(
        self, method: str = "reference", percentiles=(1.0, 99.0), reference_mask=None
    ):
        self.method = method
        self.percentiles = percentiles
        self.reference_mask = reference_mask

    def fit(self, X, y=None):
        """Check parameters and fix the reference region for the input's shape."""
        self._validate_params()
        try:
            lo, hi = (float(p) for p in self.percentiles)
            valid = 0 <= lo < hi <= 100
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(
                "IntensityNormalizer percentiles must be (low, high) with "
                f"0 <= low < high <= 100, got {self.percentiles!r}"
            )
        X = as_volumes(X)
        self.volume_shape_ = X.shape[2:]
        self.reference_mask_ = None
        if self.method == "reference" and self.reference_mask is not None:
            mask = np.asarray(self.reference_mask, dtype=bool)
            if mask.shape != self.volume_shape_ or not mask.any():
                raise ValueError(
                    f"reference_mask must be a non-empty boolean array "
                    f"of shape {self.volume_shape_}, got {mask.shape}"
                )
            self.reference_mask_ = mask
        return self

    def transform(self, X) -> np.ndarray:
        """Normalise volumes ``(n, C, D, H, W)`` one by one."""
        check_is_fitted(self)
        X = as_volumes(X)
        if X.shape[2:] != self.volume_shape_:
            raise ValueError(
                f"X has volumes of shape {X.shape[2:]}, but "
                f"IntensityNormalizer was fitted on {self.volume_shape_}"
            )
        return cached_per_volume(self, X, self._normalise)

    def _normalise(self, X: np.ndarray) -> np.ndarray:
        flat = X.reshape(len(X), X.shape[1], -1)
        eps = np.float32(1e-6)
        if self.method == "minmax":
            lo, hi = flat.min(-1, keepdims=True), flat.max(-1, keepdims=True)
            out = (flat - lo) / np.maximum(hi - lo, eps)
        elif self.method == "zscore":
            out = (flat - flat.mean(-1, keepdims=True)) / np.maximum(
                flat.std(-1, keepdims=True), eps
            )
        elif self.method == "percentile":
            lo, hi = np.percentile(flat, self.percentiles, axis=-1, keepdims=True)
            out = (flat - lo) / np.maximum(hi - lo, eps)
        elif self.reference_mask_ is not None:
            ref = flat[..., self.reference_mask_.ravel()].mean(-1, keepdims=True)
            out = flat / np.maximum(ref, eps)
        else:
            ref = np.array(
                [locate_striatum(v.mean(axis=0)).brain_level for v in X],
                dtype=np.float32,
            )
            out = flat / np.maximum(ref[:, None, None], eps)
        return out.reshape(X.shape).astype(np.float32)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
