"""Ctrl-C ends work without finishing it; outputs are portable and spreadsheet-safe;
long fits show progress."""

from __future__ import annotations

import csv
import json

import numpy as np
import optuna
import pytest
from skorch.callbacks import Callback

from spectclf import Spect3DClassifier, evaluate, tune
from spectclf.cli import main
from spectclf.report import csv_safe, write_predictions

FAST = dict(max_epochs=4, batch_size=4, module__width=2, random_state=0, verbose=0)


class CtrlC(Callback):
    """Presses Ctrl-C after ``epoch`` epochs."""

    def __init__(self, epoch=1):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_in_fit_propagates_and_leaves_no_model(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(**FAST, callbacks=[("ctrl_c", CtrlC())])
    with pytest.raises(KeyboardInterrupt):
        clf.fit(d.X, d.y)
    assert not hasattr(clf, "classes_") and not hasattr(clf, "net_")


def test_evaluate_reports_nothing_partial(small_phantoms, capsys):
    d = small_phantoms
    clf = Spect3DClassifier(**FAST, callbacks=[("ctrl_c", CtrlC(2))])
    with pytest.raises(KeyboardInterrupt):
        evaluate(clf, d.X, d.y, d.groups, cv=3, verbose=1)
    assert "fold 1/3" not in capsys.readouterr().out


def test_interrupted_trial_is_failed_not_completed(small_phantoms, tmp_path):
    d = small_phantoms
    url = f"sqlite:///{tmp_path / 's.db'}"

    def space(trial):
        callbacks = [("ctrl_c", CtrlC())] if trial.number == 1 else []
        return {"callbacks": callbacks}

    with pytest.raises(KeyboardInterrupt):
        tune(
            Spect3DClassifier(**FAST),
            d.X,
            d.y,
            d.groups,
            n_trials=3,
            cv=2,
            search_space=space,
            storage=url,
            study_name="s",
            random_state=0,
            verbose=0,
        )
    states = [t.state for t in optuna.load_study(study_name="s", storage=url).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    from spectclf import make_spect_phantoms, write_slice_folders

    d = make_spect_phantoms((3, 3, 3, 3), shape=(8, 24, 24), random_state=0)
    groups = d.groups.copy()
    groups[0] = "=1+2"  # a hostile id: a formula in a spreadsheet
    root = tmp_path_factory.mktemp("cli") / "cohort"
    write_slice_folders(d.X, d.y, groups, root)
    return root


TINY = ["--epochs", "2", "--shape", "8", "16", "16", "--verbose", "0"]


def test_cli_ctrl_c_exits_130_and_writes_no_model(cohort_dir, tmp_path, monkeypatch):
    import spectclf.workflows

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(spectclf.workflows, "fit_with_groups", interrupted)
    model = tmp_path / "m.safetensors"
    assert main(["train", str(cohort_dir), "--out", str(model), *TINY]) == 130
    assert list(tmp_path.iterdir()) == []


def test_report_is_portable_and_csv_safe(cohort_dir, tmp_path):
    out = tmp_path / "report"
    rc = main(["evaluate", str(cohort_dir), "--cv", "3", "--out", str(out), *TINY])
    assert rc == 0
    for name in ("metrics.json", "index.html", "predictions.csv"):
        text = (out / name).read_text()
        assert str(tmp_path) not in text and str(cohort_dir) not in text, name
    data = json.loads((out / "metrics.json").read_text())["info"]["data"]
    assert data.startswith("..") and data.endswith("cohort")  # relative to out
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert "'=1+2" in [r["patient_id"] for r in rows]
    assert not any(
        cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values()
    )
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_csv_safe_and_writer():
    assert [csv_safe(v) for v in ["=A1", "+1", "-1", "@x", "P-1", "\tq"]] == [
        "'=A1",
        "'+1",
        "'-1",
        "'@x",
        "P-1",
        "'\tq",
    ]


def test_write_predictions_columns(tmp_path):
    path = write_predictions(
        tmp_path / "p.csv",
        np.array(["b", "a"], dtype=object),
        np.array([[0.2, 0.8], [0.6, 0.4]]),
        [1, 2],
        extra_columns={"uncertainty": np.array([0.1, 0.3])},
    )
    rows = list(csv.DictReader(open(path)))
    assert [r["patient_id"] for r in rows] == ["a", "b"]  # sorted by id
    assert rows[0]["predicted_stage"] == "1" and rows[1]["predicted_stage"] == "2"
    assert rows[0]["uncertainty"] == "0.3000"


def test_progress_lines_during_long_fits(small_phantoms, capsys, monkeypatch):
    import spectclf._skorch_net as net

    d = small_phantoms
    # a "long" fit: every epoch is past the reporting interval
    monkeypatch.setattr(net.EpochProgress, "__init__", _every(0.0))
    Spect3DClassifier(**{**FAST, "verbose": 1}).fit(d.X, d.y)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "epoch" in ln]
    assert lines[0].startswith("[spectclf] epoch 1/4: train loss ")
    assert "left)" in lines[0] and lines[-1].startswith("[spectclf] epoch 4/4")
    Spect3DClassifier(**FAST).fit(d.X, d.y)  # verbose=0: silent
    assert capsys.readouterr().out == ""


def _every(seconds):
    def init(self, every=seconds, stream=None):
        self.every, self.stream = seconds, stream

    return init
