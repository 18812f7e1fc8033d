"""
Explaining predictions with 3-D Grad-CAM
========================================

Which voxels drove a prediction? ``grad_cam`` returns a saliency volume per patient,
shaped like the network's input; ``method="guided"`` (the default) multiplies Grad-CAM
with the input gradient for voxel-sharp maps.
"""

# %%
import matplotlib.pyplot as plt

from spectclf import Spect3DClassifier, grad_cam, make_spect_phantoms
from spectclf.plotting import plot_stage_montage

kw = dict(shape=(16, 32, 32), counts=200.0)
train = make_spect_phantoms((12, 0, 0, 12), random_state=1, **kw)
test = make_spect_phantoms((1, 0, 0, 1), random_state=2, **kw)
clf = Spect3DClassifier(
    max_epochs=20, lr=1e-2, module__width=8, augment=False, random_state=1
).fit(train.X, train.y)

# %%
saliency, X_used = grad_cam(clf, test.X)
plot_stage_montage(X_used, clf.predict(test.X), saliency=saliency, n_slices=5)
plt.show()
