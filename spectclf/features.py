"""Striatal binding ratio (SBR) features: the clinical baseline every CNN must beat.

Clinicians read DaTscans by the specific binding ratio of caudate and putamen against
a reference region of non-specific uptake:
``SBR = (mean_ROI - mean_ref) / mean_ref``. :class:`SBRFeatures` measures these in
regions placed relative to the striatum found in each volume
(:mod:`spectclf.anatomy`), so that
``make_pipeline(SBRFeatures(), LogisticRegression(class_weight="balanced"))`` is an
honest, interpretable baseline.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from spectclf.anatomy import (
    BLOCK_SIZE,
    STRIATAL_REGIONS,
    block_region_masks,
    striatum_block,
)
from spectclf.regions import region_masks
from spectclf.transforms import as_volumes

__all__ = ["SBRFeatures", "make_sbr_baseline"]


class SBRFeatures(TransformerMixin, BaseEstimator):
    """Striatal binding ratios and derived indices, in regions that follow the anatomy.

    With ``regions="located"`` (default) each volume ``(n, 1, D, H, W)`` (axes:
    anterior->posterior, superior->inferior, right->left) is cropped around the
    striatum found in it (:func:`spectclf.anatomy.striatum_block`) and the caudate,
    putamen and reference regions are placed in that block relative to the striatal
    centre, in units of the brain's extent — the same anatomy on a whole-head scan, a
    slab or a shifted head. The reference is the block's non-specific brain outside
    the (dilated) striatum. ``regions="fixed"`` uses ellipsoids of the standard
    field of view instead, for spatially normalised scans.

    Features (in this order): SBR of left/right caudate, left/right putamen,
    left/right anterior and posterior putamen; putamen/caudate ratio per side; the
    asymmetry index of putamen and caudate (``100 * |L - R| / mean(L, R)``); and the
    lower of the two posterior-putamen SBRs.

    Parameters
    ----------
    region_scale : float, default=1.0
        Scale of every striatal region about its centre.
    masks : dict of ndarray, default=None
        Custom boolean masks ``{region name: (D, H, W) mask}`` replacing the standard
        ones (keys as in :func:`spectclf.regions.region_masks`, plus ``reference``);
        with ``regions="located"`` they are masks of the block (``block_shape``).
    regions : {"located", "fixed"}, default="located"
        Regions relative to the striatum found in each volume, or fixed in the field
        of view.
    block_shape : tuple of 3 ints, default=(24, 48, 48)
        Resolution of the block the located regions are measured in.

    Attributes
    ----------
    masks_ : dict of ndarray
        Regions used.
    volume_shape_ : tuple
    n_features_out_ : int

    Examples
    --------
    >>> from spectclf import make_spect_phantoms
    >>> d = make_spect_phantoms((2, 0, 0, 2), shape=(30, 64, 64), random_state=0)
    >>> F = SBRFeatures().fit_transform(d.X)
    >>> F.shape, bool(F[:2, 2].mean() > F[2:, 2].mean())  # putamen SBR: stage 1 > 4
    ((4, 13), True)
    """

    def __init__(
        self,
        *,
        region_scale: float = 1.0,
        masks=None,
        regions: str = "located",
        block_shape=(24, 48, 48),
    ):
        self.region_scale = region_scale
        self.masks = masks
        self.regions = regions
        self.block_shape = block_shape

    def fit(self, X, y=None):
        """Fix the regions for the volumes' shape."""
        X = self._check(X)
        if not (isinstance(self.region_scale, (int, float)) and self.region_scale > 0):
            raise ValueError(
                f"region_scale must be a positive number, got {self.region_scale!r}"
            )
        if self.regions not in ("located", "fixed"):
            raise ValueError(
                f"regions must be 'located' or 'fixed', got {self.regions!r}"
            )
        self.volume_shape_ = X.shape[2:]
        self.mask_shape_ = (
            tuple(int(s) for s in self.block_shape)
            if self.regions == "located"
            else self.volume_shape_
        )
        masks = (
            block_region_masks(self.mask_shape_, BLOCK_SIZE, self.region_scale)
            if self.regions == "located"
            else region_masks(self.volume_shape_, scale=self.region_scale)
        )
        if self.masks is not None:
            masks.update({k: np.asarray(v, dtype=bool) for k, v in self.masks.items()})
        for name in (*STRIATAL_REGIONS, "reference"):
            m = masks.get(name)
            if m is None or m.shape != self.mask_shape_ or not m.any():
                raise ValueError(
                    f"Region {name!r} is empty or not of shape {self.mask_shape_}; "
                    "volumes may be too small (use VolumeResizer) or masks wrong."
                )
        self.masks_ = masks
        self.n_features_out_ = len(self.get_feature_names_out())
        return self

    @staticmethod
    def _check(X):
        X = as_volumes(X)
        if X.shape[1] != 1:
            raise ValueError(
                f"SBRFeatures needs intensity volumes (C=1), got C={X.shape[1]}; "
                "convert colour renders with ColormapToIntensity first."
            )
        return X

    def transform(self, X) -> np.ndarray:
        """Compute the features for each volume: ``(n, n_features_out_)``."""
        check_is_fitted(self)
        X = self._check(X)
        if X.shape[2:] != self.volume_shape_:
            raise ValueError(
                f"X has volumes of shape {X.shape[2:]}, fitted on {self.volume_shape_}"
            )
        if self.regions == "located":
            X = np.stack([striatum_block(v, self.mask_shape_) for v in X])
        vol = X[:, 0].reshape(len(X), -1)
        ref = vol[:, self.masks_["reference"].ravel()].mean(1)
        ref = np.maximum(ref, 1e-6)
        sbr = {
            r: (vol[:, self.masks_[r].ravel()].mean(1) - ref) / ref
            for r in STRIATAL_REGIONS
        }
        eps = 1e-3
        cols = [sbr[r] for r in STRIATAL_REGIONS]
        for side in ("left", "right"):
            cols.append(
                sbr[f"{side}_putamen"] / np.maximum(sbr[f"{side}_caudate"], eps)
            )
        for part in ("putamen", "caudate"):
            left, right = sbr[f"left_{part}"], sbr[f"right_{part}"]
            cols.append(
                100 * np.abs(left - right) / np.maximum((left + right) / 2, eps)
            )
        cols.append(
            np.minimum(sbr["left_putamen_posterior"], sbr["right_putamen_posterior"])
        )
        return np.stack(cols, axis=1)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output features."""
        names = [f"sbr_{r}" for r in STRIATAL_REGIONS] + [
            "putamen_caudate_ratio_left",
            "putamen_caudate_ratio_right",
            "asymmetry_index_putamen",
            "asymmetry_index_caudate",
            "sbr_min_posterior_putamen",
        ]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags


def make_sbr_baseline(random_state=None):
    """The clinical baseline pipeline: reference-normalised SBR features, scaled, into
    a class-balanced logistic regression.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SBRFeatures(),
        StandardScaler(),
        LogisticRegression(
            class_weight="balanced", max_iter=2000, random_state=random_state
        ),
    )
