"""Mutation pass: plant one deliberate bug at a time and check that the tests catch it.

Each mutation is a one-line change (the first occurrence of ``old`` in ``file``
becomes ``new``), applied to a scratch copy of the repository; the listed tests then
run in that copy. A mutation the tests do not catch "survives". Run from the
repository root: ``python tools/mutation.py [--only N ...]``; the result table goes
to stdout and is merged (by mutation number) into ``benchmarks/results/mutation.md``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (what the bug is, file, old, new, tests that must catch it)
MUTATIONS = [
    (
        "evaluate does not pass groups to the estimator",
        "spectclf/model_selection.py",
        "est = fit_with_groups(est, X[train], y[train], groups[train])",
        "est = fit_with_groups(est, X[train], y[train], None)",
        "tests/test_leakage.py -k 'evaluate and repeated and classifier'",
    ),
    (
        "the patient partitions skip their leakage check (evaluate takes any splitter)",
        "spectclf/model_selection.py",
        "        check_no_patient_leakage([s for r in self.repeats for s in r], "
        "self._groups)",
        "        pass",
        "tests/test_model_selection.py -k leaky",
    ),
    (
        "tune's inner CV is not grouped",
        "spectclf/tuning.py",
        "partitions = make_partitions(X, y, groups, cv=cv, random_state=random_state)",
        "partitions = make_partitions(X, y, groups, cv=__import__("
        "'sklearn.model_selection').model_selection.StratifiedKFold(n_splits=int(cv), "
        "shuffle=True, random_state=random_state))",
        "tests/test_leakage.py -k 'tune and repeated and classifier and no-routing'",
    ),
    (
        "tune's trials get one patient per row instead of the groups",
        "spectclf/tuning.py",
        "            groups,\n            cv=partitions,",
        "            np.arange(len(y)),\n            cv=partitions,",
        "tests/test_leakage.py -k 'tune and repeated and classifier and no-routing'",
    ),
    (
        "tune's refit is fitted without groups",
        "spectclf/tuning.py",
        "clone(estimator).set_params(**quiet, **best_params), X, y, groups",
        "clone(estimator).set_params(**quiet, **best_params), X, y, None",
        "tests/test_leakage.py -k 'tune and repeated and classifier and no-routing'",
    ),
    (
        "the 95 % CI collapses to zero width",
        "spectclf/model_selection.py",
        "    half = stats.t.ppf(",
        "    half = 0 * stats.t.ppf(",
        "tests/test_model_selection.py -k match_the_metrics",
    ),
    (
        "per-stage recall measures the wrong stage",
        "spectclf/metrics.py",
        "    mask = y_true == stage",
        "    mask = y_pred == stage",
        "tests/test_metrics.py tests/test_model_selection.py -k 'recall or match'",
    ),
    (
        "QWK is computed unweighted",
        "spectclf/metrics.py",
        'weights="quadratic"',
        "weights=None",
        "tests/test_metrics.py tests/test_model_selection.py -k 'kappa or match'",
    ),
    (
        "PatientPipeline drops groups after a sampler without sample_indices_",
        "spectclf/sampling.py",
        '                    if not hasattr(fitted, "sample_indices_"):',
        "                    if False:",
        "tests/test_sampling.py -k sample_indices",
    ),
    (
        "early stopping does not restore the best weights",
        "spectclf/_skorch_net.py",
        "load_best=True",
        "load_best=False",
        "tests/test_classifier.py -k early_stopping",
    ),
    (
        "the CLI no longer validates --epochs",
        "spectclf/cli.py",
        "    if args.epochs < 1:",
        "    if False:",
        "tests/test_cli.py -k user_errors",
    ),
    (
        "the classifier's validation split ignores the groups it was given",
        "spectclf/patient_groups.py",
        "    groups = np.asarray(groups)\n    _, valid_idx =",
        "    groups = duplicate_groups(X)\n    _, valid_idx =",
        "tests/test_classifier.py -k grouped_internal",
    ),
    (
        "a plain Pipeline's final step is fitted without the groups",
        "spectclf/patient_groups.py",
        'return estimator.fit(X, y, **{f"{name}__groups": groups})',
        "return estimator.fit(X, y)",
        "tests/test_model_selection.py -k passes_groups",
    ),
    (
        "a sampler in a plain imblearn Pipeline is not refused",
        "spectclf/patient_groups.py",
        "        if samplers:",
        "        if False:",
        "tests/test_leakage.py -k refused_by_evaluate",
    ),
    (
        "pickled model files are loaded without trust",
        "spectclf/model_io.py",
        "        if not trust_pickle:",
        "        if False:",
        "tests/test_model_io.py -k pickle",
    ),
    (
        "Ctrl-C inside fit is swallowed again",
        "spectclf/_skorch_net.py",
        "            raise Interrupted from exc",
        "            return self",
        "tests/test_interrupts_and_outputs.py -k 'propagates'",
    ),
    (
        "a stage with too few patients for the folds is not refused",
        "spectclf/model_selection.py",
        "            if n < self.n_splits:",
        "            if False:",
        "tests/test_model_selection.py -k refuses_missing",
    ),
    (
        "CSV cells are not escaped",
        "spectclf/report.py",
        'return "\'" + text if',
        "return text if",
        "tests/test_interrupts_and_outputs.py -k csv_safe",
    ),
    (
        "integrated gradients lose their brain-level baseline",
        "spectclf/explain.py",
        "attribution = (total / steps * (x - baseline)).sum(dim=1)",
        "attribution = (total / steps * x).sum(dim=1)",
        "tests/test_explain.py -k integrated",
    ),
    (
        "load_volumes ignores the recorded voxel spacing",
        "spectclf/io/assemble.py",
        "max(1, round(n * s / t))",
        "max(1, round(n * 1.0 / t))",
        "tests/test_io.py -k spacing",
    ),
    (
        "phantom striatum masks are not flipped with the volume",
        "spectclf/datasets/_phantoms.py",
        "                    striatum = np.flip(striatum, axis=axis)\n",
        "",
        "tests/test_datasets.py -k masks",
    ),
    (
        "calibrated resamples draw 'correct' with 1 - confidence",
        "spectclf/metrics.py",
        "correct = rng.random((n_resamples, len(conf))) < conf",
        "correct = rng.random((n_resamples, len(conf))) > conf",
        "tests/test_metrics.py",
    ),
    (
        "the sampling floor forgets the bin weights",
        "spectclf/metrics.py",
        "* counts[used] / len(conf)",
        "/ used.sum()",
        "tests/test_metrics.py",
    ),
    (
        "calibration_p_value counts the calibrated resamples *below* the observed ECE",
        "spectclf/metrics.py",
        "return float(np.mean(ece >= observed - 1e-12))",
        "return float(np.mean(ece <= observed + 1e-12))",
        "tests/test_metrics.py -k p_value",
    ),
    (
        "the logit adjustment is subtracted instead of added",
        "spectclf/losses.py",
        "logits = logits + self.tau * self.log_prior",
        "logits = logits - self.tau * self.log_prior",
        "tests/test_trust.py -k logit",
    ),
    (
        "predict does not flag patients whose colours lie off the colormap",
        "spectclf/workflows.py",
        'extra["check"] = np.where(uncertain | off_table, "yes", "no")',
        'extra["check"] = np.where(uncertain, "yes", "no")',
        "tests/test_cli.py -k colours_off",
    ),
    (
        "integrated gradients lose their 3x3x3 median filter",
        "spectclf/explain.py",
        "size=(1, 3, 3, 3)",
        "size=(1, 1, 1, 1)",
        "tests/test_explain.py -k median",
    ),
    (
        "predict --colormap is ignored (the model file's colormap is used)",
        "spectclf/load_options.py",
        '        options["colormap"] = colormap\n',
        "        pass\n",
        "tests/test_cli.py -k colours_off",
    ),
    (
        "a model saved with device='cuda' resolves its precision on the missing GPU",
        "spectclf/_skorch_net.py",
        'precision=resolve_precision(p["precision"], device)',
        'precision=resolve_precision(p["precision"], resolve_device(p["device"]))',
        "tests/test_model_io.py -k gpu",
    ),
    (
        "striatal ratios as differences (not scale invariant)",
        "spectclf/nets.py",
        "means[:, :-1] / means[:, -1:].clamp_min(1e-6) - 1.0",
        "means[:, :-1] - means[:, -1:]",
        "tests/test_nets.py -k small_blocks",
    ),
    (
        "the ratio head drops its ratios (the network alone)",
        "spectclf/nets.py",
        "            parts.append(self.ratio_norm(self.ratios(x)).to(parts[0].dtype))",
        "            parts.append(torch.zeros_like(self.ratio_norm(self.ratios(x))))",
        "tests/test_nets.py -k head_reads",
    ),
    (
        "the striatal regions are whole voxels of the block (small blocks lose some)",
        "spectclf/nets.py",
        "    k = max(1, math.ceil(40 / min(shape)))",
        "    k = 1",
        "tests/test_nets.py -k small_blocks",
    ),
    (
        "saliency does not give classify the input (the ratio head cannot read it)",
        "spectclf/explain.py",
        "module.classify(acts, x) if takes_input else module.classify(acts)",
        "module.classify(acts)",
        "tests/test_nets.py -k reaches_the_network",
    ),
    (
        "the ratio head is allowed without a striatum block",
        "spectclf/sampling.py",
        "    if get_params is None or not get_params(deep=False).get("
        '"module__striatal_ratios"):',
        "    if True:",
        "tests/test_nets.py -k reaches_the_network",
    ),
    (
        "PatientPipeline.fit does not re-check the steps (set_params bypasses)",
        "spectclf/sampling.py",
        "        check_network_input(self.steps[:-1], self._final_estimator)",
        "        pass",
        "tests/test_nets.py -k reaches_the_network",
    ),
    (
        "the ratio head accepts a striatum block of any size",
        "spectclf/sampling.py",
        " or last.size != BLOCK_SIZE:",
        ":",
        "tests/test_nets.py -k reaches_the_network",
    ),
    (
        "slice folders in neurological view are not mirrored by flip_lr",
        "spectclf/io/slices.py",
        "        if flip_lr:\n            out = out[..., ::-1]",
        "        if False:\n            out = out[..., ::-1]",
        "tests/test_independent_cohorts.py",
    ),
    (
        "the slice loaders keep overlays by default",
        "spectclf/io/slices.py",
        '        if overlays == "remove" and out.shape[0] == 1:',
        '        if overlays == "keep" and out.shape[0] == 1:',
        "tests/test_overlays.py",
    ),
    (
        "a JPEG colour bar is not followed beyond its exactly static pixels",
        "spectclf/io/overlays.py",
        "    mask = ndimage.binary_propagation(mask, structure=eight, mask=near | mask)",
        "    mask = mask",
        "tests/test_independent_cohorts.py",
    ),
    (
        "static pixels above zero count as overlays (a non-black background)",
        "spectclf/io/overlays.py",
        "    foreground = level - level.min() > _BACKGROUND",
        "    foreground = level > _BACKGROUND",
        "tests/test_overlays.py -k background",
    ),
    (
        "the localiser's hot voxels are taken outside the brain too",
        "spectclf/anatomy.py",
        "        hot = brain & (v > thr)",
        "        hot = v > thr",
        "tests/test_overlays.py -k blob",
    ),
    (
        "the localiser's brain is every region above its threshold",
        "spectclf/anatomy.py",
        "    brain = _largest_component(v > 0.6 * brain_level)",
        "    brain = v > 0.6 * brain_level",
        "tests/test_overlays.py -k blob",
    ),
    (
        "overlays are blanked in patients with too few slices to tell",
        "spectclf/io/overlays.py",
        "    if slices.shape[0] < MIN_OVERLAY_SLICES:",
        "    if False:",
        "tests/test_overlays.py -k enough_slices",
    ),
    (
        "the command line does not keep --flip-lr for predict",
        "spectclf/cli.py",
        '"slice_order", "flip_lr")',
        '"slice_order", "flip_lr") | {"flip_lr": False}',
        "tests/test_cli.py -k travel",
    ),
    (
        "colormap='auto' chooses among every matplotlib map (periodic, cyclic too)",
        "spectclf/colour.py",
        "    return tuple(n for n in sorted(matplotlib.colormaps) if _invertible(n))",
        "    return tuple(sorted(matplotlib.colormaps))",
        "tests/test_colour.py -k 'jpeg_hot or leaves_out'",
    ),
    (
        "a black or white canvas is read through the colormap",
        "spectclf/io/slices.py",
        "                values[covered] = 0.0",
        "                pass",
        "tests/test_colour.py -k canvas",
    ),
    (
        "the canvas takes part in the colormap detection",
        "spectclf/io/slices.py",
        "        sample = sample[rest] if rest.any() else sample",
        "        sample = sample",
        "tests/test_colour.py -k canvas",
    ),
    (
        "every enclosed canvas-coloured group is canvas (white peaks inside the head)",
        "spectclf/colour.py",
        "        keep |= (count > 0) & (total < 0.5 * count)",
        "        keep |= count > 0",
        "tests/test_colour.py -k canvas",
    ),
    (
        "overlay pixels are set to zero instead of filled from beside them",
        "spectclf/io/slices.py",
        "            out = fill_overlays(out, mask)",
        "            out[..., mask] = 0.0",
        "tests/test_overlays.py -k crosshair",
    ),
    (
        "the colour error counts the overlay pixels replaced",
        "spectclf/io/slices.py",
        "                covered |= mask",
        "                pass",
        "tests/test_overlays.py -k grey",
    ),
    (
        "weight averaging keeps the BatchNorm statistics of the last weights",
        "spectclf/_skorch_net.py",
        "        recompute_batchnorm(net, dataset_train)",
        "        pass",
        "tests/test_weight_averaging.py -k batchnorm",
    ),
    (
        "weight averaging also averages the last annealed epoch",
        "spectclf/_skorch_net.py",
        "if len(net.history) <= self.start:",
        "if len(net.history) < self.start:",
        "tests/test_weight_averaging.py -k mean",
    ),
    (
        "BatchNorm statistics measured anew as a running average",
        "spectclf/_skorch_net.py",
        "        m.momentum = None",
        "        m.momentum = 0.1",
        "tests/test_weight_averaging.py -k batchnorm",
    ),
    (
        "BatchNorm statistics measured on the held-out validation patients too",
        "spectclf/_skorch_net.py",
        "        dataset_train, _ = net.get_split_datasets(X, y)",
        "        dataset_train = net.get_dataset(X, y)",
        "tests/test_weight_averaging.py -k batchnorm",
    ),
    (
        "the CORN head has one output per stage instead of one per threshold",
        "spectclf/losses.py",
        "        return n_classes - 1  # one conditional per threshold",
        "        return n_classes  # one conditional per threshold",
        "tests/test_trust.py -k ordinal_classifier",
    ),
    (
        "temperature scaling keeps the lower bound instead of the fitted temperature",
        "spectclf/calibration.py",
        "self.temperature_ = float(np.exp(best.x))",
        "self.temperature_ = float(low)",
        "tests/test_trust.py -k temperature",
    ),
    (
        "as_volumes gives (n, D, H, W) input no channel axis",
        "spectclf/arrays.py",
        "    X = X.reshape(X.shape[:1] + (1,) * (5 - X.ndim) + X.shape[1:])",
        "    X = X if X.ndim == 4 else "
        "X.reshape(X.shape[:1] + (1,) * (5 - X.ndim) + X.shape[1:])",
        "tests/test_classifier.py -k 4d_input",
    ),
    (
        "each repeat's time is the sum over all repeats' folds",
        "spectclf/model_selection.py",
        "sum(f.wall_time for f in folds if f.repeat == r)",
        "sum(f.wall_time for f in folds)",
        "tests/test_cli.py -k evaluate_writes",
    ),
    (
        "StriatumCrop declares no constraint for size",
        "spectclf/transforms.py",
        '        "size": [Interval(Real, 0, 2, closed="right")],\n',
        "",
        "tests/test_parameter_validation.py -k StriatumCrop",
    ),
    (
        "the default pruner's first rung ignores the number of epochs",
        "spectclf/tuning.py",
        "min_resource=max(1, round(max_epochs / 5))",
        "min_resource=2",
        "tests/test_tuning.py -k default_pruner_judges",
    ),
    (
        "the default pruner keeps the best half instead of the best third",
        "spectclf/tuning.py",
        "round(max_epochs / 5)), reduction_factor=3",
        "round(max_epochs / 5)), reduction_factor=2",
        "tests/test_tuning.py -k default_pruner_judges",
    ),
    (
        "tune builds its default pruner without the first fold's epochs",
        "spectclf/tuning.py",
        "pruner=pruner or default_pruner(first_fold_epochs)",
        "pruner=pruner or default_pruner()",
        "tests/test_tuning.py -k sizes_its_default_pruner",
    ),
    (
        "the first fold's epoch reports never stop a trial",
        "spectclf/tuning.py",
        'raise optuna.TrialPruned(f"pruned after epoch {len(net.history)}")',
        "pass",
        "tests/test_tuning.py -k pruned_trial_stops_inside",
    ),
    (
        "the pruner replay charges a pruned trial its whole time",
        "benchmarks/pruning_replay.py",
        "cost += stopped",
        "cost += wall",
        "tests/test_pruning_replay.py",
    ),
    (
        "tune prunes within the first fold by default",
        "spectclf/tuning.py",
        "    epoch_pruning: bool = False,",
        "    epoch_pruning: bool = True,",
        "tests/test_tuning.py -k by_default",
    ),
    (
        "tune_and_save's helper workers take every core",
        "spectclf/workflows.py",
        "threads = max(1, before // n_workers)",
        "threads = before",
        "tests/test_workflows.py -k starts_helper_workers",
    ),
]


def run_one(k: int, scratch: Path) -> tuple[str, float]:
    what, file, old, new, tests = MUTATIONS[k]
    path = scratch / file
    source = path.read_text()
    if old not in source:
        return "NOT APPLIED (text not found)", 0.0
    path.write_text(source.replace(old, new, 1))
    start = time.perf_counter()
    try:
        rc = subprocess.run(
            f"{sys.executable} -m pytest -x -q -p no:cacheprovider {tests}",
            shell=True,
            cwd=scratch,
            capture_output=True,
            timeout=900,
        ).returncode
    finally:
        path.write_text(source)
    elapsed = time.perf_counter() - start
    if rc == 5:
        return "NO TESTS SELECTED", elapsed
    return ("killed" if rc != 0 else "SURVIVED"), elapsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", type=int, nargs="*", help="mutation numbers to run")
    args = p.parse_args(argv)
    chosen = args.only if args.only else range(len(MUTATIONS))
    scratch = Path(tempfile.mkdtemp(prefix="spectclf-mutation-"))
    shutil.copytree(ROOT / "spectclf", scratch / "spectclf")
    shutil.copytree(ROOT / "tests", scratch / "tests")
    shutil.copy(ROOT / "pyproject.toml", scratch / "pyproject.toml")
    # some tests load the benchmarks' independent cohort generator: without the
    # package those tests would error, and an error would pass for a kill
    (scratch / "benchmarks").mkdir()
    for module in (ROOT / "benchmarks").glob("*.py"):
        shutil.copy(module, scratch / "benchmarks" / module.name)
    where = subprocess.run(
        [sys.executable, "-c", "import spectclf; print(spectclf.__file__)"],
        cwd=scratch,
        capture_output=True,
        text=True,
    ).stdout
    if not where.startswith(str(scratch)):
        raise SystemExit(f"the scratch copy is not the one imported: {where}")
    lines = ["| # | planted bug | tests | outcome | s |", "|---|---|---|---|---|"]
    survivors = 0
    for k in chosen:
        outcome, elapsed = run_one(k, scratch)
        survivors += outcome != "killed"
        what, _, _, _, tests = MUTATIONS[k]
        lines.append(f"| {k} | {what} | `{tests}` | {outcome} | {elapsed:.0f} |")
        print(lines[-1], flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    # merge with the stored rows of earlier (partial) runs, by mutation number
    path = out / "mutation.md"
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines()[2:]:
            cells = line.split("|")
            if len(cells) > 2 and cells[1].strip().isdigit():
                rows[int(cells[1])] = line
    for line in lines[2:]:
        rows[int(line.split("|")[1])] = line
    path.write_text("\n".join(lines[:2] + [rows[k] for k in sorted(rows)]) + "\n")
    print(f"\n{len(list(chosen)) - survivors} killed, {survivors} not killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
