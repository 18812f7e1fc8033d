"""Binding ratios on a real healthy FP-CIT template, beside anatomical masks.

Given the paths of two public files (this script fetches nothing):

- ``symFPCITtemplate_MNI_norm.nii``: a healthy-control 123I-FP-CIT template in MNI
  space (repository MJFF-ResearchCommunity/Imaging, folder
  ``DAT_SPECT_functional_analysis/masks``; its licence is not stated, so it is not
  shipped);
- ``mni_basal_ganglia.nii.gz``: anatomical basal-ganglia masks in the same space
  (nipy, ``examples/data``; codes 14/16 left/right putamen, 39/53 left/right caudate),

it prints the anatomical binding ratios (mean in the mask / mean in occipital cortex -
1; occipital: MNI y < -72 mm, -2 < z < 40 mm, |x| < 40 mm, template > 0.18) beside what
:class:`spectclf.SBRFeatures` reads from the template loaded through
:func:`spectclf.load_volumes`, draws the spectclf regions over the template (axial
and coronal), and runs the lesion test: the template with the left posterior putamen's
uptake cut by 60 % must read lowest in the left posterior putamen.

    python -m benchmarks.template_ratios TEMPLATE.nii MASKS.nii.gz [--out DIR] [--json F]

Takes ~10 s. ``tests/test_template_ratios.py`` runs it when the two files are found.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from spectclf import SBRFeatures, load_volumes
from spectclf.anatomy import binding_ratio_regions

LABELS = {
    "left_putamen": 14,
    "right_putamen": 16,
    "left_caudate": 39,
    "right_caudate": 53,
}
#: regions compared: spectclf feature -> the anatomical region it stands for
COMPARED = {
    "putamen": "putamen",
    "putamen_anterior": "putamen anterior half",
    "putamen_posterior": "putamen posterior half",
    "caudate": "caudate",
    "caudate_head": "caudate head (y > 5, z < 16 mm)",
}
LESION = 0.6  # fraction of uptake removed from the left posterior putamen


def anatomical_regions(template: nib.Nifti1Image, masks: nib.Nifti1Image) -> dict:
    """Boolean masks on the template's grid: each anatomical region and the occipital
    reference, from the template's world coordinates (mm)."""
    labels = np.asarray(resample_from_to(masks, template, order=0).dataobj)
    ijk = np.indices(template.shape).reshape(3, -1)
    x, y, z = (template.affine[:3, :3] @ ijk + template.affine[:3, 3:]).reshape(
        3, *template.shape
    )
    data = np.asarray(template.dataobj, dtype=float)
    regions = {}
    for side in ("left", "right"):
        put = labels == LABELS[f"{side}_putamen"]
        cau = labels == LABELS[f"{side}_caudate"]
        split = np.median(y[put])
        regions[f"{side}_putamen"] = put
        regions[f"{side}_putamen_anterior"] = put & (y > split)
        regions[f"{side}_putamen_posterior"] = put & (y <= split)
        regions[f"{side}_caudate"] = cau
        regions[f"{side}_caudate_head"] = cau & (y > 5) & (z < 16)
    regions["reference"] = (
        (y < -72) & (z > -2) & (z < 40) & (np.abs(x) < 40) & (data > 0.18)
    )
    return regions


def ratios(data: np.ndarray, regions: dict) -> dict:
    ref = data[regions["reference"]].mean()
    return {
        k: float(data[m].mean() / ref - 1)
        for k, m in regions.items()
        if k != "reference"
    }


def read_with_spectclf(images: dict[str, nib.Nifti1Image]) -> dict:
    """SBRFeatures of each image, loaded as a user loads a cohort (reoriented)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "stage_1"
        folder.mkdir()
        for name, image in images.items():
            nib.save(image, folder / f"{name}.nii")
        data = load_volumes(tmp)
    features = SBRFeatures().fit(data.X)
    table = features.transform(data.X)
    names = features.get_feature_names_out()
    return {
        str(g): {
            "features": {
                n[4:]: float(v)
                for n, v in zip(names, row, strict=True)
                if n.startswith("sbr_")
            },
            "reference": str(ref),
            "volume": data.X[i, 0],
        }
        for i, (g, row, ref) in enumerate(
            zip(data.groups, table, features.references(data.X), strict=True)
        )
    }


def draw(volume: np.ndarray, path: Path) -> None:
    """The spectclf regions over the template: one axial and one coronal plane."""
    import matplotlib.pyplot as plt

    placed = binding_ratio_regions(volume)
    colours = {
        "caudate": "tab:blue",
        "caudate_head": "tab:cyan",
        "putamen_anterior": "tab:orange",
        "putamen_posterior": "tab:red",
        "reference": "tab:green",
    }
    put = np.argwhere(placed.masks["left_putamen"]).mean(0).round().astype(int)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    views = (
        ("axial (through the putamen)", lambda a: a[:, put[1], :]),
        ("coronal (through the putamen)", lambda a: a[put[0]]),
    )
    for ax, (title, cut) in zip(axes, views, strict=True):
        ax.imshow(cut(volume), cmap="gray")
        for name, colour in colours.items():
            keys = [name] if name == "reference" else [f"left_{name}", f"right_{name}"]
            for key in keys:
                m = cut(placed.masks[key]).astype(float)
                if m.any():
                    ax.contour(m, levels=[0.5], colors=colour, linewidths=1)
        ax.set_title(title)
        ax.set_xlabel("right -> left")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel("anterior -> posterior")
    axes[1].set_ylabel("superior -> inferior")
    handles = [
        plt.Line2D([], [], color=c, label=n.replace("_", " "))
        for n, c in colours.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8)
    fig.suptitle(
        f"spectclf regions on the FP-CIT template (reference: {placed.reference})"
    )
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("template", type=Path, help="symFPCITtemplate_MNI_norm.nii")
    p.add_argument("masks", type=Path, help="mni_basal_ganglia.nii.gz")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    template = nib.load(args.template)
    regions = anatomical_regions(template, nib.load(args.masks))
    data = np.asarray(template.dataobj, dtype=np.float32)
    anatomical = ratios(data, regions)

    lesioned = data.copy()
    lesioned[regions["left_putamen_posterior"]] *= 1 - LESION
    read = read_with_spectclf(
        {
            "template": nib.Nifti1Image(data, template.affine),
            "lesion": nib.Nifti1Image(lesioned, template.affine),
        }
    )
    print("region                 side   anatomical  spectclf  difference")
    rows = []
    for key, label in COMPARED.items():
        for side in ("left", "right"):
            a = anatomical[f"{side}_{key}"]
            s = read["template"]["features"][f"{side}_{key}"]
            rows.append({"region": key, "side": side, "anatomical": a, "spectclf": s})
            print(
                f"{label[:22]:22s} {side:5s}  {a:10.2f}  {s:8.2f}  {100 * (s / a - 1):+9.1f} %"
            )
    print(f"reference: {read['template']['reference']}")
    lesion = read["lesion"]["features"]
    lowest = min(lesion, key=lesion.get)
    drop = {k: read["template"]["features"][k] - v for k, v in lesion.items()}
    print(
        f"lesion test: lowest ratio in {lowest} ({lesion[lowest]:.2f}); largest drop in "
        f"{max(drop, key=drop.get)} ({max(drop.values()):.2f})"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    figure = args.out / "template_regions.png"
    draw(read["template"]["volume"], figure)
    print(f"regions drawn: {figure}")
    result = {
        "rows": rows,
        "reference": read["template"]["reference"],
        "lesion": {"ratios": lesion, "lowest": lowest, "drop": drop},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
