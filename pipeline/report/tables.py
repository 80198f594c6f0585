"""Report tables as data: formatted cells, column headers and whole tables.

The HTML templates (``templates/macros.html.j2``) turn a :class:`Table` into markup; this module
only decides what each cell shows. Every numeric cell carries the exact value (``repr`` of the
float, so it round-trips) in :attr:`Cell.value`, rendered as ``data-value``, next to the displayed
value rounded to :data:`SIG_DIGITS` significant digits; a column's CSV name travels in
:attr:`Header.column`, rendered as ``data-column``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .figures import method_label, model_label

SIG_DIGITS = 4

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


# ---------------------------------------------------------------- numbers as text


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
        return sig(float(x), SIG_DIGITS)
    return str(x)


def sig(x: float, digits: int) -> str:
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


def is_number(x) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_)


def pct(x) -> str:
    """A fraction as a signed whole percentage (+45%), "–" when not finite."""
    return f"{100 * x:+.0f}%" if np.isfinite(x) else "–"


# ---------------------------------------------------------------- the table model


@dataclass
class Cell:
    """One ``<td>``: the shown `text`, its CSS classes (`cls`, e.g. "num best"), the exact value
    (`value`, ``data-value``) and, for a mean ± std cell, the exact std (`std`, ``data-std``)."""

    text: str
    cls: str = ""
    value: str | None = None
    std: str | None = None


@dataclass
class Header:
    """One column head: the shown `label`, an optional second line in small print (`small`), the
    column's machine name (`column`, ``data-column``) and a tooltip (`title`)."""

    label: str
    column: str | None = None
    title: str | None = None
    small: str | None = None


@dataclass
class Row:
    cells: list[Cell]
    cls: str = ""


@dataclass
class Table:
    """A table with an ``id`` (what tests and the browser check find it by), column heads and rows;
    its caption is written in the template."""

    id: str
    headers: list[Header]
    rows: list[Row] = field(default_factory=list)


def cell(x, numeric: bool | None = None) -> Cell:
    """The cell of one value; numbers get class "num" and their exact value.

    `numeric` says whether the cell belongs to a numeric column (None: judge by `x`);
    a missing value in a text column is shown as "—" without an exact value."""
    if numeric is None:
        numeric = is_number(x)
    if numeric and is_number(x):
        return Cell(fmt_value(x), "num", exact_value(x))
    missing = x is None or (not isinstance(x, str) and pd.isna(x)) or x == ""
    return Cell("—" if missing else fmt_value(x))


def missing_number() -> Cell:
    """A numeric cell without a value ("–")."""
    return Cell("–", "num")


def pm_cell(mean, std, bold: bool = False) -> Cell:
    """Cell "mean ± std" (std to 2 significant digits, left out when zero or unknown)
    with the exact mean as its value and the exact std as its std."""
    if mean is None or pd.isna(mean):
        return missing_number()
    text = fmt_value(mean)
    if std is not None and not pd.isna(std) and std != 0:
        text += f" ± {sig(float(std), 2)}"
    has_std = not (std is None or pd.isna(std))
    return Cell(text, "num best" if bold else "num", exact_value(mean), exact_value(std) if has_std else None)


def frame_table(
    df: pd.DataFrame,
    columns: list[str] | None = None,
    table_id: str = "",
    row_classes: list[str] | None = None,
) -> Table:
    """Table of `df` (all or the given `columns`), headers from COLUMN_LABELS with the column
    name as machine name and tooltip, cells via :func:`cell`."""
    columns = list(df.columns) if columns is None else columns
    headers = [Header(COLUMN_LABELS.get(c, c), column=c, title=c) for c in columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in columns]
    rows = [
        Row([cell(v, num) for v, num in zip(values, numeric)], (row_classes[i] or "") if row_classes else "")
        for i, values in enumerate(df[columns].itertuples(index=False, name=None))
    ]
    return Table(table_id, headers, rows)


def with_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Copy with readable model and method names (display tables only)."""
    out = df.copy()
    if "model" in out.columns:
        out["model"] = [model_label(m) for m in out["model"]]
    if "method" in out.columns:
        out["method"] = [method_label(m) for m in out["method"]]
    return out
