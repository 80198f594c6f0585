"""MD stability: a stable potential stays stable; exploding / NaN models are flagged with a reason."""

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.data import Dataset, save_npz
from pipeline.evaluation.md_stability import check_divergence, find_bonds, run_stability, run_stability_to_csv
from pipeline.models import build, save_model

from .test_predict import SMALL_EGNN
from .toy_models import HarmonicModel, NaNModel, RepulsiveModel, methanol


def test_find_bonds_methanol():
    R0, z = methanol()
    bonds, lengths = find_bonds(R0, z)
    assert len(bonds) == 5  # C-O, O-H, 3 x C-H
    assert np.all((lengths > 0.9) & (lengths < 1.5))
    assert {int(z[i]) * int(z[j]) for i, j in bonds} == {6 * 8, 8 * 1, 6 * 1}


def test_check_divergence_criteria():
    R0, z = methanol()
    bonds, lengths = find_bonds(R0, z)
    F = np.zeros_like(R0)
    ok, stretch = check_divergence(R0, 0.0, F, bonds, lengths, 0.0, 1.5, 0.5, 10.0)
    assert ok == "" and stretch == pytest.approx(1.0)
    far = R0.copy()
    far[bonds[0, 1]] += 2.0 * (R0[bonds[0, 1]] - R0[bonds[0, 0]])  # triple one bond's length
    reason, stretch = check_divergence(far, 0.0, F, bonds, lengths, 0.0, 1.5, 0.5, 10.0)
    assert reason.startswith("bond") and stretch == pytest.approx(3.0)
    fused = R0.copy()
    fused[5] = fused[4] + 0.1
    assert "atoms" in check_divergence(fused, 0.0, F, bonds, lengths, 0.0, 1.5, 0.5, 10.0)[0]
    assert "non-finite" in check_divergence(R0, float("nan"), F, bonds, lengths, 0.0, 1.5, 0.5, 10.0)[0]
    assert "energy" in check_divergence(R0, 61.0, F, bonds, lengths, 0.0, 1.5, 0.5, 10.0)[0]  # 61/6 > 10
    assert check_divergence(R0, 61.0, F, bonds, lengths, 0.0, 1.5, 0.5, None)[0] == ""


def test_harmonic_molecule_is_stable():
    R0, z = methanol()
    df = run_stability(HarmonicModel(R0), R0, z, temperature_K=500, n_steps=300, n_runs=2, seed=1)
    assert list(df["run"]) == [0, 1]
    assert not df["diverged"].any(), df["reason"].tolist()
    assert (df["steps_completed"] == 300).all()
    assert (df["reason"] == "").all()
    # Thermal motion stretches bonds a little, nowhere near the 1.5 x threshold.
    assert (df["max_bond_stretch"] > 1.01).all() and (df["max_bond_stretch"] < 1.3).all()
    assert (df["final_temperature_K"] > 0).all()
    assert df["time_ps"].iloc[0] == pytest.approx(0.15)


def test_same_seed_same_trajectory():
    R0, z = methanol()
    a = run_stability(HarmonicModel(R0), R0, z, n_steps=50, n_runs=1, seed=7)
    b = run_stability(HarmonicModel(R0), R0, z, n_steps=50, n_runs=1, seed=7)
    c = run_stability(HarmonicModel(R0), R0, z, n_steps=50, n_runs=1, seed=8)
    assert a["final_temperature_K"].iloc[0] == b["final_temperature_K"].iloc[0]
    assert a["final_temperature_K"].iloc[0] != c["final_temperature_K"].iloc[0]


def test_repulsive_model_diverges():
    R0, z = methanol()
    df = run_stability(RepulsiveModel(len(z)), R0, z, n_steps=300, n_runs=2, seed=0)
    assert df["diverged"].all()
    assert (df["steps_completed"] < 300).all()
    assert df["reason"].str.contains("stretched").all(), df["reason"].tolist()
    assert (df["max_bond_stretch"] > 1.5).all()


def test_strong_repulsion_caught_by_energy_test_first():
    R0, z = methanol()
    df = run_stability(RepulsiveModel(len(z), A=300.0), R0, z, n_steps=300, n_runs=1)
    assert bool(df["diverged"].iloc[0]) and "potential energy changed" in df["reason"].iloc[0]
    assert df["max_bond_stretch"].iloc[0] < 1.5


def test_nan_model_diverges_at_start():
    R0, z = methanol()
    df = run_stability(NaNModel(len(z)), R0, z, n_steps=20, n_runs=1)
    assert bool(df["diverged"].iloc[0])
    assert df["steps_completed"].iloc[0] == 0
    assert "non-finite" in df["reason"].iloc[0]


def test_to_csv_with_saved_model_and_start_npz(tmp_path):
    R0, z = methanol()
    R = R0 + np.random.default_rng(0).normal(scale=0.02, size=(2, len(z), 3))
    save_npz(tmp_path / "start.npz", Dataset(R=R, z=z))
    torch.manual_seed(0)
    save_model(build("egnn", **SMALL_EGNN), tmp_path / "m.pt")
    df = run_stability_to_csv(
        tmp_path / "m.pt", tmp_path / "start.npz", tmp_path / "out" / "md.csv", n_steps=10, n_runs=3
    )
    back = pd.read_csv(tmp_path / "out" / "md.csv", keep_default_na=False)
    assert len(back) == 3
    assert list(back["start_frame"]) == [0, 1, 0]
    assert list(back.columns) == list(df.columns)
    assert {"run", "steps_completed", "diverged", "reason", "max_bond_stretch", "final_temperature_K", "wall_s"} <= set(
        back.columns
    )


def test_a_committee_run_records_its_force_disagreement():
    """Two harmonic models with different stiffness disagree off the minimum: the run records the
    largest and mean disagreement (kcal/mol/Å); a model alone records none (NaN)."""
    from pipeline.evaluation.calculator import ModelCalculator

    R0, z = methanol()
    calc = ModelCalculator(HarmonicModel(R0), committee=[HarmonicModel(R0, k_bonded=400.0)])
    df = run_stability(calc, R0, z, temperature_K=500, n_steps=50, n_runs=1, seed=1)
    assert not df["diverged"].any()
    row = df.iloc[0]
    assert row["max_force_disagreement_kcal"] >= row["mean_force_disagreement_kcal"] > 0.1
    alone = run_stability(HarmonicModel(R0), R0, z, n_steps=10, n_runs=1, seed=1)
    assert np.isnan(alone["max_force_disagreement_kcal"]).all()
