"""What produced a number: versions, parameters, data fingerprint, partitions, machine.

:func:`collect_provenance` gathers what a reviewer asks about a reported result.
Everything in it is repeatable for the same command on the same input on the same
machine, except the wall times, which the report keeps apart under ``"timing"``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["collect_provenance", "fingerprint", "json_safe_params", "versions"]

_PACKAGES = (
    "spectclf",
    "torch",
    "scikit-learn",
    "skorch",
    "imbalanced-learn",
    "optuna",
    "numpy",
    "scipy",
)


def versions() -> dict[str, str]:
    """Python and the versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def fingerprint(X, files=None) -> dict:
    """SHA-256 of the array a model saw, and of the files it was read from.

    Parameters
    ----------
    X : ndarray
        Hashed with its dtype and shape.
    files : iterable of path, default=None
        Hashed in sorted order of their paths (relative names only enter the hash,
        so a moved cohort keeps its fingerprint).

    Returns
    -------
    dict
        ``array_sha256`` and, with files, ``files_sha256`` and ``n_files``.
    """
    X = np.ascontiguousarray(X)
    h = hashlib.sha256(f"{X.dtype.str}{X.shape}".encode())
    h.update(memoryview(X).cast("B"))
    out = {"array_sha256": h.hexdigest()}
    if files is not None:
        files = sorted(Path(f) for f in files)
        if files:
            root = Path(os.path.commonpath([str(f) for f in files]))
            fh = hashlib.sha256()
            for f in files:
                fh.update(str(f.relative_to(root) if f != root else f.name).encode())
                fh.update(hashlib.sha256(f.read_bytes()).digest())
            out.update(files_sha256=fh.hexdigest(), n_files=len(files))
    return out


def json_safe_params(estimator) -> dict:
    """``get_params(deep=True)`` as JSON: numbers, strings and None as they are,
    anything else (estimators, arrays, callables) by its ``repr``."""
    out = {}
    for key, value in sorted(estimator.get_params(deep=True).items()):
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, np.generic):
            out[key] = value.item()
        elif isinstance(value, (list, tuple)) and all(
            v is None or isinstance(v, (bool, int, float, str)) for v in value
        ):
            out[key] = list(value)
        else:
            out[key] = " ".join(repr(value).split())
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str | None = None) -> dict:
    """CPU model, cores, torch threads and the torch device used."""
    import torch

    out = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(terse=True),
    }
    if device is not None:
        out["device"] = device
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def collect_provenance(
    estimator,
    data,
    *,
    partitions=None,
    random_state=None,
    command: list[str] | None = None,
) -> dict:
    """Everything needed to say which code, settings and data produced a result.

    Parameters
    ----------
    estimator : estimator
        Its ``get_params(deep=True)`` (JSON-safe) are recorded.
    data : Bunch
        ``X`` (hashed) and the files it was read from (``slice_paths`` of
        :func:`~spectclf.load_slice_folders`, or the file ``paths`` of
        :func:`~spectclf.load_volumes`), hashed.
    partitions : PatientPartitions, default=None
        Each repeat's test patients per fold.
    random_state : int or None
    command : list of str, default=None
        The command line; None uses ``sys.argv``.

    Returns
    -------
    dict
        ``versions``, ``estimator`` (class), ``params``, ``random_state``,
        ``command``, ``data`` (fingerprint), ``partitions``, ``machine``.
    """
    slice_paths = getattr(data, "slice_paths", None)
    if slice_paths is not None:
        files = [f for patient in slice_paths for f in patient]
    else:
        files = [p for p in (getattr(data, "paths", None) or []) if Path(p).is_file()]
    device = getattr(estimator, "device", None)
    if device is None and hasattr(estimator, "steps"):
        device = getattr(estimator.steps[-1][1], "device", None)
    return {
        "versions": versions(),
        "estimator": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        "params": json_safe_params(estimator),
        "random_state": random_state,
        "command": list(sys.argv if command is None else command),
        "data": fingerprint(data.X, files or None),
        "partitions": None if partitions is None else partitions.patient_ids(),
        "machine": machine(device),
    }
