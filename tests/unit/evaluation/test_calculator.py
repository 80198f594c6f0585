"""ASE calculator: eV units, and forces equal to minus the finite-difference energy gradient."""

import copy
import json

import numpy as np
import pytest
import torch
from ase import Atoms

from pipeline import units
from pipeline.evaluation.calculator import ModelCalculator, load_forcefield
from pipeline.evaluation.predict import predict
from pipeline.models import build, save_model

from .test_predict import SMALL_EGNN
from .toy_models import HarmonicModel, methanol

EV_PER_KCAL = units.KCAL_PER_MOL_EV


def with_calc(z, R, calc):
    atoms = Atoms(numbers=z, positions=R)
    atoms.calc = calc
    return atoms


def fd_forces(atoms, h=1e-4):
    """-dE/dx by central differences, eV/Angstrom."""
    F = np.zeros((len(atoms), 3))
    for a in range(len(atoms)):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.calc = minus.calc = atoms.calc
            plus.positions[a, c] += h
            minus.positions[a, c] -= h
            F[a, c] = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
    return F


@pytest.fixture
def distorted():
    R0, z = methanol()
    R = R0 + np.random.default_rng(3).normal(scale=0.08, size=R0.shape)
    return R0, R, z


def test_energy_and_forces_in_ev(distorted):
    R0, R, z = distorted
    model = HarmonicModel(R0)
    E_kcal, F_kcal = predict(model, R[None], z)
    atoms = with_calc(z, R, ModelCalculator(model))
    assert atoms.get_potential_energy() == pytest.approx(E_kcal[0] * EV_PER_KCAL, rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), F_kcal[0] * EV_PER_KCAL, rtol=1e-12)
    assert atoms.get_potential_energy() > 0.01  # a real, non-trivial energy


def test_toy_forces_match_finite_differences(distorted):
    R0, R, z = distorted
    atoms = with_calc(z, R, ModelCalculator(HarmonicModel(R0)))
    F = atoms.get_forces()
    np.testing.assert_allclose(F, fd_forces(atoms), rtol=1e-6, atol=1e-8)
    assert np.abs(F).max() > 0.1


def test_egnn_forces_match_finite_differences(distorted, tmp_path):
    _, R, z = distorted
    torch.manual_seed(0)
    model = build("egnn", **SMALL_EGNN)
    save_model(model, tmp_path / "m.pt")
    calc = ModelCalculator(tmp_path / "m.pt")  # loads from a path too
    calc.model = copy.deepcopy(calc.model).double()  # float64 so that finite differences are exact enough
    atoms = with_calc(z, R, calc)
    F = atoms.get_forces()
    np.testing.assert_allclose(F, fd_forces(atoms, h=1e-5), rtol=1e-5, atol=1e-7)
    assert np.abs(F).max() > 1e-4


def test_load_forcefield_reads_the_export_and_names_a_wrong_directory(distorted, tmp_path):
    """A plain export (an export written before the `calculator` key counts as one) loads as a
    ModelCalculator with the model's predictions; a directory without metadata.json is named."""
    _, R, z = distorted
    torch.manual_seed(0)
    save_model(build("egnn", **SMALL_EGNN), tmp_path / "model.pt")
    (tmp_path / "metadata.json").write_text(json.dumps({"method": "standard"}))
    calc = load_forcefield(tmp_path)
    assert isinstance(calc, ModelCalculator)
    E, _ = predict(calc.model, R[None], z)
    assert with_calc(z, R, calc).get_potential_energy() == pytest.approx(E[0] * EV_PER_KCAL, rel=1e-6)
    (tmp_path / "metadata.json").write_text(json.dumps({"calculator": "Mystery"}))
    with pytest.raises(ValueError, match="unknown calculator 'Mystery'"):
        load_forcefield(tmp_path)
    with pytest.raises(FileNotFoundError, match="forcefield/ directory"):
        load_forcefield(tmp_path / "nowhere")


def test_a_committee_reports_its_force_disagreement_and_keeps_the_models_own_forces(distorted, tmp_path):
    """With members, every call also reports the spread of the members' and the model's forces (eV/Å);
    the energy and forces stay the model's own. A member equal to the model disagrees by zero."""
    from pipeline.selection import committee_disagreement

    _, R, z = distorted
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        save_model(build("egnn", **SMALL_EGNN), tmp_path / f"m{seed}.pt")
        paths.append(tmp_path / f"m{seed}.pt")
    alone = with_calc(z, R, ModelCalculator(paths[0]))
    calc = ModelCalculator(paths[0], committee=paths[1:])
    atoms = with_calc(z, R, calc)
    np.testing.assert_allclose(atoms.get_forces(), alone.get_forces(), rtol=1e-12)
    F = np.stack([predict(ModelCalculator(p).model, R[None], z)[1] for p in paths])  # [3, 1, n_atoms, 3] kcal
    want = units.kcal_to_ev(committee_disagreement(F)[0])
    assert calc.results["force_disagreement"] == pytest.approx(want, rel=1e-6) and want > 1e-4
    assert "force_disagreement" not in alone.calc.results
    same = with_calc(z, R, ModelCalculator(paths[0], committee=[paths[0]]))
    same.get_forces()
    assert same.calc.results["force_disagreement"] == pytest.approx(0.0, abs=1e-9)


def test_load_forcefield_gives_the_exported_committee(distorted, tmp_path):
    _, R, z = distorted
    (tmp_path / "committee").mkdir()
    for name in ("model.pt", "committee/s1.pt"):
        torch.manual_seed(len(name))
        save_model(build("egnn", **SMALL_EGNN), tmp_path / name)
    meta = {"calculator": "ModelCalculator", "committee": {"members": ["committee/s1.pt"], "seeds": [1]}}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    atoms = with_calc(z, R, load_forcefield(tmp_path))
    atoms.get_forces()
    assert atoms.calc.results["force_disagreement"] > 0


class _ThreadRecordingModel(HarmonicModel):
    """The harmonic toy model, recording torch's intra-op threads at every call."""

    def __init__(self, R0):
        super().__init__(R0)
        self.seen_threads = []

    def forward(self, z, pos, batch):
        self.seen_threads.append(torch.get_num_threads())
        return super().forward(z, pos, batch)


@pytest.mark.parametrize("threads, inside", [(1, 1), (None, 2)])
def test_each_call_runs_on_its_threads_and_restores_torchs(distorted, threads, inside):
    """A molecule of tens of atoms runs on one thread by default (more made MD steps ~70x slower on
    shared cores); the caller's setting comes back after the call, and None leaves it alone."""
    R0, R, z = distorted
    model = _ThreadRecordingModel(R0)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        atoms = with_calc(z, R, ModelCalculator(model, threads=threads))
        atoms.get_forces()
        assert model.seen_threads == [inside]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
