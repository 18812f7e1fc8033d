"""Overlays burnt into exported slices (colour bar, letters) and the localiser."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spectclf import load_slice_folders, make_spect_phantoms, write_slice_folders
from spectclf.anatomy import locate_striatum
from spectclf.datasets import draw_overlays
from spectclf.io.overlays import MIN_OVERLAY_SLICES, find_static_overlays


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    d = make_spect_phantoms((2, 2, 2, 2), shape=(16, 40, 40), random_state=3)
    roots = {}
    for name in ("clean", "overlaid"):
        roots[name] = tmp_path_factory.mktemp(name)
        write_slice_folders(d.X, d.y, d.groups, roots[name], colormap="hot")
    changed = draw_overlays(roots["overlaid"], "hot")
    return roots, changed


def test_colour_bar_and_letter_are_removed_and_the_scan_kept(cohorts):
    roots, changed = cohorts
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overlay, no warning
        clean = load_slice_folders(roots["clean"])
    assert (clean.overlay_pixels == 0).all()
    with pytest.warns(
        UserWarning, match=r"Replaced overlays .* 8 of 8 .*P00\d \(\d+\)"
    ):
        data = load_slice_folders(roots["overlaid"])
    assert data.colormap == "hot"
    for i, pid in enumerate(data.groups):
        drawn = changed[pid]
        vol, ref = data.X[i, 0], clean.X[i, 0]
        # the colour bar (4 pixels along the right edge, beside no scan) reads as
        # background, the letter as what surrounds it ...
        assert (vol[..., -4:] == 0).all(), pid
        letter = drawn.copy()
        letter[:, -4:] = False
        assert np.abs(vol[:, letter] - ref[:, letter]).mean() < 0.05, pid
        # ... and outside the drawing (and its 1-pixel rim) the scan is untouched
        rim = np.zeros_like(drawn)
        rim[1:, :] |= drawn[:-1, :]
        rim[:-1, :] |= drawn[1:, :]
        rim[:, 1:] |= drawn[:, :-1]
        rim[:, :-1] |= drawn[:, 1:]
        kept = ~(drawn | rim)
        np.testing.assert_array_equal(vol[:, kept], ref[:, kept])
        assert data.overlay_pixels[i] >= drawn.sum()


def test_overlays_keep_reads_the_bar_as_intensity(cohorts):
    roots, changed = cohorts
    kept = load_slice_folders(roots["overlaid"], overlays="keep")
    assert (kept.overlay_pixels == 0).all()
    # the bar's top (4 pixels wide) reads as the hottest value in every slice
    assert np.allclose(kept.X[:, 0, :, 0, -4:], 1.0, atol=0.01)


def test_striatum_found_where_it_was_without_overlays(cohorts):
    roots, _ = cohorts
    clean = load_slice_folders(roots["clean"])
    with pytest.warns(UserWarning, match="Replaced overlays"):
        data = load_slice_folders(roots["overlaid"])
    for a, b in zip(clean.X[:, 0], data.X[:, 0], strict=True):
        la, lb = locate_striatum(a), locate_striatum(b)
        assert lb.found
        np.testing.assert_allclose(lb.centre, la.centre, atol=0.5)
        np.testing.assert_allclose(lb.extent, la.extent, atol=1.0)


def test_localiser_ignores_a_hot_blob_outside_the_brain():
    vol = make_spect_phantoms((1, 0, 0, 0), shape=(20, 48, 48), random_state=0).X[0, 0]
    ref = locate_striatum(vol)
    vol = vol.copy()
    vol[:4, :4, :4] = 3 * vol.max()  # a hot speck in a corner, apart from the head
    loc = locate_striatum(vol)
    np.testing.assert_allclose(loc.centre, ref.centre, atol=0.5)
    np.testing.assert_allclose(loc.extent, ref.extent, atol=1.0)


def test_static_pixels_need_enough_slices():
    rng = np.random.default_rng(0)
    slices = rng.integers(0, 255, (MIN_OVERLAY_SLICES, 20, 20, 3), dtype=np.uint8)
    slices[:, :6, :6] = (200, 40, 40)  # a static block
    level = slices.mean(-1) / 255.0
    assert find_static_overlays(slices, level)[:6, :6].all()
    short = slices[: MIN_OVERLAY_SLICES - 1]
    assert not find_static_overlays(short, level[: len(short)]).any()


def test_static_background_of_any_level_is_not_an_overlay():
    # jet's lowest colour is dark blue: its luminance (0.06) is the background here
    rng = np.random.default_rng(0)
    level = np.full((12, 30, 30), 0.06, dtype=np.float32)
    level[:, 8:22, 8:22] = rng.uniform(0.2, 1.0, (12, 14, 14))
    assert not find_static_overlays(level, level).any()
    level[:, 0:3, 25:28] = 0.9  # a static mark
    assert find_static_overlays(level, level)[0:3, 25:28].all()


def test_bad_overlays_option_is_named(cohorts):
    roots, _ = cohorts
    with pytest.raises(ValueError, match="overlays must be 'remove' or 'keep'"):
        load_slice_folders(roots["clean"], overlays="drop")


def test_crosshair_over_the_head_is_filled_from_the_tissue_beside_it(tmp_path):
    from PIL import Image

    from spectclf import SBRFeatures

    d = make_spect_phantoms((3, 3, 3, 3), shape=(20, 48, 48), random_state=1)
    write_slice_folders(d.X, d.y, d.groups, tmp_path, colormap="hot")
    clean = load_slice_folders(tmp_path)
    for path in tmp_path.rglob("slice_*.png"):
        a = np.asarray(Image.open(path).convert("RGB")).copy()
        a[24, :] = a[:, 24] = 255  # a cursor's lines through the striatum
        Image.fromarray(a).save(path)
    with pytest.warns(UserWarning, match="Replaced overlays"):
        data = load_slice_folders(tmp_path)
    # zeroed, the lines would cut the brain in four (the localiser keeps one piece)
    for a, b in zip(clean.X[:, 0], data.X[:, 0], strict=True):
        np.testing.assert_allclose(
            locate_striatum(b).centre, locate_striatum(a).centre, atol=1.5
        )
    sbr = SBRFeatures().fit(clean.X)
    names = sbr.get_feature_names_out().tolist()
    put = [names.index(f"sbr_{side}_putamen") for side in ("left", "right")]
    got, ref = sbr.transform(data.X)[:, put], sbr.transform(clean.X)[:, put]
    r = np.corrcoef(got.ravel(), ref.ravel())[0, 1]
    assert r > 0.9, r  # 0.94 measured; the lines cross the striatum itself


def test_a_grey_label_block_is_no_colour_error_of_the_scan(tmp_path):
    from PIL import Image, ImageDraw

    d = make_spect_phantoms((2, 2, 2, 2), shape=(16, 40, 40), random_state=0)
    write_slice_folders(d.X, d.y, d.groups, tmp_path, colormap="hot")
    for path in tmp_path.rglob("slice_*.png"):
        img = Image.open(path).convert("RGB")
        draw = ImageDraw.Draw(img)
        draw.rectangle([0, 28, 20, 39], fill=(128, 128, 128))  # window / level box
        draw.text((1, 28), "W:1", fill=(0, 0, 0))
        img.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_slice_folders(tmp_path, colormap="hot")
    messages = [str(w.message) for w in caught]
    assert any("Replaced overlays" in m for m in messages)
    assert not any("far from the 'hot' colormap" in m for m in messages), messages
    assert (data.patient_colour_residual < 1.0).all()
    # kept, the grey box is a colour the map does not have: named in a warning
    with pytest.warns(UserWarning, match="far from the 'hot' colormap"):
        kept = load_slice_folders(tmp_path, colormap="hot", overlays="keep")
    assert (kept.patient_colour_residual > 10).all()
