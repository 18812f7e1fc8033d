"""Striatal binding ratio (SBR) features: the clinical baseline every CNN must beat.

Clinicians read DaTscans by the specific binding ratio of caudate and putamen against
a reference region of non-specific uptake, occipital cortex (EANM guideline,
DaTQUANT): ``SBR = mean_ROI / mean_ref - 1``. :class:`SBRFeatures` measures these in
regions placed relative to the striatum found in each volume
(:mod:`spectclf.anatomy`), so that
``make_pipeline(SBRFeatures(), LogisticRegression(class_weight="balanced"))`` is an
honest, interpretable baseline.
"""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from spectclf.anatomy import GEOMETRIES, STRIATAL_REGIONS, binding_ratio_regions
from spectclf.arrays import as_volumes
from spectclf.regions import region_masks

__all__ = ["SBRFeatures", "make_sbr_baseline"]


class SBRFeatures(TransformerMixin, BaseEstimator):
    """Striatal binding ratios and derived indices, in regions that follow the anatomy.

    With ``regions="located"`` (default) the caudate, caudate head, putamen and its
    anterior / posterior halves are placed in each volume ``(n, 1, D, H, W)`` (axes:
    anterior->posterior, superior->inferior, right->left) relative to the striatum
    found in it, in units of the brain's extent — the same anatomy on a whole-head
    scan, a slab or a shifted head (:func:`spectclf.anatomy.binding_ratio_regions`;
    their geometry is that of anatomical masks on a real healthy FP-CIT template, on
    which the ratios come within 15 % of the masks', see :doc:`/data`). The
    reference is occipital cortex whenever the field of view holds it, otherwise
    (a slab) the non-specific brain around the striatum, which reads higher:
    :meth:`references` says which each volume got, and :meth:`transform` warns when
    a batch mixes them. ``regions="fixed"`` uses ellipsoids of the standard field of
    view instead, for spatially normalised scans.

    Features (in this order): SBR of left/right caudate, left/right putamen,
    left/right anterior and posterior putamen; putamen/caudate ratio per side; the
    asymmetry index of putamen and caudate (``100 * |L - R| / mean(L, R)``); the
    lower of the two posterior-putamen SBRs; SBR of left/right caudate head.

    Parameters
    ----------
    region_scale : float, default=1.0
        Scale of every striatal region about its centre.
    masks : dict of ndarray, default=None
        With ``regions="fixed"``: custom boolean masks ``{region name: (D, H, W)
        mask}`` replacing the standard ones (keys as in
        :func:`spectclf.regions.region_masks`, plus ``reference``).
    regions : {"located", "fixed"}, default="located"
        Regions relative to the striatum found in each volume, or fixed in the field
        of view.
    reference : {"auto", "occipital", "block"}, default="auto"
        Reference region of the located regions: occipital cortex when the field of
        view holds it (``"auto"``), always (``"occipital"``: an error on a slab), or
        never (``"block"``: the non-specific brain around the striatum).
    geometry : {"auto", "anatomical", "canonical"}, default="auto"
        Striatal geometry of the located regions
        (:data:`spectclf.anatomy.GEOMETRIES`): a real brain's, the library's
        phantoms' (caudate further in front of the putamen), or (``"auto"``) the
        one whose striatal regions read the higher uptake on the volumes ``fit``
        sees — chosen once per fit, without labels, so every volume is measured
        alike.
    block_shape : deprecated
        Had no effect since 0.3 (the located regions are measured in the full
        volume); kept so that model files written by 0.2 load. Removed in 0.4.

    Attributes
    ----------
    masks_ : dict of ndarray
        Regions used with ``regions="fixed"`` (None with ``"located"``: they are
        placed in each volume).
    geometry_ : str or None
        Striatal geometry used with ``regions="located"``.
    volume_shape_ : tuple
    n_features_out_ : int

    Examples
    --------
    >>> from spectclf import make_spect_phantoms
    >>> d = make_spect_phantoms((2, 0, 0, 2), shape=(30, 64, 64), random_state=0)
    >>> F = SBRFeatures().fit_transform(d.X)
    >>> F.shape, bool(F[:2, 2].mean() > F[2:, 2].mean())  # putamen SBR: stage 1 > 4
    ((4, 15), True)
    """

    _parameter_constraints: dict = {
        "region_scale": [Interval(Real, 0, None, closed="neither")],
        "masks": [dict, None],
        "regions": [StrOptions({"located", "fixed"})],
        "reference": [StrOptions({"auto", "occipital", "block"})],
        "geometry": [StrOptions({"auto", *GEOMETRIES})],
        # 0.2 stored a (D, H, W) tuple here; any value but the default warns in fit
        "block_shape": ["array-like", Hidden(StrOptions({"deprecated"}))],
    }

    def __init__(
        self,
        *,
        region_scale: float = 1.0,
        masks=None,
        regions: str = "located",
        reference: str = "auto",
        geometry: str = "auto",
        block_shape="deprecated",
    ):
        self.region_scale = region_scale
        self.masks = masks
        self.regions = regions
        self.reference = reference
        self.geometry = geometry
        self.block_shape = block_shape

    def fit(self, X, y=None):
        """Fix the regions for the volumes' shape."""
        self._validate_params()
        X = self._check(X)
        if not (isinstance(self.block_shape, str) and self.block_shape == "deprecated"):
            warnings.warn(
                "SBRFeatures(block_shape=...) has no effect since 0.3 (the located "
                "regions are measured in the full volume) and will be removed in 0.4.",
                FutureWarning,
                stacklevel=2,
            )
        self.volume_shape_ = X.shape[2:]
        self.masks_ = self.geometry_ = None
        if self.regions == "located":
            if self.masks is not None:
                raise ValueError(
                    "masks= replaces the fixed regions; with regions='located' the "
                    "regions are placed in each volume (use regions='fixed')."
                )
            self.geometry_ = (
                self.geometry if self.geometry != "auto" else self._fitting_geometry(X)
            )
        else:
            masks = region_masks(self.volume_shape_, scale=self.region_scale)
            if self.masks is not None:
                masks.update(
                    {k: np.asarray(v, dtype=bool) for k, v in self.masks.items()}
                )
            for name in (*STRIATAL_REGIONS, "reference"):
                m = masks.get(name)
                if m is None or m.shape != self.volume_shape_ or not m.any():
                    raise ValueError(
                        f"Region {name!r} is empty or not of shape "
                        f"{self.volume_shape_}; volumes may be too small (use "
                        "VolumeResizer) or masks wrong."
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
        names = (*STRIATAL_REGIONS, "left_caudate_head", "right_caudate_head")
        if self.regions == "located":
            placed = [self._place(v[0]) for v in X]
            means = np.array(
                [
                    [v[0][p.masks[r]].mean() for r in (*names, "reference")]
                    for v, p in zip(X, placed, strict=True)
                ]
            )
            kinds = {p.reference for p in placed}
            if len(kinds) > 1:
                warnings.warn(
                    f"{sum(p.reference == 'block' for p in placed)} of {len(X)} "
                    "volumes do not hold the occipital cortex and were referenced to "
                    "the brain around the striatum, which reads higher: their ratios "
                    "are not on the others' scale (see SBRFeatures.references).",
                    UserWarning,
                    stacklevel=2,
                )
        else:
            vol = X[:, 0].reshape(len(X), -1)
            masks = {**self.masks_}
            for side in ("left", "right"):  # the fixed regions have no separate head
                masks.setdefault(f"{side}_caudate_head", masks[f"{side}_caudate"])
            means = np.stack(
                [vol[:, masks[r].ravel()].mean(1) for r in (*names, "reference")], 1
            )
        ref = np.maximum(means[:, -1], 1e-6)
        sbr = {r: means[:, k] / ref - 1 for k, r in enumerate(names)}
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
        cols += [sbr["left_caudate_head"], sbr["right_caudate_head"]]
        return np.stack(cols, axis=1).astype(np.float32)

    def _place(self, volume, geometry=None):
        return binding_ratio_regions(
            volume,
            reference=self.reference,
            scale=self.region_scale,
            geometry=geometry or self.geometry_,
        )

    def _fitting_geometry(self, X) -> str:
        """The geometry whose striatum reads the higher mean uptake over ``X``
        (relative to each volume's reference)."""
        contrast = {}
        for geometry in GEOMETRIES:
            ratios = []
            for v in X:
                m = self._place(v[0], geometry).masks
                ratios.append(
                    v[0][m["striatum"]].mean() / max(v[0][m["reference"]].mean(), 1e-6)
                )
            contrast[geometry] = float(np.mean(ratios))
        return max(contrast, key=contrast.get)

    def references(self, X) -> np.ndarray:
        """Which reference each volume's ratios use: ``"occipital"`` or ``"block"``
        (``"fixed"`` with ``regions="fixed"``)."""
        check_is_fitted(self)
        X = self._check(X)
        if self.regions != "located":
            return np.full(len(X), "fixed", dtype=object)
        return np.array([self._place(v[0]).reference for v in X], dtype=object)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output features."""
        names = [f"sbr_{r}" for r in STRIATAL_REGIONS] + [
            "putamen_caudate_ratio_left",
            "putamen_caudate_ratio_right",
            "asymmetry_index_putamen",
            "asymmetry_index_caudate",
            "sbr_min_posterior_putamen",
            "sbr_left_caudate_head",
            "sbr_right_caudate_head",
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
