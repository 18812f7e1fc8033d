"""Optuna tuning under patient-grouped CV: results, refit, resumable storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import optuna
import pytest
from sklearn.linear_model import LogisticRegression

from spectclf import Spect3DClassifier, tune
from spectclf.exceptions import PatientLeakageError, TuningError
from spectclf.tuning import default_pruner


def _data(seed=0):
    rng = np.random.default_rng(seed)
    y = np.tile([1, 2, 3, 4], 6)
    X = rng.normal(size=(24, 3)) + y[:, None]
    return X, y, np.arange(24)


def _space(trial):
    return {"C": trial.suggest_float("C", 1e-3, 10, log=True)}


def test_tune_default_space_returns_fitted_classifier(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(max_epochs=1, batch_size=4, random_state=0)
    res = tune(clf, d.X, d.y, d.groups, n_trials=3, cv=3, random_state=0, verbose=0)
    assert len(res.study.trials) == 3
    assert res.best_estimator.predict(d.X).shape == (12,)
    assert res.best_estimator.get_params()["module__width"] in (8, 12, 16)
    assert 0.0 <= res.best_score <= 1.0
    assert res.best_params["lr"] == res.study.best_trial.params["lr"]


def test_tune_refuses_missing_groups():
    X, y, _ = _data()
    with pytest.raises(PatientLeakageError, match="groups"):
        tune(LogisticRegression(), X, y, None, search_space=_space)


def test_sqlite_study_resumes(tmp_path):
    X, y, groups = _data()
    url = f"sqlite:///{tmp_path / 'study.db'}"
    kw = dict(
        search_space=_space,
        cv=3,
        storage=url,
        study_name="s",
        verbose=0,
        random_state=0,
        refit=False,
    )
    first = tune(LogisticRegression(max_iter=200), X, y, groups, n_trials=2, **kw)
    assert len(first.study.trials) == 2
    first_params = [t.params for t in first.study.trials]
    second = tune(LogisticRegression(max_iter=200), X, y, groups, n_trials=5, **kw)
    study = optuna.load_study(study_name="s", storage=url)
    assert len(study.trials) == 5  # 3 more, the first 2 kept
    assert [t.params for t in study.trials[:2]] == first_params
    assert second.best_score == study.best_value


def test_a_failed_trial_records_why_and_is_counted_by_kind(tmp_path):
    from spectclf.tuning import describe_trials, trial_counts

    X, y, groups = _data()
    url = f"sqlite:///{tmp_path / 'study.db'}"

    def broken(trial):
        trial.suggest_float("C", 0.1, 1.0)
        raise ValueError("no such parameter: clf__bogus")

    with pytest.raises(ValueError, match="bogus"):
        tune(
            LogisticRegression(), X, y, groups, n_trials=1, search_space=broken,
            storage=url, study_name="s", verbose=0, refit=False,
        )  # fmt: skip
    study = optuna.load_study(study_name="s", storage=url)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["fail_kind"] == "error"
    assert (
        trial.user_attrs["fail_reason"] == "ValueError: no such parameter: clf__bogus"
    )
    counts = trial_counts(study)
    assert counts["error"] == 1 and sum(counts.values()) == 1
    assert describe_trials(study) == "1 error"


def test_killed_trial_is_failed_and_retried(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    block = tmp_path / "block"
    started = tmp_path / "started"
    block.touch()
    script = textwrap.dedent(f"""
        import time, pathlib, numpy as np
        from sklearn.linear_model import LogisticRegression
        from spectclf import tune
        block, started = pathlib.Path({str(block)!r}), pathlib.Path({str(started)!r})
        def space(trial):
            params = {{"C": trial.suggest_float("C", 1e-3, 10, log=True)}}
            if trial.number == 1 and block.exists():
                started.touch()
                time.sleep(120)
            return params
        rng = np.random.default_rng(0)
        y = np.tile([1, 2, 3, 4], 6)
        X = rng.normal(size=(24, 3)) + y[:, None]
        tune(LogisticRegression(max_iter=200), X, y, np.arange(24), n_trials=3, cv=3,
             search_space=space, storage={url!r}, study_name="k", refit=False,
             heartbeat_interval=1, grace_period=2, verbose=0)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while not started.exists():
            assert proc.poll() is None, "tuning process ended early"
            assert time.time() < deadline, "trial 1 never started"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    block.unlink()
    study = optuna.load_study(study_name="k", storage=url)
    assert study.trials[1].state == optuna.trial.TrialState.RUNNING
    # rerun at once, within the heartbeat's grace period: the dead local process's
    # trial is recognised at start, failed and retried
    X, y, groups = _data()
    tune(
        LogisticRegression(max_iter=200),
        X,
        y,
        groups,
        n_trials=3,
        cv=3,
        search_space=_space,
        storage=url,
        study_name="k",
        refit=False,
        heartbeat_interval=1,
        grace_period=2,
        verbose=0,
    )
    study = optuna.load_study(study_name="k", storage=url)
    states = [t.state for t in study.trials]
    assert states[1] == optuna.trial.TrialState.FAIL
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    retried = [t for t in study.trials if t.user_attrs.get("retried_from") == 1]
    assert len(retried) == 1 and retried[0].params == study.trials[1].params
    assert retried[0].state == optuna.trial.TrialState.COMPLETE


def test_nested_cv_tunes_inside_outer_folds():
    from spectclf import nested_cv

    X, y, groups = _data()
    seen = []

    def space(trial):
        seen.append(trial.number)
        return _space(trial)

    res = nested_cv(
        LogisticRegression(max_iter=200),
        X,
        y,
        groups,
        n_trials=2,
        outer_cv=3,
        inner_cv=2,
        search_space=space,
        random_state=0,
        verbose=0,
    )
    assert len(res.estimators) == 3 and len(res.per_fold["qwk"]) == 3
    # three studies of two trials each, plus one refit per outer fold
    assert len(seen) == 3 * 2 + 3
    for est in res.estimators:
        assert set(est.best_params_) == {"C"}
        assert est.best_estimator_.C == est.best_params_["C"]


def test_default_space_keeps_the_users_sampler_and_fits_every_network():
    from spectclf import AugmentingOverSampler, PatientPipeline
    from spectclf.tuning import default_search_space

    sampler = AugmentingOverSampler(random_state=0)
    pipe = PatientPipeline(
        [("balance", sampler), ("clf", Spect3DClassifier(module="seed_cnn"))]
    )
    for number in range(8):
        trial = optuna.trial.FixedTrial(
            {
                "augment_strength": 0.5,
                "lr": 1e-3,
                "weight_decay": 1e-3,
                "dropout": 0.1,
                "width": 8,
                "imbalance": ["class_weight", "none"][number % 2],
            },
            number=number,
        )
        params = default_search_space(trial, pipe)
        assert "balance" not in params  # the user's sampler is never replaced
        assert "clf__module__width" not in params  # seed_cnn has no width
        pipe.set_params(**params)  # every suggestion is a valid parameter
    assert pipe.named_steps["balance"] is sampler
    free = PatientPipeline([("balance", "passthrough"), ("clf", Spect3DClassifier())])
    fixed = {
        "augment_strength": 0.0,
        "lr": 1e-3,
        "weight_decay": 1e-3,
        "dropout": 0.1,
        "width": 8,
        "imbalance": "oversample",
    }
    params = default_search_space(optuna.trial.FixedTrial(fixed), free)
    assert params["clf__module__width"] == 8
    assert type(params["balance"]).__name__ == "VolumeRandomOverSampler"


def test_first_fold_reports_every_epoch_on_held_out_training_patients(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(max_epochs=3, batch_size=4, random_state=0, verbose=0)
    seen = {}
    original = Spect3DClassifier.fit

    def spy(self, X, y=None, groups=None):
        seen.setdefault("fits", []).append(
            (set(np.asarray(groups).tolist()), self.valid_size, self.callbacks)
        )
        fitted = original(self, X, y, groups=groups)
        seen.setdefault("valid", []).append(fitted.valid_groups_)
        return fitted

    Spect3DClassifier.fit = spy
    try:
        res = tune(
            clf,
            d.X,
            d.y,
            d.groups,
            n_trials=1,
            cv=3,
            random_state=0,
            verbose=0,
            refit=False,
            pruner=optuna.pruners.NopPruner(),
            epoch_pruning=True,
        )
    finally:
        Spect3DClassifier.fit = original
    trial = res.study.trials[0]
    # steps 0-2: the first fold's epochs; 3, 4, 5: after each fold
    assert sorted(trial.intermediate_values) == [0, 1, 2, 3, 4, 5]
    (train0, valid_size, callbacks), *later = seen["fits"]
    assert valid_size == 0.2 and [n for n, _ in callbacks] == ["pruning"]
    assert all(v is None and c is None for _, v, c in later)  # later folds: plain fits
    # the held-out patients are training patients of the first fold, never test ones
    test0 = set(d.groups.tolist()) - train0
    assert set(seen["valid"][0].tolist()) <= train0
    assert not set(seen["valid"][0].tolist()) & test0


def test_a_pruned_trial_stops_inside_the_first_fold(small_phantoms):
    d = small_phantoms
    storage = optuna.storages.InMemoryStorage()
    fits = []
    original = Spect3DClassifier.fit

    def spy(self, X, y=None, groups=None):
        fits.append(len(X))
        return original(self, X, y, groups=groups)

    Spect3DClassifier.fit = spy
    try:
        with pytest.raises(TuningError, match="No trial"):
            tune(
                Spect3DClassifier(max_epochs=6, batch_size=4, random_state=0),
                d.X,
                d.y,
                d.groups,
                n_trials=1,
                cv=3,
                random_state=0,
                verbose=0,
                storage=storage,
                study_name="s",
                # every score is below 2: pruned as soon as warm-up (2 epochs) ends
                pruner=optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=2),
                epoch_pruning=True,
            )
    finally:
        Spect3DClassifier.fit = original
    trial = optuna.load_study(study_name="s", storage=storage).trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [0, 1, 2]  # epochs 1-3 of fold 1
    assert len(fits) == 1  # no second fold was fitted


def _steps_until_pruned(pruner, earlier: list[float], values, n_steps: int):
    """Tell one complete trial per value of ``earlier`` (that value at every step),
    then report ``values(step)`` at every step of a new trial: the first step at
    which the pruner stops it, or None."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for v in earlier:
        t = study.ask()
        for step in range(n_steps):
            t.report(v, step)
            t.should_prune()  # successive halving records its rungs here
        study.tell(t, v)
    t = study.ask()
    for step in range(n_steps):
        t.report(values(step), step)
        if t.should_prune():
            return step
    return None


@pytest.mark.parametrize("epochs, first_rung", [(10, 2), (30, 6), (3, 1)])
def test_default_pruner_judges_first_at_a_fifth_of_the_epochs(epochs, first_rung):
    earlier = [0.5, 0.6, 0.7]

    def stop(values):
        return _steps_until_pruned(default_pruner(epochs), earlier, values, epochs)

    # the worst trial so far is stopped at the first rung, not before
    assert stop(lambda step: 0.1) == first_rung
    # the best one runs every epoch
    assert stop(lambda step: 0.9) is None
    # one that falls to the bottom after the first rung is stopped at the second,
    # three times later
    if 3 * first_rung < epochs:
        assert (
            stop(lambda step: 0.9 if step < 3 * first_rung else 0.1) == 3 * first_rung
        )


def test_default_pruner_on_fold_scores_waits_for_five_trials_and_two_folds():
    earlier = [0.5, 0.6, 0.7, 0.8, 0.9]
    assert _steps_until_pruned(default_pruner(), earlier, lambda s: 0.1, 3) == 1
    assert _steps_until_pruned(default_pruner(), earlier[:4], lambda s: 0.1, 3) is None


def _one_trial(d, **kwargs):
    """A one-trial, 2-fold study of a 3-epoch classifier on ``d``."""
    clf = Spect3DClassifier(max_epochs=3, batch_size=4, random_state=0, verbose=0)
    return tune(
        clf, d.X, d.y, d.groups, n_trials=1, cv=2, random_state=0, verbose=0,
        refit=False, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("epoch_pruning, expected", [(True, 3), (False, None)])
def test_tune_sizes_its_default_pruner_to_what_is_reported(
    small_phantoms, monkeypatch, epoch_pruning, expected
):
    import spectclf.tuning as tuning

    asked = []

    def spy(max_epochs=None):
        asked.append(max_epochs)
        return optuna.pruners.NopPruner()

    monkeypatch.setattr(tuning, "default_pruner", spy)
    res = _one_trial(small_phantoms, epoch_pruning=epoch_pruning)
    # the first fold's epochs, or None for fold scores only
    assert asked == [expected]
    steps = sorted(res.study.trials[0].intermediate_values)
    assert steps == ([0, 1, 2, 3, 4] if epoch_pruning else [0, 1])


def test_tune_prunes_after_whole_folds_by_default(small_phantoms):
    res = _one_trial(small_phantoms)
    assert sorted(res.study.trials[0].intermediate_values) == [0, 1]
    assert isinstance(res.study.pruner, optuna.pruners.MedianPruner)


def test_tune_refuses_an_unknown_epoch_pruning(small_phantoms):
    d = small_phantoms
    with pytest.raises(TypeError, match="epoch_pruning must be True or False"):
        tune(Spect3DClassifier(), d.X, d.y, d.groups, epoch_pruning="yes")
