"""3-D Grad-CAM: which voxels drove a prediction.

Grad-CAM (Selvaraju et al., 2017) weights the last convolutional feature maps by the
mean gradient of the class score and keeps the positive part; here in 3-D, upsampled
trilinearly to the input volume.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.validation import check_is_fitted

__all__ = ["grad_cam"]


def _split_pipeline(estimator, X):
    """Run X through a pipeline's transformers; return (classifier, X_transformed)."""
    if not hasattr(estimator, "steps"):
        return estimator, X
    for _, step in estimator.steps[:-1]:
        if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
            continue
        X = step.transform(X)
    return estimator.steps[-1][1], X


def _feature_layer(module: torch.nn.Module) -> torch.nn.Module:
    for name in ("layers", "conv"):  # ResNet3D, SeedCNN
        if isinstance(getattr(module, name, None), torch.nn.Module):
            return getattr(module, name)
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv3d)]
    if not convs:
        raise ValueError("grad_cam needs a network with 3-D convolutions.")
    return convs[-1]


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


def grad_cam(
    estimator,
    X,
    *,
    target=None,
    method: str = "guided",
    layer: str | None = None,
    batch_size: int = 8,
):
    """Grad-CAM saliency volumes for a fitted ``Spect3DClassifier`` (or a pipeline
    ending in one).

    Parameters
    ----------
    estimator : Spect3DClassifier or pipeline
        Fitted. In a pipeline, ``X`` first passes through its transformers (samplers
        are skipped), and saliency is returned in the classifier's input space.
    X : array-like of shape (n, D, H, W) or (n, C, D, H, W)
    target : None, label or array-like of labels, default=None
        Class to explain per volume; None explains the predicted class.
    method : {"guided", "gradcam", "gradient"}, default="guided"
        ``"gradcam"``: plain Grad-CAM, as coarse as the explained layer (1/16 of the
        input for ``ResNet3D``'s last stage); ``"gradient"``: the magnitude of the
        input gradient of the class score, smoothed by a 1-voxel Gaussian (sharp but
        noisier); ``"guided"``: their product, in the spirit of Guided Grad-CAM —
        class-specific *and* voxel-sharp. On phantoms, ``"guided"`` and
        ``"gradient"`` put 2-3x more saliency per voxel in the striatum than in the
        rest of the brain, plain Grad-CAM barely more.
    layer : str, default=None
        Name of the network submodule whose output is explained (as in
        ``module_.named_modules()``, e.g. ``"layers.2"`` for the third stage of
        ``ResNet3D``). None takes the last convolutional stage: most class-specific,
        but coarsest (1/16 of the input size for ``ResNet3D``).
    batch_size : int, default=8

    Returns
    -------
    saliency : ndarray of shape (n, D', H', W')
        Non-negative, scaled to a maximum of 1 per volume; ``(D', H', W')`` is the
        classifier's input size.
    X_used : ndarray of shape (n, C, D', H', W')
        The volumes the classifier saw (for overlays).

    References
    ----------
    R. R. Selvaraju et al., "Grad-CAM: Visual explanations from deep networks via
    gradient-based localization", ICCV 2017.
    """
    if method not in ("guided", "gradcam", "gradient"):
        raise ValueError(
            f"method must be 'guided', 'gradcam' or 'gradient', got {method!r}"
        )
    clf, Xt = _split_pipeline(estimator, X)
    check_is_fitted(clf)
    Xt = clf._validate_X(Xt, reset=False)
    clf._check_input_shape(Xt)
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
    if layer is None:
        hooked = _feature_layer(module)
    else:
        named = dict(module.named_modules())
        if layer not in named:
            raise ValueError(
                f"layer {layer!r} not in the network; choose one of "
                f"{[n for n in named if n][:20]}..."
            )
        hooked = named[layer]
    store = {}
    handle = hooked.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    was_training = module.training
    module.eval()
    out = []
    try:
        for start in range(0, len(Xt), batch_size):
            x = torch.from_numpy(Xt[start : start + batch_size]).to(device)
            x.requires_grad_(True)
            with torch.enable_grad():
                logits = module(x)
                acts = store["a"]
                t = torch.as_tensor(idx[start : start + batch_size], device=device)
                score = logits.gather(1, t[:, None]).sum()
                grads, x_grad = torch.autograd.grad(score, (acts, x))
            weights = grads.mean(dim=(2, 3, 4), keepdim=True)
            cam = F.relu((weights * acts).sum(1, keepdim=True))
            cam = F.interpolate(
                cam, size=x.shape[2:], mode="trilinear", align_corners=False
            )[:, 0].detach()
            if method != "gradcam":
                grad = _smooth(x_grad.detach().abs().amax(dim=1))
                cam = grad if method == "gradient" else cam * grad
            peak = cam.flatten(1).max(1).values.clamp_min(1e-12)
            out.append((cam / peak[:, None, None, None]).cpu().numpy())
    finally:
        handle.remove()
        module.train(was_training)
    return np.concatenate(out).astype(np.float32), Xt
