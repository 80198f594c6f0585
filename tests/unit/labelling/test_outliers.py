"""Implausible labels: gross outliers of energy or max atomic force norm are flagged, listed with
their reason, dropped by default (or kept), counted; small sets and normal MD scatter are not flagged."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline import units
from pipeline.data import Dataset, load_npz
from pipeline.labelling.outliers import find_outliers, robust_z, screen
from tests.conftest import ETHANOL_R, ETHANOL_Z


def _labelled(n=40, seed=0):
    """Ethanol frames with thermal-looking scatter of energies (eV) and forces (eV/A)."""
    rng = np.random.default_rng(seed)
    return Dataset(
        R=ETHANOL_R[None] + 0.05 * rng.standard_normal((n, 9, 3)),
        z=ETHANOL_Z,
        E=-4200.0 + 0.12 * rng.standard_normal(n),
        F=1.5 * rng.standard_normal((n, 9, 3)),
        frame_id=np.arange(100, 100 + n),
        name="ethanol",
        meta={"level": "dft"},
    )


def test_robust_z_ignores_the_outlier_itself():
    x = np.r_[np.random.default_rng(0).normal(0, 1, 50), 1e6]
    z = robust_z(x)
    assert z[-1] > 1e5 and z[:-1].max() < 5


def test_gross_outliers_are_flagged_with_reason_and_dropped_by_default():
    ds = _labelled()
    ds.E[5] += 3.0  # 25 sigma: e.g. an SCF converged to another state
    ds.F[17] = units.ev_to_kcal(ds.F[17])  # one frame's forces in kcal/mol/A instead of eV/A
    out, table = screen(ds, "dft", {"action": "drop", "max_robust_z": 20, "min_frames": 20})
    assert list(table["frame_id"]) == [105, 117] and list(table["key"]) == ["E", "max|F|"]
    assert (table["action"] == "dropped").all()
    assert "labelling.outliers.max_robust_z = 20" in table["reason"][0] and "median" in table["reason"][0]
    assert len(out) == 38 and not np.isin([105, 117], out.frame_id).any()
    assert out.meta["n_outliers"] == 2 and out.meta["n_outliers_dropped"] == 2


def test_keep_lists_but_keeps():
    ds = _labelled()
    ds.E[5] += 3.0
    out, table = screen(ds, "dft", {"action": "keep", "max_robust_z": 20, "min_frames": 20})
    assert len(out) == 40 and list(table["action"]) == ["kept"]
    assert out.meta["n_outliers"] == 1 and out.meta["n_outliers_dropped"] == 0


def test_small_sets_and_normal_scatter_are_not_flagged():
    ds = _labelled(n=12)
    ds.E[5] += 3.0
    assert find_outliers(ds, "dft", 20, 20, "drop").empty  # below min_frames: not screened
    for seed in range(20):  # normal scatter of 40 frames never reaches z = 20
        assert find_outliers(_labelled(seed=seed), "dft", 20, 20, "drop").empty


def test_dataset_command_writes_the_outlier_table_and_counts(tmp_path):
    ds = _labelled()
    ds.F[17] = units.ev_to_kcal(ds.F[17])
    ds.save(tmp_path / "frames.npz")
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "dataset",
        "--level-name",
        "empirical",
        "--level",
        '{"engine": "empirical"}',
        "--chunks",
        str(tmp_path / "frames.npz"),
        "--n-requested",
        "40",
        "--max-failure-fraction",
        "0.1",
        "--out",
        str(tmp_path / "d.npz"),
        "--failures",
        str(tmp_path / "d.failures.csv"),
        "--outliers",
        json.dumps({"action": "drop", "max_robust_z": 20, "min_frames": 20}),
        "--outliers-csv",
        str(tmp_path / "d.outliers.csv"),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    table = pd.read_csv(tmp_path / "d.outliers.csv")
    assert list(table["frame_id"]) == [117] and table["reason"][0].startswith("max|F| = ")
    out = load_npz(tmp_path / "d.npz")
    assert len(out) == 39 and out.meta["n_outliers"] == 1


def test_unknown_action_is_an_error():
    with pytest.raises(ValueError, match="labelling.outliers.action: 'flag' is not one of drop, keep"):
        find_outliers(_labelled(), "dft", 20, 20, "flag")
