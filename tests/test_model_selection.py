"""Patient-grouped splitting, leakage checks, evaluate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from spectclf import (
    PatientStratifiedGroupKFold,
    Spect3DClassifier,
    check_no_patient_leakage,
    evaluate,
)
from spectclf.exceptions import PatientLeakageError
from spectclf.model_selection import aggregate_by_patient
from spectclf.patient_groups import final_estimator


def _slice_data(n_patients=20, per_patient=3, seed=0):
    rng = np.random.default_rng(seed)
    y_p = np.tile([1, 2, 3, 4], n_patients // 4)
    groups = np.repeat(np.arange(n_patients), per_patient)
    y = np.repeat(y_p, per_patient)
    X = rng.normal(size=(len(y), 5)) + y[:, None]
    return X, y, groups


def test_splitter_is_grouped_and_stratified():
    X, y, groups = _slice_data()
    cv = PatientStratifiedGroupKFold(n_splits=5, random_state=0)
    splits = list(cv.split(X, y, groups))
    check_no_patient_leakage(splits, groups)
    for _, test in splits:
        assert set(y[test]) == {1, 2, 3, 4}


def test_splitter_refuses_missing_groups_and_small_stages():
    X, y, groups = _slice_data()
    with pytest.raises(PatientLeakageError, match="groups"):
        list(PatientStratifiedGroupKFold().split(X, y))
    with pytest.raises(ValueError, match=r"Stage 1 has 5 patient\(s\) but n_splits=6"):
        list(PatientStratifiedGroupKFold(n_splits=6).split(X, y, groups))
    bad = groups.copy()
    bad[0] = 1  # patient 1 now has a stage-1 slice and stage-2 slices
    with pytest.raises(ValueError, match="more than one stage"):
        list(PatientStratifiedGroupKFold(n_splits=2).split(X, y, bad))


def test_leakage_checker_catches_slice_level_kfold():
    X, y, groups = _slice_data()
    with pytest.raises(PatientLeakageError, match="both sides"):
        check_no_patient_leakage(
            KFold(5, shuffle=True, random_state=0).split(X), groups
        )


def test_aggregate_by_patient():
    proba = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    pats, pp, py = aggregate_by_patient(proba, ["a", "a", "b"], [1, 1, 2])
    assert pats.tolist() == ["a", "b"] and py.tolist() == [1, 2]
    np.testing.assert_allclose(pp, [[0.7, 0.3], [0.2, 0.8]])


def test_evaluate_slice_level_scores_per_patient(capsys):
    X, y, groups = _slice_data()
    res = evaluate(LogisticRegression(max_iter=500), X, y, groups, cv=5, random_state=0)
    assert len(res.patients) == 20 and sorted(res.patients) == list(range(20))
    assert res.confusion_matrix.sum() == 20
    assert len(res.per_fold["balanced_accuracy"]) == 5
    s = res.summary["balanced_accuracy"]
    assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    assert s["mean"] > 0.5  # signal is strong and per-patient averaging helps
    dummy = evaluate(DummyClassifier(), X, y, groups, cv=5, random_state=0, verbose=0)
    assert dummy.summary["balanced_accuracy"]["mean"] == pytest.approx(0.25)
    assert "fold 5/5" in capsys.readouterr().out
    with pytest.raises(PatientLeakageError):
        evaluate(DummyClassifier(), X, y, None)


@pytest.mark.parametrize("wrap", [False, True], ids=["classifier", "sklearn-pipeline"])
def test_evaluate_passes_groups_to_classifier(small_phantoms, wrap):
    d = small_phantoms
    clf = Spect3DClassifier(
        max_epochs=2,
        batch_size=4,
        module__width=2,
        valid_size=0.3,
        random_state=0,
        verbose=0,
    )
    # a plain scikit-learn Pipeline's fit has no groups= : evaluate routes them
    model = make_pipeline(FunctionTransformer(), clf) if wrap else clf
    res = evaluate(
        model,
        d.X,
        d.y,
        d.groups,
        cv=3,
        random_state=0,
        verbose=0,
        return_estimators=True,
    )
    assert len(res.histories) == 3 and "valid_loss" in res.histories[0][-1]
    patients = set(d.groups.tolist())
    for est, fold in zip(res.estimators, range(3), strict=True):
        valid = set(final_estimator(est).valid_groups_.tolist())
        test_patients = set(res.patients[res.fold == fold].tolist())
        # validation holds real patient ids, none of them from the test fold
        assert valid and valid <= patients
        assert not valid & test_patients
    assert res.proba.shape == (12, 4)


def test_evaluate_refuses_a_leaky_splitter():
    X, y, groups = _slice_data()
    with pytest.raises(PatientLeakageError, match="both sides"):
        evaluate(DummyClassifier(), X, y, groups, cv=KFold(7), verbose=0)


def test_evaluate_scores_match_the_metrics_on_each_fold():
    from sklearn.metrics import cohen_kappa_score, recall_score

    X, y, groups = _slice_data(n_patients=40)
    X = X + np.random.default_rng(1).normal(scale=3.0, size=X.shape)  # imperfect
    res = evaluate(LogisticRegression(max_iter=500), X, y, groups, cv=4, verbose=0)
    for k in range(4):
        m = res.fold == k
        yt, yp = res.y_true[m], res.y_pred[m]
        assert res.per_fold["qwk"][k] == pytest.approx(
            cohen_kappa_score(yt, yp, weights="quadratic")
        )
        recalls = recall_score(yt, yp, labels=[1, 2, 3, 4], average=None)
        for stage, r in zip([1, 2, 3, 4], recalls, strict=True):
            assert res.per_fold[f"recall_stage_{stage}"][k] == pytest.approx(r)
    assert len(set(res.per_fold["qwk"])) > 1  # the folds differ...
    lo, hi = res.summary["qwk"]["ci95"]
    mean = res.summary["qwk"]["mean"]
    assert lo < mean < hi  # ...so the interval has width
    assert res.summary["mae"]["ci95"][0] >= 0.0


def test_verbose_zero_silences_the_models_it_fits(capsys):
    from spectclf import Spect3DClassifier, compare_models, make_spect_phantoms, tune

    d = make_spect_phantoms((3, 3, 0, 0), shape=(8, 12, 12), random_state=0)
    clf = Spect3DClassifier(max_epochs=2, module__width=4, random_state=0, verbose=2)
    evaluate(clf, d.X, d.y, d.groups, cv=3, random_state=0, verbose=0)
    compare_models(clf, clf, d.X, d.y, d.groups, cv=3, n_repeats=1, random_state=0)
    tune(
        clf,
        d.X,
        d.y,
        d.groups,
        n_trials=1,
        cv=3,
        random_state=0,
        search_space=lambda trial: {"lr": trial.suggest_float("lr", 1e-3, 1e-2)},
        verbose=0,
    )
    assert capsys.readouterr().out == ""
    assert clf.verbose == 2  # the caller's estimator is left as it was
    evaluate(clf, d.X, d.y, d.groups, cv=3, random_state=0, verbose=1)
    out = capsys.readouterr().out
    assert "fold 3/3" in out and "train_loss" in out  # verbose=1: both speak
