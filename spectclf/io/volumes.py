"""One 3-D file per patient: a stage-folder layout or a manifest CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn.utils import Bunch

from spectclf.arrays import check_shape3
from spectclf.exceptions import SpectDataError
from spectclf.io.assemble import centre_fit, make_bunch, stack_volumes, to_spacing
from spectclf.io.layout import (
    ProblemLog,
    check_unique_patients,
    parse_stage,
    patient_entries,
    stage_folders,
)
from spectclf.io.readers import read_volume, strip_suffix

__all__ = ["load_volumes", "read_manifest"]

_COLUMNS = ("patient_id", "stage", "path")


def read_manifest(manifest: Path, stage_map=None) -> list[tuple[int, str, Path]]:
    """``(stage, patient id, path)`` per row of a ``patient_id,stage,path`` CSV.

    UTF-8 with or without a byte-order mark (as Excel writes it); relative paths are
    taken from the CSV's folder. Every malformed row is named by its line number.
    """
    if not manifest.is_file():
        raise SpectDataError(f"Manifest {manifest} does not exist.")
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = manifest.read_bytes()[: exc.start].count(b"\n") + 1
        raise SpectDataError(
            f"Manifest {manifest}, line {line}: byte {exc.object[exc.start]:#x} is not "
            "UTF-8. Save the CSV as UTF-8 (Excel: 'CSV UTF-8')."
        ) from None
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip() for f in reader.fieldnames or ()]
    missing = [c for c in _COLUMNS if c not in fields]
    if missing:
        raise SpectDataError(
            f"Manifest {manifest} lacks column(s) {missing}; expected a header "
            f"'patient_id,stage,path', found {fields}."
        )
    reader.fieldnames = fields
    records = []
    for line, row in enumerate(reader, start=2):
        cells = {c: (row.get(c) or "").strip() for c in _COLUMNS}
        empty = [c for c in _COLUMNS if not cells[c]]
        if None in row or empty:
            what = "has extra cells" if None in row else f"has no {', '.join(empty)}"
            raise SpectDataError(f"Manifest {manifest}, line {line} {what}: {row}.")
        try:
            stage = parse_stage(cells["stage"], stage_map)
        except SpectDataError as exc:
            raise SpectDataError(f"{manifest}, line {line}: {exc}") from None
        path = Path(cells["path"])
        if not path.is_absolute():
            path = manifest.parent / path
        records.append((stage, cells["patient_id"], path))
    if not records:
        raise SpectDataError(f"Manifest {manifest} has a header but no rows.")
    return records


def _check_spacing(target_spacing) -> tuple[float, float, float]:
    values = np.broadcast_to(np.asarray(target_spacing, dtype=float), (3,))
    if not np.all(np.isfinite(values)) or values.min() <= 0:
        raise ValueError(
            f"target_spacing must be positive mm (one or three), got {target_spacing!r}"
        )
    return tuple(float(v) for v in values)


def load_volumes(
    root: str | Path | None = None,
    *,
    manifest: str | Path | None = None,
    target_shape: Sequence[int] | None = None,
    target_spacing: float | Sequence[float] | None = None,
    stage_map: Mapping[str, int] | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> Bunch:
    """Load one 3-D volume per patient: NIfTI, DICOM series or ``.npy``.

    Either a folder layout ``root/<stage folder>/<patient file or DICOM folder>`` (the
    patient id is the file name without extension) or a manifest CSV with the columns
    ``patient_id,stage,path`` (relative paths are taken from the CSV's folder).
    NIfTI and DICOM volumes are reoriented through their affine / patient geometry to
    the library's axes (anterior -> posterior, superior -> inferior, right -> left);
    ``.npy`` arrays are taken as stored.

    Parameters
    ----------
    root : str or Path, default=None
        Cohort folder; give this or ``manifest``.
    manifest : str or Path, default=None
        Manifest CSV; give this or ``root``.
    target_shape : tuple of 3 ints, default=None
        ``(D, H, W)`` to resample every volume to; if None, shapes must agree. With
        ``target_spacing`` it is instead the size of a fixed physical field: each
        resampled volume is cropped or zero-padded about its centre to it.
    target_spacing : float or tuple of 3 floats, default=None
        Millimetres per voxel ``(D, H, W)`` to resample every volume to, from the
        spacing its file records (NIfTI / DICOM): scanners with different voxel
        sizes then show anatomy at one scale. A volume without recorded spacing
        (``.npy``) is an error (or skipped with ``on_error="skip"``).
    stage_map : mapping, default=None
        ``{folder name or manifest stage: label}`` for unusual stage names.
    on_error : {"raise", "skip"}, default="raise"
        Raise on an unreadable file, or skip it and warn with the list of skips.

    Returns
    -------
    data : Bunch
        ``X`` float32 ``(n_patients, C, D, H, W)``, ``y``, ``groups``, ``paths``,
        ``spacing`` (``(n, 3)`` mm per voxel as read — ``target_spacing`` when
        given —, NaN where the file records none), ``target_names``, ``skipped``.

    Raises
    ------
    SpectDataError
        For unreadable files, unknown stage names, duplicate patients, no patients,
        malformed manifests or mixed shapes without ``target_shape``.
    MissingDependencyError
        When a NIfTI or DICOM file is met and nibabel / pydicom is not installed
        (``pip install 'spectclf[io]'``).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for stage in (1, 2):
    ...     (root / f"stage_{stage}").mkdir()
    ...     np.save(root / f"stage_{stage}" / f"P{stage}.npy", np.ones((4, 8, 8)))
    >>> data = load_volumes(root)
    >>> data.X.shape, data.y.tolist(), data.groups.tolist()
    ((2, 1, 4, 8, 8), [1, 2], ['P1', 'P2'])
    """
    if (root is None) == (manifest is None):
        raise ValueError("Give exactly one of root= (a folder) or manifest= (a CSV).")
    problems = ProblemLog(on_error)
    if manifest is not None:
        records = read_manifest(Path(manifest), stage_map)
        source = f"manifest {manifest}"
    else:
        root = Path(root)
        records = [
            (stage, strip_suffix(entry.name), entry)
            for stage, stage_dir in stage_folders(root, stage_map, problems)
            for entry in patient_entries(stage_dir, problems)
        ]
        source = f"folders under {root}"
    check_unique_patients(records)
    field = None
    if target_spacing is not None:
        target_spacing = _check_spacing(target_spacing)
        if target_shape is not None:
            field = check_shape3(target_shape, "target_shape")
    volumes, stages, patients, paths, spacing = [], [], [], [], []
    for stage, pid, path in records:
        try:
            if not path.exists():
                raise SpectDataError(f"Volume file {path} (patient {pid!r}) not found.")
            read = read_volume(path)
            array, voxel = read.array, read.spacing or (np.nan,) * 3
            if target_spacing is not None:
                if not np.all(np.isfinite(voxel)):
                    raise SpectDataError(
                        f"Volume file {path} (patient {pid!r}) records no voxel "
                        "spacing, so it cannot be resampled to target_spacing="
                        f"{target_spacing}."
                    )
                array, voxel = to_spacing(array, voxel, target_spacing), target_spacing
                if field is not None:
                    array = centre_fit(array, field)
        except SpectDataError as exc:
            problems.report(str(exc))
            continue
        volumes.append(array)
        spacing.append(voxel)
        stages.append(stage)
        patients.append(pid)
        paths.append(path)
    problems.warn()
    if not volumes:
        raise SpectDataError(f"No patient volumes found in {source}.")
    return make_bunch(
        stack_volumes(
            volumes, patients, None if target_spacing is not None else target_shape
        ),
        stages,
        patients,
        paths,
        problems,
        f"{len(patients)} patient volumes from {source}.",
        spacing=np.asarray(spacing, dtype=float),
    )
