"""The benchmark scripts run on a finished (tiny) run and print their tables."""

import re

import pandas as pd
import pytest

from .conftest import bench, bench_run, snakemake


def test_accuracy_per_cost_tables(finished_run):
    workdir, _ = finished_run
    out = bench(workdir, "accuracy_per_cost.py")
    assert (
        "| N | standard | ASTEROID (empirical) | ASTEROID (xtb) | score matching + FT | sGDML | Δ (xtb) | "
        "Δ sGDML (xtb) |"
    ) in out
    assert "| Δ (xtb) | 4 |" in out and "## Prediction cost per MD step" in out
    assert "| ASTEROID (xtb) | 4 |" in out and "error reduction vs standard [95% CI]" in out
    assert "## Training cost per method" in out


def test_paired_scores_of_a_model_against_the_runs_evaluations(finished_run):
    """A model scored by hand on the run's test frames matches its own eval.json: 0% against
    itself, and its reduction against Δ as results.csv's errors give it."""
    workdir, _ = finished_run
    mol = workdir / "results/ethanol"
    std = mol / "models/egnn/standard/N8_s0"
    out = bench(
        workdir,
        "paired_scores.py",
        "--data",
        str(mol / "data/ccsd_t"),
        "--baseline",
        f"standard={std / 'eval.json'}",
        "--baseline",
        f"delta={mol / 'delta/egnn/xtb/N8_s0/eval.json'}",
        "--model",
        f"again={std / 'model.pt'}",
    )
    res = pd.read_csv(mol / "results.csv").set_index(["method", "n_train", "seed"])
    mae, delta = res.loc[("standard", 8, 0), "force_mae_kcal"], res.loc[("delta", 8, 0), "force_mae_kcal"]
    row = next(line for line in out.splitlines() if line.startswith("| again |"))
    assert f"| again | {mae:.2f} [" in row and re.search(r"\| [+-]0% \[[+-]0, [+-]0\] n\.s\. \|", row)
    assert f"{100 * (1 - mae / delta):+.0f}% [" in row
    assert "- again: validation" in out


def test_model_comparison_pairs_models_with_sgdml_on_the_same_frames(finished_run):
    """The tiny run's errors come back as results.csv has them, and every model's method is paired
    with sGDML at each N (the e2e run trains one neural model, so no model-against-model rows)."""
    workdir, _ = finished_run
    out = bench(workdir, "model_comparison.py", "--models", "egnn")
    res = pd.read_csv(workdir / "results/ethanol/results.csv")
    std = res[(res["method"] == "standard") & (res["n_train"] == 8)]["force_mae_kcal"].mean()
    sg = res[(res["method"] == "sgdml") & (res["n_train"] == 8)]["force_mae_kcal"].iloc[0]
    row = next(line for line in out.splitlines() if line.startswith("| 8 |"))
    assert f"| {std:.2f} [" in row and f"| {sg:.2f} [" in row
    for method in ("EGNN standard", "EGNN + ASTEROID (xtb)", "Δ-EGNN (xtb)"):
        assert f"| {method} | sGDML | 8 |" in out and f"| {method} | sGDML | 4 |" in out
    assert "## Accuracy and the whole cost" in out
    cost = res[(res["method"] == "standard") & (res["n_train"] == 8)]["total_cpu_h"].mean()
    row = next(line for line in out.splitlines() if line.startswith("| EGNN standard | 8 |"))
    assert row.rstrip(" |").endswith(f"{60 * cost:.1f}")


def test_schedule_replay_reproduces_the_finished_run(finished_run, tmp_path):
    """Replaying the run's own start order on its 2 cores gives back its measured wall time (the
    simulation is sound), and the workflow's priorities are read from a dry run."""
    workdir, _ = finished_run
    log = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))[0]  # the first, whole run
    dry = snakemake(workdir, "-n", "-F", "results/ethanol/report.html")
    dryrun = tmp_path / "dryrun.txt"
    dryrun.write_text(dry.stdout + dry.stderr)
    out = bench(workdir, "schedule_replay.py", "--log", str(log), "--dryrun", str(dryrun), "--cores", "2")
    measured = float(re.search(r"measured makespan ([\d.]+) min", out).group(1))
    replay = float(re.search(r"^\| 2 \| ([\d.]+) \|", out, re.M).group(1))
    assert measured > 0 and 0.8 * measured <= replay <= measured + 0.05
    assert int(re.search(r"(\d+) jobs have a priority", out).group(1)) > 0


def test_stage_table_of_a_finished_run(finished_run):
    workdir, _ = finished_run
    out = bench(workdir, "pipeline_overhead.py", "--no-rerun")
    for rule in ("md", "label_chunk", "train_standard", "finetune_cheap", "report"):
        assert f"| {rule} |" in out


def test_asteroid_ablation_on_validation(finished_run):
    workdir, _ = finished_run
    out = bench(
        workdir,
        "asteroid_ablation.py",
        "--quick",
        "--config",
        "config.yaml",
        "config-tiny.yaml",
        "--sizes",
        "4",
        "--pool-sizes",
        "6",
        "--jobs",
        "1",
    )
    assert "### N = 4" in out and "| standard |" in out and "| asteroid g=1 pool=6 ft=cfg |" in out


def test_selection_curve_sets_selected_frames_against_random_ones(finished_run):
    """The tiny run's errors come back as results.csv has them (γ chosen on validation for ASTEROID
    and corrected pre-training), for random and selected frames, and the selected N = 8 is paired
    with random N = 8 (round 0, N = 4, has no selected run)."""
    workdir, _ = finished_run
    out = bench(workdir, "selection_curve.py", "--run", str(workdir), "--sizes", "4", "8", "--seeds", "0")
    res = pd.read_csv(workdir / "results/ethanol/results.csv", keep_default_na=False)
    res = res[(res.model == "egnn") & res.cheap_level.isin(["", "xtb"])].set_index(["method", "n_train", "seed"])
    for method, label in (("standard", "standard"), ("asteroid", "ASTEROID"), ("corrected", "corrected pre-training")):
        rand = res.loc[(method, 8, 0), "force_mae_kcal"]
        sel = res.loc[(f"{method}_selected", 8, 0), "force_mae_kcal"]
        row = next(line for line in out.splitlines() if line.startswith(f"| {label} | 8 |"))
        assert f"| {rand:.2f} [" in row and f"| {sel:.2f} [" in row
    assert "| standard | 4 |" in out and re.search(r"\| standard \| 4 \| [0-9.]+ \[.*\| — \|", out)
    assert re.search(r"\| Δ \| 8 \| 8 \| 1 \| [+-]\d+% \[", out)
    # the same tables again on the test frames in the top tenth of their accurate energy
    _, tail = out.split("test frames above the 90% quantile of their accurate energy", 1)
    assert "| standard | 8 |" in tail and re.search(r"\| Δ \| 8 \| 8 \| 1 \| [+-]\d+% \[", tail)


def test_selection_picks_compares_each_round_with_top_n_by_disagreement(finished_run):
    """Every selection round of the tiny run comes back with its picked, top-n and random batches of
    as many frames as selection.csv says it picked."""
    workdir, _ = finished_run
    out = bench(workdir, "selection_picks.py", "--run", str(workdir))
    sel = pd.read_csv(workdir / "results/ethanol/selection.csv")
    for (seed, round_), g in sel.groupby(["seed", "round"]):
        n = int((g["pick_order"] >= 0).sum())
        for batch in ("picked (with diversity)", "top-n by disagreement", "random"):
            assert f"| {seed} | {round_} | {batch} | {n} |" in out


def test_method_errors_export_keeps_results_csv_and_merges_by_model(finished_run, tmp_path):
    """The per-frame export reproduces results.csv's per-model errors and reductions.csv's pooled
    reductions; a second export of the same run replaces its rows instead of adding them, and an
    export on other test frames is refused."""
    workdir, _ = finished_run
    mol = workdir / "results/ethanol"
    out = tmp_path / "errors.csv.gz"
    args = ["export", "--run", str(mol), "--accurate-level", "ccsd_t", "--cheap", "xtb", "empirical", "--out", str(out)]
    exported = bench(workdir, "method_errors.py", *args)
    assert "training CPU unknown" not in exported  # the whole workflow evaluates every run a cost counts
    first = pd.read_csv(out)
    bench(workdir, "method_errors.py", *args)
    again = pd.read_csv(out)
    assert len(again) == len(first) > 0
    res = pd.read_csv(mol / "results.csv", keep_default_na=False)  # no cheap level: "" in both
    key = ["method", "cheap_level", "n_train", "seed"]
    per_model = pd.read_csv(out, keep_default_na=False).groupby(key)["force_mae_kcal"].mean()
    assert len(per_model) == len(res)
    for r in res.itertuples():
        assert per_model[(r.method, r.cheap_level, r.n_train, r.seed)] == pytest.approx(r.force_mae_kcal, rel=1e-6)
    table = bench(workdir, "method_errors.py", "table", str(out))
    red = pd.read_csv(mol / "reductions.csv")
    row = red[(red["method"] == "delta") & (red["n_train"] == 8)].iloc[0]
    assert f"{100 * row.reduction:+.1f}% [" in table
    # compare: the same pair named explicitly gives the same reduction; a missing N names what exists
    pair = bench(workdir, "method_errors.py", "compare", f"{out}:delta:8", f"{out}:standard:8")
    assert f"{100 * row.reduction:+.1f}% [" in pair
    r = bench_run(workdir, "method_errors.py", "compare", f"{out}:delta:8", f"{out}:standard:9")
    assert r.returncode != 0 and "('standard', '8', '')" in r.stderr
    # another test set: refused, the file unchanged
    moved = first.assign(test_set="0123456789ab")
    moved.to_csv(out, index=False)
    r = bench_run(workdir, "method_errors.py", *args)
    assert r.returncode != 0 and "differs from the file's" in r.stderr
    assert set(pd.read_csv(out)["test_set"]) == {"0123456789ab"}
