"""The gallery examples run end to end (slow: ~3 minutes; run with -m slow)."""

from __future__ import annotations

import runpy
from pathlib import Path

import matplotlib
import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("plot_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, monkeypatch, capsys):
    matplotlib.use("Agg")
    monkeypatch.setattr("matplotlib.pyplot.show", lambda *a, **k: None)
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    # the gallery shows what examples print: plain numbers, not NumPy reprs
    assert "np.float" not in out and "np.int" not in out and "np.str" not in out, out


def test_examples_exist():
    assert len(EXAMPLES) >= 5
