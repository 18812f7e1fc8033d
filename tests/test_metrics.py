"""Ordinal-aware metrics and scorers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import cohen_kappa_score

from spectclf import stage_report
from spectclf.metrics import (
    calibrated_resamples,
    calibration_p_value,
    ece_sampling_floor,
    expected_calibration_error,
    get_scorers,
    mean_absolute_stage_error,
    quadratic_weighted_kappa,
    stage_recall,
)


def test_qwk_matches_sklearn_on_known_inputs():
    rng = np.random.default_rng(0)
    y_true = rng.integers(1, 5, 50)
    y_pred = np.clip(y_true + rng.integers(-1, 2, 50), 1, 4)
    expected = cohen_kappa_score(y_true, y_pred, weights="quadratic")
    assert quadratic_weighted_kappa(y_true, y_pred) == pytest.approx(expected)
    # a near miss costs less than a far miss
    assert quadratic_weighted_kappa(
        [1, 2, 3, 4], [1, 2, 3, 3]
    ) > quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 3, 1])


def test_mae_and_recall():
    assert mean_absolute_stage_error([1, 4, 4], [2, 2, 4]) == pytest.approx(1.0)
    assert stage_recall([4, 4, 4, 1], [4, 3, 4, 4], stage=4) == pytest.approx(2 / 3)
    assert np.isnan(stage_recall([1, 2], [1, 2], stage=4))


def test_scorers_in_cross_validate():
    from sklearn.model_selection import cross_validate

    X = np.zeros((40, 2))
    y = np.tile([1, 2, 3, 4], 10)
    res = cross_validate(
        DummyClassifier(strategy="constant", constant=4),
        X,
        y,
        cv=2,
        scoring=get_scorers(),
    )
    assert res["test_recall_stage_4"].tolist() == [1.0, 1.0]
    assert res["test_recall_stage_1"].tolist() == [0.0, 0.0]
    assert res["test_mae"].mean() == pytest.approx(-1.5)  # greater is better
    assert res["test_qwk"].mean() == pytest.approx(0.0)


def test_stage_report_table():
    text = stage_report([1, 1, 4, 4], [1, 4, 4, 4], print_=False)
    lines = text.splitlines()
    assert lines[1].split() == ["1", "2", "0.500", "1.000", "0.667"]
    assert "balanced accuracy 0.750" in lines[-1]


def test_ece_sampling_floor_matches_the_binomial_mean_deviation():
    # one bin, confidence 0.7 on n patients: a calibrated model's bin accuracy is
    # Binomial(n, 0.7) / n, whose mean absolute deviation is ~ sqrt(2/pi * .21 / n)
    proba = np.tile([0.7, 0.2, 0.1], (100, 1))
    expected = np.sqrt(2 / np.pi * 0.21 / 100)
    assert ece_sampling_floor(proba, n_resamples=4000) == pytest.approx(
        expected, rel=0.05
    )
    # certain predictions are never off; more patients, lower floor
    assert ece_sampling_floor(np.eye(3)[[0, 1, 2, 0]]) == 0.0
    assert ece_sampling_floor(np.tile([0.7, 0.3], (1000, 1))) < expected / 2


def test_ece_of_calibrated_predictions_averages_to_the_floor():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 165)
    proba = np.c_[conf, 1 - conf]
    eces = [
        expected_calibration_error(
            np.where(rng.random(165) < conf, 0, 1), proba, [0, 1]
        )
        for _ in range(300)
    ]
    assert np.mean(eces) == pytest.approx(ece_sampling_floor(proba), rel=0.1)


def test_calibration_p_value_is_uniform_when_calibrated_and_small_when_not():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 150)
    proba = np.c_[conf, 1 - conf]
    p_calibrated = np.array(
        [
            calibration_p_value(
                np.where(rng.random(150) < conf, 0, 1), proba, [0, 1], n_resamples=400
            )
            for _ in range(200)
        ]
    )
    # a valid test: about 10 % of calibrated samples fall below 0.1, half below 0.5
    assert 0.04 < np.mean(p_calibrated < 0.1) < 0.18
    assert 0.4 < np.mean(p_calibrated < 0.5) < 0.6
    # over-confident: the truth only follows a softened confidence
    truth = 0.5 + (conf - 0.5) * 0.5
    y = np.where(rng.random(150) < truth, 0, 1)
    assert calibration_p_value(y, proba, [0, 1]) < 0.01


def test_calibrated_resamples_bins():
    proba = np.array([[0.95, 0.05]] * 30 + [[0.55, 0.45]] * 10)
    accuracy, ece = calibrated_resamples(proba, n_bins=10, n_resamples=500)
    assert accuracy.shape == (500, 10) and ece.shape == (500,)
    assert np.isnan(accuracy[:, :5]).all() and np.isnan(accuracy[:, 6:9]).all()
    assert np.nanmean(accuracy[:, 9]) == pytest.approx(0.95, abs=0.01)
    assert np.nanmean(accuracy[:, 5]) == pytest.approx(0.55, abs=0.02)
    # each resample's ECE weighs the bins by their patients (30 and 10)
    gaps = 30 * np.abs(accuracy[:, 9] - 0.95) + 10 * np.abs(accuracy[:, 5] - 0.55)
    np.testing.assert_allclose(ece, gaps / 40)


def test_reliability_diagram_draws_the_calibrated_range():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import LineCollection

    from spectclf.plotting import plot_reliability

    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 120)
    proba = np.c_[conf, 1 - conf]
    y = np.where(rng.random(120) < conf, 0, 1)
    fig = plot_reliability(y, proba, [0, 1])
    ax = fig.axes[0]
    (band,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = band.get_segments()
    assert len(segments) == 5  # confidences 0.5-1.0 fill 5 of the 10 bins
    for (x0, lo), (x1, hi) in segments:
        assert x0 == x1 and lo < x0 < hi  # each range straddles the diagonal
    floor = ece_sampling_floor(proba)
    assert f"~{floor:.3f}" in ax.get_title()
    assert f"p = {calibration_p_value(y, proba, [0, 1]):.2f}" in ax.get_title()
