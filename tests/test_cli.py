"""The spectclf command line, end to end on tiny data."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from spectclf.cli import main

TINY = ["--epochs", "1", "--shape", "8", "16", "16", "--verbose", "0"]


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    from spectclf import make_spect_phantoms, write_slice_folders

    d = make_spect_phantoms((4, 4, 4, 4), shape=(8, 24, 24), random_state=0)
    root = tmp_path_factory.mktemp("cli") / "cohort"
    write_slice_folders(d.X, d.y, d.groups, root)
    return root


def _evaluate(cohort_dir, out, *extra):
    argv = ["evaluate", str(cohort_dir), "--cv", "2", "--colormap", "hot"]
    return main([*argv, "--out", str(out), *TINY, *extra])


def test_evaluate_writes_report(cohort_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert _evaluate(cohort_dir, out, "--repeats", "2") == 0
    assert capsys.readouterr().out == ""  # --verbose 0: nothing, not even the CNN's
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["per_fold"]["balanced_accuracy"]) == 4  # 2 repeats x 2 folds
    assert len(metrics["per_repeat"]["balanced_accuracy"]) == 2
    assert "baseline" in metrics
    timing = metrics["timing"]  # each repeat's time, and the sum against R x one CV
    per_repeat = [float(t) for t in timing["time per repeat (s)"].split(", ")]
    assert len(per_repeat) == 2 and min(per_repeat) > 0
    fits = timing["fit_time_s"]  # 4 folds, repeat by repeat
    for r, seconds in enumerate(per_repeat):
        assert seconds >= sum(fits[2 * r : 2 * r + 2]) - 0.01
    assert sum(per_repeat) <= timing["cross-validation time (s)"] + 0.1
    ratio = timing["2 repeats vs 2 x the first"].split("(")[1].split(" x")[0]
    # the times are shown to 0.01 s and the ratio to 0.01
    total, first = sum(per_repeat), per_repeat[0]
    low, high = (total - 0.01) / (first + 0.005), (total + 0.01) / (first - 0.005)
    assert low - 0.005 <= float(ratio) <= high + 0.005
    assert "time per repeat (s)" in (out / "index.html").read_text()
    comparison = metrics["comparison"]
    assert comparison["models"] == ["CNN", "SBR baseline"]
    for name in ("balanced_accuracy", "qwk", "recall_stage_4", "log_loss"):
        m = comparison["metrics"][name]
        assert {"estimate", "ci_low", "ci_high", "p_value"} <= set(m)
        a = np.asarray(metrics["per_fold"][name])
        b = np.asarray(metrics["baseline"]["per_fold"][name])
        assert m["estimate"] == pytest.approx(np.mean(a - b))
    # provenance: versions, every parameter, the partitions, the input's hash
    prov = metrics["provenance"]
    assert {"spectclf", "torch", "scikit-learn", "skorch", "python"} <= set(
        prov["versions"]
    )
    assert prov["params"]["clf__max_epochs"] == 1
    assert prov["command"][:2] == ["spectclf", "evaluate"]
    assert prov["data"]["n_files"] == 16 * 8 and len(prov["data"]["array_sha256"]) == 64
    partitions = prov["partitions"]
    assert len(partitions) == 2 and partitions[0] != partitions[1]
    for repeat in partitions:
        ids = [p for fold in repeat for p in fold]
        assert len(ids) == len(set(ids)) == 16
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 32 and {r["true_stage"] for r in rows} == {"1", "2", "3", "4"}
    for r in (1, 2):  # every patient once per repeat, in the fold the partition says
        mine = [row for row in rows if row["repeat"] == str(r)]
        assert sorted(row["patient_id"] for row in mine) == sorted(
            p for fold in partitions[r - 1] for p in fold
        )
        for row in mine:
            assert row["patient_id"] in partitions[r - 1][int(row["fold"]) - 1]
    for png in (
        "confusion_matrix.png",
        "fold_scores.png",
        "roc_ovr.png",
        "learning_curves.png",
        "paired_differences.png",
    ):
        assert (out / png).stat().st_size > 1000
    html = (out / "index.html").read_text()
    assert "confusion_matrix.png" in html and "SBR baseline" in html
    assert "CNN vs SBR baseline" in html and "Provenance" in html
    methods = (out / "methods.md").read_text()
    assert "2-fold cross-validation, repeated 2 times" in methods
    assert "16 patients (stage 1: 4, stage 2: 4, stage 3: 4, stage 4: 4)" in methods
    assert "'hot' colour table" in methods and "TRIPOD+AI" in methods
    assert "| preprocessing | resize; norm; crop |" in methods  # not the model
    assert "trained for 1 epoch with batch size" in methods


def test_evaluate_rerun_reproduces_metrics_exactly(cohort_dir, tmp_path):
    out = tmp_path / "report"
    assert _evaluate(cohort_dir, out, "--repeats", "2") == 0
    first = json.loads((out / "metrics.json").read_text())
    assert _evaluate(cohort_dir, out, "--repeats", "2") == 0
    second = json.loads((out / "metrics.json").read_text())
    assert first.pop("timing") != {} and second.pop("timing") != {}
    assert first == second
    # another seed gives other partitions (the check above can fail)
    assert _evaluate(cohort_dir, out, "--repeats", "2", "--random-state", "1") == 0
    third = json.loads((out / "metrics.json").read_text())
    assert third["provenance"]["partitions"] != first["provenance"]["partitions"]


def _walk(parser, path=("spectclf",)):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))
        elif action.help != argparse.SUPPRESS:
            yield " ".join(path), action


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    from spectclf.cli import build_parser

    actions = list(_walk(build_parser()))
    assert len({cmd for cmd, _ in actions}) == 7  # spectclf + six commands
    missing = [
        f"{cmd} {'/'.join(a.option_strings) or a.dest}"
        for cmd, a in actions
        if not (a.help or "").strip()
    ]
    assert not missing, f"options without help: {missing}"
    flags = (argparse._StoreTrueAction, argparse._HelpAction, argparse._VersionAction)
    no_default = [
        f"{cmd} {'/'.join(a.option_strings)}"
        for cmd, a in actions
        if a.option_strings and not isinstance(a, flags) and "default" not in a.help
    ]
    assert not no_default, f"options whose help hides their default: {no_default}"


def test_train_predict_explain(cohort_dir, tmp_path):
    model = tmp_path / "m.safetensors"
    assert (
        main(
            ["train", str(cohort_dir), "--colormap", "hot", "--out", str(model), *TINY]
        )
        == 0
    )
    preds = tmp_path / "p.csv"
    assert (
        main(
            [
                "predict",
                str(model),
                str(cohort_dir / "stage_2"),
                "--out",
                str(preds),
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(preds)))
    assert [r["patient_id"] for r in rows] == ["P005", "P006", "P007", "P008"]
    probs = np.array([[float(r[f"p_stage_{s}"]) for s in (1, 2, 3, 4)] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-3)
    # a single model's uncertainty is 1 - max probability; colours fit the colormap
    for r, p in zip(rows, probs, strict=True):
        assert float(r["uncertainty"]) == pytest.approx(1 - p.max(), abs=1e-3)
        assert float(r["colour_residual"]) < 10
        assert (r["check"] == "yes") == (1 - p.max() > 0.5)
    out = tmp_path / "explain"
    assert (
        main(
            [
                "explain",
                str(model),
                str(cohort_dir / "stage_1" / "P001"),
                "--out",
                str(out),
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    assert np.load(out / "saliency.npy").shape == (1, 5, 10, 10)  # cropped
    assert (out / "saliency.png").exists()


def test_predict_flags_colours_off_the_models_colormap(cohort_dir, tmp_path):
    from spectclf import make_spect_phantoms, write_slice_folders

    # the SBR model extrapolates garbled intensities to confident stages
    model = tmp_path / "sbr.safetensors"
    argv = ["train", str(cohort_dir), "--colormap", "hot", "--model", "sbr"]
    assert main([*argv, "--out", str(model), "--verbose", "0"]) == 0
    # patients rendered with "jet" but read as the model's "hot"
    d = make_spect_phantoms((4, 0, 0, 0), shape=(8, 24, 24), random_state=3)
    write_slice_folders(d.X, d.y, d.groups, tmp_path / "jet", colormap="jet")
    preds = tmp_path / "p.csv"
    with pytest.warns(UserWarning, match="far from the 'hot' colormap"):
        main(["predict", str(model), str(tmp_path / "jet" / "stage_1"), "--out",
              str(preds), "--verbose", "0"])  # fmt: skip
    rows = list(csv.DictReader(open(preds)))
    assert len(rows) == 4
    # flagged for their colours, even where the model is sure of itself
    assert any(float(r["uncertainty"]) < 0.5 for r in rows)
    assert all(float(r["colour_residual"]) > 10 and r["check"] == "yes" for r in rows)
    # read through the colormap they were rendered with: on the table again
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*far from the", category=UserWarning)
        main(["predict", str(model), str(tmp_path / "jet" / "stage_1"), "--out",
              str(preds), "--colormap", "jet", "--verbose", "0"])  # fmt: skip
    rows = list(csv.DictReader(open(preds)))
    assert all(float(r["colour_residual"]) < 10 for r in rows)


def test_predict_colormap_refused_for_a_grey_model(cohort_dir, tmp_path, capsys):
    model = tmp_path / "sbr.safetensors"
    argv = ["train", str(cohort_dir), "--color", "gray", "--model", "sbr"]
    assert main([*argv, "--out", str(model), "--verbose", "0"]) == 0
    rc = main(["predict", str(model), str(cohort_dir), "--colormap", "jet"])
    assert rc == 2
    assert "not through a colormap" in capsys.readouterr().err


def test_tune_command(cohort_dir, tmp_path):
    out = tmp_path / "tuned.safetensors"
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert (
        main(
            [
                "tune",
                str(cohort_dir),
                "--trials",
                "2",
                "--cv",
                "2",
                "--storage",
                db,
                "--colormap",
                "hot",
                "--out",
                str(out),
                *TINY,
            ]
        )
        == 0
    )
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["trials"] == 2


@pytest.mark.parametrize("flag, expected", [([], False), (["--epoch-pruning"], True)])
def test_tune_command_prunes_by_epoch_only_when_asked(
    cohort_dir, tmp_path, monkeypatch, flag, expected
):
    import spectclf.tuning

    seen, real_tune = [], spectclf.tuning.tune

    def spy(*args, **kwargs):
        seen.append(kwargs["epoch_pruning"])
        return real_tune(*args, **kwargs)

    monkeypatch.setattr(spectclf.tuning, "tune", spy)
    out = tmp_path / "tuned.safetensors"
    argv = ["tune", str(cohort_dir), "--trials", "1", "--cv", "2", "--out", str(out)]
    assert main([*argv, *flag, *TINY]) == 0
    assert seen and set(seen) == {expected}  # the study, then the refit of its best


def test_tune_command_with_two_workers_shares_a_sqlite_study(
    cohort_dir, tmp_path, capfd
):
    import optuna

    out = tmp_path / "tuned.safetensors"
    argv = ["tune", str(cohort_dir), "--trials", "2", "--cv", "2", "--workers", "2"]
    assert main([*argv, "--colormap", "hot", "--out", str(out), *TINY]) == 0
    err = capfd.readouterr().err  # the helper process writes here too
    assert "usage:" not in err and "spectclf tune: error" not in err, err
    db = tmp_path / "tuned.db"  # the default storage, next to --out
    study = optuna.load_study(study_name="spectclf", storage=f"sqlite:///{db}")
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["best_trial"] == study.best_trial.number
    outcome = summary["trials_by_outcome"]
    assert outcome["complete"] + outcome["pruned"] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "/nonexistent/folder"], "does not exist"),
        (["predict", "missing.joblib", "."], "does not exist"),
        (["evaluate", ".", "--epochs", "0"], "--epochs must be >= 1"),
        (["train", ".", "--epochs", "-3"], "--epochs must be >= 1"),
    ],
)
def test_user_errors_exit_2_without_traceback(argv, message, capsys, tmp_path):
    if argv[1] == ".":
        argv = [argv[0], str(tmp_path), *argv[2:]]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err and "error" in err
    if message:
        assert message in err


def test_bad_argument_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", ".", "--cv", "1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    rc = main(
        [
            "demo",
            "--quick",
            "--out",
            str(out),
            "--data-home",
            str(tmp_path / "cache"),
            "--epochs",
            "2",
            "--verbose",
            "0",
        ]
    )
    assert rc == 0
    for name in (
        "index.html",
        "metrics.json",
        "predictions.csv",
        "model.safetensors",
        "reliability.png",
        "stage_montage.png",
        "confusion_matrix.png",
    ):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["info"]["patients"] == 29
    assert len(metrics["per_fold"]["qwk"]) == 3


def test_train_ensemble_then_predict_flags_uncertain(cohort_dir, tmp_path):
    model = tmp_path / "ens.safetensors"
    argv = ["train", str(cohort_dir), "--ensemble", "2", "--out", str(model), *TINY]
    assert main(argv) == 0
    preds = tmp_path / "p.csv"
    assert (
        main(["predict", str(model), str(cohort_dir / "stage_3"), "--out", str(preds)])
        == 0
    )
    rows = list(csv.DictReader(open(preds)))
    assert len(rows) == 4
    for r in rows:
        probs = [float(r[f"p_stage_{s}"]) for s in (1, 2, 3, 4)]
        assert float(r["uncertainty"]) >= 1 - max(probs) - 1e-3
        assert r["check"] in ("yes", "no")
        assert (r["check"] == "yes") == (float(r["uncertainty"]) > 0.5)
    assert main(["train", str(cohort_dir), "--ensemble", "1", *TINY]) == 2


def test_orientation_and_overlay_options_travel_with_the_model(cohort_dir, tmp_path):
    from spectclf.io import load_patient_folders
    from spectclf.model_io import load_model

    model = tmp_path / "m.safetensors"
    argv = ["train", str(cohort_dir), "--colormap", "hot", "--out", str(model)]
    flags = ["--slice-order", "reverse", "--flip-lr", "--keep-overlays"]
    assert main([*argv, *flags, *TINY, "--epochs", "3"]) == 0
    bundle = load_model(model)
    assert bundle.extra["load"] == {
        "color": "colormap",
        "colormap": "hot",
        "target_shape": None,
        "slice_order": "reverse",
        "flip_lr": True,
        "overlays": "keep",
        "on_error": "raise",
    }
    preds = tmp_path / "p.csv"
    patients = cohort_dir / "stage_3"
    assert main(["predict", str(model), str(patients), "--out", str(preds)]) == 0
    rows = list(csv.DictReader(open(preds)))
    got = np.array([[float(r[f"p_stage_{s}"]) for s in (1, 2, 3, 4)] for r in rows])
    # predict reads new patients as the training patients were read
    data = load_patient_folders(
        patients, colormap="hot", slice_order="reverse", flip_lr=True
    )
    np.testing.assert_allclose(got, bundle.model.predict_proba(data.X), atol=1e-4)
    plain = load_patient_folders(patients, colormap="hot")
    assert np.abs(got - bundle.model.predict_proba(plain.X)).max() > 5e-4


def test_predict_on_a_staged_cohort_reports_the_known_stages(cohort_dir, tmp_path):
    model = tmp_path / "sbr.safetensors"
    argv = ["train", str(cohort_dir), "--colormap", "hot", "--model", "sbr"]
    assert main([*argv, "--out", str(model), "--verbose", "0"]) == 0
    preds = tmp_path / "p.csv"
    argv = ["predict", str(model), str(cohort_dir), "--out", str(preds)]
    assert main([*argv, "--verbose", "0"]) == 0
    rows = list(csv.DictReader(open(preds)))
    assert len(rows) == 16
    # every patient of every stage folder, each with the stage its folder names
    for r in rows:
        assert r["true_stage"] == str((int(r["patient_id"][1:]) - 1) // 4 + 1)
