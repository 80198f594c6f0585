"""The real DAG end to end on the tiny config: sampling, xTB + CCSD(T) labels, every training
stage, gamma selection (absolute, relative, inf), the bias diagnostic, evaluation with bootstrap
intervals, sGDML, Δ-learning on xTB, MD stability, the recommended force field and the report
(checked in headless Chromium)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from pipeline import units
from pipeline.data import load_npz
from pipeline.evaluation.calculator import load_forcefield
from tests.unit.report.browser import check_report_in_browser, find_chromium, results_table_mismatches

from .conftest import ROOT, snakemake

pytestmark = pytest.mark.e2e
MOL = "results/ethanol"


def test_datasets_are_labelled_disjoint_and_costed(finished_run):
    wd, _ = finished_run
    train = load_npz(wd / MOL / "data/ccsd_t/train.npz")
    test = load_npz(wd / MOL / "data/ccsd_t/test.npz")
    xtb = load_npz(wd / MOL / "data/xtb/cheap-xtb.npz")
    emp = load_npz(wd / MOL / "data/empirical/cheap-empirical.npz")
    assert len(train) == 8 and len(test) == 6 and len(xtb) == 40 and len(emp) == 30
    assert train.theory.startswith("CCSD(T)") and "xTB" in xtb.theory and emp.theory == "GAFF2"
    ids = [set(d.frame_id) for d in (train, test, xtb, emp)]
    assert all(not (a & b) for i, a in enumerate(ids) for b in ids[i + 1 :]), "subsets must be disjoint"
    assert (train.cpu_s > 0).all() and (xtb.cpu_s > 0).all()
    assert train.cpu_s.mean() > 10 * xtb.cpu_s.mean()  # xTB labels are nearly free
    # xTB and CCSD(T) forces on the same molecule are similar in size (same units, eV/A)
    assert 0.3 < np.abs(xtb.F).mean() / np.abs(train.F).mean() < 3
    # the validation frames are labelled at the cheap levels too (bias diagnostic)
    val, xtb_val = load_npz(wd / MOL / "data/ccsd_t/val.npz"), load_npz(wd / MOL / "data/xtb/val.npz")
    assert set(val.frame_id) == set(xtb_val.frame_id)
    with np.load(wd / MOL / "data/ccsd_t/train.npz") as f:  # readable by sGDML as is
        assert {"type", "name", "theory", "R", "z", "E", "F", "r_unit", "e_unit", "md5"} <= set(f.files)


def test_results_cover_every_method(finished_run):
    wd, _ = finished_run
    df = pd.read_csv(wd / MOL / "results.csv")
    assert set(df["method"]) == {
        "standard",
        "asteroid",
        "finetune_unweighted",
        "bias_aware_no_finetune",
        "cheap_only",
        "score_matching",
        "score_matching_no_finetune",
        "sgdml",
        "delta",
        "delta_sgdml",
        "corrected",
        "standard_selected",
        "delta_selected",
        "asteroid_selected",
        "corrected_selected",
        "foundation",
        "foundation_zero_shot",
    }
    assert set(df.loc[df.method == "asteroid", "cheap_level"]) == {"xtb", "empirical"}
    assert set(df.loc[df.method == "standard", "n_train"]) == {4, 8}
    assert np.isfinite(df["force_mae_kcal"]).all() and (df["force_mae_kcal"] > 0).all()
    np.testing.assert_allclose(df["force_mae_mev"], units.kcal_to_mev(df["force_mae_kcal"]), rtol=1e-6)
    # data cost: ASTEROID (xTB) = its accurate labels + the whole xTB pool; training cost: every stage
    std = df[(df.method == "standard") & (df.n_train == 8)].iloc[0]
    ast = df[(df.method == "asteroid") & (df.cheap_level == "xtb") & (df.n_train == 8)].iloc[0]
    assert ast.accurate_label_cpu_h == pytest.approx(std.accurate_label_cpu_h)
    assert (
        ast.data_cost_cpu_h == pytest.approx(std.data_cost_cpu_h + ast.cheap_label_cpu_h) and ast.cheap_label_cpu_h > 0
    )
    assert ast.train_cpu_h_total > 3 * std.train_cpu_h_total > 0
    assert ast.total_cpu_h == pytest.approx(ast.data_cost_cpu_h + ast.train_cpu_h_total)
    # intervals: every row has one around its error; every method with N > 0 a paired reduction
    assert (df.force_mae_ci_low <= df.force_mae_kcal).all() and (df.force_mae_kcal <= df.force_mae_ci_high).all()
    # (the models of their own, sGDML and SO3LR, have no standard training of the same model: reductions.csv
    # compares them with each neural model's)
    own_model = ["standard", "sgdml", "delta_sgdml", "foundation", "foundation_zero_shot"]
    others = df[~df.method.isin(own_model) & (df.n_train > 0)]
    assert others.reduction_vs_standard.notna().all()
    red = pd.read_csv(wd / MOL / "reductions.csv")
    assert {"asteroid", "sgdml", "delta", "delta_sgdml"} <= set(red["method"]) and red["reduction_ci_low"].le(
        red["reduction_ci_high"]
    ).all()
    # sGDML was trained on N frames, not the whole pool
    sg = df[df.method == "sgdml"].set_index("n_train")
    ev4 = json.loads((wd / MOL / "baselines/sgdml/N4/eval.json").read_text())
    assert sg.loc[4, "force_mae_kcal"] == pytest.approx(ev4["force_mae_kcal"])
    gam = pd.read_csv(wd / MOL / "gamma_selection.csv")
    assert gam.groupby(["method", "cheap_level", "n_train"])["chosen"].sum().eq(1).all()
    assert set(gam["method"]) == {"asteroid", "corrected", "asteroid_selected", "corrected_selected"}
    ast = gam[gam["method"] == "asteroid"]
    assert set(ast["gamma_spec"]) == {"1", "r1", "inf"} and (ast["effective_frames"] > 0).all()
    bias = pd.read_csv(wd / MOL / "bias_correlation.csv")
    assert set(bias["cheap_level"]) == {"xtb", "empirical"} and (bias["n_frames"] == 4).all()
    meta = json.loads((wd / MOL / "forcefield/metadata.json").read_text())
    assert meta["n_train"] == 8 and (wd / MOL / "forcefield/model.pt").stat().st_size > 0
    # the export runs as the README says, whichever kind was chosen (a Δ model computes xTB per call),
    # and predicts what its source model predicted on the test set
    test = load_npz(wd / MOL / "data/ccsd_t/test.npz")
    atoms = Atoms(numbers=test.z, positions=test.R[0])
    atoms.calc = load_forcefield(wd / MOL / "forcefield")
    assert type(atoms.calc).__name__ == meta["calculator"]
    with np.load(wd / Path(meta["source_model"]).with_name("predictions.npz")) as pred:
        assert pred["frame_id"][0] == test.frame_id[0]
        np.testing.assert_allclose(units.ev_to_kcal(atoms.get_forces()), pred["F_pred"][0], atol=1e-3)
    stab = pd.read_csv(wd / MOL / "stability.csv")
    assert (
        set(stab["method"]) == {"standard", "asteroid", "cheap_only", "delta", "corrected", "foundation"}
        and (stab["steps_completed"] > 0).all()
    )


def test_readme_force_field_snippet_runs_verbatim(finished_run):
    """README's "Using the force field" code, as written, on the finished run (1,000 MD steps with
    the exported model; warnings are errors, so a deprecated call in it fails here)."""
    wd, _ = finished_run
    readme = (ROOT / "README.md").read_text()
    code = readme.split("## Using the force field")[1].split("```python\n")[1].split("```")[0]
    assert "load_forcefield(" in code
    r = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=wd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def test_delta_learning_is_one_more_method_in_the_same_accounting(finished_run):
    """Δ (xTB + EGNN correction, xTB + sGDML correction): its cheap labels on the N training, 4 validation
    and 6 test frames counted, test predictions = xTB test labels + correction, prediction cost per frame."""
    wd, _ = finished_run
    df = pd.read_csv(wd / MOL / "results.csv")
    dl = df[df.method == "delta"].set_index("n_train")
    assert set(dl.index) == {4, 8} and set(dl["cheap_level"]) == {"xtb"}
    xtb = {s: load_npz(wd / MOL / f"data/xtb/{s}.npz") for s in ("train", "val", "test")}
    acc_train = load_npz(wd / MOL / "data/ccsd_t/train.npz")
    for n in (4, 8):
        used = np.isin(xtb["train"].frame_id, acc_train.frame_id[:n])
        assert dl.loc[n, "n_cheap_labels"] == used.sum() + len(xtb["val"]) + len(xtb["test"])
        cpu = xtb["train"].cpu_s[used].sum() + xtb["val"].cpu_s.sum() + xtb["test"].cpu_s.sum()
        assert dl.loc[n, "cheap_label_cpu_h"] == pytest.approx(cpu / 3600, rel=1e-6) and cpu > 0
        assert dl.loc[n, "data_cost_cpu_h"] == pytest.approx(dl.loc[n, "accurate_label_cpu_h"] + cpu / 3600, rel=1e-6)
    std = df[df.method == "standard"].set_index("n_train")
    assert (dl["accurate_label_cpu_h"] == std.loc[dl.index, "accurate_label_cpu_h"]).all()
    assert dl["reduction_vs_standard"].notna().all()
    # one prediction calls xTB: dearer than the pure model, and the recorded xTB cost is part of it
    assert (dl["predict_cpu_s_per_frame"] > std.loc[dl.index, "predict_cpu_s_per_frame"]).all()
    ev = json.loads((wd / MOL / "delta/egnn/xtb/N8_s0/eval.json").read_text())
    assert ev["predict_cheap_cpu_s_per_frame"] == pytest.approx(xtb["test"].cpu_s.mean())
    assert ev["model_extra"]["cheap_entry"]["engine"] == "xtb" and ev["n_test_cheap_computed"] == 0
    with np.load(wd / MOL / "delta/egnn/xtb/N8_s0/predictions.npz") as p:  # same frames as every method
        assert list(p["frame_id"]) == list(load_npz(wd / MOL / "data/ccsd_t/test.npz").frame_id)
    sg = df[df.method == "delta_sgdml"].set_index("n_train")
    assert set(sg.index) == {4, 8} and (sg["model"] == "sgdml").all() and (sg["cheap_label_cpu_h"] > 0).all()
    stab = pd.read_csv(wd / MOL / "stability.csv")
    assert (stab.loc[stab.method == "delta", "cheap_level"] == "xtb").all()
    html = (wd / MOL / "report.html").read_text()
    assert 'id="routes-table"' in html and 'id="prediction-cost-table"' in html and "Δ-learning" in html


def test_report_renders_in_chromium(finished_run, tmp_path):
    wd, _ = finished_run
    html = wd / MOL / "report.html"
    for name in (
        "learning_curves",
        "error_vs_cost",
        "error_vs_total_cost",
        "gamma_selection",
        "bias_diagnostic",
        "cheap_only",
        "md_stability",
        "stage_timings",
        "label_cost",
    ):
        assert (wd / MOL / "figures" / f"{name}.png").stat().st_size > 0
        assert (wd / MOL / "figures" / f"{name}.svg").stat().st_size > 0
    if not find_chromium():
        pytest.skip("no Chromium binary (apt-get install chromium)")
    r = check_report_in_browser(html, screenshot_path=tmp_path / "report.png")
    assert r["problems"] == [] and r["console_errors"] == [] and r["external_requests"] == []
    assert results_table_mismatches(r["results_table"], wd / MOL / "results.csv") == []


def test_no_change_rerun_has_nothing_to_do(finished_run):
    wd, _ = finished_run
    r = snakemake(wd, "-n", "results/ethanol/report.html")
    assert "Nothing to be done" in r.stdout + r.stderr


def _planned(r) -> dict[str, int]:
    """Job counts per rule from a dry run's 'Job stats' table."""
    text = r.stdout + r.stderr
    table = text.split("Job stats:")[1].split("total")[0]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


# ASTEROID's and corrected pre-training's rules on selected frames (they train on the cheap pool)
SELECTED_POOL_RULES = (
    "bias_selected",
    "train_stage2_selected",
    "finetune_selected",
    "correct_pool_selected",
    "train_corrected_selected",
    "finetune_corrected_selected",
)


def test_touching_cheap_labels_plans_only_downstream(finished_run):
    wd, _ = finished_run
    label_file = wd / MOL / "data/xtb/cheap-xtb.npz"
    before = label_file.stat()
    label_file.touch()
    try:
        planned = _planned(snakemake(wd, "-n", "results/ethanol/report.html"))
    finally:
        os.utime(label_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert set(planned) <= {
        "bias",
        "train_stage2",
        "train_cheap_only",
        "finetune_cheap",
        "evaluate",
        "evaluate_gammas",
        "md_stability",
        "correct_pool",
        "train_corrected",
        "finetune_corrected",
        *SELECTED_POOL_RULES,
        "collect",
        "report",
    }, planned  # not the selection: its candidates are the pool's frames, not its labels
    assert {"train_stage2", "finetune_cheap", "evaluate", "evaluate_gammas", "collect", "report"} <= set(planned)
    # only the xTB branch: 2 finite gammas x 2 N stage-2 models, and the fine-tunes of those and of gamma = inf;
    # the corrected pool of each N and its 3 gamma candidates' stages 2 and 3
    assert planned["train_stage2"] == 4 and planned["finetune_cheap"] == 6 and planned["train_cheap_only"] == 1
    assert planned["correct_pool"] == 2 and planned["train_corrected"] == 6 and planned["finetune_corrected"] == 6
    # and the same on the selected frames of N = 8 (ASTEROID's 2 finite gammas, corrected's 3 candidates)
    assert planned["train_stage2_selected"] == 2 and planned["finetune_selected"] == 3
    assert planned["correct_pool_selected"] == 1 and planned["finetune_corrected_selected"] == 3


def test_changing_a_training_hyperparameter_reruns_only_training_onwards(finished_run):
    wd, _ = finished_run
    cfg = (wd / "config-tiny.yaml").read_text()
    (wd / "config-tiny.yaml").write_text(
        cfg.replace("finetune: {batch_size: 4, max_epochs: 3,", "finetune: {batch_size: 4, max_epochs: 4,")
    )
    try:
        planned = _planned(snakemake(wd, "-n", "results/ethanol/report.html"))
    finally:
        (wd / "config-tiny.yaml").write_text(cfg)
    assert set(planned) == {
        "finetune_cheap",
        "finetune_score",
        "finetune_corrected",
        "finetune_selected",
        "finetune_corrected_selected",
        "evaluate",
        "evaluate_gammas",
        "md_stability",
        "collect",
        "report",
    }, planned


def test_growing_the_test_set_moves_no_training_frame(finished_run):
    """splits.test 6 -> 10: only the test frames, their labels (the old ones from the label cache) and
    what scores on them rerun; no training frame, pool or model changes."""
    wd, _ = finished_run
    cfg = (wd / "config-tiny.yaml").read_text()
    assert "  test: 6\n" in cfg
    (wd / "config-tiny.yaml").write_text(cfg.replace("  test: 6\n", "  test: 10\n"))
    try:
        r = snakemake(wd, "-n", "results/ethanol/report.html")
    finally:
        (wd / "config-tiny.yaml").write_text(cfg)
    planned = _planned(r)
    trained = {k for k in planned if k.startswith(("train", "finetune")) or k in ("bias", "correct_pool")}
    assert not trained, planned
    assert {"frames", "label_chunk", "dataset", "evaluate", "evaluate_gammas", "collect"} <= set(planned)
    # ASTEROID's γ candidates of one model, level, N and seed are scored in one job (rule evaluate_gammas)
    assert planned["evaluate_gammas"] == 4, planned  # tiny config: 1 model x 2 cheap levels x 2 N x 1 seed
    assert planned["frames"] == 1 and "results/ethanol/frames/test.npz" in r.stdout + r.stderr


def test_every_registered_method_is_in_results_report_and_costs(finished_run):
    """The registry drives collect and the report: each method the tiny config enables has rows with
    its label and cost columns in results.csv, and appears under its label in the report."""
    from pipeline import config as pconf
    from pipeline import methods

    wd, _ = finished_run
    cfg = pconf.load_config(wd / "config.yaml", wd / "config-tiny.yaml")
    df = pd.read_csv(wd / MOL / "results.csv")
    html = (wd / MOL / "report.html").read_text()
    for m in methods.active(cfg, "ethanol"):
        rows = df[df.method == m.name]
        assert len(rows), m.name
        assert rows[["data_cost_cpu_h", "train_cpu_h_total", "total_cpu_h"]].notna().all().all(), m.name
        assert (rows["train_cpu_h_total"] > 0).all(), m.name
        assert m.label in html, m.label


def test_selection_picks_pool_frames_and_its_models_pay_for_the_committee(finished_run):
    """Round 0 is the random train[:4]; round 1's committee of two Δ models picked 4 frames of the
    xTB pool (never validation or test frames); standard and Δ models trained on those 8 frames
    count their own labels and the committee's training in their cost."""
    wd, _ = finished_run
    train, val, test = (load_npz(wd / MOL / f"data/ccsd_t/{s}.npz") for s in ("train", "val", "test"))
    picked = load_npz(wd / MOL / "frames/sel-s0-r1.npz")
    pool = load_npz(wd / MOL / "frames/cheap-xtb.npz")
    assert len(picked) == 4 and set(picked.frame_id) <= set(pool.frame_id)
    assert not set(picked.frame_id) & (set(val.frame_id) | set(test.frame_id) | set(train.frame_id))
    merged = load_npz(wd / MOL / "data/ccsd_t/selected/N8_s0.npz")
    assert list(merged.frame_id) == [*train.frame_id[:4], *picked.frame_id] and merged.labelled
    meta = picked.meta["selection"]
    assert meta["committee"] == "delta" and meta["committee_size"] == 2 and meta["committee_cpu_s"] > 0
    df = pd.read_csv(wd / MOL / "results.csv")
    std_sel = df[df.method == "standard_selected"].iloc[0]
    assert std_sel.n_train == 8 and std_sel.seed == 0
    assert std_sel.accurate_label_cpu_h == pytest.approx(merged.cpu_s.sum() / 3600)
    own = json.loads((wd / MOL / "models/egnn/selected/standard/N8_s0/eval.json").read_text())["model_extra"]
    selection_s = merged.meta["selected"]["selection_cpu_s"]
    assert selection_s >= meta["committee_cpu_s"]
    assert std_sel.train_cpu_h_total * 3600 == pytest.approx(own["train_cpu_s"] + selection_s, rel=1e-6)
    d_sel = df[df.method == "delta_selected"].iloc[0]
    assert d_sel.cheap_level == "xtb" and d_sel.cheap_label_cpu_h > 0 and np.isfinite(d_sel.reduction_vs_standard)
    red = pd.read_csv(wd / MOL / "reductions.csv")
    baselines = set(red.loc[red.method == "delta_selected", "baseline"])
    assert baselines == {"egnn standard", "egnn delta"}  # and with Δ on random frames
    # ASTEROID on the selected frames: stage 1 is the standard model on them, stage 3 fine-tunes on them
    ast_sel = df[df.method == "asteroid_selected"].iloc[0]
    assert ast_sel.n_train == 8 and ast_sel.cheap_level == "xtb"
    assert ast_sel.accurate_label_cpu_h == pytest.approx(std_sel.accurate_label_cpu_h)
    assert ast_sel.train_cpu_h_total > std_sel.train_cpu_h_total  # stage 1 + bias + stages 2 and 3 + committee
    bias = np.load(wd / MOL / "models/egnn/selected/bias/xtb/N8_s0.npz")
    assert int(bias["n_train"]) == 8 and len(bias["B"]) == len(pool)
    # corrected pre-training on them: the pool corrected by the Δ model of the selected frames
    cor_pool = load_npz(wd / MOL / "models/egnn/selected/corrected/xtb/N8_s0/pool.npz")
    assert cor_pool.meta["corrected_by"].endswith("delta/egnn/xtb/selected/N8_s0/model.pt")
    assert cor_pool.meta["n_train"] == 8 and list(cor_pool.frame_id) == list(pool.frame_id)
    cor_sel = df[df.method == "corrected_selected"].iloc[0]
    assert cor_sel.accurate_label_cpu_h == pytest.approx(std_sel.accurate_label_cpu_h) and cor_sel.cheap_label_cpu_h > 0
    assert set(red.loc[red.method == "corrected_selected", "baseline"]) == {
        "egnn standard",
        "egnn corrected",
        "egnn delta_selected",
    }
    assert set(red.loc[red.method == "asteroid_selected", "baseline"]) == {"egnn standard", "egnn asteroid"}
    scores = pd.read_csv(wd / MOL / "selection.csv")
    assert len(scores) == len(pool) and sorted(scores.loc[scores.pick_order >= 0, "pick_order"]) == [0, 1, 2, 3]
    assert scores[["cheap_energy_kcal", "cheap_force_rms_kcal"]].notna().all().all()
    top = scores.loc[scores.pick_order == 0, "frame_id"].iloc[0]
    assert top == picked.frame_id[0]
    committee_val = pd.read_csv(wd / MOL / "selection_validation.csv")
    assert set(committee_val.frame_id) == set(val.frame_id) and (committee_val.true_error_kcal > 0).all()
    html = (wd / MOL / "report.html").read_text()
    assert 'id="selection-table"' in html and 'data-figure="selection"' in html


def test_touching_a_round_reruns_exactly_what_follows_it(finished_run):
    """Touching round 1's picks relabels them (from the label cache) and retrains only the models on
    selected frames; the committee and the random-frame runs stay."""
    wd, _ = finished_run
    picked = wd / MOL / "frames/sel-s0-r1.npz"
    before = picked.stat()
    picked.touch()
    try:
        planned = _planned(snakemake(wd, "-n", "results/ethanol/report.html"))
    finally:
        os.utime(picked, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert set(planned) == {
        "label_chunk",
        "dataset",
        "selected_data",
        "train_standard_selected",
        "train_delta_selected",
        *SELECTED_POOL_RULES,
        "evaluate",
        "evaluate_delta_selected",
        "collect",
        "report",
    }, planned
    assert planned["selected_data"] == 2  # the picks at CCSD(T) and at xTB


def test_a_second_round_trains_its_committee_on_the_first_rounds_frames(finished_run):
    """splits.train_sizes [4, 6, 8]: two rounds of 2 picks; round 2's committee trains on round 0 plus
    round 1's picks, round 1's committee (trained on the same 4 frames) is kept (dry run)."""
    wd, _ = finished_run
    cfg = (wd / "config-tiny.yaml").read_text()
    assert "  train_sizes: [4, 8]\n" in cfg
    (wd / "config-tiny.yaml").write_text(cfg.replace("  train_sizes: [4, 8]\n", "  train_sizes: [4, 6, 8]\n"))
    try:
        r = snakemake(wd, "-n", "-p", "results/ethanol/delta/egnn/xtb/selected/N8_s0/eval.json")
    finally:
        (wd / "config-tiny.yaml").write_text(cfg)
    planned, text = _planned(r), r.stdout + r.stderr
    assert planned["train_committee"] == 2 and planned["select_frames"] == 2, planned
    assert "--n-pick 2" in text and "--round 2" in text
    assert "--train results/ethanol/data/ccsd_t/selected/N6_s0.npz --n-train 6" in text
