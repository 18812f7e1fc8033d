"""The standard volume space: canonical head, striatum and reference regions.

Coordinates are ``(z, y, x)`` = (anterior -> posterior, superior -> inferior,
right -> left), each spanning [-1, 1] over the field of view. The phantom generator draws
its anatomy from here, and :class:`spectclf.SBRFeatures` measures in the same regions.
"""

from __future__ import annotations

import numpy as np

# name: (centre (z, y, x), semi-axes (z, y, x)); striatal x is for the left side,
# mirrored (x -> -x) for the right.
CANONICAL_STRUCTURES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "head": ((0.0, 0.0, 0.0), (0.92, 0.85, 0.80)),
    "brain": ((0.0, 0.0, 0.0), (0.84, 0.76, 0.70)),
    "caudate": ((-0.25, -0.08, 0.13), (0.14, 0.13, 0.07)),
    "putamen": ((0.0, 0.04, 0.28), (0.26, 0.12, 0.065)),
    "occipital": ((0.60, 0.05, 0.0), (0.12, 0.20, 0.35)),
}

#: Centre of the striatum (both sides) in canonical coordinates: where the phantoms
#: put it and where :mod:`spectclf.anatomy` expects it relative to the brain.
STRIATUM_CENTRE = np.array([-0.1, 0.0, 0.0])


def ellipsoid_mask(q: np.ndarray, centre, semi_axes) -> np.ndarray:
    """Boolean mask of points ``q`` (..., 3) inside an axis-aligned ellipsoid."""
    d = (q - np.asarray(centre, dtype=q.dtype)) / np.asarray(semi_axes, dtype=q.dtype)
    return np.einsum("...i,...i->...", d, d) <= 1.0


def standard_grid(shape) -> np.ndarray:
    """Canonical coordinates ``(D, H, W, 3)`` of every voxel of a volume of ``shape``."""
    axes = [np.linspace(-1, 1, int(n), dtype=np.float32) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def region_masks(shape, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Masks of the SBR regions in a volume of ``shape`` ``(D, H, W)``.

    Returns ``left_caudate``, ``right_caudate``, ``left_putamen``, ``right_putamen``,
    ``left_putamen_anterior`` / ``_posterior`` (and right), ``striatum`` and
    ``reference`` (occipital). ``scale`` grows (> 1) or shrinks every striatal region
    about its own centre, to allow for head-size variation and partial volume.
    """
    q = standard_grid(shape)
    s = CANONICAL_STRUCTURES
    masks = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        for name in ("caudate", "putamen"):
            c, a = s[name]
            centre = (c[0], c[1], sign * c[2])
            masks[f"{side}_{name}"] = ellipsoid_mask(q, centre, np.multiply(a, scale))
        c = s["putamen"][0]
        put = masks[f"{side}_putamen"]
        masks[f"{side}_putamen_anterior"] = put & (q[..., 0] < c[0])
        masks[f"{side}_putamen_posterior"] = put & (q[..., 0] >= c[0])
    masks["striatum"] = np.logical_or.reduce(
        [masks[f"{sd}_{n}"] for sd in ("left", "right") for n in ("caudate", "putamen")]
    )
    masks["reference"] = ellipsoid_mask(q, *s["occipital"])
    return masks
