"""EGNN: E(n) Equivariant Graph Neural Network (Satorras, Hoogeboom, Welling, ICML 2021).

Equivariant graph convolutional layer (E_GCL), paper eqs. 3-6:
    m_ij    = phi_e(h_i, h_j, ||x_i - x_j||^2, a_ij)                       (3)
    x_i'    = x_i + sum_{j != i} (x_i - x_j) phi_x(m_ij)                    (4, optional)
    m_i     = sum_{j != i} e_ij m_ij,  e_ij = sigmoid(phi_inf(m_ij))        (5, eq. 8 attention)
    h_i'    = h_i + phi_h(h_i, m_i)                                         (6)
The energy is read out from the invariant node features only, E = sum_i phi_out(h_i^L),
so it is invariant to rotations, translations and permutations of like atoms.

Deviations for force fields: messages (and coordinate updates) are multiplied by a smooth
polynomial cutoff f_c(d_ij) of the input distance (C^2 at the cutoff, so forces and their
derivatives stay continuous when a pair leaves the neighbour list); the coordinate update
uses (x_i - x_j) / (d_ij + 1) as in the authors' code for stability. ``cutoff=None`` gives
the paper's fully connected graph within each structure (no f_c).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .basis import PolynomialEnvelope, RadialBesselBasis
from .graph import num_structures, radius_graph


class EGNNLayer(nn.Module):
    """One E_GCL layer (eqs. 3-6); the first linear map of phi_e is split per input block."""

    def __init__(self, hidden: int, edge_attr_dim: int, attention: bool, update_coords: bool):
        super().__init__()
        # phi_e: Linear([h_i, h_j, d^2, a_ij]) -> SiLU -> Linear -> SiLU
        self.msg_dst = nn.Linear(hidden, hidden)
        self.msg_src = nn.Linear(hidden, hidden, bias=False)
        self.msg_edge = nn.Linear(1 + edge_attr_dim, hidden, bias=False)
        self.msg_out = nn.Linear(hidden, hidden)
        self.attention = nn.Linear(hidden, 1) if attention else None
        # phi_h: Linear([h_i, m_i]) -> SiLU -> Linear, residual
        self.node_in = nn.Linear(2 * hidden, hidden)
        self.node_out = nn.Linear(hidden, hidden)
        if update_coords:
            last = nn.Linear(hidden, 1, bias=False)
            nn.init.xavier_uniform_(last.weight, gain=0.001)
            self.coord = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), last)
        else:
            self.coord = None

    def forward(
        self,
        h: torch.Tensor,  # [n_atoms, hidden]
        x: torch.Tensor,  # [n_atoms, 3]
        src: torch.Tensor,  # [n_edges]
        dst: torch.Tensor,  # [n_edges]
        edge_attr: torch.Tensor | None,  # [n_edges, edge_attr_dim]
        fcut: torch.Tensor | None,  # [n_edges, 1]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        diff = x[dst] - x[src]  # [n_edges, 3]  x_i - x_j
        d2 = diff.square().sum(-1, keepdim=True)  # [n_edges, 1]
        e_in = d2 if edge_attr is None else torch.cat([d2, edge_attr], dim=-1)  # [n_edges, 1 + edge_attr_dim]
        m = self.msg_dst(h)[dst] + self.msg_src(h)[src] + self.msg_edge(e_in)  # [n_edges, hidden]
        m = F.silu(self.msg_out(F.silu(m)))  # [n_edges, hidden]  eq. 3
        weight = torch.sigmoid(self.attention(m)) if self.attention is not None else None  # [n_edges, 1]  eq. 8
        if fcut is not None:
            weight = fcut if weight is None else weight * fcut
        if weight is not None:
            m = m * weight
        agg = torch.zeros_like(h).index_add(0, dst, m)  # [n_atoms, hidden]  eq. 5
        if self.coord is not None:
            w = self.coord(m)  # [n_edges, 1]
            if fcut is not None:
                w = w * fcut
            shift = diff / (d2.sqrt() + 1.0) * w  # [n_edges, 3]
            x = x + torch.zeros_like(x).index_add(0, dst, shift)  # eq. 4
        h = h + self.node_out(F.silu(self.node_in(torch.cat([h, agg], dim=-1))))  # eq. 6
        return h, x


class EGNN(nn.Module):
    """EGNN energy model: atom-type embedding, ``num_layers`` E_GCL layers, per-atom MLP readout.

    Parameters
    ----------
    hidden: node/message feature size (paper: 128).
    num_layers: number of E_GCL layers (5 here, 7 in the paper's QM9 setting).
    cutoff: neighbour cutoff in Angstrom; ``None`` = fully connected within each structure.
    envelope_exponent: exponent p of the polynomial cutoff f_c.
    num_rbf: if > 0, a radial Bessel expansion of d_ij (needs a cutoff) is added to the edge
        attributes a_ij next to ||x_i - x_j||^2.
    attention: use the soft edge weights e_ij of paper eq. 8.
    update_coords: apply the coordinate update eq. 4 between layers (off by default, as in
        the authors' model for invariant QM9 targets).
    max_z: size of the atomic-number embedding table (z < max_z).
    """

    def __init__(
        self,
        hidden: int = 128,
        num_layers: int = 5,
        cutoff: float | None = 5.0,
        envelope_exponent: int = 5,
        num_rbf: int = 0,
        attention: bool = True,
        update_coords: bool = False,
        max_z: int = 100,
    ):
        super().__init__()
        if num_rbf > 0 and cutoff is None:
            raise ValueError("EGNN: num_rbf > 0 needs a finite cutoff")
        self.cutoff = cutoff
        self.embedding = nn.Embedding(max_z, hidden)
        self.envelope = PolynomialEnvelope(envelope_exponent) if cutoff is not None else None
        self.rbf = RadialBesselBasis(num_rbf, cutoff, envelope_exponent) if num_rbf > 0 else None
        self.layers = nn.ModuleList(EGNNLayer(hidden, num_rbf, attention, update_coords) for _ in range(num_layers))
        self.readout = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        src, dst = radius_graph(pos, batch, self.cutoff)  # [n_edges] each
        fcut = edge_attr = None
        if self.cutoff is not None:
            d = (pos[dst] - pos[src]).norm(dim=-1)  # [n_edges]
            fcut = self.envelope(d / self.cutoff)[:, None]  # [n_edges, 1]
            if self.rbf is not None:
                edge_attr = self.rbf(d)  # [n_edges, num_rbf]
        h = self.embedding(z)  # [n_atoms, hidden]
        x = pos
        for layer in self.layers:
            h, x = layer(h, x, src, dst, edge_attr, fcut)
        e_atom = self.readout(h).squeeze(-1)  # [n_atoms]
        return e_atom.new_zeros(num_structures(batch)).index_add(0, batch, e_atom)  # [n_struct]
