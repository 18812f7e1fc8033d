"""Phantom cohort: physiology, reproducibility, demo cache."""

from __future__ import annotations

import numpy as np
import pytest

from spectclf import load_demo, make_spect_phantoms
from spectclf.regions import region_masks


def test_shapes_labels_and_ids(small_phantoms):
    d = small_phantoms
    assert d.X.shape == (12, 1, 12, 24, 24) and d.X.dtype == np.float32
    assert np.bincount(d.y).tolist() == [0, 3, 3, 3, 3]
    assert len(set(d.groups)) == 12


def test_reproducible_with_random_state():
    a = make_spect_phantoms((1, 1, 0, 1), shape=(8, 16, 16), random_state=3)
    b = make_spect_phantoms((1, 1, 0, 1), shape=(8, 16, 16), random_state=3)
    c = make_spect_phantoms((1, 1, 0, 1), shape=(8, 16, 16), random_state=4)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


def test_putamen_sbr_falls_strictly_with_stage():
    d = make_spect_phantoms((30, 30, 30, 15), shape=(8, 8, 8), random_state=0)
    means = [d.sbr["mean_putamen"][d.y == s].mean() for s in (1, 2, 3, 4)]
    assert all(a > b for a, b in zip(means, means[1:], strict=False)), means
    # stage 1 is one-sided: the hemisphere opposite the symptoms has lost more
    s1 = d.y == 1
    contra = np.where(
        d.symptom_side[s1] == "left",
        d.sbr["right_putamen_posterior"][s1],
        d.sbr["left_putamen_posterior"][s1],
    )
    ipsi = np.where(
        d.symptom_side[s1] == "left",
        d.sbr["left_putamen_posterior"][s1],
        d.sbr["right_putamen_posterior"][s1],
    )
    assert (contra < ipsi).all()
    # caudate is spared early and lost late
    caud = [d.sbr["left_caudate"][d.y == s].mean() for s in (1, 2, 3, 4)]
    assert caud[0] - caud[1] < caud[2] - caud[3]


def test_image_signal_follows_anatomy():
    d = make_spect_phantoms((10, 0, 0, 10), shape=(30, 64, 64), random_state=1)
    m = region_masks((30, 64, 64))
    vol = d.X[:, 0]
    striatum = vol[:, m["striatum"]].mean(axis=1)
    ref = vol[:, m["reference"]].mean(axis=1)
    ratio = striatum / ref
    # striatum is hot against the occipital reference, much less so in stage 4
    assert ratio[d.y == 1].mean() > 1.8
    assert ratio[d.y == 1].min() > ratio[d.y == 4].max()
    # the reference sits at the brain background level (~1)
    assert 0.85 < ref.mean() < 1.15


def test_load_demo_caches_and_reloads(tmp_path):
    kw = dict(n_per_stage=(2, 1, 1, 1), shape=(6, 16, 16), random_state=5)
    a = load_demo(tmp_path, **kw)
    marker = list(tmp_path.glob("*/spectclf-demo.json"))
    assert len(marker) == 1
    mtime = marker[0].stat().st_mtime
    b = load_demo(tmp_path, **kw)
    assert marker[0].stat().st_mtime == mtime  # not regenerated
    np.testing.assert_array_equal(a.X, b.X)
    assert a.X.shape == (5, 1, 6, 16, 16) and a.y.tolist() == [1, 1, 2, 3, 4]


def test_bad_parameters():
    with pytest.raises(ValueError, match="shape"):
        make_spect_phantoms((1,), shape=(2, 2))


def test_striatum_masks_follow_pose_and_flips():
    kw = dict(shape=(20, 40, 40), offset_sd=0.08, random_state=3)
    d = make_spect_phantoms((3, 0, 0, 0), return_masks=True, **kw)
    assert "striatum_mask" not in make_spect_phantoms((1, 0, 0, 0), **kw)
    m = d.striatum_mask
    assert m.shape == (3, 20, 40, 40) and m.dtype == bool
    assert 0.002 < m.mean() < 0.05
    # the mask is where the uptake is, and it moves with each head
    for vol, mask, centre in zip(d.X[:, 0], m, d.striatum_voxel, strict=True):
        assert vol[mask].mean() > 1.8 * vol[~mask].mean()
        mass = np.argwhere(mask).mean(axis=0)
        assert np.abs(mass - centre).max() < 2.5, (mass, centre)
    flipped = make_spect_phantoms(
        (3, 0, 0, 0), return_masks=True, flip=(True, False, True), **kw
    )
    np.testing.assert_array_equal(flipped.striatum_mask, m[:, ::-1, :, ::-1])
