"""Levels of theory: a registry of engines, each a class built from a config entry.

Every engine returns energies in eV and forces in eV/Angstrom (storage units); conversions from
Hartree and Hartree/Bohr happen through :mod:`pipeline.units`.

Computed engines (dft, ccsd, ccsd_t, xtb) label frames one at a time; free engines (empirical,
file) take labels that already exist (GAFF2 energies and forces from the MD, or an imported file).

Each engine class also owns what its labels cost, the one label-cost model of the pipeline:

- :meth:`Level.cpu_s_per_frame`: CPU-seconds of one frame (energy + forces, 1 thread) as the
  pipeline's labelling jobs record it, a pure function of the settings and the atomic numbers
  (:data:`PIPELINE_FACTOR` x :meth:`Level.alone_cpu_s_per_frame`, the fit of
  ``benchmarks/cost_model.py``). The label budget (:mod:`pipeline.labelling.cost`), the size of
  the labelling jobs and their cluster requests all come from it.
- :meth:`Level.job_mem_mb` and :meth:`Level.request`: the memory and run time a cluster job that
  labels `n` frames asks for (the estimate above plus the margins of :mod:`pipeline.resources`).
- :attr:`Level.DELTA_OK`: whether a Δ-learning model can use the level as its cheap level (it is
  called at new geometries), and :attr:`Level.MD_FRAMES_ONLY`: whether its labels exist only for
  frames of the molecule's own MD.

Cost model (1 thread; N = basis functions, o = correlated occupied orbitals, v = virtuals):

- ``dft``:     t = FIXED_S + N3_S * N^3 * (2 without density fitting) * grid factor (x1.3 hybrid)
- ``ccsd``:    t = FIXED_S + N4_S * N^4 + O2V4_S * o^2 v^4
               (RHF and the AO derivative integrals of the gradient ~ N^4; amplitude and Lambda
               equations ~ o^2 v^4 per iteration)
- ``ccsd_t``:  the CCSD terms + O3V4_S * o^3 v^4 ((T) energy, (T) Lambda, (T) gradient
               intermediates)
- ``xtb``:     PER_ATOM_S * atoms;  ``empirical``, ``file``: 0 (labels already exist).

The constants were fitted to single-thread timings on the development VM (2 shared vCPUs, AMD
EPYC; BENCHMARKS.md section 6, ``benchmarks/cost_model.py``): CCSD ethanol 2.05, malonaldehyde
6.6, benzene 15.0, aspirin 659 s (fit within 8%); (T) part 1.1e-8, 0.9e-8, 1.3e-8 s per o^3 v^4
(ethanol, malonaldehyde, benzene); PBE/6-31G ethanol 1.3-1.6, malonaldehyde 3.0, aspirin 33 s.
"""

from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import resources as pres
from .. import units

# The pipeline recorded more CPU time per frame than the fits: the default run (BENCHMARKS.md
# section 1) 13.5 CPU-s per ethanol CCSD(T) frame and 2.6 per PBE frame, label_speed.py 15.2 and
# 2.8 (same VM, earlier session), against 7.4-8.1 and 1.3-1.75 here. The cause is not
# established (not core sharing: two concurrent frames took 8.0 s each in this session; not the
# frames: MD frames from a 150 ps run took 7.5-8.1 s). The estimate is the fit times this factor,
# so that it reproduces what the pipeline spent: a bill should err high. Once the label cache
# holds frames of a level, the calibration (pipeline.labelling.cost) measures the machine instead.
PIPELINE_FACTOR = 1.85


class LevelError(ValueError):
    """A level-of-theory entry that cannot be used (unknown engine, key, basis, functional)."""


@dataclass
class Label:
    energy: float  # eV
    forces: np.ndarray  # [n_atoms, 3] eV/Angstrom
    converged: bool
    reason: str = ""
    dm: object = None  # converged density matrix, reused as the next frame's SCF guess


@dataclass(frozen=True)
class Orbitals:
    n_atoms: int
    n_bf: int  # basis functions (PySCF nao)
    n_occ: int  # doubly occupied orbitals (closed shell: electrons // 2)
    n_core: int  # frozen core orbitals (0 unless frozen_core)

    @property
    def o(self) -> int:
        """Correlated occupied orbitals."""
        return self.n_occ - self.n_core

    @property
    def v(self) -> int:
        return self.n_bf - self.n_occ


@functools.lru_cache(maxsize=256)
def _orbitals(z: tuple[int, ...], basis: str, charge: int, frozen_core: bool) -> Orbitals:
    from pyscf import gto
    from pyscf.data import elements

    # Basis-function counts do not depend on the geometry: atoms on a line, 2 A apart.
    atom = [(zi, (2.0 * i, 0.0, 0.0)) for i, zi in enumerate(z)]
    nelec = sum(z) - charge
    mol = gto.M(atom=atom, basis=basis, charge=charge, spin=nelec % 2, verbose=0)
    return Orbitals(
        n_atoms=len(z),
        n_bf=int(mol.nao),
        n_occ=int(mol.nelectron // 2),
        n_core=int(elements.chemcore(mol)) if frozen_core else 0,
    )


def orbitals(z, basis: str, charge: int = 0, frozen_core: bool = False) -> Orbitals:
    return _orbitals(tuple(int(x) for x in np.asarray(z).reshape(-1)), basis, int(charge), bool(frozen_core))


def _atomic_numbers(z) -> np.ndarray:
    return np.asarray(z, dtype=np.int64).reshape(-1)


class Level:
    """Base class. Subclasses set ENGINE, COMPUTED and DEFAULTS (the only keys they accept), and a
    computed engine its cost (:meth:`alone_cpu_s_per_frame`, :meth:`job_mem_mb`)."""

    ENGINE = ""
    COMPUTED = True
    DEFAULTS: ClassVar[dict] = {}
    # Bumped when a fix changes the numbers an engine returns for the same settings; it enters the
    # label cache key and the labelling rules' params, so old labels are recomputed, never reused.
    REVISION = 0
    # Δ-learning calls its cheap level at new geometries (every prediction): engines that compute
    # labels (or GAFF2, through OpenMM) can be a Δ model's cheap level; imported labels cannot.
    DELTA_OK: ClassVar[bool] = True
    # Labels exist only for frames of the molecule's own MD (GAFF2, recorded by the sampling), not
    # for imported frames.
    MD_FRAMES_ONLY: ClassVar[bool] = False

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

    # ------------------------------------------------------------------------- cost
    def alone_cpu_s_per_frame(self, z) -> float:
        """CPU-seconds of one frame (energy + forces) for atoms `z`, 1 thread, as
        benchmarks/cost_model.py measures it (the fit). Free engines: 0."""
        if not self.COMPUTED:
            return 0.0
        raise ValueError(
            f"no cost model for engine {self.ENGINE!r}: {type(self).__name__} must define alone_cpu_s_per_frame"
        )

    def cpu_s_per_frame(self, z) -> float:
        """CPU-seconds of one frame at this level for atoms `z`, 1 thread, as the pipeline's
        labelling jobs record it: :data:`PIPELINE_FACTOR` x :meth:`alone_cpu_s_per_frame`. A pure
        function of the settings and `z` (no file is read), so labelling jobs sized with it keep
        their boundaries as the label cache fills."""
        return PIPELINE_FACTOR * self.alone_cpu_s_per_frame(z)

    def job_mem_mb(self, z) -> float:
        """Resident memory (MB) of a labelling job at this level for atoms `z`, before margins."""
        return pres.PYTHON_MB

    def request(self, n_frames: int, z, threads: int = 1, attempt: int = 1) -> pres.Request:
        """Cluster request (mem_mb, runtime in minutes) of a job that labels `n_frames` frames of
        atoms `z` on `threads` threads: :meth:`cpu_s_per_frame` x frames, with the margins and the
        growth per retry of :func:`pipeline.resources.request`."""
        seconds = n_frames * self.cpu_s_per_frame(z) / pres.thread_speedup(threads)
        return pres.request(self.job_mem_mb(z), seconds, attempt)


def _is_hybrid(xc: str) -> bool:
    from pyscf.dft import libxc

    try:
        return libxc.is_hybrid_xc(xc)
    except Exception:
        return False


@functools.cache
def _basis_known(basis: str) -> bool:
    """Whether PySCF knows the basis set (parsing its file: ~2 ms, once per name and process; the
    workflow builds a level for every job's resources, 34,000 jobs in the paper config)."""
    from pyscf import gto

    try:
        gto.basis.load(basis, "H")
    except Exception:
        return False
    return True


def _check_basis(level_name: str, basis: str) -> None:
    if not _basis_known(basis):
        raise LevelError(
            f"level {level_name!r}: unknown basis set {basis!r}; use a PySCF basis name "
            f"such as sto-3g, 6-31G, 6-31G*, cc-pVDZ, def2-SVP"
        )


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
    # Cost (1 thread): PBE/6-31G ethanol 1.3-1.6, malonaldehyde 3.0, aspirin 33 CPU-s per frame.
    FIXED_S = 0.6  # molecule and grid setup, SCF bookkeeping, gradient driver
    N3_S = 1.37e-5  # per N^3 (density fitting, grid level 1)
    NO_DF_FACTOR = 2.0  # conventional 4-index Coulomb/exchange instead of density fitting
    HYBRID_FACTOR = 1.3  # exact exchange (B3LYP, PBE0, ...)
    # PySCF grid levels 0-9 cost roughly this much relative to level 1 (more radial/angular points).
    GRID_FACTOR: ClassVar[dict] = {0: 0.8, 1: 1.0, 2: 1.2, 3: 1.5, 4: 1.9, 5: 2.5, 6: 3.2, 7: 4.0, 8: 5.0, 9: 6.5}

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

    def _n_bf(self, z) -> int:
        return orbitals(z, self.settings["basis"], self.settings["charge"]).n_bf

    def alone_cpu_s_per_frame(self, z) -> float:
        s = self.settings
        t = self.N3_S * self._n_bf(z) ** 3 * self.GRID_FACTOR.get(int(s["grid_level"]), self.GRID_FACTOR[9])
        if not s["density_fit"]:
            t *= self.NO_DF_FACTOR
        if _is_hybrid(s["xc"]):
            t *= self.HYBRID_FACTOR
        return self.FIXED_S + t

    def job_mem_mb(self, z) -> float:
        """Density fitting: a three-index tensor of about 3 N auxiliary functions (two copies), at
        most PySCF's max_memory."""
        n = self._n_bf(z)
        return pres.PYTHON_MB + min(8 * 3 * n**3 / 1e6 * 2, pres.PYSCF_MAX_MEMORY_MB)

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
    # Cost (1 thread): CCSD/6-31G ethanol 2.05, malonaldehyde 6.6, benzene 15.0, aspirin 659 CPU-s
    # per frame (fit within 8%).
    FIXED_S = 0.78
    N4_S = 3.98e-7  # RHF and the gradient's AO derivative integrals
    O2V4_S = 8.31e-9  # CCSD amplitudes + Lambda, all iterations
    O3V4_S = 0.0  # the (T) terms (CCSD(T) only)

    @property
    def theory(self) -> str:
        fc = " (fc)" if self.settings["frozen_core"] else ""
        return f"{self.ENGINE.upper().replace('_T', '(T)')}/{self.settings['basis']}{fc}"

    def check(self) -> None:
        _check_basis(self.name, self.settings["basis"])

    def _orbitals(self, z) -> Orbitals:
        s = self.settings
        return orbitals(z, s["basis"], s["charge"], s["frozen_core"])

    def alone_cpu_s_per_frame(self, z) -> float:
        orb = self._orbitals(z)
        o, v, n = orb.o, orb.v, orb.n_bf
        return self.FIXED_S + self.N4_S * n**4 + self.O2V4_S * o**2 * v**4 + self.O3V4_S * o**3 * v**4

    def job_mem_mb(self, z) -> float:
        """Two-electron integrals (8-fold symmetry) and amplitudes, a few copies, at most PySCF's
        max_memory (larger intermediates go to disk)."""
        n = self._orbitals(z).n_bf
        return pres.PYTHON_MB + min(3 * n**4 / 1e6, pres.PYSCF_MAX_MEMORY_MB)

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
    # (T) energy + (T) Lambda + (T) gradient intermediates: 1.1e-8, 0.9e-8, 1.3e-8 s per o^3 v^4
    # measured (ethanol, malonaldehyde, benzene).
    O3V4_S = 1.2e-8

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
    PER_ATOM_S = 5.0e-4  # GFN2-xTB: 3-20 ms per frame for 9-21 atoms, mostly fixed costs
    TBLITE_MB = 200  # tblite's library and matrices, beyond the interpreter

    @property
    def theory(self) -> str:
        return self.settings["method"]

    def check(self) -> None:
        if self.settings["method"] not in self.METHODS:
            raise LevelError(
                f"level {self.name!r}: unknown xtb method {self.settings['method']!r}; valid: {', '.join(self.METHODS)}"
            )

    def alone_cpu_s_per_frame(self, z) -> float:
        return self.PER_ATOM_S * len(_atomic_numbers(z))

    def job_mem_mb(self, z) -> float:
        return pres.PYTHON_MB + self.TBLITE_MB

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
    MD_FRAMES_ONLY = True  # recorded by the MD; at new geometries (Δ predictions) through OpenMM

    @property
    def theory(self) -> str:
        return "GAFF2"


class File(Level):
    """Labels imported from a dataset file (MD17 / rMD17 / sGDML npz, or any ASE-readable file)."""

    ENGINE = "file"
    COMPUTED = False
    DELTA_OK = False  # labels only on the file's own frames; a Δ model needs them at new geometries
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
