"""Accuracy per label cost of a finished run: the paper's comparison on this pipeline's numbers.

Reads ``results/<molecule>/results.csv`` (written by the workflow's ``collect`` rule: test errors
of every trained model with its data cost) and prints, for one model:

1. test force MAE (kcal/mol/A) at each accurate training size N for standard training, ASTEROID
   with each cheap level, score matching + fine-tuning, and sGDML (mean over seeds);
2. the reduction of each method's error against standard training at the same N (the paper's
   headline: 66% for EGNN with DFT in the low-data setting) with its 95% paired bootstrap interval
   over test frames and seeds (``reductions.csv``), and its sample-efficiency factor:
   how many accurate labels standard training would need for the same error, divided by N
   (from a power-law fit, log MAE linear in log N, of standard training's learning curve;
   extrapolated outside the measured range, and below 1 where the method is worse);
3. the label CPU-hours each method consumed at each N (accurate + cheap labels, as recorded by the
   labelling jobs; GAFF2 labels cost only the MD), and its training CPU-hours (every stage);
4. the CPU seconds of one prediction on one frame (one MD step) per method: Δ-learning (the cheap
   level plus a correction, EGNN/GemNet `delta` or sGDML `delta_sgdml`) pays its cheap level there.

Δ-learning counts as label cost its N accurate labels plus its cheap labels on those N frames and
on the validation and test frames.

    python benchmarks/accuracy_per_cost.py                          # results/ethanol, egnn
    python benchmarks/accuracy_per_cost.py --molecule aspirin --model gemnet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common
import numpy as np
import pandas as pd

from pipeline import methods
from pipeline.report import metrics

METHODS = ["standard", "asteroid", "score_matching", "sgdml", "delta", "delta_sgdml"]  # table column order
KERNEL_METHODS = tuple(methods.names(kernel=True))  # model "sgdml": compared with this model's standard curve


def method_label(method: str, cheap_level) -> str:
    if method == "asteroid":
        return f"ASTEROID ({cheap_level})"
    if method == "delta":
        return f"Δ ({cheap_level})"
    if method == "delta_sgdml":
        return f"Δ sGDML ({cheap_level})"
    if method == "score_matching":
        return "score matching + FT"
    return {"standard": "standard", "sgdml": "sGDML"}.get(method, method)


def efficiency_text(factor: float, extrapolated: bool) -> str:
    """'x2.1', marked where standard's curve is extrapolated to get it; capped at x20."""
    if not np.isfinite(factor):
        return "n/a"
    if factor > 20:
        return "> x20 (extrapolated)"
    return f"x{factor:.2f}" + (" (extrapolated)" if extrapolated else "")


def reduction_text(red: pd.DataFrame, model: str, method: str, level, n: int) -> str:
    """'+32% [+25%, +38%]' from reductions.csv, with 'n.s.' when the interval includes zero."""
    key = f"sgdml vs {model}" if method in KERNEL_METHODS else model
    lvl = "" if pd.isna(level) else str(level)
    r = red[
        (red["model"] == key)
        & (red["method"] == method)
        & (red["cheap_level"].fillna("") == lvl)
        & (red["n_train"] == n)
        & red["baseline"].str.endswith(" standard")
    ]
    if r.empty:
        return "n/a"
    r = r.iloc[0]
    sig = str(r["significant"]).lower() == "true"
    return (
        f"{100 * r['reduction']:+.0f}% [{100 * r['reduction_ci_low']:+.0f}%, {100 * r['reduction_ci_high']:+.0f}%]"
        + ("" if sig else " n.s.")
    )


def tables(df: pd.DataFrame, model: str, red: pd.DataFrame) -> tuple[str, str, str, str, str]:
    df = df.copy()
    # sGDML rows carry model "sgdml"; compare them with this model's standard curve like the rest
    df.loc[df["method"].isin(KERNEL_METHODS), "model"] = model
    if "predict_cpu_s_per_frame" not in df.columns:  # results.csv of an older run
        df["predict_cpu_s_per_frame"] = np.nan
    agg = metrics.aggregate_results(df)
    agg = agg[(agg["model"] == model) & agg["method"].isin(METHODS) & (agg["n_train"] > 0)].copy()
    if agg.empty:
        raise SystemExit(f"no rows for model {model!r}; models in the file: {sorted(df['model'].unique())}")
    agg["label"] = [method_label(m, c) for m, c in zip(agg["method"], agg["cheap_level"])]
    agg["order"] = [METHODS.index(m) for m in agg["method"]]
    labels = agg.sort_values(["order", "label"]).drop_duplicates("label")
    order = list(labels["label"])
    sizes = sorted(agg["n_train"].unique())
    mae = agg.pivot(index="n_train", columns="label", values="force_mae_kcal").reindex(columns=order)
    cost = agg.pivot(index="n_train", columns="label", values="data_cost_cpu_h").reindex(columns=order)
    train = agg.pivot(index="n_train", columns="label", values="train_cpu_h_total").reindex(columns=order)
    pred = agg.pivot(index="n_train", columns="label", values="predict_cpu_s_per_frame").reindex(columns=order)

    t1 = common.markdown_table(["N"] + order, [[int(n)] + [float(mae.loc[n, c]) for c in order] for n in sizes])
    rows = []
    for r in labels[labels["method"] != "standard"].itertuples():
        eff = metrics.sample_efficiency(df, model, method=r.method, cheap_level=r.cheap_level)
        rows += [
            [
                r.label,
                int(e.n_train),
                reduction_text(red, model, r.method, r.cheap_level, int(e.n_train)),
                efficiency_text(e.factor, e.extrapolated),
            ]
            for e in eff.itertuples()
        ]
    t2 = common.markdown_table(["method", "N", "error reduction vs standard [95% CI]", "sample efficiency"], rows)
    t3 = common.markdown_table(["N"] + order, [[int(n)] + [float(cost.loc[n, c]) for c in order] for n in sizes])
    t4 = common.markdown_table(["N"] + order, [[int(n)] + [float(train.loc[n, c]) for c in order] for n in sizes])
    t5 = common.markdown_table(["N"] + order, [[int(n)] + [float(pred.loc[n, c]) for c in order] for n in sizes])
    return t1, t2, t3, t4, t5


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--molecule", default="ethanol")
    p.add_argument("--model", default="egnn")
    a = p.parse_args()
    path = Path(a.results) / a.molecule / "results.csv"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `snakemake --cores all {path}` first")
    df = pd.read_csv(path)
    t1, t2, t3, t4, t5 = tables(df, a.model, pd.read_csv(path.with_name("reductions.csv")))
    seeds = sorted(int(s) for s in df.loc[df["model"] == a.model, "seed"].unique())
    print(f"# Accuracy per cost: {a.molecule}, {a.model} (from {path}; mean over seeds {seeds})\n")
    print("## Test force MAE (kcal/mol/A)\n")
    print(t1, "\n")
    print("## Against standard training\n")
    print(
        "Intervals: 95%, over seeds and test frames (a t interval with the seeds' degrees of freedom; one seed: "
        "a paired bootstrap over test frames); n.s. = not significant.\n"
    )
    print(t2, "\n")
    print("## Label cost per method (CPU-hours of the labels it trained on)\n")
    print(t3, "\n")
    print("## Training cost per method (CPU-hours of every training step it needed)\n")
    print(t4, "\n")
    print("## Prediction cost per MD step (CPU seconds of one prediction on one frame; Δ includes its cheap level)\n")
    print(t5)


if __name__ == "__main__":
    main()
