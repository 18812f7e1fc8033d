"""Finding the brain and the striatum in a volume, from the data alone.

A DaTscan volume shows one dominant structure: the striatum, bilateral, hotter than
the rest of the brain, whose uptake is non-specific. :func:`locate_striatum` smooths the
volume, estimates the non-specific brain level and the brain mask (the largest
connected region above it, so that labels or a colour bar left in the images do not
count as brain), and takes the intensity-weighted centre of the hot brain voxels.
:func:`striatum_block` resamples a block centred there, sized relative to the brain,
so that the same anatomy lands in the same place whatever the field of view, head
position or zoom. :func:`block_region_masks` places the caudate, putamen and
reference regions inside such a block.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter, label
from sklearn.utils import Bunch

from spectclf.arrays import resample_box
from spectclf.regions import (
    CANONICAL_STRUCTURES,
    STRIATUM_CENTRE,
    ellipsoid_mask,
    standard_grid,
)

__all__ = [
    "BLOCK_SIZE",
    "GEOMETRIES",
    "OCCIPITAL_BOX",
    "RATIO_REGIONS",
    "STRIATAL_REGIONS",
    "block_region_masks",
    "binding_ratio_regions",
    "locate_striatum",
    "striatum_block",
]

#: Block edge as a fraction of the brain's extent on each axis: holds both striata
#: (caudate heads to posterior putamina) with a margin of non-specific brain.
BLOCK_SIZE = 0.55
#: The striatal regions of :func:`block_region_masks` that binding ratios are
#: measured in (besides the whole ``striatum`` and the ``reference``).
STRIATAL_REGIONS = (
    "left_caudate",
    "right_caudate",
    "left_putamen",
    "right_putamen",
    "left_putamen_anterior",
    "right_putamen_anterior",
    "left_putamen_posterior",
    "right_putamen_posterior",
)


#: Binding-ratio regions of the left side (x mirrored for the right): centre offset
#: from the located striatal centre and semi-axes, in units of the brain's half-extent
#: on each axis (z, y, x) — the geometry of the anatomical caudate and putamen masks
#: (MNI ICBM 2009c, as in nipy's ``mni_basal_ganglia``) on a healthy 123I-FP-CIT
#: template, measured by ``benchmarks/template_ratios.py``. The putamen is shrunk to
#: 0.9 of the mask's equivalent ellipsoid against partial volume; the caudate head is
#: the part of the caudate above the anterior commissure's level and in front of it.
RATIO_REGIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "caudate": ((-0.049, -0.078, 0.173), (0.276, 0.311, 0.142)),
    "caudate_head": ((-0.121, 0.009, 0.157), (0.146, 0.211, 0.145)),
    "putamen": ((0.021, 0.026, 0.331), (0.210, 0.176, 0.114)),
}


def _canonical_ratio_regions() -> dict[str, tuple[tuple[float, ...], ...]]:
    """The library's phantom anatomy (:data:`~spectclf.regions.CANONICAL_STRUCTURES`)
    in the units of :data:`RATIO_REGIONS`; its caudate head is the caudate's front
    half."""
    semi = np.asarray(CANONICAL_STRUCTURES["brain"][1])
    out = {}
    for name in ("caudate", "putamen"):
        c, a = CANONICAL_STRUCTURES[name]
        out[name] = (
            tuple(
                float(v) for v in ((np.asarray(c) - STRIATUM_CENTRE) / semi).round(3)
            ),
            tuple(float(v) for v in (np.asarray(a) / semi).round(3)),
        )
    (cz, cy, cx), (az, ay, ax) = out["caudate"]
    out["caudate_head"] = ((cz - az / 2, cy, cx), (az / 2, ay, ax))
    return out


#: Striatal geometries :func:`binding_ratio_regions` places: ``"anatomical"``
#: (:data:`RATIO_REGIONS`, a real brain's) and ``"canonical"`` (the library's
#: phantoms', whose caudate lies further in front of the putamen).
GEOMETRIES = {"anatomical": RATIO_REGIONS, "canonical": _canonical_ratio_regions()}
#: The occipital reference: ``(low, high)`` offsets from the striatal centre per axis
#: (z: anterior -> posterior, y: superior -> inferior, x), in units of the brain's
#: half-extent: occipital cortex behind and above the striatum, where DaTQUANT-style
#: tools and the EANM guideline measure non-specific uptake.
OCCIPITAL_BOX = ((0.82, 1.25), (-0.46, 0.05), (-0.53, 0.53))


def locate_striatum(
    volume: np.ndarray, *, smoothing: float = 1.0, min_contrast: float = 1.3
) -> Bunch:
    """Locate brain and striatum in one volume ``(D, H, W)``.

    Parameters
    ----------
    volume : ndarray of shape (D, H, W)
    smoothing : float, default=1.0
        Gaussian sigma in voxels applied before thresholding (counting noise).
    min_contrast : float, default=1.3
        The striatum is "found" when the hottest brain voxels reach this multiple of
        the non-specific brain level.

    Returns
    -------
    found : Bunch
        ``centre`` (voxel coordinates of the striatum, or of the brain when it was not
        found), ``extent`` (brain size per axis, voxels), ``brain_level``
        (non-specific uptake), ``contrast`` (peak / brain level), ``found`` (bool).

    Notes
    -----
    When no striatum stands out (contrast below ``min_contrast``: e.g. a stage-4 scan
    with almost no specific uptake), the centre falls back to the brain mask's
    centroid shifted by the canonical striatum-to-brain offset: the block then still
    covers where the striatum must be, and the near-absent uptake is itself the
    finding.
    """
    v = gaussian_filter(np.asarray(volume, dtype=np.float32), smoothing)
    top = float(np.percentile(v, 99.5))
    if top <= 0:
        centre = (np.asarray(v.shape) - 1) / 2.0
        return Bunch(
            centre=centre,
            extent=np.asarray(v.shape, float),
            brain_level=0.0,
            contrast=0.0,
            found=False,
            cut=(),
        )
    # non-specific level: the median of everything clearly above the background,
    # refined once to leave out the (low-uptake) scalp
    rough = float(np.median(v[v > 0.15 * top]))
    brain_level = float(np.median(v[v > 0.6 * rough]))
    brain = _largest_component(v > 0.6 * brain_level)
    coords = np.argwhere(brain)
    lo, hi = np.percentile(coords, [1, 99], axis=0)
    extent = np.maximum(hi - lo + 1, 4.0)
    peak = float(np.percentile(v[brain], 99.8))
    contrast = peak / max(brain_level, 1e-12)
    if contrast >= min_contrast:
        thr = brain_level + 0.5 * (peak - brain_level)
        hot = brain & (v > thr)
        w = (v[hot] - thr).astype(np.float64)
        centre = (np.argwhere(hot) * w[:, None]).sum(0) / w.sum()
        # left-right: the brain's midline, not the hot centroid, which drifts towards
        # the healthier side when one putamen has lost its uptake
        centre[2] = coords[:, 2].mean()
        found = True
    else:
        brain_centre = coords.mean(0)
        semi = np.asarray(CANONICAL_STRUCTURES["brain"][1])
        centre = brain_centre + STRIATUM_CENTRE / semi * extent / 2.0
        found = False
    return Bunch(
        centre=centre,
        extent=extent,
        brain_level=brain_level,
        contrast=contrast,
        found=found,
        cut=_cut_faces(brain),
    )


def _cut_faces(brain: np.ndarray) -> tuple[str, ...]:
    """The faces of the field of view the brain runs into (> 2 % of the face)."""
    faces = {
        "anterior": brain[0],
        "posterior": brain[-1],
        "superior": brain[:, 0],
        "inferior": brain[:, -1],
    }
    return tuple(name for name, face in faces.items() if face.mean() > 0.02)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected region of a boolean mask (the mask if empty)."""
    labels, n = label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def striatum_block(
    volume: np.ndarray,
    shape: Sequence[int],
    *,
    size: float = BLOCK_SIZE,
    location: Bunch | None = None,
) -> np.ndarray:
    """Resample a block of ``size`` x the brain extent, centred on the striatum.

    Parameters
    ----------
    volume : ndarray of shape (C, D, H, W)
    shape : tuple of 3 ints
        Output ``(D', H', W')``.
    size : float, default=BLOCK_SIZE
    location : Bunch, default=None
        From :func:`locate_striatum` (computed on the channel mean when None).

    Returns
    -------
    block : ndarray of shape (C, D', H', W'), float32
    """
    volume = np.asarray(volume, dtype=np.float32)
    loc = location or locate_striatum(volume.mean(axis=0))
    return resample_box(volume, loc.centre, size * loc.extent / 2.0, shape)


def block_region_masks(
    shape, size: float = BLOCK_SIZE, scale: float = 1.0
) -> dict[str, np.ndarray]:
    """Caudate, putamen (anterior / posterior halves) and striatum masks in a block
    made by :func:`striatum_block` of ``shape`` ``(D, H, W)``.

    The canonical regions are placed relative to the striatal centre in units of the
    brain's extent, so they mean the same on a whole-head scan and on a slab.
    ``reference`` is the rest of the block outside a dilated striatum: non-specific
    brain. ``scale`` grows (> 1) or shrinks each striatal region about its centre.
    """
    unit = size * np.asarray(CANONICAL_STRUCTURES["brain"][1])  # block half-widths
    u = standard_grid(shape)

    def region(name: str, sign: float, grow: float) -> np.ndarray:
        c, a = CANONICAL_STRUCTURES[name]
        centre = (np.array([c[0], c[1], sign * c[2]]) - STRIATUM_CENTRE) / unit
        return ellipsoid_mask(u, centre, grow * np.asarray(a) / unit)

    masks, dilated = {}, []
    zc = (CANONICAL_STRUCTURES["putamen"][0][0] - STRIATUM_CENTRE[0]) / unit[0]
    for side, sign in (("right", -1.0), ("left", 1.0)):
        for name in ("caudate", "putamen"):
            masks[f"{side}_{name}"] = region(name, sign, scale)
            dilated.append(region(name, sign, 2.0))
        put = masks[f"{side}_putamen"]
        masks[f"{side}_putamen_anterior"] = put & (u[..., 0] < zc)
        masks[f"{side}_putamen_posterior"] = put & (u[..., 0] >= zc)
    masks["striatum"] = np.logical_or.reduce(
        [masks[f"{sd}_{n}"] for sd in ("left", "right") for n in ("caudate", "putamen")]
    )
    masks["reference"] = ~np.logical_or.reduce(dilated)
    return masks


def binding_ratio_regions(
    volume: np.ndarray,
    location: Bunch | None = None,
    *,
    reference: str = "auto",
    scale: float = 1.0,
    geometry: str = "anatomical",
) -> Bunch:
    """The regions that binding ratios are measured in, placed in one volume.

    The striatal regions (:data:`RATIO_REGIONS`: caudate, caudate head, putamen and
    its anterior / posterior halves, each side) are ellipsoids placed relative to the
    striatum found by :func:`locate_striatum`, scaled by the brain's extent. The
    reference is occipital cortex (:data:`OCCIPITAL_BOX`, brain voxels above 0.85 x
    the non-specific level) whenever the field of view holds it; when it does not (the
    brain is cut at the posterior or superior face: a slab), the non-specific brain of
    the striatum block around the dilated striatum (:func:`block_region_masks`'s
    reference), which reads higher than cortex by spill-over from the striatum.

    Parameters
    ----------
    volume : ndarray of shape (D, H, W)
    location : Bunch, default=None
        From :func:`locate_striatum` (computed when None).
    reference : {"auto", "occipital", "block"}, default="auto"
        ``"occipital"`` raises when the field of view does not hold it.
    scale : float, default=1.0
        Grows (> 1) or shrinks each striatal region about its centre.
    geometry : {"anatomical", "canonical"}, default="anatomical"
        Striatal geometry (:data:`GEOMETRIES`).

    Returns
    -------
    regions : Bunch
        ``masks`` ({name: boolean (D, H, W) mask}, with ``reference``) and
        ``reference`` (``"occipital"`` or ``"block"``: which one was used).
    """
    if reference not in ("auto", "occipital", "block"):
        raise ValueError(
            f"reference must be 'auto', 'occipital' or 'block', got {reference!r}"
        )
    volume = np.asarray(volume, dtype=np.float32)
    loc = location or locate_striatum(volume)
    half = loc.extent / 2.0
    u = np.indices(volume.shape, dtype=np.float32).transpose(1, 2, 3, 0) - loc.centre
    u /= half.astype(np.float32)
    masks, dilated = {}, []
    for side, sign in (("right", -1.0), ("left", 1.0)):
        for name, (c, a) in GEOMETRIES[geometry].items():
            centre = (c[0], c[1], sign * c[2])
            masks[f"{side}_{name}"] = _at_least_one(
                ellipsoid_mask(u, centre, scale * np.asarray(a)), u, centre
            )
            dilated.append(ellipsoid_mask(u, centre, 2.0 * np.asarray(a)))
        put = masks[f"{side}_putamen"]
        split = GEOMETRIES[geometry]["putamen"][0][0]
        for half_name, part in (
            ("anterior", put & (u[..., 0] < split)),
            ("posterior", put & (u[..., 0] >= split)),
        ):
            masks[f"{side}_putamen_{half_name}"] = part if part.any() else put
    masks["striatum"] = np.logical_or.reduce(
        [masks[f"{sd}_{n}"] for sd in ("left", "right") for n in ("caudate", "putamen")]
    )
    occipital = np.logical_and.reduce(
        [
            (u[..., k] >= lo) & (u[..., k] <= hi)
            for k, (lo, hi) in enumerate(OCCIPITAL_BOX)
        ]
    ) & (volume > 0.85 * loc.brain_level)
    holds_occipital = (
        not {"posterior", "superior"} & set(loc.cut) and occipital.sum() >= 20
    )
    if reference == "occipital" and not holds_occipital:
        raise ValueError(
            "The field of view does not hold the occipital cortex (the brain is cut "
            f"at the {' and '.join(loc.cut) or 'edge'}); use reference='block' or "
            "'auto'."
        )
    if reference != "block" and holds_occipital:
        masks["reference"], used = occipital, "occipital"
    else:
        in_block = np.all(np.abs(u) <= BLOCK_SIZE, axis=-1)
        outside = ~np.logical_or.reduce(dilated)
        masks["reference"] = (
            in_block & outside if (in_block & outside).any() else outside
        )
        used = "block"
    return Bunch(masks=masks, reference=used)


def _at_least_one(mask: np.ndarray, u: np.ndarray, centre) -> np.ndarray:
    """``mask``, or the voxel nearest ``centre`` when a small volume leaves it empty."""
    if not mask.any():
        d = np.sum((u - np.asarray(centre, dtype=u.dtype)) ** 2, axis=-1)
        mask = np.zeros(mask.shape, dtype=bool)
        mask[np.unravel_index(np.argmin(d), d.shape)] = True
    return mask
