"""Is standard training converged at the default step budget? A study on validation data only.

Trains the standard model (ASTEROID stage 1) on a finished run's accurate train[:N] under a list of
(learning rate, step budget) variants, with the run's early stopping, and prints the validation
force MAE reached after 2,500 / 5,000 / 10,000 / 20,000 steps and when training stopped, with its
CPU seconds. The test set is never read: the default budget is chosen from this table.

    python benchmarks/step_budget.py --run /path/to/run --config config.yaml seeds.yaml \
        --n 25 50 --lr 5e-4 1e-3 --max-steps 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common
import pandas as pd

from pipeline.config import load_config

CHECKPOINTS = (2500, 5000, 10000, 20000, 40000)


def one(task: dict) -> dict:
    import torch

    from pipeline.training import stages

    torch.set_num_threads(1)
    cfg = task["cfg"]
    tr = cfg["training"]
    model_name = tr["models"][0]
    out = Path(task["tmp"]) / f"N{task['n']}_lr{task['lr']:g}_s{task['seed']}"
    stage = {**tr["accurate"], "lr": task["lr"], "max_steps": task["max_steps"]}
    c0 = time.process_time()
    stages.train_standard(
        model_name=model_name,
        hparams=tr["hparams"].get(model_name, {}),
        train_npz=task["train"],
        n_train=task["n"],
        val_npz=task["val"],
        stage=stage,
        training=tr,
        seed=task["seed"],
        device="cpu",
        out_model=out / "model.pt",
        out_history=out / "history.csv",
        checkpoint=out / "ck.pt",
    )
    hist = pd.read_csv(out / "history.csv")
    row = {
        "n": task["n"],
        "lr": task["lr"],
        "seed": task["seed"],
        "cpu_s": time.process_time() - c0,
        "stopped_at": int(hist["step"].iloc[-1]),
        "best_val": float(hist["val_force_mae"].min()),
        "best_step": int(hist.loc[hist["val_force_mae"].idxmin(), "step"]),
    }
    for c in CHECKPOINTS:
        seen = hist[hist["step"] <= c]
        row[c] = float(seen["val_force_mae"].min()) if len(seen) and c <= task["max_steps"] else None
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=".", help="working directory of the finished run")
    p.add_argument("--config", nargs="+", default=["config.yaml"], help="the run's config files, in --configfile order")
    p.add_argument("--molecule", default="ethanol")
    p.add_argument("--n", type=int, nargs="+", default=[25, 50])
    p.add_argument("--lr", type=float, nargs="+", default=[5e-4, 1e-3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    run = Path(a.run)
    cfg = load_config(*(run / path for path in a.config))  # merged and checked as the workflow does
    res = run / "results" / a.molecule / "data" / cfg["accurate_level"]
    common.print_machine({"run": str(run), "config": " + ".join(a.config), "processes": str(a.jobs)})
    with tempfile.TemporaryDirectory(prefix="step-budget-") as tmp:
        tasks = [
            {
                "cfg": cfg,
                "tmp": tmp,
                "n": n,
                "lr": lr,
                "seed": s,
                "max_steps": a.max_steps,
                "train": str(res / "train.npz"),
                "val": str(res / "val.npz"),
            }
            for n in a.n
            for lr in a.lr
            for s in a.seeds
        ]
        with ProcessPoolExecutor(max_workers=a.jobs) as ex:
            rows = list(ex.map(one, tasks))
    checkpoints = [c for c in CHECKPOINTS if c <= a.max_steps]
    print(
        f"Standard training, validation force MAE (kcal/mol/A, best so far) by optimisation step; "
        f"early stopping patience {cfg['training']['accurate']['early_stopping_patience']} evaluations of "
        f"{cfg['training']['accurate']['eval_every_steps']} steps; cap {a.max_steps} steps.\n"
    )
    print(
        common.markdown_table(
            ["N", "lr", "seed", *[f"val @ {c}" for c in checkpoints], "best val (step)", "stopped at", "CPU-s"],
            [
                [
                    r["n"],
                    f"{r['lr']:g}",
                    r["seed"],
                    *[r[c] for c in checkpoints],
                    f"{r['best_val']:.3f} ({r['best_step']})",
                    r["stopped_at"],
                    round(r["cpu_s"]),
                ]
                for r in rows
            ],
        )
    )


if __name__ == "__main__":
    main()
