"""Post-hoc calibration of a trained network's probabilities.

Kept apart from the classifier in the way scikit-learn keeps
:class:`~sklearn.calibration.CalibratedClassifierCV` apart from the model it
calibrates: :class:`TemperatureScaling` is fitted after training, on the logits of
held-out validation patients, and changes the probabilities, never the argmax.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["TemperatureScaling"]


class TemperatureScaling:
    """Divide logits by one temperature fitted by log-likelihood (Guo et al., "On
    calibration of modern neural networks", ICML 2017).

    Parameters
    ----------
    probabilities : callable, default=softmax
        Logits -> class probabilities (the loss's, e.g. CORN's products).
    bounds : tuple of 2 floats, default=(0.05, 20.0)
        Search range of the temperature.

    Attributes
    ----------
    temperature_ : float
        The temperature minimising the negative log-likelihood of the fitted labels.
    """

    def __init__(
        self,
        probabilities: Callable[[torch.Tensor], torch.Tensor] | None = None,
        bounds: tuple[float, float] = (0.05, 20.0),
    ):
        self.probabilities = probabilities
        self.bounds = bounds

    def fit(self, logits: torch.Tensor, y) -> TemperatureScaling:
        """Fit the temperature on validation ``logits`` (N, outputs) and encoded
        labels ``y`` (N,)."""
        from scipy.optimize import minimize_scalar

        y = np.asarray(y)

        def nll(log_t):
            p = self.transform(logits, float(np.exp(log_t)))[np.arange(len(y)), y]
            return -np.log(np.clip(p, 1e-12, None)).mean()

        low, high = self.bounds
        best = minimize_scalar(
            nll, bounds=(np.log(low), np.log(high)), method="bounded"
        )
        self.temperature_ = float(np.exp(best.x))
        return self

    def transform(self, logits: torch.Tensor, temperature: float | None = None):
        """Probabilities (float64 array) of ``logits`` at ``temperature`` (the fitted
        one when None)."""
        t = self.temperature_ if temperature is None else temperature
        to_proba = self.probabilities or (lambda z: torch.softmax(z, dim=1))
        proba = to_proba(logits / float(t))
        return proba.detach().cpu().numpy().astype(np.float64)
