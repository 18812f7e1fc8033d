"""A real distributed run: 3 `spectclf tune` workers on one PostgreSQL study, one of
them killed with SIGKILL in the middle of a trial.

The server comes from ``SPECTCLF_TEST_POSTGRES_URL`` (``.ci/run`` starts one), or is
started here with ``initdb`` / ``pg_ctl`` when those are on the PATH. Under CI a
missing server is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from spectclf import load_slice_folders, make_spect_phantoms, write_slice_folders


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres_user(cmd):
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres_url():
    url = os.environ.get("SPECTCLF_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL (initdb, pg_ctl) is needed in CI: see .ci/run")
        pytest.skip("PostgreSQL is not installed (initdb, pg_ctl)")
    pytest.importorskip("psycopg")
    data = Path(tempfile.mkdtemp(prefix="spectclf-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres_user(["initdb", "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres_user(
            ["pg_ctl", "-D", str(data), "-o", opts, "-l", str(data / "log"), "-w"]
            + ["start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres_user(["pg_ctl", "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


def _params(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def test_three_workers_one_killed(postgres_url, tmp_path):
    d = make_spect_phantoms((4, 4, 4, 4), shape=(8, 24, 24), random_state=0)
    cohort = tmp_path / "cohort"
    write_slice_folders(d.X, d.y, d.groups, cohort)
    study_name = f"s{os.getpid()}_{int(time.time())}"
    n_trials = 6
    common = [
        "tune",
        str(cohort),
        "--trials",
        str(n_trials),
        "--cv",
        "2",
        "--storage",
        postgres_url,
        "--study-name",
        study_name,
        "--epochs",
        "2",
        "--shape",
        "8",
        "16",
        "16",
        "--verbose",
        "0",
    ]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    start = time.perf_counter()

    def worker(k: int, *extra: str) -> subprocess.Popen:
        out = tmp_path / f"w{k}.safetensors"
        cmd = [sys.executable, "-m", "spectclf.cli", *common, "--out", str(out)]
        return subprocess.Popen([*cmd, "--worker-id", str(k), *extra], env=env)

    victim = worker(2, "--worker-only")
    # wait until the victim is inside a trial, then kill it without warning
    deadline = time.time() + 120
    killed_trial = None
    while killed_trial is None:
        assert time.time() < deadline, "the victim never started a trial"
        assert victim.poll() is None, "the victim ended before it could be killed"
        try:
            study = optuna.load_study(study_name=study_name, storage=postgres_url)
            for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                if t.user_attrs.get("pid") == victim.pid:
                    killed_trial = t.number
        except KeyError:  # the study does not exist yet
            pass
        time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    survivors = [worker(1, "--worker-only"), worker(0)]
    for p in survivors:
        assert p.wait(timeout=400) == 0
    wall = time.perf_counter() - start

    study = optuna.load_study(study_name=study_name, storage=postgres_url)
    done = study.get_trials(
        states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )
    assert len(done) == n_trials  # exactly, with three workers
    params = [_params(t) for t in done]
    assert len(set(params)) == len(params)  # no parameter set twice
    killed = study.trials[killed_trial]
    assert killed.state == optuna.trial.TrialState.FAIL
    assert "died" in killed.user_attrs["fail_reason"]
    assert killed.user_attrs["fail_kind"] == "worker died"
    # no FAIL trial without a reason a reader can see (surplus trials say so)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert all(t.user_attrs.get("fail_reason") for t in failed), [
        (t.number, t.user_attrs) for t in failed
    ]
    assert all(t.user_attrs.get("surplus") for t in failed if t.number != killed_trial)
    retried = [t for t in done if t.user_attrs.get("retried_from") == killed_trial]
    assert len(retried) == 1 and _params(retried[0]) == _params(killed)

    # the best trial is reproducible: refitting its parameters on the same folds
    # gives the same score
    from spectclf import tune
    from spectclf.workflows import build_model

    summary = json.loads((tmp_path / "w0.json").read_text())
    assert summary["best_trial"] == study.best_trial.number
    outcome = summary["trials_by_outcome"]
    assert outcome["complete"] + outcome["pruned"] == n_trials
    assert outcome["worker died"] == 1 and outcome["failed, no reason"] == 0
    assert sum(outcome.values()) == len(study.trials)
    data = load_slice_folders(cohort)
    model = build_model("cnn", shape=(8, 16, 16), epochs=2, verbose=0)
    best = study.best_trial.params
    again = tune(
        model,
        data.X,
        data.y,
        data.groups,
        n_trials=1,
        cv=2,
        random_state=0,
        search_space=lambda trial: _replay(trial, model, best),
        refit=False,
        verbose=0,
    )
    assert again.best_score == pytest.approx(study.best_value, abs=1e-9)
    print(
        f"\n[distributed tuning] 3 workers (1 killed), {len(study.trials)} trials "
        f"recorded, {n_trials} finished, 1 retried, {wall:.0f} s"
    )
    assert np.isfinite(wall)


def _replay(trial, model, params):
    from spectclf.tuning import default_search_space

    return default_search_space(optuna.trial.FixedTrial(params), model)
