"""Δ-learning at prediction time: forces = cheap forces − ∇ correction (finite differences, xTB on
ethanol), the test predictions add the cheap test labels, the prediction cost includes the cheap level."""

import copy
import json

import numpy as np
import pytest
import torch
from ase import Atoms

from pipeline import units
from pipeline.data import Dataset
from pipeline.delta import CheapPotential, DeltaError
from pipeline.evaluation.calculator import ModelCalculator, load_forcefield
from pipeline.evaluation.delta_prediction import DeltaCalculator, evaluate_delta
from pipeline.labelling.levels import make_level
from pipeline.models import build, save_model
from tests.conftest import ETHANOL_R, ETHANOL_Z

from .test_calculator import fd_forces
from .test_predict import SMALL_EGNN

# Tight SCC convergence so that energy differences over 1e-3 A resolve the forces.
XTB = {"engine": "xtb", "method": "GFN2-xTB", "accuracy": 1e-4}


def _delta_model(path, entry=XTB, level="xtb"):
    torch.manual_seed(0)
    model = build("egnn", **SMALL_EGNN).double()  # float64 so that finite differences are exact enough
    model.set_normalization(0.0, 200.0)  # a correction of several kcal/mol/A (the untrained output is tiny)
    save_model(
        model,
        path,
        extra={
            "stage": "delta",
            "model_name": "egnn",
            "cheap_level": level,
            "cheap_entry": entry,
            "n_train": 4,
            "seed": 0,
        },
    )
    return path


@pytest.fixture
def geometry():
    return ETHANOL_R + 0.04 * np.random.default_rng(1).standard_normal(ETHANOL_R.shape)


def test_delta_forces_are_cheap_forces_minus_gradient_of_correction(tmp_path, geometry):
    calc = DeltaCalculator(_delta_model(tmp_path / "d.pt"), z=ETHANOL_Z)
    atoms = Atoms(numbers=ETHANOL_Z, positions=geometry)
    atoms.calc = calc
    F = atoms.get_forces()
    # the parts: xTB's own forces plus the model's (-grad of the correction), eV/A
    xtb = make_level("xtb", XTB).compute(ETHANOL_Z, geometry)
    corr = Atoms(numbers=ETHANOL_Z, positions=geometry)
    corr.calc = ModelCalculator(calc.model)
    np.testing.assert_allclose(F, xtb.forces + corr.get_forces(), atol=1e-8)
    assert atoms.get_potential_energy() == pytest.approx(xtb.energy + corr.get_potential_energy(), abs=1e-8)
    assert np.abs(corr.get_forces()).max() > 0.1  # the correction is far above the tolerance below
    # and the total is -dE/dx of the total energy
    np.testing.assert_allclose(F, fd_forces(atoms, h=1e-3), atol=2e-3)


def test_failed_cheap_calculation_gives_nan_not_a_crash(tmp_path, geometry):
    calc = DeltaCalculator(_delta_model(tmp_path / "d.pt"), z=ETHANOL_Z)
    atoms = Atoms(numbers=ETHANOL_Z, positions=np.zeros_like(geometry))  # all atoms on one point
    atoms.calc = calc
    assert not np.isfinite(atoms.get_potential_energy())
    assert not np.isfinite(atoms.get_forces()).any()


def test_imported_levels_cannot_be_computed_at_new_geometries(tmp_path):
    data = tmp_path / "d.npz"
    Dataset(R=ETHANOL_R[None], z=ETHANOL_Z, E=np.zeros(1), F=np.zeros((1, 9, 3))).save(data)
    with pytest.raises(DeltaError, match="cannot be computed at new geometries"):
        CheapPotential("md17", {"engine": "file", "path": str(data)}, ETHANOL_Z)
    with pytest.raises(DeltaError, match="prmtop"):
        CheapPotential("empirical", {"engine": "empirical"}, ETHANOL_Z)


def test_evaluation_adds_cheap_test_labels_and_costs_the_cheap_level(tmp_path):
    rng = np.random.default_rng(2)
    R = ETHANOL_R[None] + 0.03 * rng.standard_normal((4, 9, 3))
    level = make_level("xtb", XTB)
    labels = [level.compute(ETHANOL_Z, r) for r in R]
    E_x, F_x = np.array([lab.energy for lab in labels]), np.stack([lab.forces for lab in labels])
    # "accurate" test labels: xTB + a known shift; the cheap test set misses frame 12 (an outlier dropped)
    test = Dataset(R=R, z=ETHANOL_Z, E=E_x + 1.0, F=F_x + 0.05, frame_id=np.array([10, 11, 12, 13]))
    test.save(tmp_path / "test.npz")
    keep = [0, 1, 3]
    Dataset(
        R=R[keep], z=ETHANOL_Z, E=E_x[keep], F=F_x[keep], frame_id=np.array([10, 11, 13]), cpu_s=np.full(3, 0.004)
    ).save(tmp_path / "cheap_test.npz")
    model_path = _delta_model(tmp_path / "d.pt")
    res = evaluate_delta(
        model_path, tmp_path / "test.npz", tmp_path / "cheap_test.npz", tmp_path / "eval.json", tmp_path / "pred.npz"
    )
    with np.load(tmp_path / "pred.npz") as p:
        model = copy.deepcopy(DeltaCalculator(model_path, z=ETHANOL_Z).model)
        from pipeline.evaluation.predict import predict

        E_m, F_m = predict(model, R, ETHANOL_Z)
        np.testing.assert_allclose(p["F_pred"], units.ev_to_kcal(F_x) + F_m, atol=1e-5)  # frame 12 computed here
        np.testing.assert_allclose(p["E_pred"], units.ev_to_kcal(E_x) + E_m, atol=1e-5)
        assert list(p["frame_id"]) == [10, 11, 12, 13]
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["method"] == "delta" and ev["model_extra"]["stage"] == "delta" and ev["cheap_level"] == "xtb"
    assert ev["n_test_cheap_computed"] == 1 and ev["n_test_cheap_from_labels"] == 3
    assert ev["predict_cheap_cpu_s_per_frame"] == pytest.approx(0.004)
    assert ev["predict_cpu_s_per_frame"] == pytest.approx(0.004 + ev["predict_model_cpu_s_per_frame"])
    assert ev["predict_model_cpu_s_per_frame"] > 0 and res["n_test"] == 4


def test_an_exported_delta_force_field_loads_with_its_cheap_level(tmp_path, geometry):
    """load_forcefield on a Δ export: the cheap level is rebuilt from the model file for the atoms it
    is given, and gives what an explicitly built DeltaCalculator gives; other atoms are refused."""
    ff = tmp_path / "forcefield"
    ff.mkdir()
    _delta_model(ff / "model.pt")
    (ff / "metadata.json").write_text(json.dumps({"calculator": "DeltaCalculator", "prmtop": None}))
    calc = load_forcefield(ff)
    assert isinstance(calc, DeltaCalculator) and calc.potential is None  # built at the first call
    atoms = Atoms(numbers=ETHANOL_Z, positions=geometry)
    atoms.calc = calc
    ref = Atoms(numbers=ETHANOL_Z, positions=geometry)
    ref.calc = DeltaCalculator(ff / "model.pt", z=ETHANOL_Z)
    np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-10)
    assert calc.potential.name == "xtb"
    water = Atoms(numbers=[8, 1, 1], positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    water.calc = calc
    with pytest.raises(DeltaError, match="one calculator per molecule"):
        water.get_forces()


def test_a_plain_model_is_refused_as_a_delta_model(tmp_path):
    torch.manual_seed(0)
    save_model(build("egnn", **SMALL_EGNN), tmp_path / "m.pt", extra={"stage": "standard", "model_name": "egnn"})
    with pytest.raises(DeltaError, match="not a Δ model"):
        DeltaCalculator(tmp_path / "m.pt")
