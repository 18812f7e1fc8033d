"""The pruner replay of ``benchmarks.pruning_replay``: the docs' pruner table rests on it."""

from __future__ import annotations

import optuna
import pytest

from benchmarks.pruning_replay import replay


def _curves():
    """Three recorded trials, 2 epochs and 2 folds each: reported values, the wall
    clock at each report, and what each trial is worth (plain CV)."""

    def trial(n, level, worth, wall):
        return {
            "number": n,
            "steps": [0, 1, 2, 3],
            "intermediate": [level, level, level, level],
            "elapsed": [wall * 0.1, wall * 0.2, wall * 0.6, wall],
            "wall": wall,
            "value": level,
            "first_fold_valid": [],
            "plain_folds": [worth, worth],
            "plain_elapsed": [wall / 2, wall],
        }

    # the study's values rank trial 1 first, but trial 2 is worth the most
    return {
        "epochs": 2,
        "trials": [
            trial(0, 0.5, 0.6, 10.0),
            trial(1, 0.9, 0.7, 20.0),
            trial(2, 0.1, 0.8, 30.0),
        ],
    }


def test_without_pruning_the_study_costs_every_trial_and_picks_its_best_value():
    out = replay(_curves(), optuna.pruners.NopPruner())
    assert out["cost"] == pytest.approx(60.0) and out["pruned"] == 0
    assert out["best"] == 1 and out["worth"] == pytest.approx(0.7)


def test_a_pruned_trial_costs_the_time_up_to_its_stop():
    # below 0.3 at step 1 (the second epoch): trial 2 stops there, at 0.2 x 30 s
    pruner = optuna.pruners.ThresholdPruner(lower=0.3, n_warmup_steps=1)
    out = replay(_curves(), pruner)
    assert out["pruned"] == 1 and out["cost"] == pytest.approx(10 + 20 + 6)


def test_per_fold_replay_reports_the_running_mean_of_the_plain_folds():
    # fold means 0.6, 0.7, 0.8: the plain CV picks trial 2, at its whole plain time
    out = replay(_curves(), optuna.pruners.NopPruner(), per_fold=True)
    assert out["best"] == 2 and out["cost"] == pytest.approx(60.0)
    pruner = optuna.pruners.ThresholdPruner(lower=0.75, n_warmup_steps=0)
    out = replay(_curves(), pruner, per_fold=True)
    # trials 0 and 1 stop after their first fold (half their time)
    assert out["pruned"] == 2 and out["cost"] == pytest.approx(5 + 10 + 30)
