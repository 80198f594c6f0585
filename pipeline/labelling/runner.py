"""Chunk jobs: label a slice of a frames file through the cache; merge chunks with a failure policy.

Failure policy (PySCF only warns on non-convergence; here it is explicit): a frame whose SCF or CC
does not converge is retried once with safer settings (level shift, second-order SCF, more
cycles); if it still fails it is dropped from the dataset and recorded in the failures table. The
merge fails with a clear message when more than `max_failure_fraction` of a subset failed.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import Dataset, atomic_write, concat, load_npz
from .cache import LabelCache
from .levels import Level

log = logging.getLogger(__name__)


class LabellingFailed(RuntimeError):
    """Too many frames failed to converge."""


def set_threads(threads: int) -> None:
    """Threads for PySCF (OpenMP) and BLAS in this process."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        from pyscf import lib

        lib.num_threads(threads)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass


def _label_one(level: Level, z, R, dm0):
    """Compute one frame. Returns (Label, cpu_s, wall_s), cpu/wall summed over attempts.

    Attempts: from the previous frame's density (when given; it saves SCF iterations for nearby
    geometries), then from the default guess, then once with safer settings.
    """
    from .levels import Label

    attempts = ([(dm0, False)] if dm0 is not None else []) + [(None, False), (None, True)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    reasons = []
    label = None
    for guess, safer in attempts:
        try:
            label = level.compute(z, R, dm0=guess, safer=safer)
        except Exception as err:  # a numerical failure inside the engine counts as non-convergence
            label = Label(np.nan, np.full((len(z), 3), np.nan), False, f"{type(err).__name__}: {err}")
        if label.converged:
            break
        what = "safer settings" if safer else ("previous density" if guess is not None else "default guess")
        reasons.append(f"{what}: {label.reason}")
        log.warning("frame not converged with %s (%s)", what, label.reason)
    if not label.converged:
        label.reason = "; ".join(reasons)
    return label, time.process_time() - cpu0, time.perf_counter() - wall0


def label_chunk(frames: Dataset, level: Level, cache: LabelCache, start: int, stop: int) -> tuple[Dataset, pd.DataFrame]:
    """Label frames[start:stop]. Returns (labelled frames, failures table)."""
    rows, failures = [], []
    dm = None
    for i in range(start, min(stop, len(frames))):
        R = frames.R[i]
        hit = cache.get(frames.z, R)
        if hit is None:
            label, cpu_s, wall_s = _label_one(level, frames.z, R, dm)
            cache.put(
                frames.z, R, energy=label.energy, forces=label.forces, converged=label.converged,
                reason=label.reason, cpu_s=cpu_s, wall_s=wall_s,
            )
            hit = cache.get(frames.z, R)
            dm = label.dm if label.converged else None
            log.info("frame %d (id %d): %s in %.1f s CPU", i, frames.frame_id[i], "ok" if label.converged else "FAILED", cpu_s)
        if bool(hit["converged"]):
            rows.append((i, float(hit["energy"]), hit["forces"], float(hit["cpu_s"]), float(hit["wall_s"])))
        else:
            failures.append(
                dict(level=level.name, frame_id=int(frames.frame_id[i]), reason=str(hit["reason"]),
                     cpu_s=float(hit["cpu_s"]))
            )
    idx = np.array([r[0] for r in rows], dtype=np.int64)
    out = frames.subset(idx)
    out.E = np.array([r[1] for r in rows], dtype=np.float64)
    out.F = np.stack([r[2] for r in rows]) if rows else np.zeros((0, len(frames.z), 3))
    out.cpu_s = np.array([r[3] for r in rows], dtype=np.float64)
    out.wall_s = np.array([r[4] for r in rows], dtype=np.float64)
    out.theory = level.theory
    out.meta = {**frames.meta, "level": level.name, "level_settings": level.settings}
    fail_df = pd.DataFrame(failures, columns=["level", "frame_id", "reason", "cpu_s"])
    return out, fail_df


def write_chunk(path, ds: Dataset, failures: pd.DataFrame) -> None:
    ds.meta = {**ds.meta, "failures": failures.to_dict(orient="records")}
    ds.save(path)


def merge_chunks(chunk_paths: list[str], n_requested: int, max_failure_fraction: float,
                 out_path, failures_csv) -> Dataset:
    """Concatenate chunk files into one dataset; enforce the failure policy."""
    chunks = [load_npz(p) for p in chunk_paths]
    failures = pd.DataFrame(
        [f for c in chunks for f in c.meta.get("failures", [])], columns=["level", "frame_id", "reason", "cpu_s"]
    )
    atomic_write(failures_csv, lambda tmp: failures.to_csv(tmp, index=False))
    frac = len(failures) / max(n_requested, 1)
    if frac > max_failure_fraction:
        raise LabellingFailed(
            f"{len(failures)} of {n_requested} frames ({frac:.1%}) failed to converge, above "
            f"labelling.max_failure_fraction = {max_failure_fraction}; see {failures_csv}. "
            f"Finished frames stay in the label cache; loosen the level's settings or raise the threshold."
        )
    ds = concat(chunks)
    ds.meta = {k: v for k, v in ds.meta.items() if k != "failures"}
    ds.meta["n_failed"] = int(len(failures))
    ds.save(out_path)
    return ds


def frames_per_job(n_frames: int, cpu_s_per_frame: float, job_cpu_minutes: float, max_frames_per_job: int) -> int:
    """Frames per labelling job of a subset: jobs of about `job_cpu_minutes` of estimated CPU time
    (and at most `max_frames_per_job` frames), the subset split into equal jobs.

    A 4,000-frame xTB pool (milliseconds a frame) becomes a few jobs, not hundreds of jobs that
    spend their time importing Python; 100 CCSD(T) frames of ~13 s become two 20-minute jobs.
    The estimate must not depend on the label cache, or job boundaries would move as it fills.
    """
    n_frames = max(int(n_frames), 1)
    by_cost = math.ceil(n_frames * max(cpu_s_per_frame, 0.0) / (60.0 * job_cpu_minutes))
    n_jobs = max(1, by_cost, math.ceil(n_frames / max_frames_per_job))
    return math.ceil(n_frames / n_jobs)


def n_chunks(n_frames: int, chunk_size: int) -> int:
    return max(1, -(-n_frames // chunk_size))


def chunk_bounds(chunk: int, chunk_size: int) -> tuple[int, int]:
    return chunk * chunk_size, (chunk + 1) * chunk_size


def ensure_parent(path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
