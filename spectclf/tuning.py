"""Hyper-parameter tuning with Optuna under patient-grouped cross-validation.

Each trial runs a :class:`~spectclf.PatientStratifiedGroupKFold`; the running mean of
the fold scores is reported to Optuna after every fold, so a pruner stops bad trials
early without ever re-splitting the data. Studies in an RDB storage
(``sqlite:///study.db``, PostgreSQL...) resume after a crash or Ctrl-C, and a
heartbeat marks trials of a killed process as failed and retries them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import optuna
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import get_scorer
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from spectclf.classifier import Spect3DClassifier
from spectclf.exceptions import PatientLeakageError
from spectclf.model_selection import (
    PatientStratifiedGroupKFold,
    _fit_with_groups,
    check_no_patient_leakage,
)

__all__ = ["tune", "default_search_space", "TunedClassifier", "nested_cv"]


def _classifier_prefix(estimator) -> str:
    """``""`` for a bare Spect3DClassifier, ``"<step>__"`` inside a pipeline."""
    if isinstance(estimator, Spect3DClassifier):
        return ""
    for name, step in getattr(estimator, "steps", []):
        if isinstance(step, Spect3DClassifier):
            return f"{name}__"
    raise ValueError(
        "No Spect3DClassifier found in the estimator: pass search_space= (a function "
        "trial -> dict of parameters) to tune other estimators."
    )


def default_search_space(trial: optuna.Trial, estimator) -> dict:
    """The default search space for a ``Spect3DClassifier`` (alone or in a pipeline).

    Learning rate (log 1e-4..1e-2), weight decay (log 1e-5..1e-1), network width
    (8, 12, 16), dropout (0..0.5), augmentation strength (0, 0.5, 1 x the defaults)
    and the imbalance handling: class-weighted loss, or none — or, when the pipeline
    has a step named ``"balance"``, random oversampling in that step.

    Parameters
    ----------
    trial : optuna.Trial
    estimator : Spect3DClassifier or pipeline containing one

    Returns
    -------
    params : dict
        For ``estimator.set_params``.
    """
    from spectclf.augment import VolumeAugmenter
    from spectclf.sampling import VolumeRandomOverSampler

    p = _classifier_prefix(estimator)
    strength = trial.suggest_categorical("augment_strength", [0.0, 0.5, 1.0])
    defaults = VolumeAugmenter().get_params()
    params = {
        f"{p}lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        f"{p}weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
        f"{p}module__width": trial.suggest_categorical("width", [8, 12, 16]),
        f"{p}module__dropout": trial.suggest_float("dropout", 0.0, 0.5),
        f"{p}augment": {
            k: (v if k == "flip" else v * strength) for k, v in defaults.items()
        }
        if strength
        else False,
    }
    steps = dict(getattr(estimator, "steps", []))
    choices = ["class_weight", "none"] + (["oversample"] if "balance" in steps else [])
    imbalance = trial.suggest_categorical("imbalance", choices)
    params[f"{p}class_weight"] = "balanced" if imbalance == "class_weight" else None
    if "balance" in steps:
        params["balance"] = (
            VolumeRandomOverSampler(random_state=trial.number)
            if imbalance == "oversample"
            else "passthrough"
        )
    return params


def _make_storage(storage, heartbeat_interval, grace_period):
    if storage is None or not isinstance(storage, str):
        return storage
    import inspect
    import warnings

    # optuna >= 4.9 renamed the retry callback and its argument; support both
    retry_cls = getattr(
        optuna.storages,
        "RetryHeartbeatStaleTrialCallback",
        optuna.storages.RetryFailedTrialCallback,
    )
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    key = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in params
        else "failed_trial_callback"
    )
    with warnings.catch_warnings():  # heartbeats are "experimental" in optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url=storage,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            **{key: retry_cls(max_retry=2)},
        )


def tune(
    estimator,
    X,
    y,
    groups,
    *,
    n_trials: int = 20,
    search_space: Callable[[optuna.Trial], dict] | None = None,
    cv=5,
    scoring: str | Callable = "balanced_accuracy",
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    timeout: float | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    refit: bool = True,
    random_state: int | None = None,
    heartbeat_interval: int = 60,
    grace_period: int | None = None,
    verbose: int = 1,
) -> Bunch:
    """Tune an estimator with Optuna under patient-grouped cross-validation.

    Parameters
    ----------
    estimator : Spect3DClassifier, pipeline or any classifier
        Cloned for every fit.
    X, y : array-like
    groups : array-like of shape (n,)
        Patient ids; required (without them every trial would mix patients).
    n_trials : int, default=20
        Target number of finished (complete or pruned) trials in the study; a resumed
        study only runs the ones still missing.
    search_space : callable, default=None
        ``trial -> {param: value}`` for ``estimator.set_params``; None uses
        :func:`default_search_space`.
    cv : int or splitter, default=5
        Inner folds; an int gives :class:`~spectclf.PatientStratifiedGroupKFold`.
    scoring : str or callable, default="balanced_accuracy"
        A scikit-learn scorer name or callable ``scorer(estimator, X, y)``.
    storage : str or optuna storage, default=None
        In memory when None; ``"sqlite:///study.db"`` makes the study resumable; a
        PostgreSQL URL lets several machines work on one study.
    study_name : str, default=None
        Needed to resume a stored study (defaults to ``"spectclf"``).
    timeout : float, default=None
        Stop starting new trials after this many seconds.
    pruner : optuna pruner, default=None
        Pruner fed with the running mean score after each fold; default
        ``MedianPruner(n_startup_trials=5, n_warmup_steps=1)``.
    refit : bool, default=True
        Refit the best parameters on all data.
    random_state : int, default=None
        Seeds Optuna's TPE sampler and the folds.
    heartbeat_interval, grace_period : int
        RDB storages only: a trial whose process stops beating for ``grace_period``
        seconds (default ``2 * heartbeat_interval``) is marked failed and retried.
    verbose : int, default=1
        Print one line per trial.

    Returns
    -------
    result : Bunch
        ``best_estimator`` (refit, or None), ``best_params`` (the estimator
        parameters), ``best_score``, ``study``, ``wall_time``.
    """
    if groups is None:
        raise PatientLeakageError(
            "tune needs groups= (patient ids). Without them cross-validation would split "
            "one patient's data across folds (and OptunaSearchCV fails every trial)."
        )
    y, groups = np.asarray(y), np.asarray(groups)
    if isinstance(cv, (int, np.integer)):
        cv = PatientStratifiedGroupKFold(n_splits=int(cv), random_state=random_state)
    splits = list(cv.split(X, y, groups))
    check_no_patient_leakage(splits, groups)
    scorer = get_scorer(scoring) if isinstance(scoring, str) else scoring
    space = search_space or (lambda trial: default_search_space(trial, estimator))

    def objective(trial: optuna.Trial) -> float:
        params = space(trial)
        trial.set_user_attr("params", {k: repr(v) for k, v in params.items()})
        scores = []
        for k, (train, test) in enumerate(splits):
            est = clone(estimator).set_params(**params)
            _fit_with_groups(est, X[train], y[train], groups[train])
            scores.append(float(scorer(est, X[test], y[test])))
            trial.report(float(np.mean(scores)), step=k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))

    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=_make_storage(storage, heartbeat_interval, grace_period),
        study_name=study_name or ("spectclf" if storage is not None else None),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=random_state),
        pruner=pruner
        or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        load_if_exists=True,
    )
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = n_trials - len(study.get_trials(deepcopy=False, states=done))
    start = time.perf_counter()
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=timeout,
            catch=(),
            gc_after_trial=True,
        )
    wall = time.perf_counter() - start
    completed = study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
    )
    if not completed:
        raise RuntimeError(
            f"No trial of study {study.study_name!r} completed; "
            "check the trials' errors above."
        )
    best = study.best_trial
    best_params = space(optuna.trial.FixedTrial(best.params, number=best.number))
    best_estimator = None
    if refit:
        best_estimator = _fit_with_groups(
            clone(estimator).set_params(**best_params), X, y, groups
        )
    if verbose:
        print(
            f"[spectclf] tuning: best score {best.value:.3f} (trial {best.number}) "
            f"after {len(study.trials)} trials, {wall:.0f} s",
            flush=True,
        )
    return Bunch(
        best_estimator=best_estimator,
        best_params=best_params,
        best_score=float(best.value),
        study=study,
        wall_time=wall,
    )


class TunedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier whose ``fit`` runs :func:`tune` and keeps the refit best model.

    Cross-validating it with :func:`~spectclf.evaluate` is nested cross-validation:
    every outer fold tunes on its own training patients only, so the outer scores
    are an unbiased estimate of "tune, then train" — unlike the best score of a study.

    Parameters
    ----------
    estimator : classifier or pipeline
        What to tune.
    n_trials : int, default=10
    cv : int or splitter, default=3
        Inner folds.
    search_space, scoring, pruner, random_state
        As in :func:`tune`.

    Attributes
    ----------
    best_estimator_ : estimator
    best_params_ : dict
    best_score_ : float
    classes_ : ndarray
    """

    def __init__(
        self,
        estimator,
        *,
        n_trials=10,
        cv=3,
        search_space=None,
        scoring="balanced_accuracy",
        pruner=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.n_trials = n_trials
        self.cv = cv
        self.search_space = search_space
        self.scoring = scoring
        self.pruner = pruner
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Tune on ``(X, y, groups)`` and refit the best parameters on all of it."""
        res = tune(
            self.estimator,
            X,
            y,
            groups,
            n_trials=self.n_trials,
            cv=self.cv,
            search_space=self.search_space,
            scoring=self.scoring,
            pruner=self.pruner,
            random_state=self.random_state,
            verbose=0,
        )
        self.best_estimator_ = res.best_estimator
        self.best_params_ = res.best_params
        self.best_score_ = res.best_score
        self.classes_ = self.best_estimator_.classes_
        return self

    def predict_proba(self, X):
        """Probabilities of the tuned model."""
        check_is_fitted(self)
        return self.best_estimator_.predict_proba(X)

    def predict(self, X):
        """Predictions of the tuned model."""
        check_is_fitted(self)
        return self.best_estimator_.predict(X)


def nested_cv(
    estimator,
    X,
    y,
    groups,
    *,
    n_trials=10,
    outer_cv=5,
    inner_cv=3,
    search_space=None,
    random_state=None,
    verbose=1,
):
    """Nested patient-grouped CV: tune inside each outer training fold.

    Returns the :func:`~spectclf.evaluate` result of a :class:`TunedClassifier`;
    ``result.estimators`` holds each outer fold's tuned model (``best_params_``).
    """
    from spectclf.model_selection import evaluate

    tuned = TunedClassifier(
        estimator,
        n_trials=n_trials,
        cv=inner_cv,
        search_space=search_space,
        random_state=random_state,
    )
    return evaluate(
        tuned,
        X,
        y,
        groups,
        cv=outer_cv,
        random_state=random_state,
        verbose=verbose,
        return_estimators=True,
    )
