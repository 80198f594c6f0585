"""Unit conversions, done once, here.

Storage units (datasets on disk, MD17/sGDML convention used by this project):
  positions: Angstrom, energies: eV, forces: eV/Angstrom.
Training units (losses, gamma, reported errors): kcal/mol and kcal/mol/Angstrom,
the units in which the ASTEROID paper states gamma and force errors.
OpenMM (kJ/mol, nm) and PySCF/xTB (Hartree, Bohr) values are converted with the factors below.
"""

from __future__ import annotations

from ase import units as ase_units
from ase.units import create_units

# Physical constants come from ASE (ase.units), never typed by hand. CODATA 2018 is pinned (ASE's
# own default set is older, 2014) so that the numbers do not move with the ASE version.
_ASE = create_units("2018")
EV = _ASE["eV"]  # ASE's energy unit is the eV and its length unit the Angstrom
HARTREE_EV = _ASE["Hartree"] / EV
BOHR_ANGSTROM = _ASE["Bohr"]
KCAL_PER_MOL_EV = _ASE["kcal"] / _ASE["mol"] / EV  # 1 kcal/mol in eV
KJ_PER_MOL_EV = _ASE["kJ"] / _ASE["mol"] / EV  # 1 kJ/mol in eV
NM_ANGSTROM = _ASE["nm"]
# 1 fs in ASE's time unit (Angstrom sqrt(amu/eV)) as ASE's own dynamics use it: from ASE's default
# constants (the ones its integrators are built on), not the pinned set above.
ASE_FS = ase_units.fs
BOLTZMANN_EV_PER_K = _ASE["kB"] / EV
BOLTZMANN_KCAL_PER_MOL_K = BOLTZMANN_EV_PER_K / KCAL_PER_MOL_EV
BOLTZMANN_KJ_PER_MOL_K = BOLTZMANN_EV_PER_K / KJ_PER_MOL_EV  # the molar gas constant R in kJ/mol/K

# Factors that take a value in the named unit to the storage unit.
ENERGY_TO_EV = {
    "eV": 1.0,
    "Ha": HARTREE_EV,
    "Hartree": HARTREE_EV,
    "kcal/mol": KCAL_PER_MOL_EV,
    "kJ/mol": KJ_PER_MOL_EV,
    "meV": 1e-3,
}
LENGTH_TO_ANGSTROM = {
    "Ang": 1.0,
    "Angstrom": 1.0,
    "A": 1.0,
    "Bohr": BOHR_ANGSTROM,
    "bohr": BOHR_ANGSTROM,
    "nm": NM_ANGSTROM,
}


def energy_factor(unit: str) -> float:
    """Factor from `unit` to eV. Unknown units raise with the valid choices."""
    try:
        return ENERGY_TO_EV[unit]
    except KeyError:
        raise ValueError(f"unknown energy unit {unit!r}; valid: {', '.join(sorted(ENERGY_TO_EV))}") from None


def length_factor(unit: str) -> float:
    """Factor from `unit` to Angstrom. Unknown units raise with the valid choices."""
    try:
        return LENGTH_TO_ANGSTROM[unit]
    except KeyError:
        raise ValueError(f"unknown length unit {unit!r}; valid: {', '.join(sorted(LENGTH_TO_ANGSTROM))}") from None


def force_factor(energy_unit: str, length_unit: str) -> float:
    """Factor from `energy_unit/length_unit` to eV/Angstrom."""
    return energy_factor(energy_unit) / length_factor(length_unit)


def ev_to_kcal(x):
    """eV (or eV/A) -> kcal/mol (or kcal/mol/A)."""
    return x / KCAL_PER_MOL_EV


def kcal_to_ev(x):
    return x * KCAL_PER_MOL_EV


def hartree_to_ev(x):
    return x * HARTREE_EV


def hartree_per_bohr_to_ev_per_angstrom(x):
    return x * HARTREE_EV / BOHR_ANGSTROM


def kcal_to_mev(x):
    """kcal/mol(/A) -> meV(/A)."""
    return x * KCAL_PER_MOL_EV * 1e3


def kt_kcal(temperature_k: float) -> float:
    """k_B T in kcal/mol."""
    return BOLTZMANN_KCAL_PER_MOL_K * temperature_k
