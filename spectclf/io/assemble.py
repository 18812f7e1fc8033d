"""Assembling a cohort: resampling to one grid (with :mod:`spectclf.arrays`'
resampler), stacking and the result Bunch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.utils import Bunch

from spectclf.arrays import check_shape3, resample_volumes
from spectclf.exceptions import SpectDataError

__all__ = ["centre_fit", "make_bunch", "stack_volumes", "to_spacing"]


def to_spacing(
    volume: np.ndarray, spacing: Sequence[float], target_spacing: Sequence[float]
) -> np.ndarray:
    """Resample one ``(C, D, H, W)`` volume from ``spacing`` to ``target_spacing`` mm
    per voxel (the field of view is kept; the shape follows)."""
    shape = [
        max(1, round(n * s / t))
        for n, s, t in zip(volume.shape[1:], spacing, target_spacing, strict=True)
    ]
    return resample_volumes(volume[None], shape)[0]


def centre_fit(volume: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Crop or zero-pad one ``(C, D, H, W)`` volume about its centre to ``shape``:
    a fixed physical field when the voxels already have a common spacing."""
    out = np.zeros((volume.shape[0], *shape), dtype=np.float32)
    src, dst = [slice(None)], [slice(None)]
    for n, m in zip(volume.shape[1:], shape, strict=True):
        k = min(n, m)
        a, b = (n - k) // 2, (m - k) // 2
        src.append(slice(a, a + k))
        dst.append(slice(b, b + k))
    out[tuple(dst)] = volume[tuple(src)]
    return out


def stack_volumes(
    volumes: list[np.ndarray],
    patients: list[str],
    target_shape: Sequence[int] | None,
) -> np.ndarray:
    """Stack ``(C, D, H, W)`` volumes; resample to ``target_shape`` or list misfits.

    ``volumes`` is consumed: each item is released (set to None) once copied into
    the float32 result, so that a cohort is not held twice in memory.
    """
    if target_shape is not None:
        target_shape = check_shape3(target_shape, "target_shape")
        for i, v in enumerate(volumes):
            volumes[i] = resample_volumes(v[None], target_shape)[0]
    for what, key in (("channel counts", lambda v: v.shape[0]), ("shapes", None)):
        sizes = Counter(key(v) if key else v.shape[1:] for v in volumes)
        if len(sizes) <= 1:
            continue
        common = sizes.most_common(1)[0][0]
        odd = [
            f"{p} ({v.shape[0]})" if key else f"{p} {v.shape[1:]}"
            for p, v in zip(patients, volumes, strict=True)
            if (key(v) if key else v.shape[1:]) != common
        ]
        if key:
            raise SpectDataError(
                f"Mixed {what}: most patients have {common} channel(s), but "
                f"these differ: {', '.join(odd)}."
            )
        raise SpectDataError(
            f"Patients differ in volume shape (slices, height, width): most are "
            f"{common}, but these are not: {', '.join(odd)}. Pass "
            f"target_shape={common} (or another (D, H, W)) to resample all of them."
        )
    out = np.empty((len(volumes), *volumes[0].shape), dtype=np.float32)
    for i in range(len(volumes)):
        out[i], volumes[i] = volumes[i], None
    return out


def make_bunch(X, stages, patients, paths, problems, descr, **extra) -> Bunch:
    """The loaders' result: ``X``, ``y``, ``groups``, ``paths`` and the rest."""
    y = np.asarray(stages, dtype=np.int64)
    return Bunch(
        X=X,
        y=y,
        groups=np.asarray(patients, dtype=object),
        paths=[str(p) for p in paths],
        target_names=[f"stage {s}" for s in np.unique(y)],
        skipped=problems.skipped,
        notes=problems.notes,
        DESCR=descr,
        **extra,
    )
