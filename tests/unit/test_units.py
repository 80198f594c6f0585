import numpy as np
import pytest

from pipeline import units


def test_hartree_and_bohr_conversions():
    assert units.hartree_to_ev(1.0) == pytest.approx(27.211386, rel=1e-7)
    # 1 Hartree/Bohr = 51.422 eV/A
    assert units.hartree_per_bohr_to_ev_per_angstrom(1.0) == pytest.approx(51.42206747, rel=1e-7)


def test_kcal_round_trip_and_known_value():
    assert units.ev_to_kcal(1.0) == pytest.approx(23.0605, rel=1e-5)
    x = np.array([0.3, -2.0])
    np.testing.assert_allclose(units.kcal_to_ev(units.ev_to_kcal(x)), x)
    assert units.kcal_to_mev(1.0) == pytest.approx(43.3641, rel=1e-5)


def test_force_factor_md17_units():
    # MD17 stores kcal/mol and kcal/mol/A
    assert units.force_factor("kcal/mol", "Ang") == pytest.approx(0.0433641, rel=1e-6)
    assert units.force_factor("Ha", "Bohr") == pytest.approx(51.42206747, rel=1e-7)


def test_kt_at_500k():
    assert units.kt_kcal(500.0) == pytest.approx(0.99357, rel=1e-4)


def test_unknown_unit_names_valid_ones():
    with pytest.raises(ValueError, match="unknown energy unit 'kcal'.*kcal/mol"):
        units.energy_factor("kcal")
    with pytest.raises(ValueError, match="unknown length unit 'pm'.*Ang"):
        units.length_factor("pm")
