"""Report figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every figure is written as ``<fig_dir>/<name>.png`` and ``<fig_dir>/<name>.svg``
(SVG text is stored as paths, so the files need no fonts to display). A figure whose
data is missing or empty is skipped: :func:`make_figures` returns a
:class:`FigureResult` with the reason in ``skipped`` and removes stale files of that
name, so the folder always matches the report.

Figures: learning curves (force MAE vs N), force MAE vs label CPU-hours, cheap-only
models, MD stability, time and memory per workflow stage, label cost per frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.container import Container
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

from .. import methods
from ..data import atomic_write
from ..evaluation.stats import spearman
from . import metrics

MAE_LABEL = "force MAE (kcal/mol/Å)"

# Labels, colours and groups of the methods: from their modules (pipeline/methods), in registry order.
METHOD_LABELS = {name: m.label for name, m in methods.METHODS.items()}
METHOD_COLORS = {name: m.color for name, m in methods.METHODS.items()}
# Kernel methods (model "sgdml"): overlaid on every model's panel, dashed.
KERNEL_METHODS = tuple(methods.names(kernel=True))
MODEL_LABELS = {"egnn": "EGNN", "gemnet": "GemNet", "mace": "MACE", "sgdml": "sGDML"}
_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
_LINESTYLES = ["-", "--", "-.", ":"]
_OTHER_COLOR = "#7f7f7f"
# Methods trained without accurate labels (n_train = 0): shown as bars, not curves.
CHEAP_ONLY_METHODS = methods.names(no_accurate_labels=True)


@dataclass
class FigureResult:
    """One report figure: where it was written, or why it was skipped."""

    name: str
    title: str
    caption: str = ""
    png: Path | None = None
    svg: Path | None = None
    skipped: str = ""


class SkipFigure(Exception):
    """Raised by a figure function when its data is missing or too sparse to draw."""


def method_label(method: str, cheap_level: str = "") -> str:
    """Legend label of a (method, cheap_level) series, e.g. "ASTEROID (dft)"."""
    base = METHOD_LABELS.get(method, method)
    return f"{base} ({cheap_level})" if cheap_level else base


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _level_styles(levels) -> dict[str, tuple[str, str]]:
    """(marker, linestyle) per cheap level; the empty level gets the first style."""
    ordered = [""] + sorted(lv for lv in set(levels) if lv)
    return {lv: (_MARKERS[i % len(_MARKERS)], _LINESTYLES[i % len(_LINESTYLES)]) for i, lv in enumerate(ordered)}


def _log_axis(axis, values, ticks_at_values: bool = False) -> None:
    """Readable log axis with plain-number labels: ticks at `values` themselves, or
    at 1-2-3…8 / 1-2-5 / powers of ten depending on how many decades `values` span."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    axis.set_minor_formatter(NullFormatter())
    if ticks_at_values:
        axis.set_major_locator(FixedLocator(sorted(set(values))))
        axis.set_minor_locator(NullLocator())
    else:
        decades = np.log10(values.max() / values.min()) if len(values) else 0.0
        subs = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0) if decades < 1.2 else ((1.0, 2.0, 5.0) if decades < 3 else (1.0,))
        axis.set_major_locator(LogLocator(subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _legend_column_width(labels) -> float:
    """Rough width in inches of one legend column at fontsize "small" (handle + text)."""
    return 0.8 + 0.068 * max((len(lab) for lab in labels), default=0)


def _figure_legend(fig: Figure, axes, where: str = "below") -> None:
    """One legend for all panels, without duplicate labels: data series (error-bar and
    bar containers) first, reference lines after them.

    ``where="right"``: outside the panels on the right, one column (two beyond 14
    entries); the figure is widened by the legend's width so the panels keep their size.
    ``where="below"``: outside below the panels, in as many columns as fit the figure's
    width. Either way the legend sits outside the plot area, and :func:`save_figure`
    saves with a tight bounding box so no legend text is ever clipped."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    seen = dict(sorted(seen.items(), key=lambda kv: not isinstance(kv[1], Container)))
    if not seen:
        return
    labels = list(seen.keys())
    col_w = _legend_column_width(labels)
    if where == "right":
        ncols = 1 if len(labels) <= 14 else 2
        fig.set_size_inches(fig.get_figwidth() + ncols * col_w + 0.2, fig.get_figheight())
        loc = "outside right upper"
    else:
        ncols = int(max(1, min(len(labels), fig.get_figwidth() // col_w)))
        loc = "outside lower center"
    fig.legend(list(seen.values()), labels, loc=loc, ncols=ncols, fontsize="small", frameon=False)


def _curve_figure(n_panels: int) -> tuple[Figure, np.ndarray, str]:
    """Figure, axes and legend placement for one-panel-per-model curve figures: with one
    or two panels the legend goes on the right, with more it goes below the panels."""
    where = "right" if n_panels <= 2 else "below"
    panel_w = 5.2 if n_panels <= 2 else 4.2
    fig = Figure(figsize=(panel_w * n_panels, 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n_panels, squeeze=False)[0])
    return fig, axes, where


def _series(rows: pd.DataFrame):
    """(method, cheap_level, rows) of each plotted series, in METHOD_LABELS order."""
    order = {m: i for i, m in enumerate(METHOD_LABELS)}
    groups = dict(list(rows.groupby(["method", "cheap_level"], sort=True)))
    for key in sorted(groups, key=lambda k: (order.get(k[0], len(order)), k)):
        yield key[0], key[1], groups[key]


def _curve_panels(agg: pd.DataFrame) -> list[str]:
    """Models that get a panel: all but sGDML, which is overlaid on each panel
    (sGDML gets its own panel only when it is the only model)."""
    models = sorted(m for m in agg["model"].unique() if m != "sgdml")
    return models or sorted(agg["model"].unique())


def _sgdml_rows(agg: pd.DataFrame, panel_model: str) -> pd.DataFrame:
    """sGDML rows to overlay on the panel of `panel_model` (none on its own panel)."""
    if panel_model == "sgdml":
        return agg.iloc[0:0]
    return agg[(agg["model"] == "sgdml") & agg["method"].isin(KERNEL_METHODS)]


def learning_curves_figure(agg: pd.DataFrame) -> tuple[Figure, str]:
    """Force MAE vs N (log-log), one panel per model, one line per (method, cheap level)
    with ±1 std error bars over seeds, sGDML overlaid, and the power-law fit of the
    standard curve."""
    curves = agg[agg["n_train"] > 0] if not agg.empty else agg
    if curves.empty:
        raise SkipFigure("no results with accurate training labels (n_train > 0)")
    panels = _curve_panels(curves)
    styles = _level_styles(curves["cheap_level"])
    fig, axes, where = _curve_figure(len(panels))
    fits = []
    for ax, model in zip(axes, panels):
        rows = pd.concat([curves[curves["model"] == model], _sgdml_rows(curves, model)])
        for method, level, g in _series(rows):
            g = g.sort_values("n_train")
            marker, ls = styles[level]
            ax.errorbar(
                g["n_train"],
                g["force_mae_kcal"],
                yerr=g["force_mae_kcal_std"].fillna(0.0),
                label=method_label(method, level),
                color=METHOD_COLORS.get(method, _OTHER_COLOR),
                marker=marker,
                linestyle="--" if method in KERNEL_METHODS else ls,
                markersize=5,
                capsize=3,
                linewidth=1.6,
            )
        std = rows[rows["method"] == "standard"]
        if std["n_train"].nunique() >= 2:
            a, b = metrics.fit_power_law(std["n_train"], std["force_mae_kcal"])
            n_grid = np.geomspace(std["n_train"].min(), std["n_train"].max(), 50)
            ax.plot(
                n_grid,
                a * n_grid ** (-b),
                color=METHOD_COLORS["standard"],
                linestyle=":",
                linewidth=1.2,
                alpha=0.8,
                label="power-law fit of standard",
            )
            fits.append(f"{model_label(model)}: {a:.3g}·N^−{b:.2f}")
        _log_log_panel(
            ax, model, rows["n_train"], rows["force_mae_kcal"], "N accurate training labels", x_ticks_at_values=True
        )
    _figure_legend(fig, axes, where)
    caption = (
        "Force MAE on the accurate test set vs number of accurate training labels; "
        "points are means over seeds, bars ±1 std."
    )
    if fits:
        caption += " Power-law fits of standard training (kcal/mol/Å): " + "; ".join(fits) + "."
    return fig, caption


def _log_log_panel(ax, model, x, y, xlabel: str, x_ticks_at_values: bool = False) -> None:
    """Log-log axes of one model's panel: force MAE (y) against `x`."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_axis(ax.xaxis, x, ticks_at_values=x_ticks_at_values)
    _log_axis(ax.yaxis, y)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(MAE_LABEL)
    ax.set_title(model_label(model))
    ax.grid(True, which="major", alpha=0.3)


COST_AXES = {
    "data_cost_cpu_h": (
        "label cost (CPU-h, accurate + cheap labels)",
        "Accuracy bought per CPU-hour of labels: force MAE vs the CPU time spent "
        "computing all training labels (lower left is better). Δ-learning counts its "
        "cheap labels on the N training, the validation and the test frames, and also pays "
        "its cheap level at every prediction (see the prediction-cost table).",
    ),
    "total_cpu_h": (
        "labels + training (CPU-h)",
        "Accuracy per CPU-hour in full: force MAE vs label CPU time plus the CPU time of "
        "every training step the method needed (for ASTEROID: stage 1, the bias pass, and "
        "stage 2 and fine-tuning for every γ candidate).",
    ),
}


def cost_figure(agg: pd.DataFrame, column: str = "data_cost_cpu_h") -> tuple[Figure, str]:
    """Force MAE vs a cost column (COST_AXES: label CPU-h, or labels + training CPU-h),
    log-log, one panel per model, one line per (method, cheap level)."""
    if agg.empty or column not in agg.columns:
        raise SkipFigure("no results")
    xlabel, caption = COST_AXES[column]
    pts = agg[np.isfinite(agg[column].astype(float))]
    n_zero = int((pts[column] <= 0).sum())
    pts = pts[pts[column] > 0]
    if pts.empty:
        raise SkipFigure(f"no results with a positive cost ({column})")
    panels = _curve_panels(pts)
    styles = _level_styles(pts["cheap_level"])
    fig, axes, where = _curve_figure(len(panels))
    for ax, model in zip(axes, panels):
        rows = pd.concat([pts[pts["model"] == model], _sgdml_rows(pts, model)])
        for method, level, g in _series(rows):
            g = g.sort_values(column)
            marker, ls = styles[level]
            ax.errorbar(
                g[column],
                g["force_mae_kcal"],
                yerr=g["force_mae_kcal_std"].fillna(0.0),
                label=method_label(method, level),
                color=METHOD_COLORS.get(method, _OTHER_COLOR),
                marker=marker,
                linestyle="--" if method in KERNEL_METHODS else ls,
                markersize=5,
                capsize=3,
                linewidth=1.6,
            )
        _log_log_panel(ax, model, rows[column], rows["force_mae_kcal"], xlabel)
    _figure_legend(fig, axes, where)
    if n_zero:
        caption += f" {n_zero} point(s) with zero cost are not shown on the log axis."
    return fig, caption


def _finish_panel(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Labels, title, a light grid and a small legend of one scatter/line panel."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def gamma_figure(gamma: pd.DataFrame) -> tuple[Figure, str]:
    """Validation loss of the fine-tuned model against γ, one panel per (method, model, cheap level),
    one line per (N, seed); γ = ∞ (no bias weights) drawn at the right edge."""
    if gamma.empty:
        raise SkipFigure("no γ candidates")
    g = metrics.normalise_levels(gamma)
    keys = list(g[["method", "model", "cheap_level"]].drop_duplicates().itertuples(index=False, name=None))
    fig = Figure(figsize=(4.2 * min(len(keys), 3), 3.4 * -(-len(keys) // 3)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(-(-len(keys) // 3), min(len(keys), 3), squeeze=False)).ravel()
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    for ax, (method, model, level) in zip(axes, keys):
        rows = g[(g["method"] == method) & (g["model"] == model) & (g["cheap_level"] == level)]
        finite = rows["gamma"][np.isfinite(rows["gamma"].astype(float))]
        inf_x = float(finite.max()) * 3 if len(finite) else 1.0
        for i, ((n, seed), r) in enumerate(rows.groupby(["n_train", "seed"])):
            x = np.where(np.isfinite(r["gamma"].astype(float)), r["gamma"].astype(float), inf_x)
            order = np.argsort(x)
            color = f"C{i % 10}"
            ax.plot(
                x[order],
                r["val_loss"].to_numpy()[order],
                marker="o",
                color=color,
                label=f"N = {int(n)}, seed {int(seed)}",
            )
            ch = metrics.as_bool(r["chosen"]).to_numpy()
            ax.scatter(x[ch], r["val_loss"].to_numpy()[ch], s=120, facecolors="none", edgecolors=color, linewidths=2)
        ax.set_xscale("log")
        ax.axvline(inf_x, color="#999", linestyle=":", linewidth=1)
        ax.annotate("∞", (inf_x, 1), xycoords=("data", "axes fraction"), ha="center", va="bottom")
        title = f"{method_label(method)}: {model_label(model)}, {level}"
        _finish_panel(ax, "γ (kcal/mol/Å)", "validation loss after fine-tuning", title)
    return fig, (
        "Validation loss of the fine-tuned model (ASTEROID; bias-corrected pre-training) against the "
        "weight scale γ (relative candidates at their absolute value for that run's bias or "
        "uncertainty spread; γ = ∞: no weights). The circled point of each line is the chosen γ."
    )


def bias_figure(bias_frames: pd.DataFrame, summary: pd.DataFrame) -> tuple[Figure, str]:
    """Estimated bias B_j against the true cheap-label error on the validation frames, one
    panel per cheap level (largest N of the first model and seed)."""
    if bias_frames.empty:
        raise SkipFigure("no bias diagnostic (no cheap level could label the validation frames)")
    b = metrics.normalise_levels(bias_frames)
    model, seed = sorted(b["model"].unique())[0], sorted(b["seed"].unique())[0]
    b = b[(b["model"] == model) & (b["seed"] == seed)]
    levels = sorted(b["cheap_level"].unique())
    fig = Figure(figsize=(4.0 * len(levels), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(levels), squeeze=False)).ravel()
    for ax, level in zip(axes, levels):
        rows = b[b["cheap_level"] == level]
        for i, (n, r) in enumerate(rows.groupby("n_train")):
            rho = summary[
                (summary["model"] == model)
                & (summary["cheap_level"] == level)
                & (summary["n_train"] == n)
                & (summary["seed"] == seed)
            ]["spearman"]
            label = f"N = {int(n)}" + (f", ρ = {rho.iloc[0]:.2f}" if len(rho) and np.isfinite(rho.iloc[0]) else "")
            ax.scatter(r["true_bias"], r["bias_estimate"], s=14, alpha=0.7, color=f"C{i % 10}", label=label)
        _finish_panel(
            ax,
            "true cheap-label error |F_cheap − F_acc| (kcal/mol/Å)",
            "estimated bias B (kcal/mol/Å)",
            f"{model_label(model)}, {level}",
        )
    return fig, (
        "Does the bias estimate work on this molecule? Each point is a validation frame: the "
        "stage-1 model's bias estimate B_j against the true error of its cheap label (the "
        "validation frames are labelled at both levels). ρ is Spearman's rank correlation: "
        "near 1, the weights single out the worst cheap labels; near 0, they weight frames "
        "by the stage-1 model's own error instead."
    )


def selection_figure(selection: pd.DataFrame, validation: pd.DataFrame) -> tuple[Figure, str]:
    """What the committees picked (the first seed's selection): each round's picks against its
    candidate pool in energy, force and disagreement, and the committee's disagreement against the
    true error on the validation frames."""
    if selection.empty:
        raise SkipFigure("no selection rounds (selection.enabled: false)")
    seed = sorted(selection["seed"].unique())[0]
    sel = selection[selection["seed"] == seed]
    panels = [
        ("cheap_energy_kcal", "energy at the pool's level − pool mean (kcal/mol)"),
        ("cheap_force_rms_kcal", "RMS force at the pool's level (kcal/mol/Å)"),
        ("disagreement_kcal", "committee disagreement (kcal/mol/Å)"),
    ]
    panels = [p for p in panels if sel[p[0]].notna().any()]
    fig = Figure(figsize=(4.0 * (len(panels) + 1), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels) + 1, squeeze=False)).ravel()
    rounds = sorted(sel["round"].unique())
    for ax, (col, xlabel) in zip(axes, panels):
        pool = sel[sel["round"] == rounds[0]][col].dropna()
        bins = np.histogram_bin_edges(sel[col].dropna(), bins=20)
        ax.hist(pool, bins=bins, density=True, color="0.75", label=f"candidates (round {rounds[0]})")
        for i, r in enumerate(rounds):
            picked = sel[(sel["round"] == r) & (sel["pick_order"] >= 0)][col].dropna()
            style = dict(density=True, histtype="step", lw=1.8, color=f"C{i % 10}")
            ax.hist(picked, bins=bins, label=f"round {r} picks", **style)
        _finish_panel(ax, xlabel, "density", f"seed {seed}")
    ax = axes[-1]
    val = validation[validation["seed"] == seed] if not validation.empty else validation
    for i, (r, rows) in enumerate(val.groupby("round") if not val.empty else []):
        rho = spearman(rows["disagreement_kcal"], rows["true_error_kcal"])
        label = f"round {r}" + (f", ρ = {rho:.2f}" if np.isfinite(rho) else "")
        ax.scatter(rows["true_error_kcal"], rows["disagreement_kcal"], s=14, alpha=0.7, color=f"C{i % 10}", label=label)
    _finish_panel(ax, "true force error of the committee mean (kcal/mol/Å)", "disagreement (kcal/mol/Å)", "validation")
    return fig, (
        "Which frames the committees picked: each round's picks (lines) against the candidates (grey) in "
        "energy and force at the pool's level and in committee disagreement; picks far in the tails are "
        "strained geometries the random test frames rarely contain. Right: the committee's disagreement "
        "against the true error of its mean prediction on the validation frames (ρ: Spearman rank "
        "correlation; near 0, disagreement does not find the frames the model gets wrong)."
    )


def cheap_only_figure(agg: pd.DataFrame) -> tuple[Figure, str]:
    """Bar chart of the force MAE, against the accurate test set, of models trained
    without accurate labels; a dashed line marks standard training at its largest N."""
    rows = agg[agg["method"].isin(CHEAP_ONLY_METHODS)].sort_values(["model", "method", "cheap_level"])
    if rows.empty:
        raise SkipFigure("no cheap-only or score-matching-without-fine-tuning results")
    fig = Figure(figsize=(max(7.5, 1.1 * len(rows) + 2.0), 4.8), layout="constrained")
    ax = fig.subplots()
    x, labels, pos = [], [], 0.0
    refs = []
    for model, g in rows.groupby("model", sort=True):
        start = pos
        for _, r in g.iterrows():
            ax.bar(
                pos,
                r["force_mae_kcal"],
                yerr=np.nan_to_num(r["force_mae_kcal_std"]),
                color=METHOD_COLORS.get(r["method"], _OTHER_COLOR),
                capsize=3,
                width=0.8,
                label=METHOD_LABELS.get(r["method"], r["method"]),
            )
            top = r["force_mae_kcal"] + np.nan_to_num(r["force_mae_kcal_std"])
            ax.annotate(
                f"{r['force_mae_kcal']:.3g}",
                (pos, top),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize="small",
            )
            x.append(pos)
            labels.append(f"{model_label(model)}\n{r['cheap_level'] or '—'}")
            pos += 1.0
        std = agg[(agg["model"] == model) & (agg["method"] == "standard") & (agg["n_train"] > 0)]
        if not std.empty:
            best = std.loc[std["n_train"].idxmax()]
            ax.hlines(
                best["force_mae_kcal"],
                start - 0.45,
                pos - 0.55,
                colors="k",
                linestyles="--",
                linewidth=1.2,
                label="standard at its largest N",
            )
            refs.append(f"{model_label(model)} N={int(best['n_train'])}: {best['force_mae_kcal']:.3g} kcal/mol/Å")
        pos += 0.6
    ax.set_xticks(x, labels, fontsize="small")
    ax.set_ylim(0, 1.12 * ax.get_ylim()[1])  # room for the value labels
    ax.set_ylabel(MAE_LABEL)
    ax.set_xlabel("model / cheap labels used")
    ax.grid(True, axis="y", alpha=0.3)
    _figure_legend(fig, [ax])
    caption = "Models trained without any accurate labels, evaluated on the accurate test set (mean ± std over seeds)."
    if refs:
        caption += " Dashed: standard training at its largest N (" + "; ".join(refs) + ")."
    return fig, caption


def stability_figure(stability: pd.DataFrame) -> tuple[Figure, str]:
    """Horizontal bars: fraction of MD runs that stayed stable, per model and method."""
    if stability.empty:
        raise SkipFigure("no MD stability runs (stability.csv missing or empty)")
    summ = metrics.stability_summary(stability)
    fig = Figure(figsize=(9.0, 0.4 * len(summ) + 1.4), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(summ))[::-1]
    for yi, (_, r) in zip(y, summ.iterrows()):
        ax.barh(yi, r["stable_fraction"], color=METHOD_COLORS.get(r["method"], _OTHER_COLOR), height=0.7)
        lo, hi = 1 - r["diverged_ci_high"], 1 - r["diverged_ci_low"]  # Wilson 95% interval of the stable share
        ax.errorbar(
            r["stable_fraction"],
            yi,
            xerr=[[r["stable_fraction"] - lo], [hi - r["stable_fraction"]]],
            color="k",
            capsize=3,
            lw=1,
        )
        ax.annotate(
            f"{int(r['n_stable'])}/{int(r['n_runs'])}",
            (r["stable_fraction"], yi),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
        )
    ax.set_yticks(
        y,
        [
            f"{model_label(r.model)} · {method_label(r.method, r.cheap_level)} · N = {int(r.n_train)}"
            for r in summ.itertuples()
        ],
        fontsize="small",
    )
    ax.set_xlim(0, 1.15)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("fraction of MD runs without divergence")
    ax.grid(True, axis="x", alpha=0.3)
    return fig, (
        "Share of MD runs driven by each model that completed without diverging, per N "
        "(labels: stable/total runs, pooled over seeds; bars: 95% Wilson intervals)."
    )


def timings_figure(timings: pd.DataFrame) -> tuple[Figure, str]:
    """Wall and CPU hours (left) and peak resident memory (right) per workflow stage."""
    if timings.empty:
        raise SkipFigure("no Snakemake benchmark files")
    t = timings.iloc[::-1].reset_index(drop=True)
    fig = Figure(figsize=(11.5, 0.42 * len(t) + 1.8), layout="constrained")
    ax_t, ax_m = fig.subplots(1, 2, sharey=True, width_ratios=[2, 1])
    y = np.arange(len(t))
    ax_t.barh(y + 0.2, t["wall_h"], height=0.4, color="#1f77b4", label="wall time")
    ax_t.barh(y - 0.2, t["cpu_h"], height=0.4, color="#ff7f0e", label="CPU time")
    hours = pd.concat([t["wall_h"], t["cpu_h"]])
    hours = hours[hours > 0]
    if len(hours) and hours.max() / hours.min() > 100:
        ax_t.set_xscale("log")
        _log_axis(ax_t.xaxis, hours)
    ax_t.set_yticks(
        y, [f"{s} ({n} job{'s' if n != 1 else ''})" for s, n in zip(t["stage"], t["n_jobs"])], fontsize="small"
    )
    ax_t.set_xlabel("hours (summed over jobs)")
    ax_t.legend(fontsize="small")
    ax_t.grid(True, axis="x", alpha=0.3)
    ax_m.barh(y, t["max_rss_mb"] / 1024.0, height=0.6, color="#7f7f7f")
    ax_m.set_xlabel("peak resident memory (GiB)")
    ax_m.grid(True, axis="x", alpha=0.3)
    return fig, (
        "Compute per workflow stage from Snakemake benchmark files: summed wall and "
        "CPU hours, and the largest resident memory of any job of the stage."
    )


def label_cost_figure(summary: pd.DataFrame) -> tuple[Figure, str]:
    """CPU and wall seconds per labelled frame for each level of theory (log scale)."""
    s = summary[summary["cpu_s_per_frame"].notna()]
    if s.empty:
        raise SkipFigure("no label costs (label_costs.csv missing or empty)")
    fig = Figure(figsize=(max(7.5, 1.3 * len(s) + 2.0), 4.6), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(s))
    ax.bar(x - 0.2, s["cpu_s_per_frame"], width=0.4, color="#ff7f0e", label="CPU s / frame")
    ax.bar(x + 0.2, s["wall_s_per_frame"], width=0.4, color="#1f77b4", label="wall s / frame")
    for xi, v in zip(x, s["cpu_s_per_frame"]):
        ax.annotate(
            f"{v:,.0f}" if v >= 1000 else f"{v:.3g}",
            (xi - 0.2, v),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize="small",
        )
    positive = s["cpu_s_per_frame"][s["cpu_s_per_frame"] > 0]
    if len(positive):
        ax.set_yscale("log")
        _log_axis(ax.yaxis, positive)
    ax.set_xticks(x, s["level"])
    ax.set_xlabel("level of theory")
    ax.set_ylabel("seconds per frame")
    ax.legend(fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    return fig, (
        "Cost of one label (energy + forces of one frame) per level of theory, averaged over all labelled subsets."
    )


def save_figure(fig: Figure, fig_dir: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write `fig` as <fig_dir>/<name>.png and .svg, each atomically (tmp + rename).

    SVG ids and metadata are made deterministic so reruns give identical files."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context({"svg.hashsalt": "asteroid-report", "svg.fonttype": "path"}):
        for fmt, extra in (("png", {"dpi": 150}), ("svg", {"metadata": {"Date": None}})):
            target = fig_dir / f"{name}.{fmt}"
            # tight bounding box: legends and labels outside the axes are never clipped
            atomic_write(
                target,
                lambda tmp, fmt=fmt, extra=extra: fig.savefig(
                    tmp, format=fmt, bbox_inches="tight", pad_inches=0.08, **extra
                ),
            )
            paths.append(target)
    return paths[0], paths[1]


FIGURE_TITLES = {
    "learning_curves": "Learning curves: force error vs number of accurate labels",
    "error_vs_cost": "Force error vs label CPU-hours",
    "error_vs_total_cost": "Force error vs label + training CPU-hours",
    "gamma_selection": "γ selection on validation data",
    "bias_diagnostic": "Estimated vs true bias of the cheap labels",
    "cheap_only": "Models trained on cheap labels only",
    "md_stability": "MD stability",
    "stage_timings": "Compute time and memory per workflow stage",
    "label_cost": "Label cost per frame and level of theory",
    "selection": "Frames picked by committee disagreement",
}


def make_figures(
    results: pd.DataFrame,
    label_costs: pd.DataFrame,
    stability: pd.DataFrame,
    timings: pd.DataFrame,
    fig_dir: str | os.PathLike,
    gamma: pd.DataFrame | None = None,
    bias_frames: pd.DataFrame | None = None,
    bias_summary: pd.DataFrame | None = None,
    selection: pd.DataFrame | None = None,
    selection_validation: pd.DataFrame | None = None,
) -> list[FigureResult]:
    """Draw and save all report figures; skipped ones carry the reason.

    `results`, `label_costs` and `stability` are the pipeline's tables (possibly empty);
    `timings` is :func:`pipeline.report.metrics.stage_timings` output.
    """
    agg = metrics.aggregate_results(results)
    builders = {
        "learning_curves": lambda: learning_curves_figure(agg),
        "error_vs_cost": lambda: cost_figure(agg),
        "error_vs_total_cost": lambda: cost_figure(agg, "total_cpu_h"),
        "gamma_selection": lambda: gamma_figure(gamma if gamma is not None else pd.DataFrame()),
        "bias_diagnostic": lambda: bias_figure(
            bias_frames if bias_frames is not None else pd.DataFrame(),
            bias_summary if bias_summary is not None else pd.DataFrame(),
        ),
        "cheap_only": lambda: cheap_only_figure(agg),
        "md_stability": lambda: stability_figure(stability),
        "stage_timings": lambda: timings_figure(timings),
        "label_cost": lambda: label_cost_figure(metrics.label_cost_summary(label_costs)),
        "selection": lambda: selection_figure(
            selection if selection is not None else pd.DataFrame(),
            selection_validation if selection_validation is not None else pd.DataFrame(),
        ),
    }
    out = []
    for name, build in builders.items():
        res = FigureResult(name=name, title=FIGURE_TITLES[name])
        try:
            fig, res.caption = build()
        except SkipFigure as why:
            res.skipped = str(why)
            for ext in ("png", "svg"):
                Path(fig_dir, f"{name}.{ext}").unlink(missing_ok=True)
        else:
            res.png, res.svg = save_figure(fig, fig_dir, name)
        out.append(res)
    return out
