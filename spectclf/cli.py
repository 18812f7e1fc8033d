"""Command-line interface: ``spectclf demo | evaluate | train | predict | tune | explain``.

User mistakes (bad arguments, unreadable data) end with a one-line error and exit code
2, never a traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from spectclf.exceptions import MissingDependencyError, SpectDataError

MODELS = ("cnn", "seed_cnn", "sbr")


class UsageError(ValueError):
    """A bad command-line argument detected after parsing."""


def _log(msg: str) -> None:
    print(f"[spectclf] {msg}", flush=True)


# -- shared pieces ---------------------------------------------------------------------
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--random-state",
        type=int,
        default=0,
        help="seed for folds, weights and augmentation (default: 0)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="'auto' (CUDA when available), 'cpu' or 'cuda' (default: auto)",
    )
    p.add_argument(
        "--verbose",
        type=int,
        default=1,
        help="0 quiet, 1 progress per fold, 2 per-epoch tables (default: 1)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--colormap",
        default=None,
        metavar="NAME",
        help="matplotlib colormap the slices were rendered with; colours "
        "are mapped back to intensity (default: luminance)",
    )
    p.add_argument(
        "--target-shape",
        type=int,
        nargs=3,
        metavar=("D", "H", "W"),
        help="resample every patient to this shape when they differ",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable patients with a warning instead of failing",
    )


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        choices=MODELS,
        default="cnn",
        help="cnn: default 3-D ResNet; seed_cnn: plain baseline CNN; "
        "sbr: striatal-binding-ratio logistic regression (default: cnn)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=60,
        help="training epochs of the CNN (default: 60)",
    )
    p.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=(32, 64, 64),
        metavar=("D", "H", "W"),
        help="volume size the CNN sees (default: 32 64 64)",
    )
    p.add_argument(
        "--class-weight",
        choices=("none", "balanced"),
        default="none",
        help="weight the loss against stage imbalance (default: none)",
    )


def _load_options(args) -> dict:
    return {
        "color": "colormap" if args.colormap else "gray",
        "colormap": args.colormap or "hot",
        "target_shape": args.target_shape,
        "on_error": "skip" if args.skip_bad else "raise",
    }


def _load(args):
    from spectclf import load_slice_folders

    _log(f"loading {args.data_dir}")
    data = load_slice_folders(
        args.data_dir, verbose=args.verbose, **_load_options(args)
    )
    _summarise(data)
    return data


def _summarise(data) -> None:
    stages, counts = np.unique(data.y, return_counts=True)
    per = ", ".join(f"stage {s}: {n}" for s, n in zip(stages, counts, strict=True))
    _log(f"{len(data.y)} patients ({per}); volume shape {data.X.shape[1:]}")


def _build_model(args, n_train: int | None = None):
    from spectclf import make_default_pipeline, make_sbr_baseline

    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if args.model == "sbr":
        return make_sbr_baseline(random_state=args.random_state)
    params = dict(
        max_epochs=args.epochs,
        random_state=args.random_state,
        device=args.device,
        verbose=int(args.verbose >= 2),
        class_weight=None if args.class_weight == "none" else "balanced",
    )
    if args.model == "seed_cnn":
        params["module"] = "seed_cnn"
    return make_default_pipeline(tuple(args.shape), **params)


def _evaluate_and_report(
    args,
    data,
    out: Path,
    title: str,
    *,
    baseline: bool,
    final_fit: bool,
    extra_info: dict | None = None,
) -> int:
    from spectclf import evaluate, grad_cam, make_sbr_baseline
    from spectclf.report import write_report

    start = time.perf_counter()
    model = _build_model(args)
    _log(f"{args.cv}-fold patient-grouped cross-validation of the {args.model} model")
    result = evaluate(
        model,
        data.X,
        data.y,
        data.groups,
        cv=args.cv,
        random_state=args.random_state,
        verbose=args.verbose,
    )
    cv_time = time.perf_counter() - start
    base = None
    if baseline and args.model != "sbr":
        _log(
            "same folds for the SBR baseline (striatal binding ratios + logistic "
            "regression)"
        )
        base = evaluate(
            make_sbr_baseline(random_state=args.random_state),
            data.X,
            data.y,
            data.groups,
            cv=args.cv,
            random_state=args.random_state,
            verbose=0,
        )
    montage = None
    info = {
        "data": str(getattr(data, "root", args.__dict__.get("data_dir"))),
        "patients": len(data.y),
        "volume shape": tuple(data.X.shape[1:]),
        "model": args.model,
        "folds": args.cv,
        "cross-validation time (s)": round(cv_time, 1),
    }
    info.update(extra_info or {})
    if final_fit:
        _log("fitting the final model on all patients")
        t0 = time.perf_counter()
        final = _build_model(args)
        from spectclf.model_selection import _fit_with_groups

        _fit_with_groups(final, data.X, data.y, data.groups)
        info["final fit time (s)"] = round(time.perf_counter() - t0, 1)

        _save_model(out / "model.joblib", final, args)
        info["model file"] = str(out / "model.joblib")
        first = [int(np.flatnonzero(data.y == s)[0]) for s in np.unique(data.y)]
        if args.model != "sbr":
            _log("Grad-CAM saliency for one patient per stage")
            sal, Xt = grad_cam(final, data.X[first], target=data.y[first])
            montage = {
                "X": Xt,
                "y": data.y[first],
                "saliency": sal,
                "patients": data.groups[first],
            }
        else:
            montage = {
                "X": data.X[first],
                "y": data.y[first],
                "patients": data.groups[first],
            }
    index = write_report(
        out, result, title=title, montage=montage, baseline=base, info=info
    )
    from spectclf import stage_report

    print()
    stage_report(result.y_true, result.y_pred)
    for name in ("balanced_accuracy", "qwk", "f1_macro"):
        s = result.summary[name]
        line = (
            f"{name:>18}: {s['mean']:.3f} ± {s['std']:.3f} "
            f"(95% CI {s['ci95'][0]:.3f}-{s['ci95'][1]:.3f})"
        )
        if base is not None:
            line += f"   SBR baseline {base.summary[name]['mean']:.3f}"
        print(line)
    _log(f"report written to {index}")
    return 0


# -- commands ----------------------------------------------------------------------
def cmd_demo(args) -> int:
    """Demo cohort -> PNG slice folders -> loader -> CV -> final model -> report."""
    from spectclf import load_demo

    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _log(
        "building (or reusing) the demo cohort: synthetic DaTscan phantoms rendered "
        "as 'hot'-coloured PNG slices, read back through load_slice_folders"
    )
    # the demo slices are rendered with "hot": invert it, as a user would
    args.colormap, args.target_shape, args.skip_bad = "hot", None, False
    kwargs = {}
    if args.quick:
        kwargs = {"n_per_stage": (8, 8, 8, 5), "shape": (16, 32, 32)}
        args.epochs, args.cv, args.shape = (
            min(args.epochs, 5),
            min(args.cv, 3),
            (16, 32, 32),
        )
    data = load_demo(args.data_home, verbose=args.verbose, **kwargs)
    _log(f"slice folders: {data.root}")
    _summarise(data)
    rc = _evaluate_and_report(
        args,
        data,
        out,
        "spectclf demo: staging synthetic DaTscans",
        baseline=True,
        final_fit=True,
    )
    _log(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return rc


def cmd_evaluate(args) -> int:
    """Cross-validate a model on the user's data and write the report."""
    data = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return _evaluate_and_report(
        args,
        data,
        out,
        f"spectclf evaluation: {args.data_dir}",
        baseline=not args.no_baseline,
        final_fit=False,
    )


def cmd_train(args) -> int:
    """Fit a model on all patients and save it with joblib."""

    from spectclf.model_selection import _fit_with_groups

    data = _load(args)
    model = _build_model(args)
    t0 = time.perf_counter()
    _log(f"training the {args.model} model on {len(data.y)} patients")
    _fit_with_groups(model, data.X, data.y, data.groups)
    _save_model(args.out, model, args)
    _log(f"saved to {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _save_model(path, model, args) -> None:
    """A model file: the fitted model plus how to load data for it."""
    import joblib

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"model": model, "load": _load_options(args)}, path)


def _load_model(path):
    import joblib

    if not Path(path).is_file():
        raise UsageError(f"model file {path} does not exist")
    try:
        bundle = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise UsageError(f"cannot read model file {path}: {exc}") from None
    if not isinstance(bundle, dict) or "model" not in bundle:
        raise UsageError(f"{path} is not a spectclf model file (from `spectclf train`)")
    return bundle


def cmd_predict(args) -> int:
    """Predict the stage of every patient folder; write a CSV."""
    from spectclf.io import load_patient_folders

    bundle = _load_model(args.model_file)
    data = load_patient_folders(args.data_dir, **bundle["load"])
    model = bundle["model"]
    proba = model.predict_proba(data.X)
    classes = model.classes_
    pred = classes[np.argmax(proba, axis=1)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["patient_id", "predicted_stage"] + [f"p_stage_{c}" for c in classes]
        )
        for pid, p, row in zip(data.groups, pred, proba, strict=True):
            w.writerow([pid, p] + [f"{v:.4f}" for v in row])
    _log(f"{len(pred)} predictions written to {out}")
    return 0


def cmd_tune(args) -> int:
    """Optuna search under patient-grouped CV; resumable with --storage."""

    from spectclf import tune

    if args.model == "sbr":
        raise UsageError("tune searches CNN settings; use --model cnn or seed_cnn")
    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    data = _load(args)
    res = tune(
        _build_model(args),
        data.X,
        data.y,
        data.groups,
        n_trials=args.trials,
        cv=args.cv,
        storage=args.storage,
        study_name=args.study_name,
        timeout=args.timeout,
        random_state=args.random_state,
        verbose=args.verbose,
    )
    _save_model(args.out, res.best_estimator, args)
    summary = {
        "best_score": res.best_score,
        "best_params": {k: repr(v) for k, v in res.best_params.items()},
        "trials": len(res.study.trials),
        "wall_time_s": round(res.wall_time, 1),
    }
    Path(args.out).with_suffix(".json").write_text(json.dumps(summary, indent=2))
    _log(f"best balanced accuracy {res.best_score:.3f}; model saved to {args.out}")
    return 0


def cmd_explain(args) -> int:
    """Grad-CAM for one patient folder: montage PNG and saliency .npy."""
    from spectclf import grad_cam
    from spectclf.io import load_patient_folders
    from spectclf.plotting import plot_stage_montage

    bundle = _load_model(args.model_file)
    data = load_patient_folders(args.patient_dir, **bundle["load"])
    model = bundle["model"]
    if not hasattr(model, "steps") and not hasattr(model, "module_"):
        raise UsageError("explain needs a CNN model (not --model sbr)")
    if hasattr(model, "steps") and not hasattr(model.steps[-1][1], "module_"):
        raise UsageError("explain needs a CNN model (not --model sbr)")
    pred = model.predict(data.X)
    sal, Xt = grad_cam(model, data.X)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "saliency.npy", sal)
    fig = plot_stage_montage(
        Xt,
        pred,
        saliency=sal,
        patient_ids=data.groups,
        title="Predicted stage and Grad-CAM",
    )
    fig.savefig(out / "gradcam.png", dpi=110)
    for pid, p in zip(data.groups, pred, strict=True):
        _log(f"{pid}: predicted stage {p}")
    _log(f"saliency written to {out}")
    return 0


def _command(sub, name, func, help_, *, data=False, model=False):
    """A sub-command parser with the shared option groups it needs."""
    p = sub.add_parser(name, help=help_, description=func.__doc__)
    if data:
        _add_data(p)
    if model:
        _add_model(p)
    _add_common(p)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``spectclf`` argument parser."""
    from spectclf import __version__

    parser = argparse.ArgumentParser(
        prog="spectclf",
        description="Stage Parkinson's disease from DaTscan SPECT slice folders with "
        "patient-grouped cross-validation.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(
        sub,
        "demo",
        cmd_demo,
        "run the whole job on the built-in demo cohort",
        model=True,
    )
    p.add_argument("--out", default="spectclf-demo", help="report folder")
    p.add_argument("--data-home", default=None, help="cache folder of the demo data")
    p.add_argument("--cv", type=int, default=5, help="folds (default: 5)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a 29-patient cohort, at most 5 epochs and 3 folds: a smoke "
        "test in about a minute",
    )

    p = _command(
        sub,
        "evaluate",
        cmd_evaluate,
        "cross-validate on your data, write a report",
        data=True,
        model=True,
    )
    p.add_argument("data_dir", help="folder: <stage>/<patient>/<slice images>")
    p.add_argument("--out", default="spectclf-report", help="report folder")
    p.add_argument("--cv", type=int, default=5, help="folds (default: 5)")
    p.add_argument(
        "--no-baseline", action="store_true", help="skip the SBR baseline comparison"
    )

    p = _command(
        sub,
        "train",
        cmd_train,
        "fit on all patients and save the model",
        data=True,
        model=True,
    )
    p.add_argument("data_dir")
    p.add_argument("--out", default="model.joblib")

    p = _command(sub, "predict", cmd_predict, "predict stages of patient folders")
    p.add_argument("model_file")
    p.add_argument("data_dir", help="a patient folder, or a folder of patient folders")
    p.add_argument("--out", default="predictions.csv")

    p = _command(
        sub,
        "tune",
        cmd_tune,
        "Optuna search, resumable with --storage",
        data=True,
        model=True,
    )
    p.add_argument("data_dir")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--cv", type=int, default=3, help="inner folds (default: 3)")
    p.add_argument(
        "--storage",
        default=None,
        help="e.g. sqlite:///study.db to resume after a crash",
    )
    p.add_argument("--study-name", default=None)
    p.add_argument("--timeout", type=float, default=None, help="seconds")
    p.add_argument("--out", default="tuned.joblib")

    p = _command(sub, "explain", cmd_explain, "Grad-CAM saliency for one patient")
    p.add_argument("model_file")
    p.add_argument("patient_dir")
    p.add_argument("--out", default="spectclf-explain")
    return parser


def main(argv=None) -> int:
    """Entry point of the ``spectclf`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "cv", 5) < 2:
        parser.error(f"--cv must be >= 2, got {args.cv}")
    import matplotlib

    matplotlib.use("Agg")
    try:
        return args.func(args)
    except (
        SpectDataError,
        UsageError,
        MissingDependencyError,
        ValueError,
        FileNotFoundError,
    ) as exc:
        if args.debug:
            raise
        print(f"spectclf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spectclf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
