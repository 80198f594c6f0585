"""CPU per MD step of trained force fields, measured side by side in one process.

The evaluate jobs record each model's CPU per energy-and-forces call (`predict_cpu_s_per_frame`),
but each in its own job, at whatever load the machine had then; ratios between models are only
fair when they are timed together. This script runs short Langevin MD (ASE, the MD stability
settings: 500 K, 0.5 fs, one torch thread) with every model in turn, from the same start frame,
in interleaved blocks (model A, B, C, A, B, C, ...), and reports the median CPU time (process time)
per MD step of each and its ratio to the first model. A Δ model (its metadata's stage is "delta")
runs as the workflow's DeltaCalculator: its cheap level is computed at every step and counted.

    python benchmarks/md_step_cost.py --start results/ethanol/data/ccsd_t/test.npz \
        results/ethanol/models/egnn/standard/N100_s0/model.pt \
        results/ethanol/models/so3lr/foundation/N100_s0/model.pt \
        results/ethanol/delta/egnn/xtb/N100_s0/model.pt

`--steps` per block and `--repeats` blocks per model; the first block of each model is a warm-up
and is not counted. It has no `--quick`: it only times the models it is given.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import markdown_table, median, print_machine

from pipeline.data import load_npz
from pipeline.evaluation.calculator import calculator_of, torch_threads
from pipeline.evaluation.md_stability import run_stability
from pipeline.models import load_model


def calculator(path: str, z: np.ndarray):
    """The workflow's calculator of a saved model (Δ models call their cheap level at every step),
    and the model's metadata."""
    model = load_model(path)
    return calculator_of(model, z=z, threads=None), dict(model.extra or {})


def describe(extra: dict) -> str:
    """A row label from the model's own metadata (never from its path)."""
    model = extra.get("model_name") or extra.get("model") or "?"
    role = extra.get("role") or extra.get("stage") or "?"
    level = f" on {extra['cheap_level']}" if extra.get("cheap_level") and extra.get("stage") == "delta" else ""
    n = f", N = {extra['n_train']}" if extra.get("n_train") is not None else ""
    return f"{model} {role}{level}{n}"


def time_block(calc, start: np.ndarray, z: np.ndarray, n_steps: int, seed: int) -> tuple[float, bool]:
    """CPU seconds per MD step of one run of n_steps, and whether it ran all of them."""
    t0 = time.process_time()
    df = run_stability(calc, start[None], z=z, n_steps=n_steps, n_runs=1, seed=seed, num_threads=1)
    cpu = time.process_time() - t0
    done = int(df["steps_completed"].iloc[0])
    return cpu / max(done, 1), done == n_steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="saved model files (model.pt); the first is the reference")
    ap.add_argument("--start", required=True, help="dataset npz whose first frame starts every run")
    ap.add_argument("--steps", type=int, default=200, help="MD steps per block")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks per model (after one warm-up block)")
    a = ap.parse_args()
    ds = load_npz(a.start)
    start, z = np.asarray(ds.R[0]), np.asarray(ds.z)  # [n_atoms, 3] Å, [n_atoms]
    calcs = [calculator(p, z) for p in a.models]
    per_step: list[list[float]] = [[] for _ in a.models]
    complete = [True] * len(a.models)
    with torch_threads(1):
        for block in range(a.repeats + 1):
            for i, (calc, _) in enumerate(calcs):
                s, ok = time_block(calc, start, z, a.steps, seed=block)
                complete[i] &= ok
                if block:  # block 0 warms caches and lazy initialisation up
                    per_step[i].append(s)
    print_machine({"start": f"{a.start} frame 0", "steps": f"{a.repeats} blocks of {a.steps} after a warm-up block"})
    ref = median(per_step[0])
    rows = [
        [
            describe(extra),
            p,
            f"{1000 * median(t):.2f}",
            f"{1000 * min(t):.2f}–{1000 * max(t):.2f}",
            f"{median(t) / ref:.1f}×",
            "" if ok else "diverged in a block: its time is per completed step",
        ]
        for p, (_, extra), t, ok in zip(a.models, calcs, per_step, complete, strict=True)
    ]
    print(markdown_table(["model", "file", "CPU ms per MD step (median)", "range", "vs first", "note"], rows))


if __name__ == "__main__":
    main()
