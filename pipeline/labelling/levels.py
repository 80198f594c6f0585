"""Levels of theory: a registry of engines, each a class built from a config entry.

Every engine returns energies in eV and forces in eV/Angstrom (storage units); conversions from
Hartree and Hartree/Bohr happen through :mod:`pipeline.units`.

Computed engines (dft, ccsd, ccsd_t, xtb) label frames one at a time; free engines (empirical,
file) take labels that already exist (GAFF2 energies and forces from the MD, or an imported file).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import units


class LevelError(ValueError):
    """A level-of-theory entry that cannot be used (unknown engine, key, basis, functional)."""


@dataclass
class Label:
    energy: float  # eV
    forces: np.ndarray  # [n_atoms, 3] eV/Angstrom
    converged: bool
    reason: str = ""
    dm: object = None  # converged density matrix, reused as the next frame's SCF guess


class Level:
    """Base class. Subclasses set ENGINE, COMPUTED and DEFAULTS (the only keys they accept)."""

    ENGINE = ""
    COMPUTED = True
    DEFAULTS: ClassVar[dict] = {}
    # Bumped when a fix changes the numbers an engine returns for the same settings; it enters the
    # label cache key and the labelling rules' params, so old labels are recomputed, never reused.
    REVISION = 0

    def __init__(self, name: str, **settings):
        unknown = sorted(set(settings) - set(self.DEFAULTS))
        if unknown:
            raise LevelError(
                f"level {name!r} (engine {self.ENGINE}): unknown key(s) {unknown}; "
                f"valid: {', '.join(sorted(self.DEFAULTS)) or 'none'}"
            )
        self.name = name
        self.settings = {**self.DEFAULTS, **settings}
        self.check()

    def check(self) -> None:
        """Parse-time validation of settings; raise LevelError naming the value and the fix."""

    def cache_token(self) -> str:
        """Canonical text of everything that changes the result (the label cache key)."""
        token = {"engine": self.ENGINE, **self.settings}
        if self.REVISION:
            token["revision"] = self.REVISION
        return json.dumps(token, sort_keys=True)

    @property
    def theory(self) -> str:
        return self.ENGINE

    def compute(self, z: np.ndarray, R: np.ndarray, dm0=None, safer: bool = False) -> Label:
        raise NotImplementedError(f"engine {self.ENGINE} takes its labels from existing data")


def _check_basis(level_name: str, basis: str) -> None:
    from pyscf import gto

    try:
        gto.basis.load(basis, "H")
    except Exception:
        raise LevelError(
            f"level {level_name!r}: unknown basis set {basis!r}; use a PySCF basis name "
            f"such as sto-3g, 6-31G, 6-31G*, cc-pVDZ, def2-SVP"
        ) from None


def _pyscf_mol(z, R, basis, charge, spin):
    from pyscf import gto

    atom = [(int(zi), tuple(ri)) for zi, ri in zip(z, R)]
    return gto.M(atom=atom, basis=basis, unit="Angstrom", charge=charge, spin=spin, verbose=0)


def _grad_to_forces(grad_hartree_bohr) -> np.ndarray:
    return -units.hartree_per_bohr_to_ev_per_angstrom(np.asarray(grad_hartree_bohr, dtype=np.float64))


class DFT(Level):
    """Kohn-Sham DFT (PySCF RKS, or UKS when spin > 0) with analytic gradients."""

    ENGINE = "dft"
    DEFAULTS: ClassVar[dict] = dict(
        xc="PBE", basis="6-31G", density_fit=True, grid_level=2, conv_tol=1e-9, max_cycle=100, charge=0, spin=0
    )

    @property
    def theory(self) -> str:
        return f"{self.settings['xc']}/{self.settings['basis']}"

    def check(self) -> None:
        from pyscf.dft import libxc

        _check_basis(self.name, self.settings["basis"])
        try:
            libxc.parse_xc(self.settings["xc"])
        except Exception:
            raise LevelError(
                f"level {self.name!r}: unknown exchange-correlation functional {self.settings['xc']!r}; "
                f"use a libxc name such as PBE, B3LYP, PBE0, wB97X-D"
            ) from None

    def _scf(self, mol, safer: bool):
        from pyscf import dft

        s = self.settings
        mf = dft.RKS(mol) if s["spin"] == 0 else dft.UKS(mol)
        mf.xc = s["xc"]
        mf.grids.level = s["grid_level"]
        mf.conv_tol = s["conv_tol"]
        mf.max_cycle = s["max_cycle"]
        if s["density_fit"]:
            mf = mf.density_fit()
        if safer:
            mf.level_shift = 0.2
            mf.max_cycle = 2 * s["max_cycle"]
            mf = mf.newton()
        return mf

    def compute(self, z, R, dm0=None, safer=False) -> Label:
        s = self.settings
        mol = _pyscf_mol(z, R, s["basis"], s["charge"], s["spin"])
        mf = self._scf(mol, safer)
        energy = mf.kernel(dm0=dm0)
        if not mf.converged:
            return Label(np.nan, np.full((len(z), 3), np.nan), False, "SCF did not converge")
        grad = mf.nuc_grad_method().kernel()
        return Label(units.hartree_to_ev(energy), _grad_to_forces(grad), True, dm=mf.make_rdm1())


# Convergence of the Lambda equations (norm of the change of l1, l2); their error enters the
# gradient linearly, and 1e-6 keeps it below 1e-4 kcal/mol/A.
LAMBDA_TOL = 1e-6


class CCSD(Level):
    """RHF -> CCSD with analytic gradients (PySCF); frozen core optional."""

    ENGINE = "ccsd"
    DEFAULTS: ClassVar[dict] = dict(
        basis="6-31G", frozen_core=True, conv_tol=1e-9, conv_tol_cc=1e-7, max_cycle=100, charge=0
    )

    @property
    def theory(self) -> str:
        fc = " (fc)" if self.settings["frozen_core"] else ""
        return f"{self.ENGINE.upper().replace('_T', '(T)')}/{self.settings['basis']}{fc}"

    def check(self) -> None:
        _check_basis(self.name, self.settings["basis"])

    def _cc(self, z, R, dm0, safer):
        """RHF then CCSD amplitudes. Returns (mycc, eris, mf, reason); mycc is None on failure."""
        from pyscf import cc, scf
        from pyscf.data import elements

        s = self.settings
        mol = _pyscf_mol(z, R, s["basis"], s["charge"], 0)
        mf = scf.RHF(mol)
        mf.conv_tol = s["conv_tol"]
        mf.max_cycle = s["max_cycle"]
        if safer:
            mf.level_shift = 0.2
            mf.max_cycle = 2 * s["max_cycle"]
            mf = mf.newton()
        mf.kernel(dm0=dm0)
        if not mf.converged:
            return None, None, mf, "RHF did not converge"
        frozen = elements.chemcore(mol) if s["frozen_core"] else None
        mycc = cc.CCSD(mf, frozen=frozen or None)
        mycc.conv_tol = s["conv_tol_cc"]
        mycc.max_cycle = s["max_cycle"]
        if safer:
            mycc.level_shift = 0.3
            mycc.diis_space = 12
            mycc.max_cycle = 3 * s["max_cycle"]
        eris = mycc.ao2mo()  # [MO integrals] built once, shared by CCSD, (T), Lambda and gradient
        mycc.kernel(eris=eris)
        if not mycc.converged:
            return None, None, mf, "CCSD amplitudes did not converge"
        return mycc, eris, mf, ""

    LAMBDA_MODULE = "ccsd_lambda"  # pyscf.cc module that solves this method's Lambda equations

    def _lambda(self, mycc, eris):
        """Lambda (de-excitation) amplitudes for the gradient. Returns (l1, l2) or None."""
        lam = importlib.import_module(f"pyscf.cc.{self.LAMBDA_MODULE}")
        converged, l1, l2 = lam.kernel(
            mycc, eris, mycc.t1, mycc.t2, max_cycle=mycc.max_cycle, tol=LAMBDA_TOL, verbose=mycc.verbose
        )
        return (l1, l2) if converged else None

    def _gradient(self, mycc, l1, l2, eris):
        return mycc.nuc_grad_method().kernel(mycc.t1, mycc.t2, l1, l2, eris=eris)

    def _energy(self, mycc, eris) -> float:
        return mycc.e_tot

    def compute(self, z, R, dm0=None, safer=False) -> Label:
        mycc, eris, mf, reason = self._cc(z, R, dm0, safer)
        if mycc is None:
            return Label(np.nan, np.full((len(z), 3), np.nan), False, reason)
        energy = self._energy(mycc, eris)  # Hartree
        lam = self._lambda(mycc, eris)
        if lam is None:
            return Label(
                np.nan,
                np.full((len(z), 3), np.nan),
                False,
                f"{self.theory.split('/')[0]} Lambda equations did not converge",
            )
        grad = self._gradient(mycc, *lam, eris)  # [n_atoms, 3] Hartree/Bohr
        return Label(units.hartree_to_ev(energy), _grad_to_forces(grad), True, dm=mf.make_rdm1())


# PySCF builds the (T) Lambda and density intermediates (triples, [o^3 v^3] doubles for the whole
# molecule) in blocks sized from the memory left under `max_memory`. By default that is one block
# of ~140 MB for ethanol, bound by memory bandwidth; blocks of a few MB stay in cache and make the
# Lambda + gradient step about 1.7x faster (ethanol, 6-31G, frozen core: ~22 s -> ~13 s per frame).
TRIPLES_BLOCK_BUDGET_MB = 20


class CCSD_T(CCSD):
    """RHF -> CCSD -> CCSD(T) with analytic gradients from the CCSD(T) Lambda equations.

    The gradient needs the (T)-corrected Lambda amplitudes (pyscf.cc.ccsd_t_lambda); PySCF's
    CCSD(T) gradient class silently falls back to the plain CCSD Lambda when none are given, which
    gives forces that are not the gradient of the CCSD(T) energy (0.35 kcal/mol/A mean error for
    ethanol/6-31G). Revision 2 fixes that; labels from revision 1 are recomputed.
    """

    ENGINE = "ccsd_t"
    REVISION = 2

    def _energy(self, mycc, eris) -> float:
        return mycc.e_tot + mycc.ccsd_t(eris=eris)

    LAMBDA_MODULE = "ccsd_t_lambda"

    def _lambda(self, mycc, eris):
        from pyscf import lib

        mycc.max_memory = lib.current_memory()[0] + TRIPLES_BLOCK_BUDGET_MB  # also used by the gradient
        return super()._lambda(mycc, eris)

    def _gradient(self, mycc, l1, l2, eris):
        from pyscf.grad import ccsd_t as ccsd_t_grad

        return ccsd_t_grad.Gradients(mycc).kernel(mycc.t1, mycc.t2, l1, l2, eris=eris)


class XTB(Level):
    """GFN-xTB through tblite: an extra cheap level (milliseconds per frame)."""

    ENGINE = "xtb"
    METHODS = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")
    DEFAULTS: ClassVar[dict] = dict(method="GFN2-xTB", charge=0, accuracy=1.0, max_iterations=250)

    @property
    def theory(self) -> str:
        return self.settings["method"]

    def check(self) -> None:
        if self.settings["method"] not in self.METHODS:
            raise LevelError(
                f"level {self.name!r}: unknown xtb method {self.settings['method']!r}; valid: {', '.join(self.METHODS)}"
            )

    def compute(self, z, R, dm0=None, safer=False) -> Label:
        from tblite.interface import Calculator

        s = self.settings
        calc = Calculator(s["method"], np.asarray(z), np.asarray(R) / units.BOHR_ANGSTROM, charge=s["charge"])
        calc.set("verbosity", 0)
        calc.set("accuracy", s["accuracy"])
        calc.set("max-iter", s["max_iterations"] * (2 if safer else 1))
        try:
            res = calc.singlepoint()
        except Exception as err:  # tblite raises on SCC non-convergence
            return Label(np.nan, np.full((len(z), 3), np.nan), False, f"tblite: {err}")
        return Label(units.hartree_to_ev(float(res.get("energy"))), _grad_to_forces(res.get("gradient")), True)


class Empirical(Level):
    """GAFF2 energies and forces recorded by the MD itself: free labels."""

    ENGINE = "empirical"
    COMPUTED = False

    @property
    def theory(self) -> str:
        return "GAFF2"


class File(Level):
    """Labels imported from a dataset file (MD17 / rMD17 / sGDML npz, or any ASE-readable file)."""

    ENGINE = "file"
    COMPUTED = False
    DEFAULTS: ClassVar[dict] = dict(path=None, energy_unit=None, length_unit=None, theory=None)

    @property
    def theory(self) -> str:
        return self.settings["theory"] or f"file:{self.settings['path']}"

    def check(self) -> None:
        from pathlib import Path

        if not self.settings["path"]:
            raise LevelError(f"level {self.name!r} (engine file): set `path:` to an .npz or extxyz file")
        if not Path(self.settings["path"]).exists():
            raise LevelError(
                f"level {self.name!r}: file {self.settings['path']!r} does not exist; "
                f"set levels.{self.name}.path to an existing .npz or extxyz file"
            )
        for key, check in (("energy_unit", units.energy_factor), ("length_unit", units.length_factor)):
            if self.settings[key] is not None:
                try:
                    check(self.settings[key])
                except ValueError as err:
                    raise LevelError(f"level {self.name!r}: levels.{self.name}.{key}: {err}") from None

    def load(self):
        """The imported dataset in storage units (shape and unit errors raise DatasetError)."""
        from ..data import load_any

        s = self.settings
        return load_any(s["path"], s["energy_unit"], s["length_unit"], config_key=f"levels.{self.name}")


LEVELS: dict[str, type[Level]] = {cls.ENGINE: cls for cls in (Empirical, DFT, CCSD, CCSD_T, XTB, File)}


def make_level(name: str, entry: dict) -> Level:
    """Build the level `name` from its config entry {engine: ..., <engine keys>}."""
    entry = dict(entry)
    engine = entry.pop("engine", None)
    if engine not in LEVELS:
        raise LevelError(f"level {name!r}: unknown engine {engine!r}; valid: {', '.join(LEVELS)}")
    return LEVELS[engine](name, **entry)
