"""Ordinal-aware metrics and scorers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import cohen_kappa_score

from spectclf import stage_report
from spectclf.metrics import (
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
