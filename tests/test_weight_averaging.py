"""``lr_schedule="swa"``: the schedule, the averaged weights and their BatchNorm
statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from spectclf import Spect3DClassifier
from spectclf._skorch_net import recompute_batchnorm, swa_lr_factor
from spectclf.classifier import SWA_LR_FACTOR

FAST = dict(max_epochs=4, batch_size=4, module__width=4, random_state=0, verbose=0)


class Snapshots(Callback):
    """Keeps a copy of the weights at the end of every epoch."""

    def on_train_begin(self, net, **kwargs):
        self.weights_ = []

    def on_epoch_end(self, net, **kwargs):
        self.weights_.append([p.detach().clone() for p in net.module_.parameters()])


def _norm_stats(module) -> list[torch.Tensor]:
    return [
        t.clone()
        for m in module.modules()
        if isinstance(m, torch.nn.BatchNorm3d)
        for t in (m.running_mean, m.running_var)
    ]


def test_schedule_anneals_to_the_floor_then_holds():
    factors = [swa_lr_factor(e, start=6, floor=0.25) for e in range(10)]
    assert factors[0] == 1.0
    assert np.all(np.diff(factors[:7]) < 0)  # a cosine down to the floor...
    assert factors[6:] == [0.25] * 4  # ...held there
    # the learning rates the net actually used
    clf = Spect3DClassifier(**{**FAST, "max_epochs": 8}, lr=0.01, lr_schedule="swa")
    X = np.random.default_rng(0).normal(size=(12, 1, 6, 8, 8)).astype(np.float32)
    clf.fit(X, np.repeat([0, 1], 6), groups=np.arange(12))
    lrs = clf.history_[:, "event_lr"]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[-2:] == pytest.approx([0.01 * SWA_LR_FACTOR] * 2)


def test_network_is_the_mean_of_the_last_epochs(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(
        **{**FAST, "max_epochs": 8}, lr_schedule="swa", callbacks=[Snapshots()]
    )
    clf.fit(d.X, d.y, groups=d.groups)
    snaps = dict(clf.net_.callbacks_)["Snapshots"].weights_
    assert len(snaps) == 8
    # 8 epochs: the first 6 annealed, the last 2 averaged
    for p, *last in zip(clf.module_.parameters(), snaps[6], snaps[7], strict=True):
        torch.testing.assert_close(p.detach(), (last[0] + last[1]) / 2)
    # and not simply the last epoch's weights
    assert any(
        not torch.allclose(p.detach(), s)
        for p, s in zip(clf.module_.parameters(), snaps[7], strict=True)
    )


def test_batchnorm_statistics_belong_to_the_average(small_phantoms):
    d = small_phantoms
    clf = Spect3DClassifier(**FAST, lr_schedule="swa", valid_size=0.25)
    clf.fit(d.X, d.y, groups=d.groups)
    stats = _norm_stats(clf.module_)
    train = ~np.isin(d.groups, clf.valid_groups_)
    # measured on the training patients (not the held-out ones), unaugmented:
    # measuring again changes nothing...
    recompute_batchnorm(clf.net_, clf.net_.get_dataset(d.X[train]))
    for a, b in zip(stats, _norm_stats(clf.module_), strict=True):
        torch.testing.assert_close(a, b)
    # the first BatchNorm's mean is the mean of its inputs' batch means (every batch
    # counts equally), not a running average that forgets the first batches
    first = next(
        m for m in clf.module_.modules() if isinstance(m, torch.nn.BatchNorm3d)
    )
    means = []
    hook = first.register_forward_hook(
        lambda m, inp, out: means.append(inp[0].mean(dim=(0, 2, 3, 4)))
    )
    clf.module_.eval()
    with torch.no_grad():
        for Xi in torch.as_tensor(d.X[train]).split(FAST["batch_size"]):
            clf.module_(Xi.contiguous(memory_format=torch.channels_last_3d))
    hook.remove()
    torch.testing.assert_close(first.running_mean, torch.stack(means).mean(0))
    # ...while the running statistics of plain training are not those of a pass
    plain = Spect3DClassifier(**FAST, valid_size=0.25).fit(d.X, d.y, groups=d.groups)
    before = _norm_stats(plain.module_)
    recompute_batchnorm(plain.net_, plain.net_.get_dataset(d.X[train]))
    assert any(
        not torch.allclose(a, b)
        for a, b in zip(before, _norm_stats(plain.module_), strict=True)
    )


def test_swa_repeatable_and_refuses_early_stopping(small_phantoms):
    d = small_phantoms
    a = Spect3DClassifier(**FAST, lr_schedule="swa").fit(d.X, d.y, groups=d.groups)
    b = Spect3DClassifier(**FAST, lr_schedule="swa").fit(d.X, d.y, groups=d.groups)
    np.testing.assert_array_equal(a.predict_proba(d.X), b.predict_proba(d.X))
    with pytest.raises(ValueError, match="early_stopping"):
        Spect3DClassifier(**FAST, lr_schedule="swa", early_stopping=True).fit(
            d.X, d.y, groups=d.groups
        )
