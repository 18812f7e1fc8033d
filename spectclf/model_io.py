"""Model files without pickle: tensors in safetensors, the rest as JSON.

A spectclf model file is one ``.safetensors`` file: every array of the fitted model
(network weights, regions, scaler statistics, coefficients...) is a tensor, and a JSON
description in the file's metadata names each estimator by an allow-listed class,
its parameters and its fitted attributes. Loading builds the estimators from that
list and fills in the arrays: it never unpickles anything and so cannot run code.

Pickle / joblib files are refused unless the caller passes ``trust_pickle=True``
(``--trust-pickle`` on the command line), because unpickling a file runs whatever
code its author put in it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from spectclf.exceptions import ModelFileError
from spectclf.utils import write_atomic

__all__ = ["FORMAT_VERSION", "load_model", "save_model"]

#: Bumped when the file layout changes incompatibly.
FORMAT_VERSION = 1
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def _allowed_classes() -> dict[str, type]:
    """Every class a model file may name: spectclf's and a few scikit-learn ones."""
    from imblearn.pipeline import Pipeline as ImbPipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    import spectclf

    classes = [Pipeline, ImbPipeline, LogisticRegression, StandardScaler]
    classes += [
        obj
        for name in spectclf.__all__
        if isinstance(obj := getattr(spectclf, name), type)
    ]
    return {f"{c.__module__}.{c.__qualname__}": c for c in classes}


def _qualname(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class _Encoder:
    """Turns estimators into JSON, collecting their arrays as named tensors."""

    def __init__(self):
        self.tensors: dict[str, Any] = {}
        self.allowed = _allowed_classes()

    def array(self, arr: np.ndarray, where: str):
        arr = np.asarray(arr)
        if arr.dtype.kind in "biuf":
            import torch

            key = f"t{len(self.tensors)}"
            self.tensors[key] = torch.from_numpy(np.ascontiguousarray(arr).copy())
            return {"__tensor__": key, "dtype": arr.dtype.str}
        if arr.dtype.kind in "OUS":
            return {"__array__": [self.value(v, where) for v in arr.tolist()]}
        raise ModelFileError(f"Cannot store {where}: arrays of dtype {arr.dtype}.")

    def value(self, v, where: str):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return self.array(v, where)
        if isinstance(v, tuple):
            return {"__tuple__": [self.value(x, where) for x in v]}
        if isinstance(v, list):
            return [self.value(x, where) for x in v]
        if isinstance(v, dict):
            return {
                "__dict__": [
                    [self.value(k, where), self.value(x, where)] for k, x in v.items()
                ]
            }
        if hasattr(v, "get_params"):
            return self.estimator(v, where)
        raise ModelFileError(
            f"Cannot store {where} = {v!r} without pickle; model files hold "
            "spectclf's own estimators with plain parameters (strings, numbers, "
            "arrays). A custom network class or callback cannot be saved this way."
        )

    def estimator(self, est, where: str = "model"):
        name = _qualname(est)
        if name not in self.allowed:
            raise ModelFileError(
                f"Cannot store {where}: {name} is not one of the estimators a model "
                f"file may hold ({', '.join(sorted(self.allowed))})."
            )
        if hasattr(est, "steps"):
            return {
                "class": name,
                "steps": [[n, self.value(s, f"{where}.{n}")] for n, s in est.steps],
                "params": {
                    k: self.value(v, f"{where}.{k}")
                    for k, v in est.get_params(deep=False).items()
                    if k != "steps"
                },
            }
        from spectclf.classifier import Spect3DClassifier

        params = est.get_params(deep=False)
        fitted = {
            k: v
            for k, v in vars(est).items()
            if k.endswith("_") and not k.startswith("_")
        }
        out = {"class": name}
        if isinstance(est, Spect3DClassifier):
            params["callbacks"] = None  # training-time hooks; not needed to predict
            fitted = {
                k: fitted[k]
                for k in ("classes_", "n_features_in_", "input_shape_", "temperature_")
                if k in fitted
            }
            if hasattr(est, "module_"):
                out["state_dict"] = {
                    k: self.array(t.detach().cpu().numpy(), f"{where}.module_.{k}")
                    for k, t in est.module_.state_dict().items()
                }
        out["params"] = {k: self.value(v, f"{where}.{k}") for k, v in params.items()}
        out["fitted"] = {k: self.value(v, f"{where}.{k}") for k, v in fitted.items()}
        return out


class _Decoder:
    def __init__(self, tensors, allowed):
        self.tensors = tensors
        self.allowed = allowed

    def value(self, v):
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict):
            return v
        if "__tensor__" in v:
            return self.tensors[v["__tensor__"]].numpy().astype(np.dtype(v["dtype"]))
        if "__array__" in v:
            return np.asarray([self.value(x) for x in v["__array__"]], dtype=object)
        if "__tuple__" in v:
            return tuple(self.value(x) for x in v["__tuple__"])
        if "__dict__" in v:
            return {self.value(k): self.value(x) for k, x in v["__dict__"]}
        if "class" in v:
            return self.estimator(v)
        raise ModelFileError(f"Unknown entry in the model description: {sorted(v)}")

    def estimator(self, d):
        cls = self.allowed.get(d["class"])
        if cls is None:
            raise ModelFileError(
                f"The model file names class {d['class']!r}, which spectclf does not "
                "load (only its own estimators and a few scikit-learn ones)."
            )
        params = {k: self.value(v) for k, v in d.get("params", {}).items()}
        if "steps" in d:
            steps = [(n, self.value(s)) for n, s in d["steps"]]
            return cls(steps, **params)
        est = cls(**params)
        for k, v in d.get("fitted", {}).items():
            if not k.endswith("_"):
                raise ModelFileError(f"Fitted attribute {k!r} is not a fitted name.")
            setattr(est, k, self.value(v))
        if "state_dict" in d:
            import torch

            state = {
                k: torch.from_numpy(np.ascontiguousarray(self.value(v)))
                for k, v in d["state_dict"].items()
            }
            est.restore_network(state)
        return est


def save_model(model, path, *, extra: dict | None = None) -> Path:
    """Save a fitted spectclf model (a pipeline or estimator) without pickle.

    Parameters
    ----------
    model : estimator or pipeline
        Built from spectclf's estimators (and scikit-learn's ``Pipeline``,
        ``StandardScaler``, ``LogisticRegression``).
    path : str or Path
        Target file, conventionally ``*.safetensors``; written atomically.
    extra : dict, default=None
        JSON-able facts stored beside the model (e.g. how to load data for it).

    Returns
    -------
    path : Path

    Raises
    ------
    ModelFileError
        If the model holds something that cannot be stored without pickle.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from spectclf import make_sbr_baseline, make_spect_phantoms
    >>> d = make_spect_phantoms((3, 3, 3, 3), shape=(12, 24, 24), random_state=0)
    >>> model = make_sbr_baseline(random_state=0).fit(d.X, d.y)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sbr.safetensors"
    >>> again = load_model(save_model(model, path)).model
    >>> bool((again.predict(d.X) == model.predict(d.X)).all())
    True
    """
    from safetensors.torch import save_file

    from spectclf import __version__

    enc = _Encoder()
    header = {
        "format": "spectclf-model",
        "format_version": FORMAT_VERSION,
        "spectclf_version": __version__,
        "model": enc.estimator(model),
        "extra": extra or {},
    }
    meta = {"spectclf": json.dumps(header)}
    return write_atomic(
        path, lambda tmp: save_file(enc.tensors, str(tmp), metadata=meta)
    )


def load_model(path, *, trust_pickle: bool = False):
    """Load a model file written by :func:`save_model`; never runs code from it.

    Parameters
    ----------
    path : str or Path
    trust_pickle : bool, default=False
        Also accept a pickle / joblib file (``.joblib``, ``.pkl``) from spectclf 0.1.
        Unpickling executes code chosen by the file's author: only for files you
        made yourself or fully trust.

    Returns
    -------
    bundle : Bunch
        ``model`` (the fitted estimator) and ``extra`` (the stored facts), plus
        ``spectclf_version``.

    Raises
    ------
    ModelFileError
        For a missing, unreadable or foreign file, a pickle without
        ``trust_pickle=True``, or a file from an incompatible format version.
    """
    from sklearn.utils import Bunch

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Model file {path} does not exist.")
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        if not trust_pickle:
            raise ModelFileError(
                f"{path} is a pickle/joblib file; loading one can run any code its "
                "author chose, so spectclf refuses it. Re-save the model with "
                "spectclf >= 0.2 (a .safetensors file), or, only for a file you made "
                "yourself, pass trust_pickle=True (CLI: --trust-pickle)."
            )
        import joblib

        bundle = joblib.load(path)
        if not isinstance(bundle, dict) or "model" not in bundle:
            raise ModelFileError(f"{path} is not a spectclf model file.")
        return Bunch(
            model=bundle["model"],
            extra={"load": bundle.get("load", {})},
            spectclf_version="0.1",
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"{path} is not a readable spectclf model file ({exc})."
        ) from None
    try:
        header = json.loads(meta["spectclf"])
    except (KeyError, ValueError):
        raise ModelFileError(
            f"{path} is a safetensors file but not a spectclf model (no description)."
        ) from None
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by spectclf {header.get('spectclf_version')} in model "
            f"format {version}; this spectclf reads format {FORMAT_VERSION}. Retrain or "
            "load it with the matching spectclf version."
        )
    model = _Decoder(tensors, _allowed_classes()).estimator(header["model"])
    return Bunch(
        model=model,
        extra=header.get("extra", {}),
        spectclf_version=header.get("spectclf_version"),
    )
