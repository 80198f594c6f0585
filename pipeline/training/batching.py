"""Dense batching for datasets of one molecule.

Every frame has the same atoms, so a batch is a slice of [n_frames, n_atoms, 3] tensors flattened
to the graph layout the models take (z, pos, batch): no per-frame Python work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import units
from ..data import Dataset


@dataclass
class TensorData:
    """A dataset on a device, in training units (kcal/mol, kcal/mol/A, Angstrom)."""

    z: torch.Tensor  # [n_atoms] long
    R: torch.Tensor  # [n_frames, n_atoms, 3]
    E: torch.Tensor | None  # [n_frames]
    F: torch.Tensor | None  # [n_frames, n_atoms, 3]
    w: torch.Tensor  # [n_frames] per-frame loss weights

    @classmethod
    def from_dataset(cls, ds: Dataset, device="cpu", dtype=torch.float32, weights=None, n: int | None = None):
        sl = slice(0, n)
        R = torch.as_tensor(ds.R[sl], dtype=dtype, device=device)
        E = F = None
        if ds.labelled:
            E = torch.as_tensor(units.ev_to_kcal(ds.E[sl]), dtype=dtype, device=device)
            F = torch.as_tensor(units.ev_to_kcal(ds.F[sl]), dtype=dtype, device=device)
        w = (
            torch.ones(len(R), dtype=dtype, device=device)
            if weights is None
            else torch.as_tensor(np.asarray(weights)[sl], dtype=dtype, device=device)
        )
        return cls(torch.as_tensor(ds.z, device=device), R, E, F, w)

    def __len__(self) -> int:
        return len(self.R)

    @property
    def n_atoms(self) -> int:
        return len(self.z)

    def split(self, n_first: int) -> tuple[TensorData, TensorData]:
        """(frames[:n_first], frames[n_first:])."""
        a, b = slice(0, n_first), slice(n_first, None)
        pick = lambda t, s: None if t is None else t[s]  # noqa: E731
        return (
            TensorData(self.z, self.R[a], pick(self.E, a), pick(self.F, a), self.w[a]),
            TensorData(self.z, self.R[b], pick(self.E, b), pick(self.F, b), self.w[b]),
        )

    def batch(self, idx: torch.Tensor):
        """Graph layout of frames `idx`: z [B*n_atoms], pos [B*n_atoms, 3], batch [B*n_atoms]."""
        b = len(idx)
        z = self.z.repeat(b)  # [B*n_atoms]
        pos = self.R[idx].reshape(-1, 3)  # [B*n_atoms, 3]
        batch = torch.arange(b, device=pos.device).repeat_interleave(self.n_atoms)  # [B*n_atoms]
        return z, pos, batch

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        """Index tensors of shuffled (generator given) or ordered batches."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        order = order.to(self.R.device)
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
