"""The networks: the striatal-ratio head and the explain contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spectclf import (
    SBRFeatures,
    Spect3DClassifier,
    make_default_pipeline,
    make_spect_phantoms,
    saliency,
)
from spectclf.anatomy import block_region_masks
from spectclf.nets import ResNet3D, SeedCNN, StriatalRatios


@pytest.fixture(scope="module")
def blocks():
    """Phantoms of every stage through the default pipeline's resize, normalise and
    striatum crop, with the SBR baseline's features of the same volumes."""
    d = make_spect_phantoms((6, 6, 6, 6), shape=(30, 64, 64), random_state=3)
    pipe = make_default_pipeline()
    X = d.X
    for _, step in pipe.steps[:3]:
        X = step.fit_transform(X)
    return X, d.y, SBRFeatures().fit_transform(d.X)


def test_ratios_are_the_sbr_baseline_s(blocks):
    X, y, sbr = blocks
    ratios = StriatalRatios()(torch.as_tensor(X)).numpy()
    assert ratios.shape == (len(y), StriatalRatios.n_ratios)
    for k in range(ratios.shape[1]):  # the same eight regions, in the same order
        assert np.corrcoef(ratios[:, k], sbr[:, k])[0, 1] > 0.97
    putamen = ratios[:, 2:4].mean(axis=1)
    means = [putamen[y == s].mean() for s in (1, 2, 3, 4)]
    assert means == sorted(means, reverse=True)


def test_small_blocks_keep_every_region():
    # a hot striatum drawn finely and averaged down to a 4x4x4 block (the smallest
    # crop of make_default_pipeline), where whole-voxel masks lose the putamina
    fine = block_region_masks((40, 40, 40))["striatum"]
    x = 1.0 + 2.0 * fine.reshape(4, 10, 4, 10, 4, 10).mean(axis=(1, 3, 5))
    r = StriatalRatios()(torch.as_tensor(x, dtype=torch.float32)[None, None])
    assert torch.isfinite(r).all() and (r > 0.3).all()
    # ratios: the same for any intensity scale
    scaled = torch.as_tensor(3.0 * x, dtype=torch.float32)[None, None]
    assert torch.allclose(StriatalRatios()(scaled), r, atol=1e-5)


def test_head_reads_the_ratios():
    torch.manual_seed(0)
    net = ResNet3D(width=2, striatal_ratios=True).eval()
    x = torch.rand(4, 1, 10, 20, 20) + 1.0
    f = net.features(x)
    assert torch.allclose(net(x), net.classify(f, x))
    with pytest.raises(ValueError, match="needs the input x"):
        net.classify(f)
    # the head's last columns are the normalised ratios' weights
    n = StriatalRatios.n_ratios
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.weight[:, -n:] = torch.randn(4, n)
    expected = net.head(
        torch.cat(
            [torch.zeros(4, net.head.in_features - n), net.ratio_norm(net.ratios(x))], 1
        )
    )
    assert torch.allclose(net(x), expected, atol=1e-6)
    hotter = x.clone()
    hotter[..., 3:7, 7:13, 5:15] *= 2
    assert not torch.allclose(net(x), net(hotter))


def test_ratio_head_is_opt_in_for_the_network():
    plain = ResNet3D(width=2)
    assert plain.ratios is None
    assert "ratio_norm.running_mean" not in plain.state_dict()
    assert (
        "ratio_norm.running_mean"
        in ResNet3D(width=2, striatal_ratios=True).state_dict()
    )
    x = torch.rand(2, 1, 8, 16, 16)
    seed = SeedCNN(input_shape=(1, 8, 16, 16)).eval()
    assert torch.allclose(seed(x), seed.classify(seed.features(x), x))


def test_the_ratio_head_is_opt_in_and_reaches_the_network(small_phantoms):
    def ratios(pipe):
        return pipe.named_steps["clf"].get_params().get("module__striatal_ratios")

    assert ratios(make_default_pipeline()) is None  # off: see benchmarks/README.md
    for crop in (None, 0.8):  # no striatum block to measure the regions in
        with pytest.raises(ValueError, match="needs crop='striatum'"):
            make_default_pipeline(crop=crop, module__striatal_ratios=True)
    d = small_phantoms
    # switched on, or the block changed, after the pipeline was built (as a grid
    # search does): fit refuses before training
    bypasses = [
        make_default_pipeline(crop=None).set_params(clf__module__striatal_ratios=True),
        make_default_pipeline(module__striatal_ratios=True).set_params(crop__size=0.7),
    ]
    for pipe in bypasses:
        with pytest.raises(ValueError, match="needs crop='striatum'"):
            pipe.fit(d.X, d.y, groups=d.groups)
        assert not hasattr(pipe.named_steps["clf"], "module_")
    pipe = make_default_pipeline(
        (8, 16, 16),
        max_epochs=1,
        module__width=2,
        module__striatal_ratios=True,
        random_state=0,
        verbose=0,
    ).fit(d.X, d.y, groups=d.groups)
    assert isinstance(pipe.named_steps["clf"].module_.ratios, StriatalRatios)
    # explained through the contract: the ratios are read from the same input
    sal, X_used = saliency(pipe, d.X[:2], method="gradcam")
    assert sal.shape == X_used.shape[:1] + X_used.shape[2:] and np.isfinite(sal).all()


class OneArgumentHead(nn.Module):
    """A user's network whose classify takes the feature map alone."""

    def __init__(self, in_channels=1, n_classes=4):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, 4, 3, padding=1)
        self.head = nn.Linear(4, n_classes)

    def features(self, x):
        return torch.relu(self.conv(x))

    def classify(self, f):
        return self.head(f.mean(dim=(2, 3, 4)))

    def forward(self, x):
        return self.classify(self.features(x))


def test_one_argument_classify_is_still_explained(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(
        module=OneArgumentHead, max_epochs=1, random_state=0, verbose=0
    ).fit(d.X, d.y)
    sal, _ = saliency(clf, d.X[:2], method="gradcam")
    assert sal.shape == (2, *d.X.shape[-3:]) and np.isfinite(sal).all()
