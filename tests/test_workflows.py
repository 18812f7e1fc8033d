"""The jobs of spectclf.workflows: the tuning job and the load options a model keeps."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import optuna
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.utils import Bunch

from spectclf import load_model, make_spect_phantoms, write_slice_folders
from spectclf.cli import build_parser
from spectclf.exceptions import UsageError
from spectclf.io import load_slice_folders
from spectclf.load_options import load_for_prediction, save_for_prediction
from spectclf.workflows import tune_and_save

TINY = {"shape": (8, 16, 16), "epochs": 1, "verbose": 0}


@pytest.fixture(scope="module")
def cohort():
    return make_spect_phantoms((3, 3, 3, 3), shape=(8, 24, 24), random_state=0)


def test_tune_and_save_saves_the_best_trial_and_its_summary(cohort, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    path = tmp_path / "tuned.safetensors"
    res = tune_and_save(
        cohort,
        path,
        model_options=TINY,
        load_options={"color": "gray"},
        n_trials=3,
        cv=2,
        storage=storage,
        verbose=0,
    )
    assert (res.path, res.summary) == (path, tmp_path / "tuned.json")
    best = optuna.load_study(study_name="spectclf", storage=storage).best_trial
    summary = json.loads(res.summary.read_text())
    assert summary["trials"] == 3 and summary["best_trial"] == best.number
    assert summary["best_score"] == pytest.approx(best.value)
    assert summary["best_params"] == {
        k: repr(v) for k, v in res.tune.best_params.items()
    }
    # the model file holds the best trial's parameters and the load options
    bundle = load_model(path)
    params = bundle.model.get_params()
    assert params["clf__lr"] == pytest.approx(best.params["lr"])
    assert params["clf__module__dropout"] == pytest.approx(best.params["dropout"])
    assert bundle.extra["load"] == {"color": "gray"}
    np.testing.assert_allclose(
        bundle.model.predict_proba(cohort.X),
        res.tune.best_estimator.predict_proba(cohort.X),
        atol=1e-5,
    )


def test_tune_and_save_starts_helper_workers_on_one_study(
    cohort, tmp_path, monkeypatch
):
    started, envs, real_popen = [], [], subprocess.Popen

    class Helper:  # a helper worker that tunes nothing; the second one fails
        def __init__(self, cmd, *args, env=None, **kwargs):
            started.append(cmd)
            envs.append(env)
            self.code = int(len(started) == 2)

        def wait(self):
            return self.code

    def popen(cmd, *args, **kwargs):
        if "spectclf.cli" in cmd:
            return Helper(cmd, **kwargs)
        return real_popen(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    # a six-core machine (the thread counts are only recorded, never set)
    set_threads = []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 6)
    monkeypatch.setattr(torch, "set_num_threads", set_threads.append)
    argv = ["tune", "cohort", "--trials", "1", "--workers", "3", "--out", "t"]
    res = tune_and_save(
        cohort,
        tmp_path / "t.safetensors",
        model_options=TINY,
        n_trials=1,
        cv=2,
        n_workers=3,
        worker_args=argv,
        verbose=0,
    )
    storage = f"sqlite:///{tmp_path / 't.db'}"  # the default: next to the model
    assert res.storage == storage and res.failed_workers == 1
    assert len(started) == 2
    for k, cmd in enumerate(started, start=1):
        assert cmd[:3] == [sys.executable, "-m", "spectclf.cli"]
        # what a helper parses: this study, no workers of its own, no refit
        args = build_parser().parse_args(cmd[3:])
        assert (args.storage, args.workers, args.worker_id) == (storage, 1, k)
        assert args.worker_only and args.trials == 1 and args.data_dir == "cohort"
    # six cores, three workers: two torch threads each, helpers and this process
    assert [e["OMP_NUM_THREADS"] for e in envs] == ["2", "2"]
    assert set_threads == [2, 6]  # this process's, restored after the study
    study = optuna.load_study(study_name="spectclf", storage=storage)
    assert len(study.trials) == 1
    assert json.loads(res.summary.read_text())["trials"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "sbr"}, "model 'cnn'"),
        ({"n_trials": 0}, "n_trials must be an int >= 1, got 0"),
        ({"n_trials": 2.0}, "n_trials must be an int"),
        ({"n_workers": 0}, "n_workers must be an int >= 1, got 0"),
        ({"n_workers": 2}, "n_workers=2 needs worker_args"),
        ({"n_workers": 2, "worker_args": ["train", "x"]}, "needs worker_args"),
        ({"model_options": {"epochs": 0}}, "epochs must be"),
    ],
)
def test_tune_and_save_names_the_bad_parameter(cohort, tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        tune_and_save(cohort, tmp_path / "t.safetensors", verbose=0, **kwargs)
    assert list(tmp_path.iterdir()) == []  # refused before any study or file


def _fitted(data):
    flat = data.X.reshape(len(data.X), -1)[:, :4]
    return LogisticRegression().fit(flat, data.y)


def test_load_options_read_new_patients_as_the_training_patients(tmp_path):
    d = make_spect_phantoms((2, 2, 2, 2), shape=(8, 24, 24), random_state=1)
    write_slice_folders(d.X, d.y, d.groups, tmp_path / "c", colormap="jet")
    data = load_slice_folders(tmp_path / "c", slice_order="reverse")  # auto colormap
    options = {"colormap": "auto", "slice_order": "reverse"}
    path = save_for_prediction(
        _fitted(data), tmp_path / "m.safetensors", data=data, load_options=options
    )
    # the colormap as resolved on the training data, not "auto"
    assert load_model(path).extra["load"] == {
        "colormap": "jet",
        "slice_order": "reverse",
    }
    model, new = load_for_prediction(path, tmp_path / "c" / "stage_2")
    assert new.colormap == "jet"
    np.testing.assert_array_equal(new.X, data.X[data.y == 2])
    assert isinstance(model, LogisticRegression)
    # a cohort pooled from sites keeps detecting each new patient's map
    pooled = Bunch(colormap="jet", colormaps=np.array(["jet", "hot"]))
    path = save_for_prediction(_fitted(data), tmp_path / "p.safetensors", data=pooled)
    assert load_model(path).extra["load"] == {"colormap": "auto"}
