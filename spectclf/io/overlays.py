"""Overlays burnt into exported slices: colour bars, orientation letters, labels.

A viewer's export often carries, on every slice, a colour bar and text (``R``/``L``,
the patient's name, a scale). Read through the colormap, a colour bar becomes a bright
bar running through the whole volume — brighter than the striatum at its top — and
labels become hot specks: the striatum localiser and the binding ratios then measure
the wrong thing, silently.

What tells an overlay from a scan is that it does not change from slice to slice.
Tissue does: 30 coronal slices cross 60-150 mm of anatomy, counting noise and
compression. :func:`find_static_overlays` marks the pixels whose colour is the same
(within ``tolerance`` on the 0-255 scale) on every slice and which are not the
background, keeps only groups of at least ``min_pixels`` such pixels (a lone static
pixel is chance), grows them through nearly static pixels (a JPEG-compressed bar) and
widens them by ``grow`` pixels to take in anti-aliased text edges and JPEG ringing.
:func:`fill_overlays` then replaces them from the pixels beside them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["MIN_OVERLAY_SLICES", "fill_overlays", "find_static_overlays"]

#: Below this many slices a static pixel is too likely to be tissue: nothing is marked.
MIN_OVERLAY_SLICES = 8
#: Intensity (in [0, 1]) above the darkest level under which a static pixel counts
#: as background.
_BACKGROUND = 0.02


def find_static_overlays(
    slices: np.ndarray,
    intensity: np.ndarray,
    *,
    tolerance: float = 4.0,
    spread_tolerance: float = 20.0,
    loose_tolerance: float = 40.0,
    reach: int = 3,
    min_pixels: int = 4,
    grow: int = 1,
) -> np.ndarray:
    """Mask ``(H, W)`` of the pixels that hold an overlay on every slice.

    Parameters
    ----------
    slices : ndarray of shape (D, H, W, 3) uint8 or (D, H, W) float in [0, 1]
        A patient's decoded slice images (:func:`spectclf.io.slices.decode_slice`).
    intensity : ndarray of shape (D, H, W)
        The same slices as intensity in [0, 1]: what separates background (static
        at the darkest level, harmless) from an overlay (static and brighter).
    tolerance : float, default=4.0
        Largest change of any colour channel across the slices, on the 0-255 scale,
        for a pixel to count as static: the seeds of the mask. JPEG moves a static
        colour bar by up to 10-30 (quality 75-85, most in saturated colours); tissue
        in a smooth slab measured no static pixel at 4 and ~50 per patient at 8, so
        seeds are taken strictly and the mask then grows through looser pixels.
    spread_tolerance : float, default=20.0
        From the static groups, the mask spreads without limit through pixels that
        change by at most this much, and then up to ``reach`` pixels further through
        pixels that change by at most ``loose_tolerance``: the parts of a
        JPEG-compressed colour bar whose colours (bright ones more) or 8x8 blocks
        (shared with tissue) change a little from slice to slice.
    loose_tolerance : float, default=40.0
    reach : int, default=3
        How far (pixels) the mask may spread through such pixels.
    min_pixels : int, default=4
        Smallest group of static pixels (8-connected) taken for an overlay.
    grow : int, default=1
        Pixels by which each group is widened.

    Returns
    -------
    mask : ndarray of shape (H, W), bool
        All False when the patient has fewer than ``MIN_OVERLAY_SLICES`` slices.
    """
    slices = np.asarray(slices)
    if slices.shape[0] < MIN_OVERLAY_SLICES:
        return np.zeros(slices.shape[1:3], dtype=bool)
    scale = 1.0 if slices.dtype == np.uint8 else 255.0
    spread = (slices.max(axis=0).astype(np.float32) - slices.min(axis=0)) * scale
    if spread.ndim == 3:
        spread = spread.max(axis=-1)
    level = np.asarray(intensity).mean(axis=0)
    # the background is the darkest level, not always 0 (the luminance of a colormap
    # whose lowest colour is not black)
    foreground = level - level.min() > _BACKGROUND
    eight = np.ones((3, 3), dtype=bool)
    labels, n = ndimage.label((spread <= tolerance) & foreground, structure=eight)
    if n == 0:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    big = sizes >= min_pixels
    big[0] = False
    mask = big[labels]
    if not mask.any():
        return mask
    near = (spread <= spread_tolerance) & foreground
    mask = ndimage.binary_propagation(mask, structure=eight, mask=near | mask)
    if reach > 0:
        loose = (spread <= loose_tolerance) & foreground
        mask = ndimage.binary_dilation(
            mask, structure=eight, iterations=reach, mask=loose | mask
        )
    if grow > 0:
        mask = ndimage.binary_dilation(mask, iterations=grow)
    return mask


def fill_overlays(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the ``(H, W)`` ``mask`` pixels of every slice of ``volume`` ``(C, D, H,
    W)`` from the pixels beside them.

    A masked pixel with unmasked pixels on both sides along its row (or column) takes
    the mean of the nearest two (of both pairs, where both exist): a crosshair or a
    letter over the head becomes the tissue around it, so the brain stays one piece.
    A pixel without such a pair — a colour bar along the image's edge — becomes 0
    (background). Returns a new array (``volume`` itself when the mask is empty).
    """
    if not mask.any():
        return volume
    rows, cols = np.nonzero(mask)
    total = np.zeros((*volume.shape[:-2], rows.size), dtype=np.float64)
    count = np.zeros(rows.size, dtype=np.int64)
    for axis in (0, 1):
        # along rows (axis 1) or columns (axis 0): the nearest unmasked position on
        # each side of every masked pixel
        m = mask if axis == 1 else mask.T
        n = m.shape[1]
        pos = np.broadcast_to(np.arange(n), m.shape)
        before = np.maximum.accumulate(np.where(m, -1, pos), axis=1)
        after = np.minimum.accumulate(np.where(m, n, pos)[:, ::-1], axis=1)[:, ::-1]
        line, at = (rows, cols) if axis == 1 else (cols, rows)
        lo, hi = before[line, at], after[line, at]
        pair = (lo >= 0) & (hi < n)
        lo, hi = lo.clip(0), hi.clip(max=n - 1)
        if axis == 1:
            first, second = volume[..., rows, lo], volume[..., rows, hi]
        else:
            first, second = volume[..., lo, cols], volume[..., hi, cols]
        total += np.where(pair, (first + second) / 2.0, 0.0)
        count += pair
    out = volume.copy()
    out[..., rows, cols] = total / np.maximum(count, 1)
    return out
