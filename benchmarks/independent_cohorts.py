"""Synthetic DaTscan cohorts built independently of spectclf's own phantoms.

The generator below was written from clinical knowledge of dopamine-transporter
SPECT, without looking at the library's phantom code, so that a classifier
trained on the library's phantoms can be tested on data it has not been shaped
around.  It writes a cohort in the directory layout the library's loader reads::

    OUTDIR/stage_1/<patient_id>/slice_01.png ... slice_NN.png
    OUTDIR/stage_2/...  stage_3/...  stage_4/...
    OUTDIR/truth.csv

Usage::

    python -m benchmarks.independent_cohorts OUTDIR --kind A --seed 0 \
        [--n 50 50 50 15] [--truth-only]

Coordinates and anatomy
-----------------------
Anatomical coordinates are in mm with the origin at the centre of the cerebrum:
``x`` points to the patient's left, ``y`` anterior, ``z`` superior.

* Head: a cerebrum ellipsoid (semi-axes 68 x 84 x 58 mm) with a 7 mm cortical
  grey-matter rim (uptake 1.0, the reference level; the occipital cortex is
  the clinical reference region), white matter 0.72, lateral ventricles 0.30,
  a cerebellum ellipsoid 0.95 below the occipital lobe, and an
  extra-cerebral shell (scalp, skull, CSF, skull base) of 0.25 inside an outer
  head ellipsoid; zero outside the head.  Edges are anti-aliased.
* Striatum, per hemisphere, each structure a chain of overlapping ellipsoidal
  beads along a curved centre line (``CAUDATE_CHAIN``, ``PUTAMEN_CHAIN``):
  the caudate has a large head anterior-medially (x ~ 12 mm, y ~ +23 mm) and a
  body that tapers as it curves posteriorly and superiorly; the putamen lies
  laterally (x 21 -> 30 mm), is taller than wide, runs about 43 mm
  antero-posteriorly and diverges laterally towards its posterior end.  Each
  bead carries a normalised position ``u`` (0 = anterior end, 1 = posterior
  end).  Partial-volume occupancy is computed on a 3x finer grid.

Binding and stage model
-----------------------
Striatal concentration is ``1 + SBR`` in units of the reference (non-specific)
concentration, where SBR is the true local specific-binding ratio.  Per patient:

* Normal (pre-disease) level ``B0 = 6.0 * (1 + 0.12 z) * (1 - 0.006 (age - 60))``
  (``z`` standard normal: individual spread 12 %; about 6 % loss per decade
  of age); caudate normal
  ``B0 * N(1.08, 0.05)``, putamen ``B0``; each hemisphere multiplied by
  ``N(1, 0.04)`` (normal left/right asymmetry).
* One hemisphere, chosen at random, is the more affected one with disease
  severity ``d`` drawn per stage (table below, normal, clipped at 0.05); the
  other has ``a * d`` with ``a`` uniform per stage (asymmetry shrinks as the
  disease advances).
* Putamen:  ``SBR(u) = B0_put * exp(-d * (0.4 + 1.2 u))`` - loss starts in the
  posterior putamen and spreads anteriorly as ``d`` grows.
* Caudate:  ``SBR(u) = B0_caud * exp(-c * (0.8 + 0.4 u))`` with
  ``c = 0.15 d + 0.6 max(0, d - 1.2)`` - the caudate lags and only drops
  steeply once the putamen is largely gone.

========  =================  ==================  ==================
stage     severity d         asymmetry a         age (years)
========  =================  ==================  ==================
1         N(0.55, 0.25)      U(0.20, 0.60)       N(58, 9)
2         N(1.05, 0.30)      U(0.35, 0.75)       N(62, 9)
3         N(1.65, 0.35)      U(0.50, 0.85)       N(66, 8)
4         N(2.60, 0.45)      U(0.65, 0.95)       N(70, 7)
========  =================  ==================  ==================

Mean true SBR as a fraction of the patient's own normal level (seed 0,
both sides pooled): putamen 0.71 / 0.50 / 0.29 / 0.15 and caudate
0.95 / 0.89 / 0.72 / 0.43 for stages 1 / 2 / 3 / 4.  Neighbouring stages
overlap through the severity spread, the normal-level spread and the age
effect: a standardised 5-fold stratified logistic regression on the four
true ratios in ``truth.csv`` (putamen and caudate, left and right) reaches a
balanced accuracy of 0.67-0.79 on 50/50/50/15 cohorts (0.74 for seed 0).
Images add blur, noise and positioning, so image-based classifiers should
score lower.

Imaging model
-------------
Per patient: head scale U(0.92, 1.08), offset U(+-8, +-8, +-10) mm, roll
(about the AP axis) and yaw U(+-4) degrees, pitch U(+-6) degrees, global
uptake scale lognormal(0, 0.15).  The activity map is blurred with an
isotropic Gaussian PSF of FWHM U(10, 14) mm, resampled onto the kind's
reconstruction grid, given Poisson noise at U(150, 450) counts per ml of
reference tissue, post-filtered with a Gaussian of FWHM U(4, 7) mm, and cut
into coronal slices (linear interpolation) that are rendered through a
matplotlib colormap.

Cohort kinds (``KINDS``)
------------------------
* ``A``: whole head, 32 coronal slices anterior -> posterior, 128x128 PNG,
  ``nipy_spectral``, per-patient max scaling (black background),
  neurological convention (patient's left on image left).
* ``B``: an 85 mm antero-posterior slab of 26 slices around the striatum,
  posterior -> anterior, 96x112 (rows x columns) JPEG quality 85,
  ``gist_heat``, in-plane crop shifted so the head is off-centre, per-patient
  max scaling.
* ``C``: whole head in a wide 320 mm field of view (head small in the frame),
  30 slices, 160x160 JPEG quality 70, ``viridis``, one brightness scale for the
  whole cohort (99.99th percentile of all voxels of all patients, estimated
  from every 7th voxel; at the
  99.9th the striatum of most early-stage patients would clip, because the
  striatal peak is only about 0.1 % of this large field of view), images
  left-right mirrored (radiological convention).

Patient ids (``P001`` ...) are a global counter assigned in random order, so
they do not reveal the stage.  Only numpy, scipy, matplotlib and Pillow are
used.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image
from scipy import ndimage

# --------------------------------------------------------------------------
# Cohort kinds: geometry and rendering
# --------------------------------------------------------------------------
#: ``recon_fov_mm`` / ``recon_voxel_mm``: cubic reconstruction grid centred on
#: the scanner origin.  ``slice_y_mm``: (first, last) coronal slice position in
#: scanner y (anterior positive) - its order is the file order.
#: ``image_shape``: (rows, columns).  ``pixel_mm``: in-plane pixel size.
#: ``image_centre_mm``: scanner (x, z) at the centre of the image.
#: ``scaling``: "patient" (each patient's max) or "cohort" (``cohort_percentile``
#: of all voxels of all patients).  ``mirror_lr``: flip images left-right
#: (radiological convention) after rendering in neurological convention.
KINDS: dict[str, dict] = {
    "A": {
        "recon_fov_mm": 240.0,
        "recon_voxel_mm": 3.75,
        "n_slices": 32,
        "slice_y_mm": (105.0, -105.0),
        "image_shape": (128, 128),
        "pixel_mm": 1.875,
        "image_centre_mm": (0.0, -8.0),
        "cmap": "nipy_spectral",
        "scaling": "patient",
        "cohort_percentile": None,
        "mirror_lr": False,
        "format": "png",
        "jpeg_quality": None,
    },
    "B": {
        "recon_fov_mm": 240.0,
        "recon_voxel_mm": 3.3,
        "n_slices": 26,
        "slice_y_mm": (-35.0, 50.0),
        "image_shape": (96, 112),
        "pixel_mm": 2.0,
        "image_centre_mm": (17.0, -22.0),
        "cmap": "gist_heat",
        "scaling": "patient",
        "cohort_percentile": None,
        "mirror_lr": False,
        "format": "jpeg",
        "jpeg_quality": 85,
    },
    "C": {
        "recon_fov_mm": 320.0,
        "recon_voxel_mm": 4.0,
        "n_slices": 30,
        "slice_y_mm": (105.0, -105.0),
        "image_shape": (160, 160),
        "pixel_mm": 2.0,
        "image_centre_mm": (0.0, -10.0),
        "cmap": "viridis",
        "scaling": "cohort",
        "cohort_percentile": 99.99,
        "mirror_lr": True,
        "format": "jpeg",
        "jpeg_quality": 70,
    },
}

# --------------------------------------------------------------------------
# Disease stages and patient variability (see the module docstring)
# --------------------------------------------------------------------------
STAGES: dict[int, dict] = {
    1: {"severity": (0.55, 0.25), "asymmetry": (0.20, 0.60), "age": (58.0, 9.0)},
    2: {"severity": (1.05, 0.30), "asymmetry": (0.35, 0.75), "age": (62.0, 9.0)},
    3: {"severity": (1.65, 0.35), "asymmetry": (0.50, 0.85), "age": (66.0, 8.0)},
    4: {"severity": (2.60, 0.45), "asymmetry": (0.65, 0.95), "age": (70.0, 7.0)},
}
NORMAL_SBR = 6.0  # true putamen specific-binding ratio of a 60-year-old
NORMAL_SBR_SPREAD = 0.12  # relative between-subject spread
AGE_DECLINE_PER_YEAR = 0.006
CAUDATE_TO_PUTAMEN = (1.08, 0.05)
HEMISPHERE_SPREAD = 0.04
PUTAMEN_GRADIENT = (0.4, 1.2)  # exponent factor a + b * u along the putamen
CAUDATE_GRADIENT = (0.8, 0.4)
CAUDATE_LAG = (0.15, 0.6, 1.2)  # c = k1 d + k2 max(0, d - d0)

PATIENT_RANGES: dict[str, tuple[float, float]] = {
    "head_scale": (0.92, 1.08),
    "offset_x_mm": (-8.0, 8.0),
    "offset_y_mm": (-8.0, 8.0),
    "offset_z_mm": (-10.0, 10.0),
    "roll_deg": (-4.0, 4.0),
    "pitch_deg": (-6.0, 6.0),
    "yaw_deg": (-4.0, 4.0),
    "psf_fwhm_mm": (10.0, 14.0),
    "counts_per_ml": (150.0, 450.0),
    "post_filter_fwhm_mm": (4.0, 7.0),
}
UPTAKE_SCALE_SIGMA = 0.15  # lognormal sigma of the global uptake scale

# --------------------------------------------------------------------------
# Anatomy (mm; x = patient's left, y = anterior, z = superior)
# --------------------------------------------------------------------------
TEMPLATE_VOXEL_MM = 2.0
TEMPLATE_BOUNDS_MM = ((-96.0, 96.0), (-114.0, 106.0), (-104.0, 84.0))
UPTAKE = {
    "grey": 1.0,
    "white": 0.72,
    "cerebellum": 0.95,
    "ventricle": 0.30,
    "extracerebral": 0.25,
}
CEREBRUM = ((0.0, 0.0, 0.0), (68.0, 84.0, 58.0))  # (centre, semi-axes)
CORTEX_THICKNESS_MM = 7.0
CEREBELLUM = ((0.0, -50.0, -52.0), (48.0, 28.0, 22.0))
HEAD = ((0.0, -4.0, -12.0), (80.0, 98.0, 82.0))
VENTRICLE = ((5.0, 8.0, 5.0), (3.5, 26.0, 8.0))  # left one; mirrored for right
# Bead chains for the left hemisphere, anterior -> posterior:
# rows of (x, y, z, semi-axis x, semi-axis y, semi-axis z).
CAUDATE_CHAIN = np.array(
    [
        (12.0, 30.0, -8.0, 4.5, 5.0, 6.0),
        (12.0, 23.0, -5.0, 5.5, 6.0, 9.0),
        (13.0, 15.0, -1.0, 5.0, 6.0, 8.0),
        (15.0, 6.0, 4.0, 4.0, 6.0, 6.0),
        (17.0, -4.0, 8.0, 3.5, 5.0, 4.5),
        (19.0, -14.0, 11.0, 3.0, 5.0, 3.5),
        (21.0, -23.0, 12.0, 2.5, 4.0, 3.0),
    ]
)
PUTAMEN_CHAIN = np.array(
    [
        (21.0, 24.0, -6.0, 4.0, 4.0, 6.0),
        (24.0, 16.0, -4.0, 5.0, 6.0, 9.0),
        (27.0, 6.0, -4.0, 5.5, 6.0, 10.0),
        (29.0, -3.0, -5.0, 5.0, 5.0, 8.5),
        (30.0, -11.0, -6.0, 3.5, 4.0, 6.0),
    ]
)
BEADS_PER_CHAIN = 24
SUPERSAMPLE = 3

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class Structure:
    """Voxels of one striatal structure (both hemispheres) in the template.

    Attributes
    ----------
    index : numpy.ndarray
        Flat indices into the template volume.
    occupancy : numpy.ndarray
        Fraction of each voxel filled by the structure.
    position : numpy.ndarray
        Normalised position along the structure, 0 anterior to 1 posterior.
    left : numpy.ndarray
        True for voxels in the patient's left hemisphere.
    """

    index: np.ndarray
    occupancy: np.ndarray
    position: np.ndarray
    left: np.ndarray


@dataclass(frozen=True)
class Template:
    """Patient-independent anatomy on a regular grid.

    Attributes
    ----------
    background : numpy.ndarray
        Non-specific uptake (reference = 1), float32, axes (x, y, z).
    origin : numpy.ndarray
        Position in mm of voxel (0, 0, 0).
    caudate, putamen : Structure
        The striatal structures.
    """

    background: np.ndarray
    origin: np.ndarray
    caudate: Structure
    putamen: Structure


@dataclass(frozen=True)
class Patient:
    """Sampled parameters of one synthetic patient.

    Attributes
    ----------
    pid : str
        Patient id, unique in the cohort.
    stage : int
        Disease stage 1-4.
    seed : numpy.random.SeedSequence
        Seed of the patient's noise generator.
    values : dict
        Scalar parameters (age, severities, normal levels, imaging and
        positioning parameters); see ``sample_patient``.
    """

    pid: str
    stage: int
    seed: np.random.SeedSequence
    values: dict


def _grid(bounds: tuple, step: float) -> tuple[np.ndarray, ...]:
    """Voxel-centre coordinates along each axis.

    Parameters
    ----------
    bounds : tuple of (float, float)
        Lower and upper coordinate per axis, in mm (both included).
    step : float
        Spacing in mm.

    Returns
    -------
    tuple of numpy.ndarray
        One 1-D coordinate array per axis.
    """
    return tuple(
        lo + step * np.arange(int(round((hi - lo) / step)) + 1) for lo, hi in bounds
    )


def _soft_ellipsoid(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    centre: tuple,
    axes: tuple,
    edge_mm: float,
) -> np.ndarray:
    """Anti-aliased membership of points in an ellipsoid.

    Parameters
    ----------
    x, y, z : numpy.ndarray
        Broadcastable coordinates in mm.
    centre, axes : tuple of float
        Centre and semi-axes in mm.
    edge_mm : float
        Width of the linear 0-1 ramp across the surface.

    Returns
    -------
    numpy.ndarray
        Membership in [0, 1] (float32).
    """
    q = [(c - c0) / a for c, c0, a in zip((x, y, z), centre, axes, strict=True)]
    rho = np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2)
    grad = np.sqrt(
        sum(qi**2 / a**2 for qi, a in zip(q, axes, strict=True))
    ) / np.maximum(rho, 1e-6)
    distance = (rho - 1.0) / np.maximum(grad, 1e-6)  # first-order signed distance
    return np.clip(0.5 - distance / edge_mm, 0.0, 1.0).astype(np.float32)


def _bead_chain(chain: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample a chain of control beads to ``n`` beads evenly along its length.

    Parameters
    ----------
    chain : numpy.ndarray
        Rows of (x, y, z, semi-axis x, y, z), anterior to posterior.
    n : int
        Number of beads.

    Returns
    -------
    centres, axes, position : numpy.ndarray
        Bead centres (n, 3), semi-axes (n, 3) and normalised arc position (n,).
    """
    seg = np.linalg.norm(np.diff(chain[:, :3], axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)]) / seg.sum()
    position = np.linspace(0.0, 1.0, n)
    beads = np.stack([np.interp(position, arc, col) for col in chain.T], axis=1)
    return beads[:, :3], beads[:, 3:], position


def _structure_maps(
    coords: tuple[np.ndarray, ...], chain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise a bead chain, mirrored into both hemispheres, on fine points.

    Parameters
    ----------
    coords : tuple of numpy.ndarray
        Broadcastable fine-grid x, y, z coordinates in mm.
    chain : numpy.ndarray
        Control beads of the left-hemisphere structure.

    Returns
    -------
    q_min, position : numpy.ndarray
        Smallest normalised bead distance (inside where < 1) and the arc
        position of the nearest bead, per fine point.
    """
    x, y, z = coords
    ax = np.abs(x)
    centres, axes, pos = _bead_chain(chain, BEADS_PER_CHAIN)
    shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
    q_min = np.full(shape, np.inf, dtype=np.float32)
    position = np.zeros(shape, dtype=np.float32)
    for c, a, u in zip(centres, axes, pos, strict=True):
        q = (
            ((ax - c[0]) / a[0]) ** 2
            + ((y - c[1]) / a[1]) ** 2
            + ((z - c[2]) / a[2]) ** 2
        )
        closer = q < q_min
        q_min = np.where(closer, q, q_min)
        position = np.where(closer, u, position)
    return q_min, position


def build_template() -> Template:
    """Build the patient-independent anatomical template.

    Returns
    -------
    Template
        Background uptake and partial-volume striatal maps on a
        ``TEMPLATE_VOXEL_MM`` grid.
    """
    step = TEMPLATE_VOXEL_MM
    xs, ys, zs = _grid(TEMPLATE_BOUNDS_MM, step)
    x, y, z = np.meshgrid(xs, ys, zs, indexing="ij", sparse=True)

    head = _soft_ellipsoid(x, y, z, *HEAD, step)
    cerebrum = _soft_ellipsoid(x, y, z, *CEREBRUM, step)
    inner_axes = tuple(a - CORTEX_THICKNESS_MM for a in CEREBRUM[1])
    white = _soft_ellipsoid(x, y, z, CEREBRUM[0], inner_axes, step)
    cerebellum = _soft_ellipsoid(x, y, z, *CEREBELLUM, step)
    vc, va = VENTRICLE
    ventricles = np.maximum(
        _soft_ellipsoid(x, y, z, vc, va, step),
        _soft_ellipsoid(x, y, z, (-vc[0], vc[1], vc[2]), va, step),
    )

    brain = UPTAKE["grey"] * (1.0 - white) + UPTAKE["white"] * white
    brain = brain * (1.0 - ventricles) + UPTAKE["ventricle"] * ventricles
    volume = UPTAKE["extracerebral"] * head
    volume = volume * (1.0 - cerebrum) + brain * cerebrum
    volume = volume * (1.0 - cerebellum) + UPTAKE["cerebellum"] * cerebellum

    # Striatum on a SUPERSAMPLE-times finer grid inside a bounding box.
    box = ((-40.0, 40.0), (-34.0, 40.0), (-24.0, 30.0))
    lo_idx = [
        int(round((b[0] - tb[0]) / step))
        for b, tb in zip(box, TEMPLATE_BOUNDS_MM, strict=True)
    ]
    n_vox = [int(round((b[1] - b[0]) / step)) + 1 for b in box]
    sub = (np.arange(SUPERSAMPLE) - (SUPERSAMPLE - 1) / 2) * step / SUPERSAMPLE
    fine = [
        (b[0] + step * np.arange(n)[:, None] + sub[None, :]).ravel()
        for b, n in zip(box, n_vox, strict=True)
    ]
    fx, fy, fz = np.meshgrid(*fine, indexing="ij", sparse=True)
    fine_shape = (n_vox[0], SUPERSAMPLE, n_vox[1], SUPERSAMPLE, n_vox[2], SUPERSAMPLE)

    q_caud, u_caud = _structure_maps((fx, fy, fz), CAUDATE_CHAIN)
    q_put, u_put = _structure_maps((fx, fy, fz), PUTAMEN_CHAIN)
    in_caud = (q_caud < 1.0) & (q_caud <= q_put)
    in_put = (q_put < 1.0) & (q_put < q_caud)

    def block_mean(a: np.ndarray) -> np.ndarray:
        return a.reshape(fine_shape).mean(axis=(1, 3, 5))

    structures = []
    striatum = np.zeros(n_vox, dtype=np.float32)
    for inside, u in ((in_caud, u_caud), (in_put, u_put)):
        occ = block_mean(inside.astype(np.float32))
        pos = block_mean(np.where(inside, u, 0.0)) / np.maximum(occ, 1e-6)
        striatum += occ
        keep = np.nonzero(occ > 0)
        full_idx = tuple(k + lo for k, lo in zip(keep, lo_idx, strict=True))
        structures.append(
            Structure(
                index=np.ravel_multi_index(full_idx, volume.shape),
                occupancy=occ[keep].astype(np.float32),
                position=pos[keep].astype(np.float32),
                left=xs[full_idx[0]] > 0,
            )
        )
    region = tuple(slice(lo, lo + n) for lo, n in zip(lo_idx, n_vox, strict=True))
    volume[region] = volume[region] * (1.0 - striatum) + UPTAKE["grey"] * striatum
    return Template(
        background=volume.astype(np.float32),
        origin=np.array([xs[0], ys[0], zs[0]]),
        caudate=structures[0],
        putamen=structures[1],
    )


def sample_patient(
    rng: np.random.Generator, pid: str, stage: int, seed: np.random.SeedSequence
) -> Patient:
    """Draw the biological and imaging parameters of one patient.

    Parameters
    ----------
    rng : numpy.random.Generator
        Generator for the parameters.
    pid : str
        Patient id.
    stage : int
        Disease stage (key of ``STAGES``).
    seed : numpy.random.SeedSequence
        Seed kept for the patient's count noise.

    Returns
    -------
    Patient
        The patient; ``values`` holds the severity per side, normal binding
        levels per structure and side, and the imaging parameters.
    """
    model = STAGES[stage]
    age = float(np.clip(rng.normal(*model["age"]), 40.0, 88.0))
    worse_left = bool(rng.random() < 0.5)
    d_worse = max(0.05, rng.normal(*model["severity"]))
    d_better = d_worse * rng.uniform(*model["asymmetry"])
    normal = (
        NORMAL_SBR
        * max(0.3, 1.0 + NORMAL_SBR_SPREAD * rng.standard_normal())
        * (1.0 - AGE_DECLINE_PER_YEAR * (age - 60.0))
    )
    caudate_factor = rng.normal(*CAUDATE_TO_PUTAMEN)
    values = {
        "age": age,
        "worse_side": "L" if worse_left else "R",
        "severity_L": d_worse if worse_left else d_better,
        "severity_R": d_better if worse_left else d_worse,
    }
    for side in "LR":
        hemi = 1.0 + HEMISPHERE_SPREAD * rng.standard_normal()
        values[f"normal_put_{side}"] = normal * hemi
        values[f"normal_caud_{side}"] = normal * caudate_factor * hemi
    for name, (lo, hi) in PATIENT_RANGES.items():
        values[name] = rng.uniform(lo, hi)
    values["uptake_scale"] = rng.lognormal(0.0, UPTAKE_SCALE_SIGMA)
    return Patient(pid=pid, stage=stage, seed=seed, values=values)


def _local_sbr(patient: Patient, structure: Structure, putamen: bool) -> np.ndarray:
    """True specific-binding ratio of every voxel of a structure.

    Parameters
    ----------
    patient : Patient
        The patient.
    structure : Structure
        Caudate or putamen voxels.
    putamen : bool
        Whether ``structure`` is the putamen (selects the loss model).

    Returns
    -------
    numpy.ndarray
        SBR per voxel of ``structure``.
    """
    v = patient.values
    name = "put" if putamen else "caud"
    d = np.where(structure.left, v["severity_L"], v["severity_R"])
    normal = np.where(structure.left, v[f"normal_{name}_L"], v[f"normal_{name}_R"])
    if putamen:
        a, b = PUTAMEN_GRADIENT
        loss = d
    else:
        a, b = CAUDATE_GRADIENT
        k1, k2, d0 = CAUDATE_LAG
        loss = k1 * d + k2 * np.maximum(0.0, d - d0)
    return normal * np.exp(-loss * (a + b * structure.position))


def truth_row(patient: Patient, template: Template) -> dict:
    """Ground-truth quantities of one patient for ``truth.csv``.

    Parameters
    ----------
    patient : Patient
        The patient.
    template : Template
        The anatomy.

    Returns
    -------
    dict
        Id, stage, mean true SBR of putamen and caudate per side (volume
        weighted), and the sampled parameters.
    """
    row = {"patient_id": patient.pid, "stage": patient.stage}
    for name, structure in (("put", template.putamen), ("caud", template.caudate)):
        sbr = _local_sbr(patient, structure, name == "put")
        for side, mask in (("L", structure.left), ("R", ~structure.left)):
            w = structure.occupancy[mask]
            row[f"{name}_sbr_{side}"] = round(
                float(np.sum(w * sbr[mask]) / np.sum(w)), 4
            )
    for key, value in patient.values.items():
        row[key] = round(value, 4) if isinstance(value, float) else value
    return row


def _rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation matrix for roll (about y), pitch (about x) and yaw (about z).

    Parameters
    ----------
    roll, pitch, yaw : float
        Angles in degrees.

    Returns
    -------
    numpy.ndarray
        3x3 matrix acting on (x, y, z) column vectors.
    """
    r, p, w = np.deg2rad([roll, pitch, yaw])
    ry = np.array([[np.cos(r), 0, np.sin(r)], [0, 1, 0], [-np.sin(r), 0, np.cos(r)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(w), -np.sin(w), 0], [np.sin(w), np.cos(w), 0], [0, 0, 1]])
    return rz @ rx @ ry


def render_patient(patient: Patient, template: Template, kind: dict) -> np.ndarray:
    """Simulate the reconstructed SPECT volume and cut the coronal slices.

    Parameters
    ----------
    patient : Patient
        The patient.
    template : Template
        The anatomy.
    kind : dict
        One entry of ``KINDS``.

    Returns
    -------
    numpy.ndarray
        Slice stack (n_slices, rows, columns), float32, in file order and
        neurological convention, in units of reference concentration times
        the patient's uptake scale.
    """
    v = patient.values
    activity = template.background.copy()
    for structure, putamen in ((template.caudate, False), (template.putamen, True)):
        sbr = _local_sbr(patient, structure, putamen)
        activity.flat[structure.index] += structure.occupancy * sbr

    # The PSF is isotropic, so it commutes with the rigid motion; blurring in
    # template space only needs the head scale folded into its width.
    scale = v["head_scale"]
    sigma = v["psf_fwhm_mm"] * FWHM_TO_SIGMA / (scale * TEMPLATE_VOXEL_MM)
    activity = ndimage.gaussian_filter(activity, sigma, truncate=3.0)

    # Scanner position p = R (scale * a) + t; map reconstruction voxels back.
    rot = _rotation(v["roll_deg"], v["pitch_deg"], v["yaw_deg"])
    shift = np.array([v["offset_x_mm"], v["offset_y_mm"], v["offset_z_mm"]])
    vox = kind["recon_voxel_mm"]
    n = int(round(kind["recon_fov_mm"] / vox))
    recon_origin = -0.5 * (n - 1) * vox
    matrix = rot.T * vox / (scale * TEMPLATE_VOXEL_MM)
    offset = (rot.T @ (np.full(3, recon_origin) - shift) / scale - template.origin) / (
        TEMPLATE_VOXEL_MM
    )
    expected = ndimage.affine_transform(
        activity, matrix, offset, output_shape=(n, n, n), order=1, cval=0.0
    )

    counts_per_voxel = v["counts_per_ml"] * v["uptake_scale"] * vox**3 / 1000.0
    noise_rng = np.random.default_rng(patient.seed)
    recon = noise_rng.poisson(np.maximum(expected, 0.0) * counts_per_voxel)
    recon = recon.astype(np.float32) * np.float32(v["uptake_scale"] / counts_per_voxel)
    recon = ndimage.gaussian_filter(
        recon, v["post_filter_fwhm_mm"] * FWHM_TO_SIGMA / vox, truncate=3.0
    )

    rows, cols = kind["image_shape"]
    pix = kind["pixel_mm"]
    xc, zc = kind["image_centre_mm"]
    ys = np.linspace(*kind["slice_y_mm"], kind["n_slices"])
    zs = zc + pix * ((rows - 1) / 2 - np.arange(rows))  # top row = superior
    xs = xc + pix * ((cols - 1) / 2 - np.arange(cols))  # left column = patient's left
    yy, zz, xx = np.meshgrid(ys, zs, xs, indexing="ij")
    coords = np.stack([xx, yy, zz]) - recon_origin
    stack = ndimage.map_coordinates(recon, coords / vox, order=1, cval=0.0)
    return np.maximum(stack, 0.0).astype(np.float32)


def write_slices(stack: np.ndarray, folder: Path, kind: dict, vmax: float) -> None:
    """Render a slice stack through the kind's colormap and save it.

    Parameters
    ----------
    stack : numpy.ndarray
        Slices (n, rows, columns) in file order, neurological convention.
    folder : Path
        Patient folder (created).
    kind : dict
        One entry of ``KINDS``.
    vmax : float
        Value mapped to the top of the colormap.
    """
    lut = (colormaps[kind["cmap"]](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round()
    lut = lut.astype(np.uint8)
    levels = np.clip(stack / vmax * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if kind["mirror_lr"]:
        levels = levels[:, :, ::-1]
    folder.mkdir(parents=True)
    width = max(2, len(str(len(stack))))
    ext = "png" if kind["format"] == "png" else "jpg"
    for k, level in enumerate(levels, start=1):
        image = Image.fromarray(lut[level])
        path = folder / f"slice_{k:0{width}d}.{ext}"
        if kind["format"] == "png":
            image.save(path, format="PNG", compress_level=1)
        else:
            image.save(path, format="JPEG", quality=kind["jpeg_quality"])


def make_patients(seed: int, counts: list[int]) -> list[Patient]:
    """Sample all patients of a cohort.

    Ids are a global counter over a random permutation, so they do not reveal
    the stage.

    Parameters
    ----------
    seed : int
        Cohort seed.
    counts : list of int
        Number of patients for stages 1-4.

    Returns
    -------
    list of Patient
        Patients, grouped by stage.
    """
    root = np.random.SeedSequence(seed)
    param_seed, id_seed, noise_seed = root.spawn(3)
    rng = np.random.default_rng(param_seed)
    total = sum(counts)
    numbers = np.random.default_rng(id_seed).permutation(total) + 1
    width = max(3, len(str(total)))
    stages = [s for s, n in zip(sorted(STAGES), counts, strict=True) for _ in range(n)]
    seeds = noise_seed.spawn(total)
    return [
        sample_patient(rng, f"P{numbers[i]:0{width}d}", stage, seeds[i])
        for i, stage in enumerate(stages)
    ]


def generate(
    outdir: Path, kind_name: str, seed: int, counts: list[int], truth_only: bool = False
) -> int:
    """Generate a cohort on disk.

    Parameters
    ----------
    outdir : Path
        Output directory; must be empty or absent.
    kind_name : str
        Key of ``KINDS``.
    seed : int
        Cohort seed.
    counts : list of int
        Patients per stage 1-4.
    truth_only : bool, default=False
        Only write ``truth.csv`` (no images).

    Returns
    -------
    int
        Number of patients written.
    """
    kind = KINDS[kind_name]
    if outdir.exists() and any(outdir.iterdir()):
        raise SystemExit(f"{outdir} exists and is not empty")
    outdir.mkdir(parents=True, exist_ok=True)
    template = build_template()
    patients = make_patients(seed, counts)

    rows = [truth_row(p, template) for p in patients]
    with open(outdir / "truth.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if truth_only:
        return len(patients)

    def folder(p: Patient) -> Path:
        return outdir / f"stage_{p.stage}" / p.pid

    if kind["scaling"] == "patient":
        for p in patients:
            stack = render_patient(p, template, kind)
            write_slices(stack, folder(p), kind, float(stack.max()))
        return len(patients)

    # Cohort-wide brightness: keep stacks on disk, pool a strided sample of
    # every stack for the percentile, then render.
    with tempfile.TemporaryDirectory(dir=outdir) as tmp:
        pooled = []
        for i, p in enumerate(patients):
            stack = render_patient(p, template, kind)
            np.save(Path(tmp) / f"{i}.npy", stack.astype(np.float16))
            pooled.append(stack.ravel()[::7].copy())
        vmax = float(np.percentile(np.concatenate(pooled), kind["cohort_percentile"]))
        for i, p in enumerate(patients):
            stack = np.load(Path(tmp) / f"{i}.npy").astype(np.float32)
            write_slices(stack, folder(p), kind, vmax)
    return len(patients)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--kind", choices=sorted(KINDS), default="A")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--n",
        type=int,
        nargs=4,
        default=[50, 50, 50, 15],
        metavar=("N1", "N2", "N3", "N4"),
        help="patients per stage 1-4 (default 50 50 50 15)",
    )
    parser.add_argument(
        "--truth-only", action="store_true", help="write truth.csv only, no images"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    n = generate(args.outdir, args.kind, args.seed, args.n, args.truth_only)
    print(
        f"kind {args.kind}: {n} patients written to {args.outdir} "
        f"in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
