"""SO3LR (Kabylda, Frank, Suárez-Dou, Khabibrakhmanov, Medrano Sandonas, Unke, Chmiela, Müller,
Tkatchenko, 2025, "Molecular simulations with a pretrained neural network and universal pairwise
force fields"): a foundation model for molecules, its weights shipped inside the maintained
``so3krates-torch`` package (``so3krates_torch/pretrained/so3lr/so3lr.model``), so it loads offline.

This module adapts the pretrained model to the project's backbone interface (atomic numbers,
positions in Angstrom, sorted structure index -> one energy per structure, kcal/mol):

  * the graphs: SO3LR takes a short-range neighbour list (``r_max`` 4.5 Å, its message passing)
    and a long-range one (``r_max_lr``, its electrostatics and dispersion); molecules here are
    isolated, so both are :func:`pipeline.models.graph.radius_graph` with zero shifts;
  * the species: the one-hot ``node_attrs`` over all 118 elements; a neutral singlet
    (``total_charge`` 0, ``total_spin`` 0) unless given as hyperparameters;
  * units: SO3LR works in eV; the energy is converted to kcal/mol here (pipeline.units).
    Forces are -dE/dx by autograd (:func:`pipeline.models.energy_and_forces`), SO3LR's own force
    output is off; ZBL repulsion, electrostatics and dispersion are inside the energy;
  * the energy reference: SO3LR is trained on relative energies (its absolute energy has no
    meaning), so a stage fits only the per-atom energy shift of :class:`pipeline.models.EnergyModel`
    to the labels and keeps the scale at 1 (``PRETRAINED``): rescaling would change the pretrained
    forces.

The checkpoint stores ``r_max_lr`` and the dispersion damping as None; SO3LR's own ASE calculator
sets 12 Å and 2.0, and so does this wrapper. ``so3krates-torch`` pins torch-geometric 2.7.0 but
runs with the project's 2.8.1 (it ships its own copy of the PyG data classes); it is installed
without its dependency pins (.ci/run).
"""

from __future__ import annotations

import importlib.resources
import logging

import torch
from torch import nn

from .. import units
from .graph import num_structures, radius_graph

log = logging.getLogger(__name__)

N_ELEMENTS = 118


def load_pretrained() -> nn.Module:
    """The SO3LR module shipped in so3krates-torch (a pickled nn.Module, float32)."""
    try:
        files = importlib.resources.files("so3krates_torch.pretrained.so3lr")
    except ModuleNotFoundError as err:
        raise ImportError(
            "the so3lr model needs the so3krates-torch package: pip install --no-deps so3krates-torch==0.2.1 "
            "matscipy torch-ema torchmetrics h5py prettytable pydantic (see .ci/run)"
        ) from err
    # The file is a whole pickled module written by its authors (not a state dict): weights_only=False.
    return torch.load(files / "so3lr.model", map_location="cpu", weights_only=False)


class SO3LR(nn.Module):
    """The pretrained SO3LR as a backbone (module docstring). Its weights are the pretrained ones
    when built; a saved fine-tuned model restores its own through the state dict."""

    PRETRAINED = True  # stages fit the energy shift only and keep the scale (pipeline/training/stages.py)

    def __init__(
        self,
        r_max_lr: float = 12.0,
        dispersion_damping: float = 2.0,
        total_charge: float = 0.0,
        total_spin: float = 0.0,
    ):
        super().__init__()
        self.model = load_pretrained()
        self.model.r_max_lr = float(r_max_lr)
        self.model.dispersion_energy_cutoff_lr_damping = float(dispersion_damping)
        self.r_max = float(self.model.r_max)
        self.r_max_lr = float(r_max_lr)
        self.total_charge = float(total_charge)
        self.total_spin = float(total_spin)

    def _graph(self, pos, batch, cutoff):
        src, dst = radius_graph(pos, batch, cutoff)  # [n_edges] each, j -> i
        edge_index = torch.stack([src, dst])  # [2, n_edges] sender, receiver
        return edge_index, pos.new_zeros((edge_index.shape[1], 3))  # no periodic shifts

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        n_struct = num_structures(batch)
        counts = torch.bincount(batch, minlength=n_struct)  # [n_struct]
        ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])  # [n_struct + 1]
        edge_index, shifts = self._graph(pos, batch, self.r_max)
        edge_index_lr, shifts_lr = self._graph(pos, batch, self.r_max_lr)
        node_attrs = nn.functional.one_hot(z - 1, N_ELEMENTS).to(pos.dtype)  # [n_atoms, 118]
        data = {
            # a copy: so3krates marks the positions it is given as requiring grad (in place)
            "positions": pos.clone(),
            "atomic_numbers": z,
            "node_attrs": node_attrs,
            "head": batch.new_zeros(n_struct),  # one output head
            "batch": batch,
            "ptr": ptr,
            "edge_index": edge_index,
            "shifts": shifts,
            "unit_shifts": shifts,
            "edge_index_lr": edge_index_lr,
            "shifts_lr": shifts_lr,
            "unit_shifts_lr": shifts_lr,
            "cell": pos.new_zeros((3 * n_struct, 3)),
            "total_charge": pos.new_full((n_struct,), self.total_charge),
            "total_spin": pos.new_full((n_struct,), self.total_spin),
        }
        out = self.model(data, training=self.training, compute_force=False)
        _release_graph(self.model)
        return units.ev_to_kcal(out["energy"])  # [n_struct] kcal/mol


def _holds_graph(value, depth: int = 0) -> bool:
    """A tensor of the autograd graph, or a container or plain object (so3krates' call context, a
    named tuple) holding one."""
    if isinstance(value, torch.Tensor):
        return value.grad_fn is not None
    if depth > 3 or isinstance(value, (nn.Module, str, bytes)):
        return False
    if isinstance(value, dict):
        return any(_holds_graph(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_graph(v, depth + 1) for v in value)
    return hasattr(value, "__dict__") and any(_holds_graph(v, depth + 1) for v in vars(value).values())


def _release_graph(module: nn.Module) -> None:
    """Drop what so3krates keeps of its last call on its modules (positions, edge vectors, a context
    object): tensors of the autograd graph, which would keep the graph alive and make the model
    impossible to copy (the training engine copies the best model)."""
    for m in module.modules():
        for key, value in list(vars(m).items()):
            if key.startswith("_"):  # parameters, buffers and submodules live in _parameters etc.
                continue
            if _holds_graph(value):
                setattr(m, key, None)
