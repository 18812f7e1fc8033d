"""
Tuning with Optuna under patient-grouped cross-validation
=========================================================

:func:`spectclf.tune` runs an Optuna study whose every trial is a patient-grouped
cross-validation; intermediate fold scores feed the pruner. With
``storage="sqlite:///study.db"`` the study survives crashes and can be resumed.
"""

# %%
import matplotlib.pyplot as plt

from spectclf import make_default_pipeline, make_spect_phantoms, tune

data = make_spect_phantoms((8, 8, 8, 4), shape=(30, 64, 64), random_state=2)
model = make_default_pipeline(max_epochs=10, random_state=0)
# the default search space finds the classifier step inside the pipeline
result = tune(model, data.X, data.y, data.groups, n_trials=4, cv=3, random_state=0)
print("best balanced accuracy:", round(result.best_score, 3))
print("best parameters:", {k: str(v) for k, v in result.best_params.items()})

# %%
# The study's history.
values = [t.value for t in result.study.trials if t.value is not None]
plt.plot(range(1, len(values) + 1), values, "o-")
plt.xlabel("trial")
plt.ylabel("mean balanced accuracy over folds")
plt.title("Optuna trials")
plt.show()
