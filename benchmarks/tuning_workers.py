"""Parallel tuning trials: N worker processes with the cores divided among them, or one.

Every trial has the same parameters (the default pipeline's) and runs a whole 3-fold
CV without pruning, so the trials cost alike and the wall time measures the
parallelism alone. Rows: one process with every core as torch threads; N processes
on one SQLite study with the cores divided among them (what ``spectclf tune
--workers N`` does); and, with ``--oversubscribed``, N processes each taking every
core (what it did before 0.3).

    python -m benchmarks.tuning_workers [--trials 4] [--workers 2] [--oversubscribed]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import optuna
import torch

from benchmarks.cohorts import tuning_cohort
from spectclf import tune


def _worker(storage: str, trials: int, threads: int, worker_id: int, epochs: int):
    torch.set_num_threads(threads)
    d, pipe = tuning_cohort(0, epochs=epochs)
    tune(
        pipe,
        d.X,
        d.y,
        d.groups,
        n_trials=trials,
        search_space=lambda trial: {},
        cv=3,
        storage=storage,
        random_state=0,
        worker_id=worker_id,
        pruner=optuna.pruners.NopPruner(),
        epoch_pruning=False,
        refit=False,
        verbose=0,
    )


def run(n_workers: int, threads: int, trials: int, epochs: int) -> float:
    """Wall seconds of ``trials`` trials shared by ``n_workers`` processes."""
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'study.db'}"
        optuna.create_study(storage=storage, study_name="spectclf")
        ctx = mp.get_context("spawn")
        start = time.perf_counter()
        procs = [
            ctx.Process(target=_worker, args=(storage, trials, threads, k, epochs))
            for k in range(n_workers)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):
            raise RuntimeError("a worker failed")
        return time.perf_counter() - start


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--oversubscribed", action="store_true")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    cores = torch.get_num_threads()
    ways = [(1, cores), (args.workers, max(1, cores // args.workers))]
    if args.oversubscribed:
        ways.append((args.workers, cores))
    rows = []
    for n, threads in ways:
        wall = run(n, threads, args.trials, args.epochs)
        rows.append(
            {
                "workers": n,
                "torch_threads_each": threads,
                "wall_s": round(wall, 1),
                "speedup": round(rows[0]["wall_s"] / wall, 2) if rows else 1.0,
            }
        )
        print(
            f"{n} worker(s) x {threads} thread(s): {wall:.0f} s for {args.trials} "
            f"trials (x{rows[-1]['speedup']:.2f})",
            flush=True,
        )
    result = {"cores": cores, "trials": args.trials, "epochs": args.epochs}
    result["rows"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tuning_workers.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
