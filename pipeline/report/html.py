"""The self-contained HTML report of one molecule (``results/<molecule>/report.html``).

:func:`build_report` reads the pipeline's tables, draws the figures (PNG + SVG in
`fig_dir`), and writes one HTML file that needs no network: figures are embedded as
base64 SVG data URIs, styles are inline, there is no JavaScript. Every numeric table
cell carries the exact value in ``data-value`` (``repr`` of the float, so it
round-trips) next to the displayed value rounded to :data:`SIG_DIGITS` significant
digits; the per-run table is ``id="results-table"`` and its columns carry their CSV
names in ``data-column``.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import platform
import re
import sys
import urllib.parse
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import atomic_write
from . import costs
from .figures import MAE_LABEL, FigureResult, make_figures, method_label, model_label

SIG_DIGITS = 4
SOFTWARE = ["numpy", "torch", "pyscf", "openmm", "snakemake", "sgdml", "ase"]

COLUMN_LABELS = {
    "molecule": "molecule",
    "model": "model",
    "method": "method",
    "cheap_level": "cheap level",
    "n_train": "N accurate labels",
    "gamma": "γ (kcal/mol/Å)",
    "seed": "seed",
    "force_mae_kcal": "force MAE (kcal/mol/Å)",
    "force_rmse_kcal": "force RMSE (kcal/mol/Å)",
    "force_mae_mev": "force MAE (meV/Å)",
    "force_rmse_mev": "force RMSE (meV/Å)",
    "energy_mae_kcal": "energy MAE (kcal/mol)",
    "n_accurate_labels": "accurate labels",
    "n_cheap_labels": "cheap labels",
    "accurate_label_cpu_h": "accurate-label cost (CPU-h)",
    "cheap_label_cpu_h": "cheap-label cost (CPU-h)",
    "data_cost_cpu_h": "total label cost (CPU-h)",
    "train_wall_s": "training wall time (s)",
    "train_cpu_s": "training CPU time (s)",
    "val_loss": "validation loss",
    "chosen": "chosen",
    "level": "level",
    "subset": "subset",
    "n_frames": "frames",
    "n_failed": "failed frames",
    "n_outliers": "outlier frames",
    "cpu_s_total": "CPU time (s)",
    "cpu_h_total": "CPU time (CPU-h)",
    "cpu_s_per_frame": "CPU s / frame",
    "wall_s_per_frame": "wall s / frame",
    "stage": "stage",
    "n_jobs": "jobs",
    "wall_h": "wall time (h)",
    "cpu_h": "CPU time (CPU-h)",
    "max_rss_mb": "peak memory (MB)",
    "n_runs": "MD runs",
    "n_stable": "stable runs",
    "stable_fraction": "stable fraction",
    "steps_fraction": "mean fraction of steps completed",
    "reasons": "divergence reasons",
    "standard_force_mae_kcal": "standard force MAE (kcal/mol/Å)",
    "reduction_pct": "error reduction vs standard (%)",
    "n_equiv": "N_equiv (standard labels for same error)",
    "factor": "sample-efficiency factor N_equiv/N",
    "standard_equiv_cost_cpu_h": "standard label cost for same error (CPU-h)",
    "n_seeds": "seeds",
    "asteroid_force_mae_kcal": "ASTEROID force MAE (kcal/mol/Å)",
    "asteroid_data_cost_cpu_h": "ASTEROID label cost (CPU-h)",
    "gamma_spec": "γ candidate",
    "effective_frames": "effective cheap frames (Kish)",
    "n_frames_val": "validation frames",
    "spearman": "Spearman ρ (B vs true bias)",
    "mean_bias_estimate": "mean B (kcal/mol/Å)",
    "mean_true_bias": "mean true bias (kcal/mol/Å)",
    "mean_stage1_error": "mean stage-1 error (kcal/mol/Å)",
    "total_cpu_h": "labels + training (CPU-h)",
    "train_cpu_h_total": "training (CPU-h, all stages)",
    "estimated_cpu_s_per_frame": "estimated CPU s / frame",
    "estimated_cpu_h": "estimated CPU-h",
    "spent_cpu_s_per_frame": "spent CPU s / frame",
    "spent_cpu_h": "spent CPU-h",
    "spent_over_estimate": "spent / estimated",
    "estimate_source": "estimate from",
    "predict_cpu_s_per_frame": "prediction CPU s / frame (≈ one MD step)",
    "md_cpu_h_per_ns": "CPU-h per ns of MD (0.5 fs steps)",
    "target": "target: the error of",
    "target_force_mae_kcal": "target force MAE (kcal/mol/Å)",
    "cheapest": "cheapest",
}


# ---------------------------------------------------------------- formatting


def fmt_value(x) -> str:
    """Display form of a table value: SIG_DIGITS significant digits, "–" for missing,
    "∞" for infinity, integers as integers."""
    if x is None or (isinstance(x, float | np.floating) and np.isnan(x)):
        return "–"
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        if np.isinf(x):
            return "∞" if x > 0 else "−∞"
        return _sig(float(x), SIG_DIGITS)
    return str(x)


def _sig(x: float, digits: int) -> str:
    """`x` rounded to `digits` significant digits; values from 10⁴ to 10¹⁵ are written
    out with thousands separators (1,440,000) instead of in exponent form."""
    if 1e4 <= abs(x) < 1e15:
        return f"{round(x, digits - 1 - int(np.floor(np.log10(abs(x))))):,.0f}"
    return f"{x:.{digits}g}"


def exact_value(x) -> str:
    """Exact, round-tripping text of a number for the ``data-value`` attribute."""
    if isinstance(x, int | np.integer):
        return str(int(x))
    return repr(float(x))


def _is_number(x) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(
        x, bool | np.bool_)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _td(x, numeric: bool | None = None) -> str:
    """One table cell; numbers get class "num" and their exact value in data-value.

    `numeric` says whether the cell belongs to a numeric column (None: judge by `x`);
    a missing value in a text column is shown as "—" without a data-value."""
    if numeric is None:
        numeric = _is_number(x)
    if numeric and _is_number(x):
        return f'<td class="num" data-value="{_e(exact_value(x))}">{_e(fmt_value(x))}</td>'
    missing = x is None or (not isinstance(x, str) and pd.isna(x)) or x == ""
    text = "—" if missing else fmt_value(x)
    return f"<td>{_e(text)}</td>"


def _pm_td(mean, std, bold: bool = False) -> str:
    """Cell "mean ± std" (std to 2 significant digits, left out when zero or unknown)
    with the exact mean in data-value and the exact std in data-std."""
    if mean is None or pd.isna(mean):
        return '<td class="num">–</td>'
    text = fmt_value(mean)
    if std is not None and not pd.isna(std) and std != 0:
        text += f" ± {_sig(float(std), 2)}"
    cls = "num best" if bold else "num"
    std_attr = "" if std is None or pd.isna(std) else f' data-std="{_e(exact_value(std))}"'
    return f'<td class="{cls}" data-value="{_e(exact_value(mean))}"{std_attr}>{_e(text)}</td>'


def table_html(
    df: pd.DataFrame,
    columns: list[str] | None = None,
    table_id: str | None = None,
    caption: str = "",
    row_classes: list[str] | None = None,
) -> str:
    """HTML table of `df` (all or the given `columns`, headers from COLUMN_LABELS with
    the column name in ``data-column``), cells via :func:`_td`."""
    columns = list(df.columns) if columns is None else columns
    id_attr = f' id="{_e(table_id)}"' if table_id else ""
    head = "".join(
        f'<th data-column="{_e(c)}" title="{_e(c)}">{_e(COLUMN_LABELS.get(c, c))}</th>'
        for c in columns
    )
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
               for c in columns]
    body = []
    for i, row in enumerate(df[columns].itertuples(index=False, name=None)):
        cls = f' class="{_e(row_classes[i])}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(_td(v, num) for v, num in zip(row, numeric))
                    + "</tr>")
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table{id_attr}>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _with_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Copy with readable model and method names (display tables only)."""
    out = df.copy()
    if "model" in out.columns:
        out["model"] = [model_label(m) for m in out["model"]]
    if "method" in out.columns:
        out["method"] = [method_label(m) for m in out["method"]]
    return out


# ---------------------------------------------------------------- inputs


def _load_csv(path, columns: list[str], name: str, notes: list[str]) -> pd.DataFrame:
    """Read one pipeline table; missing or empty files give an empty table and a note.

    Raises ValueError when the file exists but lacks any of `columns`."""
    if path is None or not Path(path).is_file():
        notes.append(f"{name} not found ({path}); the parts of the report built from it are left out.")
        return pd.DataFrame(columns=columns)
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        notes.append(f"{name} ({path}) is empty; the parts of the report built from it are left out.")
        return pd.DataFrame(columns=columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: {name} lacks columns {missing}")
    if df.empty:
        notes.append(f"{name} ({path}) has no rows; the parts of the report built from it are left out.")
    return df


def software_versions() -> dict[str, str]:
    """Versions of Python and the pipeline's main packages ("not installed" if absent)."""
    out = {"python": f"{platform.python_version()} ({sys.executable})"}
    for pkg in SOFTWARE:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["platform"] = platform.platform()
    return out


# ---------------------------------------------------------------- derived tables


def _sample_efficiency_all(results: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """costs.sample_efficiency of ASTEROID vs standard for every model and cheap level."""
    res = costs.normalise_levels(results)
    pairs = res[(res["method"] == "asteroid") & (res["n_train"] > 0)][
        ["model", "cheap_level"]].drop_duplicates().sort_values(["model", "cheap_level"])
    tables = []
    for model, level in pairs.itertuples(index=False, name=None):
        try:
            t = costs.sample_efficiency(results, model, cheap_level=level)
        except ValueError as err:
            notes.append(f"Sample efficiency of ASTEROID ({level}) for {model_label(model)} "
                         f"not computed: {err}.")
            continue
        a, b = t.attrs["fit"]
        t["fit_a_kcal"], t["fit_b"] = a, b
        tables.append(t)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _stability_table(stability: pd.DataFrame) -> pd.DataFrame:
    """Per (model, method, cheap_level, n_train): runs, stable runs, stable fraction,
    mean fraction of MD steps completed and the distinct divergence reasons."""
    df = costs.normalise_levels(stability)
    df["stable"] = ~costs.as_bool(df["diverged"])
    df["steps_fraction"] = df["steps_completed"] / df["n_steps"]
    keys = ["model", "method", "cheap_level", "n_train"]
    g = df.groupby(keys, sort=True)
    out = pd.DataFrame({
        "n_runs": g.size(),
        "n_stable": g["stable"].sum().astype(int),
        "steps_fraction": g["steps_fraction"].mean(),
        "reasons": g["reason"].agg(
            lambda r: "; ".join(sorted({str(x) for x in r if isinstance(x, str) and x}))),
    }).reset_index()
    out["stable_fraction"] = out["n_stable"] / out["n_runs"]
    return out[keys + ["n_runs", "n_stable", "stable_fraction", "steps_fraction", "reasons"]]


# ---------------------------------------------------------------- sections


def _summary_html(results, agg, se, label_summary, timings, molecule, reductions=None, forcefield=None) -> str:
    """Key numbers: best method at the smallest N per model, ASTEROID vs standard (with its 95%
    interval, in words when not significant), sample-efficiency factor, the recommended force
    field, total label and compute CPU-hours."""
    cards = []
    if forcefield:
        lo, hi = forcefield["test_force_mae_95ci"]
        cards.append(("Recommended force field (chosen on validation)",
                      f"{method_label(forcefield['method'], forcefield.get('cheap_level') or '')}",
                      f"{model_label(forcefield['model'])}, N = {forcefield['n_train']}; expected test force MAE "
                      f"{fmt_value(forcefield['expected_test_force_mae_kcal_per_mol_A'])} kcal/mol/Å "
                      f"(95% CI {fmt_value(lo)}–{fmt_value(hi)}); forcefield/model.pt"))
    if reductions is not None and not reductions.empty:
        red = costs.normalise_levels(reductions)
        for method in ("asteroid", "delta"):
            ast = red[red["method"] == method]
            for r in ast[ast["n_train"] == ast["n_train"].min()].itertuples():
                name = "ASTEROID" if method == "asteroid" else "Δ-learning"
                cards.append((f"{name} ({r.cheap_level}) vs standard, {model_label(r.model)}",
                              _change_words(r.reduction), reduction_sentence(r)))
    if not label_summary.empty:
        total = label_summary["cpu_h_total"].sum()
        parts = ", ".join(f"{lv}: {fmt_value(h)}" for lv, h in
                          zip(label_summary["level"], label_summary["cpu_h_total"]))
        cards.append(("Total label cost", f"{fmt_value(total)} CPU-h", parts))
    if not timings.empty:
        cards.append(("Workflow compute", f"{fmt_value(timings['cpu_h'].sum())} CPU-h",
                      f"{int(timings['n_jobs'].sum())} jobs, "
                      f"{fmt_value(timings['wall_h'].sum())} h wall (summed)"))
    curves = agg[(agg["n_train"] > 0) & agg["force_mae_kcal"].notna()]
    panel_models = sorted(m for m in curves["model"].unique() if m != "sgdml") or sorted(
        curves["model"].unique())
    for model in panel_models:
        rows = curves[curves["model"] == model]
        n_min = rows["n_train"].min()
        at = rows[rows["n_train"] == n_min]
        best = at.loc[at["force_mae_kcal"].idxmin()]
        detail = f"{model_label(model)}, N = {int(n_min)} accurate labels"
        detail += "; lowest mean test error (see the reduction table for intervals)"
        cards.append((f"Best at smallest N ({model_label(model)})",
                      f"{method_label(best['method'], best['cheap_level'])}: "
                      f"{fmt_value(best['force_mae_kcal'])} kcal/mol/Å", detail))
    if not se.empty:
        first = se.loc[se.groupby(["model", "cheap_level"])["n_train"].idxmin()]
        for r in first.itertuples():
            label = f"Sample efficiency of ASTEROID ({r.cheap_level}), {model_label(r.model)}"
            value = f"{fmt_value(r.factor)}×" if not pd.isna(r.factor) else "not defined"
            detail = f"N = {int(r.n_train)}"
            if not pd.isna(r.factor):
                detail += (f"; standard training needs ≈{fmt_value(float(r.n_equiv))} labels for the same error"
                           f"{' (extrapolated)' if r.extrapolated else ''}; point estimate from the power-law fit")
            if not pd.isna(r.standard_equiv_cost_cpu_h):
                detail += (f"; labels cost {fmt_value(r.data_cost_cpu_h)} CPU-h vs "
                           f"≈{fmt_value(r.standard_equiv_cost_cpu_h)} CPU-h for standard "
                           f"training to reach the same error")
            cards.append((label, value, detail))
    card_html = "".join(
        f'<div class="card"><div class="card-title">{_e(t)}</div>'
        f'<div class="card-value">{_e(v)}</div><div class="card-detail">{_e(d)}</div></div>'
        for t, v, d in cards
    )
    res = costs.normalise_levels(results)
    if res.empty:
        lede = f"No model results for {molecule} yet."
    else:
        ns = sorted(int(n) for n in res["n_train"].unique() if n > 0)
        lede = (f"{len(res)} trained models of {molecule}: "
                f"{', '.join(model_label(m) for m in sorted(res['model'].unique()))}; "
                f"{res['method'].nunique()} methods; N = {', '.join(map(str, ns)) or '–'} "
                f"accurate labels; {res['seed'].nunique()} seed(s) per setting. Errors are "
                f"on the accurate test set, mean over seeds.")
    return f'<p class="lede">{_e(lede)}</p><div class="cards">{card_html}</div>'


# Figures are shown this much larger than their natural size (SVG points → CSS px at
# 96/72), so their text matches the page's; CSS max-width caps them at the content width.
FIGURE_SCALE = 1.25


def _figure_width_px(svg: bytes) -> int | None:
    """Display width in CSS px of an SVG written by matplotlib (``width="…pt"``)."""
    m = re.search(rb'<svg[^>]*?\swidth="([0-9.]+)pt"', svg[:2000])
    return round(float(m.group(1)) * 96 / 72 * FIGURE_SCALE) if m else None


def _figure_html(fig: FigureResult, out_dir: Path) -> str:
    """A <figure> with the SVG embedded as a data URI and links to the PNG/SVG files,
    or a note saying why the figure was skipped."""
    if fig.skipped:
        return (f'<figure class="skipped" id="fig-{_e(fig.name)}"><figcaption>'
                f"<strong>{_e(fig.title)}</strong> — not drawn: {_e(fig.skipped)}."
                f"</figcaption></figure>")
    svg = fig.svg.read_bytes()
    data = base64.b64encode(svg).decode("ascii")
    width = _figure_width_px(svg)
    style = f' style="width: {width}px"' if width else ""
    links = " · ".join(
        f'<a href="{_e(_relative_url(p, out_dir))}">{ext}</a>'
        for ext, p in (("PNG", fig.png), ("SVG", fig.svg))
    )
    return (f'<figure id="fig-{_e(fig.name)}" data-figure="{_e(fig.name)}">'
            f'<img src="data:image/svg+xml;base64,{data}"{style} alt="{_e(fig.title)}">'
            f"<figcaption><strong>{_e(fig.title)}.</strong> {_e(fig.caption)} "
            f'<span class="files">{links}</span></figcaption></figure>')


def _relative_url(path: Path, out_dir: Path) -> str:
    rel = os.path.relpath(Path(path).resolve(), out_dir.resolve())
    return urllib.parse.quote(Path(rel).as_posix())


def _ablation_html(results: pd.DataFrame) -> str:
    """Wide ablation table: one row per (model, cheap level, N), one mean ± std column
    per method of costs.ABLATION_METHODS, lowest error in bold."""
    long = costs.ablation_table(results)
    if long.empty:
        return '<p class="note">No ASTEROID or ablation runs to compare.</p>'
    methods = [m for m in costs.ABLATION_METHODS if m in set(long["method"])]
    head = "".join(f"<th>{_e(h)}</th>" for h in ["model", "cheap level", "N accurate labels"]) + \
        "".join(f'<th data-column="{_e(m)}">{_e(method_label(m))}<br>'
                f"<small>{_e(MAE_LABEL)}</small></th>" for m in methods)
    body = []
    for (model, level, n), g in long.groupby(["model", "cheap_level", "n_train"], sort=True):
        by = g.set_index("method")
        best = by["force_mae_kcal"].idxmin() if by["force_mae_kcal"].notna().any() else None
        cells = [_td(model_label(model)), _td(level), _td(int(n))]
        for m in methods:
            if m in by.index:
                cells.append(_pm_td(by.at[m, "force_mae_kcal"], by.at[m, "force_mae_kcal_std"],
                                    bold=(m == best)))
            else:
                cells.append('<td class="num">–</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="table-wrap"><table id="ablation-table"><caption>ASTEROID ablation: '
            f"mean ± std force MAE over seeds; lowest error per row in bold. "
            f"“No bias weights” fine-tunes a model pre-trained on unweighted cheap labels; "
            f"“no fine-tuning” uses the bias-aware pre-trained model as is.</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _aggregated_html(agg: pd.DataFrame) -> str:
    """Mean ± std over seeds of the errors and label cost per setting."""
    if agg.empty:
        return '<p class="note">No results.</p>'
    metrics = [("force_mae_kcal", "force MAE (kcal/mol/Å)"),
               ("force_rmse_kcal", "force RMSE (kcal/mol/Å)"),
               ("energy_mae_kcal", "energy MAE (kcal/mol)"),
               ("data_cost_cpu_h", "total label cost (CPU-h)")]
    head = "".join(f"<th>{_e(h)}</th>" for h in
                   ["model", "method", "cheap level", "N accurate labels", "seeds"])
    head += "".join(f'<th data-column="{_e(c)}">{_e(h)}</th>' for c, h in metrics)
    body = []
    for r in agg.sort_values(["model", "method", "cheap_level", "n_train"]).itertuples():
        cells = [_td(model_label(r.model)), _td(method_label(r.method)), _td(r.cheap_level),
                 _td(int(r.n_train)), _td(int(r.n_seeds))]
        cells += [_pm_td(getattr(r, c), getattr(r, f"{c}_std")) for c, _ in metrics]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="table-wrap"><table id="aggregated-table"><caption>Mean ± std over '
            f"seeds per setting (std omitted for a single seed).</caption><thead><tr>{head}"
            f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _routes_html(results: pd.DataFrame) -> str:
    """costs.cheapest_routes as a wide table: one row per target error, one column per route, the
    cell its lowest labels + training CPU-h (and N) at or below the target; the cheapest in bold."""
    routes = costs.cheapest_routes(results) if not results.empty else pd.DataFrame()
    if routes.empty:
        return '<p class="note">No route reached any error of standard training.</p>'
    keys = list(routes[["model", "method", "cheap_level"]].drop_duplicates().sort_values(
        ["method", "model", "cheap_level"]).itertuples(index=False, name=None))
    pred = routes.groupby(["model", "method", "cheap_level"])["predict_cpu_s_per_frame"].mean()
    head = "<th>target: the error of</th><th>target force MAE (kcal/mol/Å)</th>" + "".join(
        f'<th data-column="{_e(f"{m}|{me}|{lv}")}">{_e(model_label(m))} · {_e(method_label(me, lv))}<br>'
        f"<small>predicts in {_e(fmt_value(pred.get((m, me, lv))))} CPU s/frame</small></th>"
        for m, me, lv in keys)
    body = []
    for (target, mae), g in routes.groupby(["target", "target_force_mae_kcal"], sort=False):
        by = {(r.model, r.method, r.cheap_level): r for r in g.itertuples()}
        cells = [_td(target), _td(float(mae))]
        for k in keys:
            r = by.get(k)
            if r is None:
                cells.append('<td class="num">not reached</td>')
                continue
            cls = "num best" if r.cheapest else "num"
            cells.append(f'<td class="{cls}" data-value="{_e(exact_value(r.total_cpu_h))}">'
                         f"{_e(fmt_value(r.total_cpu_h))} CPU-h (N = {int(r.n_train)})</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="table-wrap"><table id="routes-table"><caption>Which route reaches a target test '
            f"error for the least CPU time: for each target (the mean error standard training reached at an N), "
            f"the lowest labels + training CPU-hours of each method's settings whose mean test force MAE is at "
            f"or below it (N in brackets), cheapest in bold. Δ-learning's cost counts its cheap labels on the N "
            f"training, the validation and the test frames; it also pays the cheap level at every later "
            f"prediction (per frame in the column head, and in the prediction-cost table), which these totals "
            f"do not contain. Mean errors over seeds; see the reduction table for intervals.</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _prediction_cost_html(results: pd.DataFrame) -> str:
    pc = costs.prediction_costs(results)
    if pc.empty:
        return '<p class="note">No prediction costs recorded.</p>'
    return table_html(_with_labels(pc), table_id="prediction-cost-table",
                      caption="CPU seconds of one energy-and-forces prediction on one frame (one MD step), measured "
                              "at evaluation; for Δ-learning the cheap level's calculation is included (its labelling "
                              "cost per frame for computed levels, an OpenMM force call for GAFF2). An MD step that "
                              "calls DFT is not comparable to one that does not: the last column is the CPU time of "
                              "1 ns of MD (2 million steps of 0.5 fs).")


def _pct(x) -> str:
    return f"{100 * x:+.0f}%" if np.isfinite(x) else "–"


def _change_words(x) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{abs(100 * x):.0f}% {'lower' if x >= 0 else 'higher'} force error"


def reduction_sentence(r) -> str:
    """One reduction in words, with its interval, saying so when it is not significant."""
    what = f"{method_label(r.method, r.cheap_level)} vs {r.baseline} at N = {int(r.n_train)}"
    body = (f"{_change_words(r.reduction)} (reduction {_pct(r.reduction)}, 95% CI {_pct(r.reduction_ci_low)} to "
            f"{_pct(r.reduction_ci_high)}; {int(r.n_seeds)} seed(s), {int(r.n_test)} test frames)")
    if not costs.as_bool(pd.Series([r.significant])).iloc[0]:
        body += ": not significant at 95%"
    return f"{what}: {body}"


def _reduction_html(reductions: pd.DataFrame) -> str:
    """Error reduction of each method over standard training, with its 95% paired-bootstrap interval."""
    if reductions.empty:
        return '<p class="note">No method was run at an N where standard training was also run.</p>'
    red = costs.normalise_levels(reductions)
    ns = sorted(red["n_train"].unique())
    head = "".join(f"<th>{_e(h)}</th>" for h in ["model", "method", "cheap level"]) + "".join(
        f'<th data-column="n_train={int(n)}">N = {int(n)}</th>' for n in ns)
    body = []
    for (model, method, level), g in red.groupby(["model", "method", "cheap_level"], sort=True):
        by = g.set_index("n_train")
        cells = [_td(model_label(model)), _td(method_label(method)), _td(level)]
        for n in ns:
            if n not in by.index:
                cells.append('<td class="num">–</td>')
                continue
            r = by.loc[n]
            sig = costs.as_bool(pd.Series([r["significant"]])).iloc[0]
            text = (f"{_pct(r['reduction'])} [{_pct(r['reduction_ci_low'])}, {_pct(r['reduction_ci_high'])}]"
                    + ("" if sig else " n.s."))
            cells.append(f'<td class="num{" best" if sig and r["reduction"] > 0 else ""}" '
                         f'data-value="{exact_value(r["reduction"])}">{_e(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    seeds = sorted(red["n_seeds"].unique())
    scope = ("test frames only (one training seed: seed-to-seed variation is not covered)" if seeds == [1]
             else "test frames and training seeds")
    return (f'<div class="table-wrap"><table id="reduction-table"><caption>Force-MAE reduction over standard '
            f"training of the same model at the same N (1 − method/standard; positive is better), with the "
            f"95% paired bootstrap interval over {scope}. Bold: significant improvement; "
            f"“n.s.”: the interval includes zero, so the difference is not significant at 95%."
            f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _sample_efficiency_html(se: pd.DataFrame) -> str:
    if se.empty:
        return ('<p class="note">Sample efficiency needs ASTEROID runs and standard runs at '
                "two or more N.</p>")
    fits = se.drop_duplicates("model")[["model", "fit_a_kcal", "fit_b"]]
    fit_text = "; ".join(f"{model_label(r.model)}: MAE ≈ {fmt_value(r.fit_a_kcal)}·N^−"
                         f"{fmt_value(r.fit_b)} kcal/mol/Å" for r in fits.itertuples())
    cols = ["model", "cheap_level", "n_train", "force_mae_kcal", "standard_force_mae_kcal",
            "reduction_pct", "n_equiv", "factor", "data_cost_cpu_h", "standard_equiv_cost_cpu_h"]
    shown = _with_labels(se)
    shown = shown.rename(columns={"force_mae_kcal": "asteroid_force_mae_kcal",
                                  "data_cost_cpu_h": "asteroid_data_cost_cpu_h"})
    cols = [{"force_mae_kcal": "asteroid_force_mae_kcal",
             "data_cost_cpu_h": "asteroid_data_cost_cpu_h"}.get(c, c) for c in cols]
    classes = ["extrapolated" if x else "" for x in se["extrapolated"]]
    return table_html(
        shown, cols, table_id="sample-efficiency-table", row_classes=classes,
        caption=("N_equiv: accurate labels standard training would need for ASTEROID's error, "
                 f"from the power-law fit of the standard curve ({fit_text}). Rows in italics "
                 "extrapolate the fit beyond the N that standard training was run at."),
    )


def _gamma_html(gamma: pd.DataFrame) -> str:
    if gamma.empty:
        return '<p class="note">No γ selection table.</p>'
    g = costs.normalise_levels(gamma)
    g["chosen"] = costs.as_bool(g["chosen"])
    g = g.sort_values(["model", "cheap_level", "n_train", "seed", "gamma"]).reset_index(drop=True)
    cols = ["model", "cheap_level", "n_train", "seed", "gamma_spec", "gamma", "effective_frames", "val_loss", "chosen"]
    full = table_html(_with_labels(g), cols, table_id="gamma-table",
                      row_classes=["chosen" if c else "" for c in g["chosen"]],
                      caption="All γ candidates: absolute (kcal/mol/Å), relative (r<c>: c times the "
                              "interquartile range of that stage-1 model's B) and ∞ (no bias weights); "
                              "effective cheap frames = (Σw)²/Σw². The chosen one (lowest validation "
                              "loss after fine-tuning) in bold.")
    ch = g[g["chosen"]]
    chosen = ch.pivot_table(index=["model", "cheap_level", "n_train"], columns="seed", values="gamma_spec",
                            aggfunc="first")
    seeds = list(chosen.columns)
    chosen = chosen.rename(columns={s: f"γ, seed {s}" for s in seeds}).reset_index()
    n_inf = int((ch["gamma_spec"] == "inf").sum())
    words = (f"γ = ∞ (no bias weights) was chosen in {n_inf} of {len(ch)} settings"
             + ("; on this molecule the bias weights did not help on validation data." if n_inf == len(ch) else "."))
    compact = table_html(_with_labels(chosen), table_id="gamma-chosen-table",
                         caption="Chosen γ candidate per setting and seed. " + words)
    return compact + f"<details><summary>All {len(g)} γ candidates</summary>{full}</details>"


def _bias_html(summary: pd.DataFrame) -> str:
    if summary.empty:
        return '<p class="note">No bias diagnostic: no cheap level could label the validation frames.</p>'
    b = costs.normalise_levels(summary).rename(columns={"n_frames": "n_frames_val"})
    return table_html(_with_labels(b), ["model", "cheap_level", "n_train", "seed", "n_frames_val", "spearman",
                                        "mean_bias_estimate", "mean_true_bias", "mean_stage1_error"],
                      table_id="bias-table",
                      caption="The bias estimate B_j (stage-1 model vs cheap label) against the true error of the "
                              "cheap label on the validation frames, which are labelled at both levels. A Spearman ρ "
                              "near 1 means the bias weights pick out the worst cheap labels; when the mean stage-1 "
                              "error is close to the mean B, B mostly measures the stage-1 model's own error.")


def _forcefield_html(meta: dict | None) -> str:
    if not meta:
        return '<p class="note">No recommended force field (no model that ends on accurate data).</p>'
    lo, hi = meta["test_force_mae_95ci"]
    what = method_label(meta["method"], meta.get("cheap_level") or "")
    rows = [("model", model_label(meta["model"])), ("method", what), ("accurate level", meta["accurate_level"]),
            ("cheap level", meta.get("cheap_level") or "–"), ("N accurate labels", meta["n_train"]),
            ("γ", meta.get("gamma_spec") or "–"), ("seed", meta["seed"]), ("chosen by", meta["chosen_by"]),
            ("validation force MAE (kcal/mol/Å)", fmt_value(meta["val_force_mae_kcal_per_mol_A"])),
            ("expected test force MAE (kcal/mol/Å)",
             f"{fmt_value(meta['expected_test_force_mae_kcal_per_mol_A'])} (95% CI {fmt_value(lo)}–{fmt_value(hi)})")]
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in rows)
    code = ("from ase.io import read\nfrom ase.md.langevin import Langevin\nfrom ase import units\n"
            "from pipeline.evaluation.calculator import ModelCalculator\n\n"
            "atoms = read('start.xyz')\natoms.calc = ModelCalculator('forcefield/model.pt')\n"
            "Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.002).run(1000)")
    return (f'<p>The recommended force field is in <code>forcefield/model.pt</code> with '
            f'<code>forcefield/metadata.json</code>. It was chosen on validation data, never on test data.</p>'
            f'<div class="table-wrap"><table id="forcefield-table"><tbody>{body}</tbody></table></div>'
            f"<p>Use it as an ASE calculator:</p><pre>{_e(code)}</pre>" + _sgdml_note(meta))


def _sgdml_note(meta: dict) -> str:
    sg = meta.get("sgdml_same_n")
    if not sg or not sg["better_on_validation"]:
        return ""
    return (f'<p class="notes">sGDML, trained on the same {meta["n_train"]} accurate labels, had a lower validation '
            f"force MAE ({fmt_value(sg['val_force_mae_kcal_per_mol_A'])} vs "
            f"{fmt_value(meta['val_force_mae_kcal_per_mol_A'])} kcal/mol/Å). Its model is "
            f"<code>{_e(sg['model'])}</code> (use it with sgdml's own ASE calculator); the neural force field above "
            f"is recommended among the models this pipeline ships as ASE calculators.</p>")


def _versions_html(versions: dict[str, str]) -> str:
    rows = "".join(f"<tr><th scope=\"row\">{_e(k)}</th><td>{_e(v)}</td></tr>"
                   for k, v in versions.items())
    return f'<div class="table-wrap"><table id="versions-table"><tbody>{rows}</tbody></table></div>'


CSS = """
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --bg2:#f6f8fa; --accent:#b42318; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0; line-height: 1.45; }
header { background: #20262e; color: #fff; padding: 1.2rem 2rem; }
header h1 { margin: 0 0 .2rem 0; font-size: 1.6rem; }
header p { margin: 0; color: #c9d1d9; font-size: .9rem; }
nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid var(--line);
      padding: .4rem 2rem; font-size: .9rem; z-index: 1; }
nav a { margin-right: 1rem; color: #0550ae; text-decoration: none; }
main { max-width: 1280px; margin: 0 auto; padding: 1rem 2rem 3rem 2rem; }
h2 { border-bottom: 2px solid var(--line); padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { margin-top: 1.6rem; }
.lede { font-size: 1.05rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: .8rem; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: .7rem .9rem; background: var(--bg2); }
.card-title { font-size: .8rem; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
.card-value { font-size: 1.25rem; font-weight: 600; margin: .2rem 0; color: var(--accent); }
.card-detail { font-size: .85rem; color: var(--muted); }
.notes { border-left: 4px solid #bf8700; background: #fff8c5; padding: .5rem 1rem; margin: 1rem 0; }
.notes ul { margin: .3rem 0; padding-left: 1.2rem; }
.note { color: var(--muted); font-style: italic; }
figure { margin: 1.5rem 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figure.skipped { color: var(--muted); border: 1px dashed var(--line); padding: .6rem 1rem; }
figcaption { font-size: .9rem; color: var(--muted); margin-top: .4rem; max-width: 70rem; }
.files a { color: #0550ae; }
.table-wrap { overflow-x: auto; margin: .8rem 0; }
table { border-collapse: collapse; font-size: .85rem; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: .3rem; }
th, td { border: 1px solid var(--line); padding: .25rem .5rem; }
thead th { background: var(--bg2); vertical-align: bottom; }
tbody tr:nth-child(even) { background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best, tr.chosen td { font-weight: 700; }
tr.extrapolated td { font-style: italic; }
details { margin: .8rem 0; }
summary { cursor: pointer; color: #0550ae; }
pre { background: var(--bg2); border: 1px solid var(--line); padding: .8rem; overflow-x: auto;
      font-size: .8rem; }
"""


def build_report(
    results_csv: str | os.PathLike,
    label_costs_csv: str | os.PathLike,
    gamma_csv: str | os.PathLike,
    stability_csv: str | os.PathLike,
    benchmark_files: list[str],
    config_path: str | os.PathLike,
    out_html: str | os.PathLike,
    fig_dir: str | os.PathLike,
    molecule: str,
    reductions_csv: str | os.PathLike | None = None,
    bias_csv: str | os.PathLike | None = None,
    bias_summary_csv: str | os.PathLike | None = None,
    forcefield_dir: str | os.PathLike | None = None,
    label_plan_csv: str | os.PathLike | None = None,
) -> Path:
    """Write the report of `molecule` to `out_html` and its figures to `fig_dir`.

    Inputs are the pipeline's ``results.csv``, ``label_costs.csv``,
    ``gamma_selection.csv``, ``stability.csv``, the Snakemake benchmark TSVs
    (``benchmarks/<molecule>/<rule>/....tsv``) and the config YAML. A missing or empty
    input leaves out what depends on it, with a note in the report; a table that lacks
    a required column raises ValueError. The HTML is written atomically.
    Returns the path of the HTML file.
    """
    out_html = Path(out_html)
    out_dir = out_html.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    results = _load_csv(results_csv, costs.RESULTS_COLUMNS, "results.csv", notes)
    if not results.empty:
        n_all = len(results)
        results = results[results["molecule"].astype(str) == molecule].reset_index(drop=True)
        if results.empty:
            notes.append(f"results.csv has {n_all} rows but none for molecule {molecule!r}.")
    label_costs = _load_csv(label_costs_csv, costs.LABEL_COST_COLUMNS, "label_costs.csv", notes)
    plan = (_load_csv(label_plan_csv, costs.PLAN_COLUMNS, "label_plan.csv", notes)
            if label_plan_csv is not None else pd.DataFrame(columns=costs.PLAN_COLUMNS))
    gamma = _load_csv(gamma_csv, costs.GAMMA_COLUMNS, "gamma_selection.csv", notes)
    stability = _load_csv(stability_csv, costs.STABILITY_COLUMNS, "stability.csv", notes)
    reductions = _load_csv(reductions_csv, costs.REDUCTION_COLUMNS, "reductions.csv", notes)
    bias_frames = _load_csv(bias_csv, ["model", "cheap_level", "n_train", "seed", "bias_estimate", "true_bias"],
                            "bias_diagnostic.csv", notes)
    bias_summary = _load_csv(bias_summary_csv, costs.BIAS_SUMMARY_COLUMNS, "bias_correlation.csv", notes)
    ff_meta_path = Path(forcefield_dir, "metadata.json") if forcefield_dir else None
    forcefield = json.loads(ff_meta_path.read_text()) if ff_meta_path and ff_meta_path.is_file() else None
    present = [p for p in benchmark_files if Path(p).is_file()]
    if len(present) < len(benchmark_files):
        notes.append(f"{len(benchmark_files) - len(present)} of {len(benchmark_files)} "
                     "benchmark files not found; their jobs are left out of the timings.")
    timings = costs.stage_timings(costs.read_benchmarks(present, molecule))
    if not benchmark_files:
        notes.append("No Snakemake benchmark files were given; no timings.")

    figures = make_figures(results, label_costs, stability, timings, fig_dir, gamma=gamma, bias_frames=bias_frames,
                           bias_summary=bias_summary)
    notes += [f"Figure “{f.title}” not drawn: {f.skipped}." for f in figures if f.skipped]

    agg = costs.aggregate_results(results)
    se = _sample_efficiency_all(results, notes) if not results.empty else pd.DataFrame()
    label_summary = costs.label_cost_summary(label_costs)

    if config_path is not None and Path(config_path).is_file():
        config_text = Path(config_path).read_text(encoding="utf-8")
    else:
        config_text = None
        notes.append(f"Config file not found ({config_path}).")
    versions = software_versions()
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    sec = []
    sec.append(('summary', 'Summary',
                _summary_html(results, agg, se, label_summary, timings, molecule, reductions, forcefield)
                + ('<div class="notes"><strong>Notes</strong><ul>'
                   + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></div>"
                   if notes else "")))
    sec.append(('figures', 'Figures', "".join(_figure_html(f, out_dir) for f in figures)))
    res_parts = [
        "<h3>Sample efficiency of ASTEROID</h3>", _sample_efficiency_html(se),
        "<h3>Ablation: bias weights and fine-tuning</h3>", _ablation_html(results),
        "<h3>Error reduction over standard training</h3>", _reduction_html(reductions),
        "<h3>Cheapest route to a target error</h3>", _routes_html(results),
        "<h3>Prediction cost</h3>", _prediction_cost_html(results),
        "<h3>Mean over seeds</h3>", _aggregated_html(agg),
        '<p>Every single run is listed in <a href="#runs">All runs</a>.</p>',
    ]
    sec.append(('results', 'Results', "".join(res_parts)))
    sec.append(('forcefield', 'Recommended force field', _forcefield_html(forcefield)))
    sec.append(('gamma', 'γ selection', _gamma_html(gamma)))
    sec.append(('bias', 'Bias diagnostic', _bias_html(bias_summary)))
    sec.append(('stability', 'MD stability',
                table_html(_with_labels(_stability_table(stability)), table_id="stability-table",
                           caption="MD runs driven by each model; a run is stable if it "
                                   "completed without divergence.")
                if not stability.empty else '<p class="note">No MD stability runs.</p>'))
    cost_parts = ["<h3>Label cost per level of theory</h3>"]
    if label_summary.empty:
        cost_parts.append('<p class="note">No label costs.</p>')
    else:
        lc = label_costs.copy()
        lc["cpu_h_total"] = lc["cpu_s_total"] / 3600.0
        cost_parts += [
            table_html(label_summary, table_id="label-cost-summary-table",
                       caption="Per level, over all labelled subsets (per-frame costs weighted "
                               "by frames)."),
            table_html(lc, table_id="label-cost-table", caption="Per level and subset, as in "
                       "label_costs.csv."),
        ]
    if not plan.empty:
        cost_parts += [
            "<h3>Label cost: estimate vs spent</h3>",
            table_html(costs.estimate_vs_spent(plan, label_costs), table_id="label-estimate-table",
                       caption="The cost preview at the start of the run (label_plan.csv; every frame "
                               "of the level, cached or not) next to the CPU time the labels recorded."),
        ]
    cost_parts.append("<h3>Compute per workflow stage</h3>")
    cost_parts.append(
        table_html(timings, table_id="timing-table",
                   caption="From Snakemake benchmark files: jobs, summed wall and CPU time, "
                           "largest peak resident memory of a job.")
        if not timings.empty else '<p class="note">No benchmark files.</p>')
    sec.append(('costs', 'Labels and compute', "".join(cost_parts)))
    prov = ["<h3>Software</h3>", _versions_html(versions), "<h3>Configuration</h3>"]
    prov.append(f"<pre id=\"config\">{_e(config_text)}</pre>" if config_text is not None
                else '<p class="note">Config file not found.</p>')
    sec.append(('provenance', 'Provenance', "".join(prov)))
    sec.append(('runs', 'All runs', table_html(
        results, table_id="results-table",
        caption="One row per trained and evaluated model, exactly as in results.csv.")))

    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sec)
    body = "".join(f'<section id="{sid}"><h2>{_e(title)}</h2>{content}</section>'
                   for sid, title, content in sec)
    subtitle = ("ASTEROID (bias-aware training on cheap labels, then fine-tuning on accurate "
                f"labels) vs standard training on accurate labels only. Generated {generated}.")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(f'ASTEROID report — {molecule}')}</title><style>{CSS}</style></head>"
        f"<body><header><h1>{_e(f'Force-field accuracy per CPU-hour — {molecule}')}</h1>"
        f"<p>{_e(subtitle)}</p></header><nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
    atomic_write(out_html, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return out_html
