"""Accuracy per label cost of a finished run: the paper's comparison on this pipeline's numbers.

Reads ``results/<molecule>/results.csv`` (written by the workflow's ``collect`` rule: test errors
of every trained model with its data cost) and prints, for one model:

1. test force MAE (kcal/mol/A) at each accurate training size N for standard training, ASTEROID
   with each cheap level, score matching + fine-tuning, and sGDML (mean over seeds);
2. the reduction of each method's error against standard training at the same N (the paper's
   headline: 66% for EGNN with DFT in the low-data setting), and its sample-efficiency factor:
   how many accurate labels standard training would need for the same error, divided by N
   (from a power-law fit, log MAE linear in log N, of standard training's learning curve;
   extrapolated outside the measured range, and below 1 where the method is worse);
3. the label CPU-hours each method consumed at each N (accurate + cheap labels, as recorded by the
   labelling jobs; GAFF2 labels cost only the MD).

    python benchmarks/accuracy_per_cost.py                          # results/ethanol, egnn
    python benchmarks/accuracy_per_cost.py --molecule aspirin --model gemnet
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import common


def method_label(method: str, cheap_level) -> str:
    if method == "asteroid":
        return f"ASTEROID ({cheap_level})"
    if method == "score_matching":
        return "score matching + FT"
    return {"standard": "standard", "sgdml": "sGDML"}.get(method, method)


def sample_efficiency(n_std: np.ndarray, mae_std: np.ndarray, n: int, mae: float) -> float:
    """N' / N where standard training reaches `mae` at N' on the power-law fit of its curve."""
    if len(n_std) < 2:
        return float("nan")
    slope, intercept = np.polyfit(np.log(n_std), np.log(mae_std), 1)
    if slope >= 0:
        return float("nan")
    return float(np.exp((np.log(mae) - intercept) / slope)) / n


def efficiency_text(eff: float, n: int, n_measured) -> str:
    """'x2.1', marked where standard's curve is extrapolated to get it; capped at x20."""
    if not np.isfinite(eff):
        return "n/a"
    if eff > 20:
        return "> x20 (extrapolated)"
    inside = min(n_measured) <= eff * n <= max(n_measured)
    return f"x{eff:.2f}" + ("" if inside else " (extrapolated)")


def tables(df: pd.DataFrame, model: str) -> tuple[str, str, str, dict]:
    keep = {"standard", "asteroid", "score_matching"}
    sel = df[((df["model"] == model) & df["method"].isin(keep)) | (df["method"] == "sgdml")].copy()
    if sel.empty:
        raise SystemExit(f"no rows for model {model!r}; models in the file: {sorted(df['model'].unique())}")
    sel["label"] = [method_label(m, c) for m, c in zip(sel["method"], sel["cheap_level"])]
    g = sel.groupby(["label", "n_train"]).agg(mae=("force_mae_kcal", "mean"), seeds=("seed", "nunique"),
                                              cost=("data_cost_cpu_h", "mean")).reset_index()
    order = ["standard"] + sorted(x for x in g["label"].unique() if x.startswith("ASTEROID")) + \
        [x for x in ("score matching + FT", "sGDML") if x in set(g["label"])]
    sizes = sorted(g["n_train"].unique())
    mae = g.pivot(index="n_train", columns="label", values="mae").reindex(columns=order)
    cost = g.pivot(index="n_train", columns="label", values="cost").reindex(columns=order)
    std = mae["standard"].dropna()

    t1 = common.markdown_table(["N"] + order, [[int(n)] + [float(mae.loc[n, c]) for c in order] for n in sizes])
    rows, stats = [], {}
    for c in order[1:]:
        for n in sizes:
            red = 100.0 * (1.0 - mae.loc[n, c] / mae.loc[n, "standard"])
            eff = sample_efficiency(std.index.to_numpy(float), std.to_numpy(), int(n), float(mae.loc[n, c]))
            rows.append([c, int(n), f"{red:+.0f}%", efficiency_text(eff, int(n), std.index)])
            stats[(c, int(n))] = (red, eff)
    t2 = common.markdown_table(["method", "N", "error reduction vs standard", "sample efficiency"], rows)
    t3 = common.markdown_table(["N"] + order, [[int(n)] + [float(cost.loc[n, c]) for c in order] for n in sizes])
    return t1, t2, t3, stats


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
    t1, t2, t3, _ = tables(df, a.model)
    seeds = sorted(int(s) for s in df.loc[df["model"] == a.model, "seed"].unique())
    print(f"# Accuracy per cost: {a.molecule}, {a.model} (from {path}; mean over seeds {seeds})\n")
    print("## Test force MAE (kcal/mol/A)\n")
    print(t1, "\n")
    print("## Against standard training\n")
    print(t2, "\n")
    print("## Label cost per method (CPU-hours of the labels it trained on)\n")
    print(t3)


if __name__ == "__main__":
    main()
