"""The load options a model file keeps: how its training patients were read, written
when the model is saved and read back so that new patients are read the same way."""

from __future__ import annotations

from pathlib import Path

from spectclf.exceptions import UsageError
from spectclf.model_io import load_model, save_model

__all__ = ["load_for_prediction", "save_for_prediction"]

#: Where a model file's ``extra`` holds the options (0.1 pickle files too).
_KEY = "load"


def save_for_prediction(model, path, *, data, load_options: dict | None = None) -> Path:
    """Save ``model`` with the options that read new patients as ``data`` was read.

    Parameters
    ----------
    model : estimator
        A fitted estimator, saved with :func:`~spectclf.save_model`.
    path : str or Path
        Model file (``*.safetensors``).
    data : Bunch
        The training data, from a loader: its ``colormap`` (as resolved on the
        cohort) replaces the one in ``load_options``; a cohort pooled from sites
        (several ``colormaps``) keeps detecting each new patient's map (``"auto"``).
    load_options : dict, default=None
        Keywords of :func:`~spectclf.io.load_patient_folders` the data was read with
        (``color``, ``colormap``, ``slice_order``...).

    Returns
    -------
    path : Path
        The file written.
    """
    options = dict(load_options or {})
    if data.get("colormap"):
        mixed = len(set(data.get("colormaps", [data.colormap]))) > 1
        options["colormap"] = "auto" if mixed else data.colormap
    return save_model(model, path, extra={_KEY: options})


def load_for_prediction(
    model_file, data_dir, *, trust_pickle: bool = False, colormap: str | None = None
):
    """Load a model file and read patient folders with the options it keeps.

    Parameters
    ----------
    model_file : str or Path
        From :func:`save_for_prediction` (or any :func:`~spectclf.save_model` file:
        then the loader's defaults apply).
    data_dir : str or Path
        Patient folders, as :func:`~spectclf.io.load_patient_folders` takes them.
    trust_pickle : bool, default=False
        See :func:`spectclf.load_model`.
    colormap : str, default=None
        Read through this colormap (or ``"auto"``) instead of the file's; refused for
        a model that reads slices as gray or RGB.

    Returns
    -------
    model : estimator
    data : Bunch
        From :func:`~spectclf.io.load_patient_folders`.
    """
    from spectclf.io import load_patient_folders

    bundle = load_model(model_file, trust_pickle=trust_pickle)
    options = dict(bundle.extra.get(_KEY, {}))
    if colormap is not None:
        if options.get("color", "colormap") != "colormap":
            raise UsageError(
                f"{model_file} reads slices as {options['color']!r}, not through a "
                f"colormap: colormap={colormap!r} does not apply"
            )
        options["colormap"] = colormap
    return bundle.model, load_patient_folders(data_dir, **options)
