"""Error metrics and the evaluation writer on hand-made arrays with known answers."""

import json

import numpy as np
import pytest

from pipeline import units
from pipeline.data import Dataset
from pipeline.evaluation.predict import metrics, write_evaluation

MEV_PER_KCAL = units.kcal_to_mev(1.0)  # 1 kcal/mol in meV


def test_known_mae_rmse():
    E_ref = np.zeros(3)
    E_pred = np.array([1.0, -2.0, 3.0])
    F_ref = np.zeros((2, 2, 3))
    F_pred = np.stack([np.ones((2, 3)), -3.0 * np.ones((2, 3))])  # errors: six 1s, six 3s
    m = metrics(E_pred, F_pred, E_ref, F_ref)
    assert m["energy_mae_kcal"] == pytest.approx(2.0)
    assert m["energy_rmse_kcal"] == pytest.approx(np.sqrt(14.0 / 3.0))
    assert m["force_mae_kcal"] == pytest.approx(2.0)
    assert m["force_rmse_kcal"] == pytest.approx(np.sqrt(5.0))
    assert m["force_mae_mev"] == pytest.approx(2.0 * MEV_PER_KCAL)
    assert m["force_rmse_mev"] == pytest.approx(np.sqrt(5.0) * MEV_PER_KCAL)
    assert m["energy_mae_mev"] == pytest.approx(2.0 * MEV_PER_KCAL)


def test_energy_error_is_on_absolute_energies():
    # A constant offset is an error (no per-set shift is removed).
    m = metrics(np.array([5.0, 6.0]), np.zeros((2, 1, 3)), np.array([4.0, 5.0]), np.zeros((2, 1, 3)))
    assert m["energy_mae_kcal"] == pytest.approx(1.0)
    assert m["force_mae_kcal"] == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="F_pred"):
        metrics(np.zeros(2), np.zeros((2, 3, 3)), np.zeros(2), np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="E_pred"):
        metrics(np.zeros(3), np.zeros((2, 3, 3)), np.zeros(2), np.zeros((2, 3, 3)))


def test_write_evaluation_converts_ev_reference_to_kcal(tmp_path):
    rng = np.random.default_rng(0)
    R = rng.normal(size=(4, 3, 3))
    E_kcal = np.array([-100.0, -101.0, -99.5, -100.5])
    F_kcal = rng.normal(size=(4, 3, 3))
    ev_per_kcal = MEV_PER_KCAL * 1e-3
    test = Dataset(
        R=R, z=np.array([8, 1, 1]), E=E_kcal * ev_per_kcal, F=F_kcal * ev_per_kcal, frame_id=np.arange(10, 14)
    )
    F_pred = F_kcal + 0.5
    res = write_evaluation(tmp_path / "m.json", tmp_path / "p.npz", E_kcal + 2.0, F_pred, test, {"method": "toy"})
    assert res["energy_mae_kcal"] == pytest.approx(2.0)
    assert res["force_mae_kcal"] == pytest.approx(0.5)
    assert res["n_test"] == 4
    on_disk = json.loads((tmp_path / "m.json").read_text())
    assert on_disk["force_mae_mev"] == pytest.approx(0.5 * MEV_PER_KCAL)
    assert on_disk["method"] == "toy"
    with np.load(tmp_path / "p.npz") as p:
        np.testing.assert_allclose(p["E_ref"], E_kcal)
        np.testing.assert_allclose(p["F_ref"], F_kcal)
        np.testing.assert_allclose(p["F_pred"], F_pred)
        np.testing.assert_array_equal(p["frame_id"], np.arange(10, 14))
        assert str(p["e_unit"]) == "kcal/mol" and str(p["r_unit"]) == "Ang"
