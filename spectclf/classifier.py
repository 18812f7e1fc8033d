"""``Spect3DClassifier``: a 3-D CNN behind the scikit-learn classifier contract.

The estimator is orchestration only: it validates its parameters and input, encodes
labels, holds out whole patients for validation, has ``_skorch_net.build_net``
assemble the skorch net, trains it, and calibrates afterwards
(:mod:`spectclf.calibration`). Each loss is an object of :mod:`spectclf.losses`; input
shapes follow :func:`spectclf.arrays.as_volumes`. Wrapping (rather than subclassing
skorch) keeps ``__init__`` free of logic and lets every scikit-learn estimator check
pass.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from spectclf._skorch_net import (
    OPTIMIZERS,
    SWA_LR_FACTOR,
    SWA_START,
    Interrupted,
    RoutedParamsMixin,
    build_net,
)
from spectclf.arrays import as_volumes
from spectclf.augment import VolumeAugmenter
from spectclf.calibration import TemperatureScaling
from spectclf.exceptions import TrainingDivergedError
from spectclf.losses import LOSSES, Loss
from spectclf.patient_groups import validation_patients

__all__ = ["SWA_LR_FACTOR", "SWA_START", "Spect3DClassifier"]

#: Training epochs of the default classifier, shared by ``build_model`` and the CLI.
#: Chosen on the robustness cohorts (benchmarks/README.md): with the cosine schedule,
#: 30 epochs matched 40 (and 40 matched 60) in balanced accuracy and stage-4 recall
#: on the four cohorts, at 0.78x the CV time (294 s vs 378 s on the same day).
DEFAULT_MAX_EPOCHS = 30


class Spect3DClassifier(RoutedParamsMixin, ClassifierMixin, BaseEstimator):
    """3-D CNN classifier for SPECT volumes with the scikit-learn API.

    Parameters
    ----------
    module : str or torch.nn.Module class, default="resnet3d"
        Network: a name from :func:`spectclf.nets.available_modules` (``"resnet3d"``,
        ``"seed_cnn"``, ``"monai_resnet10"``...) or a module class. It is built with
        ``in_channels``, ``n_classes`` (and ``input_shape`` when it accepts one) plus
        every ``module__*`` parameter.
    max_epochs : int, default=30
        Training epochs (fewer with early stopping).
    lr : float, default=3e-3
        Learning rate.
    batch_size : int, default=8
        Volumes per batch.
    optimizer : {"adamw", "adam", "sgd"} or torch optimizer class, default="adamw"
        Optimizer; further options as ``optimizer__*`` (e.g. ``optimizer__momentum``).
    weight_decay : float, default=1e-3
        Weight decay of the optimizer.
    criterion : {"cross_entropy", "corn", "logit_adjusted"}, Loss or torch loss class, \
            default="cross_entropy"
        Training loss; further options as ``criterion__*``. ``class_weight`` is
        passed as the loss's ``weight``. ``"corn"`` is ordinal: the network predicts
        ``P(stage > k | stage >= k)`` for each threshold ``k`` and the class
        probabilities are their products (``CornLoss``), so
        predictions respect the order of the stages. ``"logit_adjusted"`` adds
        ``tau * log(training stage frequency)`` to the logits in the loss only
        (``LogitAdjustedLoss``, ``criterion__tau``, default 1): rare stages need a wider
        margin, and the predicted probabilities assume equal stage priors, as
        ``class_weight="balanced"`` does by reweighting.
    lr_schedule : {"cosine", "swa", None}, default="cosine"
        ``"cosine"``: cosine annealing of the learning rate over ``max_epochs``.
        ``"swa"``: stochastic weight averaging: a cosine from ``lr`` down to ``lr / 3``
        over the first three quarters of the epochs, then ``lr / 3`` held while the
        weights at the end of each remaining epoch are averaged; the average is the
        trained network, with its BatchNorm statistics measured again on the training
        volumes (one extra pass, no labels). Not with ``early_stopping``, which keeps
        one epoch's weights instead. Measured on the 14 robustness cohorts
        (``benchmarks/README.md``), it was 0.003 below ``"cosine"`` in mean balanced
        accuracy (lower on our own phantoms, higher on the independent ones) and
        found 3 more of 210 stage-4 patients, so it is not the default. None: a
        constant rate.
    class_weight : None, "balanced" or dict, default=None
        Weights of the cross-entropy loss per class; ``"balanced"`` weights classes
        inversely to their frequency (helps the rare stage 4); a dict maps labels to
        weights.
    augment : bool, dict or VolumeAugmenter, default=True
        On-the-fly augmentation of training batches (never at predict time); see
        :class:`spectclf.augment.VolumeAugmenter`. A dict sets strengths. Tabular
        input ``(n, f)`` is never augmented.
    valid_size : float or None, default=None
        Fraction of *patients* held out for validation (per-epoch ``valid_loss`` and
        ``valid_acc`` in ``history_``). Patients come from ``fit(..., groups=...)``;
        without groups each row counts as its own patient (identical rows are kept
        together) and a :class:`~spectclf.exceptions.PatientLeakageWarning` says how
        to pass them through the wrapper in use. None: no validation, unless
        ``early_stopping`` or ``calibration`` asks for it (then 0.2).
    early_stopping : bool, default=False
        Stop when ``valid_loss`` has not improved for ``n_iter_no_change`` epochs and
        restore the best weights.
    n_iter_no_change : int, default=5
        Patience of early stopping.
    precision : {"fp32", "bf16", "auto"}, default="fp32"
        ``"bf16"`` runs forward passes under bfloat16 autocast (weights, optimizer and
        loss stay float32): about 1.6x faster training on CPUs with native bf16
        (AVX-512 bf16 / AMX), but *not bit-for-bit repeatable* on the CPU (oneDNN's
        bf16 kernels differ between runs by ~1e-5). ``"auto"`` picks bf16 where the
        hardware runs it natively, else fp32. The default keeps ``random_state``
        exact.
    channels_last : bool, default=True
        Use the ``channels_last_3d`` memory format (faster convolutions with oneDNN).
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        ``"auto"`` takes CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, shuffling, dropout, augmentation and the validation split; the
        same integer gives identical predictions on the CPU, and on a GPU predictions
        equal to ~1e-6 (cuDNN kernels are not bit-deterministic).
    calibration : {None, "temperature"}, default=None
        ``"temperature"`` divides the logits by one temperature fitted (by
        log-likelihood) on the held-out validation *patients* after training
        (``valid_size``, 0.2 when not set), so that probabilities match observed
        frequencies; predictions (the argmax) do not change.
    verbose : int, default=1
        0 silent; 1 a progress line (epochs done, loss, time left) every 10 s of a
        fit that lasts longer; 2 skorch's per-epoch table; 3 table and progress bar.
    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra skorch callbacks (copied, never modified).
    **kwargs
        Routed parameters with the prefixes ``module__``, ``optimizer__``,
        ``criterion__``, ``iterator_train__``, ``iterator_valid__``, ``callbacks__``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, as given in ``y``.
    n_features_in_ : int
        Size of the second axis of ``X`` as given.
    input_shape_ : tuple
        ``(C, D, H, W)`` the network was trained on.
    net_ : skorch.NeuralNetClassifier
        The trained skorch net.
    module_ : torch.nn.Module
        The trained network.
    history_ : skorch.History
        Per-epoch ``train_loss`` (and ``valid_loss``, ``valid_acc``), ``dur``.
    valid_groups_ : ndarray or None
        Patients held out for validation.
    temperature_ : float
        Logit temperature (1.0 without calibration).

    See Also
    --------
    spectclf.nets.ResNet3D : the default network.
    spectclf.PatientStratifiedGroupKFold : patient-grouped cross-validation.

    Notes
    -----
    ``fit`` requests ``groups`` through scikit-learn's metadata routing: with
    ``sklearn.set_config(enable_metadata_routing=True)``, ``GridSearchCV``,
    ``cross_validate`` and pipelines deliver the patient ids to it.

    A Ctrl-C during ``fit`` propagates as ``KeyboardInterrupt``; the estimator is
    left unfitted rather than half-trained.

    Inputs are ``(n, D, H, W)`` (one channel is added) or ``(n, C, D, H, W)``; 2-D input
    ``(n, f)`` is read as ``(n, 1, 1, 1, f)`` and ``(n, H, W)`` as single slices, so
    scikit-learn's generic checks and slice-level data both work.

    Examples
    --------
    >>> import numpy as np
    >>> from spectclf import Spect3DClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 1, 8, 16, 16)).astype("float32")
    >>> y = np.repeat([1, 2], 10); X[y == 2] += 1.0
    >>> clf = Spect3DClassifier(max_epochs=5, module__width=4, random_state=0)
    >>> clf.fit(X, y).predict(X[:3])
    array([1, 1, 1])
    """

    __metadata_request__fit = {"groups": True}

    _parameter_constraints: dict = {
        "module": [str, type, callable],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "criterion": [StrOptions(set(LOSSES)), Loss, type],
        "lr_schedule": [StrOptions({"cosine", "swa"}), None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "augment": ["boolean", dict, VolumeAugmenter],
        "valid_size": [Interval(Real, 0, 1, closed="neither"), None],
        "early_stopping": ["boolean"],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "precision": [StrOptions({"auto", "fp32", "bf16"})],
        "channels_last": ["boolean"],
        "device": [str],
        "random_state": ["random_state"],
        "calibration": [StrOptions({"temperature"}), None],
        "verbose": ["verbose"],
        "callbacks": [list, None],
    }

    def __init__(
        self,
        *,
        module="resnet3d",
        max_epochs: int = DEFAULT_MAX_EPOCHS,
        lr: float = 3e-3,
        batch_size: int = 8,
        optimizer="adamw",
        weight_decay: float = 1e-3,
        criterion="cross_entropy",
        lr_schedule: str | None = "cosine",
        class_weight=None,
        augment=True,
        valid_size: float | None = None,
        early_stopping: bool = False,
        n_iter_no_change: int = 5,
        precision: str = "fp32",
        channels_last: bool = True,
        device: str = "auto",
        random_state=None,
        calibration: str | None = None,
        verbose: int = 1,
        callbacks=None,
        **kwargs,
    ):
        self.module = module
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.criterion = criterion
        self.lr_schedule = lr_schedule
        self.class_weight = class_weight
        self.augment = augment
        self.valid_size = valid_size
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.precision = precision
        self.channels_last = channels_last
        self.device = device
        self.random_state = random_state
        self.calibration = calibration
        self.verbose = verbose
        self.callbacks = callbacks
        # Routed names (module__width...) are not attributes of their own: scikit-learn
        # allows only declared parameters as public attributes. They live in one
        # private dict and are reported by get_params like any parameter.
        self._routed = dict(kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.allow_nan = False
        return tags

    def check_volumes(self, X) -> np.ndarray:
        """Validate ``X`` as ``predict`` does: float32 ``(n, C, D, H, W)`` of the
        fitted input shape.

        Parameters
        ----------
        X : array-like of shape (n, D, H, W) or (n, C, D, H, W)

        Returns
        -------
        volumes : ndarray of shape (n, C, D, H, W)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, allow_nd=True, dtype=np.float32)
        X = np.ascontiguousarray(as_volumes(X, tables=True))
        if tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(
                f"X has volumes of shape {tuple(X.shape[1:])} but this "
                f"Spect3DClassifier was fitted on {self.input_shape_} (C, D, H, W); "
                "resample them the same way (e.g. VolumeResizer)."
            )
        return X

    def fit(self, X, y, groups=None):
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n, D, H, W) or (n, C, D, H, W)
            Volumes (float).
        y : array-like of shape (n,)
            Stage labels (any hashable labels).
        groups : array-like of shape (n,), default=None
            Patient id per row; used to hold out whole patients when ``valid_size``
            or ``early_stopping`` ask for validation.

        Returns
        -------
        self : Spect3DClassifier
        """
        self._validate_params()
        self.check_routed_params()
        if self.lr_schedule == "swa" and self.early_stopping:
            raise ValueError(
                "lr_schedule='swa' averages the weights of the last epochs while "
                "early_stopping=True restores one epoch's weights; use one of them."
            )
        X, y = validate_data(self, X, y, allow_nd=True, dtype=np.float32)
        X = np.ascontiguousarray(as_volumes(X, tables=True))
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"Spect3DClassifier needs samples of at least 2 classes; got 1 class "
                f"({self.classes_[0]!r}) in {len(y)} sample(s)."
            )
        y_enc = encoder.transform(y).astype(np.int64)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        wants_valid = self.early_stopping or self.calibration is not None
        valid_idx, self.valid_groups_ = validation_patients(
            X,
            y_enc,
            groups,
            self.valid_size or (0.2 if wants_valid else None),
            seed,
            owner="Spect3DClassifier",
        )
        self.input_shape_ = tuple(X.shape[1:])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_net(self, self.input_shape_, y_enc, valid_idx, seed)
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message="The given NumPy array is not writable"
                )
                try:
                    net.fit(X, y_enc)
                except Interrupted:
                    for name in ("classes_", "input_shape_", "valid_groups_"):
                        self.__dict__.pop(name, None)  # unfitted, not half-trained
                    raise KeyboardInterrupt from None
        self.net_, self.module_, self.history_ = net, net.module_, net.history
        self.temperature_ = 1.0
        if self.calibration == "temperature":
            scaling = TemperatureScaling(self.net_.probabilities)
            logits = self._logits(X[valid_idx])
            self.temperature_ = scaling.fit(logits, y_enc[valid_idx]).temperature_
        return self

    def _logits(self, X: np.ndarray) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="The given NumPy array is not writable"
            )
            return self.net_.forward(X, training=False, device="cpu").float()

    def restore_network(self, state_dict) -> Spect3DClassifier:
        """Rebuild the trained network from saved weights (used by
        :func:`spectclf.load_model`); ``classes_`` and ``input_shape_`` must be set.

        A model trained on a GPU loads on the CPU when no GPU is present.
        """
        self.input_shape_ = tuple(int(s) for s in self.input_shape_)
        device = None
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"
        y_enc = np.arange(len(self.classes_))
        net = build_net(self, self.input_shape_, y_enc, None, 0, device=device)
        net.initialize()
        net.module_.load_state_dict(state_dict)
        self.net_, self.module_, self.history_ = net, net.module_, net.history
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n, D, H, W) or (n, C, D, H, W)

        Returns
        -------
        proba : ndarray of shape (n, n_classes)
        """
        X = self.check_volumes(X)
        scaling = TemperatureScaling(self.net_.probabilities)
        proba = scaling.transform(self._logits(X), getattr(self, "temperature_", 1.0))
        if not np.isfinite(proba).all():
            raise TrainingDivergedError(
                "The network produced NaN or infinite probabilities (precision="
                f"{self.net_.precision!r}); retrain with precision='fp32' or a lower lr."
            )
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Most probable class label of each volume."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
