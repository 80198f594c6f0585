"""Collect evaluations into the tidy tables the report reads.

- results.csv: one row per (model, method, cheap level, N, seed) with test errors, data cost and
  training time. ASTEROID's gamma is chosen per (model, cheap level, N, seed) by the fine-tuned
  model's validation loss (never by test error); `bias_aware_no_finetune` is stage 2 at that gamma.
- gamma_selection.csv: every gamma's validation loss and which one was chosen.
- label_costs.csv: CPU cost per frame of each labelled subset, from the per-frame records.
- stability.csv: the MD stability runs, concatenated.

Model roles come from the path layout the workflow writes (results/<molecule>/...):
  models/<model>/standard/N<n>_s<seed>                  standard (= ASTEROID stage 1)
  models/<model>/stage2/<level>/g<gamma>/N<n>_s<seed>   stage 2, bias-weighted
  models/<model>/stage2/<level>/ginf/s<seed>            cheap-only (unweighted stage 2)
  models/<model>/finetune/<level>/g<gamma>/N<n>_s<seed> stage 3 (gamma=inf: no bias weights)
  models/<model>/score/s<seed>                          score matching only
  models/<model>/finetune/score/N<n>_s<seed>            score matching + fine-tuning
  baselines/sgdml/N<n>                                  sGDML
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import atomic_write, load_npz

PATTERNS = [
    ("standard", re.compile(r"models/(?P<model>\w+)/standard/N(?P<n>\d+)_s(?P<seed>\d+)/eval\.json$")),
    ("stage2", re.compile(r"models/(?P<model>\w+)/stage2/(?P<level>\w+)/g(?P<gamma>[0-9.e+-]+)/N(?P<n>\d+)_s(?P<seed>\d+)/eval\.json$")),
    ("cheap_only", re.compile(r"models/(?P<model>\w+)/stage2/(?P<level>\w+)/ginf/s(?P<seed>\d+)/eval\.json$")),
    ("score_matching", re.compile(r"models/(?P<model>\w+)/finetune/score/N(?P<n>\d+)_s(?P<seed>\d+)/eval\.json$")),
    ("finetune", re.compile(r"models/(?P<model>\w+)/finetune/(?P<level>\w+)/g(?P<gamma>[0-9.e+-]+|inf)/N(?P<n>\d+)_s(?P<seed>\d+)/eval\.json$")),
    ("score_matching_no_finetune", re.compile(r"models/(?P<model>\w+)/score/s(?P<seed>\d+)/eval\.json$")),
    ("sgdml", re.compile(r"baselines/sgdml/N(?P<n>\d+)/eval\.json$")),
]
METRICS = ["force_mae_kcal", "force_rmse_kcal", "force_mae_mev", "force_rmse_mev", "energy_mae_kcal"]
COLUMNS = ["molecule", "model", "method", "cheap_level", "n_train", "gamma", "seed", *METRICS,
           "n_accurate_labels", "n_cheap_labels", "accurate_label_cpu_h", "cheap_label_cpu_h", "data_cost_cpu_h",
           "train_wall_s", "train_cpu_s"]


def parse_eval_path(path: str) -> dict:
    p = Path(path).as_posix()
    for role, pat in PATTERNS:
        m = pat.search(p)
        if m:
            d = m.groupdict()
            return {
                "role": role,
                "model": d.get("model", "sgdml"),
                "cheap_level": d.get("level", "unlabelled" if role.startswith("score") else ""),
                "n_train": int(d.get("n", 0)),
                "gamma": float(d["gamma"]) if "gamma" in d else (math.inf if role == "cheap_only" else math.nan),
                "seed": int(d.get("seed", 0)),
            }
    raise ValueError(f"{path}: not an evaluation path of the workflow layout")


def best_by_validation(model_extras: dict[str, dict]) -> str:
    """Key of the candidate with the lowest validation loss (stage-3 `best_val_loss`)."""
    return min(model_extras, key=lambda k: model_extras[k].get("best_val_loss", math.inf))


def _label_cost_rows(datasets: dict[str, str]) -> pd.DataFrame:
    rows = []
    for key, path in datasets.items():
        level, subset = key.split(":", 1)
        ds = load_npz(path)
        fail_csv = Path(path).with_suffix(".failures.csv")
        failed = pd.read_csv(fail_csv) if fail_csv.exists() else pd.DataFrame(columns=["cpu_s"])
        cpu_total = float(ds.cpu_s.sum() + failed["cpu_s"].sum())
        rows.append(dict(level=level, subset=subset, n_frames=len(ds), n_failed=len(failed),
                         n_outliers=int(ds.meta.get("n_outliers", 0)), cpu_s_total=cpu_total,
                         cpu_s_per_frame=float(ds.cpu_s.mean()) if len(ds) else math.nan,
                         wall_s_per_frame=float(ds.wall_s.mean()) if len(ds) else math.nan))
    return pd.DataFrame(rows, columns=["level", "subset", "n_frames", "n_failed", "n_outliers", "cpu_s_total", "cpu_s_per_frame",
                                       "wall_s_per_frame"])


def collect(*, molecule: str, evals: list[str], train_npz: str, cheap_npz: dict[str, str], unlabelled_npz: str | None,
            datasets: dict[str, str], stability_csvs: list[str], out_results: str, out_gamma: str, out_costs: str,
            out_stability: str) -> pd.DataFrame:
    train_cpu = load_npz(train_npz).cpu_s  # [n_train_max] CPU s per accurate label, in train order
    cheap_cpu_h = {lvl: float(load_npz(p).cpu_s.sum()) / 3600 for lvl, p in cheap_npz.items()}
    cheap_n = {lvl: len(load_npz(p)) for lvl, p in cheap_npz.items()}
    if unlabelled_npz:
        unl = load_npz(unlabelled_npz)
        cheap_cpu_h["unlabelled"], cheap_n["unlabelled"] = float(unl.cpu_s.sum()) / 3600, len(unl)

    records = []
    for path in evals:
        info = parse_eval_path(path)
        ev = json.loads(Path(path).read_text())
        extra = ev.get("model_extra", {}) or {}
        wall = float(extra.get("train_wall_s", ev.get("train_wall_s", 0.0)) or 0.0) + float(extra.get("init_train_wall_s") or 0.0)
        cpu = float(extra.get("train_cpu_s", 0.0) or 0.0)
        records.append({**info, "path": path, "extra": extra, **{m: ev[m] for m in METRICS},
                        "train_wall_s": wall, "train_cpu_s": cpu})
    df = pd.DataFrame(records)

    def cost_row(r, method):
        n = int(r["n_train"]) if method not in ("cheap_only", "score_matching_no_finetune") else 0
        uses_cheap = method not in ("standard", "sgdml")
        acc_h = float(train_cpu[:n].sum()) / 3600
        ch_h = cheap_cpu_h.get(r["cheap_level"], 0.0) if uses_cheap else 0.0
        return dict(n_train=n, n_accurate_labels=n, n_cheap_labels=cheap_n.get(r["cheap_level"], 0) if uses_cheap else 0,
                    accurate_label_cpu_h=acc_h, cheap_label_cpu_h=ch_h, data_cost_cpu_h=acc_h + ch_h)

    out, gamma_rows = [], []
    direct = {"standard": "standard", "cheap_only": "cheap_only", "score_matching": "score_matching",
              "score_matching_no_finetune": "score_matching_no_finetune", "sgdml": "sgdml"}
    for _, r in df.iterrows():
        method = direct.get(r["role"])
        if r["role"] == "finetune" and math.isinf(r["gamma"]):
            method = "finetune_unweighted"
        if method:
            out.append({**r.to_dict(), "method": method, **cost_row(r, method)})
    ft = df[(df["role"] == "finetune") & np.isfinite(df["gamma"].astype(float))] if len(df) else df
    for (model, lvl, n, seed), grp in ft.groupby(["model", "cheap_level", "n_train", "seed"]) if len(ft) else []:
        extras = {float(g): e for g, e in zip(grp["gamma"], grp["extra"])}
        chosen = best_by_validation(extras)
        for g, e in sorted(extras.items()):
            gamma_rows.append(dict(model=model, cheap_level=lvl, n_train=n, seed=seed, gamma=g,
                                   val_loss=e.get("best_val_loss", math.nan), chosen=g == chosen))
        best = grp[grp["gamma"] == chosen].iloc[0]
        out.append({**best.to_dict(), "method": "asteroid", **cost_row(best, "asteroid")})
        s2 = df[(df["role"] == "stage2") & (df["model"] == model) & (df["cheap_level"] == lvl) &
                (df["n_train"] == n) & (df["seed"] == seed) & (df["gamma"] == chosen)]
        if len(s2):
            out.append({**s2.iloc[0].to_dict(), "method": "bias_aware_no_finetune",
                        **cost_row(s2.iloc[0], "bias_aware_no_finetune")})
    results = pd.DataFrame(out)
    results["molecule"] = molecule
    results = results[COLUMNS].sort_values(["model", "method", "cheap_level", "n_train", "seed"]).reset_index(drop=True)
    gamma = pd.DataFrame(gamma_rows, columns=["model", "cheap_level", "n_train", "seed", "gamma", "val_loss", "chosen"])
    costs = _label_cost_rows(datasets)
    stab = pd.concat([pd.read_csv(p) for p in stability_csvs], ignore_index=True) if stability_csvs else pd.DataFrame()
    for path, table in ((out_results, results), (out_gamma, gamma), (out_costs, costs), (out_stability, stab)):
        atomic_write(path, lambda tmp, t=table: t.to_csv(tmp, index=False))
    return results
