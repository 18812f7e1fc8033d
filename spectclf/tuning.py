"""Hyper-parameter tuning with Optuna under patient-grouped cross-validation.

Each trial runs a :class:`~spectclf.PatientStratifiedGroupKFold` and scores every
fold per patient exactly as :func:`~spectclf.evaluate` does; the running mean of the
fold scores is reported to Optuna after every fold, and a pruner stops a hopeless
trial after its second fold. With ``epoch_pruning=True`` the network of the first
fold also holds out 20 % of its training *patients* and reports their score after
every epoch, so a trial can be stopped after a few epochs (faster, at some risk of
losing the best trial: see :func:`tune`). Studies in an RDB storage
(``sqlite:///study.db``, PostgreSQL...) resume after a crash or Ctrl-C: a resumed
seeded study samples new parameter sets, trials left RUNNING by a dead local
process are failed and retried at start (and by a heartbeat for other machines),
and several workers on one study stop at exactly ``n_trials``.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable
from functools import partial
from numbers import Integral

import numpy as np
import optuna
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils import Bunch
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.callbacks import Callback

from spectclf.caching import per_volume_cache
from spectclf.classifier import Spect3DClassifier
from spectclf.exceptions import TuningError
from spectclf.metrics import get_metric
from spectclf.model_selection import make_partitions, out_of_fold, quiet_params
from spectclf.patient_groups import fit_with_groups, require_groups, warn_ungrouped

__all__ = [
    "tune",
    "default_search_space",
    "TunedClassifier",
    "nested_cv",
    "trial_counts",
    "describe_trials",
]


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
    (8, 12, 16; only for networks that have a ``width``), dropout (0..0.5),
    augmentation strength (0, 0.5, 1 x the defaults) and the imbalance handling:
    class-weighted loss or none. A pipeline's own sampler (a step named
    ``"balance"``) is always kept — never replaced; when that step is
    ``"passthrough"``, random oversampling is one more choice for it.

    Parameters
    ----------
    trial : optuna.Trial
    estimator : Spect3DClassifier or pipeline containing one

    Returns
    -------
    params : dict
        For ``estimator.set_params``.
    """
    import inspect

    from spectclf.augment import VolumeAugmenter
    from spectclf.nets import get_module
    from spectclf.sampling import VolumeRandomOverSampler

    p = _classifier_prefix(estimator)
    clf = estimator if not p else dict(estimator.steps)[p[:-2]]
    strength = trial.suggest_categorical("augment_strength", [0.0, 0.5, 1.0])
    defaults = VolumeAugmenter().get_params()
    params = {
        f"{p}lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        f"{p}weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
        f"{p}module__dropout": trial.suggest_float("dropout", 0.0, 0.5),
        f"{p}augment": {
            k: (v if k == "flip" else v * strength) for k, v in defaults.items()
        }
        if strength
        else False,
    }
    try:
        net_params = inspect.signature(get_module(clf.module)).parameters
    except (TypeError, ValueError):
        net_params = {}
    if "width" in net_params:
        params[f"{p}module__width"] = trial.suggest_categorical("width", [8, 12, 16])
    balance = dict(getattr(estimator, "steps", [])).get("balance")
    free_slot = "balance" in dict(getattr(estimator, "steps", [])) and balance in (
        None,
        "passthrough",
    )
    choices = ["class_weight", "none"] + (["oversample"] if free_slot else [])
    imbalance = trial.suggest_categorical("imbalance", choices)
    params[f"{p}class_weight"] = "balanced" if imbalance == "class_weight" else None
    if free_slot and imbalance == "oversample":
        params["balance"] = VolumeRandomOverSampler(random_state=trial.number)
    return params


class _EpochPruning(Callback):
    """skorch callback of a tuning trial's first fold: after every epoch, score the
    held-out validation patients, report it to the trial (step = epoch - 1) and stop
    the trial when the pruner says so.

    The value is the class-balanced mean probability of the true stage (a smooth
    balanced accuracy: on the few patients of a validation split, balanced
    accuracy itself takes a handful of values and trials tie), turned to the
    study's direction (``1 - value`` when it minimises).
    """

    def __init__(self, trial, maximise: bool):
        self.trial, self.maximise = trial, maximise

    def __deepcopy__(self, memo):  # the classifier copies callbacks: share the trial
        return type(self)(self.trial, self.maximise)

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        if dataset_valid is None or len(dataset_valid) == 0:
            return
        with torch.no_grad():
            logits = net.forward(dataset_valid, training=False, device="cpu").float()
        proba = net.probabilities(logits).numpy()
        y = np.asarray([int(dataset_valid[i][1]) for i in range(len(dataset_valid))])
        value = soft_balanced_accuracy(y, proba)
        self.trial.report(value if self.maximise else 1.0 - value, len(net.history) - 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {len(net.history)}")


def soft_balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean over the stages present in ``y`` (encoded ``0 .. K-1``) of the mean
    probability given to the true stage.

    Examples
    --------
    >>> import numpy as np
    >>> soft_balanced_accuracy(np.array([0, 0, 1]), np.array([[1, 0], [0.5, 0.5], [0.2, 0.8]]))
    0.775
    """
    y = np.asarray(y)
    true = np.asarray(proba)[np.arange(len(y)), y]
    return float(np.mean([true[y == c].mean() for c in np.unique(y)]))


def default_pruner(max_epochs: int | None = None) -> optuna.pruners.BasePruner:
    """The pruner :func:`tune` uses by default (see its ``pruner``).

    Parameters
    ----------
    max_epochs : int, default=None
        Epochs of the first fold when :func:`tune` reports each of them
        (``epoch_pruning``); None when only the fold scores are reported.

    Returns
    -------
    pruner : optuna pruner
        With ``max_epochs``: successive halving with its first rung at a fifth of
        the epochs and a reduction factor of 3 (rungs at 20 % and 60 % of the first
        fold; a trial goes on only while its held-out score is in the best third of
        the trials that reached the same epoch, or is the best while fewer than six
        have). Without: ``MedianPruner(5, 1)`` on the running mean of the fold
        scores (from the second fold on, once five trials have finished).
    """
    if max_epochs is None:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=max(1, round(max_epochs / 5)), reduction_factor=3
    )


def _inner_classifier(estimator) -> Spect3DClassifier | None:
    """The Spect3DClassifier of ``estimator`` (itself or a pipeline step), or None."""
    try:
        p = _classifier_prefix(estimator)
    except ValueError:
        return None
    return estimator if not p else dict(estimator.steps)[p[:-2]]


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


_DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
_RUNNING = (optuna.trial.TrialState.RUNNING,)


class _Surplus(Exception):  # noqa: N818 - control flow, recorded as a failed trial
    """A trial started after the study had reached ``n_trials``."""


#: User attributes that say why a trial ended FAIL: a sentence, and its kind (one of
#: ``FAIL_KINDS``). The dashboard and ``study.trials_dataframe()`` show them as
#: ``user_attrs_fail_reason`` and ``user_attrs_fail_kind``.
FAIL_REASON = "fail_reason"
FAIL_KIND = "fail_kind"
FAIL_KINDS = ("surplus", "worker died", "interrupted", "error")


def _record_failure(set_user_attr, kind: str, reason: str) -> None:
    """Write why a trial fails, through ``trial.set_user_attr`` or the storage's."""
    set_user_attr(FAIL_KIND, kind)
    set_user_attr(FAIL_REASON, reason)


def _finished(study) -> int:
    return len(study.get_trials(deepcopy=False, states=_DONE))


def _is_surplus(trial, n_trials: int) -> bool:
    """Would this trial exceed ``n_trials``? Earlier running trials count as done."""
    earlier_running = [
        t
        for t in trial.study.get_trials(deepcopy=False, states=_RUNNING)
        if t.number < trial.number
    ]
    return _finished(trial.study) + len(earlier_running) >= n_trials


class _StopAt:
    """Stop this worker once the study holds ``n_trials`` finished trials."""

    def __init__(self, n_trials: int):
        self.n_trials = n_trials

    def __call__(self, study, trial) -> None:
        if _finished(study) >= self.n_trials:
            study.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail(study, trial, kind: str, reason: str) -> None:
    _record_failure(
        partial(study._storage.set_trial_user_attr, trial._trial_id), kind, reason
    )
    study._storage.set_trial_state_values(
        trial._trial_id, state=optuna.trial.TrialState.FAIL
    )


def _fail_dead_local_trials(study) -> None:
    """Fail and re-queue RUNNING trials whose process on this host is gone.

    Trials of other machines are left to the storage's heartbeat.
    """
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=_RUNNING):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and pid is not None and not _pid_alive(pid):
            try:
                _fail(
                    study,
                    t,
                    "worker died",
                    f"worker process {pid} on {host} died during the trial; its "
                    "parameters were queued again",
                )
            except (RuntimeError, ValueError):  # another worker failed it first
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.enqueue_trial(
                    t.params,
                    user_attrs={"retried_from": t.number},
                    skip_if_exists=False,
                )


def _fail_running_own_trials(study) -> None:
    """After Ctrl-C: this process's RUNNING trials are failed, never completed."""
    for t in study.get_trials(deepcopy=False, states=_RUNNING):
        if t.user_attrs.get("pid") == os.getpid():
            _fail(study, t, "interrupted", "interrupted (Ctrl-C) in this worker")


def tune(
    estimator,
    X,
    y,
    groups,
    *,
    n_trials: int = 20,
    search_space: Callable[[optuna.Trial], dict] | None = None,
    cv=5,
    scoring: str = "balanced_accuracy",
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    timeout: float | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    refit: bool = True,
    random_state: int | None = None,
    heartbeat_interval: int = 60,
    grace_period: int | None = None,
    worker_id: int = 0,
    verbose: int = 1,
    epoch_pruning: bool = False,
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
        study only runs the ones still missing, and several processes working on one
        study stop together at exactly this number.
    search_space : callable, default=None
        ``trial -> {param: value}`` for ``estimator.set_params``; None uses
        :func:`default_search_space`.
    cv : int or splitter, default=5
        Inner folds; an int gives :class:`~spectclf.PatientStratifiedGroupKFold`.
    scoring : str, default="balanced_accuracy"
        A metric of :data:`spectclf.metrics.METRICS` (or ``"recall_stage_<s>"``),
        computed per patient on each test fold exactly as :func:`evaluate` does;
        lower-is-better metrics (``"mae"``, ``"ece"``...) are minimised.
    storage : str or optuna storage, default=None
        In memory when None; ``"sqlite:///study.db"`` makes the study resumable; a
        PostgreSQL URL lets several machines work on one study.
    study_name : str, default=None
        Needed to resume a stored study (defaults to ``"spectclf"``).
    timeout : float, default=None
        Stop starting new trials after this many seconds.
    pruner : optuna pruner, default=None
        Fed, in the first fold, with the score of held-out training patients after
        every epoch (``epoch_pruning``: steps ``0 .. max_epochs - 1``), then with the
        running mean of the fold scores after each fold (steps ``max_epochs + k``).
        Default (:func:`default_pruner`): with epoch reports, successive halving
        with rungs at 20 % and 60 % of the first fold's epochs, keeping the best
        third at each; without, ``MedianPruner(5, 1)`` on the fold scores. Chosen
        on learning curves recorded over 12 seeds of a 50-patient and 3 of a
        100-patient cohort (``python -m benchmarks.pruning_replay``; docs:
        "Tuning").
    refit : bool, default=True
        Refit the best parameters on all data.
    random_state : int, default=None
        Seeds Optuna's TPE sampler and the folds.
    heartbeat_interval, grace_period : int
        RDB storages only: a trial whose process stops beating for ``grace_period``
        seconds (default ``2 * heartbeat_interval``) is marked failed and retried.
        Trials of dead processes on this machine are failed and retried at once.
    worker_id : int, default=0
        Index of this process among several working on one study; with
        ``random_state`` it seeds the sampler, so workers never draw in lockstep.
    verbose : int, default=1
        Print one line per trial; 0 prints nothing (the estimator's own progress
        lines included).
    epoch_pruning : bool, default=False
        True: in the first fold of each trial, hold out 20 % of the training
        patients (the classifier's ``valid_size`` when set; whole patients, never
        the test fold) and report their class-balanced mean probability of the true
        stage (a smooth balanced accuracy) after every epoch, so that the pruner can
        stop the trial mid-fold. Needs a :class:`Spect3DClassifier` in
        ``estimator``; otherwise only the per-fold reports are made. About 2.5x
        faster than False, but it stopped the eventual best trial on 4 of 12
        seeds of a 50-patient cohort and 1 of 3 of a 100-patient one (mean loss
        0.03 in the best parameters' balanced accuracy), where pruning after whole
        folds lost it on none: a speed mode for exploring, not the default
        (docs: "Tuning").

    Returns
    -------
    result : Bunch
        ``best_estimator`` (refit, or None), ``best_params`` (the estimator
        parameters), ``best_score``, ``study``, ``wall_time``.
    """
    if not isinstance(epoch_pruning, bool):
        raise TypeError(f"epoch_pruning must be True or False, got {epoch_pruning!r}")
    y = np.asarray(y)
    groups = require_groups(groups, len(y), "tune")
    partitions = make_partitions(X, y, groups, cv=cv, random_state=random_state)
    if not isinstance(scoring, str):
        raise TypeError(
            "scoring must be a metric name of spectclf.metrics.METRICS (scored per "
            f"patient, as evaluate does), got {scoring!r}."
        )
    metric = get_metric(scoring)
    space = search_space or (lambda trial: default_search_space(trial, estimator))
    quiet = quiet_params(estimator, verbose)

    def objective(trial: optuna.Trial) -> float:
        _fail_dead_local_trials(trial.study)
        if _is_surplus(trial, n_trials):
            # optuna opened this trial before we could see the target reached; it
            # is never run, and says so where users look (not an error)
            trial.set_user_attr("surplus", True)
            _record_failure(
                trial.set_user_attr,
                "surplus",
                f"not run: the study already had {n_trials} finished or running "
                "trials when this worker opened it (surplus, not an error)",
            )
            trial.study.stop()
            raise _Surplus(f"study already has {n_trials} trials")
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        try:
            return run_trial(trial)
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:
            _record_failure(
                trial.set_user_attr, "error", f"{type(exc).__name__}: {exc}"[:500]
            )
            raise

    def run_trial(trial: optuna.Trial) -> float:
        params = space(trial)
        trial.set_user_attr("params", {k: repr(v) for k, v in params.items()})
        scores = []
        clf = _inner_classifier(clone(estimator).set_params(**params))
        within = epoch_pruning and clf is not None
        offset = int(clf.max_epochs) if within else 0

        def first_fold(r, k, train):
            if not within or (r, k) != (0, 0):
                return {}
            p = _classifier_prefix(estimator)
            watch = _EpochPruning(trial, metric.greater_is_better)
            extra = {f"{p}callbacks": [*(clf.callbacks or []), ("pruning", watch)]}
            if clf.valid_size is None:
                extra[f"{p}valid_size"] = 0.2
            return extra

        def report(fold):
            scores.append(fold.scores[metric.name])
            trial.report(float(np.nanmean(scores)), step=offset + fold.fold)
            if trial.should_prune():
                raise optuna.TrialPruned()

        out_of_fold(
            estimator,
            X,
            y,
            groups,
            cv=partitions,
            params={**quiet, **params},
            metrics=[metric.name],
            on_fold=report,
            fold_params=first_fold,
        )
        return float(np.nanmean(scores))

    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    inner = _inner_classifier(estimator)
    by_epoch = epoch_pruning and inner is not None
    first_fold_epochs = int(inner.max_epochs) if by_epoch else None
    study = optuna.create_study(
        storage=_make_storage(storage, heartbeat_interval, grace_period),
        study_name=study_name or ("spectclf" if storage is not None else None),
        direction="maximize" if metric.greater_is_better else "minimize",
        pruner=pruner or default_pruner(first_fold_epochs),
        load_if_exists=True,
    )
    _fail_dead_local_trials(study)
    # a resumed seeded study must not replay the parameter sets it already tried, and
    # workers sharing a study must not draw the same ones
    seed = None
    if random_state is not None:
        entropy = (int(random_state), len(study.trials), int(worker_id))
        seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    start = time.perf_counter()
    if _finished(study) < n_trials:
        try:
            # each volume's preprocessing once for every fold of every trial
            with per_volume_cache():
                study.optimize(
                    objective,
                    timeout=timeout,
                    catch=(_Surplus,),
                    gc_after_trial=True,
                    callbacks=[_StopAt(n_trials)],
                )
        except KeyboardInterrupt:
            _fail_running_own_trials(study)
            raise
    wall = time.perf_counter() - start
    completed = study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
    )
    if not completed:
        raise TuningError(
            f"No trial of study {study.study_name!r} completed; "
            "check the trials' errors above."
        )
    best = study.best_trial
    best_params = space(optuna.trial.FixedTrial(best.params, number=best.number))
    best_estimator = None
    if refit:
        best_estimator = fit_with_groups(
            clone(estimator).set_params(**quiet, **best_params), X, y, groups
        )
    if verbose:
        print(
            f"[spectclf] tuning: best {metric.name} {best.value:.3f} (trial "
            f"{best.number}), {wall:.0f} s; trials: {describe_trials(study)}",
            flush=True,
        )
    return Bunch(
        best_estimator=best_estimator,
        best_params=best_params,
        best_score=float(best.value),
        study=study,
        wall_time=wall,
    )


def trial_counts(study) -> dict[str, int]:
    """Trials of ``study`` by outcome: ``complete``, ``pruned``, ``running``, then
    the failed ones by their recorded kind: ``surplus`` (opened after the target was
    reached, never run), ``worker died``, ``interrupted`` (Ctrl-C), ``error`` (an
    exception in the trial), and ``failed, no reason`` (e.g. failed by the
    heartbeat of a storage for a worker on another machine)."""
    S = optuna.trial.TrialState
    counts = dict.fromkeys(
        ("complete", "pruned", "running", *FAIL_KINDS, "failed, no reason"), 0
    )
    for t in study.get_trials(deepcopy=False):
        if t.state == S.COMPLETE:
            counts["complete"] += 1
        elif t.state == S.PRUNED:
            counts["pruned"] += 1
        elif t.state in (S.RUNNING, S.WAITING):
            counts["running"] += 1
        else:
            counts[t.user_attrs.get(FAIL_KIND, "failed, no reason")] += 1
    return counts


def describe_trials(study) -> str:
    """:func:`trial_counts` in words, e.g. ``"6 complete, 2 pruned, 1 worker died"``."""
    return ", ".join(f"{n} {what}" for what, n in trial_counts(study).items() if n)


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

    __metadata_request__fit = {"groups": True}

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict_proba"])],
        "n_trials": [Interval(Integral, 1, None, closed="left")],
        # what make_partitions takes: a number of folds or a splitter
        "cv": [Interval(Integral, 2, None, closed="left"), HasMethods(["split"])],
        "search_space": [callable, None],
        "scoring": [str],  # a metric name, checked in fit (recall_stage_<s> too)
        "pruner": [optuna.pruners.BasePruner, None],
        # an int seed: it seeds Optuna's sampler too
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
    }

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
        """Tune on ``(X, y, groups)`` and refit the best parameters on all of it.

        Without ``groups`` every row is taken as its own patient, with a
        :class:`~spectclf.exceptions.PatientLeakageWarning`.
        """
        self._validate_params()
        try:
            get_metric(self.scoring)
        except ValueError as exc:
            raise ValueError(f"TunedClassifier scoring: {exc}") from None
        X, y = validate_data(self, X, y, allow_nd=True, ensure_min_samples=2)
        check_classification_targets(y)
        if len(np.unique(y)) < 2:
            raise ValueError(
                f"TunedClassifier needs at least 2 classes in y; got {np.unique(y)}."
            )
        if groups is None:
            warn_ungrouped("TunedClassifier's tuning cross-validation", stacklevel=2)
            groups = np.arange(len(y))
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
        X = validate_data(self, X, reset=False, allow_nd=True)
        return self.best_estimator_.predict_proba(X)

    def predict(self, X):
        """Predictions of the tuned model."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, allow_nd=True)
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
