"""Why does (or doesn't) ASTEROID beat standard training here? An ablation on VALIDATION data.

Takes the labelled datasets of a finished run (``results/<molecule>/data/...``) and retrains,
with the pipeline's own stage functions (``pipeline.training.stages``), one factor at a time:

- the stage-2 schedule (epochs on the cheap pool),
- the stage-3 fine-tuning schedule (the config's ``finetune`` section, or the same schedule as
  standard training: the ``accurate`` section),
- gamma (the grid values and gamma = inf, i.e. no bias weighting),
- the cheap pool size (the first ``--pool-sizes`` frames of the cheap pool).

Every number is the validation force MAE (kcal/mol/A) of the model the engine keeps (EMA weights
at the best validation epoch): the same validation set the pipeline uses for early stopping and
for choosing gamma. The test set is never read, so the table can inform the default config
without tuning on the test set.

    python benchmarks/asteroid_ablation.py                       # ethanol, DFT, N = 25 and 50
    python benchmarks/asteroid_ablation.py --quick               # smoke run (a few epochs)
    python benchmarks/asteroid_ablation.py --cheap-level empirical --sizes 25
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common

from pipeline.config import load_config


def _stage(path: Path, kind: str, **kw) -> dict:
    """Run one stage function; returns its summary plus the CPU seconds the process spent."""
    import torch

    from pipeline.training import stages

    torch.set_num_threads(1)
    c0 = time.process_time()
    fn = {"standard": stages.train_standard, "cheap": stages.train_cheap, "finetune": stages.finetune}[kind]
    summary = fn(
        out_model=path / "model.pt", out_history=path / "history.csv", checkpoint=path / "ck.pt", device="cpu", **kw
    )
    return {**summary, "cpu_s": time.process_time() - c0, "model": str(path / "model.pt")}


def _cheap_subset(cheap_npz: str, n: int, out: Path) -> str:
    from pipeline.data import load_npz

    ds = load_npz(cheap_npz)
    if n >= len(ds):
        return cheap_npz
    path = out / f"cheap{n}.npz"
    ds.subset(list(range(n))).save(path)
    return str(path)


def run_size(args: dict) -> list[dict]:
    """Every variant at one accurate training size N (one process; stages run one after another)."""
    from pipeline.training.stages import compute_bias

    cfg, n, data = args["cfg"], args["n"], args["data"]
    tmp = Path(args["tmp"]) / f"N{n}"
    tr = cfg["training"]
    model, hparams, seed = tr["models"][0], tr["hparams"][tr["models"][0]], tr["seeds"][0]
    common_kw = dict(training=tr, seed=seed)
    acc, fin, cheap = tr["accurate"], tr["finetune"], tr["cheap"]
    rows = []

    def add(variant, what, res, pre=None):
        cpu = res["cpu_s"] + (pre["cpu_s"] if pre else 0.0)
        rows.append(
            {
                "N": n,
                "variant": variant,
                "what": what,
                "val_force_mae": res["best_metric"],
                "epochs": res["epochs"] if pre is None else f"{pre['epochs']} + {res['epochs']}",
                "train_cpu_s": cpu,
            }
        )

    def run(name, kind, **kw):
        path = tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return _stage(path, kind, **common_kw, **kw)

    std = run(
        "standard",
        "standard",
        model_name=model,
        hparams=hparams,
        train_npz=data["train"],
        n_train=n,
        val_npz=data["val"],
        stage=acc,
    )
    add("standard", f"accurate only ({acc['max_epochs']} ep, lr {acc['lr']:g})", std)
    bias_npz = tmp / "bias.npz"
    compute_bias(model_path=std["model"], cheap_npz=data["cheap"], out_npz=bias_npz)

    stage2_long = {
        **cheap,
        "max_epochs": args["long_stage2_epochs"],
        "early_stopping_patience": max(cheap["early_stopping_patience"], args["long_stage2_epochs"] // 3),
    }
    ft_std = {**acc, "warmup_epochs": 0}
    pretrained = {}
    for g in args["gammas"]:
        gname = "inf" if g == float("inf") else f"{g:g}"
        pretrained[(gname, "cfg")] = run(
            f"s2_g{gname}",
            "cheap",
            model_name=model,
            hparams=hparams,
            cheap_npz=data["cheap"],
            bias_npz=bias_npz,
            gamma_kind="inf" if g == float("inf") else "absolute",
            gamma=g,
            stage=cheap,
        )
    pretrained[("1", "long")] = run(
        "s2_g1_long",
        "cheap",
        model_name=model,
        hparams=hparams,
        cheap_npz=data["cheap"],
        bias_npz=bias_npz,
        gamma_kind="absolute",
        gamma=1.0,
        stage=stage2_long,
    )

    def ft(name, init, stage):
        return run(
            name,
            "finetune",
            init_model=init["model"],
            train_npz=data["train"],
            n_train=n,
            val_npz=data["val"],
            stage=stage,
        )

    fin_what = f"fine-tune {fin['max_epochs']} ep, lr {fin['lr']:g}"
    std_what = f"fine-tune {acc['max_epochs']} ep, lr {acc['lr']:g} (standard's schedule)"
    for (gname, kind), pre in pretrained.items():
        s2 = f"stage 2 {pre['epochs']} ep" + ("" if kind == "cfg" else " (long)")
        label = "no bias weights" if gname == "inf" else f"gamma {gname}"
        add(
            f"asteroid g={gname} s2={kind} ft=cfg",
            f"{label}; {s2}; {fin_what}",
            ft(f"ft_{gname}_{kind}", pre, fin),
            pre,
        )
        if gname == "1":
            add(
                f"asteroid g=1 s2={kind} ft=standard",
                f"{label}; {s2}; {std_what}",
                ft(f"ftstd_{gname}_{kind}", pre, ft_std),
                pre,
            )
    for m in args["pool_sizes"]:
        sub = _cheap_subset(data["cheap"], m, tmp)
        sub_bias = tmp / f"bias{m}.npz"
        compute_bias(model_path=std["model"], cheap_npz=sub, out_npz=sub_bias)
        pre = run(
            f"s2_pool{m}",
            "cheap",
            model_name=model,
            hparams=hparams,
            cheap_npz=sub,
            bias_npz=sub_bias,
            gamma_kind="absolute",
            gamma=1.0,
            stage=cheap,
        )
        add(
            f"asteroid g=1 pool={m} ft=cfg",
            f"gamma 1; first {m} cheap frames; {fin_what}",
            ft(f"ft_pool{m}", pre, fin),
            pre,
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="the run's results folder")
    p.add_argument("--molecule", default="ethanol")
    p.add_argument(
        "--config",
        nargs="+",
        default=["config.yaml"],
        help="the run's config files, later ones overriding earlier ones as Snakemake's --configfile",
    )
    p.add_argument("--cheap-level", default="xtb")
    p.add_argument("--sizes", type=int, nargs="+", default=[25, 50], help="accurate training sizes N")
    p.add_argument("--gammas", type=float, nargs="+", default=[0.5, 1.0, 3.0, float("inf")])
    p.add_argument("--long-stage2-epochs", type=int, default=100)
    p.add_argument("--pool-sizes", type=int, nargs="*", default=[100], help="smaller cheap pools (gamma 1)")
    p.add_argument("--jobs", type=int, default=2, help="sizes trained in parallel (one process each)")
    p.add_argument("--quick", action="store_true", help="3-epoch schedules, N = 25 only")
    a = p.parse_args()

    cfg = load_config(*a.config)  # merged and checked as the workflow does (schema defaults filled in)
    accurate = cfg["accurate_level"]
    base = Path(a.results) / a.molecule / "data"
    data = {
        "train": str(base / accurate / "train.npz"),
        "val": str(base / accurate / "val.npz"),
        "cheap": str(base / a.cheap_level / f"cheap-{a.cheap_level}.npz"),
    }
    for k, v in data.items():
        if not Path(v).exists():
            raise SystemExit(f"{v} is missing: run `snakemake --cores all {v}` first (the {k} data)")
    if a.quick:
        cfg = copy.deepcopy(cfg)
        for sec in ("accurate", "cheap", "finetune"):
            cfg["training"][sec].update(max_epochs=3, warmup_epochs=0)
        a.sizes, a.long_stage2_epochs, a.gammas = a.sizes[:1], 4, [1.0]

    common.print_machine(
        {"torch threads per process": "1", "processes": str(a.jobs), "config": " + ".join(a.config), "data": str(base)}
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ablation-") as tmp:
        tasks = [
            {
                "cfg": cfg,
                "n": n,
                "data": data,
                "tmp": tmp,
                "gammas": a.gammas,
                "long_stage2_epochs": a.long_stage2_epochs,
                "pool_sizes": a.pool_sizes,
            }
            for n in a.sizes
        ]
        with ProcessPoolExecutor(max_workers=a.jobs) as ex:
            rows = [r for rs in ex.map(run_size, tasks) for r in rs]
    print(
        f"ASTEROID ablation on {a.molecule}, cheap level `{a.cheap_level}`, model "
        f"{cfg['training']['models'][0]}, seed {cfg['training']['seeds'][0]}; validation force MAE in "
        f"kcal/mol/A (val set: {json.dumps(data['val'])}); {time.perf_counter() - t0:.0f} s wall.\n"
    )
    for n in a.sizes:
        ref = next(r["val_force_mae"] for r in rows if r["N"] == n and r["variant"] == "standard")
        table = [
            [
                r["variant"],
                r["what"],
                r["val_force_mae"],
                f"{100 * (1 - r['val_force_mae'] / ref):+.0f}%",
                r["epochs"],
                r["train_cpu_s"],
            ]
            for r in rows
            if r["N"] == n
        ]
        print(f"### N = {n}\n")
        print(
            common.markdown_table(
                ["variant", "what", "val force MAE", "reduction vs standard", "epochs", "train CPU s"], table
            )
        )
        print()


if __name__ == "__main__":
    main()
