"""Chunk jobs: label a slice of a frames file through the cache; merge chunks with a failure policy.

Failure policy (PySCF only warns on non-convergence; here it is explicit): a frame whose SCF or CC
does not converge, or whose engine returns a NaN or infinite energy or force, is retried once with
safer settings (level shift, second-order SCF, more cycles); if it still fails it is dropped from
the dataset and recorded in the failures table with its reason. The merge fails with a clear
message when more than `max_failure_fraction` of a subset failed. Merged datasets are then screened
for implausible labels (pipeline.labelling.outliers).

Frames are claimed before they are computed (LabelCache.claim), so jobs of several runs that share
one cache never compute the same frame twice: a job labels the frames nobody else holds first,
then waits for the others.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import Dataset, atomic_write, concat, load_npz, nonfinite_frames
from . import outliers as outlier_screen
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
            bad = _nonfinite_reason(label.energy, label.forces)
            if bad:
                label = Label(label.energy, label.forces, False, f"{bad} from the {level.ENGINE} engine")
        if label.converged:
            break
        what = "safer settings" if safer else ("previous density" if guess is not None else "default guess")
        reasons.append(f"{what}: {label.reason}")
        log.warning("frame not converged with %s (%s)", what, label.reason)
    if not label.converged:
        label.reason = "; ".join(reasons)
    return label, time.process_time() - cpu0, time.perf_counter() - wall0


def _nonfinite_reason(energy, forces) -> str:
    """'' for finite labels, else which key holds what (e.g. 'non-finite F (NaN)')."""
    bad = nonfinite_frames(
        np.zeros((1, 1, 3)), np.reshape(np.float64(energy), 1), np.asarray(forces, dtype=np.float64)[None]
    )
    return "; ".join(f"non-finite {key} ({what})" for _, key, what in bad)


def _compute_claimed(frames: Dataset, i: int, level: Level, cache: LabelCache, dm, wait: bool):
    """Claim frame i, compute it unless the cache has it by then. Returns (entry or None when
    another process holds the frame and wait is False, density for the next frame)."""
    z, R = frames.z, frames.R[i]
    with cache.claim(z, R, wait=wait) as claimed:
        if not claimed:
            return None, dm
        hit = cache.get(z, R)  # the previous holder may have finished it
        if hit is not None:
            return hit, dm
        label, cpu_s, wall_s = _label_one(level, z, R, dm)
        cache.put(
            z,
            R,
            energy=label.energy,
            forces=label.forces,
            converged=label.converged,
            reason=label.reason,
            cpu_s=cpu_s,
            wall_s=wall_s,
        )
        log.info(
            "frame %d (id %d): %s in %.1f s CPU",
            i,
            frames.frame_id[i],
            "ok" if label.converged else f"FAILED ({label.reason})",
            cpu_s,
        )
        return cache.get(z, R), (label.dm if label.converged else None)


def label_chunk(
    frames: Dataset, level: Level, cache: LabelCache, start: int, stop: int
) -> tuple[Dataset, pd.DataFrame]:
    """Label frames[start:stop]. Returns (labelled frames, failures table)."""
    entries: dict[int, dict] = {}
    held_elsewhere = []
    dm = None
    for i in range(start, min(stop, len(frames))):
        hit = cache.get(frames.z, frames.R[i])
        if hit is None:
            hit, dm = _compute_claimed(frames, i, level, cache, dm, wait=False)
        if hit is None:
            held_elsewhere.append(i)
        else:
            entries[i] = hit
    for i in held_elsewhere:
        log.info("frame %d (id %d) is being labelled by another process; waiting for it", i, frames.frame_id[i])
        entries[i], dm = _compute_claimed(frames, i, level, cache, dm, wait=True)
    rows, failures = [], []
    for i in sorted(entries):
        hit = entries[i]
        reason = str(hit["reason"])
        ok = bool(hit["converged"])
        if ok:
            bad = _nonfinite_reason(hit["energy"], hit["forces"])  # an entry written before this check
            if bad:
                ok, reason = False, f"{bad} in the cached label"
        if ok:
            rows.append((i, float(hit["energy"]), hit["forces"], float(hit["cpu_s"]), float(hit["wall_s"])))
        else:
            failures.append(
                dict(level=level.name, frame_id=int(frames.frame_id[i]), reason=reason, cpu_s=float(hit["cpu_s"]))
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


def merge_chunks(
    chunk_paths: list[str],
    n_requested: int,
    max_failure_fraction: float,
    out_path,
    failures_csv,
    outliers: dict | None = None,
    outliers_csv=None,
) -> Dataset:
    """Concatenate chunk files into one dataset; enforce the failure policy; screen outliers
    (when `outliers` settings are given; the table goes to `outliers_csv`)."""
    chunks = [load_npz(p) for p in chunk_paths]
    failures = pd.DataFrame(
        [f for c in chunks for f in c.meta.get("failures", [])], columns=["level", "frame_id", "reason", "cpu_s"]
    )
    atomic_write(failures_csv, lambda tmp: failures.to_csv(tmp, index=False))
    frac = len(failures) / max(n_requested, 1)
    if frac > max_failure_fraction:
        raise LabellingFailed(
            f"{out_path}: {len(failures)} of {n_requested} frames ({frac:.1%}) failed (no convergence or "
            f"non-finite labels), above labelling.max_failure_fraction = {max_failure_fraction}; reasons per "
            f"frame in {failures_csv}. Finished frames stay in the label cache; loosen the level's settings "
            f"or raise labelling.max_failure_fraction (0 to 1)."
        )
    ds = concat(chunks)
    ds.meta = {k: v for k, v in ds.meta.items() if k != "failures"}
    ds.meta["n_failed"] = int(len(failures))
    return finish_dataset(ds, out_path, outliers, outliers_csv)


def finish_dataset(ds: Dataset, out_path, outliers: dict | None = None, outliers_csv=None) -> Dataset:
    """Screen outliers, then write the dataset and the outlier table. (Non-finite labels never get
    here: load_npz and Dataset reject them, naming the file, frame and key.)"""
    level = ds.meta.get("level", "")
    if outliers is not None:
        ds, table = outlier_screen.screen(ds, level, outliers)
        if outliers_csv is not None:
            atomic_write(outliers_csv, lambda tmp: table.to_csv(tmp, index=False))
        if len(table):
            log.warning(
                "%s: %d frame(s) flagged as outliers (%s); see %s",
                out_path,
                ds.meta["n_outliers"],
                "dropped" if ds.meta["n_outliers_dropped"] else "kept",
                outliers_csv,
            )
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
