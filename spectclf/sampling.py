"""imbalanced-learn samplers that accept volume arrays ``(n, C, D, H, W)``.

imbalanced-learn validates ``X`` as a 2-D matrix; these samplers keep its
``sampling_strategy`` semantics but accept N-d arrays. Each records ``sample_indices_``
(the source row of every output row), so ``groups`` can follow the resampling:
:class:`PatientPipeline` does that for you.
"""

from __future__ import annotations

import numpy as np
import torch
from imblearn.over_sampling.base import BaseOverSampler
from imblearn.pipeline import Pipeline
from imblearn.under_sampling.base import BaseUnderSampler
from imblearn.utils import check_target_type
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_memory, validate_data

from spectclf.anatomy import BLOCK_SIZE
from spectclf.arrays import as_volumes
from spectclf.augment import VolumeAugmenter
from spectclf.patient_groups import accepts_groups, fit_with_groups
from spectclf.transforms import CenterCrop, StriatumCrop

__all__ = [
    "VolumeRandomOverSampler",
    "VolumeRandomUnderSampler",
    "AugmentingOverSampler",
    "PatientPipeline",
]


class _VolumeSamplerMixin:
    """N-d input validation and group resampling shared by the samplers."""

    def _check_X_y(self, X, y, accept_sparse=None):
        y, binarize_y = check_target_type(y, indicate_one_vs_all=True)
        X, y = validate_data(
            self,
            X=X,
            y=y,
            reset=True,
            accept_sparse=False,
            allow_nd=True,
            dtype="numeric",
        )
        return X, y, binarize_y

    def resample_groups(self, groups) -> np.ndarray:
        """Groups (patient ids) aligned with the last ``fit_resample`` output."""
        indices = getattr(self, "sample_indices_", None)
        if indices is None:
            raise ValueError(f"{type(self).__name__} has not resampled anything yet.")
        groups = np.asarray(groups)
        if len(groups) != self._n_input_rows:
            raise ValueError(
                f"groups has {len(groups)} entries but the resampled X had "
                f"{self._n_input_rows} rows."
            )
        return groups[indices]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.sparse = False  # volumes are dense
        tags.sampler_tags.sample_indices = True
        return tags


def _draw(rng, y, sampling_strategy, replace):
    """Indices for each class, kept (under) or added (over)."""
    return {
        cls: rng.choice(np.flatnonzero(y == cls), size=n, replace=replace)
        for cls, n in sampling_strategy.items()
    }


class VolumeRandomOverSampler(_VolumeSamplerMixin, BaseOverSampler):
    """Duplicate random volumes of minority classes (like imblearn's
    ``RandomOverSampler``) for N-d ``X``.

    Parameters
    ----------
    sampling_strategy : float, str, dict or callable, default="auto"
        As in imbalanced-learn: ``"auto"`` (= ``"not majority"``), ``"minority"``,
        ``"all"``, a ``{class: n_samples}`` dict, or a float for binary problems.
    random_state : int, RandomState instance or None, default=None
        Seed of the draw.

    Attributes
    ----------
    sampling_strategy_ : dict
        Samples added per class.
    sample_indices_ : ndarray of int
        Source row of each output row.

    See Also
    --------
    AugmentingOverSampler : augmented copies rather than exact duplicates.
    PatientPipeline : carries patient ids through resampling.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.zeros((5, 1, 2, 2, 2)); y = np.array([1, 1, 1, 4, 4])
    >>> Xr, yr = VolumeRandomOverSampler(random_state=0).fit_resample(X, y)
    >>> Xr.shape, np.bincount(yr)[[1, 4]].tolist()
    ((6, 1, 2, 2, 2), [3, 3])
    """

    _parameter_constraints: dict = {
        **BaseOverSampler._parameter_constraints,
        "random_state": ["random_state"],
    }

    def __init__(self, *, sampling_strategy="auto", random_state=None):
        super().__init__(sampling_strategy=sampling_strategy)
        self.random_state = random_state

    def _fit_resample(self, X, y):
        rng = check_random_state(self.random_state)
        added = _draw(rng, y, self.sampling_strategy_, replace=True)
        self._n_input_rows = len(y)
        self.sample_indices_ = np.concatenate(
            [np.arange(len(y))] + [added[c] for c in added]
        ).astype(np.intp)
        return X[self.sample_indices_], y[self.sample_indices_]


class VolumeRandomUnderSampler(_VolumeSamplerMixin, BaseUnderSampler):
    """Drop random volumes of majority classes (like imblearn's
    ``RandomUnderSampler``) for N-d ``X``.

    Parameters
    ----------
    sampling_strategy : float, str, dict or callable, default="auto"
        As in imbalanced-learn; ``"auto"`` (= ``"not minority"``) brings every class
        down to the minority count.
    random_state : int, RandomState instance or None, default=None
    replacement : bool, default=False
        Draw with replacement.

    Attributes
    ----------
    sampling_strategy_ : dict
        Samples kept per class.
    sample_indices_ : ndarray of int
        Source row of each output row.
    """

    _parameter_constraints: dict = {
        **BaseUnderSampler._parameter_constraints,
        "random_state": ["random_state"],
        "replacement": ["boolean"],
    }

    def __init__(
        self, *, sampling_strategy="auto", random_state=None, replacement=False
    ):
        super().__init__(sampling_strategy=sampling_strategy)
        self.random_state = random_state
        self.replacement = replacement

    def _fit_resample(self, X, y):
        rng = check_random_state(self.random_state)
        kept = _draw(rng, y, self.sampling_strategy_, replace=self.replacement)
        untouched = [
            np.flatnonzero(y == c)
            for c in np.unique(y)
            if c not in self.sampling_strategy_
        ]
        self._n_input_rows = len(y)
        self.sample_indices_ = np.sort(
            np.concatenate(list(kept.values()) + untouched)
        ).astype(np.intp)
        return X[self.sample_indices_], y[self.sample_indices_]


class AugmentingOverSampler(_VolumeSamplerMixin, BaseOverSampler):
    """Oversample minority classes with *augmented* copies of their volumes.

    New rows are random volumes of the class passed through a
    :class:`~spectclf.augment.VolumeAugmenter` (flips, small rotations, shifts,
    scaling, intensity, noise), the same transforms used during training, so the
    network does not see exact duplicates.

    Parameters
    ----------
    sampling_strategy : float, str, dict or callable, default="auto"
        As in imbalanced-learn.
    augmenter : VolumeAugmenter, default=None
        Transforms to apply; None uses the defaults.
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of source volumes and the transforms.

    Attributes
    ----------
    sampling_strategy_ : dict
    sample_indices_ : ndarray of int
        Source row of each output row (the original rows first, then the source of
        each augmented copy), so patient ids can follow the copies.
    """

    _parameter_constraints: dict = {
        **BaseOverSampler._parameter_constraints,
        "random_state": ["random_state"],
        "augmenter": [VolumeAugmenter, None],
    }

    def __init__(self, *, sampling_strategy="auto", augmenter=None, random_state=None):
        super().__init__(sampling_strategy=sampling_strategy)
        self.augmenter = augmenter
        self.random_state = random_state

    def _fit_resample(self, X, y):
        rng = check_random_state(self.random_state)
        added = _draw(rng, y, self.sampling_strategy_, replace=True)
        sources = np.concatenate([added[c] for c in added] or [[]]).astype(np.intp)
        self._n_input_rows = len(y)
        self.sample_indices_ = np.concatenate([np.arange(len(y)), sources])
        if len(sources) == 0:
            return X.copy(), y.copy()
        augmenter = self.augmenter if self.augmenter is not None else VolumeAugmenter()
        src = np.asarray(X[sources], dtype=np.float32)
        vol = as_volumes(src, tables=True)
        gen = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))
        new = (
            np.concatenate(
                [
                    augmenter(
                        torch.from_numpy(np.ascontiguousarray(vol[i : i + 64])),
                        generator=gen,
                    ).numpy()
                    for i in range(0, len(vol), 64)
                ]
            )
            .reshape(src.shape)
            .astype(X.dtype, copy=False)
        )
        return np.concatenate([X, new]), y[self.sample_indices_]


def check_network_input(steps, final) -> None:
    """Refuse steps before a classifier that cannot feed its network.

    Called by :class:`PatientPipeline` (and ``make_default_pipeline``) with the
    ``(name, step)`` pairs before the final estimator, so that a pipeline changed
    with ``set_params`` (e.g. in a grid search) is checked too: the striatal-ratio
    head (``module__striatal_ratios=True``) measures the striatum in the block of a
    ``StriatumCrop`` of the default ``size``; any other input would give ratios of
    misplaced regions.
    """
    get_params = getattr(final, "get_params", None)
    if get_params is None or not get_params(deep=False).get("module__striatal_ratios"):
        return
    crops = [s for _, s in steps if isinstance(s, (StriatumCrop, CenterCrop))]
    last = crops[-1] if crops else None
    if not isinstance(last, StriatumCrop) or last.size != BLOCK_SIZE:
        raise ValueError(
            "module__striatal_ratios=True measures the striatum in the network's "
            f"input block: it needs crop='striatum' (StriatumCrop(size={BLOCK_SIZE}) "
            f"as the last crop before the classifier), got {last!r}"
        )


def _fit_transform_one(transformer, X, y, **fit_params):
    return transformer.fit_transform(X, y, **fit_params), transformer


def _fit_resample_one(sampler, X, y, **fit_params):
    X_res, y_res = sampler.fit_resample(X, y, **fit_params)
    return X_res, y_res, sampler


class PatientPipeline(Pipeline):
    """imblearn ``Pipeline`` that resamples ``groups`` together with ``X`` and ``y``.

    In a plain imblearn pipeline, patient ids handed to ``fit`` reach the final
    estimator *unresampled* (or not at all), so a classifier's internal validation
    split cannot keep copies of one patient together. Here every sampler step's
    ``sample_indices_`` is applied to ``groups`` as well, and the final estimator
    receives ``fit(X_resampled, y_resampled, groups=groups_resampled)`` when its
    ``fit`` accepts ``groups``.

    Parameters
    ----------
    steps : list of (name, estimator) tuples
        Transformers, samplers and a final estimator, as in imblearn's ``Pipeline``.
    memory : str, joblib.Memory or None, default=None
        Cache of the fitted transformers and samplers (see ``fit``).
    verbose, transform_input
        As in imblearn's ``Pipeline``.

    Examples
    --------
    >>> from spectclf import (PatientPipeline, VolumeRandomOverSampler,
    ...                       IntensityNormalizer, Spect3DClassifier)
    >>> pipe = PatientPipeline([
    ...     ("norm", IntensityNormalizer(method="minmax")),
    ...     ("balance", VolumeRandomOverSampler(random_state=0)),
    ...     ("clf", Spect3DClassifier(max_epochs=2, module__width=4)),
    ... ])
    """

    __metadata_request__fit = {"groups": True}

    # imblearn leaves steps unchecked; fit replaces its items by the fitted steps
    _parameter_constraints: dict = {**Pipeline._parameter_constraints, "steps": [list]}

    def _route_params(self, params: dict) -> dict[str, dict]:
        """``{"step__param": v}`` -> ``{"step": {"param": v}}``, as scikit-learn's
        ``Pipeline`` routes fit parameters (without metadata routing)."""
        names = [name for name, _ in self.steps]
        routed: dict[str, dict] = {name: {} for name in names}
        for key, value in params.items():
            step, sep, param = key.partition("__")
            if not sep or step not in routed:
                raise ValueError(
                    f"PatientPipeline.fit does not accept the {key!r} parameter: pass "
                    "parameters to a step as '<step>__<parameter>' with <step> one of "
                    f"{names} (e.g. '{names[-1]}__sample_weight')."
                )
            routed[step][param] = value
        return routed

    def fit(self, X, y=None, groups=None, **params):
        """Fit all steps; samplers resample ``groups`` along with ``X`` and ``y``.

        Parameters
        ----------
        X : array-like
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), default=None
            Patient ids.
        **params
            ``<step>__<parameter>`` for that step's ``fit`` (or ``fit_resample`` /
            ``fit_transform``), as in scikit-learn's ``Pipeline``.

        Returns
        -------
        self : PatientPipeline

        Notes
        -----
        With ``memory``, each transformer's and sampler's fit is cached (joblib,
        keyed by the step's parameters and its input), so a grid search or a tuning
        study that varies only later steps reuses the earlier ones.
        """
        self._validate_params()
        self._validate_steps()
        # the final estimator may refuse steps that cannot feed it (checked here, not
        # only where the pipeline was built: set_params can change any step)
        check_network_input(self.steps[:-1], self._final_estimator)
        routed = self._route_params(params)
        memory = check_memory(self.memory)
        fit_transform_one = memory.cache(_fit_transform_one)
        fit_resample_one = memory.cache(_fit_resample_one)
        Xt, yt = X, y
        gt = None if groups is None else np.asarray(groups)
        if gt is not None and len(gt) != len(y):
            raise ValueError(f"groups has {len(gt)} entries but y has {len(y)}.")
        for i, (name, step) in enumerate(self.steps[:-1]):
            if step is None or step == "passthrough":
                continue
            if hasattr(step, "fit_resample"):
                Xt, yt, fitted = fit_resample_one(clone(step), Xt, yt, **routed[name])
                if gt is not None:
                    if not hasattr(fitted, "sample_indices_"):
                        raise ValueError(
                            f"Sampler step {name!r} ({type(fitted).__name__}) does not "
                            "record sample_indices_, so patient ids cannot follow its "
                            "resampling; use a spectclf sampler."
                        )
                    gt = gt[fitted.sample_indices_]
            else:
                Xt, fitted = fit_transform_one(clone(step), Xt, yt, **routed[name])
            self.steps[i] = (name, fitted)
        final = self._final_estimator
        if final is not None and final != "passthrough":
            final_params = routed[self.steps[-1][0]]
            if final_params:
                extra = (
                    {"groups": gt} if gt is not None and accepts_groups(final) else {}
                )
                final.fit(Xt, yt, **extra, **final_params)
            else:
                fit_with_groups(final, Xt, yt, gt)
        return self

    @available_if(lambda self: hasattr(self._final_estimator, "predict"))
    def fit_predict(self, X, y=None, groups=None, **params):
        """``fit`` (``groups`` included), then ``predict`` of the same rows."""
        return self.fit(X, y, groups=groups, **params).predict(X)

    @available_if(
        lambda self: (
            self._final_estimator in (None, "passthrough")
            or hasattr(self._final_estimator, "transform")
        )
    )
    def fit_transform(self, X, y=None, groups=None, **params):
        """``fit`` (``groups`` included), then ``transform`` of the same rows."""
        return self.fit(X, y, groups=groups, **params).transform(X)
