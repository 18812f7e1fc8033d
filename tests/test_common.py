"""scikit-learn's estimator checks over every estimator spectclf exports.

The estimators are found in ``spectclf.__all__``, so a new export joins these checks
by itself; ``test_every_export_is_covered`` fails when one is neither built here nor
listed with the reason it is checked elsewhere. Each is built with the defaults a
user gets, except the training length of the networks (the checks fit hundreds of
times).

Volume transformers declare ``three_d_array`` input only, so scikit-learn runs few of
its (2-D) checks on them; ``test_volume_transformer_contract`` checks the same
contract on volumes.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import spectclf
from spectclf.exceptions import PatientLeakageWarning


def _tiny_space(trial):
    return {"C": trial.suggest_float("C", 0.1, 1.0)}


def _build(cls):
    """An instance with user defaults (networks: fewer epochs, narrower)."""
    if cls is spectclf.Spect3DClassifier:
        return cls(max_epochs=8, module__width=4, random_state=0, verbose=0)
    if cls is spectclf.TunedClassifier:
        return cls(
            LogisticRegression(),
            n_trials=2,
            cv=2,
            search_space=_tiny_space,
            random_state=0,
        )
    if cls is spectclf.PatientPipeline:
        return cls([("scale", StandardScaler()), ("clf", LogisticRegression())])
    return cls()


# checked with imbalanced-learn's sampler checks in tests/test_sampling.py
ELSEWHERE = {
    "VolumeRandomOverSampler": "imblearn sampler checks in test_sampling.py",
    "VolumeRandomUnderSampler": "imblearn sampler checks in test_sampling.py",
    "AugmentingOverSampler": "imblearn sampler checks in test_sampling.py",
    "PatientStratifiedGroupKFold": "a splitter, not an estimator",
    "RepeatedPatientStratifiedGroupKFold": "a splitter, not an estimator",
    "VolumeAugmenter": "augmentation settings (a parameter of the classifier and "
    "AugmentingOverSampler), not an estimator; tests/test_classifier.py",
    # fit refuses to run without patient ids (their whole point); scikit-learn's
    # checks call fit(X, y): tested in tests/test_trust.py
    "StageEnsemble": "needs groups; tests/test_trust.py",
    "HybridSBRClassifier": "needs groups; tests/test_trust.py",
}

EXPORTED = [
    getattr(spectclf, name)
    for name in spectclf.__all__
    if isinstance(getattr(spectclf, name), type)
    and issubclass(getattr(spectclf, name), BaseEstimator)
    and name not in ELSEWHERE
]
ESTIMATORS = [_build(cls) for cls in EXPORTED]
VOLUME_TRANSFORMERS = [
    e for e in ESTIMATORS if hasattr(e, "transform") and not hasattr(e, "steps")
]


def test_every_export_is_covered():
    names = {c.__name__ for c in EXPORTED} | set(ELSEWHERE)
    expected = {
        "Spect3DClassifier",
        "TunedClassifier",
        "PatientPipeline",
        "SBRFeatures",
        "IntensityNormalizer",
        "VolumeResizer",
        "CenterCrop",
        "ColormapToIntensity",
        "ToGrayscale",
        "StriatumCrop",
    }
    assert expected <= names


def _expected_failures(estimator) -> dict[str, str]:
    if isinstance(estimator, spectclf.PatientPipeline):
        return {
            "check_estimators_overwrite_params": "like imblearn's and scikit-learn's "
            "Pipeline with memory, fit stores the fitted clones of its steps in steps"
        }
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        # TunedClassifier without groups says so; here every row is a "patient"
        warnings.simplefilter("ignore", PatientLeakageWarning)
        check(estimator)


def _volumes(channels=1):
    rng = np.random.default_rng(0)
    # large enough for CenterCrop's default block (24, 48, 48)
    return (rng.random((4, channels, 28, 52, 52)) + 0.1).astype(np.float32)


@pytest.mark.parametrize(
    "transformer", VOLUME_TRANSFORMERS, ids=lambda e: type(e).__name__
)
def test_volume_transformer_contract(transformer):
    channels = 3 if type(transformer).__name__ in ("ColormapToIntensity",) else 1
    X = _volumes(channels)
    before = X.copy()
    params = copy.deepcopy(transformer.get_params())
    est = clone(transformer)
    assert est.fit(X) is est  # fit returns self
    assert est.get_params() == params  # fit does not change parameters
    out = est.transform(X)
    np.testing.assert_array_equal(X, before)  # input untouched
    assert isinstance(out, np.ndarray) and len(out) == len(X)
    np.testing.assert_array_equal(est.transform(X), out)  # deterministic
    np.testing.assert_array_equal(est.transform(X[::-1]), out[::-1])  # row-wise
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X), out)
    with pytest.raises(ValueError):
        est.transform(X[:, 0, 0, 0])  # 2-D input is refused with a ValueError
