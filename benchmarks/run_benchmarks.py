"""Speed, memory and accuracy benchmarks, side by side in one run (``nox -s bench``).

Part 1 measures, per network and on the same input, training throughput
(fwd + bwd + AdamW step), inference throughput, peak resident memory (each network in
its own process), parameter count, FLOPs per volume (``FlopCounterMode``) and achieved
GFLOP/s as a fraction of this machine's measured matmul GFLOP/s. Part 2 is the fit
path end to end (``benchmarks.fit_path``): the seed's training loop, the network alone
and ``Spect3DClassifier().fit`` on the same data, and the default pipeline's inference
time per patient. Part 3 runs a patient-grouped 5-fold CV of the default pipeline and
the SBR baseline on the demo cohort (``--full``: bf16, the seed CNN, the imbalance
variants and the first version too) and records the peak memory. Part 4 runs a
12-trial tuning study of the default search space twice, with the per-volume cache:
pruning after whole folds only, and with epoch pruning in the first fold
(``benchmarks.tuning_speed --ways cache,epoch``). The ceilings
are a square matmul and a 3x3x3 conv3d, measured in the same run. Ratios against a
reference measured in the same run are what to compare across machines.

By default the run takes about 9 minutes on 2 CPU cores without AVX-512 (11 with
``nox -s bench`` creating its environment).

Usage: ``python -m benchmarks.run_benchmarks [--quick] [--full] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.fit_timing import inference_ms_per_patient, measure_fit_path
from spectclf.classifier import DEFAULT_MAX_EPOCHS

BATCH = 8
ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` in a process of its own, from the caller's working
    directory (its relative paths keep their meaning), with the repository root
    importable so that ``benchmarks`` is found."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", module, *args], env=env, check=True, **kwargs
    )


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Sustained GFLOP/s of a square matmul: the machine's practical ceiling."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def conv3d_gflops(reps: int = 5) -> float:
    """Sustained GFLOP/s of a 3x3x3 convolution, 32 -> 32 channels, batch 8 of
    16x32x32 (forward): the ceiling the networks' own layers can reach here."""
    x = torch.randn(8, 32, 16, 32, 32)
    conv = torch.nn.Conv3d(32, 32, 3, padding=1, bias=False)
    flops = 2 * x.shape[0] * 32 * 32 * 27 * 16 * 32 * 32
    with torch.no_grad():
        conv(x)
        t = time.perf_counter()
        for _ in range(reps):
            conv(x)
    return flops * reps / (time.perf_counter() - t) / 1e9


def _build(name: str, shape):
    from spectclf.nets import MonaiNet, ResNet3D, SeedCNN

    if name.startswith("resnet3d"):
        return ResNet3D()
    if name == "seed_cnn":
        return SeedCNN(input_shape=shape)
    if name == "monai_resnet10":
        return MonaiNet("resnet10")
    raise ValueError(name)


def child(name: str, shape, bf16: bool, channels_last: bool, steps: int) -> dict:
    """Measure one network in this (fresh) process; print JSON."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    net = _build(name, shape)
    x = torch.randn(BATCH, 1, *shape)
    y = torch.randint(0, 4, (BATCH,))
    with FlopCounterMode(display=False) as counter:
        net.eval()
        with torch.no_grad():
            net(x[:1])
    fwd_flops = counter.get_total_flops()
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    net.train()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    train_vps = BATCH / float(np.median(times))
    net.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        net(x)
        t = time.perf_counter()
        for _ in range(steps):
            net(x)
        infer_vps = BATCH * steps / (time.perf_counter() - t)
    return {
        "params": sum(p.numel() for p in net.parameters()),
        "fwd_gflop_per_volume": fwd_flops / 1e9,
        "train_vol_s": train_vps,
        "infer_vol_s": infer_vps,
        # training ~ 3x the forward FLOPs (forward + two backward products)
        "train_gflop_s": 3 * fwd_flops / 1e9 * train_vps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(name, shape, bf16, channels_last, steps) -> dict:
    cmd = ["--child", name, "--shape", *map(str, shape), "--steps", str(steps)]
    cmd += ["--bf16"] if bf16 else []
    cmd += ["--channels-last"] if channels_last else []
    out = run_module("benchmarks.run_benchmarks", *cmd, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def native_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively (without it, bf16 is emulated and
    slower than fp32: its rows are skipped); the test ``precision="auto"`` makes."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # torch's private API: absent in some builds
        return False


def throughput_table(quick: bool, with_monai: bool) -> tuple[list[dict], dict]:
    steps = 3 if quick else 8
    bf16 = native_bf16()
    ceiling = {"fp32": matmul_gflops(torch.float32), "conv3d": conv3d_gflops()}
    if bf16:
        ceiling["bf16"] = matmul_gflops(torch.bfloat16)
    print(
        "matmul ceiling: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in ceiling.items())
        + ("" if bf16 else " (no native bf16 on this CPU: bf16 rows skipped)"),
        flush=True,
    )
    full, crop = (32, 64, 64), (20, 40, 40)
    cases = [
        ("seed_cnn", "seed_cnn", full, False, False),
        ("resnet3d fp32", "resnet3d", full, False, False),
        ("resnet3d fp32 channels_last", "resnet3d", full, False, True),
        ("resnet3d bf16 channels_last", "resnet3d", full, True, True),
        ("seed_cnn (cropped input)", "seed_cnn", crop, False, False),
        ("resnet3d default path (cropped, fp32, CL)", "resnet3d", crop, False, True),
    ]
    if not bf16:
        cases = [c for c in cases if not c[3]]
    if with_monai:
        try:
            import monai  # noqa: F401

            cases.insert(4, ("monai_resnet10", "monai_resnet10", full, False, False))
        except ImportError:
            print("MONAI not installed: skipping monai_resnet10", flush=True)
    rows = []
    for label, name, shape, bf16, cl in cases:
        r = run_child(name, shape, bf16, cl, steps)
        r.update(
            label=label,
            input=f"1x{'x'.join(map(str, shape))}",
            ceiling_fraction=r["train_gflop_s"] / ceiling["bf16" if bf16 else "fp32"],
            conv_fraction=r["train_gflop_s"] / ceiling["conv3d"],
        )
        rows.append(r)
        print(f"  {label:<44} {r['train_vol_s']:7.1f} vol/s train", flush=True)
    ref = rows[0]["train_vol_s"]
    for r in rows:
        r["train_speedup_vs_seed_cnn"] = r["train_vol_s"] / ref
    return rows, ceiling


def fit_path_rows(quick: bool) -> dict:
    """The fit path end to end (``benchmarks.fit_path``), in this run and process."""
    n, epochs = (32, 2) if quick else (64, 3)
    rng = np.random.default_rng(0)
    X = rng.random((n, 1, 32, 64, 64), dtype=np.float32)
    y = np.tile(np.arange(4), n // 4).astype(np.int64)
    rows = measure_fit_path(X, y, epochs, BATCH)
    for label, v in rows.items():
        print(f"  {label:<68} {v:6.1f} vol/s", flush=True)
    ms = inference_ms_per_patient(n)
    print(f"  default pipeline inference: {ms:.0f} ms per patient", flush=True)
    return {
        "volumes": n,
        "epochs": epochs,
        "volumes_per_s": rows,
        "inference_ms_per_patient": ms,
    }


def cv_table(quick: bool, full: bool) -> list[dict]:
    from spectclf import (
        VolumeRandomOverSampler,
        evaluate,
        load_demo,
        make_default_pipeline,
        make_sbr_baseline,
    )

    data = load_demo()
    # the classifier's own default (DEFAULT_MAX_EPOCHS) unless quick
    epochs = {"max_epochs": 10} if quick else {}
    models = [
        ("SBR baseline (logistic regression)", make_sbr_baseline(0)),
        ("resnet3d default (fp32)", make_default_pipeline(random_state=0, **epochs)),
    ]
    if full:
        epochs = epochs or {"max_epochs": DEFAULT_MAX_EPOCHS}
        if native_bf16():
            models.append(
                (
                    "resnet3d bf16",
                    make_default_pipeline(precision="bf16", random_state=0, **epochs),
                )
            )
        models += [
            (
                "seed_cnn (same pipeline)",
                make_default_pipeline(
                    module="seed_cnn", lr=1e-3, random_state=0, **epochs
                ),
            ),
            (
                "resnet3d, no class weights",
                make_default_pipeline(class_weight=None, random_state=0, **epochs),
            ),
            (
                "resnet3d + random oversampling",
                make_default_pipeline(
                    sampler=VolumeRandomOverSampler(random_state=0),
                    random_state=0,
                    **epochs,
                ),
            ),
            (
                "resnet3d, no crop, avg pool, lr 1e-3, 30 ep (first version)",
                make_default_pipeline(
                    crop=None,
                    class_weight=None,
                    max_epochs=30,
                    lr=1e-3,
                    module__pool="avg",
                    random_state=0,
                ),
            ),
        ]
    rows = []
    for label, model in models:
        t = time.perf_counter()
        try:
            res = evaluate(
                model, data.X, data.y, data.groups, cv=5, random_state=0, verbose=0
            )
        except FloatingPointError as exc:  # bf16 can diverge on some CPUs
            print(f"  {label}: failed ({exc})", flush=True)
            rows.append({"label": label, "error": str(exc)})
            continue
        wall = time.perf_counter() - t
        s = res.summary
        row = {
            "label": label,
            "wall_s": wall,
            # peak resident memory of this process so far (Linux: KiB)
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            **{
                k: s[k]["mean"]
                for k in (
                    "balanced_accuracy",
                    "qwk",
                    "f1_macro",
                    "recall_stage_4",
                    "mae",
                )
            },
            "balanced_accuracy_ci95": s["balanced_accuracy"]["ci95"],
        }
        rows.append(row)
        print(
            f"  {label:<44} bal.acc {row['balanced_accuracy']:.3f}  QWK "
            f"{row['qwk']:.3f}  stage-4 recall {row['recall_stage_4']:.2f}  "
            f"{wall:.0f} s",
            flush=True,
        )
    return rows


def to_markdown(speed, ceiling, fit_path, cv) -> str:
    lines = [
        "Ceilings measured in this run (matmul 2048^2; conv3d 3x3x3 32->32 ch): "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in ceiling.items())
        + f"; batch {BATCH}; {torch.get_num_threads()} threads.",
        "",
        "| network | input | params | GFLOP/vol (fwd) | train vol/s | x seed_cnn "
        "| infer vol/s | GFLOP/s | % of matmul | % of conv3d | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in speed:
        lines.append(
            f"| {r['label']} | {r['input']} | {r['params'] / 1e6:.2f} M | "
            f"{r['fwd_gflop_per_volume']:.2f} | {r['train_vol_s']:.1f} | "
            f"{r['train_speedup_vs_seed_cnn']:.2f} | {r['infer_vol_s']:.0f} | "
            f"{r['train_gflop_s']:.0f} | {100 * r['ceiling_fraction']:.0f} % | "
            f"{100 * r.get('conv_fraction', float('nan')):.0f} % | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    if fit_path:
        rates = fit_path["volumes_per_s"]
        seed, net = list(rates.values())[:2]
        lines += [
            "",
            f"| fit path ({fit_path['volumes']} volumes of 1x32x64x64, "
            f"{fit_path['epochs']} epochs, one process) | "
            "volumes/s | x the seed | share of the network alone |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {label} | {v:.1f} | {v / seed:.2f} | {v / net:.0%} |"
            for label, v in rates.items()
        ]
        lines += [
            "",
            "Default pipeline inference (resize, normalise, locate and crop the "
            f"striatum, network): {fit_path['inference_ms_per_patient']:.0f} ms per "
            "30x64x64 patient volume.",
        ]
    if cv:
        lines += [
            "",
            "| model (5-fold patient-grouped CV, demo cohort) | balanced acc "
            "| QWK | macro F1 | stage-4 recall | MAE | wall s | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in cv:
            if "error" in r:
                lines.append(f"| {r['label']} | failed: {r['error']} | | | | | | |")
                continue
            lines.append(
                f"| {r['label']} | {r['balanced_accuracy']:.3f} | {r['qwk']:.3f} | "
                f"{r['f1_macro']:.3f} | {r['recall_stage_4']:.2f} | {r['mae']:.2f} | "
                f"{r['wall_s']:.0f} | {r['peak_rss_mb']:.0f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and epochs")
    p.add_argument(
        "--full",
        action="store_true",
        help="also MONAI's resnet10, and CV bf16, the seed CNN, the imbalance "
        "variants and the first version",
    )
    p.add_argument("--skip-cv", action="store_true")
    p.add_argument("--skip-tuning", action="store_true")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--shape", type=int, nargs=3, default=(32, 64, 64), help=argparse.SUPPRESS
    )
    p.add_argument("--steps", type=int, default=8, help=argparse.SUPPRESS)
    p.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(
            json.dumps(
                child(
                    args.child,
                    tuple(args.shape),
                    args.bf16,
                    args.channels_last,
                    args.steps,
                )
            )
        )
        return 0
    print("== training / inference throughput ==", flush=True)
    speed, ceiling = throughput_table(args.quick, with_monai=args.full)
    print("== the fit path end to end ==", flush=True)
    fit_path = fit_path_rows(args.quick)
    cv = []
    if not args.skip_cv:
        print("== patient-grouped 5-fold CV on the demo cohort ==", flush=True)
        cv = cv_table(args.quick, args.full)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tuning = None
    if not args.skip_tuning:
        print(
            "== a 12-trial tuning study without and with first-fold pruning ==",
            flush=True,
        )
        trials = "6" if args.quick else "12"
        run_module(
            "benchmarks.tuning_speed",
            "--ways",
            "cache,epoch",
            "--trials",
            trials,
            "--out",
            str(out),
        )
        tuning = json.loads((out / "tuning_speed.json").read_text())
    (out / "bench.json").write_text(
        json.dumps(
            {
                "ceiling_gflop_s": ceiling,
                "speed": speed,
                "fit_path": fit_path,
                "cv": cv,
                "tuning": tuning,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            },
            indent=2,
        )
    )
    md = to_markdown(speed, ceiling, fit_path, cv)
    if tuning:
        md += (
            "\n\n| tuning study ("
            + (
                f"{tuning['trials']} trials, {tuning['folds']} folds, {tuning['epochs']} "
                f"epochs, {tuning['cohort']}) | wall s | x first row | study best | "
                "best params, plain CV | complete / pruned |\n|---|---|---|---|---|---|\n"
            )
            + "\n".join(
                f"| {name} | {r['wall_s']:.0f} | {r['speedup']:.2f} | {r['best_score']:.3f} "
                f"| {r['best_params_plain_cv']:.3f} "
                f"| {r['trials']['complete']} / {r['trials']['pruned']} |"
                for name, r in tuning["rows"].items()
            )
        )
    (out / "bench.md").write_text(md + "\n")
    print()
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
