"""Samplers on volumes, group alignment, and PatientPipeline."""

from __future__ import annotations

import numpy as np
import pytest
from imblearn.pipeline import make_pipeline as imb_make_pipeline
from imblearn.utils.estimator_checks import (
    _get_check_estimator_ids,
    estimator_checks_generator,
)
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.model_selection import StratifiedGroupKFold, cross_validate

from spectclf import (
    AugmentingOverSampler,
    PatientPipeline,
    Spect3DClassifier,
    VolumeRandomOverSampler,
    VolumeRandomUnderSampler,
)
from spectclf.augment import VolumeAugmenter

SAMPLERS = [
    VolumeRandomOverSampler(random_state=0),
    VolumeRandomUnderSampler(random_state=0),
    AugmentingOverSampler(random_state=0),
]
# imblearn's own sampler checks plus sklearn's. Skipped, with the reason:
SKIPPED = {
    # imblearn runs it for every sampler accepting DataFrames, whatever the sparse
    # tag says; volumes are dense and our samplers declare sparse=False
    "check_samplers_pandas_sparse": "volumes are dense (sparse tag is False)",
}
CHECKS = [
    c
    for s in SAMPLERS
    for c in estimator_checks_generator(s, mark="xfail")
    if getattr(c[1], "func", c[1]).__name__ not in SKIPPED
]


@pytest.mark.parametrize("estimator, check", CHECKS, ids=_get_check_estimator_ids)
def test_imblearn_and_sklearn_checks(estimator, check):
    check(estimator)


@pytest.fixture
def imbalanced():
    rng = np.random.default_rng(0)
    y = np.array([1] * 8 + [2] * 6 + [4] * 2)
    X = rng.random((16, 1, 4, 6, 6)).astype(np.float32)
    groups = np.array([f"P{i}" for i in range(16)])
    return X, y, groups


def test_over_sampler_counts_and_groups(imbalanced):
    X, y, groups = imbalanced
    s = VolumeRandomOverSampler(random_state=0)
    Xr, yr = s.fit_resample(X, y)
    assert Xr.shape == (24, 1, 4, 6, 6)
    assert np.bincount(yr).tolist() == [0, 8, 8, 0, 8]
    gr = s.resample_groups(groups)
    # every row is an exact copy of the row of the patient it is labelled with
    for row, g in zip(Xr, gr, strict=True):
        np.testing.assert_array_equal(row, X[groups == g][0])
    s2 = VolumeRandomOverSampler(sampling_strategy={4: 5}, random_state=0)
    assert np.bincount(s2.fit_resample(X, y)[1]).tolist() == [0, 8, 6, 0, 5]


def test_under_sampler(imbalanced):
    X, y, groups = imbalanced
    s = VolumeRandomUnderSampler(random_state=0)
    Xr, yr = s.fit_resample(X, y)
    assert np.bincount(yr).tolist() == [0, 2, 2, 0, 2]
    gr = s.resample_groups(groups)
    assert len(set(gr)) == 6 and set(gr) <= set(groups)


def test_augmenting_over_sampler(small_phantoms):
    keep = np.r_[0:3, 3:6, 9:11]  # 3 + 3 + 2 patients
    X, y = small_phantoms.X[keep], np.array([1] * 8 + [2] * 6 + [4] * 2)[:8]
    y = np.array([1, 1, 1, 1, 2, 2, 2, 4])
    s = AugmentingOverSampler(random_state=0)
    Xr, yr = s.fit_resample(X, y)
    assert np.bincount(yr).tolist() == [0, 4, 4, 0, 4]
    np.testing.assert_array_equal(Xr[:8], X)
    new = Xr[8:]
    sources = X[s.sample_indices_[8:]]
    # copies are augmented, not duplicates, yet closer to their source than to others
    assert not any(np.array_equal(a, b) for a, b in zip(new, sources, strict=True))
    for a, i in zip(new, s.sample_indices_[8:], strict=True):
        corr = [np.corrcoef(a.ravel(), X[j].ravel())[0, 1] for j in range(8)]
        assert np.argmax(corr) == i
    assert (yr[8:] == y[s.sample_indices_[8:]]).all()
    again = AugmentingOverSampler(random_state=0).fit_resample(X, y)[0]
    np.testing.assert_array_equal(Xr, again)
    off = VolumeAugmenter(flip=0, rotate=0, shift=0, scale=0, intensity=0, noise=0)
    Xo, _ = AugmentingOverSampler(augmenter=off, random_state=0).fit_resample(X, y)
    np.testing.assert_allclose(Xo[8:], sources, atol=1e-5)


class _RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Records what reaches fit; predicts the majority class."""

    def fit(self, X, y, groups=None):
        self.n_fit_ = len(X)
        self.groups_ = None if groups is None else np.asarray(groups)
        self.X_ = X
        self.classes_, counts = np.unique(y, return_counts=True)
        self.major_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.major_)

    def predict_proba(self, X):
        p = (self.classes_ == self.major_).astype(float)
        return np.tile(p, (len(X), 1))


def test_oversampling_only_on_training_folds(imbalanced):
    X, y, groups = imbalanced
    seen = []

    def scorer(est, X_test, y_test):
        seen.append((est.steps[-1][1].n_fit_, len(X_test)))
        return 0.0

    pipe = imb_make_pipeline(
        VolumeRandomOverSampler(random_state=0), _RecordingClassifier()
    )
    cv = StratifiedGroupKFold(n_splits=2)
    cross_validate(pipe, X, y, groups=groups, cv=cv, scoring=scorer)
    splits = list(cv.split(X, y, groups))
    for (n_fit, n_test), (train, test) in zip(seen, splits, strict=True):
        assert n_test == len(test)  # scored fold untouched
        assert n_fit == 3 * np.bincount(y[train]).max()  # training fold resampled


def test_patient_pipeline_carries_groups(imbalanced):
    X, y, groups = imbalanced
    pipe = PatientPipeline(
        [
            ("balance", VolumeRandomOverSampler(random_state=0)),
            ("clf", _RecordingClassifier()),
        ]
    )
    pipe.fit(X, y, groups=groups)
    clf = pipe.steps[-1][1]
    assert clf.n_fit_ == 24 and len(clf.groups_) == 24
    for row, g in zip(clf.X_, clf.groups_, strict=True):
        np.testing.assert_array_equal(row, X[groups == g][0])
    assert pipe.predict(X).shape == (16,)  # samplers are skipped at predict time


def test_patient_pipeline_grouped_validation(imbalanced):
    X, y, groups = imbalanced
    pipe = PatientPipeline(
        [
            ("balance", AugmentingOverSampler(random_state=0)),
            (
                "clf",
                Spect3DClassifier(
                    max_epochs=1,
                    batch_size=4,
                    module__width=2,
                    valid_size=0.3,
                    random_state=0,
                ),
            ),
        ]
    )
    pipe.fit(X, y, groups=groups)
    clf = pipe.steps[-1][1]
    rows = clf.net_.train_split.valid_indices
    gr = pipe.steps[0][1].resample_groups(groups)
    train_rows = np.setdiff1d(np.arange(len(gr)), rows)
    # augmented copies of a validation patient never sit in the training part
    assert not set(gr[rows]) & set(gr[train_rows])


def test_unresampled_groups_are_refused(imbalanced):
    X, y, groups = imbalanced
    s = VolumeRandomOverSampler(random_state=0)
    Xr, yr = s.fit_resample(X, y)
    with pytest.raises(ValueError, match="groups has 16 entries but X has 24 rows"):
        Spect3DClassifier(max_epochs=1).fit(Xr, yr, groups=groups)
    with pytest.raises(ValueError, match="15 entries but the resampled X had 16"):
        s.resample_groups(groups[:15])


def test_sampler_without_sample_indices_is_refused_with_groups(imbalanced):
    from imblearn import FunctionSampler

    X, y, groups = imbalanced

    def add_two(X, y):
        return np.concatenate([X, X[:2]]), np.concatenate([y, y[:2]])

    pipe = PatientPipeline(
        [
            ("mine", FunctionSampler(func=add_two, validate=False)),
            ("clf", _RecordingClassifier()),
        ]
    )
    with pytest.raises(ValueError, match="'mine'.*sample_indices_"):
        pipe.fit(X, y, groups=groups)
    pipe.fit(X, y)  # without patient ids there is nothing to carry
    assert pipe.steps[-1][1].n_fit_ == 18


class _CountingScaler(TransformerMixin, BaseEstimator):
    """Scales by a constant; counts its fits in a class attribute."""

    fits = 0

    def __init__(self, factor=2.0):
        self.factor = factor

    def fit(self, X, y=None, scale_by=None):
        type(self).fits += 1
        self.factor_ = self.factor if scale_by is None else scale_by
        return self

    def transform(self, X):
        return np.asarray(X) * self.factor_


def test_patient_pipeline_memory_caches_fitted_steps(imbalanced, tmp_path):
    X, y, groups = imbalanced

    def pipe(memory):
        return PatientPipeline(
            [
                ("scale", _CountingScaler()),
                ("balance", VolumeRandomOverSampler(random_state=0)),
                ("clf", _RecordingClassifier()),
            ],
            memory=memory,
        )

    _CountingScaler.fits = 0
    plain = pipe(None).fit(X, y, groups=groups)
    cached = [pipe(str(tmp_path)).fit(X, y, groups=groups) for _ in range(3)]
    assert _CountingScaler.fits == 2  # once without memory, once for three cached fits
    for p in cached:
        np.testing.assert_array_equal(p.steps[-1][1].X_, plain.steps[-1][1].X_)
        np.testing.assert_array_equal(
            p.steps[-1][1].groups_, plain.steps[-1][1].groups_
        )
        np.testing.assert_array_equal(p.predict_proba(X), plain.predict_proba(X))


def test_patient_pipeline_routes_fit_params_by_step(imbalanced):
    X, y, groups = imbalanced
    pipe = PatientPipeline(
        [("scale", _CountingScaler()), ("clf", _RecordingClassifier())]
    )
    pipe.fit(X, y, groups=groups, scale__scale_by=3.0)
    assert pipe.steps[0][1].factor_ == 3.0
    np.testing.assert_array_equal(pipe.steps[-1][1].X_, X * 3.0)
    assert pipe.steps[-1][1].groups_ is not None  # groups still reach the final step
    with pytest.raises(ValueError, match=r"'scale_by'.*'<step>__<parameter>'"):
        pipe.fit(X, y, groups=groups, scale_by=3.0)
    with pytest.raises(ValueError, match="'nope__x'"):
        pipe.fit(X, y, nope__x=1)


def test_patient_pipeline_fit_predict_keeps_groups(imbalanced):
    X, y, groups = imbalanced
    pipe = PatientPipeline(
        [
            ("balance", VolumeRandomOverSampler(random_state=0)),
            ("clf", _RecordingClassifier()),
        ]
    )
    pred = pipe.fit_predict(X, y, groups=groups)
    assert pred.shape == (16,)  # the rows given, not the resampled ones
    assert len(pipe.steps[-1][1].groups_) == 24  # resampled ids reached the classifier
    Xt = PatientPipeline(
        [("balance", VolumeRandomOverSampler(random_state=0)), ("s", _CountingScaler())]
    ).fit_transform(X, y, groups=groups)
    np.testing.assert_array_equal(Xt, X * 2.0)
