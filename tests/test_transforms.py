"""Volume transformers and augmentation."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline

from spectclf import (
    CenterCrop,
    ColormapToIntensity,
    IntensityNormalizer,
    ToGrayscale,
    VolumeResizer,
    make_spect_phantoms,
)
from spectclf.augment import VolumeAugmenter
from spectclf.regions import region_masks


def test_colormap_to_intensity_inverts_render():
    values = np.random.default_rng(0).random((2, 1, 3, 4, 5))
    rgb = matplotlib.colormaps["hot"](values[:, 0])[..., :3]
    X = np.moveaxis(rgb, -1, 1)
    out = ColormapToIntensity("hot").fit_transform(X)
    assert out.shape == (2, 1, 3, 4, 5)
    assert np.abs(out - values).max() <= 1 / 255 + 1e-6
    with pytest.raises(ValueError, match="C=3"):
        ColormapToIntensity().transform(values)


def test_grayscale():
    X = np.zeros((1, 3, 2, 2, 2), np.float32)
    X[:, 1] = 1.0
    np.testing.assert_allclose(ToGrayscale().transform(X), 0.587)
    assert ToGrayscale().transform(X[:, :1]).shape == (1, 1, 2, 2, 2)


def test_resizer_and_crop():
    X = np.random.default_rng(0).random((3, 1, 10, 20, 20)).astype(np.float32)
    out = VolumeResizer((5, 10, 10)).transform(X)
    assert out.shape == (3, 1, 5, 10, 10) and out.dtype == np.float32
    # a constant volume stays constant under trilinear resampling
    np.testing.assert_allclose(
        VolumeResizer((7, 9, 11)).transform(np.ones((1, 6, 6, 6))), 1.0, rtol=1e-6
    )
    crop = CenterCrop((4, 10, 10)).transform(X)
    np.testing.assert_array_equal(crop, X[:, :, 3:7, 5:15, 5:15])
    with pytest.raises(ValueError, match="larger"):
        CenterCrop((20, 5, 5)).transform(X)
    with pytest.raises(ValueError, match="three positive ints"):
        VolumeResizer((4, 4)).fit(X)


@pytest.mark.parametrize("method", ["minmax", "zscore", "percentile", "reference"])
def test_intensity_normalizer(method, small_phantoms):
    X = small_phantoms.X * 7.0
    out = IntensityNormalizer(method=method).fit_transform(X)
    assert out.shape == X.shape and out.dtype == np.float32
    flat = out.reshape(len(out), -1)
    if method == "minmax":
        np.testing.assert_allclose(flat.min(1), 0, atol=1e-6)
        np.testing.assert_allclose(flat.max(1), 1, atol=1e-6)
    elif method == "zscore":
        np.testing.assert_allclose(flat.mean(1), 0, atol=1e-4)
    elif method == "reference":
        # the occipital cortex carries non-specific uptake only: at a realistic
        # resolution it lands at 1 (the 12 x 24 x 24 phantoms blur too much)
        d = make_spect_phantoms((2, 2, 2, 2), shape=(30, 64, 64), random_state=0)
        big = IntensityNormalizer(method=method).fit_transform(d.X * 7.0)
        ref = region_masks(d.X.shape[2:])["reference"]
        np.testing.assert_allclose(big[:, 0][:, ref].mean(1), 1.0, rtol=0.05)
    # scale invariance: multiplying the input does not change the output
    np.testing.assert_allclose(
        IntensityNormalizer(method=method).fit_transform(X / 7),
        out,
        rtol=1e-4,
        atol=1e-5,
    )


def test_normalizer_errors():
    with pytest.raises(ValueError, match="method"):
        IntensityNormalizer(method="max").fit(np.ones((1, 8, 16, 16)))
    norm = IntensityNormalizer().fit(np.ones((1, 8, 16, 16)))
    with pytest.raises(ValueError, match="fitted on"):
        norm.transform(np.ones((1, 9, 16, 16)))


def test_transformers_chain_in_pipeline(slice_root):
    from spectclf import load_slice_folders

    data = load_slice_folders(slice_root, color="rgb")
    pipe = make_pipeline(
        ColormapToIntensity("hot"),
        VolumeResizer((8, 16, 16)),
        IntensityNormalizer("reference"),
    )
    out = pipe.fit_transform(data.X)
    assert out.shape == (12, 1, 8, 16, 16)


def test_augmenter_seeded_and_shape_preserving():
    x = torch.rand(4, 1, 8, 16, 16)
    aug = VolumeAugmenter()
    a = aug(x, generator=torch.Generator().manual_seed(1))
    b = aug(x, generator=torch.Generator().manual_seed(1))
    c = aug(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    off = VolumeAugmenter(flip=0, rotate=0, shift=0, scale=0, intensity=0, noise=0)
    torch.testing.assert_close(off(x, generator=torch.Generator()), x)
    # rotation is small: most of the volume keeps its value
    small = VolumeAugmenter(flip=0, rotate=3, shift=0, scale=0, intensity=0, noise=0)
    smooth = torch.nn.functional.avg_pool3d(x, 1)
    assert (small(smooth, torch.Generator()) - smooth).abs().mean() < 0.3
    with pytest.raises(ValueError, match="rotate"):
        VolumeAugmenter(rotate=-1)(x, torch.Generator())


def test_augmenter_flip_mirrors_left_right():
    x = torch.arange(8.0).reshape(1, 1, 1, 2, 4)
    flip = VolumeAugmenter(flip=1, rotate=0, shift=0, scale=0, intensity=0, noise=0)
    torch.testing.assert_close(flip(x, torch.Generator()), x.flip(-1))
