"""Developer tasks: ``nox -s tests``, ``nox -s demo``, ``nox -s lint``, ``nox -s docs``,
``nox -s bench``, ``nox -s robustness``.

Every environment installs spectclf from ``pyproject.toml`` with ``constraints.txt``,
which pins the CPU build of torch so that no CUDA wheels are ever downloaded.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

CONSTRAINTS = ("-c", "constraints.txt")


def _install(session: nox.Session, extras: str) -> None:
    session.install(*CONSTRAINTS, "-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (slow end-to-end tests excluded; add ``-- -m slow``)."""
    _install(session, "test")
    args = session.posargs or ["-m", "not slow and not gpu"]
    session.run("python", "-m", "pytest", *args, env={"MPLBACKEND": "Agg"})


@nox.session
def demo(session: nox.Session) -> None:
    """Build the demo cohort, cross-validate the default model, write the report."""
    _install(session, "test")
    args = session.posargs or ["--out", "spectclf-demo"]
    session.run("spectclf", "demo", *args, env={"MPLBACKEND": "Agg"})


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and imports with ruff."""
    session.install("ruff")
    session.run(
        "ruff",
        "check",
        "spectclf",
        "tests",
        "examples",
        "benchmarks",
        "tools",
        "noxfile.py",
        *session.posargs,
    )


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the HTML docs (warnings are errors) and run the example gallery."""
    _install(session, "docs")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
        env={"MPLBACKEND": "Agg"},
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Measure speed, memory and CV scores; writes benchmarks/results/."""
    _install(session, "bench")
    session.run(
        "python",
        "-m",
        "benchmarks.run_benchmarks",
        *session.posargs,
        env={"MPLBACKEND": "Agg"},
    )


@nox.session(default=False)
def robustness(session: nox.Session) -> None:
    """Patient-grouped CV of the default pipeline and the SBR baseline on four
    differently generated cohorts (whole head, slab, shifted/zoomed, jet JPEG);
    ``nox -s robustness -- --seed 1`` draws the four again with another seed;
    ``-- --cohorts indep_A,indep_B,indep_C`` runs the cohorts of
    ``benchmarks.independent_cohorts``, a generator written without the library's
    phantom code."""
    _install(session, "bench")
    session.run(
        "python",
        "-m",
        "benchmarks.robustness",
        *session.posargs,
        env={"MPLBACKEND": "Agg"},
    )
