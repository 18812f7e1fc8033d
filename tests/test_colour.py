"""Colour: colormap detection, the off-table warning, and luminance pitfalls."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spectclf import load_slice_folders, make_spect_phantoms, write_slice_folders
from spectclf.colour import detect_colormap, invert_colormap


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


def test_auto_leaves_out_maps_that_cannot_encode_intensity():
    from spectclf.colour import auto_candidates

    names = set(auto_candidates())
    # periodic, cyclic and qualitative maps repeat colours: no intensity reads back
    assert not names & {"flag", "prism", "hsv", "twilight", "tab10", "Set1", "flag_r"}
    assert {"hot", "jet", "viridis", "gray", "nipy_spectral", "gist_heat"} <= names


@pytest.fixture(scope="module")
def phantoms_30():
    from spectclf import make_spect_phantoms

    return make_spect_phantoms((3, 3, 3, 3), shape=(20, 40, 40), random_state=0)


def _repaint(root, old, new):
    """Repaint one colour of every slice (a viewer's canvas)."""
    from PIL import Image

    for path in root.rglob("slice_*.png"):
        a = np.asarray(Image.open(path).convert("RGB")).copy()
        a[(a == old).all(-1)] = new
        Image.fromarray(a).save(path)


def test_jpeg_hot_slices_are_read_as_hot(phantoms_30, tmp_path):
    d = phantoms_30
    write_slice_folders(d.X, d.y, d.groups, tmp_path, colormap="hot", jpeg_quality=75)
    data = load_slice_folders(tmp_path)
    # (periodic "flag_r" fitted this JPEG noise better before it was left out)
    assert data.colormap == "hot"
    truth = d.X / d.X.max(axis=(1, 2, 3, 4), keepdims=True)
    assert np.corrcoef(data.X.ravel(), truth.ravel())[0, 1] > 0.98


@pytest.mark.parametrize("canvas", [(0, 0, 0), (255, 255, 255)])
def test_black_or_white_canvas_reads_as_zero(phantoms_30, tmp_path, canvas):
    from spectclf.colour import colormap_lut

    d = phantoms_30
    write_slice_folders(d.X, d.y, d.groups, tmp_path / "plain", colormap="hot")
    write_slice_folders(d.X, d.y, d.groups, tmp_path / "canvas", colormap="hot")
    # the background (hot's lowest colour, a dark red) painted black or white
    _repaint(tmp_path / "canvas", colormap_lut("hot")[0], canvas)
    plain = load_slice_folders(tmp_path / "plain")
    for colormap in ("auto", "hot"):
        data = load_slice_folders(tmp_path / "canvas", colormap=colormap)
        assert data.colormap == "hot"  # not "hot_r" (white canvas) or "flag"
        np.testing.assert_allclose(data.X, plain.X, atol=1 / 255)


def test_inverted_gray_on_white_reads_the_right_way_round(phantoms_30, tmp_path):
    d = phantoms_30
    write_slice_folders(d.X, d.y, d.groups, tmp_path / "plain", colormap="gray")
    write_slice_folders(d.X, d.y, d.groups, tmp_path / "inv", colormap="gray_r")
    plain = load_slice_folders(tmp_path / "plain")
    inverted = load_slice_folders(tmp_path / "inv")
    assert inverted.colormap in ("gray_r", "binary", "Greys", "gist_yarg")
    np.testing.assert_allclose(inverted.X, plain.X, atol=2 / 255)


def test_a_cohort_pooled_from_two_sites_reads_each_patient_through_its_map(tmp_path):
    d = make_spect_phantoms((3, 2, 3, 2), shape=(12, 32, 32), random_state=5)
    site = np.arange(10) % 2  # every other patient exported with "hot"
    for s, cmap in ((0, "jet"), (1, "hot")):
        keep = site == s
        write_slice_folders(
            d.X[keep], d.y[keep], d.groups[keep], tmp_path, colormap=cmap
        )
    with pytest.warns(UserWarning, match=r"5 of 10 patients do not fit"):
        data = load_slice_folders(tmp_path)
    maps = dict(zip(data.groups, data.colormaps, strict=True))
    truth = dict(zip(d.groups, d.X, strict=True))
    for pid, vol in zip(data.groups, data.X, strict=True):
        expected = "hot" if site[list(d.groups).index(pid)] else "jet"
        assert maps[pid] == expected, (pid, maps[pid])
        r = np.corrcoef(vol.ravel(), truth[pid].ravel())[0, 1]
        assert r >= 0.98, (pid, r)
    assert not data.overlay_pixels.any()  # no colour read as a burnt-in label
    # an explicit colormap is the user's word: kept for every patient
    with pytest.warns(UserWarning, match="far from the 'jet' colormap"):
        forced = load_slice_folders(tmp_path, colormap="jet")
    assert set(forced.colormaps) == {"jet"}
    # ... and its garbled patients are not "cleaned" of labels they do not have
    assert not forced.overlay_pixels.any()
