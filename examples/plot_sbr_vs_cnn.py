"""
The clinical baseline: striatal binding ratios vs the CNN
=========================================================

Clinicians read DaTscans by striatal binding ratios (SBR). Any CNN result should be
reported next to an SBR model evaluated on the same patient-grouped folds.
"""

# %%
import matplotlib.pyplot as plt

from spectclf import (
    SBRFeatures,
    compare_models,
    make_default_pipeline,
    make_sbr_baseline,
    make_spect_phantoms,
)
from spectclf.plotting import plot_paired_differences

data = make_spect_phantoms((12, 12, 12, 6), shape=(30, 64, 64), random_state=4)
features = SBRFeatures().fit_transform(data.X)
names = SBRFeatures().fit(data.X).get_feature_names_out()
put = features[:, list(names).index("sbr_left_putamen")]
print(
    "mean left-putamen SBR per stage:",
    [round(float(put[data.y == s].mean()), 2) for s in (1, 2, 3, 4)],
)

# %%
# :func:`~spectclf.compare_models` runs both models on identical patient partitions
# and tests the fold-by-fold differences (corrected repeated k-fold t-test). With only
# 42 patients and one repeat neither model is precise and the interval is wide; the
# comparison that counts is your own cohort with ``n_repeats=3`` or more
# (``spectclf evaluate DATA --repeats 3``).
comparison = compare_models(
    make_default_pipeline(max_epochs=30, random_state=0, verbose=0),
    make_sbr_baseline(0),
    data.X,
    data.y,
    data.groups,
    cv=4,
    n_repeats=1,
    random_state=0,
    names=("CNN", "SBR baseline"),
)
print(comparison.sentence())
for name, m in comparison.metrics.items():
    print(
        f"{name}: {m.estimate:+.3f} (95% CI {m.ci_low:+.3f} to {m.ci_high:+.3f}), "
        f"p = {m.p_value:.2f}"
    )

# %%
# Per fold, the differences (dots) and their mean with its interval (red).
plot_paired_differences(comparison)
plt.show()
