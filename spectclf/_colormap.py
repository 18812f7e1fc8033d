"""Invert a matplotlib colormap: map rendered RGB colours back to scalar intensity."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

_N_LUT = 256


def colormap_lut(colormap: str, n: int = _N_LUT) -> np.ndarray:
    """Return the ``(n, 3)`` uint8 RGB look-up table of a named matplotlib colormap."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError:
        raise ValueError(
            f"colormap={colormap!r} is not a matplotlib colormap name; "
            "expected e.g. 'hot', 'jet', 'viridis', 'gray'."
        ) from None
    rgb = cmap(np.linspace(0.0, 1.0, n))[:, :3]
    return np.round(rgb * 255).astype(np.uint8)


def invert_colormap(rgb: np.ndarray, colormap: str, n: int = _N_LUT) -> np.ndarray:
    """Map RGB pixels to the position of the nearest colour in a colormap's LUT.

    Parameters
    ----------
    rgb : ndarray of shape (..., 3)
        Colours, uint8 in [0, 255] or float in [0, 1].
    colormap : str
        Name of the matplotlib colormap the image was rendered with.
    n : int, default=256
        Number of LUT entries; the quantisation step of the result is ``1 / (n - 1)``.

    Returns
    -------
    intensity : ndarray of shape (...), float32 in [0, 1]
    """
    rgb = np.asarray(rgb)
    if rgb.shape[-1] != 3:
        raise ValueError(f"expected RGB values in the last axis, got shape {rgb.shape}")
    if rgb.dtype.kind == "f":
        rgb = np.clip(np.round(rgb * 255), 0, 255)
    rgb = rgb.astype(np.int64)
    # Renders hold few distinct colours: look up each once, then scatter back.
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    uniq, inverse = np.unique(packed.ravel(), return_inverse=True)
    colours = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
    lut = colormap_lut(colormap, n).astype(np.float64)
    _, idx = cKDTree(lut).query(colours.astype(np.float64))
    values = (idx / (n - 1)).astype(np.float32)
    return values[inverse].reshape(packed.shape)
