"""Reuse of per-volume preprocessing across folds, repeats and tuning trials.

The default pipeline's preprocessing (resize, reference normalisation, striatum
crop) turns each volume into its output on its own: it learns nothing from the
training patients. Inside :func:`per_volume_cache` — which :func:`~spectclf.tune`
and :func:`~spectclf.model_selection.out_of_fold` open around their work — such a
step computes each volume once per parameter set and hands the stored result back
in every later fold, repeat and trial. A step that learns from its training data is
never cached: only the transformers of :mod:`spectclf.transforms` opt in, through
:func:`cached_per_volume`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import joblib
import numpy as np

__all__ = ["per_volume_cache", "no_per_volume_cache", "cached_per_volume"]

#: the open cache, None (none open) or False (caching switched off)
_CACHE: ContextVar[dict | bool | None] = ContextVar(
    "spectclf_per_volume_cache", default=None
)


@contextmanager
def per_volume_cache() -> Iterator[dict]:
    """Cache per-volume transforms while the block runs (nested blocks share the
    outermost cache, which is emptied when it closes).

    Examples
    --------
    >>> import numpy as np
    >>> from spectclf import VolumeResizer
    >>> X = np.random.default_rng(0).random((4, 1, 8, 8, 8), dtype=np.float32)
    >>> with per_volume_cache() as cache:
    ...     a = VolumeResizer((4, 4, 4)).fit_transform(X)
    ...     b = VolumeResizer((4, 4, 4)).fit_transform(X[:2])  # read from the cache
    ...     len(cache)
    4
    >>> bool((a[:2] == b).all())
    True
    """
    outer = _CACHE.get()
    if outer is not None:
        yield outer if outer is not False else {}
        return
    cache: dict = {}
    token = _CACHE.set(cache)
    try:
        yield cache
    finally:
        _CACHE.reset(token)
        cache.clear()


@contextmanager
def no_per_volume_cache() -> Iterator[None]:
    """Compute every per-volume transform afresh inside the block, even where a
    cache would be opened (to measure what the cache saves, or to check it)."""
    token = _CACHE.set(False)
    try:
        yield
    finally:
        _CACHE.reset(token)


def cached_per_volume(
    step, X: np.ndarray, transform: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``transform(X)``, reusing stored outputs of ``step`` for volumes seen before.

    ``transform`` must compute each row of ``X`` from that row and ``step``'s
    parameters alone. Outside :func:`per_volume_cache` it is simply called.
    """
    cache = _CACHE.get()
    if not isinstance(cache, dict) or len(X) == 0:
        return transform(X)
    head = (type(step).__qualname__, joblib.hash(step.get_params(deep=False)))
    keys = [
        (*head, row.shape, str(row.dtype), hashlib.sha1(row.tobytes()).hexdigest())
        for row in X
    ]
    missing = [i for i, k in enumerate(keys) if k not in cache]
    if missing:
        out = transform(X[missing])
        for i, row in zip(missing, out, strict=True):
            cache[keys[i]] = row
    return np.stack([cache[k] for k in keys])
