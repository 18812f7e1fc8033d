"""Draw what a viewer's export burns into slice images: a colour bar and a letter."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spectclf.colour import colormap_lut


def draw_overlays(
    root: str | Path,
    colormap: str,
    *,
    bar_width: int = 4,
    letter: str = "R",
    jpeg_quality: int = 85,
) -> dict[str, np.ndarray]:
    """Draw a colour bar and a letter into every slice image of a cohort, in place.

    Exported DaTscan slices often carry both; this makes test cohorts that do (see
    the ``overlays`` option of :func:`spectclf.load_slice_folders`).

    Parameters
    ----------
    root : str or Path
        A slice-folder cohort (as written by :func:`write_slice_folders`); every file
        named ``slice_*`` below it is redrawn.
    colormap : str
        The colormap the bar shows, lowest value at the bottom.
    bar_width : int, default=4
        Width of the bar in pixels, at the right edge.
    letter : str, default="R"
        Text drawn in white at the top left (Pillow's default font).
    jpeg_quality : int, default=85
        Quality at which JPEG slices are saved again.

    Returns
    -------
    changed : dict
        Patient folder name -> ``(H, W)`` mask of the pixels changed in any slice.
    """
    from PIL import Image, ImageDraw

    lut = colormap_lut(colormap)
    changed: dict[str, np.ndarray] = {}
    for path in sorted(Path(root).rglob("slice_*.*")):
        with Image.open(path) as img:
            before = np.asarray(img.convert("RGB"))
        drawn = before.copy()
        height, width = drawn.shape[:2]
        rows = lut[np.linspace(len(lut) - 1, 0, height).astype(int)]
        drawn[:, width - bar_width :] = rows[:, None, :]
        out = Image.fromarray(drawn)
        ImageDraw.Draw(out).text((1, 0), letter, fill=(255, 255, 255))
        jpeg = path.suffix.lower() in (".jpg", ".jpeg")
        out.save(path, **({"quality": jpeg_quality} if jpeg else {}))
        diff = (np.asarray(out) != before).any(axis=-1)
        name = path.parent.name
        changed[name] = changed[name] | diff if name in changed else diff
    return changed
