"""What the report shows, computed from its inputs: summary cards, derived tables and figures.

:func:`compute_report` turns :class:`~pipeline.report.inputs.ReportInputs` into a
:class:`ReportContent`: plain data (text, numbers and :class:`~pipeline.report.tables.Table`
objects) that the templates lay out. A table that cannot be built is ``None``; the template then
says why in words. The numbers themselves come from :mod:`pipeline.report.metrics`.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import methods as method_registry
from ..evaluation.stats import spearman
from ..records import CAP_SETTINGS, LATE_IMPROVEMENT_WARN, cut_short
from . import metrics
from .figures import MAE_LABEL, FigureResult, make_figures, method_label, model_label
from .inputs import ReportInputs, software_versions
from .tables import (
    COLUMN_LABELS,
    Cell,
    Header,
    Row,
    Table,
    cell,
    exact_value,
    fmt_value,
    frame_table,
    missing_number,
    pct,
    pm_cell,
    with_labels,
)


@dataclass
class Card:
    """One key number of the summary: what it is, the number, and how it was obtained."""

    title: str
    value: str
    detail: str


@dataclass
class Overview:
    """What was run: the lede of the summary."""

    n_runs: int
    models: list[str]
    n_methods: int
    n_train: list[int]
    n_seeds: int


@dataclass
class PowerLawFit:
    """Standard training's learning curve of one model, MAE ≈ a·N^−b."""

    model: str
    a: float
    b: float


@dataclass
class GammaSelection:
    chosen: Table
    all: Table
    n_candidates: int
    n_settings: int
    n_inf: int


@dataclass
class ForceField:
    """The recommended force field: its facts as (name, value) rows, and the sGDML model trained on
    the same labels when that one did better on validation data (else None)."""

    rows: list[tuple[str, str]]
    n_train: int
    val_force_mae: str
    sgdml_model: str | None = None
    sgdml_val_force_mae: str = ""
    # a Δ model: its cheap level runs at every call; the best plain model at the same N, if any
    delta_level: str | None = None
    plain: dict | None = None


@dataclass
class ReportContent:
    """Everything the page shows, in the order of its sections."""

    molecule: str
    generated: str
    overview: Overview | None
    cards: list[Card]
    notes: list[str]
    figures: list[FigureResult]
    sample_efficiency: Table | None
    fits: list[PowerLawFit]
    ablation: Table | None
    reductions: Table | None
    reductions_one_seed: bool
    routes: Table | None
    prediction_costs: Table | None
    aggregated: Table | None
    forcefield: ForceField | None
    gamma: GammaSelection | None
    bias: Table | None
    corrected: Table | None
    selection: Table | None
    stability: Table | None
    label_cost_summary: Table | None
    label_costs: Table | None
    label_estimate: Table | None
    timings: Table | None
    versions: dict[str, str]
    config_text: str | None
    results: Table


# ---------------------------------------------------------------- words


def change_words(x) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{abs(100 * x):.0f}% {'lower' if x >= 0 else 'higher'} force error"


def reduction_sentence(r) -> str:
    """One reduction in words, with its interval, saying so when it is not significant."""
    what = f"{method_label(r.method, r.cheap_level)} vs {r.baseline} at N = {int(r.n_train)}"
    body = (
        f"{change_words(r.reduction)} (reduction {pct(r.reduction)}, 95% CI {pct(r.reduction_ci_low)} to "
        f"{pct(r.reduction_ci_high)}; {int(r.n_seeds)} seed(s), {int(r.n_test)} test frames)"
    )
    if not _is_true(r.significant):
        body += ": not significant at 95%"
    return f"{what}: {body}"


def _is_true(x) -> bool:
    return bool(metrics.as_bool(pd.Series([x])).iloc[0])


# ---------------------------------------------------------------- derived tables


def sample_efficiency_all(results: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """metrics.sample_efficiency of ASTEROID vs standard for every model and cheap level."""
    res = metrics.normalise_levels(results)
    pairs = (
        res[(res["method"] == "asteroid") & (res["n_train"] > 0)][["model", "cheap_level"]]
        .drop_duplicates()
        .sort_values(["model", "cheap_level"])
    )
    tables = []
    for model, level in pairs.itertuples(index=False, name=None):
        try:
            t = metrics.sample_efficiency(results, model, cheap_level=level)
        except ValueError as err:
            notes.append(f"Sample efficiency of ASTEROID ({level}) for {model_label(model)} not computed: {err}.")
            continue
        a, b = t.attrs["fit"]
        t["fit_a_kcal"], t["fit_b"] = a, b
        tables.append(t)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


# ---------------------------------------------------------------- summary


def overview(results: pd.DataFrame) -> Overview | None:
    res = metrics.normalise_levels(results)
    if res.empty:
        return None
    return Overview(
        n_runs=len(res),
        models=[model_label(m) for m in sorted(res["model"].unique())],
        n_methods=res["method"].nunique(),
        n_train=sorted(int(n) for n in res["n_train"].unique() if n > 0),
        n_seeds=res["seed"].nunique(),
    )


def _forcefield_card(ff: dict) -> Card:
    lo, hi = ff["test_force_mae_95ci"]
    return Card(
        "Recommended force field (chosen on validation)",
        f"{method_label(ff['method'], ff.get('cheap_level') or '')}",
        f"{model_label(ff['model'])}, N = {ff['n_train']}; expected test force MAE "
        f"{fmt_value(ff['expected_test_force_mae_kcal_per_mol_A'])} kcal/mol/Å "
        f"(95% CI {fmt_value(lo)}–{fmt_value(hi)}); forcefield/model.pt",
    )


def _reduction_cards(reductions: pd.DataFrame) -> list[Card]:
    """ASTEROID's and Δ-learning's reduction over standard training at their smallest N."""
    red = metrics.normalise_levels(reductions)
    cards = []
    for method, m in method_registry.METHODS.items():
        if m.card is None:
            continue
        rows = red[(red["method"] == method) & red["baseline"].str.endswith(" standard")]
        for r in rows[rows["n_train"] == rows["n_train"].min()].itertuples():
            name = m.card
            cards.append(
                Card(
                    f"{name} ({r.cheap_level}) vs standard, {model_label(r.model)}",
                    change_words(r.reduction),
                    reduction_sentence(r),
                )
            )
    return cards


def _cost_cards(label_summary: pd.DataFrame, timings: pd.DataFrame) -> list[Card]:
    cards = []
    if not label_summary.empty:
        parts = ", ".join(
            f"{lv}: {fmt_value(h)}" for lv, h in zip(label_summary["level"], label_summary["cpu_h_total"])
        )
        cards.append(Card("Total label cost", f"{fmt_value(label_summary['cpu_h_total'].sum())} CPU-h", parts))
    if not timings.empty:
        cards.append(
            Card(
                "Workflow compute",
                f"{fmt_value(timings['cpu_h'].sum())} CPU-h",
                f"{int(timings['n_jobs'].sum())} jobs, {fmt_value(timings['wall_h'].sum())} h wall (summed)",
            )
        )
    return cards


def _best_at_smallest_n_cards(agg: pd.DataFrame) -> list[Card]:
    """Per model (sGDML only when there is nothing else), the method with the lowest mean error
    at the smallest N."""
    curves = agg[(agg["n_train"] > 0) & agg["force_mae_kcal"].notna()]
    panel_models = sorted(m for m in curves["model"].unique() if m != "sgdml") or sorted(curves["model"].unique())
    cards = []
    for model in panel_models:
        rows = curves[curves["model"] == model]
        n_min = rows["n_train"].min()
        at = rows[rows["n_train"] == n_min]
        best = at.loc[at["force_mae_kcal"].idxmin()]
        detail = (
            f"{model_label(model)}, N = {int(n_min)} accurate labels"
            "; lowest mean test error (see the reduction table for intervals)"
        )
        cards.append(
            Card(
                f"Best at smallest N ({model_label(model)})",
                f"{method_label(best['method'], best['cheap_level'])}: {fmt_value(best['force_mae_kcal'])} kcal/mol/Å",
                detail,
            )
        )
    return cards


def _sample_efficiency_cards(se: pd.DataFrame) -> list[Card]:
    """The sample-efficiency factor of ASTEROID at its smallest N, per model and cheap level."""
    if se.empty:
        return []
    cards = []
    first = se.loc[se.groupby(["model", "cheap_level"])["n_train"].idxmin()]
    for r in first.itertuples():
        value = f"{fmt_value(r.factor)}×" if not pd.isna(r.factor) else "not defined"
        detail = f"N = {int(r.n_train)}"
        if not pd.isna(r.factor):
            detail += (
                f"; standard training needs ≈{fmt_value(float(r.n_equiv))} labels for the same error"
                f"{' (extrapolated)' if r.extrapolated else ''}; point estimate from the power-law fit"
            )
        if not pd.isna(r.standard_equiv_cost_cpu_h):
            detail += (
                f"; labels cost {fmt_value(r.data_cost_cpu_h)} CPU-h vs "
                f"≈{fmt_value(r.standard_equiv_cost_cpu_h)} CPU-h for standard "
                f"training to reach the same error"
            )
        cards.append(Card(f"Sample efficiency of ASTEROID ({r.cheap_level}), {model_label(r.model)}", value, detail))
    return cards


def summary_cards(agg, se, label_summary, timings, reductions, forcefield) -> list[Card]:
    """Key numbers: the recommended force field, ASTEROID vs standard (with its 95% interval, in
    words when not significant), total label and compute CPU-hours, the best method at the smallest
    N per model and the sample-efficiency factor."""
    cards = [_forcefield_card(forcefield)] if forcefield else []
    if not reductions.empty:
        cards += _reduction_cards(reductions)
    return cards + _cost_cards(label_summary, timings) + _best_at_smallest_n_cards(agg) + _sample_efficiency_cards(se)


# ---------------------------------------------------------------- results tables


def sample_efficiency_table(se: pd.DataFrame) -> tuple[Table | None, list[PowerLawFit]]:
    """ASTEROID's error, standard training's at the same N and the labels standard training needs
    for ASTEROID's error; rows that extrapolate the fit have class "extrapolated"."""
    if se.empty:
        return None, []
    fits = [
        PowerLawFit(model_label(r.model), r.fit_a_kcal, r.fit_b)
        for r in se.drop_duplicates("model")[["model", "fit_a_kcal", "fit_b"]].itertuples()
    ]
    renamed = {"force_mae_kcal": "asteroid_force_mae_kcal", "data_cost_cpu_h": "asteroid_data_cost_cpu_h"}
    cols = [
        "model",
        "cheap_level",
        "n_train",
        "force_mae_kcal",
        "standard_force_mae_kcal",
        "reduction_pct",
        "n_equiv",
        "factor",
        "data_cost_cpu_h",
        "standard_equiv_cost_cpu_h",
    ]
    shown = with_labels(se).rename(columns=renamed)
    classes = ["extrapolated" if x else "" for x in se["extrapolated"]]
    return frame_table(shown, [renamed.get(c, c) for c in cols], "sample-efficiency-table", classes), fits


def ablation_table(results: pd.DataFrame) -> Table | None:
    """Wide ablation table: one row per (model, cheap level, N), one mean ± std column per method
    of metrics.ABLATION_METHODS, lowest error in bold."""
    long = metrics.ablation_table(results)
    if long.empty:
        return None
    methods = [m for m in metrics.ABLATION_METHODS if m in set(long["method"])]
    headers = [Header("model"), Header("cheap level"), Header("N accurate labels")] + [
        Header(method_label(m), column=m, small=MAE_LABEL) for m in methods
    ]
    rows = []
    for (model, level, n), g in long.groupby(["model", "cheap_level", "n_train"], sort=True):
        by = g.set_index("method")
        best = by["force_mae_kcal"].idxmin() if by["force_mae_kcal"].notna().any() else None
        cells = [cell(model_label(model)), cell(level), cell(int(n))]
        cells += [
            pm_cell(by.at[m, "force_mae_kcal"], by.at[m, "force_mae_kcal_std"], bold=(m == best))
            if m in by.index
            else missing_number()
            for m in methods
        ]
        rows.append(Row(cells))
    return Table("ablation-table", headers, rows)


AGGREGATED_METRICS = ["force_mae_kcal", "force_rmse_kcal", "energy_mae_kcal", "data_cost_cpu_h"]


def aggregated_table(agg: pd.DataFrame) -> Table | None:
    """Mean ± std over seeds of the errors and label cost per setting."""
    if agg.empty:
        return None
    headers = [Header(h) for h in ["model", "method", "cheap level", "N accurate labels", "seeds"]]
    headers += [Header(COLUMN_LABELS[c], column=c) for c in AGGREGATED_METRICS]
    rows = []
    for r in agg.sort_values(["model", "method", "cheap_level", "n_train"]).itertuples():
        cells = [
            cell(model_label(r.model)),
            cell(method_label(r.method)),
            cell(r.cheap_level),
            cell(int(r.n_train)),
            cell(int(r.n_seeds)),
        ]
        rows.append(Row(cells + [pm_cell(getattr(r, c), getattr(r, f"{c}_std")) for c in AGGREGATED_METRICS]))
    return Table("aggregated-table", headers, rows)


def routes_table(results: pd.DataFrame) -> Table | None:
    """metrics.cheapest_routes as a wide table: one row per target error, one column per route, the
    cell its lowest labels + training CPU-h (and N) at or below the target; the cheapest in bold."""
    routes = metrics.cheapest_routes(results) if not results.empty else pd.DataFrame()
    if routes.empty:
        return None
    keys = list(
        routes[["model", "method", "cheap_level"]]
        .drop_duplicates()
        .sort_values(["method", "model", "cheap_level"])
        .itertuples(index=False, name=None)
    )
    pred = routes.groupby(["model", "method", "cheap_level"])["predict_cpu_s_per_frame"].mean()
    headers = [Header("target: the error of"), Header("target force MAE (kcal/mol/Å)")] + [
        Header(
            f"{model_label(m)} · {method_label(me, lv)}",
            column=f"{m}|{me}|{lv}",
            small=f"predicts in {fmt_value(pred.get((m, me, lv)))} CPU s/frame",
        )
        for m, me, lv in keys
    ]
    rows = []
    for (target, mae), g in routes.groupby(["target", "target_force_mae_kcal"], sort=False):
        by = {(r.model, r.method, r.cheap_level): r for r in g.itertuples()}
        cells = [cell(target), cell(float(mae))]
        for k in keys:
            r = by.get(k)
            cells.append(
                Cell("not reached", "num")
                if r is None
                else Cell(
                    f"{fmt_value(r.total_cpu_h)} CPU-h (N = {int(r.n_train)})",
                    "num best" if r.cheapest else "num",
                    exact_value(r.total_cpu_h),
                )
            )
        rows.append(Row(cells))
    return Table("routes-table", headers, rows)


def prediction_cost_table(results: pd.DataFrame) -> Table | None:
    pc = metrics.prediction_costs(results)
    return None if pc.empty else frame_table(with_labels(pc), table_id="prediction-cost-table")


def _against(baseline: str) -> str:
    """reductions.csv's baseline ('egnn standard', 'egnn delta') as the method it names."""
    return method_label(baseline.split(" ", 1)[1])


def reduction_table(reductions: pd.DataFrame) -> tuple[Table | None, bool]:
    """Error reduction of each method over standard training with its 95% paired interval (over seeds
    and test frames; n_seeds says how many seeds it rests on)
    (" n.s." when not significant), and whether every reduction comes from one training seed."""
    if reductions.empty:
        return None, False
    red = metrics.normalise_levels(reductions)
    ns = sorted(red["n_train"].unique())
    headers = [Header(h) for h in ["model", "method", "cheap level", "against"]] + [
        Header(f"N = {int(n)}", column=f"n_train={int(n)}") for n in ns
    ]
    rows = []
    red["against"] = [_against(b) for b in red["baseline"]]
    red["other"] = ~red["baseline"].str.endswith(" standard")  # against standard training first
    for (model, method, level, _, against), g in red.groupby(
        ["model", "method", "cheap_level", "other", "against"], sort=True
    ):
        by = g.set_index("n_train")
        cells = [cell(model_label(model)), cell(method_label(method)), cell(level), cell(against)]
        for n in ns:
            if n not in by.index:
                cells.append(missing_number())
                continue
            r = by.loc[n]
            significant = _is_true(r["significant"])
            text = f"{pct(r['reduction'])} [{pct(r['reduction_ci_low'])}, {pct(r['reduction_ci_high'])}]" + (
                "" if significant else " n.s."
            )
            cls = "num best" if significant and r["reduction"] > 0 else "num"
            cells.append(Cell(text, cls, exact_value(r["reduction"])))
        rows.append(Row(cells))
    return Table("reduction-table", headers, rows), sorted(red["n_seeds"].unique()) == [1]


# ---------------------------------------------------------------- other sections


def forcefield_facts(meta: dict | None) -> ForceField | None:
    if not meta:
        return None
    lo, hi = meta["test_force_mae_95ci"]
    what = method_label(meta["method"], meta.get("cheap_level") or "")
    expected = fmt_value(meta["expected_test_force_mae_kcal_per_mol_A"])
    rows = [
        ("model", model_label(meta["model"])),
        ("method", what),
        ("accurate level", meta["accurate_level"]),
        ("cheap level", meta.get("cheap_level") or "–"),
        ("N accurate labels", meta["n_train"]),
        ("γ", meta.get("gamma_spec") or "–"),
        ("seed", meta["seed"]),
        ("chosen by", meta["chosen_by"]),
        ("validation force MAE (kcal/mol/Å)", fmt_value(meta["val_force_mae_kcal_per_mol_A"])),
        ("expected test force MAE (kcal/mol/Å)", f"{expected} (95% CI {fmt_value(lo)}–{fmt_value(hi)})"),
        ("CPU per call (ms)", _ms(meta.get("predict_cpu_s_per_frame"))),
    ]
    ff = ForceField([(k, str(v)) for k, v in rows], meta["n_train"], fmt_value(meta["val_force_mae_kcal_per_mol_A"]))
    if meta.get("calculator") == "DeltaCalculator":
        ff.delta_level = meta.get("cheap_level")
        plain = meta.get("plain_same_n")
        if plain:
            what = method_label(plain["method"], plain.get("cheap_level") or "")
            ff.plain = {
                "label": f"{model_label(plain['model'])} {what}",
                "val_force_mae": fmt_value(plain["val_force_mae_kcal_per_mol_A"]),
                "ms": _ms(plain.get("predict_cpu_s_per_frame")),
                "path": plain["model_path"],
            }
    sg = meta.get("sgdml_same_n")
    if sg and sg["better_on_validation"]:
        ff.sgdml_model, ff.sgdml_val_force_mae = sg["model"], fmt_value(sg["val_force_mae_kcal_per_mol_A"])
    return ff


def _ms(seconds) -> str:
    return "–" if seconds is None or not np.isfinite(seconds) else f"{1000 * seconds:.1f}"


def gamma_selection(gamma: pd.DataFrame) -> GammaSelection | None:
    """The chosen γ per setting and seed, and every candidate (the chosen rows have class "chosen")."""
    if gamma.empty:
        return None
    g = metrics.normalise_levels(gamma)
    g["chosen"] = metrics.as_bool(g["chosen"])
    key = ["method", "model", "cheap_level", "n_train"]
    g = g.sort_values([*key, "seed", "gamma"]).reset_index(drop=True)
    cols = [*key, "seed", "gamma_spec", "gamma", "effective_frames", "val_loss", "chosen"]
    full = frame_table(with_labels(g), cols, "gamma-table", ["chosen" if c else "" for c in g["chosen"]])
    ch = g[g["chosen"]]
    chosen = ch.pivot_table(index=key, columns="seed", values="gamma_spec", aggfunc="first")
    chosen = chosen.rename(columns={s: f"γ, seed {s}" for s in chosen.columns}).reset_index()
    return GammaSelection(
        chosen=frame_table(with_labels(chosen), table_id="gamma-chosen-table"),
        all=full,
        n_candidates=len(g),
        n_settings=len(ch),
        n_inf=int((ch["gamma_spec"] == "inf").sum()),
    )


def bias_table(summary: pd.DataFrame) -> Table | None:
    if summary.empty:
        return None
    b = metrics.normalise_levels(summary).rename(columns={"n_frames": "n_frames_val"})
    return frame_table(
        with_labels(b),
        [
            "model",
            "cheap_level",
            "n_train",
            "seed",
            "n_frames_val",
            "spearman",
            "mean_bias_estimate",
            "mean_true_bias",
            "mean_stage1_error",
        ],
        "bias-table",
    )


def corrected_table(diag: pd.DataFrame) -> Table | None:
    """Bias-corrected pre-training: each u_j estimate's Spearman ρ with the corrected labels' true
    error on the validation frames, and the one that weighted stage 2."""
    if diag.empty:
        return None
    cols = ["model", "cheap_level", "n_train", "seed", "estimator", "n_val", "spearman", "mean_true_error", "chosen"]
    return frame_table(with_labels(metrics.normalise_levels(diag)), cols, "corrected-table")


def selection_table(selection: pd.DataFrame, validation: pd.DataFrame) -> Table | None:
    """Per selection (seed) and round: candidates, picks, the picks' mean disagreement and distance
    against the candidates', and the committee's rank correlation with the true error on validation."""
    if selection.empty:
        return None
    rows = []
    for (seed, r), g in selection.groupby(["seed", "round"], sort=True):
        picked = g[g["pick_order"] >= 0]
        v = validation[(validation["seed"] == seed) & (validation["round"] == r)] if not validation.empty else g[:0]
        rows.append(
            {
                "seed": int(seed),
                "round": int(r),
                "candidates": len(g),
                "picked": len(picked),
                "disagreement_picked_kcal": picked["disagreement_kcal"].mean(),
                "disagreement_candidates_kcal": g["disagreement_kcal"].mean(),
                "distance_picked": picked["distance"].mean(),
                "distance_candidates": g["distance"].mean(),
                "n_val": len(v),
                "spearman_val": spearman(v["disagreement_kcal"], v["true_error_kcal"]) if len(v) else float("nan"),
            }
        )
    return frame_table(pd.DataFrame(rows), table_id="selection-table")


def label_cost_tables(label_costs: pd.DataFrame, label_summary: pd.DataFrame) -> tuple[Table | None, Table | None]:
    """Per level (summed over subsets) and per level and subset, as in label_costs.csv."""
    if label_summary.empty:
        return None, None
    lc = label_costs.copy()
    lc["cpu_h_total"] = lc["cpu_s_total"] / 3600.0
    return (
        frame_table(label_summary, table_id="label-cost-summary-table"),
        frame_table(lc, table_id="label-cost-table"),
    )


# ---------------------------------------------------------------- tuning
def _which_runs(rows: pd.DataFrame) -> str:
    """The distinct (method, N) of `rows`, e.g. "asteroid N = 50, standard N = 100"."""
    return ", ".join(sorted({f"{r.method} N = {int(r.n_train)}" for r in rows.itertuples()}))


def _pretraining_notes(results: pd.DataFrame) -> list[str]:
    """Fine-tuned routes whose pre-training (ASTEROID's stage 2, the corrected pool's, score matching)
    a cap ended while it was still improving: the route is measured with a pre-training that had not
    learnt its labels, which can hide all of its gain (BENCHMARKS.md 16)."""
    if "pretrain_late_improvement" not in results:
        return []
    pre = zip(results["pretrain_stop_reason"], results["pretrain_late_improvement"])
    late = results[[cut_short(reason, gain) for reason, gain in pre]]
    if late.empty:
        return []
    keys = {
        (getattr(method_registry.METHODS.get(r.method), "pretraining", None), CAP_SETTINGS[r.pretrain_stop_reason])
        for r in late.itertuples()
    }
    stages = ", ".join(sorted(f"training.{k}.{c}" for k, c in keys if k)) or "the pre-training's cap"
    return [
        f"{len(late)} fine-tuned models start from a pre-training that its cap ended while it was still improving "
        f"by more than {LATE_IMPROVEMENT_WARN:.0%} over its last quarter (results.csv `pretrain_stop_reason`, "
        f"`pretrain_late_improvement`): these routes are measured with a pre-training that had not learnt its labels, "
        f"and their errors may understate them; raise {stages} ({_which_runs(late)})."
    ]


def tuning_notes(results: pd.DataFrame) -> list[str]:
    """How the trainings ended (only early stopping shows convergence on validation data) and
    sGDML length scales chosen at the edge of their grid (an under-tuned baseline)."""
    notes = []
    if "stop_reason" in results and results["stop_reason"].notna().any():
        trained = results[results["stop_reason"].fillna("").astype(str) != ""]
        capped = trained[trained["stop_reason"] != "early_stopping"]
        counts = ", ".join(f"{k}: {v}" for k, v in trained["stop_reason"].value_counts().sort_index().items())
        notes.append(f"How the final models' training ended ({counts}; results.csv `stop_reason`, `stop_step`).")
        if len(capped):
            notes.append(
                f"{len(capped)} of {len(trained)} trainings ended at a step or epoch cap, not by early stopping: "
                f"their errors are at this budget, not converged ({_which_runs(capped)})."
            )
        if "late_improvement" in capped:
            late = capped[pd.to_numeric(capped["late_improvement"], errors="coerce") > LATE_IMPROVEMENT_WARN]
            if len(late):
                notes.append(
                    f"{len(late)} of them were still improving by more than {LATE_IMPROVEMENT_WARN:.0%} over the last "
                    f"quarter of their steps (results.csv `late_improvement`): raise that stage's max_steps "
                    f"({_which_runs(late)})."
                )
    notes += _pretraining_notes(results)
    if "sigma_at_edge" in results:
        edge = results[results["sigma_at_edge"].astype(str).str.lower() == "true"]
        for r in edge.itertuples():
            notes.append(
                f"{method_label(r.method)} at N = {int(r.n_train)}: the chosen σ = {r.sgdml_sigma:g} is at the edge of "
                "evaluation.sgdml.sigmas; the optimum may lie outside the grid (widen it)."
            )
    return notes


# ---------------------------------------------------------------- everything


def compute_report(inputs: ReportInputs, fig_dir: str | os.PathLike) -> ReportContent:
    """The content of the report: draws the figures into `fig_dir` and builds every table.

    What could not be computed is added to the notes (the inputs' notes come first)."""
    notes = list(inputs.notes)
    figures = make_figures(
        inputs.results,
        inputs.label_costs,
        inputs.stability,
        inputs.timings,
        fig_dir,
        gamma=inputs.gamma,
        bias_frames=inputs.bias_frames,
        bias_summary=inputs.bias_summary,
        selection=inputs.selection,
        selection_validation=inputs.selection_validation,
    )
    notes += [f"Figure “{f.title}” not drawn: {f.skipped}." for f in figures if f.skipped]
    results = inputs.results
    agg = metrics.aggregate_results(results)
    se = sample_efficiency_all(results, notes) if not results.empty else pd.DataFrame()
    notes += tuning_notes(results)
    label_summary = metrics.label_cost_summary(inputs.label_costs)
    if inputs.config_text is None:
        notes.append(f"Config file not found ({inputs.config_path}).")
    se_table, fits = sample_efficiency_table(se)
    reductions, one_seed = reduction_table(inputs.reductions)
    summary_of_labels, per_subset = label_cost_tables(inputs.label_costs, label_summary)
    return ReportContent(
        molecule=inputs.molecule,
        generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        overview=overview(results),
        cards=summary_cards(agg, se, label_summary, inputs.timings, inputs.reductions, inputs.forcefield),
        notes=notes,
        figures=figures,
        sample_efficiency=se_table,
        fits=fits,
        ablation=ablation_table(results),
        reductions=reductions,
        reductions_one_seed=one_seed,
        routes=routes_table(results),
        prediction_costs=prediction_cost_table(results),
        aggregated=aggregated_table(agg),
        forcefield=forcefield_facts(inputs.forcefield),
        gamma=gamma_selection(inputs.gamma),
        bias=bias_table(inputs.bias_summary),
        corrected=corrected_table(inputs.corrected),
        selection=selection_table(inputs.selection, inputs.selection_validation),
        stability=(
            frame_table(with_labels(metrics.stability_summary(inputs.stability)), table_id="stability-table")
            if not inputs.stability.empty
            else None
        ),
        label_cost_summary=summary_of_labels,
        label_costs=per_subset,
        label_estimate=(
            frame_table(metrics.estimate_vs_spent(inputs.plan, inputs.label_costs), table_id="label-estimate-table")
            if not inputs.plan.empty
            else None
        ),
        timings=frame_table(inputs.timings, table_id="timing-table") if not inputs.timings.empty else None,
        versions=software_versions(),
        config_text=inputs.config_text,
        results=frame_table(results, table_id="results-table"),
    )
