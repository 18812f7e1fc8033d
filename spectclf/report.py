"""Evaluation reports: ``metrics.json``, ``predictions.csv``, PNG plots, ``index.html``."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np

from spectclf import plotting
from spectclf.metrics import stage_report

__all__ = ["write_report"]

_LABELS = {
    "balanced_accuracy": "Balanced accuracy",
    "f1_macro": "Macro F1",
    "qwk": "Quadratic weighted kappa",
    "mae": "Mean absolute error (stages)",
    "roc_auc_ovr": "ROC AUC (one-vs-rest)",
}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _metric_label(name: str) -> str:
    if name.startswith("recall_stage_"):
        return f"Recall, stage {name.rsplit('_', 1)[1]}"
    return _LABELS.get(name, name)


def write_report(
    out_dir,
    result,
    *,
    title: str = "spectclf evaluation",
    montage=None,
    baseline=None,
    info: dict | None = None,
) -> Path:
    """Write a report folder for a :func:`~spectclf.evaluate` result.

    Parameters
    ----------
    out_dir : str or Path
        Created if needed.
    result : Bunch
        Returned by :func:`spectclf.evaluate`.
    title : str
    montage : dict, default=None
        ``{"X": volumes, "y": stages, "saliency": maps or None, "patients": ids}`` for
        the slice montage with Grad-CAM overlays.
    baseline : Bunch, default=None
        A second :func:`~spectclf.evaluate` result (e.g. the SBR baseline) shown side
        by side in the summary table.
    info : dict, default=None
        Extra facts (data, model, timings) listed in the report and ``metrics.json``.

    Returns
    -------
    index : Path
        The ``index.html`` file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classes = result.classes
    metrics = {
        "summary": result.summary,
        "per_fold": result.per_fold,
        "confusion_matrix": result.confusion_matrix,
        "classes": classes,
        "fit_time_s": result.fit_time,
        "info": info or {},
    }
    if baseline is not None:
        metrics["baseline"] = {
            "summary": baseline.summary,
            "per_fold": baseline.per_fold,
        }
    (out / "metrics.json").write_text(json.dumps(_jsonable(metrics), indent=2))

    with open(out / "predictions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["patient_id", "true_stage", "predicted_stage", "fold"]
            + [f"p_stage_{c}" for c in classes]
        )
        for i in np.argsort(result.patients.astype(str), kind="stable"):
            writer.writerow(
                [
                    result.patients[i],
                    result.y_true[i],
                    result.y_pred[i],
                    int(result.fold[i]) + 1,
                ]
                + [f"{p:.4f}" for p in result.proba[i]]
            )

    figures = [
        (
            "Confusion matrix",
            _save(
                plotting.plot_confusion_matrix(result.confusion_matrix, classes),
                out / "confusion_matrix.png",
            ),
        ),
        (
            "Scores per fold",
            _save(plotting.plot_fold_scores(result.per_fold), out / "fold_scores.png"),
        ),
        (
            "ROC curves",
            _save(
                plotting.plot_roc_ovr(result.y_true, result.proba, classes),
                out / "roc_ovr.png",
            ),
        ),
    ]
    if result.histories:
        figures.append(
            (
                "Learning curves",
                _save(
                    plotting.plot_learning_curves(result.histories),
                    out / "learning_curves.png",
                ),
            )
        )
    if montage is not None:
        figures.append(
            (
                "Slices per stage",
                _save(
                    plotting.plot_stage_montage(
                        montage["X"],
                        montage["y"],
                        saliency=montage.get("saliency"),
                        patient_ids=montage.get("patients"),
                    ),
                    out / "stage_montage.png",
                ),
            )
        )

    table_text = stage_report(result.y_true, result.y_pred, print_=False)
    _write_html(out, title, result, baseline, figures, table_text, info or {})
    return out / "index.html"


def _write_html(out, title, result, baseline, figures, table_text, info):
    def row(name):
        s = result.summary[name]
        lo, hi = s["ci95"]
        cells = [
            f"<td>{html.escape(_metric_label(name))}</td>",
            f"<td>{s['mean']:.3f} ± {s['std']:.3f}</td>",
            f"<td>[{lo:.3f}, {hi:.3f}]</td>",
        ]
        if baseline is not None:
            b = baseline.summary.get(name)
            cells.append(
                f"<td>{b['mean']:.3f} ± {b['std']:.3f}</td>" if b else "<td></td>"
            )
        return "<tr>" + "".join(cells) + "</tr>"

    head = (
        "<tr><th>metric</th><th>mean ± sd over folds</th><th>95% CI of the "
        "mean</th>"
        + ("<th>SBR baseline</th>" if baseline is not None else "")
        + "</tr>"
    )
    rows = "\n".join(row(n) for n in result.summary)
    facts = "".join(
        f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>"
        for k, v in info.items()
    )
    imgs = "\n".join(
        f'<h2>{html.escape(t)}</h2><img src="{html.escape(f)}" alt="{html.escape(t)}">'
        for t, f in figures
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
        padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc;
        padding: 4px 10px; text-align: left; }}
img {{ max-width: 100%; border: 1px solid #eee; }} pre {{ background: #f6f6f6;
        padding: 1em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Scores from patient-grouped, stage-stratified cross-validation: no patient is ever
in the training and the test part of a fold. Per-patient predictions are in
<a href="predictions.csv">predictions.csv</a>; all numbers in
<a href="metrics.json">metrics.json</a>.</p>
<ul>{facts}</ul>
<table>{head}
{rows}</table>
<h2>Per stage (pooled out-of-fold predictions)</h2>
<pre>{html.escape(table_text)}</pre>
{imgs}
</body></html>
"""
    (out / "index.html").write_text(page)
