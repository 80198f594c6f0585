"""Physics checks that every model in ``pipeline.models.MODELS`` must pass.

One parametrised class runs each model (small hyperparameters, float64) through: rotation /
translation / permutation invariance, forces = -finite-difference gradient, batch = one at a
time, smoothness across the cutoff, second derivatives (force loss w.r.t. parameters and the
force Jacobian w.r.t. positions, as needed by sliced score matching), normalisation, and
save/load. A second class checks the graph and basis building blocks directly.
"""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.models import (
    MODELS,
    EnergyModel,
    build,
    default_hparams,
    energy_and_forces,
    fit_scale_factors,
    load_model,
    save_model,
)
from pipeline.models.basis import spherical_bessel, spherical_bessel_zeros
from pipeline.models.graph import edge_swap_index, radius_graph, triplets

# Small settings per model so that the whole file runs in seconds; cutoff 3 A is below the
# largest ethanol distance (3.7 A), so the neighbour lists are not complete graphs.
SMALL = {
    "egnn": dict(hidden=16, num_layers=2, cutoff=3.0),
    "gemnet": dict(
        num_blocks=2,
        emb_size_atom=16,
        emb_size_edge=16,
        emb_size_trip=8,
        emb_size_rbf=4,
        emb_size_cbf=4,
        emb_size_bil_trip=8,
        num_after_skip=1,
        num_atom=1,
        cutoff=3.0,
    ),
    "mace": dict(
        hidden_irreps="8x0e + 8x1o",
        max_ell=2,
        correlation=2,
        num_bessel=4,
        radial_MLP=[8],
        MLP_irreps="4x0e",
        r_max=3.0,
        avg_num_neighbors=4.0,
    ),
}
# Every registered model with its small setting, plus EGNN variants (coordinate updates with
# an RBF edge expansion; fully connected without cutoff).
CONFIGS = [(name, SMALL.get(name, {})) for name in MODELS] + [
    ("egnn", dict(SMALL["egnn"], update_coords=True, num_rbf=4)),
    ("egnn", dict(SMALL["egnn"], cutoff=None)),
]
CONFIG_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]

ETHANOL_Z = [6, 6, 8, 1, 1, 1, 1, 1, 1]
ETHANOL_POS = [
    [0.901, -0.075, 0.014],
    [-0.584, -0.368, 0.056],
    [-1.306, 0.822, 0.340],
    [1.237, 0.351, 0.966],
    [1.128, 0.663, -0.762],
    [1.472, -0.985, -0.187],
    [-0.809, -1.098, 0.839],
    [-0.932, -0.770, -0.900],
    [-1.107, 1.461, -0.366],
]
WATER_Z = [8, 1, 1]
WATER_POS = [[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.757, -0.469]]


def ethanol(rattle: float = 0.0, seed: int = 0):
    """Ethanol (z, pos, batch) in float64, optionally with random displacements."""
    pos = torch.tensor(ETHANOL_POS, dtype=torch.float64)
    if rattle:
        pos = pos + rattle * torch.randn(pos.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.tensor(ETHANOL_Z), pos, torch.zeros(len(ETHANOL_Z), dtype=torch.long)


def random_rotation(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q  # [3, 3], det +1


def make_model(name: str, hparams: dict) -> EnergyModel:
    torch.manual_seed(0)
    model = build(name, **hparams).double()
    model.set_normalization(energy_shift_per_atom=-2.5, energy_scale=3.0)
    return model


@pytest.mark.parametrize(("name", "hparams"), CONFIGS, ids=CONFIG_IDS)
class TestModelPhysics:
    def test_energy_invariant_forces_equivariant_under_rotation_translation(self, name, hparams):
        model = make_model(name, hparams)
        z, pos, batch = ethanol(rattle=0.05)
        e0, f0 = energy_and_forces(model, z, pos, batch)
        assert f0.abs().max() > 1e-4, "forces vanish: the test would be vacuous"
        for seed in range(3):
            rot = random_rotation(seed)
            shift = torch.tensor([1.3, -0.7, 2.1], dtype=torch.float64) * (seed + 1)
            e1, f1 = energy_and_forces(model, z, pos @ rot.T + shift, batch)
            torch.testing.assert_close(e1, e0, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(f1, f0 @ rot.T, rtol=1e-9, atol=1e-9)

    def test_energy_invariant_under_permutation_of_like_atoms(self, name, hparams):
        model = make_model(name, hparams)
        z, pos, batch = ethanol(rattle=0.05)
        perm = torch.tensor([1, 0, 2, 8, 6, 4, 3, 7, 5])  # swap the carbons, shuffle the hydrogens
        assert torch.equal(z[perm], z)
        e0, f0 = energy_and_forces(model, z, pos, batch)
        e1, f1 = energy_and_forces(model, z, pos[perm], batch)
        torch.testing.assert_close(e1, e0, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(f1, f0[perm], rtol=1e-9, atol=1e-9)

    def test_forces_are_minus_finite_difference_gradient(self, name, hparams):
        model = make_model(name, hparams)
        z, pos, batch = ethanol(rattle=0.05)
        _, forces = energy_and_forces(model, z, pos, batch)
        eps = 1e-4
        fd = torch.zeros_like(pos)
        with torch.no_grad():
            for i in range(pos.shape[0]):
                for k in range(3):
                    step = torch.zeros_like(pos)
                    step[i, k] = eps
                    fd[i, k] = -(model(z, pos + step, batch) - model(z, pos - step, batch)).item() / (2 * eps)
        assert forces.abs().max() > 1e-4
        torch.testing.assert_close(forces, fd, rtol=1e-6, atol=1e-7 * forces.abs().max().item())

    def test_batch_gives_same_results_as_single_structures(self, name, hparams):
        model = make_model(name, hparams)
        structs = [
            ethanol(rattle=0.05, seed=1)[:2],
            (torch.tensor(WATER_Z), torch.tensor(WATER_POS, dtype=torch.float64)),
            ethanol(rattle=0.10, seed=2)[:2],
            (torch.tensor([8]), torch.zeros(1, 3, dtype=torch.float64)),  # a lone atom (no edges)
        ]
        z = torch.cat([s[0] for s in structs])
        pos = torch.cat([s[1] for s in structs])
        batch = torch.cat([torch.full((len(s[0]),), i) for i, s in enumerate(structs)])
        e_batch, f_batch = energy_and_forces(model, z, pos, batch)
        assert e_batch.shape == (4,) and f_batch.shape == pos.shape
        singles = [energy_and_forces(model, s[0], s[1], torch.zeros(len(s[0]), dtype=torch.long)) for s in structs]
        torch.testing.assert_close(e_batch, torch.cat([e for e, _ in singles]), rtol=1e-11, atol=1e-11)
        torch.testing.assert_close(f_batch, torch.cat([f for _, f in singles]), rtol=1e-10, atol=1e-10)

    def test_energy_and_forces_continuous_across_cutoff(self, name, hparams):
        model = make_model(name, hparams)
        cutoff = model.hparams.get("cutoff", model.hparams.get("r_max"))
        if cutoff is None:
            pytest.skip("fully connected model: no cutoff")
        # A at the origin, B at (1, 0, 0), C = B + (0, y, 0): |AC| = sqrt(1 + y^2) crosses the
        # cutoff while |AB| = 1 and |BC| = y stay inside it.
        z = torch.tensor([6, 8, 1])
        batch = torch.zeros(3, dtype=torch.long)
        y_cross = math.sqrt(cutoff**2 - 1.0)

        def at(y):
            pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, y, 0.0]], dtype=torch.float64)
            return energy_and_forces(model, z, pos, batch)

        delta = 1e-7
        e_in, f_in = at(y_cross - delta)
        e_out, f_out = at(y_cross + delta)
        e_far, f_far = at(y_cross - 0.3)
        scale = 1.0 + f_far.abs().max().item()
        # The pair A-C matters well inside the cutoff ...
        assert (e_far - e_out).abs() > 1e-6 * (1 + e_out.abs())
        # ... and leaves the neighbour list without a jump in the energy (beyond the smooth
        # change -F_Cy * dy from moving C) or in the forces.
        e_predicted = e_in - 0.5 * (f_in[2, 1] + f_out[2, 1]) * 2 * delta
        torch.testing.assert_close(e_out, e_predicted, rtol=0, atol=1e-11 * scale)
        torch.testing.assert_close(f_in, f_out, rtol=0, atol=1e-5 * scale)

    def test_twice_differentiable(self, name, hparams):
        model = make_model(name, hparams)
        z, pos, batch = ethanol(rattle=0.05)
        params = [p for p in model.parameters() if p.requires_grad]

        # Force loss -> gradients w.r.t. parameters (double backward).
        _, forces = energy_and_forces(model, z, pos, batch, create_graph=True)
        grads = torch.autograd.grad(forces.square().sum(), params, allow_unused=True)
        flat = torch.cat([g.flatten() for g in grads if g is not None])
        assert torch.isfinite(flat).all() and flat.abs().max() > 0

        # Force Jacobian w.r.t. positions: J v by autograd equals the finite difference of the
        # forces along v, and v^T J v (sliced score matching trace) backpropagates to the parameters.
        v = torch.randn(pos.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        pos_req = pos.clone().requires_grad_(True)
        _, forces = energy_and_forces(model, z, pos_req, batch, create_graph=True)
        (jv,) = torch.autograd.grad((forces * v).sum(), pos_req, create_graph=True)  # J^T v = J v (J = -Hessian)
        eps = 1e-4
        _, f_plus = energy_and_forces(model, z, pos + eps * v, batch)
        _, f_minus = energy_and_forces(model, z, pos - eps * v, batch)
        jv_fd = (f_plus - f_minus) / (2 * eps)
        torch.testing.assert_close(jv.detach(), jv_fd, rtol=1e-5, atol=1e-6 * jv_fd.abs().max().item())
        trace_estimate = (jv * v).sum()
        grads = torch.autograd.grad(trace_estimate, params, allow_unused=True)
        flat = torch.cat([g.flatten() for g in grads if g is not None])
        assert torch.isfinite(flat).all() and flat.abs().max() > 0

    def test_normalization_and_no_grad_callers(self, name, hparams):
        model = make_model(name, hparams)
        z, pos, batch = ethanol(rattle=0.05)
        e_model, f_model = energy_and_forces(model, z, pos, batch)
        with torch.no_grad():
            e_raw = model.backbone(z, pos, batch)
            e_ng, f_ng = energy_and_forces(model, z, pos, batch)
        torch.testing.assert_close(e_model, 3.0 * e_raw - 2.5 * len(z), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(e_ng, e_model, rtol=0, atol=0)
        torch.testing.assert_close(f_ng, f_model, rtol=0, atol=0)
        assert not e_ng.requires_grad and not f_ng.requires_grad and not pos.requires_grad

    def test_default_float32_forward(self, name, hparams):
        torch.manual_seed(0)
        model = build(name, **hparams)
        z, pos, batch = ethanol(rattle=0.05)
        energy, forces = energy_and_forces(model, z, pos.float(), batch)
        assert energy.dtype == forces.dtype == torch.float32
        assert energy.shape == (1,) and forces.shape == (9, 3)
        assert torch.isfinite(energy).all() and torch.isfinite(forces).all()

    def test_save_load_roundtrip(self, name, hparams, tmp_path):
        model = make_model(name, hparams)
        z, pos, batch = ethanol(rattle=0.05)
        path = tmp_path / "sub" / "model.pt"
        save_model(model, path, extra={"epoch": 7, "note": "x"})
        loaded = load_model(path)
        assert loaded.name == name and loaded.hparams == model.hparams
        assert loaded.extra == {"epoch": 7, "note": "x"}
        e0, f0 = energy_and_forces(model, z, pos, batch)
        e1, f1 = energy_and_forces(loaded, z, pos, batch)
        assert torch.equal(e0, e1) and torch.equal(f0, f1)

    def test_unknown_hparam_is_rejected(self, name, hparams):
        with pytest.raises((TypeError, ValueError), match="not_a_param") as info:
            build(name, not_a_param=1)
        assert all(k in str(info.value) for k in default_hparams(name))


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError, match="nope") as info:
        build("nope")
    assert all(name in str(info.value) for name in MODELS)
    with pytest.raises(ValueError):
        default_hparams("nope")


def test_default_hyperparameters_follow_the_papers():
    egnn = default_hparams("egnn")
    assert (egnn["num_layers"], egnn["hidden"]) == (5, 128)
    gem = default_hparams("gemnet")
    expected = dict(
        num_spherical=7,
        num_radial=6,
        num_blocks=4,
        emb_size_atom=128,
        emb_size_edge=128,
        emb_size_trip=64,
        emb_size_rbf=16,
        emb_size_cbf=16,
        emb_size_bil_trip=64,
        num_before_skip=1,
        num_after_skip=2,
        num_concat=1,
        num_atom=3,
        cutoff=5.0,
        envelope_exponent=5,
    )
    assert {k: gem[k] for k in expected} == expected


class TestBuildingBlocks:
    def test_radius_graph_matches_brute_force(self):
        gen = torch.Generator().manual_seed(0)
        sizes = [5, 9, 1, 7]
        pos = 2.0 * torch.randn(sum(sizes), 3, generator=gen, dtype=torch.float64)
        batch = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
        src, dst = radius_graph(pos, batch, 2.5)
        d = torch.cdist(pos, pos)
        same = batch[:, None] == batch[None, :]
        expected = (same & (d < 2.5) & ~torch.eye(len(pos), dtype=torch.bool)).nonzero()  # rows (dst, src)
        assert torch.equal(torch.stack([dst, src], 1), expected)
        src_all, _ = radius_graph(pos, batch, None)
        assert len(src_all) == sum(n * (n - 1) for n in sizes)
        swap = edge_swap_index(src, dst, len(pos))
        assert torch.equal(src[swap], dst) and torch.equal(dst[swap], src)

    def test_triplets_enumerate_pairs_of_incoming_edges(self):
        gen = torch.Generator().manual_seed(1)
        sizes = [6, 4]
        pos = 1.5 * torch.randn(sum(sizes), 3, generator=gen, dtype=torch.float64)
        batch = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
        src, dst = radius_graph(pos, batch, 2.5)
        trip = triplets(dst, len(pos))
        found = {(int(e), int(trip.edge_in[e, k])) for e, k in zip(*torch.where(trip.mask))}
        expected = {(e, f) for e in range(len(src)) for f in range(len(src)) if dst[e] == dst[f] and src[e] != src[f]}
        assert found == expected and len(expected) > 0
        # slot layout: slot k of atom a is the k-th edge into a; edge e sits at row edge_slot[e]
        n_atoms, k_max = trip.atom_edge.shape
        assert not trip.full
        rows = torch.full((n_atoms * k_max,), -1).index_copy(0, trip.edge_slot, torch.arange(len(src)))
        valid = rows >= 0
        assert torch.equal(trip.atom_edge.flatten()[valid], rows[valid])
        assert torch.equal(dst[rows[valid]], torch.arange(n_atoms).repeat_interleave(k_max)[valid])

    def test_spherical_bessel_zeros(self):
        zeros = spherical_bessel_zeros(7, 6)
        torch.testing.assert_close(zeros[0], math.pi * torch.arange(1, 7, dtype=torch.float64))
        torch.testing.assert_close(zeros[1, 0], torch.tensor(4.493409457909064, dtype=torch.float64))
        for order in range(7):
            assert spherical_bessel(zeros[order], order + 1)[order].abs().max() < 1e-12
            assert (zeros[order, 1:] > zeros[order, :-1]).all()

    def test_fit_scale_factors(self):
        torch.manual_seed(0)
        model = build("gemnet", **SMALL["gemnet"]).double()
        z, pos, batch = ethanol(rattle=0.05)
        batches = [(z, pos, batch), ethanol(rattle=0.1, seed=5)]
        fitted = fit_scale_factors(model, batches)
        assert len(fitted) == 2 * 3 + 3  # per block: rbf, cbf_sum, atom update; per output block: sum
        assert all(math.isfinite(v) and v > 0 for v in fitted.values())
        assert any(abs(v - 1.0) > 1e-3 for v in fitted.values())
        state = model.state_dict()
        assert all(float(state[f"{k}.scale_factor"]) == v for k, v in fitted.items())
