"""SBR features: the clinical baseline."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score

from spectclf import SBRFeatures, make_sbr_baseline, make_spect_phantoms
from spectclf.anatomy import binding_ratio_regions
from spectclf.model_selection import PatientStratifiedGroupKFold


@pytest.fixture(scope="module")
def cohort():
    return make_spect_phantoms(
        (12, 12, 12, 8), shape=(30, 64, 64), random_state=3, counts=80.0
    )


def test_measured_sbr_tracks_true_sbr(cohort):
    F = SBRFeatures().fit_transform(cohort.X)
    names = SBRFeatures().fit(cohort.X).get_feature_names_out().tolist()
    assert F.shape == (44, len(names)) and len(names) == 15
    for region in ("left_putamen_posterior", "right_caudate"):
        measured = F[:, names.index(f"sbr_{region}")]
        r = np.corrcoef(measured, cohort.sbr[region])[0, 1]
        assert r > 0.8, (region, r)
    # the measured putamen asymmetry follows the true one
    true = {
        s: (cohort.sbr[f"{s}_putamen_anterior"] + cohort.sbr[f"{s}_putamen_posterior"])
        / 2
        for s in ("left", "right")
    }
    true_ai = np.abs(true["left"] - true["right"]) / (
        (true["left"] + true["right"]) / 2
    )
    # located regions: the left-right difference of putamen SBR follows the true one
    diff = (
        F[:, names.index("sbr_left_putamen")] - F[:, names.index("sbr_right_putamen")]
    )
    assert np.corrcoef(diff, true["left"] - true["right"])[0, 1] > 0.8
    # fixed regions: the asymmetry index, a ratio of small differences, is noisy
    # (r ~ 0.4 here) but clearly related; with located regions it is weaker
    # (r ~ 0.05-0.1): a known weakness, see the closing note of issue 10
    fixed = SBRFeatures(regions="fixed").fit(cohort.X)
    ai = fixed.transform(cohort.X)[:, names.index("asymmetry_index_putamen")]
    assert np.corrcoef(ai, true_ai)[0, 1] > 0.25


def test_scale_invariant_and_errors(cohort):
    a = SBRFeatures().fit_transform(cohort.X[:4])
    np.testing.assert_allclose(
        SBRFeatures().fit_transform(cohort.X[:4] * 9), a, rtol=1e-4
    )
    with pytest.raises(ValueError, match="C=3"):
        SBRFeatures().fit(np.zeros((2, 3, 8, 8, 8)))
    with pytest.raises(ValueError, match="empty"):
        SBRFeatures(regions="fixed").fit(np.zeros((2, 1, 4, 4, 4)))
    with pytest.raises(ValueError, match="'regions' parameter of SBRFeatures"):
        SBRFeatures(regions="atlas").fit(cohort.X[:2])


def test_baseline_beats_chance(cohort):
    cv = PatientStratifiedGroupKFold(4, random_state=0)
    scores = cross_val_score(
        make_sbr_baseline(0),
        cohort.X,
        cohort.y,
        groups=cohort.groups,
        cv=cv,
        scoring="balanced_accuracy",
    )
    assert scores.mean() > 0.45  # chance is 0.25


def test_reference_is_occipital_unless_the_field_of_view_is_cut(cohort):
    whole = cohort.X[:6]
    features = SBRFeatures().fit(whole)
    assert features.references(whole).tolist() == ["occipital"] * 6
    placed = binding_ratio_regions(whole[0, 0])
    ref_z = np.argwhere(placed.masks["reference"])[:, 0].mean()
    striatum_z = np.argwhere(placed.masks["striatum"])[:, 0].mean()
    assert ref_z > striatum_z + 0.25 * whole.shape[2]  # well behind the striatum
    # the back of the head cut off: the brain runs into the posterior face
    slab = whole[:, :, :19]
    assert SBRFeatures().fit(slab).references(slab).tolist() == ["block"] * 6
    with pytest.raises(ValueError, match="posterior"):
        SBRFeatures(reference="occipital").fit(slab).transform(slab)
    with pytest.warns(UserWarning, match="2 of 6 volumes do not hold the occipital"):
        mixed = np.concatenate(
            [whole[:4], np.pad(slab[4:], [(0, 0)] * 2 + [(0, 11), (0, 0), (0, 0)])]
        )
        SBRFeatures().fit(whole).transform(mixed)
    with pytest.raises(ValueError, match="'reference' parameter of SBRFeatures"):
        SBRFeatures(reference="cortex").fit(whole)
    # a 0.2 model file's parameter still loads, with a warning
    with pytest.warns(FutureWarning, match="block_shape"):
        SBRFeatures(block_shape=(24, 48, 48)).fit(whole)


def test_geometry_auto_follows_the_anatomy_of_the_volumes(cohort):
    phantoms = cohort.X[cohort.y == 1][:6]
    assert SBRFeatures().fit(phantoms).geometry_ == "canonical"
    # the same brains with a striatum of real proportions painted in
    real = []
    for v in phantoms[:, 0]:
        level = np.median(v[v > 0.1 * v.max()])
        brain = np.where(v > 0.5 * level, level, 0.0)
        hot = binding_ratio_regions(v, geometry="anatomical").masks["striatum"]
        real.append(np.where(hot, 3.0 * brain.max(), brain))
    real = np.asarray(real, dtype=np.float32)[:, None]
    fitted = SBRFeatures().fit(real)
    assert fitted.geometry_ == "anatomical"
    putamen = fitted.transform(real)[:, 2]
    # 3x the brain is a ratio of 2; relocated on the painted striatum, the regions
    # keep most of it (1.5-1.7 measured; the canonical regions read ~1.0)
    assert np.all((putamen > 1.4) & (putamen <= 2.0)), putamen
    canonical = SBRFeatures(geometry="canonical").fit_transform(real)[:, 2]
    assert np.all(canonical < putamen - 0.2), canonical
    with pytest.raises(ValueError, match="'geometry' parameter of SBRFeatures"):
        SBRFeatures(geometry="mni").fit(phantoms)
