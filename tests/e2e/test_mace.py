"""`training.models: [egnn, mace]` runs the whole DAG: every MACE training stage (standard, bias,
stage 2, fine-tuning, score matching, Δ-learning, bias-corrected pre-training), evaluation, MD stability through the ASE
calculator, collection and the report with both models, with a tiny MACE (config-tiny.yaml's
training.hparams.mace); and benchmarks/model_comparison.py pairs the two models.

The finished tiny EGNN run is copied (timestamps and Snakemake metadata kept) and MACE added to its
models, as a user would: sampling, labelling and the EGNN models are not repeated."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline.models import load_model

from .conftest import bench, snakemake

pytestmark = pytest.mark.e2e
MOL = "results/ethanol"


@pytest.fixture(scope="module")
def mace_run(finished_run, tmp_path_factory):
    wd, _ = finished_run
    mace_wd = tmp_path_factory.mktemp("e2e-mace") / "run"
    shutil.copytree(wd, mace_wd, symlinks=True)
    cfg = (mace_wd / "config-tiny.yaml").read_text()
    assert "  models: [egnn]\n" in cfg
    (mace_wd / "config-tiny.yaml").write_text(cfg.replace("  models: [egnn]\n", "  models: [egnn, mace]\n"))
    r = snakemake(mace_wd, "results/ethanol/report.html", timeout=2700)  # MACE trains ~5x slower than EGNN
    return mace_wd, r


def test_mace_runs_every_stage_evaluation_md_and_report(mace_run):
    wd, r = mace_run
    log = r.stdout + r.stderr
    assert "rule md:" not in log and "rule label_chunk:" not in log  # sampling and labels reused
    assert "model=mace" in log and "model=egnn" not in log  # only MACE is trained
    df = pd.read_csv(wd / MOL / "results.csv")
    assert set(df["model"]) == {"egnn", "mace", "sgdml", "so3lr"}  # so3lr: the foundation model's rows
    nn = df[df.model == "mace"]
    assert {
        "standard",
        "asteroid",
        "finetune_unweighted",
        "bias_aware_no_finetune",
        "cheap_only",
        "score_matching",
        "score_matching_no_finetune",
        "delta",
        "corrected",
    } <= set(nn["method"])
    assert np.isfinite(nn["force_mae_kcal"]).all() and (nn["force_mae_kcal"] > 0).all()
    stab = pd.read_csv(wd / MOL / "stability.csv")
    assert (stab["steps_completed"] > 0).all() and len(stab) > 0
    meta = json.loads((wd / MOL / "forcefield/metadata.json").read_text())
    assert meta["model"] in {"egnn", "mace", "so3lr"}
    report = (wd / MOL / "report.html").read_text(encoding="utf-8")
    assert "MACE" in report and "EGNN" in report

    models = sorted((wd / MOL).glob("models/mace/**/*.pt")) + sorted((wd / MOL).glob("delta/mace/**/*.pt"))
    assert models, "no MACE model files"
    stages = set()
    for path in models:
        model = load_model(path)
        assert model.name == "mace" and model.hparams["hidden_irreps"] == "8x0e + 8x1o"
        assert model.hparams["avg_num_neighbors"] > 1.0  # fitted on the training frames, saved with the model
        stages.add(model.extra["stage"])
    assert {"standard", "cheap", "finetune", "score_matching", "delta"} <= stages


def test_model_comparison_pairs_mace_with_egnn(mace_run):
    wd, _ = mace_run
    out = bench(wd, "model_comparison.py", "--models", "egnn", "mace")
    pairs = [
        ("MACE standard", "EGNN standard"),
        ("MACE + ASTEROID (xtb)", "EGNN + ASTEROID (xtb)"),
        ("Δ-MACE (xtb)", "Δ-EGNN (xtb)"),
        ("MACE standard", "sGDML"),
    ]
    for n in (4, 8):
        for a, b in pairs:
            assert f"| {a} | {b} | {n} | 1 |" in out
        for method in ("MACE standard", "MACE + ASTEROID (xtb)", "Δ-MACE (xtb)", "sGDML"):
            assert f"| {method} | {n} | 1 |" in out  # accuracy and the whole cost, per N
