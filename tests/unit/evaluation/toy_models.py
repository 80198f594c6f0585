"""Analytic stand-in EnergyModels for evaluation tests (same forward signature as pipeline.models).

All work on frames of one molecule, in kcal/mol and Angstrom, float64.
"""

from __future__ import annotations

import numpy as np
import torch
from ase.build import molecule


def methanol():
    """(positions [6, 3] Angstrom, z [6]) of methanol from ase.build."""
    atoms = molecule("CH3OH")
    return atoms.positions.copy(), atoms.numbers.copy()


class _PairModel(torch.nn.Module):
    """Base: all atom pairs (i < j) of an n_atoms molecule; a scale parameter so the model has one."""

    def __init__(self, n_atoms: int):
        super().__init__()
        i, j = np.triu_indices(n_atoms, 1)
        self.register_buffer("i", torch.as_tensor(i))
        self.register_buffer("j", torch.as_tensor(j))
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def distances(self, pos, batch):
        n_struct = int(batch.max()) + 1
        p = pos.view(n_struct, -1, 3)  # [n_struct, n_atoms, 3]
        return (p[:, self.i] - p[:, self.j]).norm(dim=-1)  # [n_struct, n_pairs]


class HarmonicModel(_PairModel):
    """E = sum_{i<j} k_ij / 2 (d_ij - d0_ij)^2, stiff for bonded pairs of R0, soft otherwise (kcal/mol)."""

    def __init__(self, R0, k_bonded: float = 500.0, k_other: float = 20.0):
        R0 = np.asarray(R0, dtype=np.float64)
        super().__init__(len(R0))
        d0 = np.linalg.norm(R0[self.i.numpy()] - R0[self.j.numpy()], axis=1)
        self.register_buffer("d0", torch.as_tensor(d0))
        self.register_buffer("k", torch.as_tensor(np.where(d0 < 1.6, k_bonded, k_other)))

    def forward(self, z, pos, batch):
        d = self.distances(pos, batch)
        return self.scale * 0.5 * (self.k * (d - self.d0) ** 2).sum(-1)


class RepulsiveModel(_PairModel):
    """E = A sum_{i<j} 1 / d_ij: pure repulsion, the molecule blows apart (kcal/mol)."""

    def __init__(self, n_atoms: int, A: float = 20.0):
        super().__init__(n_atoms)
        self.A = A

    def forward(self, z, pos, batch):
        return self.scale * self.A * (1.0 / self.distances(pos, batch)).sum(-1)


class NaNModel(_PairModel):
    """Energy NaN everywhere."""

    def forward(self, z, pos, batch):
        return self.scale * self.distances(pos, batch).sum(-1) * float("nan")
