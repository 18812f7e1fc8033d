"""Command-line interface: ``spectclf demo | evaluate | train | predict | tune | explain``.

Argument parsing only: every command calls a function of :mod:`spectclf.workflows`.
spectclf's own user-facing errors end with a one-line message and exit code 2;
anything else is a bug and keeps its traceback. Ctrl-C ends with exit code 130 and
writes no partial output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from spectclf import workflows
from spectclf.classifier import DEFAULT_MAX_EPOCHS
from spectclf.datasets import load_demo
from spectclf.exceptions import SpectclfError, UsageError
from spectclf.io import DEFAULT_COLOR, DEFAULT_COLORMAP, load_slice_folders
from spectclf.workflows import MODELS


def _log(msg: str, args) -> None:
    """A progress line, unless ``--verbose 0``."""
    if getattr(args, "verbose", 1):
        print(f"[spectclf] {msg}", flush=True)


def _pick(args, *names: str) -> dict:
    """The flags ``names`` as keywords of the same names."""
    return {name: getattr(args, name) for name in names}


def _load_options(args) -> dict:
    """The data flags as keywords of :func:`~spectclf.load_slice_folders`."""
    options = _pick(args, "color", "colormap", "target_shape", "slice_order", "flip_lr")
    options["overlays"] = "keep" if args.keep_overlays else "remove"
    options["on_error"] = "skip" if args.skip_bad else "raise"
    return options


def _model_options(args) -> dict:
    """The model flags as keywords of :func:`~spectclf.workflows.build_model`."""
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    options = _pick(args, "epochs", "random_state", "device", "verbose")
    options["shape"] = tuple(args.shape)
    options["class_weight"] = None if args.class_weight == "none" else "balanced"
    return options


def _summarise(data, args) -> None:
    stages, counts = np.unique(data.y, return_counts=True)
    per = ", ".join(f"stage {s}: {n}" for s, n in zip(stages, counts, strict=True))
    colour = f"; colours read as {data.colormap!r}" if data.get("colormap") else ""
    shape = data.X.shape[1:]
    _log(f"{len(data.y)} patients ({per}); volume shape {shape}{colour}", args)


def _load(args):
    _log(f"loading {args.data_dir}", args)
    data = load_slice_folders(
        args.data_dir, verbose=args.verbose, **_load_options(args)
    )
    _summarise(data, args)
    return data


def _report(args, data, **kwargs) -> None:
    """:func:`~spectclf.workflows.evaluate_and_report` with the shared flags."""
    workflows.evaluate_and_report(
        data,
        args.out,
        model_options=_model_options(args),
        n_repeats=args.repeats,
        command=["spectclf", *args.argv],
        **_pick(args, "model", "cv", "random_state", "verbose"),
        **kwargs,
    )


# -- commands ----------------------------------------------------------------------
def cmd_demo(args) -> int:
    """Demo cohort -> PNG slice folders -> loader -> CV -> final model -> report."""
    t0 = time.perf_counter()
    _log(
        "building (or reusing) the demo cohort: synthetic DaTscan phantoms rendered "
        "as coloured PNG slices, read back through load_slice_folders",
        args,
    )
    kwargs = {}
    if args.quick:
        kwargs = {"n_per_stage": (8, 8, 8, 5), "shape": (16, 32, 32)}
        args.epochs, args.cv = min(args.epochs, 5), min(args.cv, 3)
        args.shape = (16, 32, 32)
    data = load_demo(args.data_home, verbose=args.verbose, **kwargs)
    _log(f"slice folders: {data.root}", args)
    _summarise(data, args)
    # the demo's folders are read with the loader's defaults
    args.color, args.colormap, args.target_shape = DEFAULT_COLOR, data.colormap, None
    args.slice_order, args.flip_lr = "natural", False
    args.keep_overlays = args.skip_bad = False
    title = "spectclf demo: staging synthetic DaTscans"
    _report(args, data, final_fit=True, load_options=_load_options(args), title=title)
    _log(f"demo finished in {time.perf_counter() - t0:.0f} s", args)
    return 0


def cmd_evaluate(args) -> int:
    """Cross-validate a model on the user's data and write the report."""
    _model_options(args)  # bad options fail before minutes of loading
    data = _load(args)
    title = f"spectclf evaluation: {Path(args.data_dir).name}"
    _report(args, data, baseline=not args.no_baseline, title=title)
    return 0


def cmd_train(args) -> int:
    """Fit a model on all patients and save it (a .safetensors model file)."""
    options = _model_options(args)
    data = _load(args)
    if args.ensemble is not None and args.ensemble < 2:
        raise UsageError(f"--ensemble must be >= 2 models, got {args.ensemble}")
    workflows.train_and_save(
        data,
        args.out,
        model_options=options,
        load_options=_load_options(args),
        **_pick(args, "model", "ensemble", "random_state", "verbose"),
    )
    return 0


def cmd_predict(args) -> int:
    """Predict the stage of every patient folder; write a CSV."""
    workflows.predict_patients(
        args.model_file,
        args.data_dir,
        **_pick(args, "out", "colormap", "trust_pickle", "verbose"),
    )
    return 0


def cmd_tune(args) -> int:
    """Optuna search under patient-grouped CV; resumable with --storage; --workers N
    runs N local processes on one study."""
    if args.model == "sbr":
        raise UsageError("tune searches CNN settings; use --model cnn or seed_cnn")
    for flag in ("trials", "workers"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    options = _model_options(args)
    data = _load(args)
    workflows.tune_and_save(
        data,
        args.out,
        model_options=options,
        load_options=_load_options(args),
        n_trials=args.trials,
        n_workers=args.workers,
        worker_args=args.argv,
        refit=not args.worker_only,
        **_pick(args, "model", "cv", "storage", "study_name", "timeout"),
        **_pick(args, "epoch_pruning"),
        **_pick(args, "random_state", "worker_id", "verbose"),
    )
    return 0


def cmd_explain(args) -> int:
    """Saliency maps (integrated gradients) for patient folders: montage PNG and
    saliency .npy."""
    res = workflows.explain_patients(
        args.model_file,
        args.patient_dir,
        args.out,
        **_pick(args, "trust_pickle", "verbose"),
    )
    _log(f"saliency written to {res.files[0].parent}", args)
    return 0


# -- options: (flag or name, add_argument keywords, help) ---------------------------
_FLAG = {"action": "store_true"}
_DATA_DIR = ("data_dir", {}, "folder: <stage>/<patient>/<slice images>")


def _out(default: str, what: str) -> tuple:
    return ("--out", {"default": default}, f"{what} (default: {default})")


# fmt: off
_DATA = [
    ("--color", dict(choices=("colormap", "gray", "rgb"), default=DEFAULT_COLOR),
     "how colours become intensity: through the colormap (default), luminance, or "
     "three RGB channels"),
    ("--colormap", dict(default=DEFAULT_COLORMAP, metavar="NAME"),
     "matplotlib colormap the slices were rendered with, or 'auto' to pick the one "
     "that best explains the colours (default: auto)"),
    ("--target-shape", dict(type=int, nargs=3, metavar=("D", "H", "W")),
     "resample every patient to this shape when they differ (default: none; "
     "patients of different shapes are refused)"),
    ("--slice-order", dict(choices=("natural", "reverse"), default="natural"),
     "'reverse' when a patient's first slice file is the most posterior (default: "
     "natural, the first is the most anterior)"),
    ("--flip-lr", _FLAG, "mirror left and right: slices in neurological view "
     "(patient's left on the image's left)"),
    ("--keep-overlays", _FLAG, "read pixels that keep one colour on every slice (a "
     "colour bar, letters) as intensity instead of replacing them from the pixels "
     "beside them"),
    ("--skip-bad", _FLAG, "skip unreadable patients with a warning instead of failing"),
]
_MODEL = [
    ("--model", dict(choices=MODELS, default="cnn"),
     "cnn: default 3-D ResNet; seed_cnn: plain baseline CNN; sbr: "
     "striatal-binding-ratio logistic regression (default: cnn)"),
    ("--epochs", dict(type=int, default=DEFAULT_MAX_EPOCHS),
     f"training epochs of the CNN (default: {DEFAULT_MAX_EPOCHS})"),
    ("--shape", dict(type=int, nargs=3, default=(32, 64, 64), metavar=("D", "H", "W")),
     "volume size the CNN sees (default: 32 64 64)"),
    ("--class-weight", dict(choices=("none", "balanced"), default="balanced"),
     "weight the loss against stage imbalance (default: balanced)"),
    ("--random-state", dict(type=int, default=0),
     "seed for folds, weights and augmentation (default: 0)"),
    ("--device", dict(default="auto"),
     "'auto' (CUDA when available), 'cpu' or 'cuda' (default: auto)"),
]
_COMMON = [
    ("--verbose", dict(type=int, default=1),
     "0 quiet, 1 progress lines, 2 per-epoch tables (default: 1)"),
    ("--debug", _FLAG, "show tracebacks of spectclf's errors"),
]
_CV = ("--cv", dict(type=int, default=5), "patient-grouped folds (default: 5)")
_REPEATS = ("--repeats", dict(type=int, default=1, metavar="R"),
            "repeat the CV on R different patient partitions (the same for the model "
            "and the baseline); R times the time, steadier numbers (default: 1)")
_TRUST = ("--trust-pickle", _FLAG,
          "also load a pickle/joblib model file from spectclf 0.1; unpickling runs "
          "code chosen by the file's author, so only for files you made")

#: command -> (function, help, options); the shared groups come first.
_COMMANDS = {
    "demo": (cmd_demo, "run the whole job on the built-in demo cohort", [
        *_MODEL, *_COMMON, _out("spectclf-demo", "report folder"),
        ("--data-home", dict(default=None),
         "cache folder of the demo data (default: ~/.cache/spectclf)"),
        _CV, _REPEATS,
        ("--quick", _FLAG, "a 29-patient cohort, at most 5 epochs and 3 folds: a "
         "smoke test in about a minute"),
    ]),
    "evaluate": (cmd_evaluate, "cross-validate on your data, write a report", [
        *_DATA, *_MODEL, *_COMMON, _DATA_DIR, _out("spectclf-report", "report folder"),
        _CV, _REPEATS,
        ("--no-baseline", _FLAG,
         "skip the SBR baseline and the paired comparison with it"),
    ]),
    "train": (cmd_train, "fit on all patients and save the model", [
        *_DATA, *_MODEL, *_COMMON, _DATA_DIR,
        _out("model.safetensors", "model file to write"),
        ("--ensemble", dict(type=int, default=None, metavar="K"),
         "train K patient-grouped fold models; their uncertainty then adds the "
         "members' disagreement (default: one model)"),
    ]),
    "predict": (cmd_predict, "predict stages of patient folders (CSV: stage, "
                "probabilities, uncertainty, colour residual, 'check' flag)", [
        *_COMMON, ("model_file", {}, "a model file from 'spectclf train'"),
        ("data_dir", {}, "a patient folder, a folder of patient folders, or a staged "
         "cohort folder (its known stages are reported beside the predictions)"),
        _out("predictions.csv", "CSV file to write"),
        ("--colormap", dict(metavar="NAME"),
         "read the slices through this colormap (or 'auto') instead of the model "
         "file's: for scans rendered with another colormap (default: the model "
         "file's)"),
        _TRUST,
    ]),
    "tune": (cmd_tune, "Optuna search, resumable with --storage", [
        *_DATA, *_MODEL, *_COMMON, _DATA_DIR,
        ("--trials", dict(type=int, default=20),
         "finished (complete or pruned) trials the study should hold; a resumed "
         "study runs only the missing ones (default: 20)"),
        ("--cv", dict(type=int, default=3),
         "patient-grouped folds that score each trial (default: 3)"),
        ("--storage", dict(default=None),
         "e.g. sqlite:///study.db to resume after a crash, or a PostgreSQL URL to "
         "share one study between machines (default: in memory, or a SQLite file "
         "next to --out with --workers)"),
        ("--study-name", dict(default=None),
         "name of the study in --storage, needed to resume or share it (default: "
         "spectclf)"),
        ("--timeout", dict(type=float, default=None),
         "stop starting new trials after this many seconds (default: none)"),
        ("--epoch-pruning", _FLAG,
         "also stop trials inside their first fold, after a few epochs: about "
         "2.5x faster, but it may drop the best trial (see the docs, 'Tuning')"),
        ("--workers", dict(type=int, default=1),
         "local processes working on one study, the CPU threads divided among "
         "them (default: 1); without --storage they share a SQLite file next to "
         "--out"),
        ("--worker-id", dict(type=int, default=0), argparse.SUPPRESS),
        ("--worker-only", _FLAG, argparse.SUPPRESS),
        _out("tuned.safetensors", "model file of the best parameters refit on all "
             "patients, with a JSON summary beside it"),
    ]),
    "explain": (cmd_explain, "saliency maps for patient folders", [
        *_COMMON, ("model_file", {}, "a CNN model file from 'spectclf train'"),
        ("patient_dir", {}, "a patient folder, or a folder of patient folders"),
        _out("spectclf-explain", "folder for the saliency PNG and .npy"),
        _TRUST,
    ]),
}
# fmt: on


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
    for name, (func, help_, options) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=func.__doc__)
        for flag, keywords, text in options:
            p.add_argument(flag, help=text, **keywords)
        p.set_defaults(func=func)
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
