"""Per-volume preprocessing computed once and reused: same numbers as without."""

from __future__ import annotations

import numpy as np

from spectclf import IntensityNormalizer, VolumeResizer, make_default_pipeline
from spectclf.caching import no_per_volume_cache, per_volume_cache
from spectclf.model_selection import out_of_fold


def test_cached_cross_validation_predicts_exactly_as_uncached(
    small_phantoms, monkeypatch
):
    d = small_phantoms
    pipe = make_default_pipeline(
        (8, 16, 16), max_epochs=2, batch_size=4, random_state=0, verbose=0
    )
    resized = []
    original = VolumeResizer._transform

    def counting(self, X):
        resized.append(len(X))
        return original(self, X)

    monkeypatch.setattr(VolumeResizer, "_transform", counting)
    with no_per_volume_cache():
        plain = out_of_fold(pipe, d.X, d.y, d.groups, cv=3, n_repeats=2, random_state=0)
    # 6 folds: each resizes its 8 training and 4 test volumes
    assert sum(resized) == 6 * 12
    resized.clear()
    cached = out_of_fold(pipe, d.X, d.y, d.groups, cv=3, n_repeats=2, random_state=0)
    assert sum(resized) == 12  # every volume once
    assert len(plain) == len(cached) == 6
    for a, b in zip(plain, cached, strict=True):
        np.testing.assert_array_equal(a.row_proba, b.row_proba)


def test_each_volume_is_transformed_once_per_parameter_set(small_phantoms):
    X = small_phantoms.X
    rows = []

    class Counting(VolumeResizer):
        def _transform(self, X):
            rows.append(len(X))
            return super()._transform(X)

    with per_volume_cache():
        first = Counting((6, 12, 12)).fit_transform(X[:8])
        again = Counting((6, 12, 12)).fit_transform(X[4:])  # 4 seen, 4 new
        other = Counting((4, 8, 8)).fit_transform(X[:2])  # other parameters
    assert rows == [8, 4, 2]
    np.testing.assert_array_equal(first[4:], again[:4])
    assert other.shape[2:] == (4, 8, 8)
    # outside the block nothing is kept
    Counting((6, 12, 12)).fit_transform(X[:8])
    assert rows[-1] == 8


def test_normaliser_cache_tells_its_settings_apart(small_phantoms):
    X = small_phantoms.X[:4]
    with per_volume_cache():
        ref = IntensityNormalizer().fit_transform(X)
        minmax = IntensityNormalizer(method="minmax").fit_transform(X)
    np.testing.assert_allclose(minmax.max(axis=(1, 2, 3, 4)), 1.0)
    assert not np.allclose(ref, minmax)
    np.testing.assert_array_equal(ref, IntensityNormalizer().fit_transform(X))
