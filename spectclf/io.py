"""Loaders: slice-image folders, NIfTI / DICOM / NumPy volumes and manifest CSVs.

Every loader returns a :class:`sklearn.utils.Bunch` with ``X`` (float32,
``(n_patients, C, D, H, W)``), ``y`` (stage labels), ``groups`` (patient ids) and
``paths``; bad input raises :class:`~spectclf.exceptions.SpectDataError` naming the file
or patient at fault.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn.utils import Bunch

from spectclf._colormap import invert_colormap
from spectclf.exceptions import MissingDependencyError, SpectDataError

__all__ = [
    "load_slice_folders",
    "load_patient_folders",
    "load_volumes",
    "parse_stage",
    "natural_key",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
VOLUME_EXTENSIONS = (".nii", ".nii.gz", ".npy", ".dcm")

_STAGE_RE = re.compile(
    r"^(?:stage|hy|h&y|h_y|hoehn[-_ ]?(?:and[-_ ]?)?yahr|s|class)?[-_ ]*(\d+)$",
    re.IGNORECASE,
)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``slice_2`` < ``slice_10``).

    Examples
    --------
    >>> sorted(["slice_10.png", "slice_2.png", "slice_1.png"], key=natural_key)
    ['slice_1.png', 'slice_2.png', 'slice_10.png']
    """
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def parse_stage(name: str, stage_map: Mapping[str, int] | None = None) -> int:
    """Parse a stage label from a folder name such as ``stage_1``, ``Stage1``, ``HY2``.

    Parameters
    ----------
    name : str
        Folder name.
    stage_map : mapping, default=None
        Explicit ``{folder name: label}`` mapping, consulted first.

    Returns
    -------
    stage : int

    Raises
    ------
    SpectDataError
        If the name is not a recognised stage folder name.

    Examples
    --------
    >>> [parse_stage(n) for n in ["stage_1", "Stage2", "3", "HY4", "H&Y 2"]]
    [1, 2, 3, 4, 2]
    """
    if stage_map is not None and name in stage_map:
        return int(stage_map[name])
    match = _STAGE_RE.match(name.strip())
    if match is None:
        raise SpectDataError(
            f"Cannot read a stage from folder name {name!r}; expected names like "
            "'stage_1', 'Stage1', '1', 'HY2' or 'H&Y 3', or pass "
            "stage_map={'folder name': stage}."
        )
    return int(match.group(1))


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


class _Problems:
    """Collect per-patient problems; raise at once or skip with one warning."""

    def __init__(self, on_error: str):
        _check_on_error(on_error)
        self.on_error = on_error
        self.skipped: list[str] = []

    def report(self, message: str) -> None:
        if self.on_error == "raise":
            raise SpectDataError(message)
        self.skipped.append(message)

    def warn(self) -> None:
        if self.skipped:
            listing = "\n  ".join(self.skipped)
            warnings.warn(
                f"Skipped {len(self.skipped)} item(s) (on_error='skip'):\n  {listing}",
                UserWarning,
                stacklevel=3,
            )


def _read_slice(path: Path, color: str, colormap: str | None) -> np.ndarray:
    """Read one slice image as float32 ``(C, H, W)``; wrap every reader error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in _GRAY_MODES:
                arr = np.asarray(img.convert("F") if mode != "L" else img)
                channels = 1
            else:
                arr = np.asarray(img.convert("RGB"))
                channels = 3
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SpectDataError(
            f"Cannot read slice image {path}: {exc}. Expected a readable "
            f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} file."
        ) from None
    if arr.dtype == np.uint8:
        scale = 255.0
    elif arr.dtype == np.uint16 or mode.startswith("I;16"):
        scale = 65535.0
    else:
        scale = 1.0
    if color == "rgb":
        if channels != 3:
            raise _NotColour(path, channels)
        return (arr.astype(np.float32) / scale).transpose(2, 0, 1)
    if color == "colormap":
        if channels != 3:
            raise _NotColour(path, channels)
        return invert_colormap(arr, colormap)[None]
    # gray: luminance of colour images, the values themselves for gray ones
    if channels == 3:
        return ((arr.astype(np.float32) / scale) @ _LUMA)[None]
    return (arr.astype(np.float32) / scale)[None]


class _NotColour(SpectDataError):
    def __init__(self, path: Path, found: int):
        super().__init__(
            f"{path} has {found} channel(s) but 3 were expected: color='rgb' and "
            "color='colormap' need colour (RGB) images; use color='gray' for "
            "grayscale slices."
        )


def _resample(volume: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Trilinear resampling of ``(C, D, H, W)`` to ``(C, *shape)``."""
    from scipy.ndimage import zoom

    factors = [1.0] + [t / s for t, s in zip(shape, volume.shape[1:], strict=True)]
    out = zoom(volume, factors, order=1, mode="nearest", grid_mode=True)
    return out.astype(np.float32, copy=False)


def _stack(
    volumes: list[np.ndarray],
    patients: list[str],
    target_shape: Sequence[int] | None,
) -> np.ndarray:
    if target_shape is not None:
        target_shape = tuple(int(s) for s in target_shape)
        if len(target_shape) != 3 or min(target_shape) < 1:
            raise ValueError(
                f"target_shape must be three positive ints (D, H, W), got {target_shape}"
            )
        volumes = [
            v if v.shape[1:] == target_shape else _resample(v, target_shape)
            for v in volumes
        ]
    channels = Counter(v.shape[0] for v in volumes)
    if len(channels) > 1:
        common = channels.most_common(1)[0][0]
        odd = [
            f"{p} ({v.shape[0]})"
            for p, v in zip(patients, volumes, strict=True)
            if v.shape[0] != common
        ]
        raise SpectDataError(
            f"Mixed channel counts: most patients have {common} channel(s), but "
            f"these differ: {', '.join(odd)}."
        )
    shapes = Counter(v.shape[1:] for v in volumes)
    if len(shapes) > 1:
        common = shapes.most_common(1)[0][0]
        odd = [
            f"{p} {v.shape[1:]}"
            for p, v in zip(patients, volumes, strict=True)
            if v.shape[1:] != common
        ]
        raise SpectDataError(
            f"Patients differ in volume shape (slices, height, width): most are "
            f"{common}, but these are not: {', '.join(odd)}. Pass "
            f"target_shape={common} (or another (D, H, W)) to resample all of them."
        )
    return np.stack(volumes).astype(np.float32, copy=False)


def _bunch(X, stages, patients, paths, skipped, descr, **extra) -> Bunch:
    y = np.asarray(stages, dtype=np.int64)
    return Bunch(
        X=X,
        y=y,
        groups=np.asarray(patients, dtype=object),
        paths=[str(p) for p in paths],
        target_names=[f"stage {s}" for s in np.unique(y)],
        skipped=skipped,
        DESCR=descr,
        **extra,
    )


def _stage_dirs(root: Path, stage_map, problems: _Problems) -> list[tuple[int, Path]]:
    if not root.is_dir():
        raise SpectDataError(f"Data folder {root} does not exist or is not a folder.")
    out = []
    for d in sorted(
        (p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)
    ):
        if d.name.startswith("."):
            continue
        try:
            out.append((parse_stage(d.name, stage_map), d))
        except SpectDataError as exc:
            problems.report(f"{d}: {exc}")
    return out


def _check_unique_patients(records: list[tuple[int, str, Path]]) -> None:
    seen: dict[str, Path] = {}
    for _, pid, path in records:
        if pid in seen:
            raise SpectDataError(
                f"Patient id {pid!r} appears twice: {seen[pid]} and {path}. Each "
                "patient must appear under exactly one stage, or slices of one patient "
                "would leak across train/test splits."
            )
        seen[pid] = path


def _read_patient(pdir: Path, pid: str, color, colormap, problems: _Problems):
    """One patient's slices as ``(C, D, H, W)`` and their files, or None if skipped."""
    files = sorted(
        (
            f
            for f in pdir.iterdir()
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        ),
        key=lambda f: natural_key(f.name),
    )
    if not files:
        problems.report(
            f"Patient folder {pdir} holds no slice images ({', '.join(IMAGE_EXTENSIONS)})."
        )
        return None
    try:
        slices = [_read_slice(f, color, colormap) for f in files]
    except SpectDataError as exc:
        problems.report(f"patient {pid!r}: {exc}")
        return None
    if len({sl.shape for sl in slices}) > 1:
        sizes = Counter(sl.shape[1:] for sl in slices)
        common = sizes.most_common(1)[0][0]
        odd = [
            f.name
            for f, sl in zip(files, slices, strict=True)
            if sl.shape[1:] != common
        ]
        problems.report(
            f"Patient {pid!r} ({pdir}): slices differ in size; most are "
            f"{common[1]}x{common[0]} pixels but not {', '.join(odd)}."
        )
        return None
    return np.stack(slices, axis=1), [str(f) for f in files]


def load_patient_folders(
    paths,
    *,
    color: Literal["rgb", "gray", "colormap"] = "rgb",
    colormap: str = "hot",
    target_shape: Sequence[int] | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> Bunch:
    """Load unlabelled patients: one folder of slice images each (for prediction).

    Parameters
    ----------
    paths : str, Path or list of them
        A single patient folder (holding slice images), a folder of patient folders,
        or a list of patient folders.
    color, colormap, target_shape, on_error
        As in :func:`load_slice_folders`.

    Returns
    -------
    data : Bunch
        ``X``, ``groups`` (folder names), ``paths``, ``slice_paths``, ``skipped``.
    """
    if isinstance(paths, (str, Path)):
        root = Path(paths)
        if not root.is_dir():
            raise SpectDataError(f"Folder {root} does not exist or is not a folder.")
        has_images = any(f.suffix.lower() in IMAGE_EXTENSIONS for f in root.iterdir())
        dirs = (
            [root]
            if has_images
            else sorted(
                (
                    d
                    for d in root.iterdir()
                    if d.is_dir() and not d.name.startswith(".")
                ),
                key=lambda d: natural_key(d.name),
            )
        )
    else:
        dirs = [Path(p) for p in paths]
    problems = _Problems(on_error)
    volumes, patients, kept, slice_paths = [], [], [], []
    for pdir in dirs:
        read = _read_patient(pdir, pdir.name, color, colormap, problems)
        if read is not None:
            volumes.append(read[0])
            patients.append(pdir.name)
            kept.append(str(pdir))
            slice_paths.append(read[1])
    problems.warn()
    if not volumes:
        raise SpectDataError(f"No patient slice folders found in {paths}.")
    return Bunch(
        X=_stack(volumes, patients, target_shape),
        groups=np.asarray(patients, dtype=object),
        paths=kept,
        slice_paths=slice_paths,
        skipped=problems.skipped,
    )


def load_slice_folders(
    root: str | Path,
    *,
    color: Literal["rgb", "gray", "colormap"] = "rgb",
    colormap: str = "hot",
    target_shape: Sequence[int] | None = None,
    stage_map: Mapping[str, int] | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    verbose: int = 0,
) -> Bunch:
    """Load a cohort stored as one folder of coronal slice images per patient.

    The expected layout is ``root/<stage folder>/<patient id>/<slice images>``; stage
    folders are named like ``stage_1``, ``Stage1``, ``1`` or ``HY2``. Slices are stacked
    along the depth axis in natural filename order (``slice_2`` before ``slice_10``).

    Parameters
    ----------
    root : str or Path
        The cohort folder.
    color : {"rgb", "gray", "colormap"}, default="rgb"
        ``"rgb"`` keeps the three colour channels (C=3); ``"gray"`` takes luminance
        (C=1); ``"colormap"`` maps each colour back to the scalar intensity it encodes
        by finding the nearest entry in ``colormap``'s look-up table (C=1, in [0, 1]).
    colormap : str, default="hot"
        Matplotlib colormap the slices were rendered with; used when
        ``color="colormap"``.
    target_shape : tuple of 3 ints, default=None
        ``(D, H, W)`` to resample every volume to (trilinear). If None, all patients
        must already share one shape, or an error lists those that differ.
    stage_map : mapping, default=None
        ``{stage folder name: label}`` for folder names that are not of a known form.
    on_error : {"raise", "skip"}, default="raise"
        On an unreadable image, empty patient folder or unknown stage folder, raise
        (default) or skip that patient or folder and warn with the list of skips.
    verbose : int, default=0
        Print progress when > 0.

    Returns
    -------
    data : Bunch
        ``X`` float32 ``(n_patients, C, D, H, W)``; ``y`` int stage labels; ``groups``
        patient ids (folder names); ``paths`` patient folders; ``slice_paths`` the files
        of each patient, in stacking order; ``target_names``; ``skipped`` messages.

    Raises
    ------
    SpectDataError
        For a missing root, no patients, an unreadable or truncated image, an empty
        patient folder, one patient id under two stages, an unknown stage folder name,
        mixed channel counts or differing volume shapes without ``target_shape``.

    See Also
    --------
    load_volumes : one 3-D file (NIfTI, DICOM, NumPy) per patient.
    spectclf.datasets.write_slice_folders : writes this layout.
    """
    if color not in ("rgb", "gray", "colormap"):
        raise ValueError(f"color must be 'rgb', 'gray' or 'colormap', got {color!r}")
    if color == "colormap":
        invert_colormap(np.zeros((1, 3), np.uint8), colormap)  # validates the name
    root = Path(root)
    problems = _Problems(on_error)
    records = []
    for stage, stage_dir in _stage_dirs(root, stage_map, problems):
        for patient_dir in sorted(
            stage_dir.iterdir(), key=lambda p: natural_key(p.name)
        ):
            if patient_dir.is_dir() and not patient_dir.name.startswith("."):
                records.append((stage, patient_dir.name, patient_dir))
    _check_unique_patients(records)

    volumes, stages, patients, paths, slice_paths = [], [], [], [], []
    for i, (stage, pid, pdir) in enumerate(records):
        read = _read_patient(pdir, pid, color, colormap, problems)
        if read is None:
            continue
        volumes.append(read[0])
        stages.append(stage)
        patients.append(pid)
        paths.append(pdir)
        slice_paths.append(read[1])
        if verbose and ((i + 1) % max(1, len(records) // 10) == 0):
            print(f"[spectclf] loaded {i + 1}/{len(records)} patients", flush=True)
    problems.warn()
    if not volumes:
        raise SpectDataError(
            f"No patients found under {root}; expected "
            "root/<stage folder>/<patient id>/<slice images>."
        )
    X = _stack(volumes, patients, target_shape)
    return _bunch(
        X,
        stages,
        patients,
        paths,
        problems.skipped,
        f"{len(patients)} patients from slice folders under {root} (color={color!r}).",
        slice_paths=slice_paths,
    )


def _read_volume(path: Path) -> np.ndarray:
    """Read one volume file or DICOM series folder as float32 ``(C, D, H, W)``."""
    name = path.name.lower()
    try:
        if path.is_dir() or name.endswith(".dcm"):
            arr = _read_dicom(path)
        elif name.endswith((".nii", ".nii.gz")):
            try:
                import nibabel
            except ImportError:
                raise MissingDependencyError(
                    f"Reading {path} needs nibabel: pip install 'spectclf[io]'"
                ) from None
            arr = np.asanyarray(nibabel.load(path).dataobj, dtype=np.float32)
        elif name.endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
        else:
            raise SpectDataError(
                f"Unknown volume file type: {path}; expected one of "
                f"{', '.join(VOLUME_EXTENSIONS)} or a folder of DICOM files."
            )
    except (SpectDataError, MissingDependencyError):
        raise
    except Exception as exc:  # reader libraries raise many types; name the file
        raise SpectDataError(f"Cannot read volume {path}: {exc}") from None
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise SpectDataError(
            f"{path} holds an array of shape {arr.shape}; expected (D, H, W) or "
            "(C, D, H, W)."
        )
    if not np.isfinite(arr).all():
        raise SpectDataError(f"{path} contains NaN or infinite values.")
    return arr


def _read_dicom(path: Path) -> np.ndarray:
    try:
        import pydicom
    except ImportError:
        raise MissingDependencyError(
            f"Reading {path} needs pydicom: pip install 'spectclf[io]'"
        ) from None
    if path.is_dir():
        files = sorted(path.iterdir(), key=lambda f: natural_key(f.name))
        datasets = [pydicom.dcmread(f) for f in files if f.is_file()]
        if not datasets:
            raise SpectDataError(f"DICOM folder {path} holds no files.")
        if len(datasets) == 1:
            return _dicom_pixels(datasets[0])
        datasets.sort(key=lambda d: float(getattr(d, "InstanceNumber", 0) or 0))
        return np.stack([_dicom_pixels(d) for d in datasets])
    return _dicom_pixels(pydicom.dcmread(path))


def _dicom_pixels(ds) -> np.ndarray:
    arr = ds.pixel_array.astype(np.float32)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    return arr * slope + intercept


def _read_manifest(manifest: Path, stage_map) -> list[tuple[int, str, Path]]:
    if not manifest.is_file():
        raise SpectDataError(f"Manifest {manifest} does not exist.")
    with open(manifest, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"patient_id", "stage", "path"} - set(reader.fieldnames or ())
        if missing:
            raise SpectDataError(
                f"Manifest {manifest} lacks column(s) {sorted(missing)}; expected a "
                "header 'patient_id,stage,path'."
            )
        records = []
        for line, row in enumerate(reader, start=2):
            try:
                stage = parse_stage(str(row["stage"]), stage_map)
            except SpectDataError as exc:
                raise SpectDataError(f"{manifest}, line {line}: {exc}") from None
            path = Path(row["path"])
            if not path.is_absolute():
                path = manifest.parent / path
            records.append((stage, str(row["patient_id"]), path))
    return records


def load_volumes(
    root: str | Path | None = None,
    *,
    manifest: str | Path | None = None,
    target_shape: Sequence[int] | None = None,
    stage_map: Mapping[str, int] | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> Bunch:
    """Load one 3-D volume per patient: NIfTI, DICOM series or ``.npy``.

    Either a folder layout ``root/<stage folder>/<patient file or DICOM folder>`` (the
    patient id is the file name without extension) or a manifest CSV with the columns
    ``patient_id,stage,path`` (relative paths are taken from the CSV's folder).

    Parameters
    ----------
    root : str or Path, default=None
        Cohort folder; give this or ``manifest``.
    manifest : str or Path, default=None
        Manifest CSV; give this or ``root``.
    target_shape : tuple of 3 ints, default=None
        ``(D, H, W)`` to resample every volume to; if None, shapes must agree.
    stage_map : mapping, default=None
        ``{folder name or manifest stage: label}`` for unusual stage names.
    on_error : {"raise", "skip"}, default="raise"
        Raise on an unreadable file, or skip it and warn with the list of skips.

    Returns
    -------
    data : Bunch
        ``X`` float32 ``(n_patients, C, D, H, W)``, ``y``, ``groups``, ``paths``,
        ``target_names``, ``skipped``.

    Raises
    ------
    SpectDataError
        For unreadable files, unknown stage names, duplicate patients, no patients or
        mixed shapes without ``target_shape``.
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
    problems = _Problems(on_error)
    if manifest is not None:
        records = _read_manifest(Path(manifest), stage_map)
        source = f"manifest {manifest}"
    else:
        root = Path(root)
        records = []
        for stage, stage_dir in _stage_dirs(root, stage_map, problems):
            for entry in sorted(stage_dir.iterdir(), key=lambda p: natural_key(p.name)):
                if entry.name.startswith("."):
                    continue
                pid = re.sub(
                    r"(\.nii\.gz|\.nii|\.npy|\.dcm)$",
                    "",
                    entry.name,
                    flags=re.IGNORECASE,
                )
                records.append((stage, pid, entry))
        source = f"folders under {root}"
    _check_unique_patients(records)
    volumes, stages, patients, paths = [], [], [], []
    for stage, pid, path in records:
        try:
            if not path.exists():
                raise SpectDataError(f"Volume file {path} (patient {pid!r}) not found.")
            volumes.append(_read_volume(path))
        except SpectDataError as exc:
            problems.report(str(exc))
            continue
        stages.append(stage)
        patients.append(pid)
        paths.append(path)
    problems.warn()
    if not volumes:
        raise SpectDataError(f"No patient volumes found in {source}.")
    X = _stack(volumes, patients, target_shape)
    return _bunch(
        X,
        stages,
        patients,
        paths,
        problems.skipped,
        f"{len(patients)} patient volumes from {source}.",
    )
