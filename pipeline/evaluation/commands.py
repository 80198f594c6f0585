"""Evaluation commands of `python -m pipeline`."""

from __future__ import annotations

import json


def _json(text):
    return json.loads(text)


def _device(name: str) -> str:
    from ..training.stages import resolve_device

    return str(resolve_device(name))


def _run_evaluate(a):
    from .predict import evaluate_model

    if not len(a.model) == len(a.out_json) == len(a.out_pred):
        raise SystemExit(
            f"evaluate: {len(a.model)} --model, {len(a.out_json)} --out-json and {len(a.out_pred)} --out-pred "
            "files; give one of each per model, in the same order"
        )
    device = _device(a.device)
    for model, out_json, out_pred in zip(a.model, a.out_json, a.out_pred, strict=True):
        evaluate_model(model, a.test, out_json, out_pred, device=device, batch_size=a.batch_size)


def _run_sgdml(a):
    from .sgdml_baseline import run_sgdml_baseline

    s = a.sgdml
    run_sgdml_baseline(
        a.train,
        a.val,
        a.test,
        a.out_json,
        a.out_pred,
        sigmas=tuple(s["sigmas"]),
        max_processes=a.processes,
        out_model=a.out_model,
        n_train=a.n_train,
    )


def _run_md_stability(a):
    from ..data import atomic_write, load_npz
    from ..models import load_model
    from .calculator import calculator_of
    from .collect import best_by_validation
    from .md_stability import run_stability

    keys = (
        "n_runs",
        "n_steps",
        "temperature_K",
        "timestep_fs",
        "friction_per_fs",
        "bond_factor",
        "min_distance_A",
        "max_energy_change_kcal_per_atom",
    )
    kw = {k: a.md_stability[k] for k in keys if k in a.md_stability}
    # Several candidates (the gamma grid): run the one ASTEROID selects, by validation loss.
    extras = {p: dict(load_model(p).extra or {}) for p in a.model}
    chosen = best_by_validation(extras) if len(a.model) > 1 else a.model[0]
    device = _device(a.device)
    z = load_npz(a.start).z  # a Δ model's cheap level is called at every step
    model = calculator_of(chosen, z=z, prmtop=a.prmtop, device=device, committee=a.committee, threads=None)
    df = run_stability(model, a.start, seed=a.seed, device=device, num_threads=a.threads, **kw)
    for key, value in {**a.label, "n_steps": kw.get("n_steps"), "model_path": chosen}.items():
        df[key] = value
    atomic_write(a.out, lambda tmp: df.to_csv(tmp, index=False))


def _run_evaluate_delta(a):
    from .delta_prediction import evaluate_delta

    evaluate_delta(
        a.model,
        a.test,
        a.cheap_test,
        a.out_json,
        a.out_pred,
        prmtop=a.prmtop,
        device=_device(a.device),
        batch_size=a.batch_size,
    )


def _run_sgdml_delta(a):
    from .delta_prediction import run_sgdml_delta

    s = a.sgdml
    run_sgdml_delta(
        train_npz=a.train,
        cheap_train_npz=a.cheap_train,
        val_npz=a.val,
        cheap_val_npz=a.cheap_val,
        test_npz=a.test,
        cheap_test_npz=a.cheap_test,
        n_train=a.n_train,
        cheap_level=a.cheap_level,
        cheap_entry=a.cheap_entry,
        out_json=a.out_json,
        out_predictions_npz=a.out_pred,
        out_model=a.out_model,
        prmtop=a.prmtop,
        sigmas=tuple(s["sigmas"]),
        max_processes=a.processes,
    )


def _run_collect(a):
    from .collect import collect

    collect(
        molecule=a.molecule,
        evals=a.evals,
        train_npz=a.train,
        cheap_npz=dict(kv.split("=", 1) for kv in a.cheap),
        unlabelled_npz=a.unlabelled,
        datasets=dict(kv.split("=", 1) for kv in a.datasets),
        stability_csvs=a.stability,
        out_results=a.out_results,
        out_gamma=a.out_gamma,
        out_costs=a.out_costs,
        out_stability=a.out_stability,
        bias_csvs=a.bias_diagnostics,
        out_reductions=a.out_reductions,
        out_bias=a.out_bias,
        out_bias_summary=a.out_bias_summary,
        out_forcefield=a.out_forcefield,
        accurate_level=a.accurate_level,
        prmtop=a.prmtop,
        corrected_csvs=a.corrected_diagnostics,
        out_corrected=a.out_corrected,
        selected=dict(kv.split("=", 1) for kv in a.selected),
        selection_csvs=a.selection_scores,
        selection_val_csvs=a.selection_validation,
        out_selection=a.out_selection,
        out_selection_validation=a.out_selection_validation,
        selection_pool=a.selection_pool,
    )


def _run_bias_diagnostic(a):
    from .bias_diagnostic import bias_diagnostic

    bias_diagnostic(
        model_path=a.model,
        cheap_val_npz=a.cheap_val,
        accurate_val_npz=a.accurate_val,
        cheap_level=a.cheap_level,
        out_csv=a.out,
        device=_device(a.device),
    )


def _run_report(a):
    import glob

    import yaml

    from ..data import atomic_write
    from ..report.html import build_report

    text = yaml.safe_dump(a.config_json, sort_keys=False)
    atomic_write(a.out_config, lambda tmp: open(tmp, "w").write(text))
    benchmarks = sorted(glob.glob(f"{a.benchmarks_dir}/**/*.tsv", recursive=True))
    build_report(
        a.results,
        a.label_costs,
        a.gamma,
        a.stability,
        benchmarks,
        a.out_config,
        a.out_html,
        a.fig_dir,
        a.molecule,
        reductions_csv=a.reductions,
        bias_csv=a.bias,
        bias_summary_csv=a.bias_summary,
        corrected_csv=a.corrected,
        selection_csv=a.selection,
        selection_validation_csv=a.selection_validation,
        forcefield_dir=a.forcefield,
        label_plan_csv=a.label_plan,
    )


def _evaluation_args(s, model_help: str, nargs: str | None = None) -> None:
    """The arguments every test-set evaluation command takes (nargs "+": several models, each with
    its own --out-json and --out-pred, in the same order)."""
    s.add_argument("--model", required=True, nargs=nargs, help=model_help)
    s.add_argument("--test", required=True, help="accurate test set npz (eV, eV/A)")
    s.add_argument("--out-json", required=True, nargs=nargs)
    s.add_argument("--out-pred", required=True, nargs=nargs)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--device", default="auto")


def add_commands(sub) -> None:
    _add_test_set_commands(sub)
    _add_md_stability_command(sub)
    _add_delta_commands(sub)
    _add_collect_command(sub)
    _add_bias_diagnostic_command(sub)
    _add_report_command(sub)


def _add_test_set_commands(sub) -> None:
    """evaluate (a trained model) and sgdml (the kernel baseline) on the test set."""
    s = sub.add_parser("evaluate", help="test-set errors of a trained model (JSON + per-frame predictions)")
    _evaluation_args(s, "the model file(s)", nargs="+")
    s.set_defaults(func=_run_evaluate)

    s = sub.add_parser("sgdml", help="sGDML baseline on the accurate data, sigma chosen on --val")
    s.add_argument("--train", required=True)
    s.add_argument("--n-train", type=int, required=True, help="train on the first N frames")
    s.add_argument("--val", required=True)
    s.add_argument("--test", required=True)
    s.add_argument("--sgdml", type=_json, default={}, help="the config's evaluation.sgdml section as JSON")
    s.add_argument("--out-json", required=True)
    s.add_argument("--out-pred", required=True)
    s.add_argument("--out-model", default=None)
    s.add_argument("--processes", type=int, default=None, help="sgdml worker processes (default: all cores)")
    s.set_defaults(func=_run_sgdml)


def _add_md_stability_command(sub) -> None:
    s = sub.add_parser("md-stability", help="Langevin MD runs with a trained model; one CSV row per run")
    s.add_argument(
        "--model",
        nargs="+",
        required=True,
        help="model file; several: the one with the lowest validation loss (ASTEROID's gamma choice)",
    )
    s.add_argument(
        "--label",
        type=_json,
        required=True,
        help='columns identifying the run: {"model": ..., "method": ..., "cheap_level": ..., '
        '"n_train": ..., "seed": ...}',
    )
    s.add_argument("--start", required=True, help="npz whose frames are the start geometries")
    s.add_argument(
        "--md-stability", type=_json, default={}, help="the config's evaluation.md_stability section as JSON"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="CSV")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    s.add_argument("--prmtop", default=None, help="GAFF2 prmtop, for a Δ model whose cheap level is GAFF2")
    s.add_argument(
        "--committee",
        nargs="*",
        default=[],
        help="the same method's models of other seeds: each step records their force disagreement",
    )
    s.set_defaults(func=_run_md_stability)


def _add_delta_commands(sub) -> None:
    """evaluate-delta and sgdml-delta: test-set errors of Δ models (cheap labels + a correction)."""
    s = sub.add_parser("evaluate-delta", help="test-set errors of a Δ model (cheap labels + correction)")
    _evaluation_args(s, "a model trained by train-delta")
    s.add_argument("--cheap-test", required=True, help="the test frames labelled at the model's cheap level")
    s.add_argument("--prmtop", default=None, help="GAFF2 prmtop (cheap level empirical only)")
    s.set_defaults(func=_run_evaluate_delta)

    s = sub.add_parser("sgdml-delta", help="sGDML as a kernel Δ-model on accurate - cheap, sigma chosen on --val")
    for flag in ("--train", "--cheap-train", "--val", "--cheap-val", "--test", "--cheap-test"):
        s.add_argument(flag, required=True)
    s.add_argument("--n-train", type=int, required=True, help="train on the first N accurate frames")
    s.add_argument("--cheap-level", required=True)
    s.add_argument("--cheap-entry", type=_json, required=True, help="the cheap level's config entry as JSON")
    s.add_argument("--prmtop", default=None, help="GAFF2 prmtop (cheap level empirical only)")
    s.add_argument("--sgdml", type=_json, default={}, help="the config's evaluation.sgdml section as JSON")
    s.add_argument("--out-json", required=True)
    s.add_argument("--out-pred", required=True)
    s.add_argument("--out-model", default=None)
    s.add_argument("--processes", type=int, default=None)
    s.set_defaults(func=_run_sgdml_delta)


def _add_collect_command(sub) -> None:
    s = sub.add_parser("collect", help="results.csv, gamma selection, label costs and stability tables")
    s.add_argument("--molecule", required=True)
    s.add_argument(
        "--evals", nargs="+", required=True, help="eval.json files (roles read from the model metadata inside)"
    )
    s.add_argument("--train", required=True, help="accurate train dataset (label costs per frame)")
    s.add_argument("--cheap", nargs="*", default=[], help="LEVEL=PATH of cheap pools")
    s.add_argument("--unlabelled", default=None)
    s.add_argument("--datasets", nargs="+", required=True, help="LEVEL:SUBSET=PATH of every labelled dataset")
    s.add_argument("--stability", nargs="*", default=[])
    s.add_argument("--out-results", required=True)
    s.add_argument("--out-gamma", required=True)
    s.add_argument("--out-costs", required=True)
    s.add_argument("--out-stability", required=True)
    s.add_argument("--bias-diagnostics", nargs="*", default=[], help="per-frame bias diagnostic CSVs")
    s.add_argument("--corrected-diagnostics", nargs="*", default=[], help="u_j rankings of bias-corrected pre-training")
    s.add_argument("--out-corrected", default=None, help="corrected_uncertainty.csv")
    s.add_argument("--selected", nargs="*", default=[], help="LEVEL:N:SEED=PATH of the frames each selection labelled")
    s.add_argument("--selection-scores", nargs="*", default=[], help="every selection round's candidate scores")
    s.add_argument("--selection-validation", nargs="*", default=[], help="the committees on the validation frames")
    s.add_argument("--selection-pool", default=None, help="the cheap level (of --cheap) whose pool the candidates are")
    s.add_argument("--out-selection", default=None, help="selection.csv")
    s.add_argument("--out-selection-validation", default=None, help="selection_validation.csv")
    s.add_argument("--out-reductions", required=True)
    s.add_argument("--out-bias", required=True)
    s.add_argument("--out-bias-summary", required=True)
    s.add_argument("--out-forcefield", required=True, help="directory for the recommended force field")
    s.add_argument("--accurate-level", default="", help="name of the accurate level (recorded in the metadata)")
    s.add_argument("--prmtop", default=None, help="GAFF2 prmtop, exported with a recommended Δ model on GAFF2")
    s.set_defaults(func=_run_collect)


def _add_bias_diagnostic_command(sub) -> None:
    s = sub.add_parser("bias-diagnostic", help="estimated bias B_j against the true cheap-label error (validation)")
    s.add_argument("--model", required=True, help="the stage-1 (standard) model")
    s.add_argument("--cheap-val", required=True, help="validation frames labelled at the cheap level")
    s.add_argument("--accurate-val", required=True, help="validation frames labelled at the accurate level")
    s.add_argument("--cheap-level", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--device", default="auto")
    s.set_defaults(func=_run_bias_diagnostic)


def _add_report_command(sub) -> None:
    s = sub.add_parser("report", help="results/<molecule>/report.html and its figures")
    s.add_argument("--molecule", required=True)
    s.add_argument("--results", required=True)
    s.add_argument("--label-costs", required=True)
    s.add_argument("--label-plan", default=None, help="label_plan.csv: the cost estimate made at the start")
    s.add_argument("--gamma", required=True)
    s.add_argument("--stability", required=True)
    s.add_argument("--reductions", default=None)
    s.add_argument("--bias", default=None, help="bias_diagnostic.csv (per validation frame)")
    s.add_argument("--bias-summary", default=None, help="bias_correlation.csv")
    s.add_argument("--corrected", default=None, help="corrected_uncertainty.csv")
    s.add_argument("--selection", default=None, help="selection.csv")
    s.add_argument("--selection-validation", default=None, help="selection_validation.csv")
    s.add_argument("--forcefield", default=None, help="directory of the recommended force field")
    s.add_argument("--benchmarks-dir", required=True, help="Snakemake benchmark files of the molecule (*.tsv)")
    s.add_argument("--config-json", type=_json, required=True, help="the run's effective config, shown in the report")
    s.add_argument("--out-config", required=True, help="where to save that config as YAML")
    s.add_argument("--out-html", required=True)
    s.add_argument("--fig-dir", required=True)
    s.set_defaults(func=_run_report)
