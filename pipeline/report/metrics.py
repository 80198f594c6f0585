"""Cost accounting and sample-efficiency helpers for the report.

All errors are force MAEs in kcal/mol/Å (``force_mae_kcal`` in ``results.csv``); all
costs are CPU-hours (``*_cpu_h``) unless a column name says otherwise.

Learning curves follow a power law, err ≈ a·N^(−b), with N the number of accurate
(e.g. CCSD(T)) training labels. The *sample-efficiency factor* of a method at N is
N_equiv / N, where N_equiv is the number of labels that standard training (accurate
labels only) would need to reach the same error, read off the inverted power-law fit
of the standard curve (ASTEROID paper, ICML 2023).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import methods, records

# The tables the report reads, as collect writes them (pipeline/records.py).
RESULTS_COLUMNS = records.RESULTS
BIAS_SUMMARY_COLUMNS = records.BIAS_SUMMARY
LABEL_COST_COLUMNS = records.LABEL_COSTS
GAMMA_COLUMNS = records.GAMMA
STABILITY_COLUMNS = [
    "model",
    "method",
    "cheap_level",
    "n_train",
    "seed",
    "run",
    "steps_completed",
    "n_steps",
    "time_ps",
    "diverged",
    "reason",
]
# Metrics averaged over seeds by aggregate_results (mean and std of each).
_AGG_METRICS = ["force_mae_kcal", "force_rmse_kcal", "energy_mae_kcal", "data_cost_cpu_h", "total_cpu_h"]
# Cost columns averaged over seeds (they rarely differ between seeds).
_AGG_COSTS = [
    "n_accurate_labels",
    "n_cheap_labels",
    "accurate_label_cpu_h",
    "cheap_label_cpu_h",
    "train_wall_s",
    "train_cpu_s",
    "train_cpu_h_total",
    "predict_cpu_s_per_frame",
]
GROUP_KEYS = ["model", "method", "cheap_level", "n_train"]


def normalise_levels(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of `df` whose ``cheap_level`` is a plain string, "" where not applicable."""
    out = df.copy()
    if "cheap_level" in out.columns:
        out["cheap_level"] = ["" if pd.isna(v) else str(v) for v in out["cheap_level"]]
    return out


def as_bool(series: pd.Series) -> pd.Series:
    """A column of booleans read from CSV ("True"/"false"/1/0) as a bool Series."""

    def one(v) -> bool:
        if isinstance(v, str):
            s = v.strip().lower()
            if s in ("true", "1", "yes"):
                return True
            if s in ("false", "0", "no", ""):
                return False
            raise ValueError(f"not a boolean: {v!r}")
        return bool(v) if not pd.isna(v) else False

    return pd.Series([one(v) for v in series], index=series.index, dtype=bool)


def aggregate_results(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (model, method, cheap_level, n_train).

    Returns one row per group with ``<metric>`` (mean), ``<metric>_std`` (sample std,
    NaN for a single seed) for the error and data-cost metrics, the mean of the label
    counts, label costs and training times, and ``n_seeds``.
    """
    df = normalise_levels(results)
    cols = [c for c in _AGG_METRICS + _AGG_COSTS if c in df.columns]
    if df.empty:
        return pd.DataFrame(columns=GROUP_KEYS + cols + [f"{c}_std" for c in _AGG_METRICS] + ["n_seeds"])
    grouped = df.groupby(GROUP_KEYS, sort=True)
    out = grouped[cols].mean()
    for c in _AGG_METRICS:
        if c in df.columns:
            out[f"{c}_std"] = grouped[c].std()
    out["n_seeds"] = grouped.size()
    return out.reset_index()


def fit_power_law(n, err) -> tuple[float, float]:
    """Fit err ≈ a·N^(−b) by least squares in log-log space; returns (a, b).

    Repeated N (several seeds) are first averaged, so every N weighs the same.
    Needs at least two distinct N > 0 with err > 0; raises ValueError otherwise.
    """
    df = pd.DataFrame({"n": np.asarray(n, dtype=float), "err": np.asarray(err, dtype=float)})
    df = df[(df["n"] > 0) & (df["err"] > 0) & np.isfinite(df["err"])]
    means = df.groupby("n")["err"].mean()
    if len(means) < 2:
        raise ValueError(f"power-law fit needs at least two distinct N > 0 with positive error; got {len(means)}")
    slope, intercept = np.polyfit(np.log(means.index.to_numpy()), np.log(means.to_numpy()), 1)
    return float(np.exp(intercept)), float(-slope)


def power_law_n_for_error(err, a: float, b: float):
    """Invert err = a·N^(−b): the N at which the fitted curve reaches `err`.

    NaN where the fit does not decrease with N (b ≤ 0), since then no N is implied.
    """
    err = np.asarray(err, dtype=float)
    if b <= 0:
        return np.full_like(err, np.nan)
    return (a / err) ** (1.0 / b)


def _accurate_cpu_h_per_label(rows: pd.DataFrame) -> float:
    """Mean CPU-h of one accurate label in `rows` (NaN if no row has accurate labels)."""
    rows = rows[rows["n_accurate_labels"] > 0]
    if rows.empty:
        return float("nan")
    return float((rows["accurate_label_cpu_h"] / rows["n_accurate_labels"]).mean())


def sample_efficiency(
    results_df: pd.DataFrame,
    model: str,
    reference_method: str = "standard",
    method: str = "asteroid",
    cheap_level: str | None = None,
) -> pd.DataFrame:
    """Sample-efficiency table of `method` over `reference_method` for one model.

    `cheap_level` picks the cheap labels `method` was trained with; None is allowed
    only when `method` has exactly one cheap level for this model. The reference curve
    (over its per-N seed means) is fitted with :func:`fit_power_law`; for every N of
    `method` the table gives its mean error and:

    - ``standard_force_mae_kcal``: the reference's mean error at the same N (NaN if not run),
    - ``reduction_pct``: 100·(reference − method)/reference at that N,
    - ``n_equiv``: labels the reference needs for the method's error (inverted fit),
    - ``factor``: n_equiv / N, the sample-efficiency factor,
    - ``extrapolated``: n_equiv lies outside the N range the fit was made on,
    - ``standard_equiv_cost_cpu_h``: n_equiv times the CPU-h of one accurate label.

    The fit is stored in ``df.attrs["fit"] = (a, b)``. Raises ValueError when the
    model/method/level is absent or the reference has fewer than two N.
    """
    agg = aggregate_results(results_df)
    agg = agg[agg["model"] == model]
    ref = agg[(agg["method"] == reference_method) & (agg["n_train"] > 0)]
    cand = agg[(agg["method"] == method) & (agg["n_train"] > 0)]
    if cand.empty:
        raise ValueError(f"no {method!r} results with n_train > 0 for model {model!r}")
    levels = sorted(cand["cheap_level"].unique())
    if cheap_level is None:
        if len(levels) != 1:
            raise ValueError(f"{method!r} for model {model!r} has cheap levels {levels}; pass cheap_level")
        cheap_level = levels[0]
    cand = cand[cand["cheap_level"] == cheap_level]
    if cand.empty:
        raise ValueError(f"no {method!r} results for model {model!r} at cheap level {cheap_level!r}; levels: {levels}")
    if ref["n_train"].nunique() < 2:
        raise ValueError(
            f"{reference_method!r} training of model {model!r} was run at "
            f"{ref['n_train'].nunique()} N > 0; the power-law fit needs at least two"
        )
    a, b = fit_power_law(ref["n_train"], ref["force_mae_kcal"])
    ref_raw = normalise_levels(results_df)
    ref_raw = ref_raw[(ref_raw["model"] == model) & (ref_raw["method"] == reference_method)]
    cost_per_label = _accurate_cpu_h_per_label(ref_raw)

    table = cand[
        [
            "model",
            "method",
            "cheap_level",
            "n_train",
            "force_mae_kcal",
            "force_mae_kcal_std",
            "n_seeds",
            "data_cost_cpu_h",
        ]
    ].merge(
        ref[["n_train", "force_mae_kcal"]].rename(columns={"force_mae_kcal": "standard_force_mae_kcal"}),
        on="n_train",
        how="left",
    )
    table["reduction_pct"] = (
        100.0 * (table["standard_force_mae_kcal"] - table["force_mae_kcal"]) / table["standard_force_mae_kcal"]
    )
    table["n_equiv"] = power_law_n_for_error(table["force_mae_kcal"], a, b)
    table["factor"] = table["n_equiv"] / table["n_train"]
    n_lo, n_hi = ref["n_train"].min(), ref["n_train"].max()
    table["extrapolated"] = ~table["n_equiv"].between(n_lo, n_hi)
    table["standard_equiv_cost_cpu_h"] = table["n_equiv"] * cost_per_label
    table = table.sort_values("n_train").reset_index(drop=True)
    table.attrs["fit"] = (a, b)
    return table


def error_reduction(results_df: pd.DataFrame, model: str, reference_method: str = "standard") -> pd.DataFrame:
    """Percentage force-MAE reduction of every method over `reference_method` at each N.

    One row per (method, cheap_level, n_train) of `model` whose N the reference was
    also run at; ``reduction_pct`` = 100·(reference − method)/reference (positive is better).
    """
    agg = aggregate_results(results_df)
    agg = agg[agg["model"] == model]
    ref = agg[agg["method"] == reference_method][["n_train", "force_mae_kcal"]].rename(
        columns={"force_mae_kcal": "standard_force_mae_kcal"}
    )
    others = agg[agg["method"] != reference_method]
    table = others[
        ["model", "method", "cheap_level", "n_train", "force_mae_kcal", "force_mae_kcal_std", "n_seeds"]
    ].merge(ref, on="n_train", how="inner")
    table["reduction_pct"] = (
        100.0 * (table["standard_force_mae_kcal"] - table["force_mae_kcal"]) / table["standard_force_mae_kcal"]
    )
    return table.sort_values(["method", "cheap_level", "n_train"]).reset_index(drop=True)


ABLATION_METHODS = sorted(
    (m.name for m in methods.METHODS.values() if m.ablation_order is not None),
    key=lambda name: methods.get(name).ablation_order,
)


def ablation_table(results_df: pd.DataFrame) -> pd.DataFrame:
    """Long table of the ASTEROID ablation: for every (model, cheap_level, N) at which
    ASTEROID or one of its ablations ran, the mean ± std force MAE of each of
    :data:`ABLATION_METHODS` (standard has no cheap level and is repeated per level).

    Columns: model, cheap_level, n_train, method, force_mae_kcal, force_mae_kcal_std, n_seeds.
    """
    agg = aggregate_results(results_df)
    agg = agg[agg["method"].isin(ABLATION_METHODS) & (agg["n_train"] > 0)]
    cols = ["force_mae_kcal", "force_mae_kcal_std", "n_seeds"]
    cheap = agg[agg["method"] != "standard"]
    keys = cheap[["model", "cheap_level", "n_train"]].drop_duplicates()
    std = agg[agg["method"] == "standard"][["model", "n_train", "method"] + cols]
    rows = pd.concat(
        [
            cheap[["model", "cheap_level", "n_train", "method"] + cols],
            keys.merge(std, on=["model", "n_train"], how="inner"),
        ],
        ignore_index=True,
    )
    order = {m: i for i, m in enumerate(ABLATION_METHODS)}
    rows["_order"] = rows["method"].map(order)
    rows = rows.sort_values(["model", "cheap_level", "n_train", "_order"])
    return rows.drop(columns="_order").reset_index(drop=True)


def label_cost_summary(label_costs: pd.DataFrame) -> pd.DataFrame:
    """Per label level: frames, failed frames, outlier frames (when counted), total CPU-h and
    CPU-s / wall-s per frame.

    Per-frame costs are averaged over subsets weighted by their frame counts.
    Sorted from cheapest to most expensive level per frame.
    """
    cols = ["level", "n_frames", "n_failed", "cpu_h_total", "cpu_s_per_frame", "wall_s_per_frame"]
    if label_costs.empty:
        return pd.DataFrame(columns=cols)
    df = label_costs.copy()
    df["_wall_s"] = df["wall_s_per_frame"] * df["n_frames"]
    g = df.groupby("level", sort=True)
    out = pd.DataFrame(
        {
            "n_frames": g["n_frames"].sum(),
            "n_failed": g["n_failed"].sum(),
            "cpu_h_total": g["cpu_s_total"].sum() / 3600.0,
        }
    )
    if "n_outliers" in df:  # frames flagged as implausible (labelling.outliers); older tables lack it
        out["n_outliers"] = g["n_outliers"].sum()
        cols = cols[:3] + ["n_outliers"] + cols[3:]
    frames = out["n_frames"].where(out["n_frames"] > 0)
    out["cpu_s_per_frame"] = g["cpu_s_total"].sum() / frames
    out["wall_s_per_frame"] = g["_wall_s"].sum() / frames
    out = out.reset_index().sort_values("cpu_s_per_frame", kind="stable")
    return out[cols].reset_index(drop=True)


def stage_from_path(path: str | os.PathLike, molecule: str) -> str:
    """Stage (rule) name of a benchmark file ``benchmarks/<molecule>/<rule>/....tsv``:
    the directory after ``benchmarks/<molecule>``, or else after the last directory named
    like the molecule. Raises ValueError if there is none."""
    parts = Path(path).parts[:-1]
    hits = [i for i in range(len(parts) - 1) if parts[i] == molecule]
    under_benchmarks = [i for i in hits if i > 0 and parts[i - 1] == "benchmarks"]
    if under_benchmarks or hits:
        return parts[(under_benchmarks or hits)[-1] + 1]
    raise ValueError(
        f"benchmark file {os.fspath(path)!r} is not under a {molecule!r} directory "
        f"(expected benchmarks/{molecule}/<rule>/...tsv)"
    )


def read_benchmarks(paths: list[str], molecule: str) -> pd.DataFrame:
    """One row per Snakemake benchmark file: path, stage, wall_s, cpu_s, max_rss_mb.

    A file with several data rows (``benchmark: repeat(...)``) is averaged over its
    repeats. Non-numeric entries (Snakemake writes ``NA`` when a value is unknown)
    become NaN.
    """
    rows = []
    for path in paths:
        bench = pd.read_csv(path, sep="\t")
        missing = [c for c in ("s", "max_rss", "cpu_time") if c not in bench.columns]
        if missing:
            raise ValueError(f"benchmark file {path!r} lacks columns {missing}")
        if bench.empty:
            continue
        num = bench[["s", "max_rss", "cpu_time"]].apply(pd.to_numeric, errors="coerce")
        rows.append(
            {
                "path": os.fspath(path),
                "stage": stage_from_path(path, molecule),
                "wall_s": num["s"].mean(),
                "cpu_s": num["cpu_time"].mean(),
                "max_rss_mb": num["max_rss"].max(),
            }
        )
    return pd.DataFrame(rows, columns=["path", "stage", "wall_s", "cpu_s", "max_rss_mb"])


def stage_timings(benchmarks: pd.DataFrame) -> pd.DataFrame:
    """Per stage: number of jobs, summed wall and CPU hours, peak resident memory (MB).

    `benchmarks` is the output of :func:`read_benchmarks`. Sorted by CPU hours, largest first.
    """
    cols = ["stage", "n_jobs", "wall_h", "cpu_h", "max_rss_mb"]
    if benchmarks.empty:
        return pd.DataFrame(columns=cols)
    g = benchmarks.groupby("stage")
    out = pd.DataFrame(
        {
            "n_jobs": g.size(),
            "wall_h": g["wall_s"].sum(min_count=1) / 3600.0,
            "cpu_h": g["cpu_s"].sum(min_count=1) / 3600.0,
            "max_rss_mb": g["max_rss_mb"].max(),
        }
    ).reset_index()
    out = out.sort_values(["cpu_h", "stage"], ascending=[False, True], na_position="last")
    return out[cols].reset_index(drop=True)


PLAN_COLUMNS = ["level", "n_frames", "cpu_s_per_frame", "source"]


def estimate_vs_spent(plan: pd.DataFrame, label_costs: pd.DataFrame) -> pd.DataFrame:
    """Per computed level: the run's label cost estimate (``label_plan.csv``, written at its
    start) next to the CPU time its labels recorded (``label_costs.csv``).

    Both sides count every labelled frame, cached or not (a cached frame carries the CPU time it
    cost when it was computed), so the ratio ``spent / estimate`` measures the cost model.
    """
    cols = [
        "level",
        "n_frames",
        "estimated_cpu_s_per_frame",
        "estimated_cpu_h",
        "spent_cpu_s_per_frame",
        "spent_cpu_h",
        "spent_over_estimate",
        "estimate_source",
    ]
    if plan.empty:
        return pd.DataFrame(columns=cols)
    est = pd.DataFrame(
        {
            "level": plan["level"].astype(str),
            "n_frames": plan["n_frames"],
            "estimated_cpu_s_per_frame": plan["cpu_s_per_frame"],
            "estimated_cpu_h": plan["n_frames"] * plan["cpu_s_per_frame"] / 3600.0,
            "estimate_source": plan["source"],
        }
    )
    spent = label_cost_summary(label_costs)[["level", "n_frames", "cpu_h_total"]].rename(
        columns={"n_frames": "spent_frames", "cpu_h_total": "spent_cpu_h"}
    )
    spent["level"] = spent["level"].astype(str)
    out = est.merge(spent, on="level", how="left")
    out["spent_cpu_s_per_frame"] = out["spent_cpu_h"] * 3600.0 / out["spent_frames"].where(out["spent_frames"] > 0)
    out["spent_over_estimate"] = out["spent_cpu_h"] / out["estimated_cpu_h"].where(out["estimated_cpu_h"] > 0)
    return out[cols].reset_index(drop=True)


# Methods compared as routes to a target error (each trains on N accurate labels).
ROUTE_METHODS = methods.names(route=True)
ROUTE_COLUMNS = [
    "target",
    "target_force_mae_kcal",
    "model",
    "method",
    "cheap_level",
    "n_train",
    "force_mae_kcal",
    "data_cost_cpu_h",
    "total_cpu_h",
    "predict_cpu_s_per_frame",
    "cheapest",
]
# MD steps in one nanosecond at the paper's 0.5 fs time step: the prediction cost of a simulation.
STEPS_PER_NS = 2_000_000


def cheapest_routes(results: pd.DataFrame) -> pd.DataFrame:
    """Which route reaches a target test error for the least CPU time (labels + training).

    Targets are what standard training reached (its mean force MAE over seeds) at each N, per model.
    For each target and each route (model, method, cheap level of ROUTE_METHODS), the setting (N) with
    mean error at or below the target and the lowest total CPU-hours; ``cheapest`` marks the route with
    the lowest total per target. Prediction cost is carried along: a Δ route also pays its cheap level
    at every prediction (``predict_cpu_s_per_frame``), which total_cpu_h does not contain."""
    agg = aggregate_results(results)
    if agg.empty:
        return pd.DataFrame(columns=ROUTE_COLUMNS)
    agg = agg[agg["method"].isin(ROUTE_METHODS) & (agg["n_train"] > 0) & agg["force_mae_kcal"].notna()]
    if "predict_cpu_s_per_frame" not in agg.columns:
        agg = agg.assign(predict_cpu_s_per_frame=np.nan)
    std = agg[agg["method"] == "standard"].sort_values(["model", "n_train"])
    rows = []
    for t in std.itertuples():
        target = f"standard {t.model}, N = {int(t.n_train)}"
        found = []
        for (model, method, level), g in agg.groupby(["model", "method", "cheap_level"], sort=True):
            ok = g[(g["force_mae_kcal"] <= t.force_mae_kcal) & g["total_cpu_h"].notna()]
            if ok.empty:
                continue
            b = ok.sort_values(["total_cpu_h", "n_train"]).iloc[0]
            found.append(
                dict(
                    target=target,
                    target_force_mae_kcal=t.force_mae_kcal,
                    model=model,
                    method=method,
                    cheap_level=level,
                    n_train=int(b["n_train"]),
                    force_mae_kcal=b["force_mae_kcal"],
                    data_cost_cpu_h=b["data_cost_cpu_h"],
                    total_cpu_h=b["total_cpu_h"],
                    predict_cpu_s_per_frame=b["predict_cpu_s_per_frame"],
                    cheapest=False,
                )
            )
        if found:
            min(found, key=lambda r: r["total_cpu_h"])["cheapest"] = True
        rows += found
    return pd.DataFrame(rows, columns=ROUTE_COLUMNS)


def prediction_costs(results: pd.DataFrame) -> pd.DataFrame:
    """CPU seconds of one prediction (≈ one MD step) per (model, method, cheap level), the mean over
    its runs, and the CPU-hours of 1 ns of MD at 0.5 fs steps (one prediction per step)."""
    df = normalise_levels(results)
    if df.empty or "predict_cpu_s_per_frame" not in df.columns:
        return pd.DataFrame(columns=["model", "method", "cheap_level", "predict_cpu_s_per_frame", "md_cpu_h_per_ns"])
    df = df[df["predict_cpu_s_per_frame"].notna()]
    out = df.groupby(["model", "method", "cheap_level"], sort=True)["predict_cpu_s_per_frame"].mean().reset_index()
    out["md_cpu_h_per_ns"] = out["predict_cpu_s_per_frame"] * STEPS_PER_NS / 3600
    return out


def stability_summary(stability: pd.DataFrame) -> pd.DataFrame:
    """Per (model, method, cheap_level, n_train), seeds pooled: runs, stable runs, stable fraction,
    the divergence fraction with its 95% Wilson interval, the median time to divergence of the runs
    that diverged (ps), the mean fraction of MD steps completed and the distinct divergence reasons."""
    from ..evaluation.stats import wilson_interval

    df = normalise_levels(stability)
    df["stable"] = ~as_bool(df["diverged"])
    df["steps_fraction"] = df["steps_completed"] / df["n_steps"]
    df["time_to_divergence_ps"] = df["time_ps"].where(~df["stable"])
    keys = ["model", "method", "cheap_level", "n_train"]
    g = df.groupby(keys, sort=True)
    out = pd.DataFrame(
        {
            "n_runs": g.size(),
            "n_stable": g["stable"].sum().astype(int),
            "steps_fraction": g["steps_fraction"].mean(),
            "median_time_to_divergence_ps": g["time_to_divergence_ps"].median(),
            "reasons": g["reason"].agg(lambda r: "; ".join(sorted({str(x) for x in r if isinstance(x, str) and x}))),
        }
    ).reset_index()
    out["stable_fraction"] = out["n_stable"] / out["n_runs"]
    ci = [wilson_interval(n - k, n) for k, n in zip(out["n_stable"], out["n_runs"])]
    out["diverged_fraction"] = 1 - out["stable_fraction"]
    out["diverged_ci_low"] = [c[0] for c in ci]
    out["diverged_ci_high"] = [c[1] for c in ci]
    cols = ["n_runs", "n_stable", "stable_fraction", "diverged_fraction", "diverged_ci_low", "diverged_ci_high"]
    return out[keys + cols + ["median_time_to_divergence_ps", "steps_fraction", "reasons"]]
