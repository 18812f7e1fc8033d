"""Slice-image folders: one folder of coronal slice images per patient.

Images are decoded with Pillow into one of two forms (grayscale in [0, 1], or 8-bit
RGB), then turned into intensity by :mod:`spectclf.colour`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn.utils import Bunch

from spectclf.colour import (
    CANVAS_TOLERANCE,
    DEFAULT_COLOR,
    DEFAULT_COLORMAP,
    OFF_TABLE_THRESHOLD,
    canvas_mask,
    colormap_lut,
    detect_canvas,
    detect_colormap,
    invert_colormap,
    to_intensity,
)
from spectclf.exceptions import SpectDataError
from spectclf.io.assemble import make_bunch, stack_volumes
from spectclf.io.layout import (
    IMAGE_EXTENSIONS,
    ProblemLog,
    check_unique_patients,
    list_slice_files,
    natural_key,
    parse_stage,
    patient_entries,
    stage_folders,
)
from spectclf.io.overlays import fill_overlays, find_static_overlays

__all__ = ["decode_slice", "load_patient_folders", "load_slice_folders"]

_COLORS = ("rgb", "gray", "colormap")
_OVERLAYS = ("remove", "keep")


def decode_slice(path: Path) -> np.ndarray:
    """Decode one slice image: ``(H, W)`` float32 in [0, 1] for grayscale images
    (1-bit, 8/16-bit, with or without alpha), ``(H, W, 3)`` uint8 for colour ones
    (palette images expanded, alpha dropped).

    Raises
    ------
    SpectDataError
        Naming the file, for unreadable, truncated or oversized images.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode in ("P", "PA"):
                    img, mode = img.convert("RGBA"), "RGBA"
                if mode in ("1", "L", "LA"):
                    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
                if mode.startswith("I;16"):
                    return np.asarray(img, dtype=np.float32) / 65535.0
                if mode in ("I", "F"):
                    arr = np.asarray(img, dtype=np.float32)
                    top = float(arr.max()) if arr.size else 1.0
                    scale = 1.0 if mode == "F" else (65535.0 if top <= 65535 else top)
                    return arr / scale
                return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SpectDataError(
            f"Slice image {path} is too large to be a SPECT slice (Pillow's "
            "decompression-bomb limit); check the file."
        ) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types; name the file
        raise SpectDataError(
            f"Cannot read slice image {path}: {exc}. Expected a readable "
            f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} file."
        ) from None


def _read_patient(pdir: Path, pid: str, problems: ProblemLog):
    """A patient's decoded slices and files, or None after a reported problem."""
    files = list_slice_files(pdir, pid, problems)
    if files is None:
        return None
    try:
        slices = [decode_slice(f) for f in files]
    except SpectDataError as exc:
        problems.report(f"patient {pid!r}: {exc}")
        return None
    kinds = Counter("rgb" if s.ndim == 3 else "gray" for s in slices)
    if len(kinds) > 1:
        problems.report(
            f"Patient {pid!r} ({pdir}) mixes colour and grayscale slices ({dict(kinds)})."
        )
        return None
    sizes = Counter(s.shape[:2] for s in slices)
    if len(sizes) > 1:
        common = sizes.most_common(1)[0][0]
        odd = [
            f.name for f, s in zip(files, slices, strict=True) if s.shape[:2] != common
        ]
        problems.report(
            f"Patient {pid!r} ({pdir}): slices differ in size; most are "
            f"{common[1]}x{common[0]} pixels but not {', '.join(odd)}."
        )
        return None
    return np.stack(slices), [str(f) for f in files]


def _check_options(color, colormap, slice_order, overlays) -> None:
    if overlays not in _OVERLAYS:
        raise ValueError(f"overlays must be 'remove' or 'keep', got {overlays!r}")
    if color not in _COLORS:
        raise ValueError(f"color must be 'rgb', 'gray' or 'colormap', got {color!r}")
    if color == "colormap" and colormap != "auto":
        colormap_lut(colormap)  # validates the name
    if slice_order not in ("natural", "reverse"):
        raise ValueError(
            f"slice_order must be 'natural' or 'reverse', got {slice_order!r}"
        )


def _resolve_colormap(raw: list[np.ndarray], colormap: str):
    """``colormap``, or the best-fitting one when ``"auto"``, the residual of the
    detection (None when not detected) and the canvas colour (or None), from a
    pixel sample."""
    colour = [r for r in raw if r.ndim == 4]
    if not colour:
        return ("gray", 0.0, None) if colormap == "auto" else (colormap, None, None)
    rng = np.random.default_rng(0)
    sample = np.concatenate(
        [
            v.reshape(-1, 3)[rng.integers(0, v[..., 0].size, size=4096)]
            for v in colour[:: max(1, len(colour) // 40)]
        ]
    )
    canvas = detect_canvas(sample)
    if colormap != "auto":
        return colormap, None, canvas
    if canvas is not None:
        # the canvas need not be a colour of the map: the map is told by the rest
        rest = np.linalg.norm(sample - canvas, axis=1) > CANVAS_TOLERANCE
        sample = sample[rest] if rest.any() else sample
    return (*detect_colormap(sample), canvas)


def _patient_colormaps(raw, patients, cohort_map: str, canvas):
    """Each patient's colormap: the cohort's, or — for a patient whose colours lie
    off its table (a second site's export) — the map that explains that patient's
    own colours, when one does (residual under ``OFF_TABLE_THRESHOLD``); and the
    cohort's map (the commonest patients' map when the cohort's fits none)."""
    rng = np.random.default_rng(0)
    maps = []
    for vol in raw:
        if vol.ndim != 4:
            maps.append(cohort_map)
            continue
        sample = vol.reshape(-1, 3)[rng.integers(0, vol[..., 0].size, size=8192)]
        if canvas is not None:
            rest = np.linalg.norm(sample - canvas, axis=1) > CANVAS_TOLERANCE
            sample = sample[rest] if rest.any() else sample
        own = cohort_map
        if detect_colormap(sample, [cohort_map])[1] > OFF_TABLE_THRESHOLD:
            best, residual = detect_colormap(sample)
            if residual <= OFF_TABLE_THRESHOLD:
                own = best
        maps.append(own)
    if cohort_map not in maps:  # a map between two sites' (50/50): the commoner one
        cohort_map = Counter(maps).most_common(1)[0][0]
    moved = [(p, m) for p, m in zip(patients, maps, strict=True) if m != cohort_map]
    if moved:
        warnings.warn(
            f"{len(moved)} of {len(maps)} patients do not fit the cohort's colormap "
            f"{cohort_map!r} but fit another, and were read through it (pooled "
            "sites?): "
            + ", ".join(f"{p} ({m})" for p, m in moved[:10])
            + (" ..." if len(moved) > 10 else "")
            + "; data.colormaps holds each patient's map.",
            UserWarning,
            stacklevel=3,
        )
    return maps, cohort_map


def _to_volumes(
    raw, patients, color, colormap, slice_order, flip_lr, overlays, canvas=None
):
    """Decoded slices -> ``(C, D, H, W)`` intensity volumes, each patient's mean RGB
    distance to the colormap (NaN when not read through one) and number of overlay
    pixels replaced.

    ``raw`` is consumed: each patient's decoded slices are released (the list item
    set to None) once converted, so that a cohort's 8-bit RGB slices and its float
    volumes are not held in full at the same time.
    """
    volumes, residuals = [], np.full(len(raw), np.nan)
    replaced = np.zeros(len(raw), dtype=int)
    maps = colormap if isinstance(colormap, list) else [colormap] * len(raw)
    for i, pid in enumerate(patients):
        vol, raw[i] = raw[i], None
        dist = None
        if color == "colormap" and vol.ndim == 4:
            values, dist = invert_colormap(vol, maps[i], return_distance=True)
            # pixels left out of the colour error: the canvas, the overlays
            covered = np.zeros(values.shape, dtype=bool)
            if canvas is not None:
                covered = canvas_mask(vol, canvas, values)
                values[covered] = 0.0
            out = values[None]
        else:
            try:
                out = np.stack(
                    [
                        to_intensity(s, color, maps[i], source=f"slice {k + 1}")
                        for k, s in enumerate(vol)
                    ],
                    axis=1,
                )
            except SpectDataError as exc:
                raise SpectDataError(f"patient {pid!r}: {exc}") from None
        if overlays == "remove" and out.shape[0] == 1:
            mask = find_static_overlays(vol, out[0])
            # the rest still off the table: the colours are garbled (a wrong map),
            # and what stays alike across slices is no burnt-in label
            garbled = dist is not None and (
                float(dist[~(covered | mask)].mean()) > OFF_TABLE_THRESHOLD
            )
            if not garbled:
                out = fill_overlays(out, mask)
                replaced[i] = int(mask.sum())
                if dist is not None:
                    covered |= mask
        if dist is not None:
            scan = dist[~covered]
            residuals[i] = float(scan.mean()) if scan.size else 0.0
        if slice_order == "reverse":
            out = out[:, ::-1]
        if flip_lr:
            out = out[..., ::-1]
        volumes.append(np.ascontiguousarray(out, dtype=np.float32))
    return volumes, residuals, replaced


def _warn_overlays(replaced, patients) -> None:
    hit = [f"{pid} ({n})" for pid, n in zip(patients, replaced, strict=True) if n]
    if hit:
        warnings.warn(
            f"Replaced overlays (pixels of the same colour on every slice: a colour "
            f"bar, orientation letters, a crosshair, labels) from the pixels beside "
            f"them in {len(hit)} of {len(patients)} patient(s), pixels per patient: "
            f"{', '.join(hit[:10])}"
            + (", ..." if len(hit) > 10 else "")
            + ". Pass overlays='keep' to read them as intensity.",
            UserWarning,
            stacklevel=3,
        )


def _warn_off_table(residuals, patients, colormap) -> None:
    off_table = [
        f"{pid} ({r:.1f})"
        for pid, r in zip(patients, residuals, strict=True)
        if r > OFF_TABLE_THRESHOLD
    ]
    n_patients = len(patients)
    if off_table:
        warnings.warn(
            f"{len(off_table)} of {n_patients} patient(s) have colours far from the "
            f"{colormap!r} colormap (mean RGB distance > {OFF_TABLE_THRESHOLD:g}): "
            f"{', '.join(off_table[:10])}. The intensities may be garbled: check the "
            "colormap, shading, annotations or JPEG quality of these slices.",
            UserWarning,
            stacklevel=3,
        )


def load_slice_folders(
    root: str | Path,
    *,
    color: Literal["rgb", "gray", "colormap"] = DEFAULT_COLOR,
    colormap: str = DEFAULT_COLORMAP,
    target_shape: Sequence[int] | None = None,
    stage_map: Mapping[str, int] | None = None,
    slice_order: Literal["natural", "reverse"] = "natural",
    flip_lr: bool = False,
    overlays: Literal["remove", "keep"] = "remove",
    on_error: Literal["raise", "skip"] = "raise",
    verbose: int = 0,
) -> Bunch:
    """Load a cohort stored as one folder of coronal slice images per patient.

    The expected layout is ``root/<stage folder>/<patient id>/<slice images>``; stage
    folders are named like ``stage_1``, ``Stage1``, ``1`` or ``HY2``. Slices are stacked
    along the depth axis in natural filename order (``slice_2`` before ``slice_10``),
    which the library takes to run anterior -> posterior; rows run superior ->
    inferior and columns the patient's right -> left.

    Parameters
    ----------
    root : str or Path
        The cohort folder.
    color : {"colormap", "gray", "rgb"}, default="colormap"
        ``"colormap"`` maps each colour back to the scalar intensity it encodes by
        finding the nearest entry in ``colormap``'s look-up table (C=1, in [0, 1]);
        ``"gray"`` takes luminance (C=1, in [0, 1] like grayscale files); ``"rgb"``
        keeps the three colour channels (C=3, 0-255). Grayscale images load as
        their values in [0, 1] under ``"colormap"`` and ``"gray"``.
    colormap : str, default="auto"
        Matplotlib colormap the slices were rendered with, or ``"auto"``: the
        colormap whose table best explains the cohort's colours
        (:func:`spectclf.colour.detect_colormap`). Either way, patients whose
        colours lie far off the table are named in a warning.
    target_shape : tuple of 3 ints, default=None
        ``(D, H, W)`` to resample every volume to (trilinear). If None, all patients
        must already share one shape, or an error lists those that differ.
    stage_map : mapping, default=None
        ``{stage folder name: label}`` for folder names that are not of a known form.
    slice_order : {"natural", "reverse"}, default="natural"
        ``"reverse"`` when the first file is the most *posterior* slice.
    flip_lr : bool, default=False
        Mirror left and right (images in neurological rather than radiological view).
    overlays : {"remove", "keep"}, default="remove"
        ``"remove"`` replaces, in every slice, the pixels that keep one colour
        (brighter than the background) through all of a patient's slices — a colour
        bar, orientation letters, a crosshair or labels burnt into an export, which
        would otherwise read as hot structures — by the pixels beside them
        (:func:`spectclf.io.overlays.find_static_overlays`,
        :func:`spectclf.io.overlays.fill_overlays`; patients with fewer than 8
        slices are left as they are). A warning names the
        patients and the pixels replaced. Applies to one-channel reading
        (``"colormap"``, ``"gray"``); ``"rgb"`` keeps every pixel.
    on_error : {"raise", "skip"}, default="raise"
        On an unreadable image, empty patient folder, slice gap or unknown stage
        folder, raise (default) or skip that patient or folder and warn with the
        list of skips. Hidden files (``.x``, macOS ``._x``) and empty stage folders
        are always left out, with a warning.
    verbose : int, default=0
        Print progress when > 0.

    Returns
    -------
    data : Bunch
        ``X`` float32 ``(n_patients, C, D, H, W)``; ``y`` int stage labels; ``groups``
        patient ids (folder names); ``paths`` patient folders; ``slice_paths`` the files
        of each patient, in stacking order; ``colormap`` the colormap used (or None),
        ``colormaps`` each patient's (with ``colormap="auto"``, a patient whose
        colours lie off the cohort's map but fit another is read through that one,
        with a warning: cohorts pooled from sites that export differently);
        ``colour_residual`` (of the colormap detection); ``patient_colour_residual``
        each patient's mean RGB distance to the colormap (NaN when not read through
        one; above 10 the intensities are suspect and a warning names the patient);
        ``overlay_pixels`` each patient's number of pixels replaced as overlay;
        ``target_names``; ``skipped`` and ``notes`` messages.

    Raises
    ------
    SpectDataError
        For a missing root, no patients, an unreadable or truncated image, an empty
        patient folder, a gap in the slice numbering, a link to a missing slice, one
        patient id (or one folder, through a link) under two stages, an unknown stage
        folder name, mixed channel counts or differing volume shapes without
        ``target_shape``.

    See Also
    --------
    load_volumes : one 3-D file (NIfTI, DICOM, NumPy) per patient.
    spectclf.datasets.write_slice_folders : writes this layout.
    """
    _check_options(color, colormap, slice_order, overlays)
    root = Path(root)
    problems = ProblemLog(on_error)
    records = [
        (stage, entry.name, entry)
        for stage, stage_dir in stage_folders(root, stage_map, problems)
        for entry in patient_entries(stage_dir, problems)
        if entry.is_dir()
    ]
    check_unique_patients(records)
    raw, stages, patients, paths, slice_paths = [], [], [], [], []
    for i, (stage, pid, pdir) in enumerate(records):
        read = _read_patient(pdir, pid, problems)
        if read is not None:
            raw.append(read[0])
            stages.append(stage)
            patients.append(pid)
            paths.append(pdir)
            slice_paths.append(read[1])
        if verbose and ((i + 1) % max(1, len(records) // 10) == 0):
            print(f"[spectclf] loaded {i + 1}/{len(records)} patients", flush=True)
    problems.warn()
    if not raw:
        raise SpectDataError(
            f"No patients found under {root}; expected "
            "root/<stage folder>/<patient id>/<slice images>."
        )
    used, residual, canvas = (
        _resolve_colormap(raw, colormap) if color == "colormap" else (None, None, None)
    )
    if verbose and colormap == "auto" and color == "colormap":
        print(f"[spectclf] colours read as colormap {used!r}", flush=True)
    maps = [used] * len(raw)
    if colormap == "auto" and color == "colormap":
        maps, used = _patient_colormaps(raw, patients, used, canvas)
    volumes, residuals, replaced = _to_volumes(
        raw, patients, color, maps, slice_order, flip_lr, overlays, canvas
    )
    _warn_off_table(residuals, patients, used)
    _warn_overlays(replaced, patients)
    return make_bunch(
        stack_volumes(volumes, patients, target_shape),
        stages,
        patients,
        paths,
        problems,
        f"{len(patients)} patients from slice folders under {root} (color={color!r}"
        + (f", colormap={used!r})" if used else ")"),
        slice_paths=slice_paths,
        colormap=used,
        colormaps=np.asarray(maps, dtype=object),
        colour_residual=residual,
        patient_colour_residual=residuals,
        overlay_pixels=replaced,
        root=str(root),
    )


def load_patient_folders(
    paths,
    *,
    color: Literal["rgb", "gray", "colormap"] = DEFAULT_COLOR,
    colormap: str = DEFAULT_COLORMAP,
    target_shape: Sequence[int] | None = None,
    slice_order: Literal["natural", "reverse"] = "natural",
    flip_lr: bool = False,
    overlays: Literal["remove", "keep"] = "remove",
    on_error: Literal["raise", "skip"] = "raise",
) -> Bunch:
    """Load unlabelled patients: one folder of slice images each (for prediction).

    Parameters
    ----------
    paths : str, Path or list of them
        A single patient folder (holding slice images), a folder of patient folders,
        a staged cohort folder (``<stage>/<patient>/<slices>``, as for
        :func:`load_slice_folders`: its stages are returned as ``y``), or a list of
        patient folders. A folder holding both images and sub-folders is refused: it
        is unclear whether it is one patient or many.
    color, colormap, target_shape, slice_order, flip_lr, overlays, on_error
        As in :func:`load_slice_folders`.

    Returns
    -------
    data : Bunch
        ``X``, ``groups`` (folder names), ``paths``, ``slice_paths``, ``colormap``,
        ``patient_colour_residual``, ``overlay_pixels`` (as in
        :func:`load_slice_folders`), ``skipped``, and ``y``: the stages of a staged
        cohort folder, else None.
    """
    _check_options(color, colormap, slice_order, overlays)
    problems = ProblemLog(on_error)
    if isinstance(paths, (str, Path)):
        root = Path(paths)
        if not root.is_dir():
            raise SpectDataError(f"Folder {root} does not exist or is not a folder.")
        entries = patient_entries(root, problems)
        images = [e.name for e in entries if e.suffix.lower() in IMAGE_EXTENSIONS]
        subdirs = [e for e in entries if e.is_dir()]
        if images and subdirs:
            raise SpectDataError(
                f"{root} holds slice images ({', '.join(images[:3])}) and folders "
                f"({', '.join(d.name for d in subdirs[:3])}): give one patient folder, "
                "or a folder that holds only patient folders."
            )
        staged = None if images else _staged_patients(subdirs, problems)
        dirs = [root] if images else list(staged or subdirs)
    else:
        staged, dirs = None, [Path(p) for p in paths]
    check_unique_patients([(0, d.name, d) for d in dirs])
    raw, patients, kept, slice_paths, stages = [], [], [], [], []
    for pdir in sorted(dirs, key=lambda d: natural_key(d.name)):
        read = _read_patient(pdir, pdir.name, problems)
        if read is not None:
            raw.append(read[0])
            patients.append(pdir.name)
            kept.append(str(pdir))
            slice_paths.append(read[1])
            stages.append(staged[pdir] if staged else None)
    problems.warn()
    if not raw:
        raise SpectDataError(f"No patient slice folders found in {paths}.")
    used, _, canvas = (
        _resolve_colormap(raw, colormap) if color == "colormap" else (None, None, None)
    )
    volumes, residuals, replaced = _to_volumes(
        raw, patients, color, used, slice_order, flip_lr, overlays, canvas
    )
    _warn_off_table(residuals, patients, used)
    _warn_overlays(replaced, patients)
    return Bunch(
        X=stack_volumes(volumes, patients, target_shape),
        groups=np.asarray(patients, dtype=object),
        paths=kept,
        slice_paths=slice_paths,
        colormap=used,
        patient_colour_residual=residuals,
        overlay_pixels=replaced,
        skipped=problems.skipped,
        y=np.asarray(stages) if staged else None,
    )


def _staged_patients(subdirs: list[Path], problems: ProblemLog) -> dict | None:
    """``{patient folder: stage}`` when ``subdirs`` are stage folders that hold only
    patient folders (a cohort as :func:`load_slice_folders` reads it), else None."""
    staged = {}
    for d in subdirs:
        try:
            stage = parse_stage(d.name)
        except SpectDataError:
            return None
        inner = patient_entries(d, problems)
        if not inner or not all(e.is_dir() for e in inner):
            return None
        staged.update(dict.fromkeys(inner, stage))
    return staged
