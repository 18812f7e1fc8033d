"""Colour: colormap detection, the off-table warning, and luminance pitfalls."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spectclf import load_slice_folders, write_slice_folders
from spectclf.io.colour import detect_colormap, invert_colormap


@pytest.fixture(scope="module")
def volumes(small_phantoms):
    d = small_phantoms
    return d.X[:4], d.y[:4], d.groups[:4]


@pytest.mark.parametrize(
    "cmap", ["hot", "jet", "viridis", "inferno", "gray", "nipy_spectral", "turbo"]
)
def test_auto_picks_the_rendering_colormap(volumes, tmp_path, cmap):
    X, y, g = volumes
    write_slice_folders(X, y, g, tmp_path, colormap=cmap)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the right map: no off-table warning
        data = load_slice_folders(tmp_path)
    assert data.colormap == cmap
    truth = X / X.max(axis=(1, 2, 3, 4), keepdims=True)
    corr = np.corrcoef(data.X.ravel(), truth.ravel())[0, 1]
    assert corr > 0.995


def test_wrong_colormap_warns_and_names_patients(volumes, tmp_path):
    X, y, g = volumes
    write_slice_folders(X, y, g, tmp_path, colormap="jet")
    with pytest.warns(UserWarning, match=r"far from the 'hot' colormap.*P00\d \("):
        bad = load_slice_folders(tmp_path, colormap="hot")
    right = load_slice_folders(tmp_path, colormap="jet")
    truth = X / X.max(axis=(1, 2, 3, 4), keepdims=True)
    assert np.corrcoef(bad.X.ravel(), truth.ravel())[0, 1] < 0.95
    assert np.corrcoef(right.X.ravel(), truth.ravel())[0, 1] > 0.995


def test_luminance_garbles_jet_but_auto_does_not(volumes, tmp_path):
    X, y, g = volumes
    write_slice_folders(X, y, g, tmp_path, colormap="jet")
    truth = (X / X.max(axis=(1, 2, 3, 4), keepdims=True)).ravel()
    gray = load_slice_folders(tmp_path, color="gray").X.ravel()
    auto = load_slice_folders(tmp_path).X.ravel()
    # jet's luminance falls again towards its dark-red end: in the hottest voxels
    # (the striatum) brighter uptake reads as *lower* luminance
    hot = truth > 0.75
    assert np.corrcoef(gray[hot], truth[hot])[0, 1] < 0
    assert np.corrcoef(auto[hot], truth[hot])[0, 1] > 0.9


def test_detect_prefers_dark_background_between_equal_maps():
    lut = np.linspace(0, 255, 64).astype(np.uint8)
    rgb = np.stack([lut] * 3, axis=1)
    rgb = np.concatenate([np.zeros((500, 3), np.uint8), rgb])  # black background
    assert detect_colormap(rgb, candidates=["gray", "binary", "Greys"])[0] == "gray"


def test_residual_measures_distance_to_the_table():
    lut_rgb = np.array([[0, 0, 0], [255, 255, 255]], dtype=np.uint8)
    _, exact = invert_colormap(lut_rgb, "gray", return_residual=True)
    _, off = invert_colormap(
        np.array([[255, 0, 0]], dtype=np.uint8), "gray", return_residual=True
    )
    assert exact == 0.0 and off > 100
