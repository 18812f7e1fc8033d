"""Volume arrays: the one rule for accepted shapes and the library's resamplers.

A core module that both the loaders (:mod:`spectclf.io`) and the estimators
(:mod:`spectclf.transforms`, :class:`~spectclf.Spect3DClassifier`, the samplers) use,
so that neither depends on the other. Two resamplers live here, both trilinear:
:func:`resample_volumes` maps a whole field of view onto a grid (loaders,
:class:`~spectclf.VolumeResizer`); :func:`resample_box` samples a box of arbitrary,
sub-voxel centre and size that may reach past the volume's edge (the striatum block
of :func:`spectclf.anatomy.striatum_block`), which a whole-volume interpolation
cannot express.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["as_volumes", "check_shape3", "resample_box", "resample_volumes"]


def as_volumes(X, name: str = "X", *, tables: bool = False) -> np.ndarray:
    """The accepted input shapes, as float32 volumes ``(n, C, D, H, W)``.

    ``(n, D, H, W)`` gains a channel axis; ``(n, C, D, H, W)`` is kept. With
    ``tables=True`` (the classifier, which also trains on feature tables) a 2-D
    ``(n, f)`` becomes ``(n, 1, 1, 1, f)`` and a 3-D ``(n, H, W)`` ``(n, 1, 1, H, W)``.

    Parameters
    ----------
    X : array-like
    name : str, default="X"
        Named in the error messages.
    tables : bool, default=False
        Accept 2-D and 3-D input as well.

    Returns
    -------
    volumes : ndarray of shape (n, C, D, H, W), float32

    Raises
    ------
    ValueError
        Non-numeric, empty, non-finite, or of another number of dimensions.
    """
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    low = 2 if tables else 4
    if not low <= X.ndim <= 5:
        accepted = "(n, f), (n, H, W), " if tables else ""
        raise ValueError(
            f"{name} must be volumes {accepted}(n, D, H, W) or (n, C, D, H, W), "
            f"got shape {X.shape}"
        )
    X = X.reshape(X.shape[:1] + (1,) * (5 - X.ndim) + X.shape[1:])
    if len(X) == 0:
        raise ValueError(f"{name} holds 0 volumes")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def check_shape3(shape, name: str) -> tuple[int, int, int]:
    """``shape`` as three positive ints ``(D, H, W)``, or a ValueError naming ``name``."""
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or min(out) < 1:
        raise ValueError(f"{name} must be three positive ints (D, H, W), got {shape!r}")
    return out


def resample_volumes(
    X: np.ndarray, shape: Sequence[int], chunk: int = 32
) -> np.ndarray:
    """Trilinear resampling of ``(n, C, D, H, W)`` to ``(n, C, *shape)``, float32.

    The whole field of view onto a grid (loaders and :class:`~spectclf.VolumeResizer`):
    torch's trilinear interpolation with ``align_corners=False``, so voxel centres
    keep their physical positions; ``chunk`` volumes at a time bound the memory.
    """
    import torch
    import torch.nn.functional as F

    shape = check_shape3(shape, "shape")
    X = np.asarray(X, dtype=np.float32)
    if X.shape[2:] == shape:
        return X
    out = np.empty((*X.shape[:2], *shape), dtype=np.float32)
    for start in range(0, len(X), chunk):
        block = torch.from_numpy(np.ascontiguousarray(X[start : start + chunk]))
        out[start : start + chunk] = F.interpolate(
            block, size=shape, mode="trilinear", align_corners=False
        ).numpy()
    return out


def resample_box(
    volume: np.ndarray,
    centre: Sequence[float],
    half: Sequence[float],
    shape: Sequence[int],
) -> np.ndarray:
    """Trilinear samples of the box ``centre +- half`` (voxels, per axis) of one
    ``(C, D, H, W)`` volume on a ``shape`` grid whose end points lie on the box's
    faces; outside the volume the nearest edge voxel is read.

    Returns
    -------
    block : ndarray of shape (C, D', H', W'), float32
        ``(D', H', W')`` is ``shape``.
    """
    from scipy.ndimage import map_coordinates

    volume = np.asarray(volume, dtype=np.float32)
    axes = [
        np.linspace(c - h, c + h, int(n), dtype=np.float32)
        for c, h, n in zip(centre, half, shape, strict=True)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"))
    return np.stack(
        [map_coordinates(ch, grid, order=1, mode="nearest") for ch in volume]
    ).astype(np.float32)
