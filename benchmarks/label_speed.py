"""Labelling throughput (frames per CPU-hour) per level of theory, and the pipeline's overhead.

Frames: ``--frames`` MD-like geometries per molecule (seeded Gaussian displacements, std 0.05 A
per Cartesian component, of the RDKit/MMFF geometry the pipeline builds). Levels (as in
``config.yaml``): ``dft`` PBE/6-31G, density fitting, grid level 1; ``ccsd_t`` CCSD(T)/6-31G with
frozen core and analytic gradients; ``xtb`` GFN2-xTB (tblite). Every frame yields an energy and
forces.

Each (molecule, level) is labelled twice, in one process with ``--threads`` threads
(``pipeline.labelling.runner.set_threads``):

(a) pipeline: ``label_chunk`` over all frames with a fresh temporary ``LabelCache`` (hashing,
    per-frame npz cache writes and reads, retry logic, dataset assembly);
(b) bare: a loop of ``level.compute`` on each frame, passing the previous frame's density matrix
    as the SCF guess exactly as ``label_chunk`` does, so both run the same PySCF calls.

Overhead = (a) / (b) - 1 in CPU time (``time.process_time``, all threads of the process) and in
wall time. Before the first measurement of a level, one water molecule is labelled to load
libraries (untimed).

Concurrency: for ``--parallel-level`` on ``--parallel-molecule``, the same frames are labelled
through ``label_chunk`` by 1 process with 2 threads and by 2 concurrent single-thread processes
(half the frames each, started together after their own warm-up); the table gives frames per
wall-clock hour.

CCSD(T) on aspirin takes minutes per frame at 6-31G, so it runs only when ``--levels`` names
``ccsd_t`` explicitly.

    python benchmarks/label_speed.py                      # full table
    python benchmarks/label_speed.py --quick              # STO-3G, 2 frames per molecule
    python benchmarks/label_speed.py --levels ccsd_t --molecules aspirin --frames 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from importlib.metadata import version
from queue import Empty

import common
import numpy as np

from pipeline.data import Dataset
from pipeline.labelling.cache import LabelCache
from pipeline.labelling.levels import Level, make_level
from pipeline.labelling.runner import label_chunk, set_threads

LEVELS = {
    "dft": {"engine": "dft", "xc": "PBE", "basis": "6-31G", "density_fit": True, "grid_level": 1},
    "ccsd_t": {"engine": "ccsd_t", "basis": "6-31G", "frozen_core": True},
    "xtb": {"engine": "xtb", "method": "GFN2-xTB"},
}
# (level, molecule) pairs left out unless --levels names the level.
ON_REQUEST = {("ccsd_t", "aspirin")}
WATER_Z = np.array([8, 1, 1])
WATER_R = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.757, -0.469]])  # Angstrom


def level_entry(name: str, basis: str) -> dict:
    """Config entry of level `name`, with `basis` for the PySCF levels."""
    entry = dict(LEVELS[name])
    if "basis" in entry:
        entry["basis"] = basis
    return entry


def warm_up(level: Level) -> None:
    """Label one water molecule (untimed) so that library loading is not measured."""
    level.compute(WATER_Z, WATER_R)


def run_pipeline(level: Level, frames: Dataset) -> tuple[float, float, int]:
    """(CPU s, wall s, frames labelled) of ``label_chunk`` over all frames, fresh cache."""
    with tempfile.TemporaryDirectory(prefix="label_speed_") as tmp:
        cache = LabelCache(tmp, level.cache_token())
        c0, t0 = time.process_time(), time.perf_counter()
        out, _ = label_chunk(frames, level, cache, 0, len(frames))
        return time.process_time() - c0, time.perf_counter() - t0, len(out)


def run_bare(level: Level, frames: Dataset) -> tuple[float, float, int]:
    """(CPU s, wall s, frames converged) of ``level.compute`` on each frame, density reused."""
    dm, n_ok = None, 0
    c0, t0 = time.process_time(), time.perf_counter()
    for R in frames.R:
        label = level.compute(frames.z, R, dm0=dm)
        dm = label.dm if label.converged else None
        n_ok += int(label.converged)
    return time.process_time() - c0, time.perf_counter() - t0, n_ok


def _concurrent_job(name, entry, z, R, threads, barrier, queue) -> None:
    """One labelling job: set threads, warm up, wait for the others, label its frames."""
    try:
        set_threads(threads)
        level = make_level(name, entry)
        warm_up(level)
        barrier.wait()
        start = time.time()
        cpu_s, _, n = run_pipeline(level, Dataset(R=R, z=z))
        queue.put(("ok", start, time.time(), cpu_s, n))
    except BaseException as err:  # report to the parent instead of leaving it waiting
        barrier.abort()
        queue.put(("error", f"{type(err).__name__}: {err}"))


def run_concurrent(name: str, entry: dict, z, R, n_jobs: int, threads: int) -> tuple[float, float, int]:
    """`n_jobs` processes with `threads` threads each label R split evenly between them.

    Returns (wall s from the first start to the last finish, summed CPU s, frames labelled).
    """
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(n_jobs), ctx.Queue()
    parts = np.array_split(np.arange(len(R)), n_jobs)
    procs = [
        ctx.Process(target=_concurrent_job, args=(name, entry, z, R[p], threads, barrier, queue), daemon=True)
        for p in parts
    ]
    # Jobs start with OMP_NUM_THREADS set, as the label_chunk rule starts them.
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        for proc in procs:
            proc.start()
    finally:
        if saved is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    results = []
    while len(results) < len(procs):
        try:
            results.append(queue.get(timeout=5))
        except Empty:
            dead = [proc.exitcode for proc in procs if proc.exitcode not in (None, 0)]
            if dead:  # killed without reporting (e.g. out of memory); daemons die with us
                raise RuntimeError(f"concurrent labelling job died with exit code {dead[0]}") from None
    for proc in procs:
        proc.join()
    errors = [r[1] for r in results if r[0] == "error"]
    if errors:
        raise RuntimeError(f"concurrent labelling job failed: {errors[0]}")
    wall = max(r[2] for r in results) - min(r[1] for r in results)
    return wall, sum(r[3] for r in results), sum(r[4] for r in results)


def per_hour(n: int, seconds: float) -> float:
    return n * 3600.0 / seconds if seconds > 0 else float("nan")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    p.add_argument(
        "--levels",
        nargs="+",
        choices=list(LEVELS),
        default=None,
        help=f"default: all ({', '.join(LEVELS)}), without CCSD(T) on aspirin",
    )
    p.add_argument("--basis", default="6-31G", help="basis of the PySCF levels (dft, ccsd_t)")
    p.add_argument("--frames", type=int, default=4, help="frames per molecule")
    p.add_argument(
        "--repeats", type=int, default=1, help="measure (a) and (b) this many times, alternating; medians reported"
    )
    p.add_argument("--threads", type=int, default=1, help="threads of the (a)/(b) measurements")
    p.add_argument("--parallel-level", choices=list(LEVELS), default="dft")
    p.add_argument("--parallel-molecule", default="ethanol")
    p.add_argument("--no-parallel", action="store_true", help="skip the 1x2 threads vs 2x1 jobs comparison")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: STO-3G basis and 2 frames per molecule")
    a = p.parse_args(argv)
    if a.quick:
        a.basis, a.frames = "sto-3g", 2
    if a.frames < 2:
        p.error("--frames must be at least 2 (the concurrent comparison splits them over 2 jobs)")
    explicit = a.levels is not None
    levels = a.levels or list(LEVELS)
    pairs = [(m, lv) for m in a.molecules for lv in levels if explicit or (lv, m) not in ON_REQUEST]
    skipped = [f"{lv} on {m}" for m in a.molecules for lv in levels if (m, lv) not in pairs]

    set_threads(a.threads)
    print("# Labelling throughput\n")
    common.print_machine(
        {"PySCF": version("pyscf"), "tblite": version("tblite"), "threads per labelling process": str(a.threads)}
    )
    print(
        f"{a.frames} MD-like frames per molecule (seed {a.seed}, 0.05 A displacements), basis {a.basis} "
        f"for the PySCF levels, {a.repeats} repeat(s)."
    )
    if skipped:
        print(f"Left out (name the level in --levels to run it): {', '.join(skipped)}.")
    print()

    geometries = {m: common.reference_geometry(m) for m in set(a.molecules) | {a.parallel_molecule}}
    frames = {
        m: Dataset(R=common.md_like_frames(R0, a.frames, 0.05, a.seed), z=z, name=m)
        for m, (z, R0) in geometries.items()
    }
    warmed: set[str] = set()
    rows = []
    for molecule, name in pairs:
        level = make_level(name, level_entry(name, a.basis))
        if name not in warmed:
            warm_up(level)
            warmed.add(name)
        ds = frames[molecule]
        pipe, bare = [], []
        paths = [(pipe, run_pipeline), (bare, run_bare)]
        for r in range(a.repeats):  # alternate which path goes first, so order effects cancel
            for out, run in paths if r % 2 == 0 else paths[::-1]:
                out.append(run(level, ds))
        cpu_a, wall_a = common.median([r[0] for r in pipe]), common.median([r[1] for r in pipe])
        cpu_b, wall_b = common.median([r[0] for r in bare]), common.median([r[1] for r in bare])
        n_a, n_b = pipe[0][2], bare[0][2]
        rows.append(
            [
                f"{molecule} ({len(ds.z)})",
                level.theory,
                f"{n_a}/{n_b}",
                cpu_a / max(n_a, 1),
                cpu_b / max(n_b, 1),
                wall_a / max(n_a, 1),
                per_hour(n_a, cpu_a),
                per_hour(n_b, cpu_b),
                f"{100.0 * (cpu_a / cpu_b - 1.0):+.1f}",
                f"{100.0 * (wall_a / wall_b - 1.0):+.1f}",
            ]
        )
    print("## Frames per CPU-hour, pipeline chunk path (a) vs bare PySCF/tblite loop (b)\n")
    print(
        common.markdown_table(
            [
                "molecule (atoms)",
                "level",
                "frames ok (a/b)",
                "CPU s/frame (a)",
                "CPU s/frame (b)",
                "wall s/frame (a)",
                "frames/CPU-h (a)",
                "frames/CPU-h (b)",
                "overhead CPU %",
                "overhead wall %",
            ],
            rows,
        )
    )
    print()

    if a.no_parallel:
        return
    entry = level_entry(a.parallel_level, a.basis)
    z, R = frames[a.parallel_molecule].z, frames[a.parallel_molecule].R
    theory = make_level(a.parallel_level, entry).theory
    rows = []
    for n_jobs, threads in ((1, 2), (2, 1)):
        wall, cpu, n = run_concurrent(a.parallel_level, entry, z, R, n_jobs, threads)
        label = f"{n_jobs} job{'s' if n_jobs > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}"
        rows.append([label, n, wall, per_hour(n, wall), per_hour(n, cpu)])
    print(
        f"## 1 job x 2 threads vs 2 concurrent single-thread jobs: {theory}, {a.parallel_molecule} ({len(z)} atoms)\n"
    )
    print(common.markdown_table(["configuration", "frames", "wall s", "frames/wall-h", "frames/CPU-h"], rows))


if __name__ == "__main__":
    main()
