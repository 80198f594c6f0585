"""Neighbour lists for batched molecules in plain torch (no torch-cluster / torch-scatter).

Atoms of a batch are concatenated; ``batch[i]`` is the structure of atom ``i`` and must be
sorted (atoms of one structure contiguous). Edges only connect atoms of the same structure.
Everything is vectorised over atoms and structures through a dense ``[n_atoms, n_max]``
candidate table (molecules have tens of atoms), and index tensors live on ``pos.device``.

Edge convention: edge ``e`` is the message ``src[e] -> dst[e]``; edges are sorted by ``dst``
then ``src``, so all edges into one atom are contiguous.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def num_structures(batch: torch.Tensor) -> int:
    """Number of structures in a sorted batch vector (0..n-1)."""
    return int(batch[-1]) + 1 if batch.numel() else 0


def radius_graph(pos: torch.Tensor, batch: torch.Tensor, cutoff: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Directed edges j -> i for all pairs i != j in one structure with |r_i - r_j| < cutoff.

    ``cutoff=None`` connects every pair within a structure. The graph is symmetric (j -> i
    present iff i -> j present). Returns ``(src, dst)``, each [n_edges] long, sorted by (dst, src).
    """
    device = pos.device
    n_atoms = pos.shape[0]
    counts = torch.bincount(batch, minlength=num_structures(batch))  # [n_struct]
    start = torch.cumsum(counts, 0) - counts  # [n_struct]
    n_max = int(counts.max()) if counts.numel() else 0
    atom = torch.arange(n_atoms, device=device)  # [n_atoms]
    local = torch.arange(n_max, device=device)  # [n_max]
    cand = start[batch][:, None] + local  # [n_atoms, n_max]
    valid = (local < counts[batch][:, None]) & (cand != atom[:, None])  # [n_atoms, n_max]
    if cutoff is not None:
        cand_safe = torch.where(valid, cand, atom[:, None])  # [n_atoms, n_max]
        with torch.no_grad():
            p = pos.detach()
            d2 = (p[cand_safe] - p[:, None, :]).square().sum(-1)  # [n_atoms, n_max]
        valid &= d2 < cutoff * cutoff
    dst, k = valid.nonzero(as_tuple=True)  # row-major: sorted by dst, then src
    src = cand[dst, k]
    return src, dst


def edge_swap_index(src: torch.Tensor, dst: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Index of the reverse edge: ``src[swap[e]] == dst[e]`` and ``dst[swap[e]] == src[e]``.

    Requires a symmetric graph sorted by (dst, src), as built by :func:`radius_graph`.
    """
    key = dst * n_atoms + src  # [n_edges], ascending
    return torch.searchsorted(key, src * n_atoms + dst)  # [n_edges]


class Triplets(NamedTuple):
    """Dense triplet tables for a graph sorted by ``dst`` (see :func:`triplets`)."""

    edge_in: torch.Tensor  # [n_edges, K] edge b -> a feeding edge c -> a (e itself where masked)
    mask: torch.Tensor  # [n_edges, K] False for padding slots and for b == c
    atom_edge: torch.Tensor  # [n_atoms, K] edge in slot k of atom a (0 for padding slots)
    edge_slot: torch.Tensor  # [n_edges] row of edge e in the [n_atoms * K] slot layout
    full: bool  # every atom has in-degree K, so the slot layout is the edge list itself


def triplets(dst: torch.Tensor, n_atoms: int) -> Triplets:
    """Dense triplet tables: for every edge c -> a, all edges b -> a with b != c.

    GemNet aggregates messages of edges b -> a into edge c -> a (triplet b -> a <- c, angle
    at a). Because edges are sorted by ``dst``, the edges into atom a are the contiguous range
    ``[first[a], first[a] + deg[a])``; slot k of atom a (and of every edge into a) is edge
    ``first[a] + k``, for k < K = max in-degree.
    """
    device = dst.device
    n_edges = dst.shape[0]
    deg = torch.bincount(dst, minlength=n_atoms)  # [n_atoms]
    first = torch.cumsum(deg, 0) - deg  # [n_atoms]
    k_max = int(deg.max()) if deg.numel() else 0
    edge = torch.arange(n_edges, device=device)  # [n_edges]
    slot = torch.arange(k_max, device=device)  # [K]
    edge_in = first[dst][:, None] + slot  # [n_edges, K]
    mask = (slot < deg[dst][:, None]) & (edge_in != edge[:, None])  # [n_edges, K]
    edge_in = torch.where(mask, edge_in, edge[:, None])  # [n_edges, K]
    atom_edge = first[:, None] + slot  # [n_atoms, K]
    atom_edge = torch.where(slot < deg[:, None], atom_edge, torch.zeros_like(atom_edge))  # [n_atoms, K]
    edge_slot = dst * k_max + (edge - first[dst])  # [n_edges]
    return Triplets(edge_in, mask, atom_edge, edge_slot, n_edges == n_atoms * k_max)
