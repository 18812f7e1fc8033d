"""Command-line interface: ``spectclf demo | evaluate | train | predict | tune | explain``.

Argument parsing only: every command calls a function of :mod:`spectclf.workflows`
(or :func:`spectclf.tune`). spectclf's own user-facing errors end with a one-line
message and exit code 2; anything else is a bug and keeps its traceback. Ctrl-C ends
with exit code 130 and writes no partial output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from spectclf.classifier import DEFAULT_MAX_EPOCHS
from spectclf.exceptions import SpectclfError, UsageError
from spectclf.io import DEFAULT_COLOR, DEFAULT_COLORMAP
from spectclf.workflows import MODELS


def _log(msg: str, args) -> None:
    """A progress line, unless ``--verbose 0``."""
    if getattr(args, "verbose", 1):
        print(f"[spectclf] {msg}", flush=True)


# -- shared option groups ----------------------------------------------------------
def _add_training(p: argparse.ArgumentParser) -> None:
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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verbose",
        type=int,
        default=1,
        help="0 quiet, 1 progress lines, 2 per-epoch tables (default: 1)",
    )
    p.add_argument(
        "--debug", action="store_true", help="show tracebacks of spectclf's errors"
    )


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--color",
        choices=("colormap", "gray", "rgb"),
        default=DEFAULT_COLOR,
        help="how colours become intensity: through the colormap (default), "
        "luminance, or three RGB channels",
    )
    p.add_argument(
        "--colormap",
        default=DEFAULT_COLORMAP,
        metavar="NAME",
        help="matplotlib colormap the slices were rendered with, or 'auto' to "
        "pick the one that best explains the colours (default: auto)",
    )
    p.add_argument(
        "--target-shape",
        type=int,
        nargs=3,
        metavar=("D", "H", "W"),
        help="resample every patient to this shape when they differ (default: "
        "none; patients of different shapes are refused)",
    )
    p.add_argument(
        "--slice-order",
        choices=("natural", "reverse"),
        default="natural",
        help="'reverse' when a patient's first slice file is the most posterior "
        "(default: natural, the first is the most anterior)",
    )
    p.add_argument(
        "--flip-lr",
        action="store_true",
        help="mirror left and right: slices in neurological view (patient's left "
        "on the image's left)",
    )
    p.add_argument(
        "--keep-overlays",
        action="store_true",
        help="read pixels that keep one colour on every slice (a colour bar, "
        "letters) as intensity instead of replacing them from the pixels beside them",
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
        default=DEFAULT_MAX_EPOCHS,
        help=f"training epochs of the CNN (default: {DEFAULT_MAX_EPOCHS})",
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
        default="balanced",
        help="weight the loss against stage imbalance (default: balanced)",
    )


def _load_options(args) -> dict:
    return {
        "color": args.color,
        "colormap": args.colormap,
        "target_shape": args.target_shape,
        "slice_order": args.slice_order,
        "flip_lr": args.flip_lr,
        "overlays": "keep" if args.keep_overlays else "remove",
        "on_error": "skip" if args.skip_bad else "raise",
    }


def _model_options(args) -> dict:
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    return {
        "shape": tuple(args.shape),
        "epochs": args.epochs,
        "class_weight": None if args.class_weight == "none" else "balanced",
        "random_state": args.random_state,
        "device": args.device,
        "verbose": args.verbose,
    }


def _summarise(data, args) -> None:
    stages, counts = np.unique(data.y, return_counts=True)
    per = ", ".join(f"stage {s}: {n}" for s, n in zip(stages, counts, strict=True))
    colour = f"; colours read as {data.colormap!r}" if data.get("colormap") else ""
    _log(
        f"{len(data.y)} patients ({per}); volume shape {data.X.shape[1:]}{colour}", args
    )


def _load(args):
    from spectclf import load_slice_folders

    _log(f"loading {args.data_dir}", args)
    data = load_slice_folders(
        args.data_dir, verbose=args.verbose, **_load_options(args)
    )
    _summarise(data, args)
    return data


# -- commands ----------------------------------------------------------------------
def cmd_demo(args) -> int:
    """Demo cohort -> PNG slice folders -> loader -> CV -> final model -> report."""
    from spectclf import load_demo
    from spectclf.workflows import evaluate_and_report

    t0 = time.perf_counter()
    _log(
        "building (or reusing) the demo cohort: synthetic DaTscan phantoms rendered "
        "as coloured PNG slices, read back through load_slice_folders",
        args,
    )
    kwargs = {}
    if args.quick:
        kwargs = {"n_per_stage": (8, 8, 8, 5), "shape": (16, 32, 32)}
        args.epochs, args.cv, args.shape = (
            min(args.epochs, 5),
            min(args.cv, 3),
            (16, 32, 32),
        )
    data = load_demo(args.data_home, verbose=args.verbose, **kwargs)
    _log(f"slice folders: {data.root}", args)
    _summarise(data, args)
    # the demo's folders are read with the loader's defaults
    args.color, args.colormap, args.target_shape, args.skip_bad = (
        DEFAULT_COLOR,
        data.colormap,
        None,
        False,
    )
    args.slice_order, args.flip_lr, args.keep_overlays = "natural", False, False
    evaluate_and_report(
        data,
        args.out,
        model=args.model,
        model_options=_model_options(args),
        cv=args.cv,
        n_repeats=args.repeats,
        baseline=True,
        final_fit=True,
        load_options=_load_options(args),
        title="spectclf demo: staging synthetic DaTscans",
        random_state=args.random_state,
        command=["spectclf", *args.argv],
        verbose=args.verbose,
    )
    _log(f"demo finished in {time.perf_counter() - t0:.0f} s", args)
    return 0


def cmd_evaluate(args) -> int:
    """Cross-validate a model on the user's data and write the report."""
    from spectclf.workflows import evaluate_and_report

    options = _model_options(args)  # bad options fail before minutes of loading
    data = _load(args)
    evaluate_and_report(
        data,
        args.out,
        model=args.model,
        model_options=options,
        cv=args.cv,
        n_repeats=args.repeats,
        baseline=not args.no_baseline,
        title=f"spectclf evaluation: {Path(args.data_dir).name}",
        random_state=args.random_state,
        command=["spectclf", *args.argv],
        verbose=args.verbose,
    )
    return 0


def cmd_train(args) -> int:
    """Fit a model on all patients and save it (a .safetensors model file)."""
    from spectclf.workflows import train_and_save

    options = _model_options(args)
    data = _load(args)
    if args.ensemble is not None and args.ensemble < 2:
        raise UsageError(f"--ensemble must be >= 2 models, got {args.ensemble}")
    train_and_save(
        data,
        args.out,
        model=args.model,
        model_options=options,
        load_options=_load_options(args),
        ensemble=args.ensemble,
        random_state=args.random_state,
        verbose=args.verbose,
    )
    return 0


def cmd_predict(args) -> int:
    """Predict the stage of every patient folder; write a CSV."""
    from spectclf.workflows import predict_patients

    predict_patients(
        args.model_file,
        args.data_dir,
        out=args.out,
        colormap=args.colormap,
        trust_pickle=args.trust_pickle,
        verbose=args.verbose,
    )
    return 0


def _spawn_workers(args) -> list:
    """Start ``args.workers - 1`` more local processes on the same study."""
    import subprocess

    argv = list(args.argv)
    i = argv.index("--workers")
    del argv[i : i + 2]
    procs = []
    for k in range(1, args.workers):
        cmd = [sys.executable, "-m", "spectclf.cli", *argv, "--worker-id", str(k)]
        procs.append(subprocess.Popen(cmd + ["--worker-only"]))
    return procs


def cmd_tune(args) -> int:
    """Optuna search under patient-grouped CV; resumable with --storage; --workers N
    runs N local processes on one study."""
    from spectclf.workflows import default_study_storage, tune_and_save

    if args.model == "sbr":
        raise UsageError("tune searches CNN settings; use --model cnn or seed_cnn")
    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.workers > 1 and args.storage is None:
        args.storage = default_study_storage(args.out)
        args.argv += ["--storage", args.storage]
        _log(f"{args.workers} workers share the study in {args.storage}", args)
    options = _model_options(args)
    data = _load(args)
    tune_and_save(
        data,
        args.out,
        model=args.model,
        model_options=options,
        load_options=_load_options(args),
        n_trials=args.trials,
        cv=args.cv,
        storage=args.storage,
        study_name=args.study_name,
        timeout=args.timeout,
        random_state=args.random_state,
        worker_id=args.worker_id,
        other_workers=_spawn_workers(args) if args.workers > 1 else (),
        refit=not args.worker_only,
        verbose=args.verbose,
    )
    return 0


def cmd_explain(args) -> int:
    """Saliency maps (integrated gradients) for patient folders: montage PNG and
    saliency .npy."""
    from spectclf.workflows import explain_patients

    res = explain_patients(
        args.model_file,
        args.patient_dir,
        args.out,
        trust_pickle=args.trust_pickle,
        verbose=args.verbose,
    )
    _log(f"saliency written to {res.files[0].parent}", args)
    return 0


def _command(sub, name, func, help_, *, data=False, model=False):
    """A sub-command parser with the shared option groups it needs."""
    p = sub.add_parser(name, help=help_, description=func.__doc__)
    if data:
        _add_data(p)
    if model:
        _add_model(p)
        _add_training(p)
    _add_common(p)
    p.set_defaults(func=func)
    return p


def _add_trust(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="also load a pickle/joblib model file from spectclf 0.1; unpickling "
        "runs code chosen by the file's author, so only for files you made",
    )


def _add_repeats(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        metavar="R",
        help="repeat the CV on R different patient partitions (the same for the "
        "model and the baseline); R times the time, steadier numbers (default: 1)",
    )


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
    p.add_argument(
        "--out", default="spectclf-demo", help="report folder (default: spectclf-demo)"
    )
    p.add_argument(
        "--data-home",
        default=None,
        help="cache folder of the demo data (default: ~/.cache/spectclf)",
    )
    p.add_argument(
        "--cv", type=int, default=5, help="patient-grouped folds (default: 5)"
    )
    _add_repeats(p)
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
    p.add_argument(
        "--out",
        default="spectclf-report",
        help="report folder (default: spectclf-report)",
    )
    p.add_argument(
        "--cv", type=int, default=5, help="patient-grouped folds (default: 5)"
    )
    _add_repeats(p)
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the SBR baseline and the paired comparison with it",
    )

    p = _command(
        sub,
        "train",
        cmd_train,
        "fit on all patients and save the model",
        data=True,
        model=True,
    )
    p.add_argument("data_dir", help="folder: <stage>/<patient>/<slice images>")
    p.add_argument(
        "--out",
        default="model.safetensors",
        help="model file to write (default: model.safetensors)",
    )
    p.add_argument(
        "--ensemble",
        type=int,
        default=None,
        metavar="K",
        help="train K patient-grouped fold models; their uncertainty then adds "
        "the members' disagreement (default: one model)",
    )

    p = _command(
        sub,
        "predict",
        cmd_predict,
        "predict stages of patient folders (CSV: stage, probabilities, uncertainty, "
        "colour residual, 'check' flag)",
    )
    p.add_argument("model_file", help="a model file from 'spectclf train'")
    p.add_argument(
        "data_dir",
        help="a patient folder, a folder of patient folders, or a staged cohort "
        "folder (its known stages are reported beside the predictions)",
    )
    p.add_argument(
        "--out",
        default="predictions.csv",
        help="CSV file to write (default: predictions.csv)",
    )
    p.add_argument(
        "--colormap",
        metavar="NAME",
        help="read the slices through this colormap (or 'auto') instead of the "
        "model file's: for scans rendered with another colormap (default: the "
        "model file's)",
    )
    _add_trust(p)

    p = _command(
        sub,
        "tune",
        cmd_tune,
        "Optuna search, resumable with --storage",
        data=True,
        model=True,
    )
    p.add_argument("data_dir", help="folder: <stage>/<patient>/<slice images>")
    p.add_argument(
        "--trials",
        type=int,
        default=20,
        help="finished (complete or pruned) trials the study should hold; a resumed "
        "study runs only the missing ones (default: 20)",
    )
    p.add_argument(
        "--cv",
        type=int,
        default=3,
        help="patient-grouped folds that score each trial (default: 3)",
    )
    p.add_argument(
        "--storage",
        default=None,
        help="e.g. sqlite:///study.db to resume after a crash, or a PostgreSQL URL "
        "to share one study between machines (default: in memory, or a SQLite "
        "file next to --out with --workers)",
    )
    p.add_argument(
        "--study-name",
        default=None,
        help="name of the study in --storage, needed to resume or share it "
        "(default: spectclf)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="stop starting new trials after this many seconds (default: none)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local processes working on one study (default: 1); without "
        "--storage they share a SQLite file next to --out",
    )
    p.add_argument("--worker-id", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--out",
        default="tuned.safetensors",
        help="model file of the best parameters refit on all patients, with a "
        "JSON summary beside it (default: tuned.safetensors)",
    )

    p = _command(sub, "explain", cmd_explain, "saliency maps for patient folders")
    p.add_argument("model_file", help="a CNN model file from 'spectclf train'")
    p.add_argument(
        "patient_dir", help="a patient folder, or a folder of patient folders"
    )
    p.add_argument(
        "--out",
        default="spectclf-explain",
        help="folder for the saliency PNG and .npy (default: spectclf-explain)",
    )
    _add_trust(p)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``spectclf`` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if getattr(args, "cv", 5) < 2:
        parser.error(f"--cv must be >= 2, got {args.cv}")
    if getattr(args, "repeats", 1) < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    import matplotlib

    matplotlib.use("Agg")
    try:
        return args.func(args)
    except SpectclfError as exc:
        if args.debug:
            raise
        print(f"spectclf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spectclf: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
