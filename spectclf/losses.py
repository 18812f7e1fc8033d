"""Training losses of :class:`~spectclf.Spect3DClassifier`, as objects in :data:`LOSSES`.

A :class:`Loss` knows everything the classifier needs of its loss: the torch
criterion and the arguments it takes from the training labels, the number of network
outputs (the head), and how logits become stage probabilities. ``"cross_entropy"``
(torch's), ``"corn"`` (ordinal: :class:`CornLoss` with :func:`corn_probabilities`)
and ``"logit_adjusted"`` (:class:`LogitAdjustedLoss`, for the rare stage 4). Each
takes per-class ``weight`` from ``class_weight``; any other ``torch.nn.Module`` loss
class can be passed as ``criterion=`` instead (read as :class:`Loss` of that class:
one output per stage, softmax probabilities).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import compute_class_weight

__all__ = [
    "CRITERIA",
    "LOSSES",
    "CornLoss",
    "Loss",
    "LogitAdjustedLoss",
    "class_weights",
    "corn_probabilities",
    "get_loss",
]


class CornLoss(torch.nn.Module):
    """CORN: ordinal regression as conditional binary tasks (Shi, Cao & Raschka,
    "Deep neural networks for rank-consistent ordinal regression based on conditional
    probabilities", Pattern Anal. Appl. 2023).

    The network has ``K - 1`` outputs; output ``k`` is the logit of ``P(y > k | y >= k)``
    and is trained only on samples with ``y >= k``. Class probabilities are products
    of these conditionals (:func:`corn_probabilities`), so they form a proper
    distribution whose cumulative probabilities can never cross.

    Parameters
    ----------
    weight : tensor of shape (K,), default=None
        Per-class weights (e.g. ``class_weight="balanced"``), applied per sample.
    """

    def __init__(self, weight=None):
        super().__init__()
        self.weight = weight

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = y.long()
        k = torch.arange(logits.shape[1], device=logits.device)
        at_risk = y[:, None] >= k[None, :]  # task k sees samples with y >= k
        target = (y[:, None] > k[None, :]).float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="none"
        )
        w = at_risk.float()
        if self.weight is not None:
            w = w * self.weight.to(logits.device)[y][:, None]
        return (bce * w).sum() / w.sum().clamp_min(1e-12)


def corn_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``(N, K - 1)`` CORN logits -> ``(N, K)`` class probabilities summing to 1."""
    survival = torch.cumprod(torch.sigmoid(logits), dim=1)  # P(y > k)
    ones = torch.ones_like(survival[:, :1])
    zeros = torch.zeros_like(survival[:, :1])
    upper = torch.cat([ones, survival], dim=1)
    lower = torch.cat([survival, zeros], dim=1)
    return (upper - lower).clamp_min(0.0)


class LogitAdjustedLoss(torch.nn.Module):
    """Logit-adjusted cross-entropy (Menon et al., "Long-tail learning via logit
    adjustment", ICLR 2021).

    Training adds ``tau * log(prior)`` to the logits before the softmax, so a rare
    class must win by a larger margin; prediction uses the raw logits, whose softmax
    then estimates the stage probabilities under *equal* priors (the Bayes rule for
    balanced accuracy). An alternative to ``class_weight="balanced"``, which scales the
    loss instead of the margin.

    Parameters
    ----------
    log_prior : tensor of shape (K,), default=None
        Log class frequencies of the training set (set by the classifier); None is
        plain cross-entropy.
    tau : float, default=1.0
        Strength of the adjustment.
    weight : tensor of shape (K,), default=None
        Per-class loss weights (``class_weight``), applied as well.
    """

    def __init__(self, log_prior=None, tau=1.0, weight=None):
        super().__init__()
        self.log_prior = log_prior
        self.tau = tau
        self.weight = weight

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.log_prior is not None:
            logits = logits + self.tau * self.log_prior.to(logits.device, logits.dtype)
        weight = None if self.weight is None else self.weight.to(logits.device)
        return torch.nn.functional.cross_entropy(logits, y.long(), weight=weight)


class Loss:
    """A training loss as :class:`~spectclf.Spect3DClassifier` uses it.

    Parameters
    ----------
    criterion : torch.nn.Module class, default=torch.nn.CrossEntropyLoss
        The loss; built by skorch with ``weight`` (from ``class_weight``), the
        arguments of :meth:`criterion_params` and every ``criterion__*`` parameter.
    """

    def __init__(self, criterion=torch.nn.CrossEntropyLoss):
        self.criterion = criterion

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.criterion.__name__})"

    def n_outputs(self, n_classes: int) -> int:
        """Outputs of the network's head for ``n_classes`` stages."""
        return n_classes

    def criterion_params(self, y_enc: np.ndarray, n_classes: int) -> dict:
        """Arguments of the criterion learnt from the encoded training labels."""
        return {}

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, n_outputs)`` logits -> ``(N, K)`` stage probabilities."""
        return torch.softmax(logits, dim=1)

    #: What skorch's own ``predict_proba`` applies ("auto": its rule for the class).
    predict_nonlinearity = "auto"


class _Corn(Loss):
    """:class:`CornLoss`: ``K - 1`` outputs, probabilities by
    :func:`corn_probabilities`."""

    def __init__(self):
        super().__init__(CornLoss)

    def n_outputs(self, n_classes: int) -> int:
        return n_classes - 1  # one conditional per threshold between stages

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return corn_probabilities(logits)

    @property
    def predict_nonlinearity(self):
        return corn_probabilities


class _LogitAdjusted(Loss):
    """:class:`LogitAdjustedLoss` with the training stages' log frequencies."""

    def __init__(self):
        super().__init__(LogitAdjustedLoss)

    def criterion_params(self, y_enc: np.ndarray, n_classes: int) -> dict:
        counts = np.bincount(y_enc, minlength=n_classes).clip(min=1)
        prior = torch.as_tensor(counts / counts.sum(), dtype=torch.float32)
        return {"log_prior": torch.log(prior)}


#: Losses by name; ``criterion=`` also takes a ``torch.nn.Module`` class.
LOSSES = {
    "cross_entropy": Loss(torch.nn.CrossEntropyLoss),
    "corn": _Corn(),
    "logit_adjusted": _LogitAdjusted(),
}

#: The torch criterion of each named loss.
CRITERIA = {name: loss.criterion for name, loss in LOSSES.items()}


def get_loss(criterion) -> Loss:
    """The :class:`Loss` of a ``criterion`` parameter: a name of :data:`LOSSES`, a
    :class:`Loss`, or a ``torch.nn.Module`` loss class."""
    if isinstance(criterion, Loss):
        return criterion
    if isinstance(criterion, str):
        return LOSSES[criterion]
    return Loss(criterion)


def class_weights(class_weight, classes, y_enc) -> torch.Tensor | None:
    """Per-class loss weights of a ``class_weight`` parameter (None, ``"balanced"``
    or a dict label -> weight) for ``classes`` and encoded labels ``y_enc``."""
    if class_weight is None:
        return None
    if class_weight == "balanced":
        w = compute_class_weight("balanced", classes=np.arange(len(classes)), y=y_enc)
    else:
        unknown = set(class_weight) - set(classes.tolist())
        if unknown:
            raise ValueError(
                f"class_weight has labels {sorted(unknown)} that are "
                f"not in y (classes {classes.tolist()})."
            )
        w = np.array([float(class_weight.get(c, 1.0)) for c in classes])
    return torch.as_tensor(w, dtype=torch.float32)
