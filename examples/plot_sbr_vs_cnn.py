"""
The clinical baseline: striatal binding ratios vs the CNN
=========================================================

Clinicians read DaTscans by striatal binding ratios (SBR). Any CNN result should be
reported next to an SBR model evaluated on the same patient-grouped folds.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from spectclf import (
    SBRFeatures,
    evaluate,
    make_default_pipeline,
    make_sbr_baseline,
    make_spect_phantoms,
)

data = make_spect_phantoms((12, 12, 12, 6), shape=(30, 64, 64), random_state=4)
features = SBRFeatures().fit_transform(data.X)
names = SBRFeatures().fit(data.X).get_feature_names_out()
put = features[:, list(names).index("sbr_left_putamen")]
print(
    "mean left-putamen SBR per stage:",
    [round(put[data.y == s].mean(), 2) for s in (1, 2, 3, 4)],
)

# %%
# With only 42 patients neither model is precise; the comparison that counts is the
# demo's 165 patients (``spectclf demo``) or, better, your own cohort.
sbr = evaluate(
    make_sbr_baseline(0), data.X, data.y, data.groups, cv=4, random_state=0, verbose=0
)
cnn = evaluate(
    make_default_pipeline(max_epochs=30, random_state=0),
    data.X,
    data.y,
    data.groups,
    cv=4,
    random_state=0,
    verbose=0,
)
labels = ["balanced_accuracy", "qwk"]
x = np.arange(len(labels))
plt.bar(x - 0.2, [sbr.summary[k]["mean"] for k in labels], 0.4, label="SBR baseline")
plt.bar(x + 0.2, [cnn.summary[k]["mean"] for k in labels], 0.4, label="3-D CNN")
plt.xticks(x, ["balanced accuracy", "QWK"])
plt.ylabel("mean over folds")
plt.legend()
plt.show()
