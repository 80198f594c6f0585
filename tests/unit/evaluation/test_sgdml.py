"""sGDML baseline on a synthetic harmonic-network molecule (N_train = 25, N_valid = 25)."""

import json

import numpy as np
import pytest

from pipeline import units
from pipeline.data import Dataset, save_npz
from pipeline.evaluation.sgdml_baseline import run_sgdml_baseline

from .toy_models import methanol

KCAL_PER_EV = units.ev_to_kcal(1.0)


def harmonic_network(R, R0, k_bonded=20.0, k_other=2.0):
    """E = sum_{i<j} k_ij/2 (d_ij - d0_ij)^2 (eV) and forces (eV/A) for frames R [n, n_atoms, 3]."""
    i, j = np.triu_indices(R0.shape[0], 1)
    d0 = np.linalg.norm(R0[i] - R0[j], axis=-1)  # [n_pairs]
    k = np.where(d0 < 1.6, k_bonded, k_other)
    vec = R[:, i] - R[:, j]  # [n, n_pairs, 3]
    d = np.linalg.norm(vec, axis=-1)  # [n, n_pairs]
    E = 0.5 * (k * (d - d0) ** 2).sum(-1)
    g = (k * (d - d0) / d)[..., None] * vec  # dE/dr_i for each pair, [n, n_pairs, 3]
    grad = np.zeros_like(R)
    np.add.at(grad, (slice(None), i), g)
    np.add.at(grad, (slice(None), j), -g)
    return E, -grad


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sgdml")
    R0, z = methanol()
    rng = np.random.default_rng(0)
    paths = {}
    for name, n in [("train", 25), ("valid", 25), ("test", 60)]:
        R = R0 + rng.normal(scale=0.05, size=(n, len(z), 3))
        E, F = harmonic_network(R, R0)
        E = E - 1000.0  # an absolute offset, as in real energies
        paths[name] = tmp / f"{name}.npz"
        save_npz(paths[name], Dataset(R=R, z=z, E=E, F=F, frame_id=np.arange(n) + 100, name="toy"))
    return tmp, paths


def test_harmonic_reference_forces_are_gradients():
    R0, _ = methanol()
    R = R0 + np.random.default_rng(5).normal(scale=0.05, size=(1, len(R0), 3))
    E, F = harmonic_network(R, R0)
    h = 1e-6
    Rp = R.copy()
    Rp[0, 2, 1] += h
    assert -(harmonic_network(Rp, R0)[0][0] - E[0]) / h == pytest.approx(F[0, 2, 1], rel=1e-4)


def test_sgdml_learns_forces(data):
    tmp, paths = data
    res = run_sgdml_baseline(
        paths["train"],
        paths["valid"],
        paths["test"],
        tmp / "sgdml.json",
        tmp / "sgdml_pred.npz",
        sigmas=(2, 5, 10, 20),
        max_processes=1,
        out_model=tmp / "sgdml_model.npz",
    )
    with np.load(paths["test"]) as t:
        F_std_kcal = t["F"].std() * KCAL_PER_EV
        E_std_kcal = t["E"].std() * KCAL_PER_EV
    assert F_std_kcal > 5.0  # the data have real forces
    assert res["force_mae_kcal"] < 0.1 * F_std_kcal
    assert res["energy_mae_kcal"] < 0.2 * E_std_kcal  # absolute energies, via sgdml's integration constant
    assert res["force_mae_mev"] == pytest.approx(units.kcal_to_mev(res["force_mae_kcal"]))
    assert res["n_test"] == 60 and res["n_train"] == 25 and res["n_valid"] == 25
    assert res["sigma"] in (2, 5, 10, 20)
    assert set(res["valid_force_mae_kcal_by_sigma"]) == {"2", "5", "10", "20"}
    assert res["valid_force_mae_kcal"] == min(res["valid_force_mae_kcal_by_sigma"].values())
    assert res["solver"] == "analytic"
    assert res["train_wall_s"] > 0 and res["search_wall_s"] >= res["train_wall_s"]
    assert json.loads((tmp / "sgdml.json").read_text())["method"] == "sgdml"
    with np.load(tmp / "sgdml_pred.npz") as p:
        assert p["F_pred"].shape == (60, 6, 3)
        np.testing.assert_array_equal(p["frame_id"], np.arange(60) + 100)
        np.testing.assert_allclose(np.abs(p["F_pred"] - p["F_ref"]).mean(), res["force_mae_kcal"])
    with np.load(tmp / "sgdml_model.npz", allow_pickle=True) as m:
        assert str(m["type"]) == "m" and float(m["sig"]) == res["sigma"]


def test_identical_train_and_valid_rejected(data):
    tmp, paths = data
    with pytest.raises(ValueError, match="identical"):
        run_sgdml_baseline(
            paths["train"], paths["train"], paths["test"], tmp / "x.json", tmp / "x.npz", sigmas=(10,), max_processes=1
        )


def test_importing_the_baseline_leaves_logging_alone():
    """sgdml replaces the logger class at import; later loggers (torch's) must stay standard."""
    import logging

    import pipeline.evaluation.sgdml_baseline  # noqa: F401

    assert logging.getLoggerClass() is logging.Logger
