"""What labels will cost before they are computed: the per-level cost model's calibration from
the label cache, the size of the labelling jobs, the per-molecule plan (preview) and the budget
that stops a run too costly.

The cost model itself belongs to the levels (:mod:`pipeline.labelling.levels`): each engine class
owns its CPU-seconds per frame (:meth:`Level.cpu_s_per_frame`), its job's memory and its cluster
request. This module asks the level:

- :func:`model_cpu_s_per_frame`: the level's estimate, a PURE function of its settings and the
  atomic numbers (no file is read). Labelling jobs are sized with it (:func:`frames_per_chunk`,
  :func:`chunk_frames`), so their boundaries never move when the cache grows.
- :func:`calibrated_cpu_s_per_frame`: the same estimate corrected by the CPU time recorded in the
  label cache on this machine (the records of this molecule when there are any, else the ratio
  measured/model over other molecules at the same level), with the source stated.
- :func:`plan_labels`, :func:`format_plan`, :func:`check_budget`: per molecule and level, frames
  to label (frames already in the cache cost nothing), CPU-hours and wall time at the given cores,
  checked against ``labelling.max_cpu_hours`` and ``labelling.max_wall_hours``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The model lives with the levels; these names stay importable from here.
from .levels import PIPELINE_FACTOR, Level, Orbitals, orbitals  # noqa: F401

MODEL_SOURCE = "cost model (constants fitted on the development VM, BENCHMARKS.md section 6)"

# Calibration reads at most this many cache records per level directory (the scan stays fast
# for caches of thousands of frames).
CALIBRATION_SAMPLE = 200


class BudgetExceeded(ValueError):
    """The estimated label cost of a run exceeds labelling.max_cpu_hours or max_wall_hours."""


# ----------------------------------------------------------------------------- the pure model
def model_cpu_s_per_frame(level: Level, z: np.ndarray) -> float:
    """Model estimate of CPU-seconds for one frame (energy + forces) at `level`, 1 thread, as the
    pipeline's labelling jobs record it: the level's own :meth:`Level.cpu_s_per_frame`
    (:data:`PIPELINE_FACTOR` x :func:`alone_cpu_s_per_frame`). Free engines cost 0."""
    return level.cpu_s_per_frame(z)


def alone_cpu_s_per_frame(level: Level, z: np.ndarray) -> float:
    """CPU-seconds for one frame at `level`, 1 thread, as benchmarks/cost_model.py measures it (the fit)."""
    return level.alone_cpu_s_per_frame(z)


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


# ----------------------------------------------------------------------------- labelling jobs
def frames_per_chunk(config: dict, molecule: str, level: str, subset: str) -> int:
    """Frames per labelling job of `subset` of `molecule` at `level`: about
    labelling.job_cpu_minutes of CPU time as the level's model estimates it (uncalibrated, so job
    boundaries do not move as the label cache fills), at most labelling.max_frames_per_job."""
    from .. import config as pconf
    from .runner import frames_per_job

    lab = config["labelling"]
    per_frame = model_cpu_s_per_frame(pconf.level(config, level), molecule_z(config, molecule))
    n = pconf.subset_size(config, molecule, subset)
    return frames_per_job(n, per_frame, lab["job_cpu_minutes"], lab["max_frames_per_job"])


def chunk_frames(config: dict, molecule: str, level: str, subset: str, chunk: int) -> int:
    """Frames labelled by job number `chunk` (0, 1, ...) of `subset` at `level` (the last job of a
    subset may be short; a job past the end labels none)."""
    from .. import config as pconf
    from .runner import chunk_bounds

    start, stop = chunk_bounds(int(chunk), frames_per_chunk(config, molecule, level, subset))
    return max(0, min(stop, pconf.subset_size(config, molecule, subset)) - start)


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
    cores_from: str = "given"  # where the core count comes from (--cores, this machine, the cluster's jobs)

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
    ds = load_npz(frames_path)
    if pconf.selection_batch(subset) is not None:  # picked by a selection round, not a block
        return ds if len(ds) == pconf.subset_size(config, molecule, subset) else None
    block = pconf.subset_block(config, molecule, subset)
    return ds if len(ds) == block.size and ds.meta.get("block") == block.token else None


def accurate_level_source(config: dict, molecule: str) -> str:
    entry = config["molecules"].get(molecule, {})
    if "accurate_level" in entry:
        return f"molecules.{molecule}.accurate_level"
    return "accurate_level (global)"


# The config sections a plan depends on: the label_plan rule passes only these (so that other edits
# do not rerun it); a test checks that they give the plan of the whole config.
PLAN_SECTIONS = (
    "molecules",
    "levels",
    "accurate_level",
    "cheap_levels",
    "sampling",
    "splits",
    "labelling",
    "delta",
    "selection",
)


def plan_config(config: dict) -> dict:
    """What a plan depends on: PLAN_SECTIONS and the training seeds (one selection, and so one set
    of picked frames to label, per seed)."""
    return {**{k: config[k] for k in PLAN_SECTIONS}, "training": {"seeds": list(config["training"]["seeds"])}}


def label_cores(cluster: bool, cores: int | None, jobs: int | None, threads: int, machine: int) -> tuple[int, str]:
    """The cores the label jobs share, and where that number comes from (stated in the preview).
    On a cluster: `jobs` label jobs at once (--jobs) x `threads` CPUs each (labelling.threads).
    Locally: --cores (`--cores all`: the machine's count)."""
    if cluster:
        jobs = max(1, min(jobs or 1, 10000))  # --jobs unlimited counts as 10,000
        return jobs * threads, f"--jobs {jobs} label jobs at once x labelling.threads {threads} CPUs each"
    cores = max(1, cores or 1)
    if cores == machine:
        return cores, "all of this machine's cores (--cores all)"
    return cores, f"--cores {cores}"


def plan_labels(
    config: dict, molecule: str, cores: int, results_dir="results", calibrate: bool = True, cores_from: str = "given"
) -> Plan:
    """Frames to label, CPU-s per frame and CPU-hours per computed level of `molecule`, and the wall
    time at `cores` (`cores_from`: where that number comes from, stated in the preview).

    Subsets whose frames file (``<results_dir>/<molecule>/frames/<subset>.npz``) exists count
    their cache hits as free; before MD has run every frame counts. With `calibrate`, per-frame
    costs come from :func:`calibrated_cpu_s_per_frame` (label cache timings), else the model.
    """
    from .. import config as pconf
    from .runner import chunk_bounds, n_chunks

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
        # the workflow's own job sizes (from the uncalibrated model)
        size = frames_per_chunk(config, molecule, name, subset)
        for i in range(n_chunks(n, size)):
            start, stop = chunk_bounds(i, size)
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
        cores_from=cores_from,
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
        f"{plan.accurate_from}; {plan.cores} cores: {plan.cores_from}; labelling.threads {plan.threads}):",
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
