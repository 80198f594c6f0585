"""Each computed engine's forces equal minus the finite-difference gradient of its energy."""

import numpy as np
import pytest

from pipeline.labelling.levels import LEVELS, LevelError, make_level
from tests.conftest import WATER_R, WATER_Z

ENGINES = {
    "dft": {"engine": "dft", "xc": "PBE", "basis": "sto-3g", "density_fit": False, "grid_level": 3},
    # 6-31G, not sto-3g, for the coupled-cluster engines: in a minimal basis the (T) correction is
    # so small that forces from the wrong (CCSD instead of CCSD(T)) Lambda equations pass the test.
    "ccsd": {"engine": "ccsd", "basis": "6-31G", "frozen_core": True},
    "ccsd_t": {"engine": "ccsd_t", "basis": "6-31G", "frozen_core": True},
    "xtb": {"engine": "xtb", "method": "GFN2-xTB"},
}


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_forces_are_minus_energy_gradient(name):
    level = make_level(name, ENGINES[name])
    R = WATER_R + np.array([[0.0, 0.02, 0.01], [0.01, -0.03, 0.0], [0.0, 0.0, 0.04]])
    label = level.compute(WATER_Z, R)
    assert label.converged and label.forces.shape == (3, 3)
    h = 1e-3  # Angstrom
    for atom, comp in [(0, 2), (1, 1), (2, 0)]:
        Rp, Rm = R.copy(), R.copy()
        Rp[atom, comp] += h
        Rm[atom, comp] -= h
        fd = -(level.compute(WATER_Z, Rp).energy - level.compute(WATER_Z, Rm).energy) / (2 * h)
        assert label.forces[atom, comp] == pytest.approx(fd, rel=5e-4, abs=1e-4), (atom, comp)


def test_registry_lists_engines():
    assert set(LEVELS) == {"empirical", "dft", "ccsd", "ccsd_t", "xtb", "file"}
    with pytest.raises(LevelError, match="unknown engine 'mp2'.*valid: empirical, dft"):
        make_level("x", {"engine": "mp2"})


def test_unknown_basis_functional_and_key():
    with pytest.raises(LevelError, match="unknown basis set '6-31GXX'"):
        make_level("dft", {"engine": "dft", "basis": "6-31GXX"})
    with pytest.raises(LevelError, match="unknown exchange-correlation functional 'PBEX'"):
        make_level("dft", {"engine": "dft", "xc": "PBEX"})
    with pytest.raises(LevelError, match=r"unknown key\(s\) \['functional'\].*valid: .*xc"):
        make_level("dft", {"engine": "dft", "functional": "PBE"})
    with pytest.raises(LevelError, match="unknown xtb method 'GFN9-xTB'"):
        make_level("xtb", {"engine": "xtb", "method": "GFN9-xTB"})


def test_file_level_needs_an_existing_file(tmp_path):
    with pytest.raises(LevelError, match="does not exist"):
        make_level("md17", {"engine": "file", "path": str(tmp_path / "missing.npz")})


@pytest.mark.parametrize("name, module", [("ccsd", "ccsd_lambda"), ("ccsd_t", "ccsd_t_lambda")])
def test_unconverged_lambda_equations_fail_the_frame(name, module, monkeypatch):
    """The gradient needs converged Lambda amplitudes; PySCF would only log a warning."""
    import importlib

    lam = importlib.import_module(f"pyscf.cc.{module}")
    monkeypatch.setattr(lam, "kernel", lambda mycc, eris, t1, t2, **kw: (False, t1 * 0, t2 * 0))
    label = make_level(name, ENGINES[name]).compute(WATER_Z, WATER_R)
    assert not label.converged
    assert "Lambda equations did not converge" in label.reason
    assert np.isnan(label.forces).all()
