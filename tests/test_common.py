"""scikit-learn's estimator checks over every estimator spectclf exports."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from spectclf import Spect3DClassifier

# Small, fast settings; augmentation off because sklearn's checks feed 2-D tabular
# data, read as (n, 1, 1, 1, f) "volumes" whose left-right flip would scramble
# features.
ESTIMATORS = [
    Spect3DClassifier(
        max_epochs=8,
        lr=0.01,
        batch_size=16,
        augment=False,
        module__width=4,
        random_state=0,
    ),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
