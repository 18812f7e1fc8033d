"""The loader, the localiser and the SBR regions on cohorts of a second generator.

``benchmarks/independent_cohorts.py`` was written without the library's phantom code
(other anatomy, blur, noise and rendering), so these tests check that reading the
colours, finding the striatum and measuring the binding ratios do not depend on our
own phantoms. Its ``truth.csv`` holds each patient's true striatal binding ratios.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from spectclf import SBRFeatures, load_slice_folders
from spectclf.anatomy import locate_striatum

_SCRIPT = Path(__file__).parents[1] / "benchmarks" / "independent_cohorts.py"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("independent_cohorts", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch = pytest.MonkeyPatch()
    # its dataclasses look their module up in sys.modules while being built
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    yield module
    monkeypatch.undo()


# B: a reversed, off-centre JPEG slab in neurological view (patient's left on the
# image's left); C: a mirrored (radiological) zoomed-out "viridis" JPEG head with one
# brightness scale for the cohort
@pytest.mark.parametrize(
    "kind, load_options",
    [("B", {"slice_order": "reverse", "flip_lr": True}), ("C", {})],
)
def test_independent_cohort_read_located_and_measured(
    generator, tmp_path, kind, load_options
):
    generator.generate(tmp_path, kind, seed=3, counts=[4, 3, 3, 4])
    data = load_slice_folders(tmp_path, **load_options)
    assert data.colormap == generator.KINDS[kind]["cmap"]
    assert all(locate_striatum(v[0]).found for v in data.X)

    truth = {r["patient_id"]: r for r in csv.DictReader(open(tmp_path / "truth.csv"))}
    names = SBRFeatures().fit(data.X).get_feature_names_out().tolist()
    F = SBRFeatures().fit_transform(data.X)
    for side, other in (("L", "R"), ("R", "L")):
        word = {"L": "left", "R": "right"}[side]
        measured = F[:, names.index(f"sbr_{word}_putamen")]
        r_same, r_other = (
            np.corrcoef(
                measured, [float(truth[str(g)][f"put_sbr_{s}"]) for g in data.groups]
            )[0, 1]
            for s in (side, other)
        )
        # the putamen region lies on the putamen, on the side it is named for
        assert r_same > 0.85, (kind, side, r_same)
        assert r_same > r_other + 0.1, (kind, side, r_same, r_other)
