"""Speed, memory and accuracy benchmarks of spectclf (``nox -s bench``,
``nox -s robustness``), each run from the repository root as
``python -m benchmarks.<script> [--help]``.

Scripts: ``run_benchmarks``, ``robustness``, ``flip_tta``, ``overlays``, ``saliency``,
``tuning_speed``, ``fit_path``, ``template_ratios`` and ``independent_cohorts`` (which
writes one cohort of its generator). What they share lives in helper modules, never in
another script: :mod:`benchmarks.cohorts` (the robustness cohorts),
:mod:`benchmarks.models` (the model factories), :mod:`benchmarks.fit_timing` (the fit
path's measurements) and :mod:`benchmarks.independent_cohorts` (a phantom generator
written without the library's phantom code). They use spectclf's public names only.
"""
