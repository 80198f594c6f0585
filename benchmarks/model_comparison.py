"""Model against model on one finished run (issue 12: MACE against EGNN and sGDML).

``accuracy_per_cost.py`` compares each method with standard training of the same model; this script
compares models. It reads ``results/<molecule>/results.csv`` (which γ ASTEROID chose on validation
for each model, N and seed) and the per-frame test errors in every ``eval.json`` under
``results/<molecule>`` (what each model is comes from the metadata inside it,
``pipeline.evaluation.collect.evaluation_record``), and prints:

1. test force MAE (kcal/mol/A) with its 95% interval over seeds and test frames
   (pipeline/evaluation/stats.py: a t interval on the seeds), for
   standard training, ASTEROID and Δ-learning of each model, and sGDML, at each N;
2. paired comparisons at each N, as error reductions 1 − MAE(A)/MAE(B) with 95% paired
   intervals over test frames and the seeds both have (sGDML is deterministic: its one error vector
   is paired with every seed): each model against each other model by method, and each model's
   methods against sGDML; "n.s." where the interval includes zero;
3. the whole cost per model, method and N next to the error, for accuracy per CPU-minute: CPU-minutes
   of labels (accurate and cheap) and of training (every stage of the method), mean over seeds, as
   ``results.csv`` counts them.

    python benchmarks/model_comparison.py --results results --models egnn mace
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import common
import numpy as np
import pandas as pd

from pipeline.evaluation.collect import evaluation_record
from pipeline.evaluation.stats import mean_interval, reduction_interval
from pipeline.report.figures import model_label

METHODS = ("standard", "asteroid", "delta")  # per neural model, in table order
N_BOOT = 2000


def load_errors(results_dir: Path, results: pd.DataFrame, models: list[str], cheap_level: str) -> dict:
    """{(model, method, N): [n_seeds, n_test] per-frame errors} with the seeds in a list beside them.

    ASTEROID is the fine-tuned model at the γ that results.csv records as chosen on validation."""
    records = [evaluation_record(str(p)) for p in sorted(results_dir.rglob("eval.json"))]
    frames = {tuple(r["frame_id"]) for r in records}
    if len(frames) != 1:
        raise SystemExit(f"{results_dir}: evaluations on {len(frames)} different test sets; rerun the evaluate rules")
    out: dict = {}

    def put(key, seed, errors):
        seeds, errs = out.setdefault(key, ([], []))
        seeds.append(seed)
        errs.append(errors)

    chosen = results[(results["method"] == "asteroid") & (results["cheap_level"] == cheap_level)]
    chosen = {(r.model, int(r.n_train), int(r.seed)): str(r.gamma_spec) for r in chosen.itertuples()}
    for r in records:
        if r["role"] == "sgdml":
            put(("sgdml", "sgdml", r["n_train"]), 0, r["errors"])
        elif r["model"] not in models:
            continue
        elif r["role"] == "standard":
            put((r["model"], "standard", r["n_train"]), r["seed"], r["errors"])
        elif r["role"] == "delta" and r["cheap_level"] == cheap_level:
            put((r["model"], "delta", r["n_train"]), r["seed"], r["errors"])
        elif (
            r["role"] == "finetune"
            and r["cheap_level"] == cheap_level
            and chosen.get((r["model"], r["n_train"], r["seed"])) == r["gamma_spec"]
        ):
            put((r["model"], "asteroid", r["n_train"]), r["seed"], r["errors"])
    return {k: (seeds, np.stack(errs)) for k, (seeds, errs) in out.items()}


def label(model: str, method: str, cheap_level: str) -> str:
    name = model_label(model)
    if method == "asteroid":
        return f"{name} + ASTEROID ({cheap_level})"
    if method == "delta":
        return f"Δ-{name} ({cheap_level})"
    return name if model == "sgdml" else f"{name} standard"


def paired(a: tuple, b: tuple, b_deterministic: bool = False) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The errors of a and b on the seeds both have. A deterministic b (sGDML: one error vector,
    no seed) is repeated for every seed of a; a neural model run with fewer seeds is not."""
    (sa, ea), (sb, eb) = a, b
    if b_deterministic:
        return ea, np.repeat(eb, len(sa), axis=0), len(sa)
    common_seeds = sorted(set(sa) & set(sb))
    if not common_seeds:
        return None
    ia, ib = [sa.index(s) for s in common_seeds], [sb.index(s) for s in common_seeds]
    return ea[ia], eb[ib], len(common_seeds)


def reduction_text(a: np.ndarray, b: np.ndarray) -> str:
    ci = reduction_interval(a, b, n_boot=N_BOOT)
    return f"{100 * ci.estimate:+.0f}% [{100 * ci.low:+.0f}%, {100 * ci.high:+.0f}%]" + (
        "" if ci.significant else " n.s."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--molecule", default="ethanol")
    p.add_argument("--models", nargs="+", default=["egnn", "mace"])
    p.add_argument("--cheap-level", default="xtb", help="the cheap level of ASTEROID and Δ rows")
    a = p.parse_args()
    run = Path(a.results) / a.molecule
    if not (run / "results.csv").exists():
        raise SystemExit(f"{run / 'results.csv'} is missing: run `snakemake --cores all {run}/report.html` first")
    results = pd.read_csv(run / "results.csv", keep_default_na=False, na_values=[""])
    errors = load_errors(run, results, a.models, a.cheap_level)
    sizes = sorted({n for (_, _, n) in errors if n > 0})
    columns = [(m, meth) for m in a.models for meth in METHODS] + [("sgdml", "sgdml")]
    columns = [c for c in columns if any((c[0], c[1], n) in errors for n in sizes)]

    print(f"# Models compared: {a.molecule} (from {run})\n")
    common.print_machine()
    print("\n## Test force MAE (kcal/mol/A), mean over seeds [95% CI over test frames and seeds]\n")
    rows = []
    for n in sizes:
        row = [n]
        for m, meth in columns:
            e = errors.get((m, meth, n))
            if e is None:
                row.append("–")
                continue
            ci = mean_interval(e[1], n_boot=N_BOOT)
            row.append(f"{ci.estimate:.2f} [{ci.low:.2f}, {ci.high:.2f}] ({len(e[0])} s.)")
        rows.append(row)
    print(common.markdown_table(["N"] + [label(m, meth, a.cheap_level) for m, meth in columns], rows))

    print("\n## Paired comparisons: error reduction of A against B [95% CI]; positive = A has the lower error\n")
    pairs = [
        ((ma, meth), (mb, meth)) for ma, mb in itertools.permutations(a.models, 2) for meth in METHODS if ma > mb
    ] + [((m, meth), ("sgdml", "sgdml")) for m in a.models for meth in METHODS]
    rows = []
    for ka, kb in pairs:
        for n in sizes:
            ea, eb = errors.get((*ka, n)), errors.get((*kb, n))
            if ea is None or eb is None:
                continue
            pr = paired(ea, eb, b_deterministic=kb[0] == "sgdml")
            if pr is None:
                continue
            rows.append([label(*ka, a.cheap_level), label(*kb, a.cheap_level), n, pr[2], reduction_text(pr[0], pr[1])])
    print(common.markdown_table(["A", "B", "N", "seeds", "reduction [95% CI]"], rows))

    print(
        "\n## Accuracy and the whole cost: test force MAE, CPU-minutes of labels (accurate and cheap) and of "
        "training (every stage of the method), mean over seeds\n"
    )
    res = results[results["n_train"].isin(sizes)]
    rows = []
    for m, meth in columns:
        sel = res[(res["model"] == m) & (res["method"] == meth)]
        if meth in ("asteroid", "delta"):
            sel = sel[sel["cheap_level"] == a.cheap_level]
        cost = sel.groupby("n_train")[["data_cost_cpu_h", "train_cpu_h_total", "total_cpu_h"]].mean()
        for n in sizes:
            e = errors.get((m, meth, n))
            if e is None or n not in cost.index:
                continue
            c = cost.loc[n]
            rows.append(
                [label(m, meth, a.cheap_level), n, len(e[0]), f"{e[1].mean():.2f}"]
                + [f"{60 * c[k]:.1f}" for k in ("data_cost_cpu_h", "train_cpu_h_total", "total_cpu_h")]
            )
    print(
        common.markdown_table(
            ["method", "N", "seeds", "test MAE", "labels, CPU-min", "training, CPU-min", "total, CPU-min"], rows
        )
    )


if __name__ == "__main__":
    main()
