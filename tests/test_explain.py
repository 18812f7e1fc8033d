"""Saliency maps: integrated gradients, Grad-CAM, input gradients."""

from __future__ import annotations

import numpy as np
import pytest

from spectclf import (
    Spect3DClassifier,
    make_default_pipeline,
    make_spect_phantoms,
    saliency,
    saliency_share,
)
from spectclf.regions import (
    CANONICAL_STRUCTURES,
    ellipsoid_mask,
    region_masks,
    standard_grid,
)


@pytest.fixture(scope="module")
def model_and_data():
    kw = dict(shape=(16, 32, 32), counts=200.0, between_patient_sd=0.05)
    train = make_spect_phantoms((12, 0, 0, 12), random_state=1, **kw)
    clf = Spect3DClassifier(
        max_epochs=20, lr=1e-2, module__width=8, augment=False, random_state=1
    ).fit(train.X, train.y)
    return clf, make_spect_phantoms((4, 0, 0, 4), random_state=2, **kw)


def _brain_mask(shape):
    return ellipsoid_mask(standard_grid(shape), *CANONICAL_STRUCTURES["brain"])


@pytest.mark.parametrize("method", ["guided", "gradient"])
def test_saliency_concentrates_in_striatum(model_and_data, method):
    clf, test = model_and_data
    sal, X_used = saliency(clf, test.X, method=method)
    assert sal.shape == (8, 16, 32, 32) and X_used.shape == test.X.shape
    assert sal.min() >= 0 and np.allclose(sal.max(axis=(1, 2, 3)), 1)
    striatum = region_masks((16, 32, 32))["striatum"]
    near = region_masks((16, 32, 32), scale=1.5)["striatum"]
    rest_of_brain = _brain_mask((16, 32, 32)) & ~near
    striatal, background = sal[:, striatum].mean(), sal[:, rest_of_brain].mean()
    assert striatal > 1.5 * background, (striatal, background)


def test_plain_gradcam_is_coarse_but_inside_the_head(model_and_data):
    clf, test = model_and_data
    sal, _ = saliency(clf, test.X, method="gradcam", layer="layers.0")
    striatum = region_masks((16, 32, 32))["striatum"]
    outside = ~_brain_mask((16, 32, 32))
    assert sal[:, striatum].mean() > 1.5 * sal[:, outside].mean()


def test_target_and_pipeline(model_and_data, small_phantoms):
    clf, test = model_and_data
    a, _ = saliency(clf, test.X[:2], target=1)
    b, _ = saliency(clf, test.X[:2], target=4)
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="not in classes_"):
        saliency(clf, test.X[:1], target=2)
    pipe = make_default_pipeline(
        (8, 16, 16), max_epochs=1, batch_size=4, module__width=2, random_state=0
    )
    pipe.fit(small_phantoms.X, small_phantoms.y)
    sal, Xt = saliency(pipe, small_phantoms.X[:3])
    assert sal.shape == (3, 5, 10, 10) and Xt.shape == (3, 1, 5, 10, 10)  # cropped


@pytest.fixture(scope="module")
def block_model_and_data():
    """A model of blocks around the striatum, as the default pipeline's crop makes."""
    kw = dict(
        shape=(16, 32, 32),
        counts=200.0,
        between_patient_sd=0.05,
        fov_centre=(-0.1, 0.0, 0.0),
        fov_extent=0.5,
    )
    train = make_spect_phantoms((12, 0, 0, 12), random_state=1, **kw)
    clf = Spect3DClassifier(
        max_epochs=20, lr=1e-2, module__width=8, augment=False, random_state=1
    ).fit(train.X, train.y)
    test = make_spect_phantoms((4, 0, 0, 4), random_state=2, return_masks=True, **kw)
    return clf, test


def test_integrated_gradients_put_most_mass_on_the_striatum(block_model_and_data):
    clf, test = block_model_and_data
    mask = test.striatum_mask  # ~2.5 % of the block
    shares = {
        m: saliency_share(saliency(clf, test.X, method=m)[0], mask)
        for m in ("integrated", "guided", "gradient")
    }
    healthy = test.y == 1
    # where there is uptake to explain, most of the map is on the striatum...
    assert shares["integrated"][healthy].min() > 0.4, shares
    assert shares["integrated"][healthy].mean() > 3 * shares["guided"][healthy].mean()
    assert shares["integrated"][healthy].mean() > 3 * shares["gradient"][healthy].mean()
    # ...and the raw gradients spread theirs (the artefact integrated removes)
    assert shares["guided"].max() < 0.2, shares


def test_integrated_gradients_depend_on_steps_and_validate(model_and_data):
    clf, test = model_and_data
    a, _ = saliency(clf, test.X[:2], steps=1)
    b, _ = saliency(clf, test.X[:2], steps=8)
    assert a.shape == b.shape and not np.allclose(a, b)
    with pytest.raises(ValueError, match="steps"):
        saliency(clf, test.X[:1], steps=0)
    with pytest.raises(ValueError, match="method must be one of"):
        saliency(clf, test.X[:1], method="smoothgrad")


def test_integrated_gradients_are_median_filtered(model_and_data, monkeypatch):
    from scipy.ndimage import median_filter

    import spectclf.explain

    clf, test = model_and_data
    maps, _ = saliency(clf, test.X[:4], method="integrated")
    # the same maps without the filter: the positive attributions, scaled to max 1
    monkeypatch.setattr(spectclf.explain, "median_filter", lambda a, **kw: a)
    raw, _ = saliency(clf, test.X[:4], method="integrated")
    # a 3x3x3 median per volume (edges repeated): lone hot voxels of max-pooling
    # gradients go, blobs stay
    expected = median_filter(raw, size=(1, 3, 3, 3), mode="nearest")
    expected /= expected.max(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    assert not np.allclose(maps, raw, atol=1e-3)


def test_saliency_share():
    sal = np.zeros((2, 2, 2, 2))
    sal[0, 0] = 1.0  # all mass in the first slab
    sal[1] = 1.0  # even spread
    mask = np.zeros((2, 2, 2), bool)
    mask[0] = True
    np.testing.assert_allclose(saliency_share(sal, mask), [1.0, 0.5])
    assert saliency_share(np.zeros((1, 2, 2, 2)), mask)[0] == 0.0


def test_grad_cam_is_a_deprecated_alias_of_saliency(small_phantoms):
    from spectclf import Spect3DClassifier, grad_cam, saliency

    d = small_phantoms
    clf = Spect3DClassifier(max_epochs=1, module__width=4, random_state=0)
    clf.fit(d.X[:8], d.y[:8])
    with pytest.warns(FutureWarning, match="renamed spectclf.saliency"):
        old, _ = grad_cam(clf, d.X[:2], method="gradcam")
    new, _ = saliency(clf, d.X[:2], method="gradcam")
    np.testing.assert_array_equal(old, new)
