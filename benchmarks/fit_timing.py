"""Volumes per second of the fit path, in this process: the seed's plain training
loop, the default network alone and ``Spect3DClassifier.fit``; and the default
pipeline's inference time (used by ``fit_path`` and ``run_benchmarks``)."""

from __future__ import annotations

import time

import numpy as np
import torch

from spectclf import Spect3DClassifier, make_default_pipeline
from spectclf.nets import ResNet3D, SeedCNN


def network_only(X, y, epochs, batch, channels_last=True, seed_cnn=False) -> float:
    """Volumes per second of a plain training loop (the seed's when ``seed_cnn``)."""
    torch.manual_seed(0)
    if seed_cnn:
        net = SeedCNN(in_channels=1, n_classes=4, input_shape=X.shape[2:])
    else:
        net = ResNet3D(in_channels=1, n_classes=4)
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(Xt))
        for i in range(0, len(Xt) - batch + 1, batch):
            xb = Xt[perm[i : i + batch]]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last_3d)
            loss = torch.nn.functional.cross_entropy(net(xb), yt[perm[i : i + batch]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return len(X) * epochs / (time.perf_counter() - start)


def classifier_fit(X, y, epochs, batch, **params) -> float:
    """Volumes per second of ``Spect3DClassifier(**params).fit``."""
    clf = Spect3DClassifier(
        max_epochs=epochs, batch_size=batch, random_state=0, verbose=0, **params
    )
    start = time.perf_counter()
    clf.fit(X, y)
    return len(X) * epochs / (time.perf_counter() - start)


def measure_fit_path(X, y, epochs: int, batch: int) -> dict[str, float]:
    """Volumes per second of the seed's loop (the reference, first), the network
    alone (second), and the default fit with and without augmentation."""
    return {
        "seed's approach (plain loop, its CNN, batch 16)": network_only(
            X, y, epochs, 16, channels_last=False, seed_cnn=True
        ),
        f"network alone (plain loop, ResNet3D, channels-last, fp32, batch {batch})": (
            network_only(X, y, epochs, batch)
        ),
        "Spect3DClassifier().fit (defaults)": classifier_fit(X, y, epochs, batch),
        "Spect3DClassifier(augment=False).fit": classifier_fit(
            X, y, epochs, batch, augment=False
        ),
    }


def inference_ms_per_patient(n: int) -> float:
    """Milliseconds per 30x64x64 patient volume through the whole default pipeline
    (resize, normalise, locate and crop the striatum, network)."""
    rng = np.random.default_rng(1)
    X = rng.random((n, 1, 30, 64, 64), dtype=np.float32)
    y = np.tile(np.arange(4), n // 4).astype(np.int64)
    pipe = make_default_pipeline(max_epochs=1, random_state=0, verbose=0).fit(X, y)
    start = time.perf_counter()
    pipe.predict_proba(X)
    return 1000 * (time.perf_counter() - start) / len(X)
