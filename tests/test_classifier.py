"""Spect3DClassifier: the scikit-learn contract, learning, weights, repeatability."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from spectclf import Spect3DClassifier, make_default_pipeline, make_spect_phantoms
from spectclf.exceptions import PatientLeakageWarning

FAST = dict(max_epochs=3, batch_size=4, module__width=4, random_state=0)


@pytest.fixture(scope="module")
def separable():
    """Stages 1 and 4 only: clearly separable phantoms, train and test cohorts."""
    kw = dict(shape=(16, 32, 32), counts=200.0, between_patient_sd=0.05)
    train = make_spect_phantoms((12, 0, 0, 12), random_state=1, **kw)
    test = make_spect_phantoms((10, 0, 0, 10), random_state=2, **kw)
    return train, test


@pytest.fixture(scope="module")
def fitted(small_phantoms):
    d = small_phantoms
    return Spect3DClassifier(**FAST).fit(d.X, d.y)


def test_learns_separable_stages(separable):
    train, test = separable
    # the default pipeline (normalise, crop, ResNet with augmentation), few epochs
    model = make_default_pipeline(
        (16, 32, 32), max_epochs=15, module__width=8, random_state=2
    )
    model.fit(train.X, train.y)
    score = balanced_accuracy_score(test.y, model.predict(test.X))
    assert score >= 0.8, score
    losses = model.named_steps["clf"].history_[:, "train_loss"]
    assert losses[-1] < losses[0]


def test_default_pipeline_balances_once():
    from spectclf import VolumeRandomOverSampler

    def weight(pipe):
        return pipe.named_steps["clf"].class_weight

    assert weight(make_default_pipeline()) == "balanced"
    # a sampler already balances the stages: no loss weights on top
    assert weight(make_default_pipeline(sampler=VolumeRandomOverSampler())) is None
    assert weight(make_default_pipeline(class_weight=None)) is None
    # so does the logit-adjusted loss
    assert weight(make_default_pipeline(criterion="logit_adjusted")) is None
    assert make_default_pipeline().named_steps["clf"].max_epochs == 30


def test_labels_probabilities_and_attributes(fitted, small_phantoms):
    d = small_phantoms
    assert fitted.classes_.tolist() == [1, 2, 3, 4]
    proba = fitted.predict_proba(d.X)
    assert proba.shape == (12, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert set(fitted.predict(d.X)) <= {1, 2, 3, 4}
    assert fitted.input_shape_ == (1, 12, 24, 24)
    assert len(fitted.history_) == 3
    assert isinstance(fitted.module_, torch.nn.Module)


def test_string_labels_and_4d_input(small_phantoms):
    d = small_phantoms
    y = np.array(["HY" + str(s) for s in d.y])
    clf = Spect3DClassifier(**FAST).fit(d.X[:, 0], y)
    assert clf.classes_.tolist() == ["HY1", "HY2", "HY3", "HY4"]
    assert clf.predict(d.X[:2, 0]).dtype == y.dtype


def assert_same_run(a, b):
    """Bit-identical on the CPU; GPU kernels are not bit-deterministic (seen on an
    H200: differences of ~1e-8 after a fit, ~5e-7 after a refit)."""
    if torch.cuda.is_available():
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(a, b)


def test_repeatable_with_random_state(small_phantoms):
    d = small_phantoms
    a = Spect3DClassifier(**FAST).fit(d.X, d.y).predict_proba(d.X)
    b = Spect3DClassifier(**FAST).fit(d.X, d.y).predict_proba(d.X)
    assert_same_run(a, b)
    c = Spect3DClassifier(**{**FAST, "random_state": 1}).fit(d.X, d.y)
    assert not np.array_equal(a, c.predict_proba(d.X))


def test_clone_pickle_joblib_round_trips(fitted, small_phantoms, tmp_path):
    d = small_phantoms
    expected = fitted.predict_proba(d.X)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(fitted)).predict_proba(d.X), expected
    )
    joblib.dump(fitted, tmp_path / "m.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "m.joblib").predict_proba(d.X), expected
    )
    cloned = clone(fitted)
    assert cloned.get_params()["module__width"] == 4
    assert not hasattr(cloned, "classes_")
    assert_same_run(cloned.fit(d.X, d.y).predict_proba(d.X), expected)


def test_nested_params_and_typo_hint():
    clf = Spect3DClassifier(module__width=8)
    clf.set_params(module__dropout=0.1, optimizer__weight_decay=0.0, lr=0.5)
    params = clf.get_params()
    assert params["module__width"] == 8 and params["module__dropout"] == 0.1
    assert params["lr"] == 0.5
    with pytest.raises(ValueError, match="Did you mean 'max_epochs'"):
        clf.set_params(max_epoch=3)
    with pytest.raises(ValueError, match="Did you mean 'batch_size'"):
        Spect3DClassifier(batch__size=3).fit(np.zeros((4, 1, 2, 2, 2)), [0, 1, 0, 1])


def test_grid_search_with_patient_groups(small_phantoms):
    d = small_phantoms
    grid = GridSearchCV(
        Spect3DClassifier(max_epochs=2, batch_size=4, random_state=0),
        {"module__width": [2, 4], "lr": [1e-3, 1e-2]},
        cv=StratifiedGroupKFold(n_splits=3),
        scoring="balanced_accuracy",
    )
    grid.fit(d.X, d.y, groups=d.groups)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_estimator_.get_params()["module__width"] in (2, 4)


def test_class_weight_reaches_the_loss(small_phantoms):
    d = small_phantoms
    y = d.y.copy()
    clf = Spect3DClassifier(
        **{**FAST, "max_epochs": 1}, class_weight={1: 1.0, 2: 1.0, 3: 1.0, 4: 5.0}
    ).fit(d.X, y)
    criterion = clf.net_.criterion_.to("cpu")  # a GPU run keeps it on the GPU
    weight = criterion.weight
    assert weight.tolist() == [1.0, 1.0, 1.0, 5.0]
    logits = torch.randn(6, 4)
    target = torch.tensor([0, 3, 3, 1, 2, 3])
    manual = (
        -(weight[target] * torch.log_softmax(logits, 1)[range(6), target]).sum()
        / weight[target].sum()
    )
    torch.testing.assert_close(criterion(logits, target), manual)
    balanced = Spect3DClassifier(**{**FAST, "max_epochs": 1}, class_weight="balanced")
    yb = np.array([1] * 9 + [4] * 3)
    w = balanced.fit(d.X, yb).net_.criterion_.weight
    np.testing.assert_allclose(w.tolist(), [12 / (2 * 9), 12 / (2 * 3)])
    with pytest.raises(ValueError, match=r"labels \[7\]"):
        Spect3DClassifier(**FAST, class_weight={7: 2.0}).fit(d.X, d.y)


def test_grouped_internal_validation(small_phantoms):
    d = small_phantoms
    # two rows per patient (e.g. resampled copies): validation must hold out both
    X = np.concatenate([d.X, d.X])
    y = np.concatenate([d.y, d.y])
    groups = np.concatenate([d.groups, d.groups])
    clf = Spect3DClassifier(**FAST, valid_size=0.25).fit(X, y, groups=groups)
    valid_rows = clf.net_.train_split.valid_indices
    train_rows = np.setdiff1d(np.arange(len(y)), valid_rows)
    assert not set(groups[valid_rows]) & set(groups[train_rows])
    assert set(clf.valid_groups_) == set(groups[valid_rows])
    assert "valid_loss" in clf.history_[-1]
    with pytest.raises(ValueError, match="groups has 12 entries but X has 24 rows"):
        Spect3DClassifier(**FAST, valid_size=0.25).fit(X, y, groups=d.groups)


def test_slices_without_groups_warn():
    X = np.random.default_rng(0).normal(size=(12, 16, 16)).astype(np.float32)
    y = np.repeat([0, 1], 6)
    with pytest.warns(PatientLeakageWarning, match="groups"):
        Spect3DClassifier(**FAST, valid_size=0.3).fit(X, y)


def test_early_stopping_restores_best(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(
        **{**FAST, "max_epochs": 30}, early_stopping=True, n_iter_no_change=2, lr=0.05
    )
    clf.fit(d.X, d.y, groups=d.groups)
    assert len(clf.history_) < 30
    valid_losses = [row["valid_loss"] for row in clf.history_]
    best = int(np.argmin(valid_losses))
    assert best < len(valid_losses) - 1  # it stopped after the best epoch...
    stopper = dict(clf.net_.callbacks_)["early_stopping"]
    restored = clf.module_.state_dict()
    for name, value in stopper.best_model_weights_.items():  # ...and went back to it
        torch.testing.assert_close(restored[name], value)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"max_epochs": 0}, "max_epochs"),
        ({"lr": -1}, "lr"),
        ({"valid_size": 1.5}, "valid_size"),
        ({"module": "vgg"}, "resnet3d"),
        ({"class_weight": "auto"}, "class_weight"),
        ({"augment": "lots"}, "augment"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_bad_parameters_named(params, match, small_phantoms):
    with pytest.raises(ValueError, match=match):
        Spect3DClassifier(**{**FAST, **params}).fit(small_phantoms.X, small_phantoms.y)


def test_wrong_volume_shape_at_predict(fitted):
    with pytest.raises(ValueError, match=r"fitted on \(1, 12, 24, 24\)"):
        fitted.predict(np.zeros((1, 1, 12, 24, 20), np.float32))


def test_seed_cnn_and_bf16_paths(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(
        module="seed_cnn", max_epochs=1, batch_size=4, random_state=0
    ).fit(d.X, d.y)
    assert clf.predict_proba(d.X).shape == (12, 4)
    # bf16 on torch's CPU kernels sometimes yields NaN gradients: the documented
    # outcomes are valid probabilities or our FloatingPointError, never NaN output
    try:
        clf = Spect3DClassifier(**FAST, precision="bf16", channels_last=True)
        proba = clf.fit(d.X, d.y).predict_proba(d.X)
    except FloatingPointError as exc:
        assert "precision='fp32'" in str(exc)
    else:
        np.testing.assert_allclose(proba.sum(1), 1.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_contract(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(**FAST, device="cuda").fit(d.X, d.y)
    assert next(clf.module_.parameters()).is_cuda
    np.testing.assert_allclose(clf.predict_proba(d.X).sum(1), 1.0)


def test_diverging_training_stops_with_clear_error(small_phantoms):
    d = small_phantoms
    with pytest.raises(FloatingPointError, match="Training loss became"):
        Spect3DClassifier(**{**FAST, "max_epochs": 5}, lr=1e12, augment=False).fit(
            d.X * 1e6, d.y
        )


def test_duplicated_rows_without_groups_stay_together(small_phantoms):
    from spectclf import VolumeRandomOverSampler

    d = small_phantoms
    y = np.array([1] * 6 + [2] * 3 + [3] * 3)
    Xr, yr = VolumeRandomOverSampler(random_state=0).fit_resample(d.X, y)
    with pytest.warns(PatientLeakageWarning, match="repeated"):
        clf = Spect3DClassifier(**FAST, valid_size=0.3).fit(Xr, yr)
    valid = clf.net_.train_split.valid_indices
    train = np.setdiff1d(np.arange(len(yr)), valid)
    train_rows = {Xr[i].tobytes() for i in train}
    assert not any(Xr[i].tobytes() in train_rows for i in valid)


def test_nan_probabilities_raise(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(**{**FAST, "max_epochs": 1}).fit(d.X, d.y)
    with torch.no_grad():
        clf.module_.head.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="NaN or infinite probabilities"):
        clf.predict_proba(d.X)


def test_cheap_augmentation_only_flips_the_unresampled():
    from spectclf.augment import VolumeAugmenter

    x = torch.rand(16, 1, 4, 6, 6)
    aug = VolumeAugmenter(intensity=0, noise=0, resample_fraction=0.0)
    out = aug(x, generator=torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(o, v.flip(-1))) for o, v in zip(out, x, strict=True)]
    same = [bool(torch.equal(o, v)) for o, v in zip(out, x, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))  # exact voxels
    assert any(flipped) and any(same)
    full = VolumeAugmenter(intensity=0, noise=0, resample_fraction=1.0)
    out = full(x, generator=torch.Generator().manual_seed(0))
    assert not any(torch.equal(o, v) for o, v in zip(out, x, strict=True))
