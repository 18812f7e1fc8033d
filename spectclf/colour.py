"""Colour: map rendered slice colours back to the scalar intensity they encode.

Users' slices come from a 3-D rendering with a colormap. :func:`invert_colormap` finds,
for every colour, the nearest entry of a matplotlib colormap's look-up table;
:func:`detect_colormap` picks the map that best explains a cohort's colours
(``colormap="auto"``, the library-wide default) and reports how far they lie from it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
from scipy.spatial import cKDTree

from spectclf.exceptions import SpectDataError

__all__ = [
    "DEFAULT_COLOR",
    "DEFAULT_COLORMAP",
    "LUMA_WEIGHTS",
    "OFF_TABLE_THRESHOLD",
    "auto_candidates",
    "colormap_lut",
    "canvas_mask",
    "detect_canvas",
    "detect_colormap",
    "invert_colormap",
    "to_intensity",
]

#: One colour handling for library, CLI and demo: colours are mapped back through
#: the colormap that best explains the cohort (grayscale images pass through).
DEFAULT_COLOR = "colormap"
DEFAULT_COLORMAP = "auto"
#: ITU-R 601 luminance, as Pillow's "L" mode.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: Mean distance (0-255 RGB units) from a colour to the nearest table entry above
#: which a patient is said to lie off the colormap's table. JPEG at quality 75 of a
#: "jet" rendering measured 5.9-7.4; a wrong colormap measures tens.
OFF_TABLE_THRESHOLD = 10.0
_N_LUT = 256
#: A colour within this distance (0-255 units) of the canvas colour is canvas.
CANVAS_TOLERANCE = 8.0


def colormap_lut(colormap: str, n: int = _N_LUT) -> np.ndarray:
    """Return the ``(n, 3)`` uint8 RGB look-up table of a named matplotlib colormap."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError:
        raise ValueError(
            f"colormap={colormap!r} is not a matplotlib colormap name; "
            "expected e.g. 'auto', 'hot', 'jet', 'viridis', 'gray'."
        ) from None
    rgb = cmap(np.linspace(0.0, 1.0, n))[:, :3]
    return np.round(rgb * 255).astype(np.uint8)


def auto_candidates() -> list[str]:
    """The matplotlib colormaps ``colormap="auto"`` chooses among.

    Only maps that can encode an intensity: a map is left out when it has fewer than
    64 colours (qualitative maps such as ``"tab10"``), when it returns to its first
    colour (cyclic maps such as ``"hsv"``, ``"twilight"``) or when more than 2 % of
    its colours recur at least a tenth of the range away (``"flag"``, ``"prism"``):
    no intensity can be read back through them, and their many repeated colours fit
    JPEG noise or a black canvas better than the map a scan was rendered with.
    """
    return list(_auto_candidates())


@functools.cache
def _auto_candidates() -> tuple[str, ...]:
    import matplotlib

    return tuple(n for n in sorted(matplotlib.colormaps) if _invertible(n))


def _invertible(name: str) -> bool:
    import matplotlib

    if getattr(matplotlib.colormaps[name], "N", _N_LUT) < 64:
        return False
    lut = colormap_lut(name).astype(np.float64)
    if np.linalg.norm(lut[0] - lut[-1]) < 40:
        return False
    pos = np.arange(len(lut))
    dist = np.linalg.norm(lut[:, None] - lut[None], axis=-1)
    dist[np.abs(pos[:, None] - pos[None]) < len(lut) // 10] = np.inf
    return float((dist.min(axis=1) < 10).mean()) <= 0.02


def detect_canvas(rgb: np.ndarray) -> np.ndarray | None:
    """The canvas colour of rendered slices: pure black or white, or None.

    A viewer often paints the space outside the scan in black or white, colours that
    need not belong to the colormap (``"hot"`` starts at a dark red, and white is its
    hottest colour). The canvas is pure black or pure white when the colours within
    ``CANVAS_TOLERANCE`` of it make the most frequent colour of the sample and at
    least 5 % of it; it reads as intensity 0.
    """
    colours, _, counts = _unique_colours(np.asarray(rgb).reshape(-1, 3))
    for pure in (0.0, 255.0):
        near = np.linalg.norm(colours - pure, axis=1) <= CANVAS_TOLERANCE
        if near[np.argmax(counts)] and counts[near].sum() >= 0.05 * counts.sum():
            return np.full(3, pure)
    return None


def canvas_mask(
    slices: np.ndarray, canvas: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Pixels of ``(..., H, W, 3)`` slices that are canvas, not scan.

    A group of pixels (connected within its slice) within ``CANVAS_TOLERANCE`` of the
    ``canvas`` colour is canvas when it touches the image border or when what
    surrounds it reads low (below 0.5: the canvas showing through a hole in
    low-count tissue). A white peak inside the striatum is ``"hot"``'s hottest
    colour, surrounded by hot colours: not canvas. ``values`` are the slices read
    through the colormap (:func:`invert_colormap`); only pixels it reads above 0.1
    are marked (a black canvas already reads about 0 in most maps).
    """
    from scipy import ndimage

    slices = np.asarray(slices)
    dist = np.linalg.norm(slices.astype(np.float32) - canvas, axis=-1)
    near = (dist <= CANVAS_TOLERANCE) & (values > 0.1)
    shape = near.shape
    near, values = near.reshape(-1, *shape[-2:]), values.reshape(-1, *shape[-2:])
    out = np.zeros_like(near)
    for k, image in enumerate(near):
        if not image.any():
            continue
        labels, n = ndimage.label(image)
        keep = np.zeros(n + 1, dtype=bool)
        keep[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = (
            True
        )
        # the mean reading of each group's one-pixel ring
        grown = ndimage.grey_dilation(labels, size=(3, 3))
        ring = (grown > 0) & (labels == 0)
        total = np.bincount(grown[ring], weights=values[k][ring], minlength=n + 1)
        count = np.bincount(grown[ring], minlength=n + 1)
        keep |= (count > 0) & (total < 0.5 * count)
        keep[0] = False
        out[k] = keep[labels]
    return out.reshape(shape)


def _unique_colours(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct colours of ``(..., 3)`` data, the inverse index and their counts."""
    rgb = np.asarray(rgb)
    if rgb.dtype.kind == "f":
        rgb = np.clip(np.round(rgb * 255), 0, 255)
    rgb = rgb.astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    uniq, inverse, counts = np.unique(
        packed.ravel(), return_inverse=True, return_counts=True
    )
    colours = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
    return colours.astype(np.float64), inverse.reshape(packed.shape), counts


def invert_colormap(
    rgb: np.ndarray,
    colormap: str,
    n: int = _N_LUT,
    *,
    return_residual: bool = False,
    return_distance: bool = False,
):
    """Map RGB pixels to the position of the nearest colour in a colormap's LUT.

    Parameters
    ----------
    rgb : ndarray of shape (..., 3)
        Colours, uint8 in [0, 255] or float in [0, 1].
    colormap : str
        Name of the matplotlib colormap the image was rendered with.
    n : int, default=256
        Number of LUT entries; the quantisation step of the result is ``1 / (n - 1)``.
    return_residual : bool, default=False
        Also return the pixel-weighted mean distance (0-255 units) between the
        colours and their nearest table entries.
    return_distance : bool, default=False
        Return, instead of the residual, each pixel's distance (0-255 units) to its
        nearest table entry (for a residual that leaves some pixels out).

    Returns
    -------
    intensity : ndarray of shape (...), float32 in [0, 1]
    residual : float
        Only with ``return_residual=True``.
    distance : ndarray of shape (...), float32
        Only with ``return_distance=True``.

    Examples
    --------
    >>> import numpy as np
    >>> lut = colormap_lut("hot")
    >>> invert_colormap(lut[[0, 255]], "hot").tolist()
    [0.0, 1.0]
    """
    rgb = np.asarray(rgb)
    if rgb.shape[-1] != 3:
        raise ValueError(f"expected RGB values in the last axis, got shape {rgb.shape}")
    colours, inverse, counts = _unique_colours(rgb)
    lut = colormap_lut(colormap, n).astype(np.float64)
    dist, idx = cKDTree(lut).query(colours)
    values = (idx / (n - 1)).astype(np.float32)[inverse]
    if return_distance:
        return values, dist.astype(np.float32)[inverse]
    if return_residual:
        return values, float(np.average(dist, weights=counts))
    return values


def detect_colormap(
    rgb: np.ndarray, candidates: Iterable[str] | None = None
) -> tuple[str, float]:
    """The matplotlib colormap whose look-up table best explains the colours.

    Every candidate's table is searched for each distinct colour; the map with the
    smallest pixel-weighted mean distance wins. Maps that explain the colours about
    equally well (e.g. ``"gray"`` and its reverse ``"binary"``) are told apart by
    the background: the most frequent colour must map to low intensity, as in a
    SPECT rendering where empty space carries no counts.

    Parameters
    ----------
    rgb : ndarray of shape (..., 3)
        Sample colours, uint8 or float in [0, 1].
    candidates : iterable of str, default=None
        Colormap names to consider; None takes :func:`auto_candidates` (every
        matplotlib colormap that can encode an intensity).

    Returns
    -------
    name : str
    residual : float
        Pixel-weighted mean distance (0-255 RGB units) to the chosen table.

    Examples
    --------
    >>> import numpy as np
    >>> rgb = colormap_lut("jet")[np.arange(0, 256, 3)]
    >>> detect_colormap(rgb)[0]
    'jet'
    """
    colours, _, counts = _unique_colours(np.asarray(rgb).reshape(-1, 3))
    names = sorted(candidates if candidates is not None else auto_candidates())
    if not names:
        raise ValueError("detect_colormap needs at least one candidate colormap")
    background = colours[np.argmax(counts)]
    scored = []
    for name in names:
        lut = colormap_lut(name).astype(np.float64)
        tree = cKDTree(lut)
        dist, _ = tree.query(colours)
        residual = float(np.average(dist, weights=counts))
        bg_level = tree.query(background)[1] / (len(lut) - 1)
        scored.append((residual, bg_level, name))
    best = min(r for r, _, _ in scored)
    # within a quarter of a colour step of the best: a tie, settled by the background
    ties = [s for s in scored if s[0] <= best + 0.25]
    residual, _, name = min(ties, key=lambda s: (s[1], s[0], len(s[2]), s[2]))
    return name, residual


def to_intensity(
    image: np.ndarray, color: str, colormap: str, *, source: object = "image"
) -> np.ndarray:
    """One decoded slice ``(H, W)`` or ``(H, W, 3)`` in [0, 1] as ``(C, H, W)`` float32.

    ``color="rgb"`` keeps three channels (0-255, as decoded); ``"gray"`` takes
    luminance in [0, 1], the range grayscale files decode to, so a cohort mixing
    grayscale and colour files has one scale; ``"colormap"`` maps colours back
    through ``colormap`` (already resolved, not ``"auto"``). Grayscale images pass
    through as intensity except under ``"rgb"``.
    """
    if image.ndim == 2:
        if color == "rgb":
            raise SpectDataError(
                f"{source} has 1 channel (grayscale) but color='rgb' needs 3 channels "
                "(RGB); use color='gray' or color='colormap'."
            )
        return image.astype(np.float32)[None]
    if color == "rgb":
        return image.astype(np.float32).transpose(2, 0, 1)
    if color == "gray":
        luma = np.asarray(LUMA_WEIGHTS, np.float32) / np.float32(255.0)
        return (image.astype(np.float32) @ luma)[None]
    return invert_colormap(image, colormap)[None]
