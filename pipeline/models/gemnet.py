"""GemNet-T (Gasteiger, Becker, Günnemann, NeurIPS 2021, "GemNet: Universal Directional
Graph Neural Networks for Molecules"), triplet-only variant with energy-conserving forces.

Structure (paper Fig. 2 and Appendix; layer names follow the reference implementation):
  * bases: radial Bessel e_RBF(d_ca) with polynomial envelope (p = 5) and the 2D spherical
    Fourier-Bessel basis e_CBF(d_ca, angle_cab) = radial(d_ca) x Y_l0(angle_cab);
  * embedding block: h_a = emb(z_a), m_ca = Dense([h_c, h_a, e_RBF(d_ca)]);
  * ``num_blocks`` interaction blocks: directional triplet message passing
    m_ca <- sum_b m_ba * e_RBF(d_ba) * e_CBF(d_ca, angle_cab) through a bilinear layer in the
    "efficient reformulation" (Appendix), edge residual layers, atom update, re-embedding;
  * ``num_blocks + 1`` output blocks giving per-atom energies, summed over blocks and atoms.
  * ScaleFactor layers keep activations variance-preserving; they are fixed numbers (1 by
    default) that :func:`fit_scale_factors` can fit on data, as the reference ``fit_scaling``.

Forces are -dE/dx via autograd (GemNet-T, ``direct_forces=False``); the activation is the
scaled SiLU silu(x)/0.6, so the energy is smooth and twice differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from .basis import RadialBesselBasis, SphericalBasis
from .graph import Triplets, edge_swap_index, num_structures, radius_graph, triplets

INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def he_orthogonal_(weight: torch.Tensor) -> torch.Tensor:
    """Random (semi-)orthogonal matrix, standardised per output row, scaled to Var = 1/fan_in.

    ``weight`` is [out_features, fan_in] (torch.nn.Linear layout).
    """
    with torch.no_grad():
        nn.init.orthogonal_(weight)
        var, mean = torch.var_mean(weight, dim=1, keepdim=True)
        weight.sub_(mean).div_(torch.sqrt(var + 1e-6)).mul_(weight.shape[1] ** -0.5)
    return weight


class ScaledSiLU(nn.Module):
    """silu(x) / 0.6 (keeps the variance of unit-variance inputs roughly at 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x) * (1.0 / 0.6)


class Dense(nn.Module):
    """Bias-free linear layer with He-orthogonal init and optional scaled SiLU."""

    def __init__(self, in_features: int, out_features: int, activation: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        he_orthogonal_(self.linear.weight)
        self.act = ScaledSiLU() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))


class ResidualLayer(nn.Module):
    """x + Dense(Dense(x)), scaled by 1/sqrt(2)."""

    def __init__(self, units: int):
        super().__init__()
        self.mlp = nn.Sequential(Dense(units, units, activation=True), Dense(units, units, activation=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.mlp(x)) * INV_SQRT_2


class ScaleFactor(nn.Module):
    """y -> s * y with a fixed (non-trainable) factor s, stored in the state dict.

    ``forward(x_ref, y)`` also receives the reference input whose variance ``s * y`` should
    match; :func:`fit_scale_factors` reads both through a forward hook.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("scale_factor", torch.tensor(1.0))

    def forward(self, x_ref: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y * self.scale_factor


class EfficientDownProjection(nn.Module):
    """Shared projection of the CBF radial part: [E, S, R] -> [E, emb_cbf, S] (W[s, r, f])."""

    def __init__(self, num_spherical: int, num_radial: int, emb_size: int):
        super().__init__()
        self.num_spherical, self.num_radial = num_spherical, num_radial
        self.weight = nn.Parameter(he_orthogonal_(torch.empty(emb_size, num_spherical * num_radial)))

    def forward(self, rad: torch.Tensor) -> torch.Tensor:
        w = self.weight.view(-1, self.num_spherical, self.num_radial)  # [emb_cbf, S, R]
        return torch.einsum("esr,fsr->efs", rad, w)  # [E, emb_cbf, S]


class EfficientBilinear(nn.Module):
    """Efficient bilinear triplet aggregation (GemNet Appendix, "efficient reformulation").

    For edge c -> a:  m_ca[o] = sum_{f,t} W[o, f, t] sum_k A[ca, f, k] x[ba_k, t]  with
    A[ca, f, k] = sum_s rbfW[ca, f, s] sph[ca, s, k], i.e. the bilinear layer of (projected
    CBF basis) x (message of edge b -> a), summed over the triplets b -> a <- c (k runs over
    the padded slots of atom a). All edges into atom a share the messages x[ba_k], so the sum
    over k is one [K * emb_cbf, K] @ [K, emb_trip] product per atom instead of tiny per-edge ones.
    """

    def __init__(self, emb_size_trip: int, emb_size_cbf: int, emb_size_out: int):
        super().__init__()
        self.weight = nn.Parameter(he_orthogonal_(torch.empty(emb_size_out, emb_size_cbf * emb_size_trip)))

    def forward(self, rbf_w: torch.Tensor, sph: torch.Tensor, x_ba: torch.Tensor, trip: Triplets) -> torch.Tensor:
        # rbf_w [E, C, S], sph [E, S, K], x_ba [E, T]
        n_atoms, k_max = trip.atom_edge.shape
        n_cbf = rbf_w.shape[1]
        a = torch.matmul(rbf_w, sph)  # [E, C, K]
        if not trip.full:
            a = a.new_zeros(n_atoms * k_max, n_cbf, k_max).index_copy(0, trip.edge_slot, a)  # [n_atoms * K, C, K]
        x = x_ba[trip.atom_edge]  # [n_atoms, K, T]
        rw = torch.matmul(a.view(n_atoms, k_max * n_cbf, k_max), x)  # [n_atoms, K * C, T]
        rw = rw.view(n_atoms * k_max, n_cbf * x.shape[-1])  # [n_atoms * K, C * T]
        if not trip.full:
            rw = rw[trip.edge_slot]  # [E, C * T]
        return F.linear(rw, self.weight)  # [E, emb_out]


class EdgeEmbedding(nn.Module):
    """m_ca = ScaledSiLU(W [h_c, h_a, m]) with W split by input block (no [E, 2A+M] concat)."""

    def __init__(self, atom_features: int, edge_features: int, out_features: int):
        super().__init__()
        self.atom_features = atom_features
        self.dense = Dense(2 * atom_features + edge_features, out_features, activation=True)

    def forward(self, h: torch.Tensor, m: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        a = self.atom_features
        w = self.dense.linear.weight  # [out, 2A + M]
        hw = F.linear(h, torch.cat([w[:, :a], w[:, a : 2 * a]], dim=0))  # [n_atoms, 2 * out]
        h_src, h_dst = hw.chunk(2, dim=-1)  # [n_atoms, out] each
        return self.dense.act(h_src[src] + h_dst[dst] + F.linear(m, w[:, 2 * a :]))  # [E, out]


class TripletInteraction(nn.Module):
    """Directional triplet message passing (paper Fig. 2, "triplet interaction")."""

    def __init__(
        self, emb_size_edge: int, emb_size_trip: int, emb_size_bilinear: int, emb_size_rbf: int, emb_size_cbf: int
    ):
        super().__init__()
        self.dense_ba = Dense(emb_size_edge, emb_size_edge, activation=True)
        self.mlp_rbf = Dense(emb_size_rbf, emb_size_edge)
        self.scale_rbf = ScaleFactor()
        self.mlp_cbf = EfficientBilinear(emb_size_trip, emb_size_cbf, emb_size_bilinear)
        self.scale_cbf_sum = ScaleFactor()
        self.down_projection = Dense(emb_size_edge, emb_size_trip, activation=True)
        self.up_projection_ca = Dense(emb_size_bilinear, emb_size_edge, activation=True)
        self.up_projection_ac = Dense(emb_size_bilinear, emb_size_edge, activation=True)

    def forward(self, m, rbf3, cbf3_w, sph, trip, id_swap):
        x_ba = self.dense_ba(m)  # [E, emb_edge]
        x_ba = self.scale_rbf(x_ba, x_ba * self.mlp_rbf(rbf3))  # [E, emb_edge]
        x_ba = self.down_projection(x_ba)  # [E, emb_trip]  message of edge b -> a
        x = self.scale_cbf_sum(x_ba, self.mlp_cbf(cbf3_w, sph, x_ba, trip))  # [E, emb_bil]
        x_ca = self.up_projection_ca(x)  # [E, emb_edge]
        x_ac = self.up_projection_ac(x)[id_swap]  # [E, emb_edge]  swapped onto a -> c
        return (x_ca + x_ac) * INV_SQRT_2


class AtomUpdate(nn.Module):
    """h_a = MLP(scale * sum_c m_ca * W e_RBF(d_ca)) (paper "atom emb. block")."""

    def __init__(self, emb_size_atom: int, emb_size_edge: int, emb_size_rbf: int, num_hidden: int):
        super().__init__()
        self.dense_rbf = Dense(emb_size_rbf, emb_size_edge)
        self.scale_sum = ScaleFactor()
        self.layers = nn.Sequential(
            Dense(emb_size_edge, emb_size_atom, activation=True),
            *(ResidualLayer(emb_size_atom) for _ in range(num_hidden)),
        )

    def forward(self, h: torch.Tensor, m: torch.Tensor, rbf: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        x = m * self.dense_rbf(rbf)  # [E, emb_edge]
        x = m.new_zeros(h.shape[0], x.shape[1]).index_add(0, dst, x)  # [n_atoms, emb_edge]
        return self.layers(self.scale_sum(m, x))  # [n_atoms, emb_atom]


class OutputBlock(AtomUpdate):
    """Atom update followed by a bias-free linear map to one energy per atom."""

    def __init__(self, emb_size_atom: int, emb_size_edge: int, emb_size_rbf: int, num_hidden: int):
        super().__init__(emb_size_atom, emb_size_edge, emb_size_rbf, num_hidden)
        self.out_energy = Dense(emb_size_atom, 1)

    def forward(self, h, m, rbf, dst):
        return self.out_energy(super().forward(h, m, rbf, dst)).squeeze(-1)  # [n_atoms]


class InteractionBlock(nn.Module):
    """GemNet-T interaction block: triplet interaction, edge residual stack, atom update,
    re-embedding of edges from the updated atoms; all skips scaled by 1/sqrt(2)."""

    def __init__(
        self,
        emb_size_atom: int,
        emb_size_edge: int,
        emb_size_trip: int,
        emb_size_rbf: int,
        emb_size_cbf: int,
        emb_size_bil_trip: int,
        num_before_skip: int,
        num_after_skip: int,
        num_concat: int,
        num_atom: int,
    ):
        super().__init__()
        self.dense_ca = Dense(emb_size_edge, emb_size_edge, activation=True)
        self.trip_interaction = TripletInteraction(
            emb_size_edge, emb_size_trip, emb_size_bil_trip, emb_size_rbf, emb_size_cbf
        )
        self.layers_before_skip = nn.Sequential(*(ResidualLayer(emb_size_edge) for _ in range(num_before_skip)))
        self.layers_after_skip = nn.Sequential(*(ResidualLayer(emb_size_edge) for _ in range(num_after_skip)))
        self.atom_update = AtomUpdate(emb_size_atom, emb_size_edge, emb_size_rbf, num_atom)
        self.concat_layer = EdgeEmbedding(emb_size_atom, emb_size_edge, emb_size_edge)
        self.residual_m = nn.Sequential(*(ResidualLayer(emb_size_edge) for _ in range(num_concat)))

    def forward(self, h, m, rbf3, cbf3_w, sph, trip, id_swap, rbf_h, src, dst):
        x = (
            self.dense_ca(m) + self.trip_interaction(m, rbf3, cbf3_w, sph, trip, id_swap)
        ) * INV_SQRT_2  # [E, emb_edge]
        x = self.layers_before_skip(x)
        m = self.layers_after_skip((m + x) * INV_SQRT_2)  # [E, emb_edge]
        h = (h + self.atom_update(h, m, rbf_h, dst)) * INV_SQRT_2  # [n_atoms, emb_atom]
        m2 = self.residual_m(self.concat_layer(h, m, src, dst))  # [E, emb_edge]
        return h, (m + m2) * INV_SQRT_2


class GemNetT(nn.Module):
    """GemNet-T energy model (conservative forces). Defaults: GemNet paper / MD17 setting.

    Parameters
    ----------
    num_spherical, num_radial: number of angular (l < num_spherical) and radial basis functions.
    num_blocks: number of interaction blocks.
    emb_size_atom, emb_size_edge: atom and edge embedding sizes.
    emb_size_trip: down-projected edge size in the triplet interaction.
    emb_size_rbf, emb_size_cbf: sizes of the projected radial / circular bases.
    emb_size_bil_trip: output size of the bilinear triplet layer.
    num_before_skip, num_after_skip, num_concat, num_atom: residual layers before / after the
        first edge skip, after the edge re-embedding, and in atom update / output blocks.
    cutoff: neighbour cutoff in Angstrom; envelope_exponent: p of the polynomial envelope.
    max_z: size of the atomic-number embedding table (z < max_z).
    """

    def __init__(
        self,
        num_spherical: int = 7,
        num_radial: int = 6,
        num_blocks: int = 4,
        emb_size_atom: int = 128,
        emb_size_edge: int = 128,
        emb_size_trip: int = 64,
        emb_size_rbf: int = 16,
        emb_size_cbf: int = 16,
        emb_size_bil_trip: int = 64,
        num_before_skip: int = 1,
        num_after_skip: int = 2,
        num_concat: int = 1,
        num_atom: int = 3,
        cutoff: float = 5.0,
        envelope_exponent: int = 5,
        max_z: int = 100,
    ):
        super().__init__()
        if num_blocks < 1:
            raise ValueError("GemNetT: num_blocks must be >= 1")
        self.cutoff = cutoff
        self.rbf_basis = RadialBesselBasis(num_radial, cutoff, envelope_exponent)
        self.cbf_basis = SphericalBasis(num_spherical, num_radial, cutoff, envelope_exponent)
        # projections of the bases shared by all blocks
        self.mlp_rbf3 = Dense(num_radial, emb_size_rbf)
        self.mlp_cbf3 = EfficientDownProjection(num_spherical, num_radial, emb_size_cbf)
        self.mlp_rbf_h = Dense(num_radial, emb_size_rbf)
        self.mlp_rbf_out = Dense(num_radial, emb_size_rbf)
        self.atom_emb = nn.Embedding(max_z, emb_size_atom)
        nn.init.uniform_(self.atom_emb.weight, -math.sqrt(3.0), math.sqrt(3.0))
        self.edge_emb = EdgeEmbedding(emb_size_atom, num_radial, emb_size_edge)
        self.int_blocks = nn.ModuleList(
            InteractionBlock(
                emb_size_atom,
                emb_size_edge,
                emb_size_trip,
                emb_size_rbf,
                emb_size_cbf,
                emb_size_bil_trip,
                num_before_skip,
                num_after_skip,
                num_concat,
                num_atom,
            )
            for _ in range(num_blocks)
        )
        self.out_blocks = nn.ModuleList(
            OutputBlock(emb_size_atom, emb_size_edge, emb_size_rbf, num_atom) for _ in range(num_blocks + 1)
        )

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        n_atoms = pos.shape[0]
        src, dst = radius_graph(pos, batch, self.cutoff)  # edge c -> a: src = c, dst = a
        id_swap = edge_swap_index(src, dst, n_atoms)  # [E]
        trip = triplets(dst, n_atoms)  # [E, K] tables

        vec = pos[src] - pos[dst]  # [E, 3]  from a to c
        d = vec.norm(dim=-1)  # [E]
        unit = vec / d[:, None]  # [E, 3]
        cos_cab = (unit[:, None, :] * unit[trip.edge_in]).sum(-1)  # [E, K]  angle at a between c and b

        rbf = self.rbf_basis(d)  # [E, R]
        cbf3_w = self.mlp_cbf3(self.cbf_basis.radial(d))  # [E, emb_cbf, S]
        sph = self.cbf_basis.angular(cos_cab, dim=1) * trip.mask[:, None, :]  # [E, S, K]
        rbf3 = self.mlp_rbf3(rbf)  # [E, emb_rbf]
        rbf_h = self.mlp_rbf_h(rbf)  # [E, emb_rbf]
        rbf_out = self.mlp_rbf_out(rbf)  # [E, emb_rbf]

        h = self.atom_emb(z)  # [n_atoms, emb_atom]
        m = self.edge_emb(h, rbf, src, dst)  # [E, emb_edge]
        e_atom = self.out_blocks[0](h, m, rbf_out, dst)  # [n_atoms]
        for block, out in zip(self.int_blocks, self.out_blocks[1:]):
            h, m = block(h, m, rbf3, cbf3_w, sph, trip, id_swap, rbf_h, src, dst)
            e_atom = e_atom + out(h, m, rbf_out, dst)
        return e_atom.new_zeros(num_structures(batch)).index_add(0, batch, e_atom)  # [n_struct]


@torch.no_grad()
def fit_scale_factors(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    """Fit every :class:`ScaleFactor` in ``model`` so that Var(s * y) = Var(x_ref) on data.

    ``batches`` are ``(z, pos, batch)`` inputs of ``model``. Factors are reset to 1 and then
    fitted one at a time in execution order, each with all earlier factors already fitted
    (the reference ``fit_scaling.py`` procedure). Returns {module name: fitted factor}.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("fit_scale_factors needs at least one batch")
    names = {mod: name for name, mod in model.named_modules() if isinstance(mod, ScaleFactor)}
    for mod in names:
        mod.scale_factor.fill_(1.0)

    order: list[ScaleFactor] = []

    def record(mod, inputs, output):
        if mod not in order:
            order.append(mod)

    handles = [mod.register_forward_hook(record) for mod in names]
    model(*batches[0])
    for handle in handles:
        handle.remove()

    for mod in order:
        stats = [0.0, 0.0, 0]  # sum of n * var_in, n * var_out, n

        def observe(module, inputs, output, stats=stats):
            n = output.shape[0]
            stats[0] += float(inputs[0].var(dim=0, correction=0).mean()) * n
            stats[1] += float(output.var(dim=0, correction=0).mean()) * n
            stats[2] += n

        handle = mod.register_forward_hook(observe)
        for inputs in batches:
            model(*inputs)
        handle.remove()
        if stats[0] > 0 and stats[1] > 0:
            mod.scale_factor.mul_(math.sqrt(stats[0] / stats[1]))
    return {names[mod]: float(mod.scale_factor) for mod in order}
