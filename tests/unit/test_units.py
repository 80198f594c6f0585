"""pipeline.units: every constant from ASE's CODATA 2018 set; checked here against ASE's default
constants (an older CODATA set: they agree to better than 1e-6) and known values."""

import ase.units
import numpy as np
import pytest

from pipeline import units

MOLAR_KCAL = ase.units.kcal / ase.units.mol  # 1 kcal/mol in eV (ASE's default CODATA set)


def test_hartree_and_bohr_conversions():
    assert units.hartree_to_ev(1.0) == pytest.approx(ase.units.Hartree, rel=1e-6)
    # 1 Hartree/Bohr = 51.422 eV/A
    assert units.hartree_per_bohr_to_ev_per_angstrom(1.0) == pytest.approx(ase.units.Hartree / ase.units.Bohr, rel=1e-6)


def test_kcal_round_trip_and_known_value():
    assert units.ev_to_kcal(1.0) == pytest.approx(1 / MOLAR_KCAL, rel=1e-6)
    assert 23.06 < units.ev_to_kcal(1.0) < 23.061  # the textbook 23.06 kcal/mol per eV
    x = np.array([0.3, -2.0])
    np.testing.assert_allclose(units.kcal_to_ev(units.ev_to_kcal(x)), x)
    assert units.kcal_to_mev(1.0) == pytest.approx(1e3 * MOLAR_KCAL, rel=1e-6)


def test_force_factor_md17_units():
    # MD17 stores kcal/mol and kcal/mol/A
    assert units.force_factor("kcal/mol", "Ang") == pytest.approx(MOLAR_KCAL, rel=1e-6)
    assert units.force_factor("kJ/mol", "nm") == pytest.approx(ase.units.kJ / ase.units.mol / ase.units.nm, rel=1e-6)
    assert units.force_factor("Ha", "Bohr") == pytest.approx(ase.units.Hartree / ase.units.Bohr, rel=1e-6)


def test_kt_and_gas_constant():
    assert units.kt_kcal(500.0) == pytest.approx(500.0 * ase.units.kB / MOLAR_KCAL, rel=1e-6)
    assert units.BOLTZMANN_KJ_PER_MOL_K == pytest.approx(ase.units.kB / (ase.units.kJ / ase.units.mol), rel=1e-6)
    assert 0.99 < units.kt_kcal(500.0) < 0.994  # R T = 0.9936 kcal/mol at 500 K


def test_ase_time_unit_is_the_one_ase_dynamics_use():
    assert units.ASE_FS == ase.units.fs


def test_unknown_unit_names_valid_ones():
    with pytest.raises(ValueError, match="unknown energy unit 'kcal'.*kcal/mol"):
        units.energy_factor("kcal")
    with pytest.raises(ValueError, match="unknown length unit 'pm'.*Ang"):
        units.length_factor("pm")
