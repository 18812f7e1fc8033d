"""Predictions to trust: ordinal loss, calibration, ensemble spread, the hybrid, and
the localiser that makes the default pipeline follow the anatomy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectclf import (
    HybridSBRClassifier,
    SBRFeatures,
    Spect3DClassifier,
    StageEnsemble,
    make_spect_phantoms,
)
from spectclf.anatomy import locate_striatum
from spectclf.exceptions import PatientLeakageError
from spectclf.losses import CornLoss, LogitAdjustedLoss, corn_probabilities
from spectclf.metrics import expected_calibration_error

FAST = dict(module__width=4, random_state=0, verbose=0)


def _ordinal_toy(n_per=30, noise=0.8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([1, 2, 3, 4], n_per)
    X = (y[:, None] + rng.normal(size=(len(y), 4)) * noise).astype(np.float32)
    return X, y, np.arange(len(y))


def test_corn_loss_and_probabilities_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    p = corn_probabilities(logits)[0]
    s = torch.sigmoid(logits[0])
    survival = torch.cumprod(s, 0)
    expected = torch.stack(
        [
            1 - survival[0],
            survival[0] - survival[1],
            survival[1] - survival[2],
            survival[2],
        ]
    )
    torch.testing.assert_close(p, expected)
    assert float(p.sum()) == pytest.approx(1.0)
    # a stage-1 sample only trains the first task, a stage-3 sample the first three
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    loss = CornLoss()(logits.repeat(2, 1), torch.tensor([0, 2]))
    by_hand = (
        bce(logits[0, :1], torch.tensor([0.0]), reduction="sum")
        + bce(logits[0], torch.tensor([1.0, 1.0, 0.0]), reduction="sum")
    ) / 4
    torch.testing.assert_close(loss, by_hand)


def test_logit_adjusted_loss_shifts_the_margin_by_the_training_priors():
    # 9 : 3 training stages -> log priors log(0.75), log(0.25)
    X = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    y = np.array([1] * 9 + [4] * 3)
    clf = Spect3DClassifier(criterion="logit_adjusted", max_epochs=1, **FAST).fit(X, y)
    loss = clf.net_.criterion_
    np.testing.assert_allclose(loss.log_prior.numpy(), np.log([0.75, 0.25]), rtol=1e-6)
    logits = torch.tensor([[0.5, 0.2], [0.1, 0.9]])
    target = torch.tensor([0, 1])
    by_hand = -torch.log_softmax(logits + loss.log_prior, dim=1)[[0, 1], target].mean()
    torch.testing.assert_close(loss(logits, target), by_hand)
    # tau scales the adjustment; class weights still apply on top
    half = LogitAdjustedLoss(loss.log_prior, tau=0.5, weight=torch.tensor([1.0, 3.0]))
    weighted = torch.nn.functional.cross_entropy(
        logits + 0.5 * loss.log_prior, target, weight=torch.tensor([1.0, 3.0])
    )
    torch.testing.assert_close(half(logits, target), weighted)
    # prediction uses the raw logits: the adjustment is a training-time margin only
    net = clf.module_.eval()
    with torch.no_grad():
        x = torch.as_tensor(X[:4]).reshape(4, 1, 1, 1, 3)
        raw = torch.softmax(net(x.to(next(net.parameters()).device)), 1).cpu()
    np.testing.assert_allclose(clf.predict_proba(X[:4]), raw.numpy(), atol=1e-5)


def test_ordinal_classifier_is_a_distribution_that_respects_order():
    X, y, g = _ordinal_toy()
    clf = Spect3DClassifier(criterion="corn", max_epochs=30, **FAST).fit(X, y)
    grid = np.linspace(0, 5, 26, dtype=np.float32)[:, None].repeat(4, axis=1)
    proba = clf.predict_proba(grid)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba >= 0).all()
    # P(stage > k) never increases with k, and grows with the stage signal
    survival = 1.0 - np.cumsum(proba, axis=1)[:, :-1]
    assert (np.diff(survival, axis=1) <= 1e-9).all()
    expected_stage = proba @ clf.classes_
    assert (np.diff(expected_stage) >= -1e-6).all()
    assert expected_stage[-1] - expected_stage[0] > 2
    assert (clf.predict(X) == y).mean() > 0.7


def test_temperature_lowers_ece_of_an_overconfident_model():
    X, y, g = _ordinal_toy(n_per=20, noise=1.6)
    Xt, yt, _ = _ordinal_toy(n_per=60, noise=1.6, seed=1)
    # no regularisation, many epochs, a wide net: it memorises its noisy training
    # patients and is far too sure of itself on new ones
    common = dict(
        max_epochs=100,
        lr=0.01,
        weight_decay=0.0,
        lr_schedule=None,
        valid_size=0.25,
        module__width=8,
        module__dropout=0.0,
        random_state=0,
        verbose=0,
    )
    raw = Spect3DClassifier(**common).fit(X, y, groups=g)
    cal = Spect3DClassifier(calibration="temperature", **common).fit(X, y, groups=g)
    assert cal.temperature_ > 1.0  # the raw network is over-confident
    np.testing.assert_array_equal(raw.predict(Xt), cal.predict(Xt))  # same argmax
    ece_raw = expected_calibration_error(yt, raw.predict_proba(Xt), raw.classes_)
    ece_cal = expected_calibration_error(yt, cal.predict_proba(Xt), cal.classes_)
    assert ece_cal < ece_raw


def test_ensemble_spread_is_zero_for_identical_members():
    X, y, g = _ordinal_toy(n_per=8)
    member = Spect3DClassifier(max_epochs=3, **FAST).fit(X, y)
    ens = StageEnsemble.from_fitted([member, member, member])
    np.testing.assert_allclose(ens.predict_spread(X), 0.0, atol=1e-12)
    np.testing.assert_allclose(ens.predict_proba(X), member.predict_proba(X))
    unc = ens.predict_uncertainty(X)
    np.testing.assert_allclose(unc, 1 - member.predict_proba(X).max(axis=1))


def test_ensemble_members_differ_and_need_groups():
    from sklearn.linear_model import LogisticRegression

    X, y, g = _ordinal_toy(n_per=10, noise=1.5)
    ens = StageEnsemble(LogisticRegression(), cv=5, random_state=0).fit(X, y, groups=g)
    assert len(ens.estimators_) == 5
    assert ens.predict_spread(X).max() > 0
    assert ens.oof_proba_.shape == (40, 4)
    flags = ens.predict_uncertain(X)
    assert flags.dtype == bool and flags.any() and not flags.all()
    with pytest.raises(PatientLeakageError, match="groups"):
        StageEnsemble(LogisticRegression(), cv=5).fit(X, y)


def test_hybrid_refuses_ungrouped_stacking_and_stacks_oof(small_phantoms):
    d = small_phantoms
    cnn = Spect3DClassifier(max_epochs=1, **FAST)
    with pytest.raises(PatientLeakageError, match="groups"):
        HybridSBRClassifier(cnn, cv=3).fit(d.X, d.y)
    hyb = HybridSBRClassifier(cnn, cv=3, random_state=0).fit(d.X, d.y, groups=d.groups)
    proba = hyb.predict_proba(d.X)
    assert proba.shape == (12, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    n_features = hyb.combiner_[-1].coef_.shape[1]
    assert n_features == 4 + SBRFeatures().fit(d.X).n_features_out_


GEOMETRIES = {
    "whole_head": {},
    "slab_si": {"fov_centre": (-0.1, 0.0, 0.0), "fov_extent": (0.9, 0.45, 0.9)},
    "slab_ap": {"fov_centre": (-0.1, 0.0, 0.0), "fov_extent": (0.45, 0.8, 0.9)},
    "shifted_zoomed": {"fov_centre": (0.1, -0.15, 0.1), "fov_extent": 0.8},
    "flipped": {"flip": (True, False, True)},
}


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_localiser_finds_the_striatum(geometry):
    d = make_spect_phantoms(
        (2, 2, 2, 4), shape=(30, 48, 48), random_state=3, **GEOMETRIES[geometry]
    )
    extent = np.broadcast_to(GEOMETRIES[geometry].get("fov_extent", 1.0), 3)
    mm_per_voxel = 200.0 * extent / np.array(d.X.shape[2:])  # whole field ~200 mm
    for vol, truth, stage in zip(d.X[:, 0], d.striatum_voxel, d.y, strict=True):
        loc = locate_striatum(vol)
        error_mm = np.abs(loc.centre - truth) * mm_per_voxel
        # within 20 mm on each axis, stage 4 included (the striatum is ~50 mm long)
        assert (error_mm < 20).all(), (geometry, stage, error_mm)


def test_localiser_falls_back_when_nothing_stands_out():
    rng = np.random.default_rng(0)
    flat = np.zeros((30, 48, 48), np.float32)
    # a "brain" without any hotter structure (a stage-4 scan at the extreme)
    flat[5:25, 8:40, 8:40] = 1.0 + rng.normal(0, 0.02, size=(20, 32, 32))
    loc = locate_striatum(flat)
    assert not loc.found
    brain_centre = np.array([14.5, 23.5, 23.5])
    # the brain's centre moved by the canonical striatal offset: a few voxels
    assert np.abs(loc.centre - brain_centre).max() < 0.1 * 48


@pytest.mark.parametrize("geometry", ["whole_head", "slab_si", "shifted_zoomed"])
def test_sbr_keeps_its_stage_order_on_every_geometry(geometry):
    d = make_spect_phantoms(
        (5, 5, 5, 5), shape=(30, 48, 48), random_state=4, **GEOMETRIES[geometry]
    )
    F = SBRFeatures().fit_transform(d.X)
    putamen = F[:, 2:4].mean(axis=1)
    by_stage = [putamen[d.y == s].mean() for s in (1, 2, 3, 4)]
    assert by_stage == sorted(by_stage, reverse=True), by_stage
