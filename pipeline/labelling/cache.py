"""Per-frame label cache keyed by a hash of (level settings, atomic numbers, positions).

One small npz per frame, written atomically, so a killed job loses at most the frame it was
computing and any job that meets the same frame at the same level reuses the result.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..data import atomic_write

# Positions are rounded before hashing so that a float round trip through a file does not
# change the key; 1e-8 Angstrom is far below any physical difference.
POSITION_DECIMALS = 8


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

    def get(self, z, R) -> dict | None:
        p = self.path(z, R)
        if not p.exists():
            return None
        with np.load(p) as f:
            return {k: f[k] for k in f.files}

    def put(self, z, R, *, energy, forces, converged, reason, cpu_s, wall_s) -> None:
        if not self.dir.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "level.json").write_text(self.level_token)
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
