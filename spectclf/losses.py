"""Training losses of :class:`~spectclf.Spect3DClassifier`, by name in :data:`CRITERIA`.

``"cross_entropy"`` (torch's), ``"corn"`` (ordinal: :class:`CornLoss` with
:func:`corn_probabilities`) and ``"logit_adjusted"`` (:class:`LogitAdjustedLoss`, for
the rare stage 4). Each takes per-class ``weight`` from ``class_weight``; any other
``torch.nn.Module`` loss class can be passed as ``criterion=`` instead.
"""

from __future__ import annotations

import torch

__all__ = ["CRITERIA", "CornLoss", "LogitAdjustedLoss", "corn_probabilities"]


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


#: Losses by name; ``criterion=`` also takes a ``torch.nn.Module`` class.
CRITERIA = {
    "cross_entropy": torch.nn.CrossEntropyLoss,
    "corn": CornLoss,
    "logit_adjusted": LogitAdjustedLoss,
}
