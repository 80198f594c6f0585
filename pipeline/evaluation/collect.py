"""Collect evaluations into the tidy tables the report reads.

What a model is (its stage, model name, cheap level, gamma, N, seed) is read from the metadata
saved with it at training time and carried into its eval.json (``model_extra``); no meaning is
parsed out of paths.

- results.csv: one row per (model, method, cheap level, N, seed) with test errors and their 95%
  bootstrap interval over test frames, the reduction against standard training of the same model,
  N and seed (paired bootstrap interval), label cost and training cost in CPU-hours, and the CPU
  seconds of one prediction on one frame (≈ one MD step; for Δ-learning the cheap level's included).
  Δ-learning (`delta`: the cheap level + a neural correction; `delta_sgdml`: + a kernel correction)
  counts, besides its N accurate labels, the cheap labels on those N frames and on the validation
  and test frames (to stop training and to predict on the test set).
  ASTEROID's gamma is chosen per (model, cheap level, N, seed) among every candidate, gamma = inf
  (no bias weights) included, by the fine-tuned model's validation loss (never by test error);
  `bias_aware_no_finetune` is stage 2 at that gamma.
- reductions.csv: the same reductions with every seed pooled (paired over seeds and test frames).
- gamma_selection.csv: every candidate's gamma, effective sample size and validation loss.
- label_costs.csv: CPU cost per frame of each labelled subset, from the per-frame records.
- stability.csv: the MD stability runs, concatenated.
- bias_diagnostic.csv / bias_correlation.csv: B_j against the true cheap-label error on the
  validation frames, per frame and summarised (Spearman rank correlation).
- corrected_uncertainty.csv: for bias-corrected pre-training, how well each estimate u_j ranks the
  true error of the corrected labels on the validation frames, and which one was used.
- forcefield/: the recommended force field (chosen on validation), its metadata, and for a Δ model
  whose cheap level is GAFF2 the prmtop it needs; ``pipeline.evaluation.calculator.load_forcefield``
  turns the directory into an ASE calculator.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .. import methods, records, units
from ..data import atomic_write, load_npz
from ..methods.asteroid import best_by_validation, chosen_candidates
from .stats import mean_interval, reduction_interval

METRICS = records.METRICS
COLUMNS = records.RESULTS
GAMMA_COLUMNS = records.GAMMA
REDUCTION_COLUMNS = records.REDUCTIONS
# Method groups, from the registry (pipeline/methods): kernel models (model "sgdml") are compared
# with every neural model's standard training; the recommended force field is one of FORCEFIELD_METHODS
# (they all run as this package's ASE calculators); a Δ method calls its cheap level at run time.
KERNEL_METHODS = tuple(methods.names(kernel=True))
PRODUCT_METHODS = tuple(methods.names(product=True))
FORCEFIELD_METHODS = tuple(methods.names(forcefield=True))
DELTA_METHODS = tuple(methods.names(runtime_level=True))
NEURAL_DELTA_METHODS = tuple(m for m in DELTA_METHODS if m not in KERNEL_METHODS)  # delta, delta_selected
__all__ = ["best_by_validation", "collect", "evaluation_record", "export_forcefield", "recommend"]


def _num(x, default=math.nan) -> float:
    return default if x is None else float(x)


def evaluation_record(path: str) -> dict:
    """One evaluation with its role, from the eval.json and the model metadata inside it."""
    ev = json.loads(Path(path).read_text())
    extra = ev.get("model_extra") or {}
    rec = {
        "path": path,
        "extra": extra,
        **{m: ev[m] for m in METRICS},
        "errors": np.asarray(ev["per_frame_force_mae_kcal"], dtype=np.float64),
        "frame_id": np.asarray(ev["frame_id"]),
        "cheap_level": "",
        "gamma": math.nan,
        "gamma_spec": "",
        "effective_frames": math.nan,
        "val_force_mae_kcal": math.nan,
        "predict_cpu_s_per_frame": _num(ev.get("predict_cpu_s_per_frame")),
        "stop_reason": str(extra.get("stop_reason") or ""),
        "stop_step": _num(extra.get("stop_step")),
        "late_improvement": _num(extra.get("late_improvement")),
        "pretrain_stop_reason": str(extra.get("init_stop_reason") or ""),
        "pretrain_late_improvement": _num(extra.get("init_late_improvement")),
        "sgdml_sigma": math.nan,
        "sigma_at_edge": "",
    }
    if ev.get("method") in KERNEL_METHODS:  # sGDML, and sGDML as a Δ-model (it records its cheap level)
        return {
            **rec,
            "role": ev["method"],
            "model": "sgdml",
            "n_train": int(ev["n_train"]),
            "seed": 0,
            "cheap_level": str(ev["cheap_level"]) if ev["method"] == "delta_sgdml" else "",
            "train_wall_s": _num(ev.get("train_wall_s"), 0.0),
            "train_cpu_s": _num(ev.get("train_cpu_s"), 0.0),
            "val_force_mae_kcal": _num(ev.get("valid_force_mae_kcal")),
            "sgdml_sigma": _num(ev.get("sigma")),
            "sigma_at_edge": bool(ev.get("sigma_at_edge", False)),
        }
    rec.update(
        model=extra["model_name"],
        seed=int(extra["seed"]),
        n_train=int(extra.get("n_train") or 0),
        train_wall_s=_num(extra.get("train_wall_s"), 0.0),
        train_cpu_s=_num(extra.get("train_cpu_s"), 0.0),
        gamma=_num(extra.get("gamma")),
        gamma_spec=str(extra.get("gamma_spec") or ""),
        effective_frames=_num(extra.get("effective_frames")),
        cheap_level=str(extra.get("cheap_level") or ""),
    )
    if extra.get("stage") in ("standard", "finetune", "delta"):
        rec["val_force_mae_kcal"] = _num(extra.get("best_metric"))
    role = model_role(extra, path)
    if extra.get("role"):  # a registry method's metadata holds its own N and level
        return {**rec, "role": role}
    if role == "cheap_only":  # roles read from the stage: their N and level follow from it
        rec["n_train"] = 0
    elif role == "stage2":
        rec["n_train"] = int(extra["stage1_n_train"])
    elif role == "score_matching_no_finetune":
        rec["cheap_level"], rec["n_train"] = "unlabelled", 0
    elif role == "score_matching":
        rec["cheap_level"] = "unlabelled"
    return {**rec, "role": role}


def model_role(extra: dict, where: str = "model") -> str:
    """A trained model's role (the record kind methods read, pipeline/methods) from its metadata."""
    stage = extra.get("stage")
    if extra.get("role"):  # methods built on the registry write their role (pipeline/methods)
        return str(extra["role"])
    if stage == "cheap":
        return "cheap_only" if math.isinf(_num(extra.get("gamma"))) else "stage2"
    if stage == "score_matching":
        return "score_matching_no_finetune"
    if stage == "finetune" and extra.get("init_stage") == "score_matching":
        return "score_matching"
    if stage in ("standard", "finetune", "delta"):
        return stage
    raise ValueError(f"{where}: model metadata has no known stage ({stage!r}); retrain it with this version")


def _dataset_and_failures(path: str) -> tuple:
    """A labelled dataset and the frames that failed to label (failures.csv beside it; none if absent)."""
    fail_csv = Path(path).with_suffix(".failures.csv")
    failed = pd.read_csv(fail_csv) if fail_csv.exists() else pd.DataFrame(columns=["frame_id", "cpu_s"])
    return load_npz(path), failed


def _label_cost_rows(datasets: dict[str, str]) -> pd.DataFrame:
    rows = []
    for key, path in datasets.items():
        level, subset = key.split(":", 1)
        ds, failed = _dataset_and_failures(path)
        cpu_total = float(ds.cpu_s.sum() + failed["cpu_s"].sum())
        rows.append(
            dict(
                level=level,
                subset=subset,
                n_frames=len(ds),
                n_failed=len(failed),
                n_outliers=int(ds.meta.get("n_outliers", 0)),
                cpu_s_total=cpu_total,
                cpu_s_per_frame=float(ds.cpu_s.mean()) if len(ds) else math.nan,
                wall_s_per_frame=float(ds.wall_s.mean()) if len(ds) else math.nan,
            )
        )
    return pd.DataFrame(rows, columns=records.LABEL_COSTS)


class _DeltaCheapCost:
    """Cheap labels a Δ method used, from the per-frame records of LEVEL:train/val/test datasets:
    those of the accurate train[:N] frames (failed attempts included) plus every validation and test
    frame (it needs them to stop training and to predict on the test set)."""

    def __init__(self, datasets: dict[str, str], train_frame_id):
        self.datasets = datasets
        self.train_frame_id = np.asarray(train_frame_id)
        self._loaded: dict[str, tuple] = {}

    def _load(self, level: str, subset: str):
        key = f"{level}:{subset}"
        if key not in self._loaded:
            if key not in self.datasets:
                raise ValueError(
                    f"a Δ model of cheap level {level!r} needs its {subset} labels in --datasets "
                    f"({key}=PATH); the workflow passes them when delta.enabled"
                )
            self._loaded[key] = _dataset_and_failures(self.datasets[key])
        return self._loaded[key]

    def __call__(self, level: str, n: int, own_train=None) -> tuple[int, float]:
        """(cheap labels, their CPU seconds) for a Δ model at N accurate training frames: train[:N],
        or `own_train` (the selected frames at `level`, a Dataset) for a model trained on those."""
        if own_train is not None:
            n_labels, cpu = len(own_train), float(own_train.cpu_s.sum())
        else:
            ids = {int(f) for f in self.train_frame_id[:n]}
            ds, failed = self._load(level, "train")
            used = np.array([int(f) in ids for f in ds.frame_id], dtype=bool)
            n_labels = int(used.sum())
            cpu = float(ds.cpu_s[used].sum())
            cpu += float(failed.loc[failed["frame_id"].astype(int).isin(ids), "cpu_s"].sum())
        for subset in ("val", "test"):
            ds, failed = self._load(level, subset)
            n_labels += len(ds)
            cpu += float(ds.cpu_s.sum()) + float(failed["cpu_s"].sum())
        return n_labels, cpu


class Index:
    """Evaluations looked up by role and metadata."""

    def __init__(self, records: list[dict]):
        self.records = records

    def find(self, role, model=None, level=None, n=None, seed=None, gamma_spec=None) -> list[dict]:
        return [
            r
            for r in self.records
            if r["role"] == role
            and (model is None or r["model"] == model)
            and (level is None or r["cheap_level"] == level)
            and (n is None or r["n_train"] == n)
            and (seed is None or r["seed"] == seed)
            and (gamma_spec is None or r["gamma_spec"] == gamma_spec)
        ]

    def one(self, *args, **kw) -> dict | None:
        found = self.find(*args, **kw)
        return found[0] if found else None


class _Costs:
    """Label costs a results row carries: its N accurate labels (CPU s per label in train order),
    the whole cheap pool of its level ("pool" methods) or the Δ level's own frames ("own")."""

    def __init__(
        self,
        train_npz: str,
        cheap_npz: dict[str, str],
        unlabelled_npz: str | None,
        datasets: dict,
        selected: dict[str, str] | None = None,
        accurate_level: str = "",
    ):
        train_ds = load_npz(train_npz)
        self.accurate_level = accurate_level
        self.selected_paths = dict(selected or {})  # "LEVEL:N:SEED" -> the frames selection s labelled by N
        self._selected: dict[str, object] = {}
        self.train_cpu = train_ds.cpu_s  # [n_train_max] CPU s per accurate label, in train order
        self.delta = _DeltaCheapCost(datasets, train_ds.frame_id)
        pools = {lvl: load_npz(p) for lvl, p in cheap_npz.items()}
        if unlabelled_npz:
            pools["unlabelled"] = load_npz(unlabelled_npz)
        self.pool_cpu_h = {lvl: float(ds.cpu_s.sum()) / 3600 for lvl, ds in pools.items()}
        self.pool_n = {lvl: len(ds) for lvl, ds in pools.items()}

    def selected(self, level: str, n: int, seed: int):
        """The frames the selection of `seed` had labelled at N, at `level` (a Dataset whose metadata
        holds what the selection cost)."""
        key = f"{level}:{n}:{seed}"
        if key not in self.selected_paths:
            raise ValueError(
                f"a model trained on selected frames (N = {n}, seed {seed}) needs them at {level!r} in --selected "
                f"({key}=PATH); the workflow passes them when selection.enabled"
            )
        if key not in self._selected:
            self._selected[key] = load_npz(self.selected_paths[key])
        return self._selected[key]

    def accurate(self, method, n: int, seed: int) -> tuple[float, float]:
        """CPU seconds of a row's N accurate labels, and of the selection that chose them (committee
        training and scoring; 0 for the random train[:N])."""
        if not method.selected_frames:
            return float(self.train_cpu[:n].sum()), 0.0
        ds = self.selected(self.accurate_level, n, seed)
        return float(ds.cpu_s.sum()), float(ds.meta.get("selected", {}).get("selection_cpu_s", 0.0))

    def cheap(self, method, level: str, n: int, seed: int = 0) -> tuple[int, float]:
        """(cheap labels, their CPU-hours) of a row of `method`."""
        n_cheap, cpu_h = 0, 0.0
        if "own" in method.cheap_labels:  # its level on its N training frames, the validation and test frames
            own = self.selected(level, n, seed) if method.selected_frames else None
            n_own, cpu_s = self.delta(level, n, own)
            n_cheap, cpu_h = n_own, cpu_s / 3600
        if "pool" in method.cheap_labels:
            n_cheap, cpu_h = n_cheap + self.pool_n.get(level, 0), cpu_h + self.pool_cpu_h.get(level, 0.0)
        return n_cheap, cpu_h


def _row(method, sel, idx: Index, costs: _Costs, n_bootstrap: int) -> dict:
    rec = sel.rec
    n = 0 if method.no_accurate_labels else rec["n_train"]
    acc_s, selection_s = costs.accurate(method, n, rec["seed"])
    acc_h = acc_s / 3600
    n_cheap, ch_h = costs.cheap(method, rec["cheap_level"], n, rec["seed"])
    train_h = (method.train_cpu_s(sel, idx) + selection_s) / 3600  # a selection's committees count as training
    ci = mean_interval(rec["errors"], n_boot=n_bootstrap)
    out = {
        **{k: v for k, v in rec.items() if k not in ("extra", "errors", "frame_id", "path", "role")},
        "method": method.name,
        "n_train": n,
        "n_accurate_labels": n,
        "n_cheap_labels": n_cheap,
        "accurate_label_cpu_h": acc_h,
        "cheap_label_cpu_h": ch_h,
        "data_cost_cpu_h": acc_h + ch_h,
        "train_cpu_h_total": train_h,
        "total_cpu_h": acc_h + ch_h + train_h,
        "force_mae_ci_low": ci.low,
        "force_mae_ci_high": ci.high,
        "_errors": rec["errors"],
        "_path": rec["path"],
    }
    if sel.n_train is not None:  # a row that stands for a setting at another N (bias-aware at the chosen γ)
        out.update(n_train=sel.n_train, n_accurate_labels=sel.n_train)
    return out


def gamma_table(idx: Index) -> pd.DataFrame:
    """Every γ candidate of every method that chooses γ (asteroid, corrected), model, cheap level, N
    and seed, with its validation loss, and the chosen one."""
    rows = []
    gamma_methods = [m for m in methods.METHODS.values() if m.gamma_role]
    for method, sel in ((m, sel) for m in gamma_methods for sel in chosen_candidates(idx, m.gamma_role)):
        for c in sorted(sel.candidates, key=lambda c: c["gamma"]):
            rows.append(
                dict(
                    method=method.name,
                    model=c["model"],
                    cheap_level=c["cheap_level"],
                    n_train=c["n_train"],
                    seed=c["seed"],
                    gamma_spec=c["gamma_spec"],
                    gamma=c["gamma"],
                    effective_frames=c["effective_frames"],
                    n_cheap=c["extra"].get("n_cheap"),
                    val_loss=_num(c["extra"].get("best_val_loss")),
                    chosen=c is sel.rec,
                )
            )
    return pd.DataFrame(rows, columns=GAMMA_COLUMNS)


def _add_reductions(out: list[dict], n_bootstrap: int) -> None:
    """Reductions against standard training of the same model, N and seed (paired over test frames)."""
    std = {(r["model"], r["n_train"], r["seed"]): r for r in out if r["method"] == "standard"}
    for r in out:
        base = std.get((r["model"], r["n_train"], r["seed"]))
        if r["method"] != "standard" and base is not None and r["n_train"] > 0:
            ci = reduction_interval(r["_errors"], base["_errors"], n_boot=n_bootstrap)
            r.update(reduction_vs_standard=ci.estimate, reduction_ci_low=ci.low, reduction_ci_high=ci.high)


def results_table(idx: Index, costs: _Costs, molecule: str, n_bootstrap: int = 2000) -> pd.DataFrame:
    """results.csv (with the per-frame errors and paths as _errors and _path): one row per
    registered method's selection (pipeline/methods), with costs and paired reductions."""
    out = [_row(m, sel, idx, costs, n_bootstrap) for m in methods.METHODS.values() for sel in m.select(idx)]
    _add_reductions(out, n_bootstrap)
    results = pd.DataFrame(out)
    for c in COLUMNS:
        if c not in results.columns:
            results[c] = math.nan
    results["molecule"] = molecule
    return results.sort_values(["model", "method", "cheap_level", "n_train", "seed"]).reset_index(drop=True)


def _selection_table(csvs, pool_npz: str | None) -> pd.DataFrame:
    """Every selection round's candidates and picks, with each candidate's energy (relative to the
    pool's mean) and RMS force at the pool's level, where the round did not record them."""
    table = _concat_csvs(csvs, records.SELECTION).reindex(columns=records.SELECTION)
    if table.empty or pool_npz is None:
        return table
    pool = load_npz(pool_npz)
    row = {int(f): i for i, f in enumerate(pool.frame_id)}
    idx = table["frame_id"].map(row)  # NaN: a candidate whose label failed
    known = idx.notna().to_numpy()
    energy = units.ev_to_kcal(pool.E - pool.E.mean())  # [n_pool]
    force_rms = np.sqrt((units.ev_to_kcal(pool.F) ** 2).mean(axis=(1, 2)))  # [n_pool]
    for col, values in (("cheap_energy_kcal", energy), ("cheap_force_rms_kcal", force_rms)):
        missing = known & table[col].isna().to_numpy()
        table.loc[missing, col] = values[idx[missing].astype(int).to_numpy()]
    return table


def _concat_csvs(paths, columns=None) -> pd.DataFrame:
    if not paths:
        return pd.DataFrame(columns=columns)
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def collect(
    *,
    molecule: str,
    evals: list[str],
    train_npz: str,
    cheap_npz: dict[str, str],
    unlabelled_npz: str | None,
    datasets: dict[str, str],
    stability_csvs: list[str],
    out_results: str,
    out_gamma: str,
    out_costs: str,
    out_stability: str,
    bias_csvs: list[str] = (),
    out_reductions: str | None = None,
    out_bias: str | None = None,
    out_bias_summary: str | None = None,
    out_forcefield: str | None = None,
    accurate_level: str = "",
    prmtop: str | None = None,
    corrected_csvs: list[str] = (),
    out_corrected: str | None = None,
    selected: dict[str, str] | None = None,
    selection_csvs: list[str] = (),
    selection_val_csvs: list[str] = (),
    out_selection: str | None = None,
    out_selection_validation: str | None = None,
    selection_pool: str | None = None,
    n_bootstrap: int = 2000,
) -> pd.DataFrame:
    from .bias_diagnostic import COLUMNS as BIAS_COLUMNS
    from .bias_diagnostic import summarise

    idx = Index([evaluation_record(p) for p in evals])
    if len({tuple(r["frame_id"]) for r in idx.records}) > 1:
        raise ValueError("the evaluations were scored on different test sets; rerun the evaluate rules")
    costs = _Costs(train_npz, cheap_npz, unlabelled_npz, datasets, selected, accurate_level)
    results = results_table(idx, costs, molecule, n_bootstrap)
    bias_frames = _concat_csvs(bias_csvs, BIAS_COLUMNS)
    tables = [
        (out_results, results[COLUMNS]),
        (out_gamma, gamma_table(idx)),
        (out_costs, _label_cost_rows(datasets)),
        (out_stability, _concat_csvs(stability_csvs)),
        (out_reductions, pooled_reductions(results, n_bootstrap)),
        (out_bias, bias_frames),
        (out_bias_summary, summarise(bias_frames)),
        (out_corrected, _concat_csvs(corrected_csvs, records.CORRECTED_UNCERTAINTY)),
        (out_selection, _selection_table(selection_csvs, cheap_npz.get(selection_pool or ""))),
        (out_selection_validation, _concat_csvs(selection_val_csvs, records.SELECTION_VALIDATION)),
    ]
    for path, table in tables:
        if path:
            atomic_write(path, lambda tmp, t=table: t.to_csv(tmp, index=False))
    recommended = recommend(results)
    if out_forcefield and recommended is not None:
        export_forcefield(recommended, results, molecule, accurate_level, out_forcefield, prmtop=prmtop)
    return results[COLUMNS]


def _baselines(res: pd.DataFrame, model: str, method: str, lvl, n: int) -> list[tuple[str, pd.DataFrame]]:
    """What a (model, method, level, N) group is compared with: standard training of the same model
    and N (a method with a model of its own, sGDML or SO3LR: of every neural model of
    training.models), then each method of its `compare_with` (the same model, level and N;
    bias-corrected pre-training: Δ-learning)."""
    if methods.get(method).own_model:
        own = {m.own_model for m in methods.METHODS.values() if m.own_model}
        neural = sorted(set(res.loc[res["method"] == "standard", "model"]) - own)
        return [
            ("standard", res[(res["model"] == m) & (res["method"] == "standard") & (res["n_train"] == n)])
            for m in neural
        ]
    same = (res["model"] == model) & (res["n_train"] == n)
    out = [("standard", res[same & (res["method"] == "standard")])]
    for other in methods.get(method).compare_with:
        out.append((other, res[same & (res["method"] == other) & (res["cheap_level"] == lvl)]))
    return out


def pooled_reductions(results: pd.DataFrame, n_bootstrap: int = 2000) -> pd.DataFrame:
    """Every method against standard training of the same model and N, all seeds pooled
    (seeds present for both, matched), methods with a model of their own (sGDML, sGDML Δ, SO3LR) against each model's
    standard training, and a method against those of its `compare_with` (e.g. bias-corrected
    pre-training against Δ-learning: a negative reduction is how much worse it is)."""
    rows = []
    res = results[results["n_train"] > 0]
    for (model, method, lvl, n), g in res.groupby(["model", "method", "cheap_level", "n_train"], sort=True):
        if method == "standard":
            continue
        own_model = bool(methods.get(method).own_model)
        kernel = own_model and g["seed"].nunique() == 1  # one deterministic model: paired with every seed
        for base_name, b in _baselines(res, model, method, lvl, n):
            seeds = sorted(set(g["seed"]) & set(b["seed"])) if not kernel else sorted(b["seed"])
            if not seeds:
                continue
            a_err = np.stack(
                [g[g["seed"] == s]["_errors"].iloc[0] if not kernel else g["_errors"].iloc[0] for s in seeds]
            )
            b_err = np.stack([b[b["seed"] == s]["_errors"].iloc[0] for s in seeds])
            ci = reduction_interval(a_err, b_err, n_boot=n_bootstrap)
            base_model = b["model"].iloc[0]
            rows.append(
                dict(
                    model=model if not own_model else f"{model} vs {base_model}",
                    method=method,
                    cheap_level=lvl,
                    n_train=n,
                    baseline=f"{base_model} {base_name}",
                    n_seeds=len(seeds),
                    n_test=a_err.shape[1],
                    force_mae_kcal=float(a_err.mean()),
                    baseline_force_mae_kcal=float(b_err.mean()),
                    reduction=ci.estimate,
                    reduction_ci_low=ci.low,
                    reduction_ci_high=ci.high,
                    significant=ci.significant,
                )
            )
    return pd.DataFrame(rows, columns=REDUCTION_COLUMNS)


def recommend(results: pd.DataFrame) -> pd.Series | None:
    """The recommended force field: among the models this package runs as ASE calculators
    (FORCEFIELD_METHODS: those ending on accurate data, and the neural Δ models), at the largest N,
    the one with the lowest validation force MAE on the accurate validation set (never test error)."""
    cand = results[results["method"].isin(FORCEFIELD_METHODS) & results["val_force_mae_kcal"].notna()]
    if cand.empty:
        return None
    cand = cand[cand["n_train"] == cand["n_train"].max()]
    return cand.sort_values(["val_force_mae_kcal", "method"]).iloc[0]


def _optional(x) -> float | None:
    return None if pd.isna(x) else float(x)


def _alternative(row: pd.Series, best: pd.Series) -> dict:
    """Another model trained on the same accurate labels, as the metadata names it."""
    return {
        "method": row["method"],
        "model": row["model"],
        "cheap_level": row["cheap_level"] or None,
        "seed": int(row["seed"]),
        "val_force_mae_kcal_per_mol_A": float(row["val_force_mae_kcal"]),
        "better_on_validation": bool(row["val_force_mae_kcal"] < best["val_force_mae_kcal"]),
        "predict_cpu_s_per_frame": _optional(row["predict_cpu_s_per_frame"]),
        "model_path": str(Path(row["_path"]).with_name("model.pt")),
    }


def export_forcefield(
    best: pd.Series, results: pd.DataFrame, molecule: str, accurate_level: str, out_dir, prmtop: str | None = None
) -> None:
    """Copy the recommended model to out_dir/model.pt with metadata.json beside it.

    A Δ model also gets what it needs at every call: its cheap level (the model file carries the
    level's config entry) and, when that level is GAFF2, the molecule's prmtop (out_dir/gaff2.prmtop).
    The metadata names the best model of the other kind at the same N (a plain neural force field
    when a Δ model is recommended, the best Δ model otherwise) and sGDML, when they exist."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = Path(best["_path"]).with_name("model.pt")
    is_delta = best["method"] in NEURAL_DELTA_METHODS  # a correction: its cheap level runs at every call
    cheap_entry = json.loads(Path(best["_path"]).read_text())["model_extra"]["cheap_entry"] if is_delta else None
    needs_prmtop = is_delta and cheap_entry.get("engine") == "empirical"
    if needs_prmtop and not prmtop:
        raise ValueError(
            f"the recommended Δ model ({best['model']} on {best['cheap_level']}) needs the molecule's GAFF2 "
            "prmtop at every call; pass it to collect (--prmtop)"
        )
    meta = {
        "molecule": molecule,
        "model": best["model"],
        "method": best["method"],
        "accurate_level": accurate_level,
        "cheap_level": best["cheap_level"] or None,
        "n_train": int(best["n_train"]),
        "seed": int(best["seed"]),
        "gamma_kcal_per_mol_A": _optional(best["gamma"]),
        "gamma_spec": best["gamma_spec"] or None,
        "chosen_by": "lowest validation force MAE (accurate validation set) at the largest N",
        "val_force_mae_kcal_per_mol_A": float(best["val_force_mae_kcal"]),
        "expected_test_force_mae_kcal_per_mol_A": float(best["force_mae_kcal"]),
        "test_force_mae_95ci": [float(best["force_mae_ci_low"]), float(best["force_mae_ci_high"])],
        "predict_cpu_s_per_frame": _optional(best["predict_cpu_s_per_frame"]),
        "energy_unit": "kcal/mol",
        "length_unit": "Ang",
        "source_model": str(model_path),
        "calculator": "DeltaCalculator" if is_delta else "ModelCalculator",
        "load": "from pipeline.evaluation.calculator import load_forcefield; load_forcefield('forcefield')",
    }
    if is_delta:
        # The cheap level runs at every call: a user must know what it is and what it costs.
        meta["cheap_level_entry"] = cheap_entry
        meta["prmtop"] = "gaff2.prmtop" if needs_prmtop else None
    same_n = results[(results["n_train"] == best["n_train"]) & results["val_force_mae_kcal"].notna()]
    for kernel in KERNEL_METHODS:
        sg = same_n[same_n["method"] == kernel].sort_values("val_force_mae_kcal")
        if len(sg):
            # Kernel models are not exported (they need sgdml's own calculator), but a user must
            # know when one did better on the same validation data.
            meta[f"{kernel}_same_n"] = {
                "val_force_mae_kcal_per_mol_A": float(sg["val_force_mae_kcal"].iloc[0]),
                "better_on_validation": bool(sg["val_force_mae_kcal"].iloc[0] < best["val_force_mae_kcal"]),
                "model": str(Path(sg["_path"].iloc[0]).with_name("sgdml_model.npz")),
            }
            if kernel == "delta_sgdml":
                meta[f"{kernel}_same_n"]["cheap_level"] = sg["cheap_level"].iloc[0]
    # The best plain force field (no cheap level at run time) and the best Δ model at the same N, with
    # their validation errors and CPU per call, whichever is recommended: a user chooses knowingly.
    for key, kind in (("plain_same_n", PRODUCT_METHODS), ("delta_same_n", NEURAL_DELTA_METHODS)):
        other = same_n[same_n["method"].isin(kind)]
        if len(other):
            meta[key] = _alternative(other.sort_values(["val_force_mae_kcal", "method"]).iloc[0], best)
    # The same method's models of the other seeds (same model, level and N): the committee whose force
    # disagreement the calculator reports at every call (pipeline/evaluation/calculator.py).
    members = results[
        (results["method"] == best["method"])
        & (results["model"] == best["model"])
        & (results["cheap_level"].fillna("") == (best["cheap_level"] or ""))
        & (results["n_train"] == best["n_train"])
        & (results["seed"] != best["seed"])
    ].sort_values("seed")
    committee_dir = out_dir / "committee"
    if committee_dir.exists():
        shutil.rmtree(committee_dir)  # members of an earlier export
    if len(members):
        meta["committee"] = {
            "members": [f"committee/s{int(s)}.pt" for s in members["seed"]],
            "seeds": [int(s) for s in members["seed"]],
            "reports": "calc.results['force_disagreement'] (eV/Å) at every call; the energy and forces are model.pt's",
        }
        for s, path in zip(members["seed"], members["_path"]):
            src = Path(path).with_name("model.pt")
            atomic_write(committee_dir / f"s{int(s)}.pt", lambda tmp, src=src: shutil.copyfile(src, tmp))
    if needs_prmtop:
        atomic_write(out_dir / "gaff2.prmtop", lambda tmp: shutil.copyfile(prmtop, tmp))
    atomic_write(out_dir / "model.pt", lambda tmp: shutil.copyfile(model_path, tmp))
    text = json.dumps(meta, indent=2)
    atomic_write(out_dir / "metadata.json", lambda tmp: Path(tmp).write_text(text + "\n"))
