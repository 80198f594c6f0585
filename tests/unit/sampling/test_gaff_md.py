"""GAFF2 through AmberTools for ethanol and aspirin, and a short OpenMM run."""

import numpy as np
import pytest

from pipeline import units
from pipeline.molecules import BUILTIN_SMILES, MoleculeError, MoleculeSpec, get_spec
from pipeline.sampling.gaff import build_gaff2
from pipeline.sampling.md import degrees_of_freedom, run_md


@pytest.mark.parametrize("name,n_atoms", [("ethanol", 9), ("aspirin", 21)])
def test_gaff2_build(tmp_path, name, n_atoms):
    import openmm.app as app

    p = tmp_path / "m"
    with open(tmp_path / "tools.log", "w") as log:
        build_gaff2(get_spec(name), f"{p}.prmtop", f"{p}.inpcrd", f"{p}.sdf", log=log)
    prm = app.AmberPrmtopFile(f"{p}.prmtop")
    assert prm.topology.getNumAtoms() == n_atoms
    # GAFF2 atom types and AM1-BCC charges summing to the net charge (0)
    text = open(f"{p}.prmtop").read()
    assert "AMBER_ATOM_TYPE" in text
    system = prm.createSystem()
    import openmm as mm

    nb = next(f for f in system.getForces() if isinstance(f, mm.NonbondedForce))
    q = [nb.getParticleParameters(i)[0]._value for i in range(nb.getNumParticles())]
    assert abs(sum(q)) < 1e-3 and max(abs(x) for x in q) > 0.1


def test_short_md_gives_frames_with_consistent_forces(tmp_path):
    import openmm as mm
    import openmm.app as app
    import openmm.unit as u

    p = tmp_path / "eth"
    build_gaff2(get_spec("ethanol"), f"{p}.prmtop", f"{p}.inpcrd", f"{p}.sdf")
    ds = run_md(
        f"{p}.prmtop",
        f"{p}.inpcrd",
        temperature_K=500,
        timestep_fs=0.5,
        friction_per_ps=1.0,
        equilibration_steps=1000,
        stride=20,
        n_frames=30,
        seed=3,
        log_csv=str(tmp_path / "t.csv"),
    )
    assert ds.R.shape == (30, 9, 3) and ds.F.shape == (30, 9, 3)
    assert ds.meta["platform"] == "Reference"
    assert 250 < ds.meta["mean_temperature_K"] < 800
    # same seed -> same trajectory (cached labels stay valid across reruns)
    again = run_md(
        f"{p}.prmtop",
        f"{p}.inpcrd",
        temperature_K=500,
        timestep_fs=0.5,
        friction_per_ps=1.0,
        equilibration_steps=1000,
        stride=20,
        n_frames=30,
        seed=3,
    )
    np.testing.assert_allclose(again.R, ds.R)
    # stored forces are -dE/dx of stored energies (eV, eV/A): check one component by finite differences
    prm = app.AmberPrmtopFile(f"{p}.prmtop")
    ctx = mm.Context(prm.createSystem(), mm.VerletIntegrator(1.0), mm.Platform.getPlatformByName("Reference"))

    def energy(R):
        ctx.setPositions(R * u.angstrom)
        return (
            ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole) * units.KJ_PER_MOL_EV
        )

    h, R = 1e-4, ds.R[5].copy()
    assert energy(R) == pytest.approx(ds.E[5], abs=1e-6)
    Rp, Rm = R.copy(), R.copy()
    Rp[2, 0] += h
    Rm[2, 0] -= h
    assert ds.F[5, 2, 0] == pytest.approx(-(energy(Rp) - energy(Rm)) / (2 * h), rel=1e-4, abs=1e-4)


def test_builtin_md17_set_and_errors():
    assert {
        "ethanol",
        "aspirin",
        "malonaldehyde",
        "benzene",
        "toluene",
        "naphthalene",
        "salicylic_acid",
        "uracil",
    } <= set(BUILTIN_SMILES)
    with pytest.raises(MoleculeError, match="unknown molecule 'ethanoll'.*built-in: aspirin"):
        get_spec("ethanoll")
    from pipeline.molecules import to_rdkit

    with pytest.raises(MoleculeError, match="cannot parse SMILES 'C1CC'"):
        to_rdkit(MoleculeSpec(name="bad", smiles="C1CC"))


def test_temperature_counts_the_degrees_of_freedom_the_system_has(tmp_path):
    """OpenMM removes centre-of-mass motion (3N - 3 dof); 3N would read ethanol 11% cold."""
    import openmm.app as app
    import pandas as pd

    p = tmp_path / "eth"
    build_gaff2(get_spec("ethanol"), f"{p}.prmtop", f"{p}.inpcrd", f"{p}.sdf")
    prm = app.AmberPrmtopFile(f"{p}.prmtop")
    assert degrees_of_freedom(prm.createSystem()) == 3 * 9 - 3
    assert degrees_of_freedom(prm.createSystem(removeCMMotion=False)) == 3 * 9
    assert degrees_of_freedom(prm.createSystem(constraints=app.HBonds)) == 3 * 9 - 3 - 6
    # a long thermostatted run averages to the bath temperature (with 3N dof it would read ~444 K)
    ds = run_md(
        f"{p}.prmtop",
        f"{p}.inpcrd",
        temperature_K=500,
        timestep_fs=0.5,
        friction_per_ps=5.0,
        equilibration_steps=20000,
        stride=10,
        n_frames=6000,
        seed=1,
        log_csv=str(tmp_path / "t.csv"),
    )
    mean_t = pd.read_csv(tmp_path / "t.csv")["temperature_K"].mean()
    assert mean_t == pytest.approx(500, rel=0.04) and ds.meta["mean_temperature_K"] == pytest.approx(mean_t)


def test_md_that_blows_up_is_rejected_naming_frame_key_and_fix(tmp_path):
    from pipeline.data import DatasetError

    p = tmp_path / "eth"
    build_gaff2(get_spec("ethanol"), f"{p}.prmtop", f"{p}.inpcrd", f"{p}.sdf")
    with pytest.raises(
        DatasetError,
        match=r"MD of ethanol \(GAFF2 labels\): non-finite values .*frame 0 key E: NaN"
        r".*lower sampling.timestep_fs \(now 8\)",
    ):
        run_md(
            f"{p}.prmtop",
            f"{p}.inpcrd",
            temperature_K=500,
            timestep_fs=8,
            friction_per_ps=1.0,
            equilibration_steps=100,
            stride=10,
            n_frames=20,
            seed=0,
            name="ethanol",
        )
