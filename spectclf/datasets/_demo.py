"""The embedded demo cohort: phantoms rendered to PNG slice folders, cached on disk."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from sklearn.utils import Bunch

from spectclf.datasets._phantoms import make_spect_phantoms, write_slice_folders
from spectclf.io import DEFAULT_COLOR, DEFAULT_COLORMAP, load_slice_folders

__all__ = ["load_demo", "get_data_home", "DEMO_PARAMS"]

#: Parameters of the default demo cohort (165 patients, 30 coronal slices each).
DEMO_PARAMS = {
    "n_per_stage": [50, 50, 50, 15],
    "shape": [30, 64, 64],
    "random_state": 0,
    "colormap": "hot",
    "format": 1,  # bump when the generator changes, to invalidate caches
}


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Folder for cached demo data: ``data_home``, ``$SPECTCLF_DATA`` or
    ``~/.cache/spectclf``."""
    if data_home is None:
        data_home = os.environ.get("SPECTCLF_DATA", Path.home() / ".cache" / "spectclf")
    path = Path(data_home).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _params_key(params: dict) -> str:
    n = "-".join(str(v) for v in params["n_per_stage"])
    s = "x".join(str(v) for v in params["shape"])
    return f"demo_n{n}_s{s}_r{params['random_state']}_v{params['format']}"


def load_demo(
    data_home: str | os.PathLike | None = None,
    *,
    n_per_stage=None,
    shape=None,
    random_state: int | None = None,
    color: str = DEFAULT_COLOR,
    verbose: int = 0,
) -> Bunch:
    """Load the demo cohort, generating and caching it on first use.

    The cohort is :func:`make_spect_phantoms` with :data:`DEMO_PARAMS` (50, 50, 50 and 15
    patients in stages 1 to 4; 30 coronal slices of 64 x 64 pixels), rendered with the
    ``"hot"`` colormap to PNG slice folders by :func:`write_slice_folders`, and read back
    by :func:`~spectclf.load_slice_folders` exactly as a user's data would be. The
    same parameters always give the same files; nothing is downloaded.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Cache folder; see :func:`get_data_home`.
    n_per_stage, shape, random_state : default=None
        Override the matching :data:`DEMO_PARAMS` entry (for small test cohorts).
    color : {"colormap", "gray", "rgb"}, default="colormap"
        Passed to :func:`~spectclf.load_slice_folders`; ``"colormap"`` (the library's
        default) detects the ``"hot"`` rendering and inverts it back to intensity.
    verbose : int, default=0
        Print progress when > 0.

    Returns
    -------
    data : Bunch
        As :func:`~spectclf.load_slice_folders`, plus ``root`` (the slice folders).
    """
    params = dict(DEMO_PARAMS)
    for key, value in (
        ("n_per_stage", n_per_stage),
        ("shape", shape),
        ("random_state", random_state),
    ):
        if value is not None:
            params[key] = list(value) if key != "random_state" else int(value)
    root = get_data_home(data_home) / _params_key(params)
    marker = root / "spectclf-demo.json"
    if not marker.is_file():
        if verbose:
            print(f"[spectclf] generating demo cohort in {root}", flush=True)
        phantoms = make_spect_phantoms(
            params["n_per_stage"],
            shape=params["shape"],
            random_state=params["random_state"],
        )
        # write next to the target, then rename: a crash never leaves half a cache
        tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".tmp-demo-"))
        write_slice_folders(
            phantoms.X, phantoms.y, phantoms.groups, tmp, colormap=params["colormap"]
        )
        (tmp / "spectclf-demo.json").write_text(json.dumps(params, indent=2))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    # read back with the library's defaults, colormap detection included
    data = load_slice_folders(
        root, color=color, colormap=DEFAULT_COLORMAP, verbose=verbose
    )
    data.root = str(root)
    data.DESCR = (
        f"spectclf demo cohort ({_params_key(params)}): synthetic "
        "DaTscan-like phantoms rendered with the 'hot' colormap."
    )
    return data
