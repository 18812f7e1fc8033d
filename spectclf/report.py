"""Evaluation reports: ``metrics.json``, ``predictions.csv``, PNG plots, ``index.html``.

Every file is written to a temporary name and renamed when complete, so an
interrupted run never leaves a half-written report. :func:`write_predictions` is the
one writer of prediction tables (for reports and for ``spectclf predict``).
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

import numpy as np

from spectclf import plotting
from spectclf.metrics import get_metric, stage_report
from spectclf.model_io import write_atomic

__all__ = ["csv_safe", "save_figure", "write_predictions", "write_report"]


def csv_safe(value) -> str:
    """A text cell that a spreadsheet will not run as a formula.

    Cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return get a
    leading apostrophe (OWASP's advice against CSV injection).

    Examples
    --------
    >>> csv_safe("=1+2"), csv_safe("P001")
    ("'=1+2", 'P001')
    """
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_predictions(
    path,
    patients,
    proba,
    classes,
    *,
    y_true=None,
    fold=None,
    extra_columns: dict | None = None,
) -> Path:
    """Write one row per patient: id, (true stage), predicted stage, (fold),
    probabilities and any extra columns, sorted by patient id.

    Parameters
    ----------
    path : str or Path
    patients : array-like of shape (n,)
    proba : ndarray of shape (n, n_classes)
    classes : array-like of shape (n_classes,)
    y_true, fold : array-like of shape (n,), default=None
        Added as ``true_stage`` and ``fold`` (1-based) when given.
    extra_columns : dict of str -> array-like, default=None
        Further columns (e.g. uncertainty).

    Returns
    -------
    path : Path
    """
    classes = np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    pred = classes[np.argmax(proba, axis=1)]
    extra = extra_columns or {}
    header = ["patient_id"] + (["true_stage"] if y_true is not None else [])
    header += ["predicted_stage"] + (["fold"] if fold is not None else [])
    header += [f"p_stage_{c}" for c in classes] + list(extra)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    patients = np.asarray(patients)
    for i in np.argsort(patients.astype(str), kind="stable"):
        row = [csv_safe(patients[i])]
        if y_true is not None:
            row.append(y_true[i])
        row.append(pred[i])
        if fold is not None:
            row.append(int(fold[i]) + 1)
        row += [f"{p:.4f}" for p in proba[i]]
        row += [
            f"{v[i]:.4f}" if isinstance(v[i], (float, np.floating)) else csv_safe(v[i])
            for v in extra.values()
        ]
        writer.writerow(row)
    text = buf.getvalue()
    return write_atomic(path, lambda tmp: tmp.write_text(text, newline=""))


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


def uncertainty_summary(result, threshold: float = 0.5, n_least: int = 10) -> dict:
    """Which out-of-fold predictions were least certain, and were they wrong more often?

    Uncertainty is ``1 - max(probability)`` of each patient's out-of-fold prediction;
    patients above ``threshold`` are *flagged*.
    """
    unc = 1.0 - np.asarray(result.proba).max(axis=1)
    wrong = np.asarray(result.y_true) != np.asarray(result.y_pred)
    flagged = unc > threshold
    order = np.argsort(-unc, kind="stable")[:n_least]

    def rate(mask):
        return float(wrong[mask].mean()) if mask.any() else None

    return {
        "threshold": threshold,
        "flagged": int(flagged.sum()),
        "error_rate_flagged": rate(flagged),
        "error_rate_rest": rate(~flagged),
        "least_certain": [
            {
                "patient_id": csv_safe(result.patients[i]),
                "true_stage": result.y_true[i],
                "predicted_stage": result.y_pred[i],
                "uncertainty": round(float(unc[i]), 3),
            }
            for i in order
        ],
    }


def save_figure(fig, path: Path) -> str:
    """Save a figure as PNG atomically, close it, return the file name."""
    import matplotlib.pyplot as plt

    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path.name


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
        the slice montage with saliency overlays.
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
    metrics["uncertainty"] = uncertainty_summary(result)
    text = json.dumps(_jsonable(metrics), indent=2)
    write_atomic(out / "metrics.json", lambda tmp: tmp.write_text(text))
    write_predictions(
        out / "predictions.csv",
        result.patients,
        result.proba,
        classes,
        y_true=result.y_true,
        fold=result.fold,
    )

    figures = [
        (
            "Confusion matrix",
            save_figure(
                plotting.plot_confusion_matrix(result.confusion_matrix, classes),
                out / "confusion_matrix.png",
            ),
        ),
        (
            "Scores per fold",
            save_figure(
                plotting.plot_fold_scores(result.per_fold), out / "fold_scores.png"
            ),
        ),
        (
            "ROC curves",
            save_figure(
                plotting.plot_roc_ovr(result.y_true, result.proba, classes),
                out / "roc_ovr.png",
            ),
        ),
        (
            "Calibration (reliability diagram)",
            save_figure(
                plotting.plot_reliability(result.y_true, result.proba, classes),
                out / "reliability.png",
            ),
        ),
    ]
    if result.histories:
        figures.append(
            (
                "Learning curves",
                save_figure(
                    plotting.plot_learning_curves(result.histories),
                    out / "learning_curves.png",
                ),
            )
        )
    if montage is not None:
        figures.append(
            (
                "Slices per stage",
                save_figure(
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
    _write_html(
        out,
        title,
        result,
        baseline,
        figures,
        table_text,
        info or {},
        metrics["uncertainty"],
    )
    return out / "index.html"


def _uncertainty_html(unc: dict) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.0f} %"

    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(r[k]))}</td>"
            for k in ("patient_id", "true_stage", "predicted_stage", "uncertainty")
        )
        + "</tr>"
        for r in unc["least_certain"]
    )
    return (
        "<h2>Least certain patients</h2><p>Uncertainty = 1 - the highest stage "
        f"probability (out-of-fold). {unc['flagged']} patient(s) above "
        f"{unc['threshold']} are flagged; wrong: {pct(unc['error_rate_flagged'])} of "
        f"flagged vs {pct(unc['error_rate_rest'])} of the rest.</p><table><tr>"
        "<th>patient</th><th>true stage</th><th>predicted</th><th>uncertainty</th>"
        f"</tr>{rows}</table>"
    )


def _write_html(out, title, result, baseline, figures, table_text, info, unc):
    def row(name):
        s = result.summary[name]
        lo, hi = s["ci95"]
        cells = [
            f"<td>{html.escape(get_metric(name).label)}</td>",
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
{_uncertainty_html(unc)}
{imgs}
</body></html>
"""
    write_atomic(out / "index.html", lambda tmp: tmp.write_text(page))
