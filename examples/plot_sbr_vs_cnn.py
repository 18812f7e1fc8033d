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

data = make_spect_phantoms((8, 8, 8, 4), shape=(30, 64, 64), random_state=4)
features = SBRFeatures().fit_transform(data.X)
names = SBRFeatures().fit(data.X).get_feature_names_out()
put = features[:, list(names).index("sbr_left_putamen")]
print("mean left-putamen SBR per stage:",
      [round(put[data.y == s].mean(), 2) for s in (1, 2, 3, 4)])

# %%
sbr = evaluate(make_sbr_baseline(0), data.X, data.y, data.groups, cv=4,
               random_state=0, verbose=0)
cnn = evaluate(make_default_pipeline((16, 32, 32), max_epochs=8, lr=3e-3,
                                     random_state=0),
               data.X, data.y, data.groups, cv=4, random_state=0, verbose=0)
labels = ["balanced_accuracy", "qwk"]
x = np.arange(len(labels))
plt.bar(x - 0.2, [sbr.summary[k]["mean"] for k in labels], 0.4, label="SBR baseline")
plt.bar(x + 0.2, [cnn.summary[k]["mean"] for k in labels], 0.4, label="3-D CNN")
plt.xticks(x, ["balanced accuracy", "QWK"])
plt.ylabel("mean over folds")
plt.legend()
plt.show()
