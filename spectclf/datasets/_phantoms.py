"""DaTscan-like digital phantoms: a synthetic, staged Parkinson's cohort."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.utils import Bunch, check_random_state

from spectclf.colour import colormap_lut
from spectclf.regions import (
    CANONICAL_STRUCTURES,
    STRIATUM_CENTRE,
    ellipsoid_mask,
    standard_grid,
)

__all__ = ["make_spect_phantoms", "write_slice_folders", "HEALTHY_SBR", "STAGE_LOSS"]

#: Specific binding ratios ``(C_roi - C_ref) / C_ref`` of a healthy 60-year-old.
HEALTHY_SBR = {"caudate": 3.0, "putamen_anterior": 2.6, "putamen_posterior": 2.4}

#: Fraction of healthy SBR lost, per region, as a function of continuous severity
#: (knots at severities 0.5, 1, 2, 3, 4, 4.5). "contra" is the hemisphere opposite the
#: symptom side, where loss starts (posterior putamen first).
_SEVERITY_KNOTS = (0.5, 1.0, 2.0, 3.0, 4.0, 4.5)
STAGE_LOSS = {
    "contra_putamen_posterior": (0.30, 0.45, 0.62, 0.72, 0.85, 0.90),
    "contra_putamen_anterior": (0.10, 0.20, 0.40, 0.55, 0.75, 0.82),
    "ipsi_putamen_posterior": (0.05, 0.12, 0.45, 0.60, 0.80, 0.86),
    "ipsi_putamen_anterior": (0.00, 0.05, 0.25, 0.42, 0.68, 0.76),
    "contra_caudate": (0.00, 0.05, 0.12, 0.35, 0.60, 0.68),
    "ipsi_caudate": (0.00, 0.02, 0.08, 0.28, 0.55, 0.63),
}


#: Canonical striatal centre (between caudate heads and putamina), (z, y, x).


def _loss(region: str, severity: float) -> float:
    return float(np.interp(severity, _SEVERITY_KNOTS, STAGE_LOSS[region]))


def _rotation(roll_deg: float, yaw_deg: float) -> np.ndarray:
    """Rotation about the AP axis (roll, in the coronal plane) then the SI axis."""
    r, w = np.deg2rad(roll_deg), np.deg2rad(yaw_deg)
    # axes order (z=AP, y=SI, x=LR)
    roll = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    yaw = np.array([[np.cos(w), 0, -np.sin(w)], [0, 1, 0], [np.sin(w), 0, np.cos(w)]])
    return yaw @ roll


def _render_patient(
    shape: tuple[int, int, int],
    sbr: dict[str, float],
    scale: float,
    offset: np.ndarray,
    rotation: np.ndarray,
    fwhm: float,
    counts: float,
    rng: np.random.Generator,
    fov_centre=(0.0, 0.0, 0.0),
    fov_extent=(1.0, 1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free activity map, SPECT blur, then Poisson counting noise; and the
    striatal mask (caudate and putamen voxels, before blurring)."""
    extent = np.asarray(fov_extent, dtype=np.float32)
    grid = standard_grid(shape) * extent + np.asarray(fov_centre, dtype=np.float32)
    # canonical (atlas) coordinates of every voxel: undo head pose and size
    q = ((grid - offset) / scale) @ rotation.astype(np.float32)
    s = CANONICAL_STRUCTURES
    act = np.zeros(shape, np.float32)
    striatum = np.zeros(shape, bool)
    act[ellipsoid_mask(q, *s["head"])] = 0.3  # scalp and skull: low non-specific
    act[ellipsoid_mask(q, *s["brain"])] = 1.0  # brain background = reference level
    for side, sign in (("right", -1.0), ("left", 1.0)):
        c, a = s["caudate"]
        mask = ellipsoid_mask(q, (c[0], c[1], sign * c[2]), a)
        act[mask] = 1.0 + sbr[f"{side}_caudate"]
        striatum |= mask
        c, a = s["putamen"]
        mask = ellipsoid_mask(q, (c[0], c[1], sign * c[2]), a)
        striatum |= mask
        # anterior -> posterior gradient along the putamen's long (AP) axis
        t = np.clip((q[..., 0][mask] - c[0]) / a[0] * 0.5 + 0.5, 0.0, 1.0)
        ant, post = sbr[f"{side}_putamen_anterior"], sbr[f"{side}_putamen_posterior"]
        act[mask] = 1.0 + ant * (1 - t) + post * t
    # fwhm is physical (a fraction of the whole-head field): voxels shrink with extent
    sigma = [fwhm / 2.355 / (2.0 * e / n) for n, e in zip(shape, extent, strict=True)]
    blurred = gaussian_filter(act, sigma=sigma, mode="constant")
    noisy = rng.poisson(np.clip(blurred, 0, None) * counts) / counts
    return noisy.astype(np.float32), striatum


def make_spect_phantoms(
    n_per_stage: Sequence[int] = (50, 50, 50, 15),
    *,
    shape: Sequence[int] = (30, 64, 64),
    fwhm: float = 0.10,
    counts: float = 40.0,
    between_patient_sd: float = 0.10,
    fov_centre: Sequence[float] = (0.0, 0.0, 0.0),
    fov_extent: float | Sequence[float] = 1.0,
    offset_sd: float = 0.03,
    scale_sd: float = 0.04,
    pose_sd: float = 4.0,
    flip: Sequence[bool] = (False, False, False),
    return_masks: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> Bunch:
    """Make a synthetic DaTscan-like cohort of staged Parkinson's patients.

    Each patient is a 3-D activity volume with axes ``(D, H, W)`` = (anterior to
    posterior, superior to inferior, right to left), so that ``X[i, 0, d]`` is the
    ``d``-th coronal slice.

    **Model.** A head ellipsoid (scalp uptake 0.3) holds a brain ellipsoid of uptake 1.0,
    which is also the occipital reference level. In each hemisphere a caudate head
    (anterior, medial) and a putamen (lateral, elongated front to back) take up
    ``1 + SBR``, where SBR is the specific binding ratio. Healthy SBRs are
    :data:`HEALTHY_SBR` (caudate 3.0, putamen 2.6 anterior to 2.4 posterior, a linear
    gradient along the putamen), lowered 0.6 % per year of age above 60 and multiplied by
    a patient factor ``N(1, between_patient_sd)``. Disease removes a fraction of SBR
    given by :data:`STAGE_LOSS` as a function of a continuous severity
    ``stage + U(-0.5, 0.5)``: stage 1 loses mainly the posterior putamen opposite the
    symptom side, stage 2 both putamina, stage 3 putamina and caudates, stage 4 most of
    everything. Heads vary in size (``N(1, 0.04)``), position (``N(0, 0.03)`` of the
    field of view per axis) and pose (roll and yaw ``N(0, 4)`` degrees). The activity is
    blurred with a Gaussian of ``fwhm`` (as a fraction of the field of view, 0.10 ~ 10 mm
    for a 20 cm field) and Poisson counting noise is drawn with ``counts`` expected counts
    per voxel at the reference level. The continuous severity, the patient factor and
    age make adjacent stages overlap, as they do in real cohorts.

    Parameters
    ----------
    n_per_stage : sequence of int, default=(50, 50, 50, 15)
        Number of patients in stages 1, 2, 3, 4 (and so on: stage ``i + 1`` gets
        ``n_per_stage[i]``).
    shape : tuple of 3 ints, default=(30, 64, 64)
        ``(D, H, W)``: coronal slices and their height and width in voxels.
    fwhm : float, default=0.10
        Resolution of the SPECT blur as a fraction of the field of view.
    counts : float, default=40.0
        Expected counts per voxel at the reference level; lower is noisier.
    between_patient_sd : float, default=0.10
        Standard deviation of the multiplicative per-patient SBR factor.
    fov_centre : tuple of 3 floats, default=(0, 0, 0)
        Centre of the field of view in the canonical head space ``(z, y, x)``, whose
        whole-head field spans [-1, 1] per axis (the striatum sits near
        ``(-0.1, 0.0, 0.0)``).
    fov_extent : float or tuple of 3 floats, default=1.0
        Half-width of the field of view per axis in the same units: 1 is the whole
        head; ``(1, 0.45, 1)`` a ~90 mm slab in the superior-inferior direction; a
        value below 1 on every axis zooms in.
    offset_sd, scale_sd : float, default=0.03, 0.04
        Per-patient head position (fraction of the field) and size variation.
    pose_sd : float, default=4.0
        Per-patient roll and yaw, in degrees.
    flip : tuple of 3 bools, default=(False, False, False)
        Mirror the stored volumes along ``(D, H, W)``: scans whose orientation
        differs from the library's convention.
    return_masks : bool, default=False
        Also return ``striatum_mask``, the true caudate and putamen voxels of each
        volume (before blurring), e.g. to score saliency maps.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible cohorts.

    Returns
    -------
    data : Bunch
        ``X`` float32 ``(n, 1, D, H, W)`` activity (reference level ~1); ``y`` stages
        (1..4); ``groups`` patient ids (``"P001"``...); ``sbr`` dict of true per-region
        SBR arrays (``left_caudate``, ``right_putamen_posterior``...) plus
        ``mean_putamen``; ``age``, ``symptom_side`` ("left" / "right"), ``severity``;
        ``striatum_voxel`` the true striatal centre of each volume (voxel coordinates);
        ``striatum_mask`` bool ``(n, D, H, W)`` with ``return_masks=True``.

    See Also
    --------
    write_slice_folders : render the cohort as coloured PNG slice folders.
    load_demo : the cached default cohort.

    Examples
    --------
    >>> from spectclf import make_spect_phantoms
    >>> data = make_spect_phantoms((2, 2, 2, 1), shape=(16, 32, 32), random_state=0)
    >>> data.X.shape, data.y.tolist()
    ((7, 1, 16, 32, 32), [1, 1, 2, 2, 3, 3, 4])
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"shape must be three ints >= 4 (D, H, W), got {shape}")
    n_per_stage = [int(n) for n in n_per_stage]
    if not n_per_stage or min(n_per_stage) < 0 or sum(n_per_stage) == 0:
        raise ValueError(f"n_per_stage must be non-negative counts, got {n_per_stage}")
    extent = (
        (float(fov_extent),) * 3
        if np.isscalar(fov_extent)
        else tuple(float(e) for e in fov_extent)
    )
    if len(extent) != 3 or min(extent) <= 0:
        raise ValueError(
            f"fov_extent must be positive (one or three), got {fov_extent}"
        )
    rng_legacy = check_random_state(random_state)
    rng = np.random.default_rng(rng_legacy.randint(2**31 - 1))

    X, y, sbr_rows, ages, sides, severities = [], [], [], [], [], []
    centres, masks = [], []
    for stage, n in enumerate(n_per_stage, start=1):
        for _ in range(n):
            severity = stage + rng.uniform(-0.5, 0.5)
            age = float(np.clip(rng.normal(65, 8), 40, 90))
            side = "left" if rng.random() < 0.5 else "right"
            factor = max(0.3, rng.normal(1.0, between_patient_sd))
            base = factor * (1 - 0.006 * max(0.0, age - 60))
            sbr = {}
            for hemi in ("left", "right"):
                # symptoms on one side come from the opposite hemisphere
                role = "ipsi" if hemi == side else "contra"
                sbr[f"{hemi}_caudate"] = (
                    HEALTHY_SBR["caudate"]
                    * base
                    * (1 - _loss(f"{role}_caudate", severity))
                )
                for part in ("anterior", "posterior"):
                    sbr[f"{hemi}_putamen_{part}"] = HEALTHY_SBR[f"putamen_{part}"] * (
                        base * (1 - _loss(f"{role}_putamen_{part}", severity))
                    )
            pose = _rotation(rng.normal(0, pose_sd), rng.normal(0, pose_sd))
            head_scale = float(rng.normal(1.0, scale_sd))
            offset = rng.normal(0, offset_sd, size=3).astype(np.float32)
            # where the striatal centre lands, in voxels of the stored volume
            where = offset + head_scale * (STRIATUM_CENTRE.astype(np.float32) @ pose.T)
            voxel = ((where - np.asarray(fov_centre)) / extent + 1) / 2
            voxel = voxel * (np.asarray(shape) - 1)
            for axis, mirrored in enumerate(flip):
                if mirrored:
                    voxel[axis] = shape[axis] - 1 - voxel[axis]
            centres.append(voxel)
            vol, striatum = _render_patient(
                shape,
                sbr,
                scale=head_scale,
                offset=offset,
                rotation=pose,
                fwhm=fwhm,
                counts=counts,
                rng=rng,
                fov_centre=fov_centre,
                fov_extent=extent,
            )
            for axis, mirrored in enumerate(flip):
                if mirrored:
                    vol = np.flip(vol, axis=axis)
                    striatum = np.flip(striatum, axis=axis)
            if return_masks:
                masks.append(np.ascontiguousarray(striatum))
            X.append(np.ascontiguousarray(vol)[None])
            y.append(stage)
            sbr_rows.append(sbr)
            ages.append(age)
            sides.append(side)
            severities.append(severity)
    sbr_arrays = {k: np.array([r[k] for r in sbr_rows]) for k in sbr_rows[0]}
    sbr_arrays["mean_putamen"] = np.mean(
        [sbr_arrays[k] for k in sbr_arrays if "putamen" in k], axis=0
    )
    extra = {"striatum_mask": np.stack(masks)} if return_masks else {}
    return Bunch(
        **extra,
        X=np.stack(X),
        y=np.asarray(y, dtype=np.int64),
        groups=np.array([f"P{i + 1:03d}" for i in range(len(y))], dtype=object),
        sbr=sbr_arrays,
        age=np.asarray(ages),
        symptom_side=np.asarray(sides),
        severity=np.asarray(severities),
        striatum_voxel=np.asarray(centres),
        DESCR="Synthetic DaTscan-like phantoms (spectclf.make_spect_phantoms).",
    )


def write_slice_folders(
    X: np.ndarray,
    y: Sequence[int],
    groups: Sequence[str],
    root: str | Path,
    *,
    colormap: str = "hot",
    stage_format: str = "stage_{}",
    slice_format: str = "slice_{}.png",
    jpeg_quality: int | None = None,
    scaling: str = "patient",
) -> list[Path]:
    """Render volumes as coloured coronal slice images in the user-data layout.

    Writes ``root/stage_<y>/<patient id>/slice_<k>.png`` for ``k = 1..D`` (no zero
    padding, so readers must sort naturally). Each patient is scaled to its own maximum,
    as clinical viewers display it, then coloured with ``colormap``.

    Parameters
    ----------
    X : ndarray of shape (n, D, H, W) or (n, 1, D, H, W)
        Volumes, e.g. ``make_spect_phantoms().X``.
    y : sequence of int
        Stage of each patient.
    groups : sequence of str
        Patient ids, used as folder names.
    root : str or Path
        Output folder (created).
    colormap : str, default="hot"
        Matplotlib colormap used to render intensity as colour.
    stage_format, slice_format : str
        Folder and file name patterns.
    jpeg_quality : int, default=None
        Write JPEG slices of this quality (1-95) instead of PNG; the file extension
        of ``slice_format`` becomes ``.jpg``.
    scaling : {"patient", "cohort"}, default="patient"
        Scale each patient to its own maximum (as clinical viewers do), or the whole
        cohort to one maximum.

    Returns
    -------
    patient_dirs : list of Path
    """
    X = np.asarray(X)
    if X.ndim == 5:
        if X.shape[1] != 1:
            raise ValueError(f"expected one channel, got X of shape {X.shape}")
        X = X[:, 0]
    if X.ndim != 4:
        raise ValueError(f"X must be (n, D, H, W) or (n, 1, D, H, W), got {X.shape}")
    if not (len(X) == len(y) == len(groups)):
        raise ValueError(
            f"X, y and groups differ in length: {len(X)}, {len(y)}, {len(groups)}"
        )
    from PIL import Image

    if scaling not in ("patient", "cohort"):
        raise ValueError(f"scaling must be 'patient' or 'cohort', got {scaling!r}")
    if jpeg_quality is not None and not 1 <= int(jpeg_quality) <= 95:
        raise ValueError(f"jpeg_quality must be in 1..95, got {jpeg_quality!r}")
    if jpeg_quality is not None:
        slice_format = str(Path(slice_format).with_suffix(".jpg"))
    lut = colormap_lut(colormap)
    root = Path(root)
    dirs = []
    cohort_peak = float(X.max()) or 1.0
    for vol, stage, pid in zip(X, y, groups, strict=True):
        pdir = root / stage_format.format(stage) / str(pid)
        pdir.mkdir(parents=True, exist_ok=True)
        peak = (float(vol.max()) or 1.0) if scaling == "patient" else cohort_peak
        idx = np.clip(np.round(vol / peak * (len(lut) - 1)), 0, len(lut) - 1)
        rgb = lut[idx.astype(np.intp)]
        for k, img in enumerate(rgb, start=1):
            options = {} if jpeg_quality is None else {"quality": int(jpeg_quality)}
            Image.fromarray(img, mode="RGB").save(
                pdir / slice_format.format(k), **options
            )
        dirs.append(pdir)
    return dirs
