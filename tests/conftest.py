"""Shared fixtures: seeded RNGs and small phantom cohorts."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from spectclf import make_spect_phantoms, write_slice_folders


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def small_phantoms():
    """12 patients, 3 per stage, 12 coronal slices of 24 x 24 pixels."""
    return make_spect_phantoms((3, 3, 3, 3), shape=(12, 24, 24), random_state=0)


@pytest.fixture(scope="session")
def slice_root(tmp_path_factory, small_phantoms):
    """The small phantoms written as coloured PNG slice folders."""
    root = tmp_path_factory.mktemp("cohort")
    d = small_phantoms
    write_slice_folders(d.X, d.y, d.groups, root, colormap="hot")
    return root
