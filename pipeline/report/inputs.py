"""The report's inputs, read from disk in one place: the pipeline's tables, the recommended force
field's metadata, the Snakemake benchmark files and the config.

A missing or empty input becomes an empty table and a note (the report leaves out what depends on
it); a table that lacks a required column raises ValueError, since that is a pipeline bug.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from .. import records
from . import metrics

SOFTWARE = ["numpy", "torch", "pyscf", "openmm", "snakemake", "sgdml", "ase"]

PathLike = str | os.PathLike


@dataclass
class ReportInputs:
    """Everything the report is computed from; `notes` says what was missing."""

    molecule: str
    results: pd.DataFrame
    label_costs: pd.DataFrame
    plan: pd.DataFrame
    gamma: pd.DataFrame
    stability: pd.DataFrame
    reductions: pd.DataFrame
    bias_frames: pd.DataFrame
    bias_summary: pd.DataFrame
    corrected: pd.DataFrame  # corrected_uncertainty.csv (bias-corrected pre-training's u_j ranking)
    selection: pd.DataFrame  # selection.csv (every selection round's candidates and picks)
    selection_validation: pd.DataFrame  # selection_validation.csv (the committees on the validation frames)
    forcefield: dict | None
    timings: pd.DataFrame
    config_path: PathLike | None
    config_text: str | None
    notes: list[str] = field(default_factory=list)


def load_csv(path, columns: list[str], name: str, notes: list[str]) -> pd.DataFrame:
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


def _results_of(molecule: str, results: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The rows of `molecule` (a note when the table has rows but none of them)."""
    if results.empty:
        return results
    n_all = len(results)
    results = results[results["molecule"].astype(str) == molecule].reset_index(drop=True)
    if results.empty:
        notes.append(f"results.csv has {n_all} rows but none for molecule {molecule!r}.")
    return results


def _timings(benchmark_files: list[str], molecule: str, notes: list[str]) -> pd.DataFrame:
    """Per-stage timings from the benchmark files that exist (a note for those that do not)."""
    present = [p for p in benchmark_files if Path(p).is_file()]
    if len(present) < len(benchmark_files):
        notes.append(
            f"{len(benchmark_files) - len(present)} of {len(benchmark_files)} "
            "benchmark files not found; their jobs are left out of the timings."
        )
    timings = metrics.stage_timings(metrics.read_benchmarks(present, molecule))
    if not benchmark_files:
        notes.append("No Snakemake benchmark files were given; no timings.")
    return timings


def load_inputs(
    molecule: str,
    results_csv: PathLike,
    label_costs_csv: PathLike,
    gamma_csv: PathLike,
    stability_csv: PathLike,
    benchmark_files: list[str],
    config_path: PathLike | None,
    reductions_csv: PathLike | None = None,
    bias_csv: PathLike | None = None,
    bias_summary_csv: PathLike | None = None,
    corrected_csv: PathLike | None = None,
    forcefield_dir: PathLike | None = None,
    label_plan_csv: PathLike | None = None,
    selection_csv: PathLike | None = None,
    selection_validation_csv: PathLike | None = None,
) -> ReportInputs:
    """Read every input of the report of `molecule` (see :func:`pipeline.report.html.build_report`)."""
    notes: list[str] = []
    results = _results_of(molecule, load_csv(results_csv, metrics.RESULTS_COLUMNS, "results.csv", notes), notes)
    label_costs = load_csv(label_costs_csv, metrics.LABEL_COST_COLUMNS, "label_costs.csv", notes)
    plan = (
        load_csv(label_plan_csv, metrics.PLAN_COLUMNS, "label_plan.csv", notes)
        if label_plan_csv is not None
        else pd.DataFrame(columns=metrics.PLAN_COLUMNS)
    )
    gamma = load_csv(gamma_csv, metrics.GAMMA_COLUMNS, "gamma_selection.csv", notes)
    stability = load_csv(stability_csv, metrics.STABILITY_COLUMNS, "stability.csv", notes)
    reductions = load_csv(reductions_csv, records.REDUCTIONS, "reductions.csv", notes)
    bias_frames = load_csv(bias_csv, records.BIAS_FRAMES, "bias_diagnostic.csv", notes)
    bias_summary = load_csv(bias_summary_csv, metrics.BIAS_SUMMARY_COLUMNS, "bias_correlation.csv", notes)
    corrected = _optional_csv(corrected_csv, records.CORRECTED_UNCERTAINTY, "corrected_uncertainty.csv", notes)
    selection = _optional_csv(selection_csv, records.SELECTION, "selection.csv", notes)
    selection_val = _optional_csv(
        selection_validation_csv, records.SELECTION_VALIDATION, "selection_validation.csv", notes
    )
    ff_meta = Path(forcefield_dir, "metadata.json") if forcefield_dir else None
    forcefield = json.loads(ff_meta.read_text()) if ff_meta and ff_meta.is_file() else None
    timings = _timings(benchmark_files, molecule, notes)
    config_text = (
        Path(config_path).read_text(encoding="utf-8")
        if config_path is not None and Path(config_path).is_file()
        else None
    )
    return ReportInputs(
        molecule=molecule,
        results=results,
        label_costs=label_costs,
        plan=plan,
        gamma=gamma,
        stability=stability,
        reductions=reductions,
        bias_frames=bias_frames,
        bias_summary=bias_summary,
        corrected=corrected,
        selection=selection,
        selection_validation=selection_val,
        forcefield=forcefield,
        timings=timings,
        config_path=config_path,
        config_text=config_text,
        notes=notes,
    )


def _optional_csv(path: PathLike | None, columns, name: str, notes: list[str]) -> pd.DataFrame:
    """A table the workflow writes only for some configs: empty (no note) when not given."""
    return load_csv(path, columns, name, notes) if path is not None else pd.DataFrame(columns=columns)


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
