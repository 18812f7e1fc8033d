"""Every public estimator declares its parameters' constraints (scikit-learn's
``_parameter_constraints``) and refuses a bad value in ``fit`` with a ``ValueError``
that names the parameter and what it accepts.

The estimators are found in ``spectclf.__all__``, so a new export is checked by itself.
Bad values are refused before any training: the data are tiny and would not train a
network anyway.
"""

from __future__ import annotations

import inspect
from numbers import Integral

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import (
    Interval,
    generate_invalid_param_val,
    make_constraint,
)

import spectclf

ESTIMATORS = [
    cls
    for name in spectclf.__all__
    if isinstance(cls := getattr(spectclf, name), type)
    and issubclass(cls, BaseEstimator)
]


def _build(cls):
    """A valid instance: the defaults, plus what a class requires or what keeps a fit
    cheap should a bad value not be refused."""
    if cls is spectclf.Spect3DClassifier:
        return cls(max_epochs=1, module__width=4, device="cpu", verbose=0)
    if cls in (spectclf.StageEnsemble, spectclf.TunedClassifier):
        return cls(LogisticRegression())
    if cls is spectclf.HybridSBRClassifier:
        return cls(LogisticRegression())
    if cls is spectclf.PatientPipeline:
        return cls([("clf", LogisticRegression())])
    return cls()


def _fit(estimator):
    """Fit (resample, or apply: the augmenter) on tiny volumes of two stages."""
    rng = np.random.default_rng(0)
    X = rng.random((8, 1, 6, 8, 8)).astype(np.float32)
    y = np.array([1, 2] * 4)
    if isinstance(estimator, spectclf.VolumeAugmenter):
        return estimator(torch.from_numpy(X), torch.Generator())
    if hasattr(estimator, "fit_resample"):
        return estimator.fit_resample(X, y)
    if "groups" in inspect.signature(estimator.fit).parameters:
        return estimator.fit(X, y, groups=np.arange(len(y)))
    return estimator.fit(X, y)


def _outside(interval: Interval) -> list:
    """Values just outside each finite bound of an interval."""
    step = 1 if interval.type is Integral else 1e-6
    values = []
    if interval.left is not None:
        closed = interval.closed in ("left", "both")
        values.append(interval.left - step if closed else interval.left)
    if interval.right is not None:
        closed = interval.closed in ("right", "both")
        values.append(interval.right + step if closed else interval.right)
    return values


def _bad_values(constraints) -> list:
    """An object of no accepted type, and values of an accepted type outside the
    accepted ones (scikit-learn's ``check_param_validation`` does the same)."""
    values = [type("BadType", (), {})()]
    for constraint in map(make_constraint, constraints):
        if isinstance(constraint, Interval):
            values += _outside(constraint)
            continue
        try:
            values.append(generate_invalid_param_val(constraint))
        except NotImplementedError:
            pass
    return values


CASES = [
    pytest.param(cls, name, value, id=f"{cls.__name__}-{name}-{i}")
    for cls in ESTIMATORS
    for name, constraints in getattr(cls, "_parameter_constraints", {}).items()
    if constraints != "no_validation"  # refused by the test above
    for i, value in enumerate(_bad_values(constraints))
]

# accepted by the constraints, refused by the checks that come after them
CROSS_CHECKS = [
    pytest.param(cls, name, value, id=f"{cls.__name__}-{name}")
    for cls, name, value in [
        (spectclf.VolumeResizer, "shape", (4, 4)),
        (spectclf.CenterCrop, "shape", (0, 4, 4)),
        (spectclf.StriatumCrop, "shape", ["a", "b", "c"]),
        (spectclf.ColormapToIntensity, "colormap", "invalid-value"),
        (spectclf.ToGrayscale, "weights", (0.5, 0.5)),
        (spectclf.IntensityNormalizer, "percentiles", (99.0, 1.0)),
        (spectclf.TunedClassifier, "scoring", "invalid-value"),
    ]
]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_constraints_cover_every_parameter(cls):
    estimator = _build(cls)
    # routed names (module__width...) belong to the object they are routed to
    params = {k for k in estimator.get_params(deep=False) if "__" not in k}
    assert set(cls._parameter_constraints) == params
    unchecked = [
        k for k, v in cls._parameter_constraints.items() if v == "no_validation"
    ]
    assert not unchecked
    estimator._validate_params()  # the defaults are accepted


@pytest.mark.parametrize("cls, name, value", CASES)
def test_bad_value_is_refused_in_fit(cls, name, value):
    estimator = _build(cls).set_params(**{name: value})
    match = rf"The '{name}' parameter of {cls.__name__} must be .* Got .* instead\."
    with pytest.raises(ValueError, match=match):
        _fit(estimator)


@pytest.mark.parametrize("cls, name, value", CROSS_CHECKS)
def test_value_the_constraints_cannot_judge_is_refused_in_fit(cls, name, value):
    assert name in cls._parameter_constraints
    estimator = _build(cls).set_params(**{name: value})
    with pytest.raises(ValueError, match=rf"{cls.__name__}\b.*\b{name}\b"):
        _fit(estimator)
