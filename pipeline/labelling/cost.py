"""What labels will cost before they are computed: a cost model per engine, its calibration from
the label cache, the per-molecule plan (preview) and the budget that stops a run too costly.

Three layers:

- :func:`model_cpu_s_per_frame`: a PURE function of a level's settings and the atomic numbers
  (no file is read). Labelling jobs may be sized with it, so its answer never changes when the
  cache grows. CPU-seconds of one frame on one thread, analytic gradient included.
- :func:`calibrated_cpu_s_per_frame`: the same estimate corrected by the CPU time recorded in the
  label cache on this machine (the records of this molecule when there are any, else the ratio
  measured/model over other molecules at the same level), with the source stated.
- :func:`plan_labels`, :func:`format_plan`, :func:`check_budget`: per molecule and level, frames
  to label (frames already in the cache cost nothing), CPU-hours and wall time at the given cores,
  checked against ``labelling.max_cpu_hours`` and ``labelling.max_wall_hours``.

Cost model (1 thread; N = basis functions, o = correlated occupied orbitals, v = virtuals):

- ``dft``:     t = DFT_FIXED_S + DFT_N3_S * N^3 * (2 without density fitting) * grid factor
- ``ccsd``:    t = CC_FIXED_S + CC_N4_S * N^4 + CCSD_O2V4_S * o^2 v^4
               (RHF and the AO derivative integrals of the gradient ~ N^4; amplitude and Lambda
               equations ~ o^2 v^4 per iteration)
- ``ccsd_t``:  the CCSD terms + CCSD_T_O3V4_S * o^3 v^4 ((T) energy, (T) Lambda, (T) gradient
               intermediates)
- ``xtb``:     XTB_PER_ATOM_S * atoms;  ``empirical``, ``file``: 0 (labels already exist).

times PIPELINE_FACTOR (the pipeline's recorded CPU time over the benchmark's). The constants were
fitted to single-thread timings on the development VM (2 shared vCPUs, AMD EPYC; BENCHMARKS.md
section 6, ``benchmarks/cost_model.py``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .levels import Level

# ----------------------------------------------------------------------------- model constants
# CPU-seconds of one frame run alone (1 thread), fitted on the development VM (2 vCPUs, AMD EPYC)
# to single-frame timings of MD frames and MMFF geometries (BENCHMARKS.md section 6):
# CCSD: ethanol 2.05, malonaldehyde 6.6, benzene 15.0, aspirin 659 s (fit within 8%);
# (T) part: 1.1e-8, 0.9e-8, 1.3e-8 s per o^3 v^4 (ethanol, malonaldehyde, benzene);
# PBE/6-31G: ethanol 1.3-1.6, malonaldehyde 3.0, aspirin 33 s.
DFT_FIXED_S = 0.6  # molecule and grid setup, SCF bookkeeping, gradient driver
DFT_N3_S = 1.37e-5  # per N^3 (density fitting, grid level 1)
DFT_NO_DF_FACTOR = 2.0  # conventional 4-index Coulomb/exchange instead of density fitting
DFT_HYBRID_FACTOR = 1.3  # exact exchange (B3LYP, PBE0, ...)
CC_FIXED_S = 0.78
CC_N4_S = 3.98e-7  # RHF and the gradient's AO derivative integrals
CCSD_O2V4_S = 8.31e-9  # CCSD amplitudes + Lambda, all iterations
CCSD_T_O3V4_S = 1.2e-8  # (T) energy + (T) Lambda + (T) gradient intermediates
XTB_PER_ATOM_S = 5.0e-4  # GFN2-xTB: 3-20 ms per frame for 9-21 atoms, mostly fixed costs
# The pipeline recorded more CPU time per frame than these fits: the default run (BENCHMARKS.md
# section 1) 13.5 CPU-s per ethanol CCSD(T) frame and 2.6 per PBE frame, label_speed.py 15.2 and
# 2.8 (same VM, earlier session), against 7.4-8.1 and 1.3-1.75 here. The cause is not
# established (not core sharing: two concurrent frames took 8.0 s each in this session; not the
# frames: MD frames from a 150 ps run took 7.5-8.1 s). The estimate is the fit times this factor,
# so that it reproduces what the pipeline spent: a bill should err high. Once the label cache
# holds frames of a level, the calibration measures the machine instead.
PIPELINE_FACTOR = 1.85
# PySCF grid levels 0-9 cost roughly this much relative to level 1 (more radial/angular points).
GRID_FACTOR = {0: 0.8, 1: 1.0, 2: 1.2, 3: 1.5, 4: 1.9, 5: 2.5, 6: 3.2, 7: 4.0, 8: 5.0, 9: 6.5}
MODEL_SOURCE = "cost model (constants fitted on the development VM, BENCHMARKS.md section 6)"

# Calibration reads at most this many cache records per level directory (the scan stays fast
# for caches of thousands of frames).
CALIBRATION_SAMPLE = 200


class BudgetExceeded(ValueError):
    """The estimated label cost of a run exceeds labelling.max_cpu_hours or max_wall_hours."""


# ----------------------------------------------------------------------------- orbitals
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


def _is_hybrid(xc: str) -> bool:
    from pyscf.dft import libxc

    try:
        return libxc.is_hybrid_xc(xc)
    except Exception:
        return False


# ----------------------------------------------------------------------------- the pure model
def model_cpu_s_per_frame(level: Level, z: np.ndarray) -> float:
    """Model estimate of CPU-seconds for one frame (energy + forces) at `level`, 1 thread, as the
    pipeline's labelling jobs record it (:data:`PIPELINE_FACTOR` x :func:`alone_cpu_s_per_frame`).

    A pure function of the level's engine and settings and the atomic numbers `z`: no cache or
    file is read. Free engines (``empirical``, ``file``) cost 0.
    """
    return PIPELINE_FACTOR * alone_cpu_s_per_frame(level, z)


def alone_cpu_s_per_frame(level: Level, z: np.ndarray) -> float:
    """CPU-seconds for one frame at `level`, 1 thread, as benchmarks/cost_model.py measures it (the fit)."""
    z = np.asarray(z, dtype=np.int64).reshape(-1)
    s = level.settings
    engine = level.ENGINE
    if not level.COMPUTED:
        return 0.0
    if engine == "xtb":
        return XTB_PER_ATOM_S * len(z)
    if engine == "dft":
        orb = orbitals(z, s["basis"], s["charge"])
        t = DFT_N3_S * orb.n_bf**3 * GRID_FACTOR.get(int(s["grid_level"]), GRID_FACTOR[9])
        if not s["density_fit"]:
            t *= DFT_NO_DF_FACTOR
        if _is_hybrid(s["xc"]):
            t *= DFT_HYBRID_FACTOR
        return DFT_FIXED_S + t
    if engine in ("ccsd", "ccsd_t"):
        orb = orbitals(z, s["basis"], s["charge"], s["frozen_core"])
        o, v, n = orb.o, orb.v, orb.n_bf
        t = CC_FIXED_S + CC_N4_S * n**4 + CCSD_O2V4_S * o**2 * v**4
        if engine == "ccsd_t":
            t += CCSD_T_O3V4_S * o**3 * v**4
        return t
    from .levels import LEVELS

    raise ValueError(f"no cost model for engine {engine!r}; engines with one: {', '.join(LEVELS)}")


def molecule_z(config: dict, molecule: str) -> np.ndarray:
    """Atomic numbers of `molecule` with hydrogens, in the pipeline's atom order (no 3D embedding)."""
    from .. import config as pconf

    spec = pconf.molecule_spec(config, molecule)
    return _spec_z(spec.smiles, spec.xyz)


@functools.lru_cache(maxsize=64)
def _spec_z(smiles: str | None, xyz: str | None) -> np.ndarray:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    if smiles is not None:
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    else:
        mol = Chem.MolFromXYZFile(str(xyz))
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    z.setflags(write=False)
    return z


# ----------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    cpu_s_per_frame: float
    source: str


def _sample_records(level_dir: Path, limit: int) -> list[Path]:
    """Up to `limit` finished cache records of one level directory (hidden temporaries skipped)."""
    out: list[Path] = []
    try:
        subdirs = sorted(e.path for e in os.scandir(level_dir) if e.is_dir())
    except OSError:
        return out
    for d in subdirs:
        for e in os.scandir(d):
            if e.name.endswith(".npz") and not e.name.startswith("."):
                out.append(Path(e.path))
                if len(out) >= limit:
                    return out
    return out


def cache_timings(cache_dir, level: Level, limit: int = CALIBRATION_SAMPLE) -> list[tuple[np.ndarray | None, float]]:
    """(atomic numbers or None for records written before they were stored, CPU-s) of up to
    `limit` frames of `level` in the label cache."""
    from .cache import LabelCache

    level_dir = LabelCache(cache_dir, level.cache_token()).dir
    out = []
    for p in _sample_records(level_dir, limit):
        try:
            with np.load(p) as f:
                cpu = float(f["cpu_s"])
                z = np.asarray(f["z"], dtype=np.int64) if "z" in f.files else None
        except Exception:  # a record being written or damaged: not a timing
            continue
        if np.isfinite(cpu) and cpu > 0:
            out.append((z, cpu))
    return out


def calibrated_cpu_s_per_frame(
    level: Level, z: np.ndarray, cache_dir=None, limit: int = CALIBRATION_SAMPLE
) -> Calibration:
    """CPU-s per frame of `level` for atoms `z`: the mean recorded CPU time of this molecule's
    frames in the cache; else the model scaled by measured/model over other molecules' cached
    frames at this level; else the model alone."""
    model = model_cpu_s_per_frame(level, z)
    if model == 0.0 or cache_dir is None:
        return Calibration(model, "free" if model == 0.0 else MODEL_SOURCE)
    records = [r for r in cache_timings(cache_dir, level, limit) if r[0] is not None]
    z = np.asarray(z, dtype=np.int64)
    same = [cpu for rz, cpu in records if np.array_equal(rz, z)]  # same atoms in the same order
    if same:
        return Calibration(float(np.mean(same)), f"measured: mean of {len(same)} cached frames of this molecule")
    if records:
        measured = sum(cpu for _, cpu in records)
        predicted = sum(model_cpu_s_per_frame(level, rz) for rz, _ in records)
        factor = measured / predicted
        return Calibration(
            model * factor,
            f"model x {factor:.2f} (measured/model over {len(records)} cached frames of other molecules)",
        )
    return Calibration(model, MODEL_SOURCE)


# ----------------------------------------------------------------------------- the plan (preview)
@dataclass
class LevelPlan:
    """The labels of one computed level of one molecule."""

    level: str
    theory: str
    role: str  # "accurate" or "cheap"
    subsets: list[str]
    n_frames: int  # frames the level labels (all its subsets)
    n_cached: int  # of those, already in the label cache (cost nothing)
    cpu_s_per_frame: float
    model_cpu_s_per_frame: float
    source: str
    chunks: list[float] = field(default_factory=list)  # estimated CPU-s of each chunk job still to run

    @property
    def n_to_label(self) -> int:
        return self.n_frames - self.n_cached

    @property
    def cpu_h(self) -> float:
        return self.n_to_label * self.cpu_s_per_frame / 3600.0


@dataclass
class Plan:
    molecule: str
    accurate_level: str
    accurate_from: str  # where the accurate level choice comes from
    cores: int
    threads: int
    levels: list[LevelPlan]
    frames_known: bool  # True when every subset's frames file existed (cache hits counted)

    @property
    def cpu_h(self) -> float:
        return sum(lp.cpu_h for lp in self.levels)

    @property
    def wall_h(self) -> float:
        """Wall hours of the labels at `cores`: the larger of total CPU / cores and the longest
        chunk job (which runs on `threads` cores), a lower bound on the makespan."""
        chunks = [c for lp in self.levels for c in lp.chunks]
        if not chunks:
            return 0.0
        slots = max(1, self.cores // self.threads)
        return max(sum(chunks) / (slots * self.threads), max(chunks) / self.threads) / 3600.0


def _cached_hits(ds, level: Level, cache_dir) -> np.ndarray:
    """Per-frame mask of the frames of `ds` already in the label cache at `level`."""
    from .cache import LabelCache

    cache = LabelCache(cache_dir, level.cache_token())
    if not cache.dir.exists():
        return np.zeros(len(ds), dtype=bool)
    return np.array([cache.path(ds.z, R).exists() for R in ds.R], dtype=bool)


def _current_frames(frames_path: Path, config: dict, molecule: str, subset: str):
    """The frames file on disk if it is the block the current config draws, else None."""
    from .. import config as pconf
    from ..data import load_npz

    if not frames_path.exists():
        return None
    block = pconf.subset_block(config, molecule, subset)
    ds = load_npz(frames_path)
    return ds if len(ds) == block.size and ds.meta.get("block") == block.token else None


def accurate_level_source(config: dict, molecule: str) -> str:
    entry = config["molecules"].get(molecule, {})
    if "accurate_level" in entry:
        return f"molecules.{molecule}.accurate_level"
    return "accurate_level (global)"


# The config sections a plan depends on: the label_plan rule passes only these (so that other edits
# do not rerun it); a test checks that they give the plan of the whole config.
PLAN_SECTIONS = ("molecules", "levels", "accurate_level", "cheap_levels", "sampling", "splits", "labelling", "delta")


def plan_labels(config: dict, molecule: str, cores: int, results_dir="results", calibrate: bool = True) -> Plan:
    """Frames to label, CPU-s per frame and CPU-hours per computed level of `molecule`.

    Subsets whose frames file (``<results_dir>/<molecule>/frames/<subset>.npz``) exists count
    their cache hits as free; before MD has run every frame counts. With `calibrate`, per-frame
    costs come from :func:`calibrated_cpu_s_per_frame` (label cache timings), else the model.
    """
    from .. import config as pconf
    from .runner import chunk_bounds, frames_per_job, n_chunks

    z = molecule_z(config, molecule)
    lab = config["labelling"]
    cache_dir = lab["cache_dir"]
    acc = pconf.accurate_level(config, molecule)
    by_level: dict[str, LevelPlan] = {}
    frames_known = True
    for name, subset in pconf.labelling_tasks(config, molecule):
        level = pconf.level(config, name)
        if not level.COMPUTED:
            continue
        if name not in by_level:
            model = model_cpu_s_per_frame(level, z)
            cal = calibrated_cpu_s_per_frame(level, z, cache_dir) if calibrate else Calibration(model, MODEL_SOURCE)
            by_level[name] = LevelPlan(
                level=name,
                theory=level.theory,
                role="accurate" if name == acc else "cheap",
                subsets=[],
                n_frames=0,
                n_cached=0,
                cpu_s_per_frame=cal.cpu_s_per_frame,
                model_cpu_s_per_frame=model,
                source=cal.source,
            )
        lp = by_level[name]
        n = pconf.subset_size(config, molecule, subset)
        frames = Path(results_dir) / molecule / "frames" / f"{subset}.npz"
        hits = np.zeros(n, dtype=bool)
        ds = _current_frames(frames, config, molecule, subset)
        if ds is not None:
            found = _cached_hits(ds, level, cache_dir)
            hits[: len(found)] = found[:n]
        else:  # not sampled yet, or sampled for another config (the frames rule will redo it)
            frames_known = False
        lp.subsets.append(subset)
        lp.n_frames += n
        lp.n_cached += int(hits.sum())
        # the workflow's own job sizes (from the uncalibrated model, as in common.smk)
        chunk_size = frames_per_job(n, lp.model_cpu_s_per_frame, lab["job_cpu_minutes"], lab["max_frames_per_job"])
        for i in range(n_chunks(n, chunk_size)):
            start, stop = chunk_bounds(i, chunk_size)
            todo = int((~hits[start:stop]).sum())
            if todo:
                lp.chunks.append(todo * lp.cpu_s_per_frame)
    return Plan(
        molecule=molecule,
        accurate_level=acc,
        accurate_from=accurate_level_source(config, molecule),
        cores=max(1, int(cores)),
        threads=config["labelling"]["threads"],
        levels=list(by_level.values()),
        frames_known=frames_known,
    )


def _fmt_h(hours: float) -> str:
    """Hours to 3 significant digits, large values written out (1,530 rather than 1.53e+03)."""
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:.3g}"


def _fmt_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def budget_line(plan: Plan, config: dict) -> str:
    lab = config["labelling"]
    caps = []
    for key, value, unit in (("max_cpu_hours", plan.cpu_h, "CPU-h"), ("max_wall_hours", plan.wall_h, "h wall")):
        cap = lab[key]
        if cap is None:
            caps.append(f"labelling.{key}: none")
        else:
            caps.append(f"labelling.{key} {cap:g} {unit} ({'within' if value <= cap else 'EXCEEDED'})")
    return "  budget: " + "; ".join(caps)


def format_plan(plan: Plan, config: dict | None = None) -> str:
    """The preview as text: one line per level, totals, where the numbers come from, and the
    budget (when `config` is given)."""
    lines = [
        f"Label cost preview for {plan.molecule} (accurate level {plan.accurate_level!r}, from "
        f"{plan.accurate_from}; --cores {plan.cores}, labelling.threads {plan.threads}):",
        f"  {'level':<12} {'theory':<22} {'frames':>7} {'cached':>7} {'CPU/frame':>10} {'CPU-h':>9}  source",
    ]
    for lp in plan.levels:
        lines.append(
            f"  {lp.level:<12} {lp.theory:<22} {lp.n_frames:>7} {lp.n_cached:>7} "
            f"{_fmt_s(lp.cpu_s_per_frame):>10} {_fmt_h(lp.cpu_h):>9}  {lp.source}"
        )
    longest = max((c for lp in plan.levels for c in lp.chunks), default=0.0)
    lines.append(
        f"  total {_fmt_h(plan.cpu_h)} CPU-h; wall time at {plan.cores} cores about {_fmt_s(plan.wall_h * 3600)} "
        f"(the longest chunk job: {_fmt_s(longest / plan.threads)})"
    )
    if not plan.frames_known:
        lines.append(
            "  (frames not sampled yet: every frame counted; frames already in the label cache will cost nothing)"
        )
    if config is not None:
        lines.append(budget_line(plan, config))
    return "\n".join(lines)


def check_budget(plan: Plan, config: dict) -> None:
    """Raise BudgetExceeded when the plan's CPU-hours or wall hours exceed the labelling budget."""
    lab = config["labelling"]
    over = []
    max_cpu = lab["max_cpu_hours"]
    max_wall = lab["max_wall_hours"]
    if max_cpu is not None and plan.cpu_h > max_cpu:
        over.append(f"{_fmt_h(plan.cpu_h)} CPU-hours > labelling.max_cpu_hours = {max_cpu:g}")
    if max_wall is not None and plan.wall_h > max_wall:
        over.append(
            f"about {_fmt_h(plan.wall_h)} h wall time at {plan.cores} cores > labelling.max_wall_hours = {max_wall:g}"
        )
    if not over:
        return
    acc = next((lp for lp in plan.levels if lp.role == "accurate"), None)
    cheaper = (
        f" (e.g. `molecules: {{{plan.molecule}: {{accurate_level: ccsd}}}}` with a `ccsd` level)"
        if acc is not None and "CCSD(T)" in acc.theory
        else ""
    )
    chunks = [c for lp in plan.levels for c in lp.chunks]
    chunk_bound = bool(chunks) and max(chunks) / plan.threads >= sum(chunks) / (plan.cores or 1)
    more_cores = (
        "a smaller labelling.job_cpu_minutes (the longest labelling job sets the wall time)"
        if chunk_bound
        else "more --cores"
    )
    raise BudgetExceeded(
        f"labels for {plan.molecule} are estimated above the budget: {'; '.join(over)}.\n"
        f"{format_plan(plan, config)}\n"
        f"Nothing was computed. Ways out: raise labelling.max_cpu_hours / labelling.max_wall_hours "
        f"(or, for the wall time, {more_cores}); label fewer frames (splits.train_sizes, val, test, cheap); choose a "
        f"cheaper accurate level{cheaper}; or import labelled frames through a `file` level "
        f"(engine: file, e.g. MD17's own CCSD(T)/CCSD data)."
    )


PLAN_COLUMNS = [
    "molecule",
    "level",
    "role",
    "theory",
    "n_frames",
    "n_cached",
    "n_to_label",
    "cpu_s_per_frame",
    "model_cpu_s_per_frame",
    "cpu_h",
    "source",
]


def plan_table(plan: Plan):
    """The plan as a table (label_plan.csv): one row per computed level; cpu_h counts the frames
    still to label, n_frames * cpu_s_per_frame all of them."""
    import pandas as pd

    rows = [
        dict(
            molecule=plan.molecule,
            level=lp.level,
            role=lp.role,
            theory=lp.theory,
            n_frames=lp.n_frames,
            n_cached=lp.n_cached,
            n_to_label=lp.n_to_label,
            cpu_s_per_frame=lp.cpu_s_per_frame,
            model_cpu_s_per_frame=lp.model_cpu_s_per_frame,
            cpu_h=lp.cpu_h,
            source=lp.source,
        )
        for lp in plan.levels
    ]
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)
