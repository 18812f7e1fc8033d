"""Colour: map rendered slice colours back to the scalar intensity they encode.

Users' slices come from a 3-D rendering with a colormap. :func:`invert_colormap` finds,
for every colour, the nearest entry of a matplotlib colormap's look-up table;
:func:`detect_colormap` picks the map that best explains a cohort's colours
(``colormap="auto"``, the library-wide default) and reports how far they lie from it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.spatial import cKDTree

from spectclf.exceptions import SpectDataError

__all__ = [
    "DEFAULT_COLOR",
    "DEFAULT_COLORMAP",
    "LUMA_WEIGHTS",
    "OFF_TABLE_THRESHOLD",
    "colormap_lut",
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

    Returns
    -------
    intensity : ndarray of shape (...), float32 in [0, 1]
    residual : float
        Only with ``return_residual=True``.

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
        Colormap names to consider; None takes every colormap matplotlib registers.

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
    import matplotlib

    colours, _, counts = _unique_colours(np.asarray(rgb).reshape(-1, 3))
    names = sorted(candidates if candidates is not None else matplotlib.colormaps)
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

    ``color="rgb"`` keeps three channels; ``"gray"`` takes luminance; ``"colormap"``
    maps colours back through ``colormap`` (already resolved, not ``"auto"``).
    Grayscale images pass through as intensity except under ``"rgb"``.
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
        return (image.astype(np.float32) @ np.asarray(LUMA_WEIGHTS, np.float32))[None]
    return invert_colormap(image, colormap)[None]
