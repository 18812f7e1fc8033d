"""3-D convolutional networks for volumes ``(N, C, D, H, W)``.

The networks' contract, used by :func:`~spectclf.saliency`: ``features(x)`` returns
the last convolutional feature map and ``classify(features, x)`` the logits, so that
``forward(x) == classify(features(x), x)`` (``x`` for heads that also read the input,
such as ``ResNet3D(striatal_ratios=True)``; a ``classify(features)`` of one argument
is accepted too). Networks without it are explained through their last ``Conv3d``.

``ResNet3D`` (registered as ``"resnet3d"``) is the default: a compact residual network
with global average and max pooling, so any input size works. ``SeedCNN``
(``"seed_cnn"``) is the plain baseline a newcomer would write, kept as a reference point for benchmarks. With
MONAI installed, ``"monai_resnet10"`` and ``"monai_densenet121"`` are available too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from spectclf.anatomy import STRIATAL_REGIONS, block_region_masks

__all__ = [
    "ResNet3D",
    "SeedCNN",
    "MonaiNet",
    "StriatalRatios",
    "get_module",
    "available_modules",
]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    raise ValueError(f"norm must be 'batch', 'group' or 'instance', got {kind!r}")


class BasicBlock3D(nn.Module):
    """Two 3x3x3 convolutions with a residual connection (He et al., 2016)."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, norm: str = "batch"
    ):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = _norm(norm, out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = _norm(norm, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride, bias=False),
                _norm(norm, out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


@functools.lru_cache(maxsize=8)
def _region_weights(shape: tuple[int, int, int]) -> np.ndarray:
    """Averaging weights ``(9, D*H*W)`` of the striatal regions and the reference:
    each region's partial volume in each voxel (masks drawn on a grid >= 40 voxels
    per axis and averaged down), so that small blocks keep every region."""
    k = max(1, math.ceil(40 / min(shape)))
    masks = block_region_masks(tuple(k * s for s in shape))
    rows = []
    for name in (*STRIATAL_REGIONS, "reference"):
        m = masks[name].reshape(shape[0], k, shape[1], k, shape[2], k)
        rows.append(m.mean(axis=(1, 3, 5)).ravel())
    w = np.stack(rows)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


class StriatalRatios(nn.Module):
    """Striatal binding ratios measured in a striatum block, as a layer.

    The input is a block made by :class:`~spectclf.StriatumCrop` (default ``size``):
    :func:`~spectclf.anatomy.block_region_masks` places the caudate and putamen
    regions and the non-specific reference in it. The output is, per volume, the
    binding ratio ``mean(region) / mean(reference) - 1`` of each of the eight
    :data:`~spectclf.anatomy.STRIATAL_REGIONS` (channels averaged): what the SBR
    baseline (:class:`~spectclf.SBRFeatures`) reads, differentiable. It has no
    weights; the regions are drawn once per input shape (as partial volumes, so that
    a block of a few voxels keeps every region).

    Examples
    --------
    >>> import torch
    >>> r = StriatalRatios()(torch.ones(2, 1, 10, 20, 20))  # flat: no specific binding
    >>> r.shape, bool(r.abs().max() < 1e-5)
    (torch.Size([2, 8]), True)
    """

    n_ratios = len(STRIATAL_REGIONS)

    def __init__(self):
        super().__init__()
        self._weights: dict = {}

    def _averaging_weights(self, shape, device) -> torch.Tensor:
        key = (tuple(shape), str(device))
        if key not in self._weights:
            w = torch.as_tensor(_region_weights(tuple(int(s) for s in shape)))
            self._weights[key] = w.to(device)
        return self._weights[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Ratios ``(N, 8)`` of volumes ``(N, C, D, H, W)``."""
        w = self._averaging_weights(x.shape[2:], x.device)
        with torch.autocast(x.device.type, enabled=False):
            means = x.float().mean(dim=1).flatten(1) @ w.T
            return means[:, :-1] / means[:, -1:].clamp_min(1e-6) - 1.0


class ResNet3D(nn.Module):
    """Compact 3-D ResNet for small cohorts.

    A stride-2 stem, four stages of residual blocks (widths ``width * (1, 2, 4, 8)``,
    stride 2 from the second stage on), global average and max pooling (concatenated),
    dropout and a linear head. With the defaults it has about 0.9 M parameters.

    Parameters
    ----------
    in_channels : int, default=1
        Channels of the input volume.
    n_classes : int, default=4
        Number of output logits.
    width : int, default=16
        Channels of the first stage.
    depth : int or sequence of 4 ints, default=1
        Residual blocks per stage.
    norm : {"batch", "group", "instance"}, default="batch"
        Normalisation layer; ``"group"`` suits very small batches.
    dropout : float, default=0.3
        Dropout before the linear head.
    pool : {"avgmax", "avg", "max"}, default="avgmax"
        Global pooling of the last feature map: average, maximum, or both
        concatenated. Maximum pooling keeps small, hot structures (the striatum is
        ~1 % of the volume) from being averaged away.
    striatal_ratios : bool, default=False
        Also give the head the eight striatal binding ratios measured in the input
        (:class:`StriatalRatios`, batch-normalised, without dropout) beside the pooled
        features: a wide-and-deep network whose linear part is the clinical SBR
        model. Meaningful only for blocks made by :class:`~spectclf.StriatumCrop`
        (``make_default_pipeline(module__striatal_ratios=True)``); off by default:
        on the robustness cohorts it raised the mean balanced accuracy by 0.005 but
        found fewer stage-4 patients and was less calibrated
        (``benchmarks/README.md``).

    Examples
    --------
    >>> import torch
    >>> net = ResNet3D(in_channels=1, n_classes=4, width=4)
    >>> net(torch.zeros(2, 1, 16, 32, 32)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 4,
        width: int = 16,
        depth: int | Sequence[int] = 1,
        norm: str = "batch",
        dropout: float = 0.3,
        pool: str = "avgmax",
        striatal_ratios: bool = False,
    ):
        super().__init__()
        depths = [int(depth)] * 4 if isinstance(depth, int) else [int(d) for d in depth]
        if len(depths) != 4 or min(depths) < 1:
            raise ValueError(f"depth must be an int >= 1 or 4 such ints, got {depth!r}")
        if int(width) < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        widths = [int(width) * m for m in (1, 2, 4, 8)]
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, widths[0], 3, 2, 1, bias=False),
            _norm(norm, widths[0]),
            nn.ReLU(inplace=True),
        )
        layers, c_in = [], widths[0]
        for i, (c_out, n) in enumerate(zip(widths, depths, strict=True)):
            for j in range(n):
                layers.append(
                    BasicBlock3D(c_in, c_out, 2 if (i > 0 and j == 0) else 1, norm)
                )
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        if pool not in ("avgmax", "avg", "max"):
            raise ValueError(f"pool must be 'avgmax', 'avg' or 'max', got {pool!r}")
        self.pool_mode = pool
        self.dropout = nn.Dropout(float(dropout))
        n_pooled = c_in * (2 if pool == "avgmax" else 1)
        self.ratios: nn.Module | None = None
        if striatal_ratios:
            self.ratios = StriatalRatios()
            self.ratio_norm = nn.BatchNorm1d(StriatalRatios.n_ratios)
            n_pooled += StriatalRatios.n_ratios
        self.head = nn.Linear(n_pooled, n_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm3d, nn.GroupNorm, nn.InstanceNorm3d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # zero-init the last norm of each block: blocks start as identities
        for m in self.modules():
            if isinstance(m, BasicBlock3D):
                nn.init.zeros_(m.norm2.weight)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map ``(N, 8 * width, d, h, w)``."""
        return self.layers(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_classes)`` for volumes ``(N, C, D, H, W)``."""
        return self.classify(self.features(x), x)

    def classify(self, f: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from a feature map of :meth:`features` (global pooling, head).

        ``x``, the input ``f`` was computed from, is needed with
        ``striatal_ratios=True`` (the ratios are measured in it).
        """
        pooled = []
        if self.pool_mode in ("avg", "avgmax"):
            pooled.append(f.mean(dim=(2, 3, 4)))
        if self.pool_mode in ("max", "avgmax"):
            pooled.append(f.amax(dim=(2, 3, 4)))
        parts = [self.dropout(torch.cat(pooled, dim=1))]
        if self.ratios is not None:
            if x is None:
                raise ValueError(
                    "classify(f, x) needs the input x with striatal_ratios=True."
                )
            parts.append(self.ratio_norm(self.ratios(x)).to(parts[0].dtype))
        return self.head(torch.cat(parts, dim=1))


class SeedCNN(nn.Module):
    """The plain baseline: three conv blocks (32, 64, 128) with max pooling, a dense
    layer of 256 and dropout 0.5. Its dense layer fixes the input size.

    Parameters
    ----------
    in_channels : int, default=1
    n_classes : int, default=4
    input_shape : tuple of 3 ints, default=(32, 64, 64)
        ``(D, H, W)`` of the inputs; sizes the dense layer.
    dropout : float, default=0.5

    Examples
    --------
    >>> import torch
    >>> SeedCNN(input_shape=(8, 16, 16))(torch.zeros(2, 1, 8, 16, 16)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 4,
        input_shape: Sequence[int] = (32, 64, 64),
        dropout: float = 0.5,
    ):
        super().__init__()
        blocks, c_in = [], in_channels
        for c_out in (32, 64, 128):
            blocks += [
                nn.Conv3d(c_in, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool3d(2, ceil_mode=True),
            ]
            c_in = c_out
        self.conv = nn.Sequential(*blocks)
        flat = 128
        for s in input_shape:
            for _ in range(3):
                s = -(-int(s) // 2)
            flat *= s
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, n_classes),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map."""
        return self.conv(x)

    def classify(self, f: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from the feature map of :meth:`features` (``x`` is not used)."""
        return self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_classes)``."""
        return self.classify(self.features(x))


class MonaiNet(nn.Module):
    """A MONAI 3-D classification network by name (needs ``pip install monai``).

    Parameters
    ----------
    name : {"resnet10", "resnet18", "densenet121"}, default="resnet10"
    in_channels : int, default=1
    n_classes : int, default=4
    """

    _NAMES = ("resnet10", "resnet18", "densenet121")

    def __init__(
        self, name: str = "resnet10", in_channels: int = 1, n_classes: int = 4
    ):
        super().__init__()
        try:
            from monai.networks import nets
        except ImportError:
            from spectclf.exceptions import MissingDependencyError

            raise MissingDependencyError(
                f"module='monai_{name}' needs MONAI: pip install 'spectclf[monai]'"
            ) from None
        if name.startswith("resnet"):
            self.net = getattr(nets, name)(
                spatial_dims=3, n_input_channels=in_channels, num_classes=n_classes
            )
        elif name == "densenet121":
            self.net = nets.DenseNet121(
                spatial_dims=3, in_channels=in_channels, out_channels=n_classes
            )
        else:
            raise ValueError(
                f"unknown MONAI network {name!r}; expected one of {self._NAMES}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_classes)``."""
        return self.net(x)


def _monai(name):
    def build(**kwargs):
        return MonaiNet(name=name, **kwargs)

    build.__name__ = f"monai_{name}"
    return build


_REGISTRY = {
    "resnet3d": ResNet3D,
    "seed_cnn": SeedCNN,
    **{f"monai_{n}": _monai(n) for n in MonaiNet._NAMES},
}


def available_modules() -> list[str]:
    """Names accepted by ``Spect3DClassifier(module=...)``."""
    return sorted(_REGISTRY)


def get_module(name: str | type[nn.Module]):
    """Return the module class (or factory) registered under ``name``.

    A ``torch.nn.Module`` subclass is returned as is.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(name, type) and issubclass(name, nn.Module):
        return name
    if callable(name) and not isinstance(name, str):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"module={name!r} is not a known network; expected one of "
            f"{available_modules()} or a torch.nn.Module class."
        ) from None
