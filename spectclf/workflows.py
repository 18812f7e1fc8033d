"""The user's jobs as functions: evaluate-and-report, train-and-save, tune-and-save,
predict, explain.

Each function is what the matching ``spectclf`` command runs, so a Python user gets
the same result as the command line. They take a loaded cohort (a Bunch from
:func:`~spectclf.load_slice_folders` or :func:`~spectclf.load_volumes`) or a folder,
and a model: a name (``"cnn"``, ``"seed_cnn"``, ``"sbr"``) or any estimator.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import Bunch

from spectclf.classifier import DEFAULT_MAX_EPOCHS
from spectclf.colour import OFF_TABLE_THRESHOLD
from spectclf.ensemble import UNCERTAINTY_THRESHOLD
from spectclf.exceptions import UsageError
from spectclf.explain import saliency
from spectclf.load_options import load_for_prediction, save_for_prediction
from spectclf.metrics import stage_report
from spectclf.model_selection import evaluate, make_partitions, quiet_params
from spectclf.patient_groups import final_estimator, fit_with_groups
from spectclf.pipelines import make_default_pipeline, make_sbr_baseline
from spectclf.report import save_figure, write_predictions, write_report
from spectclf.utils import write_atomic

__all__ = [
    "MODELS",
    "build_model",
    "evaluate_and_report",
    "explain_patients",
    "predict_patients",
    "train_and_save",
    "tune_and_save",
    "default_study_storage",
]

#: Model names the workflows and the command line accept.
MODELS = ("cnn", "seed_cnn", "sbr")


def _log(msg: str, verbose: int) -> None:
    if verbose:
        print(f"[spectclf] {msg}", flush=True)


def build_model(
    model: str = "cnn",
    *,
    shape: Sequence[int] = (32, 64, 64),
    epochs: int = DEFAULT_MAX_EPOCHS,
    class_weight: str | None = "balanced",
    random_state=0,
    device: str = "auto",
    verbose: int = 1,
):
    """A fresh, unfitted model by name.

    Parameters
    ----------
    model : {"cnn", "seed_cnn", "sbr"}, default="cnn"
        ``"cnn"``: :func:`~spectclf.make_default_pipeline` (3-D ResNet);
        ``"seed_cnn"``: the same pipeline with the plain baseline CNN; ``"sbr"``:
        striatal binding ratios + logistic regression.
    shape : tuple of 3 ints, default=(32, 64, 64)
        Volume size the CNN sees.
    epochs : int, default=30
    class_weight : {None, "balanced"}, default="balanced"
    random_state : int, default=0
    device : str, default="auto"
    verbose : int, default=1
        The classifier's verbosity (1: progress lines during long fits).

    Returns
    -------
    estimator
    """
    if model not in MODELS:
        raise UsageError(f"model must be one of {MODELS}, got {model!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UsageError(f"epochs must be an int >= 1, got {epochs!r}")
    if model == "sbr":
        return make_sbr_baseline(random_state=random_state)
    params = dict(
        max_epochs=epochs,
        random_state=random_state,
        device=device,
        verbose=verbose,
        class_weight=class_weight,
    )
    if model == "seed_cnn":
        params["module"] = "seed_cnn"
    return make_default_pipeline(tuple(shape), **params)


def _as_estimator(model, model_options: dict | None):
    if isinstance(model, str):
        return build_model(model, **(model_options or {}))
    if model_options:
        raise UsageError("model_options only apply to a model given by name")
    return clone(model)


def _shown_path(path, report_dir) -> str:
    """``path`` as a reader recognises it without the machine's absolute paths:
    relative to the working directory when inside it, ``~/...`` inside the home
    folder, else relative to the report folder."""
    path = Path(path).resolve()
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~")):
        try:
            rel = path.relative_to(base.resolve())
        except ValueError:
            continue
        return str(Path(prefix) / rel) if prefix else (str(rel) or ".")
    try:
        return os.path.relpath(path, Path(report_dir).resolve())
    except ValueError:  # another drive on Windows
        return path.name


def _shown_command(command, report_dir) -> list[str]:
    """The command line with every path (existing, or absolute) shown as
    :func:`_shown_path` does."""
    argv = list(sys.argv if command is None else command)
    return [
        _shown_path(a, report_dir)
        if a and (Path(a).is_absolute() or Path(a).exists())
        else a
        for a in argv
    ]


def _montage(model, data, verbose: int) -> dict:
    """Volumes (and saliency maps for a CNN) of the first patient of each stage."""
    first = [int(np.flatnonzero(data.y == s)[0]) for s in np.unique(data.y)]
    montage = {"X": data.X[first], "y": data.y[first], "patients": data.groups[first]}
    if hasattr(final_estimator(model), "module_"):
        _log("saliency maps (integrated gradients) for one patient per stage", verbose)
        sal, Xt = saliency(model, data.X[first], target=data.y[first])
        montage.update(X=Xt, saliency=sal)
    return montage


def evaluate_and_report(
    data,
    out_dir,
    *,
    model="cnn",
    model_options: dict | None = None,
    cv: int = 5,
    n_repeats: int = 1,
    baseline: bool = True,
    final_fit: bool = False,
    load_options: dict | None = None,
    title: str = "spectclf evaluation",
    random_state=0,
    info: dict | None = None,
    command: list[str] | None = None,
    verbose: int = 1,
) -> Bunch:
    """Cross-validate by patient, compare with the SBR baseline, write the report.

    The chain the ``spectclf evaluate`` and ``spectclf demo`` commands run: ``n_repeats``
    patient-grouped partitions drawn once -> CV of ``model`` on them -> the SBR
    baseline on the same partitions and a paired comparison
    (:func:`~spectclf.compare_models`' statistics) -> (optionally) a final fit on all
    patients, saved as ``model.safetensors`` with saliency maps of one patient per
    stage -> ``index.html``, ``metrics.json`` (with provenance), ``methods.md``,
    ``predictions.csv`` and plots in ``out_dir``.

    Parameters
    ----------
    data : Bunch
        ``X``, ``y``, ``groups`` (and ``root`` or ``paths``) from a loader.
    out_dir : str or Path
        Report folder (created).
    model : str or estimator, default="cnn"
        A name for :func:`build_model` or an estimator (cloned).
    model_options : dict, default=None
        Options of :func:`build_model` when ``model`` is a name.
    cv : int, default=5
        Patient-grouped folds.
    n_repeats : int, default=1
        Repeat the CV on this many different patient partitions; the time grows
        ``n_repeats`` times.
    baseline : bool, default=True
        Also cross-validate the SBR baseline on the same partitions and compare.
    final_fit : bool, default=False
        Fit on all patients, save the model and add a saliency montage.
    load_options : dict, default=None
        How the data was loaded (``color``, ``colormap``...), stored in the model
        file so ``predict`` reads new patients the same way.
    title : str
    random_state : int, default=0
        Seed of the partitions.
    info : dict, default=None
        Extra facts for the report.
    command : list of str, default=None
        The command line recorded in the provenance (None: ``sys.argv``).
    verbose : int, default=1
        0 prints nothing (the models' own progress lines included).

    Returns
    -------
    result : Bunch
        ``cv`` (the :func:`~spectclf.evaluate` result), ``baseline`` (or None),
        ``comparison`` (or None), ``index`` (the HTML file), ``methods`` (the
        ``methods.md`` file), ``model`` (the final fit, or None) and
        ``model_file`` (or None).
    """
    from spectclf.comparison import compare_results
    from spectclf.methods import write_methods
    from spectclf.provenance import collect_provenance

    out = Path(out_dir)
    start = time.perf_counter()
    estimator = _as_estimator(model, model_options)
    name = model if isinstance(model, str) else type(model).__name__
    partitions = make_partitions(
        data.X,
        data.y,
        data.groups,
        cv=cv,
        n_repeats=n_repeats,
        random_state=random_state,
    )
    scheme = f"{cv}-fold patient-grouped cross-validation" + (
        f" x {n_repeats} repeats" if n_repeats > 1 else ""
    )
    _log(f"{scheme} of the {name} model", verbose)
    result = evaluate(
        estimator, data.X, data.y, data.groups, cv=partitions, verbose=verbose
    )
    timing = {"cross-validation time (s)": round(time.perf_counter() - start, 1)}
    if n_repeats > 1:
        timing.update(repeat_timing(result.repeat_time))
    facts = {
        "data": _shown_path(getattr(data, "root", None) or data.paths[0], out),
        "patients": len(data.y),
        "volume shape": tuple(data.X.shape[1:]),
        "model": name,
        "folds": cv,
        "repeats": n_repeats,
    }
    if getattr(data, "colormap", None):
        facts["colormap"] = data.colormap
        maps = Counter(str(m) for m in list(data.get("colormaps", ())))
        if len(maps) > 1:  # pooled sites: each patient's map
            facts["colormap"] = ", ".join(f"{m} ({n})" for m, n in maps.most_common())
    facts.update(info or {})
    base, comparison = None, None
    if baseline and name != "sbr":
        _log("same partitions for the SBR baseline (striatal binding ratios)", verbose)
        t0 = time.perf_counter()
        base = evaluate(
            make_sbr_baseline(random_state=random_state),
            data.X,
            data.y,
            data.groups,
            cv=partitions,
            verbose=0,
        )
        timing["baseline time (s)"] = round(time.perf_counter() - t0, 1)
        model_label = "CNN" if name in ("cnn", "seed_cnn") else name
        comparison = compare_results(result, base, names=(model_label, "SBR baseline"))
    final, model_file, montage = None, None, None
    if final_fit:
        _log("fitting the final model on all patients", verbose)
        t0 = time.perf_counter()
        final = fit_with_groups(
            clone(estimator).set_params(**quiet_params(estimator, verbose)),
            data.X,
            data.y,
            data.groups,
        )
        timing["final fit time (s)"] = round(time.perf_counter() - t0, 1)
        model_file = save_for_prediction(
            final, out / "model.safetensors", data=data, load_options=load_options
        )
        facts["model file"] = model_file.name
        montage = _montage(final, data, verbose)
    provenance = collect_provenance(
        estimator,
        data,
        partitions=partitions,
        random_state=random_state,
        command=_shown_command(command, out),
    )
    index = write_report(
        out,
        result,
        title=title,
        montage=montage,
        baseline=base,
        info=facts,
        comparison=comparison,
        provenance=provenance,
        timing=timing,
    )
    methods = write_methods(
        out / "methods.md",
        data=data,
        estimator=estimator,
        result=result,
        model_name=name,
        comparison=comparison,
        provenance=provenance,
    )
    if verbose:
        print()
        stage_report(result.y_true, result.y_pred)
        for metric in ("balanced_accuracy", "qwk", "f1_macro", "ece"):
            s = result.summary[metric]
            line = (
                f"{metric:>18}: {s['mean']:.3f} ± {s['std']:.3f} "
                f"(95% CI {s['ci95'][0]:.3f}-{s['ci95'][1]:.3f})"
            )
            if base is not None:
                line += f"   SBR baseline {base.summary[metric]['mean']:.3f}"
            print(line)
        if comparison is not None:
            print()
            print(comparison.sentence())
        _log(f"report written to {index}", verbose)
    return Bunch(
        cv=result,
        baseline=base,
        comparison=comparison,
        index=index,
        methods=methods,
        model=final,
        model_file=model_file,
    )


def train_and_save(
    data,
    path,
    *,
    model="cnn",
    model_options: dict | None = None,
    load_options: dict | None = None,
    ensemble: int | None = None,
    random_state=0,
    verbose: int = 1,
) -> Bunch:
    """Fit ``model`` on all patients and save it as a model file (no pickle).

    Parameters
    ----------
    data : Bunch
        From a loader.
    path : str or Path
        Model file (``*.safetensors``), written only when training completed.
    model, model_options, load_options, verbose
        As in :func:`evaluate_and_report`.
    ensemble : int, default=None
        Train a :class:`~spectclf.StageEnsemble` of this many patient-grouped fold
        models instead of one model: its predictions carry a per-patient
        uncertainty.
    random_state : int, default=0
        Seeds the ensemble's folds.

    Returns
    -------
    result : Bunch
        ``model`` and ``path``.
    """
    estimator = _as_estimator(model, model_options)
    if ensemble:
        from spectclf.ensemble import StageEnsemble

        estimator = StageEnsemble(estimator, cv=ensemble, random_state=random_state)
    _log(f"training on {len(data.y)} patients", verbose)
    t0 = time.perf_counter()
    fitted = fit_with_groups(estimator, data.X, data.y, data.groups)
    path = save_for_prediction(fitted, path, data=data, load_options=load_options)
    _log(f"saved to {path} ({time.perf_counter() - t0:.0f} s)", verbose)
    return Bunch(model=fitted, path=path)


def default_study_storage(path) -> str:
    """The SQLite study that several local workers of :func:`tune_and_save` share:
    next to the model file ``path`` (``tuned.safetensors`` -> ``tuned.db``)."""
    return f"sqlite:///{Path(path).with_suffix('.db')}"


def tune_and_save(
    data,
    path,
    *,
    model="cnn",
    model_options: dict | None = None,
    load_options: dict | None = None,
    n_trials: int = 20,
    cv: int = 3,
    storage: str | None = None,
    study_name: str | None = None,
    timeout: float | None = None,
    random_state=0,
    epoch_pruning: bool = False,
    n_workers: int = 1,
    worker_args: Sequence[str] | None = None,
    worker_id: int = 0,
    refit: bool = True,
    verbose: int = 1,
) -> Bunch:
    """Tune ``model`` with :func:`~spectclf.tune`, refit the best parameters on all
    patients and save them with a JSON summary beside the model file.

    What ``spectclf tune`` runs. Several processes may work on one study
    (``storage``): ``n_workers - 1`` more local ones started here, and any started
    elsewhere. The one that refits waits for its own workers first, so the best trial
    is chosen from the whole study.

    Parameters
    ----------
    data : Bunch
        From a loader.
    path : str or Path
        Model file; the summary is written to ``path`` with suffix ``.json``.
    model, model_options, load_options
        As in :func:`evaluate_and_report` (``"sbr"`` has nothing to tune).
    n_trials, cv, storage, study_name, timeout, random_state, epoch_pruning, worker_id
        As in :func:`~spectclf.tune`. With ``n_workers > 1`` and no ``storage`` the
        workers share :func:`default_study_storage` of ``path``.
    n_workers : int, default=1
        Local processes working on the study, this one included. The torch threads
        of this process are divided among them (``torch.get_num_threads() //
        n_workers`` each, at least one): on a machine whose cores one fit cannot
        keep busy, trials run side by side (``python -m benchmarks.tuning_workers``).
    worker_args : sequence of str, default=None
        Needed when ``n_workers > 1``: the arguments of a ``spectclf tune`` command
        that runs this job (``["tune", "cohort/", "--trials", "40", ...]``). Each
        extra worker runs them (``python -m spectclf.cli``) with the study's
        storage, ``--worker-id k`` and ``--worker-only``: it loads the data itself
        and only tunes. It is terminated on Ctrl-C.
    refit : bool, default=True
        False for a helper worker: tune only, save nothing.
    verbose : int, default=1

    Returns
    -------
    result : Bunch
        ``tune`` (its result), ``path`` and ``summary`` (the summary file) when
        refit, else None for both; ``storage`` (the study's, as used);
        ``failed_workers`` (how many of the extra workers ended with an error).

    See Also
    --------
    spectclf.tune : The search itself.
    """
    from spectclf.tuning import describe_trials, trial_counts, tune

    if model == "sbr":
        raise UsageError("tune searches CNN settings; use model 'cnn' or 'seed_cnn'")
    for name, value in (("n_trials", n_trials), ("n_workers", n_workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be an int >= 1, got {value!r}")
    worker_args = list(worker_args or ())
    if n_workers > 1:
        if worker_args[:1] != ["tune"]:
            raise UsageError(
                f"n_workers={n_workers} needs worker_args: the arguments of a "
                f"'spectclf tune' command that runs this job, got {worker_args!r}"
            )
        if storage is None:
            storage = default_study_storage(path)
            _log(f"{n_workers} workers share the study in {storage}", verbose)
        if not isinstance(storage, str):
            raise UsageError(
                f"n_workers={n_workers} needs storage as a URL the worker processes "
                f"can open, got {type(storage).__name__}"
            )
    estimator = _as_estimator(model, model_options)
    kwargs = dict(
        n_trials=n_trials,
        cv=cv,
        storage=storage,
        study_name=study_name,
        timeout=timeout,
        random_state=random_state,
        epoch_pruning=epoch_pruning,
        worker_id=worker_id,
        verbose=verbose,
    )
    # the cores are divided among the local workers (benchmarks.tuning_workers:
    # n processes each taking every core as torch threads oversubscribe them)
    before = torch.get_num_threads()
    threads = max(1, before // n_workers)
    workers = _start_workers(worker_args, n_workers, storage, threads)
    torch.set_num_threads(threads)
    try:
        res = tune(estimator, data.X, data.y, data.groups, refit=False, **kwargs)
        failed = sum(p.wait() != 0 for p in workers)
    except KeyboardInterrupt:
        for p in workers:
            p.terminate()
        raise
    finally:
        torch.set_num_threads(before)
    if failed:
        _log(
            f"{failed} worker(s) ended with an error; their trials are retried", verbose
        )
    result = Bunch(
        tune=res, path=None, summary=None, storage=storage, failed_workers=failed
    )
    if not refit:
        return result
    # every worker has stopped: refit the study's best parameters once
    res = tune(estimator, data.X, data.y, data.groups, **kwargs)
    path = save_for_prediction(
        res.best_estimator, path, data=data, load_options=load_options
    )
    text = json.dumps(
        {
            "best_score": res.best_score,
            "best_trial": res.study.best_trial.number,
            "best_params": {k: repr(v) for k, v in res.best_params.items()},
            "trials": len(res.study.trials),
            "trials_by_outcome": trial_counts(res.study),
            "wall_time_s": round(res.wall_time, 1),
        },
        indent=2,
    )
    summary = write_atomic(path.with_suffix(".json"), lambda tmp: tmp.write_text(text))
    _log(f"trials: {describe_trials(res.study)}", verbose)
    _log(f"best balanced accuracy {res.best_score:.3f}; model saved to {path}", verbose)
    result.update(tune=res, path=path, summary=summary)
    return result


def _start_workers(
    worker_args: list[str], n_workers: int, storage, threads: int
) -> list:
    """Start ``n_workers - 1`` more ``spectclf tune`` processes on the study, each
    with ``threads`` torch threads."""
    import subprocess

    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }

    # a flag given twice takes its last value: the helpers open this study, start no
    # workers of their own and save nothing
    tail = ["--storage", storage, "--workers", "1"]
    return [
        subprocess.Popen(
            [sys.executable, "-m", "spectclf.cli", *worker_args, *tail]
            + ["--worker-id", str(k), "--worker-only"],
            env=env,
        )
        for k in range(1, n_workers)
    ]


def predict_patients(
    model_file,
    data_dir,
    *,
    out=None,
    colormap: str | None = None,
    trust_pickle: bool = False,
    verbose: int = 1,
) -> Bunch:
    """Predict the stage of each patient folder with a saved model.

    Parameters
    ----------
    model_file : str or Path
        From :func:`train_and_save` (or ``spectclf train``).
    data_dir : str or Path
        One patient folder, a folder of patient folders, or a staged cohort folder
        (``<stage>/<patient>/``): then the known stages are reported beside the
        predicted ones (column ``true_stage``).
    out : str or Path, default=None
        Also write the predictions as CSV.
    colormap : str, default=None
        Read the slices through this matplotlib colormap (or ``"auto"``) instead of
        the one stored in the model file: for scans rendered with another colormap
        than the training scans. The model still expects the intensities it was
        trained on; check the ``colour_residual`` column.
    trust_pickle : bool, default=False
        See :func:`spectclf.load_model`.
    verbose : int, default=1

    Returns
    -------
    result : Bunch
        ``patients``, ``y_pred``, ``y_true`` (known stages, or None), ``proba``,
        ``classes``, ``uncertainty`` (an
        ensemble's :meth:`~spectclf.StageEnsemble.predict_uncertainty`, else ``1 -
        max probability``), ``colour_residual`` (when read through a colormap),
        ``check`` ("yes" for an uncertain prediction or colours far off the
        colormap) and ``csv`` (or None); the CSV has the same columns.
    """
    model, data = load_for_prediction(
        model_file, data_dir, trust_pickle=trust_pickle, colormap=colormap
    )
    proba = model.predict_proba(data.X)
    classes = np.asarray(model.classes_)
    if hasattr(model, "predict_uncertainty"):
        unc = model.predict_uncertainty(data.X)
        threshold = model.uncertainty_threshold
    else:
        unc, threshold = 1.0 - proba.max(axis=1), UNCERTAINTY_THRESHOLD
    uncertain = unc > threshold
    residual = data.patient_colour_residual
    off_table = residual > OFF_TABLE_THRESHOLD  # NaN (not a colormap) compares False
    extra = {"uncertainty": unc}
    if np.isfinite(residual).any():
        extra["colour_residual"] = residual
    extra["check"] = np.where(uncertain | off_table, "yes", "no")
    csv_path = None
    if out is not None:
        csv_path = write_predictions(
            out, data.groups, proba, classes, y_true=data.y, extra_columns=extra
        )
        _log(f"{len(proba)} predictions written to {csv_path}", verbose)
    if data.y is not None:
        agree = int((classes[np.argmax(proba, axis=1)] == data.y).sum())
        _log(
            f"stages read from the folder names: {agree} of {len(data.y)} predicted "
            "as their folder says",
            verbose,
        )
    reasons = []
    if uncertain.any():
        reasons.append(f"{uncertain.sum()} uncertain (uncertainty > {threshold:g})")
    if off_table.any():
        reasons.append(
            f"{off_table.sum()} with colours off the {data.colormap!r} colormap "
            f"(colour_residual > {OFF_TABLE_THRESHOLD:g}: their stage is unreliable)"
        )
    if reasons:
        n = int((uncertain | off_table).sum())
        _log(f"{n} patient(s) to check (column 'check'): {', '.join(reasons)}", verbose)
    return Bunch(
        patients=data.groups,
        y_pred=classes[np.argmax(proba, axis=1)],
        y_true=data.y,
        proba=proba,
        classes=classes,
        csv=csv_path,
        **extra,
    )


def explain_patients(
    model_file, data_dir, out_dir, *, trust_pickle: bool = False, verbose: int = 1
) -> Bunch:
    """Saliency maps (:func:`~spectclf.saliency`, integrated gradients by default) of a
    saved CNN for patient folders: PNG montage and ``.npy``.

    Returns
    -------
    result : Bunch
        ``patients``, ``y_pred``, ``saliency`` and ``files``.
    """
    from spectclf.plotting import plot_stage_montage

    model, data = load_for_prediction(model_file, data_dir, trust_pickle=trust_pickle)
    if not hasattr(final_estimator(model), "module_"):
        raise UsageError("explain needs a CNN model (not the SBR baseline)")
    pred = model.predict(data.X)
    sal, Xt = saliency(model, data.X)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def write_npy(tmp):
        with open(tmp, "wb") as fh:
            np.save(fh, sal)

    npy = write_atomic(out / "saliency.npy", write_npy)
    fig = plot_stage_montage(
        Xt,
        pred,
        saliency=sal,
        patient_ids=data.groups,
        title="Predicted stage and saliency",
    )
    png = out / save_figure(fig, out / "saliency.png")
    for pid, p in zip(data.groups, pred, strict=True):
        _log(f"{pid}: predicted stage {p}", verbose)
    return Bunch(patients=data.groups, y_pred=pred, saliency=sal, files=[npy, png])


def repeat_timing(repeat_time) -> dict:
    """Timing facts of a repeated CV: seconds per repeat and their sum against ``R``
    times the first repeat (an upper bound on R plain CVs, since later repeats reuse
    each volume's preprocessing)."""
    total, first = float(np.sum(repeat_time)), float(repeat_time[0])
    return {
        "time per repeat (s)": ", ".join(f"{t:.2f}" for t in repeat_time),
        f"{len(repeat_time)} repeats vs {len(repeat_time)} x the first": (
            f"{total:.0f} s vs {len(repeat_time) * first:.0f} s "
            f"({total / first:.2f} x one CV)"
        ),
    }
