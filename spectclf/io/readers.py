"""Volume readers by file type: NIfTI, DICOM (file or series folder), NumPy.

Each reader returns a :class:`VolumeRead`: a float32 ``(C, D, H, W)`` array in the
library's axis convention and its voxel spacing in mm when the file records it. The
convention is the one of the coronal slice folders: ``D`` runs anterior -> posterior,
``H`` superior -> inferior, ``W`` the patient's right -> left (radiological view).
Add a format with :func:`register_reader`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spectclf.exceptions import MissingDependencyError, SpectDataError
from spectclf.io.layout import natural_key

__all__ = [
    "AXIS_CODES",
    "VolumeRead",
    "read_volume",
    "register_reader",
    "volume_suffixes",
]

#: Direction each array axis increases towards (nibabel axis codes).
AXIS_CODES = ("P", "I", "L")


@dataclass
class VolumeRead:
    """What a reader found: ``array`` ``(C, D, H, W)`` and ``spacing`` (mm) or None."""

    array: np.ndarray
    spacing: tuple[float, float, float] | None = None


_READERS: list[tuple[tuple[str, ...], Callable[[Path], VolumeRead]]] = []


def register_reader(suffixes: tuple[str, ...], reader: Callable[[Path], VolumeRead]):
    """Register ``reader(path) -> VolumeRead`` for file names ending in ``suffixes``."""
    _READERS.append((tuple(s.lower() for s in suffixes), reader))
    return reader


def volume_suffixes() -> tuple[str, ...]:
    """Every registered file suffix (``.nii.gz``, ``.npy``...)."""
    return tuple(s for suffixes, _ in _READERS for s in suffixes)


def strip_suffix(name: str) -> str:
    """A file name without its registered volume suffix (the patient id)."""
    lower = name.lower()
    for suffix in sorted(volume_suffixes(), key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _require(module: str, path: Path):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"Reading {path} needs {module}: pip install 'spectclf[io]'"
        ) from None


def _reorient(arr: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Apply a RAS affine's orientation so the axes follow :data:`AXIS_CODES`."""
    from nibabel import orientations as ori

    transform = ori.ornt_transform(
        ori.io_orientation(affine), ori.axcodes2ornt(AXIS_CODES)
    )
    out = ori.apply_orientation(arr, transform)
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    spacing = tuple(float(zooms[int(i)]) for i in np.argsort(transform[:, 0]))
    return np.ascontiguousarray(out), spacing


def read_nifti(path: Path) -> VolumeRead:
    """NIfTI (``.nii``, ``.nii.gz``), reoriented through its affine."""
    nib = _require("nibabel", path)
    img = nib.load(path)
    arr = np.asanyarray(img.dataobj, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise SpectDataError(
            f"{path} holds a NIfTI array of shape {arr.shape}; expected a 3-D volume."
        )
    arr, spacing = _reorient(arr, img.affine)
    return VolumeRead(arr[None], spacing)


def read_npy(path: Path) -> VolumeRead:
    """A NumPy ``.npy`` array ``(D, H, W)`` or ``(C, D, H, W)``, taken as stored."""
    arr = np.load(path, allow_pickle=False)
    return VolumeRead(np.asarray(arr, dtype=np.float32))


def _dicom_pixels(ds) -> np.ndarray:
    arr = ds.pixel_array.astype(np.float32)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    return arr * slope + intercept


def _dicom_geometry(datasets) -> tuple[np.ndarray, np.ndarray] | None:
    """Slice order by position along the normal, and a RAS affine; None if absent."""
    first = datasets[0]
    iop = getattr(first, "ImageOrientationPatient", None)
    if iop is None or any(
        getattr(d, "ImagePositionPatient", None) is None for d in datasets
    ):
        return None
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    pos = np.array([np.asarray(d.ImagePositionPatient, float) for d in datasets])
    order = np.argsort(pos @ normal, kind="stable")
    dr, dc = (float(v) for v in getattr(first, "PixelSpacing", (1.0, 1.0)))
    if len(datasets) > 1:
        steps = np.diff((pos @ normal)[order])
        dz = float(np.median(steps)) or 1.0
    else:
        dz = float(getattr(first, "SliceThickness", 1.0) or 1.0)
    lps = np.eye(4)
    # array axes: (slice k, row i, column j)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = normal * dz, col * dr, row * dc
    lps[:3, 3] = pos[order[0]]
    return order, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def read_dicom(path: Path) -> VolumeRead:
    """A DICOM file (multi-frame or single slice) or a folder holding one series.

    Slices are sorted by their position along the slice normal
    (ImagePositionPatient / ImageOrientationPatient), falling back to InstanceNumber,
    and the volume is reoriented to :data:`AXIS_CODES` when the geometry is recorded.
    """
    pydicom = _require("pydicom", path)
    files = (
        [f for f in sorted(path.iterdir(), key=lambda f: natural_key(f.name))]
        if path.is_dir()
        else [path]
    )
    files = [f for f in files if f.is_file() and not f.name.startswith(".")]
    if not files:
        raise SpectDataError(f"DICOM folder {path} holds no files.")
    datasets = []
    for f in files:
        try:
            datasets.append(pydicom.dcmread(f))
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types
            raise SpectDataError(
                f"{f} in DICOM series {path} is not a readable DICOM file ({exc}); "
                "remove stray files from the series folder."
            ) from None
    if len(datasets) == 1:
        arr = _dicom_pixels(datasets[0])
        if arr.ndim == 2:
            arr = arr[None]
        return VolumeRead(arr[None])
    sizes = {(int(d.Rows), int(d.Columns)) for d in datasets}
    if len(sizes) > 1:
        raise SpectDataError(
            f"DICOM series {path} mixes slice sizes {sorted(sizes)} (rows x columns); "
            "a series must have one size."
        )
    geometry = _dicom_geometry(datasets)
    if geometry is None:
        datasets.sort(key=lambda d: float(getattr(d, "InstanceNumber", 0) or 0))
        return VolumeRead(np.stack([_dicom_pixels(d) for d in datasets])[None])
    order, affine = geometry
    arr = np.stack([_dicom_pixels(datasets[i]) for i in order])
    arr, spacing = _reorient(arr, affine)
    return VolumeRead(arr[None], spacing)


register_reader((".nii", ".nii.gz"), read_nifti)
register_reader((".npy",), read_npy)
register_reader((".dcm",), read_dicom)


def read_volume(path: Path) -> VolumeRead:
    """Read one volume file or DICOM series folder; every failure names the file."""
    name = path.name.lower()
    reader = read_dicom if path.is_dir() else None
    for suffixes, candidate in _READERS:
        if reader is None and name.endswith(suffixes):
            reader = candidate
    if reader is None:
        raise SpectDataError(
            f"Unknown volume file type: {path}; expected one of "
            f"{', '.join(volume_suffixes())} or a folder of DICOM files."
        )
    try:
        read = reader(path)
    except (SpectDataError, MissingDependencyError):
        raise
    except Exception as exc:  # noqa: BLE001 - reader libraries raise many types
        raise SpectDataError(f"Cannot read volume {path}: {exc}") from None
    arr = np.asarray(read.array, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise SpectDataError(
            f"{path} holds an array of shape {arr.shape}; expected (D, H, W) or "
            "(C, D, H, W)."
        )
    if min(arr.shape) == 0:
        raise SpectDataError(f"{path} holds an empty array of shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise SpectDataError(f"{path} contains NaN or infinite values.")
    read.array = arr
    return read
