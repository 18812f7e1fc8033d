"""
Explaining predictions with 3-D saliency maps
=============================================

Which voxels drove a prediction? ``saliency`` returns a saliency volume per patient,
shaped like the network's input. The default, ``method="integrated"``, integrates
the gradient of the class score along the path from a uniform brain-level volume to
the scan: it credits the voxels whose uptake above the brain background raised the
score. The volumes here are blocks around the striatum, as the default pipeline's
striatum crop makes them.
"""

# %%
import matplotlib.pyplot as plt

from spectclf import Spect3DClassifier, make_spect_phantoms, saliency
from spectclf.plotting import plot_stage_montage

kw = dict(shape=(16, 32, 32), counts=200.0, fov_centre=(-0.1, 0, 0), fov_extent=0.5)
train = make_spect_phantoms((12, 0, 0, 12), random_state=1, **kw)
test = make_spect_phantoms((1, 0, 0, 1), random_state=2, **kw)
clf = Spect3DClassifier(
    max_epochs=20, lr=1e-2, module__width=8, augment=False, random_state=1
).fit(train.X, train.y)

# %%
maps, X_used = saliency(clf, test.X)
plot_stage_montage(X_used, clf.predict(test.X), saliency=maps, n_slices=5)
plt.show()

# %%
# The other methods, for comparison: Grad-CAM (coarse), the raw input gradient and
# their product. Raw gradients of a network with global max-pooling peak on single
# voxels where the pooling routes them, often away from the striatum.
for method in ("gradcam", "guided"):
    maps, _ = saliency(clf, test.X, method=method)
    plot_stage_montage(X_used, clf.predict(test.X), saliency=maps, n_slices=5)
    plt.show()
