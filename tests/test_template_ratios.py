"""Binding ratios on a real healthy FP-CIT template (optional: the files are not shipped).

Runs ``benchmarks/template_ratios.py`` when the two public files it reads are found:
set ``SPECTCLF_FPCIT_TEMPLATE`` (``symFPCITtemplate_MNI_norm.nii``, MJFF-ResearchCommunity
/Imaging) and ``SPECTCLF_BASAL_GANGLIA`` (``mni_basal_ganglia.nii.gz``, nipy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = os.environ.get("SPECTCLF_FPCIT_TEMPLATE", "")
MASKS = os.environ.get("SPECTCLF_BASAL_GANGLIA", "")

pytestmark = pytest.mark.skipif(
    not (TEMPLATE and MASKS and Path(TEMPLATE).exists() and Path(MASKS).exists()),
    reason="set SPECTCLF_FPCIT_TEMPLATE and SPECTCLF_BASAL_GANGLIA to the two files",
)


def test_ratios_within_15_percent_of_the_anatomical_masks_and_lesion_found(tmp_path):
    out = tmp_path / "ratios.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "template_ratios.py"),
            TEMPLATE,
            MASKS,
            "--out",
            str(tmp_path),
            "--json",
            str(out),
        ],
        check=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    result = json.loads(out.read_text())
    assert result["reference"] == "occipital"
    assert len(result["rows"]) == 10
    for row in result["rows"]:
        assert abs(row["spectclf"] / row["anatomical"] - 1) <= 0.15, row
    # 60 % of the left posterior putamen's uptake removed: read there, on that side
    lesion = result["lesion"]
    assert lesion["lowest"] == "left_putamen_posterior"
    assert max(lesion["drop"], key=lesion["drop"].get) == "left_putamen_posterior"
    assert (
        lesion["drop"]["right_putamen_posterior"]
        < 0.1 * lesion["drop"]["left_putamen_posterior"]
    )
    assert (tmp_path / "template_regions.png").stat().st_size > 10_000
