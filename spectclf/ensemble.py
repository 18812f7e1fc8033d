"""Per-patient uncertainty and the SBR + CNN hybrid, both built on patient-grouped CV.

:class:`StageEnsemble` trains one model per patient-grouped fold; its probabilities
are the members' mean and its uncertainty combines how unsure the mean is with how
much the members disagree. :class:`HybridSBRClassifier` stacks a CNN's out-of-fold
probabilities with the clinical SBR features; the out-of-fold predictions come from
whole held-out patients, so it refuses to stack without patient ids.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from spectclf.model_selection import aligned_proba, out_of_fold
from spectclf.patient_groups import fit_with_groups, require_groups

__all__ = ["HybridSBRClassifier", "StageEnsemble", "UNCERTAINTY_THRESHOLD"]

#: A prediction is flagged for a reader above this uncertainty (``1 - max
#: probability``, plus the members' spread for an ensemble).
UNCERTAINTY_THRESHOLD = 0.5

# what make_partitions takes: a number of folds, or a splitter (PatientPartitions too)
_CV = [Interval(Integral, 2, None, closed="left"), HasMethods(["split"])]


class StageEnsemble(ClassifierMixin, BaseEstimator):
    """One model per patient-grouped fold; mean probabilities and their spread.

    Parameters
    ----------
    estimator : classifier or pipeline
        Cloned for each member.
    cv : int, default=5
        Members = folds; member ``k`` is trained on every fold but ``k``.
    uncertainty_threshold : float, default=0.5
        :meth:`predict_uncertain` flags patients whose uncertainty exceeds it.
    random_state : int or None, default=None
        Seeds the folds.

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted members.
    classes_ : ndarray
    oof_proba_ : ndarray of shape (n_samples, n_classes)
        Out-of-fold probabilities of the training rows (each from the member that
        did not see that patient).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([1, 2], 10); X = rng.normal(size=(20, 3)) + y[:, None]
    >>> ens = StageEnsemble(LogisticRegression(), cv=2, random_state=0)
    >>> ens.fit(X, y, groups=np.arange(20)).predict_uncertainty(X[:2]).shape
    (2,)
    """

    __metadata_request__fit = {"groups": True}

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict_proba"])],
        "cv": _CV,
        "uncertainty_threshold": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator,
        *,
        cv=5,
        uncertainty_threshold=UNCERTAINTY_THRESHOLD,
        random_state=None,
    ):
        self.estimator = estimator
        self.cv = cv
        self.uncertainty_threshold = uncertainty_threshold
        self.random_state = random_state

    @classmethod
    def from_fitted(
        cls, estimators, *, uncertainty_threshold=UNCERTAINTY_THRESHOLD
    ) -> StageEnsemble:
        """An ensemble of already fitted models, e.g. ``evaluate(...,
        return_estimators=True).estimators`` (the CV fold models)."""
        if not estimators:
            raise ValueError("from_fitted needs at least one fitted estimator")
        ens = cls(estimators[0], cv=len(estimators))
        ens.uncertainty_threshold = uncertainty_threshold
        ens.estimators_ = list(estimators)
        ens.classes_ = np.unique(np.concatenate([e.classes_ for e in estimators]))
        return ens

    def fit(self, X, y, groups=None):
        """Fit one member per patient-grouped fold."""
        self._validate_params()
        y = np.asarray(y)
        folds = out_of_fold(
            self.estimator,
            X,
            y,
            require_groups(groups, len(y), "StageEnsemble (its out-of-fold members)"),
            cv=self.cv,
            random_state=self.random_state,
            metrics=[],
            return_estimators=True,
        )
        self.classes_ = np.unique(y)
        self.estimators_ = [f.estimator for f in folds]
        self.oof_proba_ = np.zeros((len(y), len(self.classes_)))
        for f in folds:
            self.oof_proba_[f.test] = f.row_proba
        return self

    def predict_proba_members(self, X) -> np.ndarray:
        """Each member's probabilities: ``(n_members, n_samples, n_classes)``."""
        check_is_fitted(self)
        return np.stack([aligned_proba(e, X, self.classes_) for e in self.estimators_])

    def predict_proba(self, X) -> np.ndarray:
        """The members' mean probabilities."""
        return self.predict_proba_members(X).mean(axis=0)

    def predict(self, X) -> np.ndarray:
        """The stage of highest mean probability."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def predict_spread(self, X) -> np.ndarray:
        """Members' disagreement: the largest per-stage standard deviation (0 when all
        members agree exactly)."""
        return self.predict_proba_members(X).std(axis=0).max(axis=1)

    def predict_uncertainty(self, X) -> np.ndarray:
        """``1 - max(mean probability) + spread``: high when the ensemble is unsure
        of the stage, when its members disagree, or both."""
        members = self.predict_proba_members(X)
        mean = members.mean(axis=0)
        return 1.0 - mean.max(axis=1) + members.std(axis=0).max(axis=1)

    def predict_uncertain(self, X) -> np.ndarray:
        """Whether each patient's prediction should be checked by a reader."""
        return self.predict_uncertainty(X) > self.uncertainty_threshold


class HybridSBRClassifier(ClassifierMixin, BaseEstimator):
    """The CNN's out-of-fold stage probabilities stacked with the SBR features.

    ``fit`` runs a patient-grouped CV of ``cnn`` to get out-of-fold probabilities of
    every training patient, refits ``cnn`` on all of them, and trains a class-balanced
    logistic regression on ``[CNN probabilities, SBR features]``. Stacking on
    in-sample CNN probabilities would teach the combiner to trust an over-fitted CNN,
    so ``fit`` refuses to run without ``groups``.

    Parameters
    ----------
    cnn : classifier or pipeline, default=None
        The image model; None uses :func:`~spectclf.make_default_pipeline`.
    cv : int, default=3
        Inner patient-grouped folds for the out-of-fold probabilities.
    random_state : int or None, default=None

    Attributes
    ----------
    cnn_ : fitted image model
    sbr_ : fitted :class:`~spectclf.SBRFeatures`
    combiner_ : fitted scaler + logistic regression
    classes_ : ndarray
    """

    __metadata_request__fit = {"groups": True}

    _parameter_constraints: dict = {
        "cnn": [HasMethods(["fit", "predict_proba"]), None],
        "cv": _CV,
        "random_state": ["random_state"],
    }

    def __init__(self, cnn=None, *, cv=3, random_state=None):
        self.cnn = cnn
        self.cv = cv
        self.random_state = random_state

    def _features(self, proba, X) -> np.ndarray:
        return np.hstack([proba, self.sbr_.transform(X)])

    def fit(self, X, y, groups=None):
        """Out-of-fold CNN probabilities + SBR features -> logistic regression."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from spectclf.features import SBRFeatures
        from spectclf.pipelines import make_default_pipeline

        self._validate_params()
        y = np.asarray(y)
        groups = require_groups(
            groups, len(y), "HybridSBRClassifier (its out-of-fold CNN probabilities)"
        )
        cnn = self.cnn if self.cnn is not None else make_default_pipeline()
        self.classes_ = np.unique(y)
        oof = np.zeros((len(y), len(self.classes_)))
        for f in out_of_fold(
            cnn, X, y, groups, cv=self.cv, random_state=self.random_state, metrics=[]
        ):
            oof[f.test] = f.row_proba
        self.cnn_ = fit_with_groups(clone(cnn), X, y, groups)
        self.sbr_ = SBRFeatures().fit(X)
        self.combiner_ = make_pipeline(
            StandardScaler(),
            LogisticRegression(
                class_weight="balanced", max_iter=2000, random_state=self.random_state
            ),
        ).fit(self._features(oof, X), y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of the combiner."""
        check_is_fitted(self)
        proba = aligned_proba(self.cnn_, X, self.classes_)
        return self.combiner_.predict_proba(self._features(proba, X))

    def predict(self, X) -> np.ndarray:
        """Most probable stage."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
