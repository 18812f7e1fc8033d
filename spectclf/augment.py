"""On-the-fly training augmentation of volume batches, seeded and batched on the device.

One random affine per volume (left-right flip, small rotations, shifts and scaling) is
applied to the whole batch with :func:`torch.nn.functional.affine_grid` and
``grid_sample`` (trilinear), then intensity scaling and Gaussian noise. Nothing loops
over samples in Python.
"""

from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval

__all__ = ["VolumeAugmenter", "resolve_augment"]


class VolumeAugmenter(BaseEstimator):
    """Random, label-preserving transforms of volume batches ``(N, C, D, H, W)``.

    Set any strength to 0 to switch that transform off.

    Parameters
    ----------
    flip : float, default=0.5
        Probability of a left-right flip (the W axis). Stages do not depend on the
        symptom side, so flipping preserves the label.
    rotate : float, default=5.0
        Maximum rotation in degrees about each axis (uniform in ``[-rotate, rotate]``).
    shift : float, default=0.03
        Maximum translation as a fraction of the field of view, per axis.
    scale : float, default=0.05
        Maximum relative zoom (uniform in ``[1 - scale, 1 + scale]``), below 1.
    intensity : float, default=0.1
        Maximum relative intensity scaling per volume.
    noise : float, default=0.02
        Standard deviation of additive Gaussian noise, relative to each volume's
        standard deviation.
    resample_fraction : float, default=1.0
        Share of the volumes that get the costly resampled transforms (rotation,
        zoom, sub-voxel shift: ``grid_sample``); the others are only flipped (an
        exact voxel permutation), scaled in intensity and noised. 0.5 halves the
        augmentation's cost; the default keeps every volume resampled, as
        benchmarked.

    Examples
    --------
    >>> import torch
    >>> aug = VolumeAugmenter(rotate=0, shift=0, scale=0, intensity=0, noise=0, flip=1)
    >>> x = torch.arange(4.0).reshape(1, 1, 1, 1, 4)
    >>> aug(x, generator=torch.Generator().manual_seed(0)).flatten().tolist()
    [3.0, 2.0, 1.0, 0.0]
    """

    _parameter_constraints: dict = {
        "flip": [Interval(Real, 0, 1, closed="both")],
        "rotate": [Interval(Real, 0, None, closed="left")],
        "shift": [Interval(Real, 0, None, closed="left")],
        # a zoom factor 1 - scale must stay positive
        "scale": [Interval(Real, 0, 1, closed="left")],
        "intensity": [Interval(Real, 0, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "resample_fraction": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        *,
        flip: float = 0.5,
        rotate: float = 5.0,
        shift: float = 0.03,
        scale: float = 0.05,
        intensity: float = 0.1,
        noise: float = 0.02,
        resample_fraction: float = 1.0,
    ):
        self.flip = flip
        self.rotate = rotate
        self.shift = shift
        self.scale = scale
        self.intensity = intensity
        self.noise = noise
        self.resample_fraction = resample_fraction

    def _affine(self, n: int, g: torch.Generator) -> torch.Tensor | None:
        """Random ``(n, 3, 4)`` matrices for ``affine_grid`` (x=W, y=H, z=D order)."""
        if not (self.flip or self.rotate or self.shift or self.scale):
            return None

        def uniform(low, high, *shape):
            return low + (high - low) * torch.rand(*shape, generator=g)

        theta = torch.eye(3).repeat(n, 1, 1)
        if self.rotate:
            a = torch.deg2rad(uniform(-self.rotate, self.rotate, n, 3))
            c, s = torch.cos(a), torch.sin(a)
            one, zero = torch.ones(n), torch.zeros(n)
            rx = torch.stack(
                [one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], 1
            ).view(n, 3, 3)
            ry = torch.stack(
                [c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], 1
            ).view(n, 3, 3)
            rz = torch.stack(
                [c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], 1
            ).view(n, 3, 3)
            theta = rz @ ry @ rx
        if self.scale:
            zoom = uniform(1 - self.scale, 1 + self.scale, n, 1, 1)
            theta = theta / zoom
        if self.flip:
            flip = (torch.rand(n, generator=g) < self.flip).float() * -2 + 1
            theta = theta * torch.stack([flip, torch.ones(n), torch.ones(n)], 1).view(
                n, 1, 3
            )
        shift = (
            uniform(-self.shift, self.shift, n, 3, 1) * 2
            if self.shift
            else torch.zeros(n, 3, 1)
        )
        return torch.cat([theta, shift], dim=2)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch ``(N, C, D, H, W)``; the generator (on the CPU) seeds it.

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, D, H, W)
        generator : torch.Generator
            CPU generator; the same state gives the same transforms on any device.

        Returns
        -------
        torch.Tensor, same shape, dtype and device as ``x``
        """
        # no fit: the augmenter is checked where it is used
        self._validate_params()
        n = x.shape[0]
        theta = self._affine(n, generator)
        out = x
        if theta is not None:
            resampled = torch.ones(n, dtype=torch.bool)
            if self.resample_fraction < 1:
                resampled = torch.rand(n, generator=generator) < self.resample_fraction
            out = x.clone() if not resampled.all() else x
            idx = torch.nonzero(resampled).flatten().to(x.device)
            if len(idx):
                sub = x.index_select(0, idx)
                grid = F.affine_grid(
                    theta[resampled].to(x.device, torch.float32),
                    list(sub.shape),
                    align_corners=False,
                )
                sampled = F.grid_sample(
                    sub.float(),
                    grid,
                    mode="bilinear",
                    padding_mode="border",
                    align_corners=False,
                ).to(x.dtype)
                out = sampled if len(idx) == n else out.index_copy(0, idx, sampled)
            flips = (~resampled) & (theta[:, 0, 0] < 0)
            if flips.any():  # the left-right flip, exact, for the others
                fidx = torch.nonzero(flips).flatten().to(x.device)
                out = out.index_copy(0, fidx, out.index_select(0, fidx).flip(-1))
        if self.intensity:
            factor = 1 + (torch.rand(n, generator=generator) * 2 - 1) * self.intensity
            out = out * factor.to(x.device, x.dtype).view(n, *([1] * (x.ndim - 1)))
        if self.noise:
            std = out.detach().flatten(1).std(dim=1).view(n, *([1] * (x.ndim - 1)))
            eps = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
            out = out + eps * std * self.noise
        return out


def resolve_augment(augment) -> VolumeAugmenter | None:
    """Turn ``Spect3DClassifier(augment=...)`` into an augmenter or None.

    ``True`` gives the defaults, ``False``/``None`` nothing, a dict the defaults with
    those strengths changed, a :class:`VolumeAugmenter` itself. Its strengths are
    checked here, so that a bad one is refused before any training.
    """
    if augment is None or augment is False:
        return None
    if augment is True:
        return VolumeAugmenter()
    if isinstance(augment, dict):
        try:
            augmenter = VolumeAugmenter(**augment)
        except TypeError:
            valid = sorted(VolumeAugmenter().get_params())
            raise ValueError(
                f"augment dict keys must be among {valid}, got {sorted(augment)}"
            ) from None
        augmenter._validate_params()
        return augmenter
    if isinstance(augment, VolumeAugmenter):
        augment._validate_params()
        return augment
    raise ValueError(
        "augment must be True, False, None, a dict of strengths or a "
        f"VolumeAugmenter, got {augment!r}"
    )
