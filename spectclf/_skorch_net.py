"""skorch internals behind :class:`~spectclf.Spect3DClassifier`.

The classifier is the scikit-learn face; this module holds what it builds in ``fit``:
the skorch net subclass (batched augmentation, bf16 autocast, channels-last), its
callbacks (finite-loss guard, progress), the optimizer registry and the precision
choice. The losses live in :mod:`spectclf.losses`.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from spectclf.exceptions import TrainingDivergedError

__all__ = [
    "OPTIMIZERS",
    "EpochProgress",
    "FlaggedEarlyStopping",
    "FiniteLoss",
    "Interrupted",
    "SpectNet",
    "WeightAveraging",
    "resolve_precision",
    "swa_lr_factor",
]

OPTIMIZERS = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


def resolve_precision(precision: str, device: str) -> str:
    """``"auto"`` -> ``"bf16"`` where the hardware has native bfloat16, else fp32."""
    if precision != "auto":
        return precision
    if str(device).startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # private API: absent in some builds
        native = False
    return "bf16" if native else "fp32"


def swa_lr_factor(epoch: int, start: int, floor: float) -> float:
    """Learning-rate factor of the ``"swa"`` schedule at ``epoch`` (0-based): a cosine
    from 1 down to ``floor`` over the first ``start`` epochs, then ``floor``."""
    if epoch >= start:
        return floor
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * epoch / start))


def recompute_batchnorm(net, dataset) -> None:
    """BatchNorm statistics of ``net.module_`` measured anew on ``dataset``.

    Averaged weights need their own statistics: the running means the layers kept
    belong to the last weights, not to their average. Every batch counts equally (a
    cumulative mean); the volumes are not augmented, as at predict time; a last batch
    of one volume is left out (BatchNorm cannot normalise a batch of one feature).
    """
    norms = [
        m
        for m in net.module_.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        and m.track_running_stats
    ]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=net.batch_size,
        shuffle=False,
        drop_last=len(dataset) % net.batch_size == 1 and len(dataset) > 1,
    )
    net.module_.train()
    with torch.no_grad():
        for Xi, _ in loader:
            net.infer(Xi)
    net.module_.eval()
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


class WeightAveraging(Callback):
    """Stochastic weight averaging (Izmailov et al., 2018).

    The weights at the end of every epoch after the first ``start`` are averaged;
    when training ends the average replaces the last weights and the BatchNorm
    statistics are measured again for it on the training volumes. With a learning
    rate held at a floor over those epochs, the snapshots wander around a wide
    minimum and their mean sits nearer its centre than any one of them.
    """

    def __init__(self, start: int):
        self.start = start

    def on_train_begin(self, net, **kwargs):
        self.mean_ = None
        self.n_averaged_ = 0

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) <= self.start:
            return
        params = [p.detach() for p in net.module_.parameters()]
        self.n_averaged_ += 1
        if self.mean_ is None:
            self.mean_ = [p.clone() for p in params]
            return
        for mean, p in zip(self.mean_, params, strict=True):
            mean.add_(p - mean, alpha=1.0 / self.n_averaged_)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if self.mean_ is None:
            return
        with torch.no_grad():
            for p, mean in zip(net.module_.parameters(), self.mean_, strict=True):
                p.copy_(mean)
        self.mean_ = None  # the average now lives in the module
        dataset_train, _ = net.get_split_datasets(X, y)
        recompute_batchnorm(net, dataset_train)


class Interrupted(Exception):  # noqa: N818 - a signal, not an error
    """Carries a Ctrl-C past skorch, which would otherwise end training quietly."""


class FlaggedEarlyStopping(EarlyStopping):
    """skorch's early stopping, which ends training by raising ``KeyboardInterrupt``;
    the flag it sets lets :class:`SpectNet` tell that apart from a user's Ctrl-C."""

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            net.stopped_early_ = True
            raise


class FiniteLoss(Callback):
    """Stop with a clear error when the training loss becomes NaN or infinite."""

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1, "train_loss"]
        if not np.isfinite(loss):
            raise TrainingDivergedError(
                f"Training loss became {loss} at epoch {len(net.history)}. Lower lr, "
                f"or use precision='fp32' (now {net.precision!r})."
            )


class EpochProgress(Callback):
    """Plain progress lines: epochs done, loss, time left; at most every ``every`` s.

    Silent for fits that end within ``every`` seconds; a line per epoch would flood
    logs and a progress bar garbles them, so this prints whole lines on any stream.
    """

    def __init__(self, every: float = 10.0, stream=None):
        self.every = every
        self.stream = stream

    def on_train_begin(self, net, **kwargs):
        self.start_ = self.last_ = time.perf_counter()
        self.first_epoch_ = len(net.history)

    def on_epoch_end(self, net, **kwargs):
        now = time.perf_counter()
        done = len(net.history) - self.first_epoch_
        total = net.max_epochs
        if now - self.last_ < self.every and done < total:
            return
        if done == total and now - self.start_ < self.every:
            return
        self.last_ = now
        left = (now - self.start_) / done * (total - done)
        row = net.history[-1]
        extra = f", valid loss {row['valid_loss']:.3f}" if "valid_loss" in row else ""
        print(
            f"[spectclf] epoch {done}/{total}: train loss {row['train_loss']:.3f}"
            f"{extra} ({now - self.start_:.0f} s, ~{left:.0f} s left)",
            file=self.stream or sys.stdout,
            flush=True,
        )


class SpectNet(NeuralNetClassifier):
    """skorch net that augments training batches and can run bf16 / channels-last."""

    def __init__(
        self,
        *args,
        augmenter=None,
        augment_seed=0,
        precision="fp32",
        channels_last=False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.augmenter = augmenter
        self.augment_seed = augment_seed
        self.precision = precision
        self.channels_last = channels_last

    def _augment_generator(self) -> torch.Generator:
        gen = getattr(self, "_aug_gen", None)
        if gen is None:
            gen = self._aug_gen = torch.Generator().manual_seed(int(self.augment_seed))
        return gen

    def initialize_module(self):
        super().initialize_module()
        if self.channels_last:
            # weights must share the input's memory format, or oneDNN converts
            # back and forth on every convolution
            self.module_ = self.module_.to(memory_format=torch.channels_last_3d)
        return self

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # skorch's partial_fit swallows KeyboardInterrupt and returns a half-trained
        # net as if training had finished; carry the interrupt past it instead
        self.stopped_early_ = False
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt as exc:
            if self.stopped_early_:
                raise  # skorch ends training here and restores the best weights
            raise Interrupted from exc

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        if self.augmenter is not None:
            Xi = self.augmenter(
                to_tensor(Xi, device=self.device), generator=self._augment_generator()
            )
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def infer(self, x, **fit_params):
        x = to_tensor(x, device=self.device)
        if self.channels_last and x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        device_type = torch.device(self.device).type
        with torch.autocast(
            device_type=device_type,
            dtype=torch.bfloat16,
            enabled=self.precision == "bf16",
        ):
            out = self.module_(x, **fit_params)
        return out.float()

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_aug_gen", None)  # torch generators do not pickle
        return state
