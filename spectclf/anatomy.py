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
from scipy.ndimage import gaussian_filter, label, map_coordinates
from sklearn.utils import Bunch

from spectclf.regions import (
    CANONICAL_STRUCTURES,
    STRIATUM_CENTRE,
    ellipsoid_mask,
    standard_grid,
)

__all__ = [
    "BLOCK_SIZE",
    "STRIATAL_REGIONS",
    "block_region_masks",
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
    )


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
    half = size * loc.extent / 2.0
    axes = [
        np.linspace(c - h, c + h, int(n), dtype=np.float32)
        for c, h, n in zip(loc.centre, half, shape, strict=True)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"))
    return np.stack(
        [map_coordinates(ch, grid, order=1, mode="nearest") for ch in volume]
    ).astype(np.float32)


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
