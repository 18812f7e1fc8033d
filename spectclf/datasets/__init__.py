"""Synthetic DaTscan-like cohorts: the embedded demo data set and its generator."""

from spectclf.datasets._demo import DEMO_PARAMS, get_data_home, load_demo
from spectclf.datasets._overlays import draw_overlays
from spectclf.datasets._phantoms import (
    HEALTHY_SBR,
    STAGE_LOSS,
    make_spect_phantoms,
    write_slice_folders,
)

__all__ = [
    "DEMO_PARAMS",
    "HEALTHY_SBR",
    "STAGE_LOSS",
    "draw_overlays",
    "get_data_home",
    "load_demo",
    "make_spect_phantoms",
    "write_slice_folders",
]
