"""How does ASTEROID's gain grow with the cheap pool? A sweep over pool sizes on a finished run.

For each pool size M (the first M frames of the run's cheap pool, itself a random block of the
MD) and each seed, the run's own stage-1 model at N computes B_j, stage 2 is trained for every
gamma candidate (as in the run's config: absolute, relative and inf), each is fine-tuned on the
accurate train[:N], and gamma is chosen by validation loss exactly as the workflow does. The
chosen model is then scored once on the test set, and its reduction against the run's standard
model (same N, same seed) gets a 95% paired interval over seeds and test frames (pipeline/evaluation/stats.py). The
full pool is the run's own ASTEROID result.

    python benchmarks/pool_sweep.py --run . --config config.yaml seeds.yaml --pools 300 1000 --n 25
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common
import numpy as np

from pipeline import layout
from pipeline.config import load_config
from pipeline.methods.base import gamma_tokens


def one(task: dict) -> dict:
    """Every gamma candidate at one (pool size, seed); the chosen one scored on the test set."""
    import torch

    from pipeline import units
    from pipeline.data import load_npz
    from pipeline.evaluation.collect import best_by_validation
    from pipeline.evaluation.predict import predict
    from pipeline.models import load_model
    from pipeline.training import stages

    torch.set_num_threads(1)
    cfg, m, seed, tmp = task["cfg"], task["pool"], task["seed"], Path(task["tmp"]) / f"M{task['pool']}_s{task['seed']}"
    tmp.mkdir(parents=True)
    tr = cfg["training"]
    model_name = tr["models"][0]
    c0 = time.process_time()
    pool = load_npz(task["cheap"])
    pool.subset(np.arange(min(m, len(pool)))).save(tmp / "pool.npz")
    stages.compute_bias(model_path=task["stage1"], cheap_npz=tmp / "pool.npz", out_npz=tmp / "bias.npz")
    fine = {}
    for g in task["gammas"]:
        kw = dict(training=tr, seed=seed, device="cpu")
        s2 = tmp / f"s2_{g}"
        stages.train_cheap(
            model_name=model_name,
            hparams=tr["hparams"][model_name],
            cheap_npz=tmp / "pool.npz",
            bias_npz=tmp / "bias.npz",
            gamma_kind=layout.gamma_from_token(g)[0],
            gamma=layout.gamma_from_token(g)[1],
            stage=tr["cheap"],
            out_model=s2 / "model.pt",
            out_history=s2 / "history.csv",
            checkpoint=s2 / "ck.pt",
            **kw,
        )
        ft = tmp / f"ft_{g}"
        stages.finetune(
            init_model=s2 / "model.pt",
            train_npz=task["train"],
            n_train=task["n"],
            val_npz=task["val"],
            stage=tr["finetune"],
            out_model=ft / "model.pt",
            out_history=ft / "history.csv",
            checkpoint=ft / "ck.pt",
            **kw,
        )
        fine[g] = ft / "model.pt"
    extras = {g: dict(load_model(p).extra) for g, p in fine.items()}
    chosen = best_by_validation(extras)
    test = load_npz(task["test"])
    _, F = predict(load_model(fine[chosen]), test.R, test.z)
    errors = np.abs(F - units.ev_to_kcal(test.F)).mean(axis=(1, 2))  # [n_test]
    return {
        "pool": m,
        "seed": seed,
        "chosen": chosen,
        "errors": errors,
        "frame_id": test.frame_id,
        "effective_frames": extras[chosen].get("effective_frames"),
        # this process (bias, every candidate's stage 2 and fine-tuning) + the run's stage-1 model
        "cpu_s": time.process_time() - c0 + float(load_model(task["stage1"]).extra.get("train_cpu_s") or 0.0),
    }


def main() -> None:
    from pipeline.evaluation.stats import mean_interval, reduction_interval

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=".", help="working directory of the finished run")
    p.add_argument("--config", nargs="+", default=["config.yaml"], help="the run's config files, in --configfile order")
    p.add_argument("--molecule", default="ethanol")
    p.add_argument("--level", default="xtb", help="the cheap level")
    p.add_argument("--pools", type=int, nargs="+", default=[300, 1000], help="pool sizes below the run's own")
    p.add_argument("--n", type=int, default=25, help="accurate training size N")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    run = Path(a.run)
    cfg = load_config(*(run / path for path in a.config))  # merged and checked as the workflow does
    acc = cfg["accurate_level"]
    res = run / layout.fill(layout.MOLECULE, molecule=a.molecule)
    data = {k: str(run / layout.dataset(a.molecule, acc, k)) for k in ("train", "val", "test")}
    cheap = run / layout.dataset(a.molecule, a.level, f"cheap-{a.level}")
    model = cfg["training"]["models"][0]
    seeds = cfg["training"]["seeds"]
    gammas = gamma_tokens(cfg) + ["inf"]

    def std_run(seed, name):
        return run / layout.run("standard", name, molecule=a.molecule, model=model, n=a.n, seed=seed)

    common.print_machine({"run": str(res), "config": " + ".join(a.config), "processes": str(a.jobs)})
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pool-sweep-") as tmp:
        tasks = [
            {
                "cfg": cfg,
                "pool": m,
                "seed": s,
                "tmp": tmp,
                "cheap": str(cheap),
                "gammas": gammas,
                "n": a.n,
                "stage1": str(std_run(s, "model.pt")),
                **data,
            }
            for m in a.pools
            for s in seeds
        ]
        with ProcessPoolExecutor(max_workers=a.jobs) as ex:
            rows = list(ex.map(one, tasks))

    def run_errors(path: Path) -> np.ndarray:
        return np.asarray(json.loads(path.read_text())["per_frame_force_mae_kcal"])

    base = np.stack([run_errors(std_run(s, "eval.json")) for s in seeds])  # [n_seeds, n_test]
    results = __import__("pandas").read_csv(run / layout.table("results", molecule=a.molecule))
    full = results[
        (results["method"] == "asteroid") & (results["cheap_level"] == a.level) & (results["n_train"] == a.n)
    ]
    n_pool = len(np.load(cheap)["R"])
    table = []
    for m in sorted(a.pools) + [n_pool]:
        if m == n_pool:
            by_seed = {int(r.seed): r for r in full.itertuples()}
            err = np.stack(
                [_run_eval_errors(run, a.molecule, model, a.level, a.n, s, by_seed[s].gamma_spec) for s in seeds]
            )
            chosen = [str(by_seed[s].gamma_spec) for s in seeds]
            cpu_h = float(full["train_cpu_h_total"].mean())
        else:
            rs = sorted((r for r in rows if r["pool"] == m), key=lambda r: r["seed"])
            err = np.stack([r["errors"] for r in rs])
            chosen = [r["chosen"] for r in rs]
            cpu_h = float(np.mean([r["cpu_s"] for r in rs])) / 3600
        mae, red = mean_interval(err), reduction_interval(err, base)
        table.append(
            [
                m,
                f"{mae.estimate:.3f} [{mae.low:.3f}, {mae.high:.3f}]",
                f"{100 * red.estimate:+.0f}% [{100 * red.low:+.0f}%, {100 * red.high:+.0f}%]"
                + ("" if red.significant else " n.s."),
                ", ".join(chosen),
                cpu_h,
            ]
        )
    std = mean_interval(base)
    print(
        f"ASTEROID ({a.level}) at N = {a.n}, {model}, seeds {seeds}; standard training: "
        f"{std.estimate:.3f} [{std.low:.3f}, {std.high:.3f}] kcal/mol/A test force MAE; "
        f"{time.perf_counter() - t0:.0f} s wall. Intervals: 95% over seeds and test frames (t interval on the seeds) "
        f"(paired with the standard model of the same seed).\n"
    )
    print(
        common.markdown_table(
            [
                "cheap pool (frames)",
                "test force MAE [95% CI]",
                "reduction vs standard [95% CI]",
                "gamma chosen per seed",
                "ASTEROID training CPU-h per seed",
            ],
            table,
        )
    )


def _run_eval_errors(run: Path, molecule, model: str, level: str, n: int, seed: int, gamma_spec) -> np.ndarray:
    """Per-frame test errors of the run's own fine-tuned model for that gamma candidate."""
    g = str(gamma_spec)
    try:  # a CSV column of absolute gammas only is read back as floats ('1' -> 1.0)
        g = f"{float(g):g}"
    except ValueError:
        pass
    kw = dict(molecule=molecule, model=model, level=level, gamma=g, n=n, seed=seed)
    return np.asarray(
        json.loads((run / layout.run("finetune", "eval.json", **kw)).read_text())["per_frame_force_mae_kcal"]
    )


if __name__ == "__main__":
    main()
