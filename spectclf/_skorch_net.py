"""skorch internals behind :class:`~spectclf.Spect3DClassifier`.

The classifier is the scikit-learn face; this module holds what it builds in ``fit``:
the skorch net subclass (batched augmentation, bf16 autocast, channels-last) and its
assembly from the classifier's parameters (:func:`build_net`), the callbacks
(schedules, weight averaging, early stopping, finite-loss guard, progress), the
routing of skorch-style parameters (:class:`RoutedParamsMixin`), the optimizer
registry and the device and precision choices. The losses live in
:mod:`spectclf.losses`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import math
import sys
import time
from typing import Any

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, EarlyStopping, LRScheduler, ProgressBar
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from spectclf.augment import resolve_augment
from spectclf.exceptions import TrainingDivergedError
from spectclf.losses import class_weights, get_loss
from spectclf.nets import get_module
from spectclf.patient_groups import GroupedValidSplit

__all__ = [
    "OPTIMIZERS",
    "ROUTED_PREFIXES",
    "SWA_LR_FACTOR",
    "SWA_START",
    "EpochProgress",
    "FlaggedEarlyStopping",
    "FiniteLoss",
    "Interrupted",
    "RoutedParamsMixin",
    "SpectNet",
    "WeightAveraging",
    "build_net",
    "resolve_device",
    "resolve_precision",
    "swa_lr_factor",
]

#: ``lr_schedule="swa"``: the share of the epochs annealed before averaging starts,
#: and the learning rate held while the weights are averaged, relative to ``lr``.
SWA_START = 0.75
SWA_LR_FACTOR = 1 / 3

#: Prefixes routed to skorch, as in ``module__width=8`` or ``optimizer__betas=...``.
ROUTED_PREFIXES = (
    "module__",
    "optimizer__",
    "criterion__",
    "iterator_train__",
    "iterator_valid__",
    "callbacks__",
)

OPTIMIZERS = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


class RoutedParamsMixin:
    """skorch-style routed parameters (``module__width=8``...) on a scikit-learn
    estimator whose ``__init__`` takes them as ``**kwargs``.

    scikit-learn allows only declared parameters as public attributes, so the routed
    names live in one private dict (``_routed``); ``get_params`` reports them like any
    parameter, ``set_params`` accepts them, and :meth:`check_routed_params` (called in
    ``fit``) refuses a name that has no routed prefix, with the closest valid name.
    """

    def routed_params(self) -> dict[str, Any]:
        """The routed parameters, by full name."""
        return dict(self.__dict__.get("_routed", {}))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters, including routed ones such as ``module__width``."""
        return {**super().get_params(deep=deep), **self.routed_params()}

    def set_params(self, **params):
        """Set parameters; ``module__*``, ``optimizer__*``... are accepted as well."""
        known = self.routed_params()  # whatever __init__ accepted, set_params accepts
        routed = {
            k: v
            for k, v in params.items()
            if k.startswith(ROUTED_PREFIXES) or k in known
        }
        plain = {k: v for k, v in params.items() if k not in routed}
        for key in plain:
            self._refuse_unknown(key, set(routed), "Invalid")
        if routed:
            self._routed = {**known, **routed}
        if plain:
            super().set_params(**plain)
        return self

    def check_routed_params(self) -> None:
        """Refuse routed names without one of :data:`ROUTED_PREFIXES`."""
        for key in self.routed_params():
            if not key.startswith(ROUTED_PREFIXES):
                self._refuse_unknown(key, set(), "Unknown")

    def _refuse_unknown(self, key: str, extra: set, word: str) -> None:
        valid = set(self._get_param_names())
        if key in valid:
            return
        close = difflib.get_close_matches(key, valid | extra, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"{word} parameter {key!r} for {type(self).__name__}.{hint} Valid "
            f"parameters are {sorted(valid)} and names starting with "
            f"{', '.join(ROUTED_PREFIXES)}."
        )


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; a CUDA device without
    CUDA is refused."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available; use device='cpu' or 'auto'."
        )
    return device


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
        loss=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.loss = loss
        self.augmenter = augmenter
        self.augment_seed = augment_seed
        self.precision = precision
        self.channels_last = channels_last

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Stage probabilities of raw outputs, by the net's :class:`~spectclf.losses.Loss`
        (softmax without one)."""
        if self.loss is None:
            return torch.softmax(logits, dim=1)
        return self.loss.probabilities(logits)

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


def _module_kwargs(module_cls, routed: dict, n_outputs: int, input_shape) -> dict:
    """``module__*`` parameters plus ``in_channels``, ``n_classes`` and
    ``input_shape`` where the module accepts them and the user did not set them."""
    kwargs = {
        k[len("module__") :]: v for k, v in routed.items() if k.startswith("module__")
    }
    try:
        sig = inspect.signature(module_cls).parameters
    except (TypeError, ValueError):
        sig = {}
    open_kw = any(p.kind is p.VAR_KEYWORD for p in sig.values())
    auto = {
        "in_channels": input_shape[0],
        "n_classes": n_outputs,
        "input_shape": tuple(input_shape[1:]),
    }
    for key, value in auto.items():
        if key not in kwargs and (key in sig or open_kw):
            kwargs[key] = value
    return kwargs


def _callbacks(p: dict) -> list:
    """The skorch callbacks of classifier parameters ``p``: the user's (copied), the
    finite-loss guard, the learning-rate schedule, early stopping and progress."""
    callbacks = list(copy.deepcopy(p["callbacks"]) or [])
    callbacks.append(("finite_loss", FiniteLoss()))
    max_epochs = p["max_epochs"]
    if p["lr_schedule"] == "cosine":
        callbacks.append(
            ("lr_schedule", LRScheduler(policy="CosineAnnealingLR", T_max=max_epochs))
        )
    elif p["lr_schedule"] == "swa":
        start = min(int(round(SWA_START * max_epochs)), max_epochs - 1)
        factor = functools.partial(swa_lr_factor, start=start, floor=SWA_LR_FACTOR)
        callbacks.append(
            ("lr_schedule", LRScheduler(policy="LambdaLR", lr_lambda=factor))
        )
        callbacks.append(("weight_averaging", WeightAveraging(start)))
    if p["early_stopping"]:
        stopper = FlaggedEarlyStopping(
            monitor="valid_loss",
            patience=p["n_iter_no_change"],
            load_best=True,
            sink=print if p["verbose"] >= 2 else (lambda *a: None),
        )
        callbacks.append(("early_stopping", stopper))
    if p["verbose"] == 1:
        callbacks.append(("progress", EpochProgress()))
    if p["verbose"] >= 3:
        callbacks.append(("progress", ProgressBar()))
    return callbacks


def build_net(estimator, input_shape, y_enc, valid_idx, seed, device=None) -> SpectNet:
    """The skorch net of a :class:`~spectclf.Spect3DClassifier`'s parameters.

    Parameters
    ----------
    estimator : Spect3DClassifier
        Read through ``get_params`` (routed names included) and ``classes_``.
    input_shape : tuple
        ``(C, D, H, W)`` of the training volumes.
    y_enc : ndarray of int
        Encoded training labels (class weights, logit adjustment).
    valid_idx : ndarray or None
        Rows held out for validation.
    seed : int
        Seed of the augmentation.
    device : str, default=None
        Overrides the ``device`` parameter (a GPU model restored without a GPU).
    """
    p = estimator.get_params(deep=False)
    device = device or resolve_device(p["device"])
    n_classes = len(estimator.classes_)
    loss = get_loss(p["criterion"])
    module_cls = get_module(p["module"])
    routed = {
        k: copy.deepcopy(v)
        for k, v in estimator.routed_params().items()
        if not k.startswith("module__")
    }
    routed.setdefault("optimizer__weight_decay", p["weight_decay"])
    n_train = len(y_enc) - (0 if valid_idx is None else len(valid_idx))
    if n_train % p["batch_size"] == 1:
        # BatchNorm cannot train on a last batch of one volume
        routed.setdefault("iterator_train__drop_last", True)
    weight = class_weights(p["class_weight"], estimator.classes_, y_enc)
    if weight is not None:
        routed["criterion__weight"] = weight
    for key, value in loss.criterion_params(y_enc, n_classes).items():
        routed[f"criterion__{key}"] = value
    module_kwargs = _module_kwargs(
        module_cls, estimator.routed_params(), loss.n_outputs(n_classes), input_shape
    )
    return SpectNet(
        module=module_cls,
        criterion=loss.criterion,
        predict_nonlinearity=loss.predict_nonlinearity,
        loss=loss,
        optimizer=OPTIMIZERS.get(p["optimizer"], p["optimizer"]),
        lr=p["lr"],
        max_epochs=p["max_epochs"],
        batch_size=p["batch_size"],
        train_split=None if valid_idx is None else GroupedValidSplit(valid_idx),
        iterator_train__shuffle=True,
        classes=np.arange(n_classes),
        callbacks=_callbacks(p),
        device=device,
        verbose=int(p["verbose"] >= 2),
        # rows of a 2-D table (n, f) arrive as (1, 1, 1, f) "volumes": flipping or
        # rotating them would scramble features, so they are never augmented
        augmenter=None if input_shape[1:3] == (1, 1) else resolve_augment(p["augment"]),
        augment_seed=seed,
        precision=resolve_precision(p["precision"], device),
        channels_last=p["channels_last"],
        **{f"module__{k}": v for k, v in module_kwargs.items()},
        **routed,
    )
