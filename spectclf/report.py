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
from spectclf.comparison import format_p_value
from spectclf.metrics import get_metric, stage_report
from spectclf.utils import write_atomic

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
    repeat=None,
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
    y_true, fold, repeat : array-like of shape (n,), default=None
        Added as ``true_stage``, ``repeat`` and ``fold`` (both 1-based) when
        given; with repeats a patient has one row per repeat.
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
    header += ["predicted_stage"] + (["repeat"] if repeat is not None else [])
    header += ["fold"] if fold is not None else []
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
        if repeat is not None:
            row.append(int(repeat[i]) + 1)
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
    comparison=None,
    provenance: dict | None = None,
    timing: dict | None = None,
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
        Extra facts (data, model) listed in the report and ``metrics.json``.
    comparison : ModelComparison, default=None
        :func:`~spectclf.compare_models` of the model against the baseline: the
        "model vs baseline" section (table, plot, one sentence).
    provenance : dict, default=None
        :func:`spectclf.provenance.collect_provenance`, stored in ``metrics.json``
        and summarised in the report.
    timing : dict, default=None
        Wall times, kept apart in ``metrics.json`` (``"timing"``): everything else
        in the file is reproduced exactly by the same run on the same input.

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
        "per_repeat": result.per_repeat,
        "n_repeats": result.n_repeats,
        "classes": classes,
        "info": info or {},
    }
    if baseline is not None:
        metrics["baseline"] = {
            "summary": baseline.summary,
            "per_fold": baseline.per_fold,
            "per_repeat": baseline.per_repeat,
        }
    if comparison is not None:
        metrics["comparison"] = comparison.to_dict()
    metrics["uncertainty"] = uncertainty_summary(result)
    if provenance is not None:
        metrics["provenance"] = provenance
    metrics["timing"] = {"fit_time_s": result.fit_time, **(timing or {})}
    text = json.dumps(_jsonable(metrics), indent=2)
    write_atomic(out / "metrics.json", lambda tmp: tmp.write_text(text))
    write_predictions(
        out / "predictions.csv",
        result.oof["patients"],
        result.oof["proba"],
        classes,
        y_true=result.oof["y_true"],
        fold=result.oof["fold"],
        repeat=result.oof["repeat"],
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
    if comparison is not None:
        figures.insert(
            0,
            (
                "Model vs baseline: paired differences",
                save_figure(
                    plotting.plot_paired_differences(comparison),
                    out / "paired_differences.png",
                ),
            ),
        )
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
        {**(info or {}), **(timing or {})},
        metrics["uncertainty"],
        comparison,
        provenance,
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


def _interval_note(result) -> str:
    folds = len(next(iter(result.per_fold.values())))
    what = (
        f"{result.n_repeats} repeats of {folds // result.n_repeats}-fold CV"
        if result.n_repeats > 1
        else f"{folds}-fold CV"
    )
    return (
        f"Mean and standard deviation over the {folds} folds of {what}; the 95 % CI "
        "is the corrected resampled t-interval (Nadeau &amp; Bengio), which allows for "
        "folds sharing training patients instead of treating folds as independent."
        + (
            " Plots and the per-stage table show the first repeat."
            if result.n_repeats > 1
            else ""
        )
    )


def _comparison_html(comparison) -> str:
    if comparison is None:
        return ""
    a, b = comparison.names
    pct = round(100 * comparison.confidence)
    rows = "".join(
        f"<tr><td>{html.escape(m.label)}</td><td>{m.mean_a:.3f}</td>"
        f"<td>{m.mean_b:.3f}</td><td>{m.estimate:+.3f}</td>"
        f"<td>[{m.ci_low:+.3f}, {m.ci_high:+.3f}]</td><td>{html.escape(format_p_value(m.p_value))}</td></tr>"
        for m in comparison.metrics.values()
    )
    return (
        f"<h2>{html.escape(a)} vs {html.escape(b)}</h2>"
        f"<p><b>{html.escape(comparison.sentence())}</b></p>"
        f"<table><tr><th>metric</th><th>{html.escape(a)}</th><th>{html.escape(b)}</th>"
        f"<th>difference</th><th>{pct} % CI</th><th>p</th></tr>{rows}</table>"
        f"<p>Both models were scored on identical patient partitions; the "
        f"interval and p-value come from the {html.escape(comparison.method)}. "
        "A p-value over cross-validation partitions speaks of this modelling "
        "procedure on patients like these, not of other sites; see "
        '<a href="methods.md">methods.md</a>.</p>'
    )


def _provenance_html(prov) -> str:
    if not prov:
        return ""
    v = ", ".join(f"{k} {val}" for k, val in prov["versions"].items())
    m = prov["machine"]
    data = prov["data"]
    files = (
        f"; {data['n_files']} files, SHA-256 {data['files_sha256'][:16]}…"
        if "files_sha256" in data
        else ""
    )
    items = [
        ("software", v),
        ("command", " ".join(prov["command"])),
        ("random_state", prov["random_state"]),
        ("input", f"array SHA-256 {data['array_sha256'][:16]}…{files}"),
        (
            "machine",
            f"{m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch "
            f"threads, device {m.get('device', 'n/a')}",
        ),
        ("estimator", f"{prov['estimator']} ({len(prov['params'])} parameters)"),
    ]
    lis = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(str(val))}</li>" for k, val in items
    )
    return (
        "<h2>Provenance</h2><ul>"
        + lis
        + "</ul><p>Every parameter, each repeat's patient partition and the full "
        'hashes are in <a href="metrics.json">metrics.json</a> ("provenance").</p>'
    )


def _write_html(
    out, title, result, baseline, figures, table_text, info, unc, comparison, prov
):
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
<p>{_interval_note(result)}</p>
{_comparison_html(comparison)}
<h2>Per stage (pooled out-of-fold predictions)</h2>
<pre>{html.escape(table_text)}</pre>
{_uncertainty_html(unc)}
{imgs}
{_provenance_html(prov)}
</body></html>
"""
    write_atomic(out / "index.html", lambda tmp: tmp.write_text(page))
