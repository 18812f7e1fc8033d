"""The robustness cohorts: knob sets of the library's phantom generator and kinds of
the independent one, written once as slice folders and read back with the library's
default loader (used by ``robustness`` and ``flip_tta``); and the small phantom cohort
of the tuning benchmarks (``tuning_speed``, ``pruning_replay``, ``tuning_workers``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.independent_cohorts import KINDS, generate
from spectclf import (
    load_slice_folders,
    make_default_pipeline,
    make_spect_phantoms,
    write_slice_folders,
)
from spectclf.datasets import draw_overlays

COHORTS = {
    # the demo's geometry: whole head, "hot" PNG slices
    "whole_head": dict(phantom={}, render={"colormap": "hot"}),
    # ~90 mm slab around the striatum (superior-inferior), other colormap
    "slab_90mm": dict(
        phantom={"fov_centre": (-0.1, 0.0, 0.0), "fov_extent": (0.9, 0.45, 0.9)},
        render={"colormap": "inferno"},
    ),
    # heads shifted and zoomed in the field of view
    "shifted_zoomed": dict(
        phantom={
            "fov_centre": (0.1, -0.15, 0.1),
            "fov_extent": 0.8,
            "offset_sd": 0.08,
            "scale_sd": 0.08,
        },
        render={"colormap": "hot"},
    ),
    # another colormap, JPEG slices, one brightness scale for the whole cohort
    "jet_jpeg": dict(
        phantom={"pose_sd": 6.0},
        render={"colormap": "jet", "jpeg_quality": 75, "scaling": "cohort"},
    ),
    # cohorts of benchmarks/independent_cohorts.py, written without reading the
    # library's phantom code (other anatomy, noise and rendering); each kind draws its
    # own patients (seed + offset)
    # A: whole head, nipy_spectral PNG; B: off-centre slab stored back to front,
    # JPEG; A and B in neurological view; C: zoomed out, viridis JPEG
    "indep_A": dict(independent="A", seed_offset=0),
    "indep_B": dict(independent="B", seed_offset=1000),
    "indep_C": dict(independent="C", seed_offset=2000),
    # indep_A's patients with a 7-pixel colour bar and an "R" burnt into every slice
    # (datasets.draw_overlays), as a viewer's export carries them; read with the
    # default (overlays replaced) and with overlays="keep"
    "indep_A_overlays": dict(independent="A", seed_offset=0, overlays=7),
    "indep_A_overlays_kept": dict(
        independent="A", seed_offset=0, overlays=7, load={"overlays": "keep"}
    ),
}
#: the cohorts a plain run measures: the library's own generator with four knob sets
DEFAULT_COHORTS = ("whole_head", "slab_90mm", "shifted_zoomed", "jet_jpeg")
#: patients per stage 1-4 and volume shape of the library's cohorts in a full run
#: (the independent cohorts keep their own geometry)
N_PER_STAGE, SHAPE = (50, 50, 50, 15), (30, 64, 64)
#: the same for ``--quick``
QUICK_N_PER_STAGE, QUICK_SHAPE = (8, 8, 8, 5), (16, 32, 32)


def tuning_cohort(seed: int, *, patients=(14, 14, 14, 8), epochs: int = 10):
    """The tuning benchmarks' phantoms (24x48x48, ``patients`` per stage) and the
    default pipeline trained for ``epochs``, both seeded by ``seed``."""
    d = make_spect_phantoms(tuple(patients), shape=(24, 48, 48), random_state=seed)
    pipe = make_default_pipeline(random_state=seed).set_params(clf__max_epochs=epochs)
    return d, pipe


def cohort_key(cohort: str, seed: int) -> str:
    """Name of a cohort's stored rows: another seed draws another cohort, stored
    apart as ``<cohort>#seed<N>``."""
    return cohort if seed == 0 else f"{cohort}#seed{seed}"


def build_cohort(name: str, root: Path, n_per_stage, shape, seed: int):
    """Write (once) and load one cohort with the library's default loader."""
    spec = COHORTS[name]
    folder = root / f"{name}-{'-'.join(map(str, n_per_stage))}-{seed}"
    if not (folder / "done").exists():
        if "independent" in spec:
            # generate() wants an empty folder: clear what a cut-off run left
            shutil.rmtree(folder, ignore_errors=True)
            generate(
                folder,
                spec["independent"],
                seed + spec["seed_offset"],
                list(n_per_stage),
            )
        else:
            d = make_spect_phantoms(
                n_per_stage, shape=shape, random_state=seed, **spec["phantom"]
            )
            write_slice_folders(d.X, d.y, d.groups, folder, **spec["render"])
        if "overlays" in spec:
            cmap = KINDS[spec["independent"]]["cmap"]
            draw_overlays(folder, cmap, bar_width=spec["overlays"])
        (folder / "done").touch()
    return load_slice_folders(folder, **spec.get("load", {}))
