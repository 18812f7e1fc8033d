"""The models the robustness benchmarks compare: ``MODELS[name](random_state,
epochs)`` returns an unfitted estimator; :func:`cnn` is the default pipeline with
some parameters changed."""

from __future__ import annotations

from spectclf import (
    HybridSBRClassifier,
    StageEnsemble,
    make_default_pipeline,
    make_sbr_baseline,
)


def cnn(random_state, epochs: int, **params):
    """The default pipeline, silent, trained ``epochs`` epochs, with ``params``
    (``make_default_pipeline``'s keywords) changed."""
    return make_default_pipeline(
        max_epochs=epochs, random_state=random_state, verbose=0, **params
    )


MODELS = {
    # the library's default (class-balanced loss since 0.2), and without weights
    "default": lambda rs, epochs: cnn(rs, epochs),
    "unweighted": lambda rs, epochs: cnn(rs, epochs, class_weight=None),
    # wide-and-deep: the head also reads the block's striatal binding ratios
    "ratios": lambda rs, epochs: cnn(rs, epochs, module__striatal_ratios=True),
    # issue 12's variants of the default (so class-balanced too)
    "ordinal": lambda rs, epochs: cnn(rs, epochs, criterion="corn"),
    # logit adjustment instead of class weights (issue 10's stage-4 recall)
    "logit_adjusted": lambda rs, epochs: cnn(rs, epochs, criterion="logit_adjusted"),
    "calibrated": lambda rs, epochs: cnn(rs, epochs, calibration="temperature"),
    # stochastic weight averaging over the last quarter of the epochs
    "swa": lambda rs, epochs: cnn(rs, epochs, lr_schedule="swa"),
    "ensemble": lambda rs, epochs: StageEnsemble(
        cnn(rs, epochs), cv=3, random_state=rs
    ),
    "hybrid": lambda rs, epochs: HybridSBRClassifier(
        cnn(rs, epochs), cv=2, random_state=rs
    ),
    "sbr": lambda rs, epochs: make_sbr_baseline(random_state=rs),
}
