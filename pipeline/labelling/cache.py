"""Per-frame label cache keyed by a hash of (level settings, atomic numbers, positions).

One small npz per frame, written atomically, so a killed job loses at most the frame it was
computing and any job that meets the same frame at the same level reuses the result.

Several processes may share one cache (jobs of one run, or several Snakemake runs pointing
`labelling.cache_dir` at the same directory). Two rules keep it intact and free of duplicate work:

- An entry is published by renaming a finished temporary file onto its name (`atomic_write`),
  so a reader sees a whole entry or none, and two writers of the same frame leave one whole file.
- Before computing a frame a process claims it: an exclusive `flock` on a hidden lock file next
  to the entry (`.<key>.lock`). A process that finds a frame claimed labels its other frames
  first and then waits for the claim; when it gets it, the entry is usually there and nothing is
  computed. The kernel drops a lock when its holder dies (SIGKILL included), so a killed job
  never leaves a stale claim; its lock file stays behind, empty and harmless, and the next
  claimant takes it over. On file systems whose flock does not reach across hosts the claim may
  not exclude a process on another node; then both compute the frame and the rename still
  leaves one intact entry.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..data import atomic_write

log = logging.getLogger(__name__)

# Positions are rounded before hashing so that a float round trip through a file does not
# change the key; 1e-8 Angstrom is far below any physical difference.
POSITION_DECIMALS = 8
ENTRY_KEYS = ("energy", "forces", "converged", "reason", "cpu_s", "wall_s")


def frame_key(level_token: str, z: np.ndarray, R: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(level_token.encode())
    h.update(np.ascontiguousarray(z, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(np.round(np.asarray(R, dtype=np.float64), POSITION_DECIMALS) + 0.0).tobytes())
    return h.hexdigest()


class LabelCache:
    def __init__(self, root: str | Path, level_token: str):
        self.level_token = level_token
        self.dir = Path(root) / hashlib.sha256(level_token.encode()).hexdigest()[:16]

    def path(self, z, R) -> Path:
        key = frame_key(self.level_token, z, R)
        return self.dir / key[:2] / f"{key}.npz"

    def lock_path(self, z, R) -> Path:
        p = self.path(z, R)
        return p.with_name(f".{p.stem}.lock")

    def get(self, z, R) -> dict | None:
        """The entry of a frame, or None when there is none (or it cannot be read: then it is
        recomputed and replaced)."""
        p = self.path(z, R)
        if not p.exists():
            return None
        try:
            with np.load(p) as f:
                entry = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            log.warning("label cache entry %s is unreadable (%s); the frame is recomputed", p, err)
            return None
        if not set(ENTRY_KEYS) <= set(entry):
            log.warning(
                "label cache entry %s lacks keys %s; the frame is recomputed", p, sorted(set(ENTRY_KEYS) - set(entry))
            )
            return None
        return entry

    @contextmanager
    def claim(self, z, R, wait: bool):
        """Exclusive claim on one frame across processes. Yields True when this process holds it,
        False when another process does and `wait` is False. Callers look the frame up again
        after claiming it: the previous holder may have finished it."""
        lock = self.lock_path(z, R)
        lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    yield False
                    return
                raise
            # The previous holder may have removed the lock file after publishing its entry; a lock
            # on that removed file excludes nobody, so lock the file now at the path instead.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            yield True
        finally:
            try:
                os.unlink(lock)  # while still held: a later claimant opens a fresh file
            except FileNotFoundError:
                pass
            os.close(fd)

    def put(self, z, R, *, energy, forces, converged, reason, cpu_s, wall_s) -> None:
        if not (self.dir / "level.json").exists():
            token = self.level_token
            atomic_write(self.dir / "level.json", lambda tmp: Path(tmp).write_text(token))
        arrays = dict(
            energy=np.float64(energy),
            forces=np.asarray(forces, dtype=np.float64),
            converged=np.bool_(converged),
            reason=np.str_(reason),
            cpu_s=np.float64(cpu_s),
            wall_s=np.float64(wall_s),
            z=np.asarray(z, dtype=np.int64),  # lets the cost model calibrate per molecule (labelling/cost.py)
        )
        atomic_write(self.path(z, R), lambda tmp: np.savez(tmp, **arrays))
