"""No patient on both sides of any split, through every wrapper a user may choose.

A matrix: wrappers (scikit-learn's, Optuna's and ours, with and without metadata
routing) x data (one volume per patient, repeated scans, 2-D slices) x estimators
(bare classifier, PatientPipeline with a sampler, plain scikit-learn and imblearn
pipelines). The classifier here is a spy: each row of X carries its true patient
number in its first voxel, so the spy counts the patients its internal validation
split put on both sides, whatever groups it was (or was not) given. Every cell must
end with zero leaked patients, or a PatientLeakageWarning, or a clear error.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from spectclf import (
    PatientPipeline,
    Spect3DClassifier,
    TunedClassifier,
    VolumeRandomOverSampler,
    evaluate,
    nested_cv,
    tune,
)
from spectclf.exceptions import PatientLeakageError, PatientLeakageWarning

LEAKS: list[int] = []


class SpyClassifier(Spect3DClassifier):
    """Records how many patients its validation split put on both sides."""

    def fit(self, X, y, groups=None):
        super().fit(X, y, groups=groups)
        split = self.net_.train_split
        if split is None:
            LEAKS.append(0)
            return self
        ids = np.rint(np.asarray(X).reshape(len(X), -1)[:, 0]).astype(int)
        valid = np.zeros(len(ids), dtype=bool)
        valid[split.valid_indices] = True
        LEAKS.append(len(set(ids[valid]) & set(ids[~valid])))
        return self


def _spy():
    return SpyClassifier(
        max_epochs=1,
        batch_size=8,
        module__width=2,
        valid_size=0.3,
        augment=False,
        verbose=0,
        random_state=0,
    )


def _data(kind: str):
    """12 patients (3 per stage); the first voxel of every row is its patient."""
    rng = np.random.default_rng(0)
    per = {"volume": 1, "repeated": 3, "slices": 3}[kind]
    patients = np.repeat(np.arange(12), per)
    y = np.repeat(np.tile([1, 2, 3, 4], 3), per)
    shape = (6, 6) if kind == "slices" else (1, 4, 6, 6)
    X = rng.normal(size=(len(y), *shape)).astype(np.float32) + y.reshape(
        -1, *[1] * len(shape)
    )
    X.reshape(len(X), -1)[:, 0] = patients
    return X, y, np.array([f"P{p:02d}" for p in patients], dtype=object)


ESTIMATORS = {
    "classifier": lambda: _spy(),
    "patient_pipeline": lambda: PatientPipeline(
        [("balance", VolumeRandomOverSampler(random_state=0)), ("clf", _spy())]
    ),
    "sklearn_pipeline": lambda: Pipeline(
        [("identity", FunctionTransformer()), ("clf", _spy())]
    ),
    "imblearn_pipeline": lambda: ImbPipeline(
        [("balance", VolumeRandomOverSampler(random_state=0)), ("clf", _spy())]
    ),
}


def _prefix(est) -> str:
    return "clf__" if hasattr(est, "steps") else ""


def _no_space(trial):
    return {}


def _gridsearch(est, X, y, g, routing):
    grid = {f"{_prefix(est)}lr": [0.01]}
    GridSearchCV(est, grid, cv=StratifiedGroupKFold(3), error_score="raise").fit(
        X, y, groups=g
    )


def _cross_validate(est, X, y, g, routing):
    kw = {"params": {"groups": g}} if routing else {"groups": g}
    cross_validate(est, X, y, cv=StratifiedGroupKFold(3), error_score="raise", **kw)


def _optuna_search(est, X, y, g, routing):
    integration = pytest.importorskip("optuna_integration")
    from optuna.distributions import FloatDistribution

    space = {f"{_prefix(est)}lr": FloatDistribution(0.005, 0.01)}
    integration.OptunaSearchCV(
        est, space, cv=StratifiedGroupKFold(3), n_trials=1, error_score="raise"
    ).fit(X, y, groups=g)


def _evaluate(est, X, y, g, routing):
    evaluate(est, X, y, g, cv=3, random_state=0, verbose=0)


def _tune(est, X, y, g, routing):
    tune(est, X, y, g, n_trials=1, cv=3, search_space=_no_space, verbose=0)


def _nested(est, X, y, g, routing):
    nested_cv(est, X, y, g, n_trials=1, outer_cv=3, inner_cv=2, verbose=0)


def _tuned_in_cross_validate(est, X, y, g, routing):
    tuned = TunedClassifier(est, n_trials=1, cv=2, search_space=_no_space)
    _cross_validate(tuned, X, y, g, routing)


WRAPPERS = {
    "GridSearchCV": _gridsearch,
    "cross_validate": _cross_validate,
    "OptunaSearchCV": _optuna_search,
    "evaluate": _evaluate,
    "tune": _tune,
    "nested_cv": _nested,
    "TunedClassifier": _tuned_in_cross_validate,
}

# Where groups can reach the classifier, nothing may leak and nothing need be said.
OURS = {"evaluate", "tune", "nested_cv"}
ROUTED = {"GridSearchCV", "cross_validate", "TunedClassifier"}
GROUPABLE = {"classifier", "patient_pipeline", "sklearn_pipeline"}


@pytest.mark.parametrize("routing", [False, True], ids=["no-routing", "routing"])
@pytest.mark.parametrize("data", ["volume", "repeated", "slices"])
@pytest.mark.parametrize("estimator", list(ESTIMATORS))
@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_no_silent_patient_leakage(wrapper, estimator, data, routing):
    if wrapper == "OptunaSearchCV" and routing:
        pytest.skip(
            "optuna-integration's OptunaSearchCV breaks under scikit-learn metadata "
            "routing (TypeError in its score bookkeeping), with any estimator"
        )
    X, y, g = _data(data)
    LEAKS.clear()
    error = None
    with sklearn.config_context(enable_metadata_routing=routing):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                WRAPPERS[wrapper](ESTIMATORS[estimator](), X, y, g, routing)
            except (PatientLeakageError, ValueError) as exc:
                error = exc
    warned = any(issubclass(w.category, PatientLeakageWarning) for w in caught)
    if error is not None:
        # refusing is allowed, but only with a message that says what to do
        assert isinstance(error, PatientLeakageError) or "PatientPipeline" in str(
            error
        ), error
        assert estimator == "imblearn_pipeline" or wrapper == "TunedClassifier", error
        return
    assert LEAKS, "the classifier was never fitted"
    assert sum(LEAKS) == 0 or warned, f"{sum(LEAKS)} leaked patients, no warning"
    strict = wrapper in OURS or (routing and wrapper in ROUTED)
    if strict and estimator in GROUPABLE:
        assert sum(LEAKS) == 0 and not warned


def test_unrouted_gridsearch_leaks_are_the_ones_we_warn_about():
    """The spy would see leaks here: the warning is not decoration."""
    X, y, g = _data("repeated")
    LEAKS.clear()
    with pytest.warns(PatientLeakageWarning, match="enable_metadata_routing"):
        _gridsearch(_spy(), X, y, g, routing=False)
    assert sum(LEAKS) > 0


def test_imblearn_pipeline_with_sampler_is_refused_by_evaluate():
    X, y, g = _data("repeated")
    with pytest.raises(PatientLeakageError, match="PatientPipeline"):
        _evaluate(ESTIMATORS["imblearn_pipeline"](), X, y, g, routing=False)
