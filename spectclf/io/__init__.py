"""Loaders: slice-image folders, NIfTI / DICOM / NumPy volumes and manifest CSVs.

Every loader returns a :class:`sklearn.utils.Bunch` with ``X`` (float32,
``(n_patients, C, D, H, W)``), ``y`` (stage labels), ``groups`` (patient ids) and
``paths``; bad input raises :class:`~spectclf.exceptions.SpectDataError` naming the file
or patient at fault.

The package is split by concern: :mod:`~spectclf.io.layout` (which files make a
cohort, stage names, slice order), :mod:`~spectclf.colour` (colours back to
intensity), :mod:`~spectclf.io.readers` (volume formats, orientation and spacing),
:mod:`~spectclf.io.assemble` (the one resampler, stacking), and the loaders in
:mod:`~spectclf.io.slices` and :mod:`~spectclf.io.volumes`.
"""

from spectclf.colour import DEFAULT_COLOR, DEFAULT_COLORMAP
from spectclf.io.layout import IMAGE_EXTENSIONS, natural_key, parse_stage
from spectclf.io.slices import load_patient_folders, load_slice_folders
from spectclf.io.volumes import load_volumes

__all__ = [
    "DEFAULT_COLOR",
    "DEFAULT_COLORMAP",
    "IMAGE_EXTENSIONS",
    "load_patient_folders",
    "load_slice_folders",
    "load_volumes",
    "natural_key",
    "parse_stage",
]
