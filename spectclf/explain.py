"""3-D saliency: which voxels drove a prediction.

The default, integrated gradients (Sundararajan et al., 2017) from a uniform
brain-level baseline, credits each voxel with how much its deviation from the brain's
background level raised the class score: on phantoms most of it falls on the
striatum. Grad-CAM (Selvaraju et al., 2017) weights the last convolutional feature
maps by the mean gradient of the class score and keeps the positive part (here in
3-D, upsampled trilinearly); it and the raw input gradient are kept as options.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import median_filter

from spectclf.anatomy import locate_striatum
from spectclf.patient_groups import final_estimator

__all__ = ["grad_cam", "saliency", "saliency_share", "split_pipeline"]

METHODS = ("integrated", "guided", "gradcam", "gradient")


def split_pipeline(estimator, X):
    """The final classifier of ``estimator`` and ``X`` run through the steps before it.

    Samplers (steps with ``fit_resample``) and ``"passthrough"`` steps are skipped, as
    at predict time; an estimator that is not a pipeline is returned with ``X``
    unchanged. Used to score the classifier on transformed volumes directly (saliency,
    mirrored test-time inputs).

    Parameters
    ----------
    estimator : estimator
        A fitted pipeline, or a fitted classifier.
    X : array-like of shape (n_patients, C, D, H, W)
        Volumes as the pipeline takes them.

    Returns
    -------
    classifier : estimator
        The pipeline's final estimator.
    X_transformed : ndarray
        ``X`` after every transformer before the classifier.
    """
    if not hasattr(estimator, "steps"):
        return estimator, X
    for _, step in estimator.steps[:-1]:
        if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
            continue
        X = step.transform(X)
    return final_estimator(estimator), X


def _last_conv(module: torch.nn.Module) -> torch.nn.Module:
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv3d)]
    if not convs:
        raise ValueError("saliency needs a network with 3-D convolutions.")
    return convs[-1]


def _activations_and_logits(module, x, hooked):
    """Feature map and logits of one forward pass, on the same graph."""
    if hooked is None:  # the networks' contract: forward == classify(features, x)
        acts = module.features(x)
        takes_input = len(inspect.signature(module.classify).parameters) > 1
        return acts, module.classify(acts, x) if takes_input else module.classify(acts)
    store = {}
    handle = hooked.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        logits = module(x)
    finally:
        handle.remove()
    return store["a"], logits


def _smooth(vol: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, D, H, W)``."""
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=vol.dtype, device=vol.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    out = vol[:, None]
    for dim in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + dim] = len(k)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - dim)] = pad[2 * (2 - dim) + 1] = radius
        out = F.conv3d(F.pad(out, pad, mode="replicate"), k.view(shape))
    return out[:, 0]


def _integrated_gradients(module, x, target, steps: int) -> torch.Tensor:
    """Positive integrated gradients ``(N, D, H, W)`` from a uniform baseline at each
    volume's non-specific brain level, midpoint rule."""
    levels = [
        locate_striatum(v.mean(dim=0).cpu().numpy()).brain_level for v in x.detach()
    ]
    baseline = torch.tensor(levels, dtype=x.dtype, device=x.device)
    baseline = baseline.view(-1, *[1] * (x.dim() - 1))
    total = torch.zeros_like(x)
    for alpha in (torch.arange(steps, dtype=x.dtype) + 0.5) / steps:
        xa = (baseline + alpha * (x - baseline)).requires_grad_(True)
        with torch.enable_grad():
            score = module(xa).gather(1, target[:, None]).sum()
            (grad,) = torch.autograd.grad(score, xa)
        total += grad.detach()
    attribution = (total / steps * (x - baseline)).sum(dim=1)
    # a 3x3x3 median removes the isolated hot voxels of max-pooling gradients
    smooth = median_filter(
        attribution.clamp_min(0).cpu().numpy(), size=(1, 3, 3, 3), mode="nearest"
    )
    return torch.from_numpy(smooth).to(x.device)


def _gradient_map(module, x, target, hooked, method: str) -> torch.Tensor:
    """Grad-CAM, input-gradient or guided map ``(N, D, H, W)`` of one batch."""
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        acts, logits = _activations_and_logits(module, x, hooked)
        score = logits.gather(1, target[:, None]).sum()
        grads, x_grad = torch.autograd.grad(score, (acts, x))
    weights = grads.mean(dim=(2, 3, 4), keepdim=True)
    cam = F.relu((weights * acts).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[2:], mode="trilinear", align_corners=False)
    cam = cam[:, 0].detach()
    if method == "gradcam":
        return cam
    grad = _smooth(x_grad.detach().abs().amax(dim=1))
    return grad if method == "gradient" else cam * grad


def saliency_share(saliency, mask) -> np.ndarray:
    """Share of each saliency volume's mass that lies inside ``mask``.

    Parameters
    ----------
    saliency : array-like of shape (n, D, H, W)
        Non-negative maps, e.g. from :func:`saliency`.
    mask : array-like of bool, shape (n, D, H, W) or (D, H, W)
        The region (e.g. the striatum) in the same voxels.

    Returns
    -------
    share : ndarray of shape (n,)
        In [0, 1]; ``mask.mean()`` is what a map spread evenly would get.
    """
    sal = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), sal.shape)
    total = sal.reshape(len(sal), -1).sum(axis=1)
    inside = np.where(mask, sal, 0.0).reshape(len(sal), -1).sum(axis=1)
    return inside / np.where(total > 0, total, 1.0)


def saliency(
    estimator,
    X,
    *,
    target=None,
    method: str = "integrated",
    layer: str | None = None,
    batch_size: int = 8,
    steps: int = 16,
):
    """Saliency volumes for a fitted ``Spect3DClassifier`` (or a pipeline ending in
    one): integrated gradients by default, Grad-CAM and input gradients on request.

    Parameters
    ----------
    estimator : Spect3DClassifier or pipeline
        Fitted. In a pipeline, ``X`` first passes through its transformers (samplers
        are skipped), and saliency is returned in the classifier's input space.
    X : array-like of shape (n, D, H, W) or (n, C, D, H, W)
    target : None, label or array-like of labels, default=None
        Class to explain per volume; None explains the predicted class.
    method : {"integrated", "guided", "gradcam", "gradient"}, default="integrated"
        ``"integrated"``: integrated gradients of the class score along the straight
        path from a uniform volume at the input's non-specific brain level
        (:func:`spectclf.anatomy.locate_striatum`) to the input, ``steps`` points;
        the positive part (voxels whose deviation from background *raised* the
        score), then a 3x3x3 median filter that removes isolated hot voxels.
        ``"gradcam"``: plain Grad-CAM, as coarse as the explained layer (1/16 of
        the input for ``ResNet3D``'s last stage);
        ``"gradient"``: the magnitude of the input gradient, smoothed by a 1-voxel
        Gaussian; ``"guided"``: Grad-CAM times the gradient (Guided Grad-CAM). Raw
        gradients of ``ResNet3D`` peak on single voxels where the max half of its
        average+max pooling routes them, often far from the striatum; integrated
        gradients do not. On
        phantoms (``benchmarks/saliency.py``) ``"integrated"`` puts 54-67 % of its
        mass on the striatum (5-8 % of the cropped block) and the others 9-23 %;
        on stage-4 scans, with little uptake left, much less.
    layer : str, default=None
        Name of the network submodule whose output is explained (as in
        ``module_.named_modules()``, e.g. ``"layers.2"`` for the third stage of
        ``ResNet3D``). None takes the network's ``features()`` map (the networks'
        contract, see :mod:`spectclf.nets`), or the last ``Conv3d`` of a network
        without it: most class-specific, but coarsest. Used by ``"gradcam"`` and
        ``"guided"`` only.
    batch_size : int, default=8
    steps : int, default=16
        Path points of ``"integrated"`` (cost: ``steps`` forward and backward
        passes per volume).

    Returns
    -------
    saliency : ndarray of shape (n, D', H', W')
        Non-negative, scaled to a maximum of 1 per volume; ``(D', H', W')`` is the
        classifier's input size.
    X_used : ndarray of shape (n, C, D', H', W')
        The volumes the classifier saw (for overlays).

    References
    ----------
    M. Sundararajan, A. Taly and Q. Yan, "Axiomatic attribution for deep networks",
    ICML 2017.

    R. R. Selvaraju et al., "Grad-CAM: Visual explanations from deep networks via
    gradient-based localization", ICCV 2017.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    clf, Xt = split_pipeline(estimator, X)
    if not hasattr(clf, "check_volumes") or not hasattr(clf, "module_"):
        raise ValueError(
            f"saliency needs a Spect3DClassifier (or a pipeline ending in one), got "
            f"{type(clf).__name__}."
        )
    Xt = clf.check_volumes(Xt)
    if target is None:
        idx = np.argmax(clf.predict_proba(Xt), axis=1)
    else:
        labels = np.broadcast_to(np.asarray(target), (len(Xt),))
        unknown = set(labels.tolist()) - set(clf.classes_.tolist())
        if unknown:
            raise ValueError(
                f"target {sorted(unknown)} not in classes_ {clf.classes_.tolist()}"
            )
        idx = np.searchsorted(clf.classes_, labels)
    module = clf.module_
    device = next(module.parameters()).device
    contract = all(callable(getattr(module, m, None)) for m in ("features", "classify"))
    if layer is not None:
        named = dict(module.named_modules())
        if layer not in named:
            raise ValueError(
                f"layer {layer!r} not in the network; choose one of "
                f"{[n for n in named if n][:20]}..."
            )
        hooked = named[layer]
    else:
        hooked = None if contract else _last_conv(module)
    was_training = module.training
    module.eval()
    out = []
    try:
        for start in range(0, len(Xt), batch_size):
            x = torch.from_numpy(Xt[start : start + batch_size]).to(device)
            t = torch.as_tensor(idx[start : start + batch_size], device=device)
            if method == "integrated":
                cam = _integrated_gradients(module, x, t, int(steps))
            else:
                cam = _gradient_map(module, x, t, hooked, method)
            peak = cam.flatten(1).max(1).values.clamp_min(1e-12)
            out.append((cam / peak[:, None, None, None]).cpu().numpy())
    finally:
        module.train(was_training)
    return np.concatenate(out).astype(np.float32), Xt


def grad_cam(estimator, X, **kwargs):
    """Deprecated alias of :func:`saliency` (which computes integrated gradients by
    default, Grad-CAM only with ``method="gradcam"``); removed in 0.4."""
    import warnings

    warnings.warn(
        "spectclf.grad_cam is renamed spectclf.saliency (it computes integrated "
        "gradients by default; Grad-CAM with method='gradcam'); grad_cam will be "
        "removed in spectclf 0.4.",
        FutureWarning,
        stacklevel=2,
    )
    return saliency(estimator, X, **kwargs)
