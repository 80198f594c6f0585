"""MACE (Batatia, Kovács, Simm, Ortner, Csányi, NeurIPS 2022, "MACE: Higher Order Equivariant
Message Passing Neural Networks for Fast and Accurate Force Fields"), from the maintained
reference implementation ``mace-torch`` (``mace.modules.MACE``), not a re-implementation.

This module only adapts the library to the project's backbone interface (atomic numbers,
positions in Angstrom, sorted structure index -> one energy per structure):

  * the graph: mace expects ``edge_index`` (row 0 sender j, row 1 receiver i) and periodic
    ``shifts``; molecules here are isolated, so the graph is the full neighbour list within
    ``r_max`` of :func:`pipeline.models.graph.radius_graph` and the shifts are zero;
  * the species: the one-hot ``node_attrs`` over ``atomic_numbers`` (mace's ``z_table``);
  * the normalisation: mace's own per-element energies E0 are zero and its output is not
    scaled; :class:`pipeline.models.EnergyModel` applies E = energy_scale * E_MACE +
    energy_shift * n_atoms (``ScaleShiftMACE`` with scale = force std and one shared shift,
    which is what mace's ``run_train`` builds for ``--model MACE``);
  * ``avg_num_neighbors`` (messages are divided by it): ``None`` means it is set from the
    training data when a stage builds a fresh model (:func:`pipeline.models.fit_data_statistics`),
    as mace's ``run_train`` computes it, and recorded in the model's hyperparameters so that a
    saved model is rebuilt with the same value.

The layer choice is ``run_train``'s for ``--model MACE``: a ``RealAgnosticInteractionBlock``
first, then ``RealAgnosticResidualInteractionBlock``, SiLU gate, Bessel radial basis with a
polynomial envelope (smooth at ``r_max``). Forces are -dE/dx by autograd (through
:func:`pipeline.models.energy_and_forces`); mace's own force output is switched off, and the
energy is twice differentiable (score matching). Defaults are the paper's rMD17 settings; the
CPU-sized setting is in ``config.yaml`` (``training.hparams.mace``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import warnings
from types import ModuleType

import numpy as np
import torch
from torch import nn

from .graph import num_structures, radius_graph

log = logging.getLogger(__name__)

FORCE_NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
JIT_DEPRECATED = ".*torch.jit.script. is deprecated"  # e3nn 0.4.4 scripts its code, torch 2.13 warns each time

# Organic chemistry: H, C, N, O, F, P, S, Cl.
ORGANIC_ELEMENTS = (1, 6, 7, 8, 9, 15, 16, 17)


def import_mace() -> tuple[ModuleType, ModuleType]:
    """``(mace.modules, e3nn.o3)``, imported with the one allow-list entry e3nn needs, and without
    the process-wide weakening of ``torch.load`` that ``import mace`` does.

    mace-torch 0.3.16 pins e3nn 0.4.4, whose ``e3nn.o3`` import runs ``torch.load`` on its own
    constants file without ``weights_only``. Since torch 2.6 that defaults to
    ``weights_only=True``, which rejects the builtin ``slice`` pickled in the file, so the import
    fails. ``slice`` is allowed for the duration of this import only: ``safe_globals`` is a
    context manager and restores the allow-list afterwards, so no later ``torch.load`` (the
    project's checkpoints included) is loaded with a weaker check, and nothing is loaded with
    ``weights_only=False``. If e3nn is already imported, this is a plain import.
    """
    # ``import mace`` also sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in os.environ, which would make every
    # later torch.load in this process (and its subprocesses) default to weights_only=False; the
    # variable is put back as it was. mace prints a notice about optional CUDA kernels to stdout on
    # import; it goes to the log instead.
    env_before = os.environ.get(FORCE_NO_WEIGHTS_ONLY)
    try:
        with (
            torch.serialization.safe_globals([slice]),
            contextlib.redirect_stdout(io.StringIO()) as printed,
            warnings.catch_warnings(),
        ):
            warnings.filterwarnings("ignore", message=JIT_DEPRECATED, category=DeprecationWarning)
            o3 = importlib.import_module("e3nn.o3")
            modules = importlib.import_module("mace.modules")
    finally:
        if env_before is None:
            os.environ.pop(FORCE_NO_WEIGHTS_ONLY, None)
        else:
            os.environ[FORCE_NO_WEIGHTS_ONLY] = env_before
    if printed.getvalue().strip():
        log.debug("mace import: %s", printed.getvalue().strip())
    return modules, o3


class MACE(nn.Module):
    """MACE energy model (``mace.modules.MACE``) on a radius graph of isolated molecules.

    Parameters (names as in mace's ``run_train``)
    ---------------------------------------------
    r_max: cutoff radius in Angstrom (paper: 5).
    num_bessel: radial Bessel functions (8).
    num_polynomial_cutoff: exponent p of the polynomial envelope (5).
    max_ell: highest degree l of the edge spherical harmonics (3).
    hidden_irreps: node features, e.g. "256x0e + 256x1o + 256x2e" (256 channels, L_max = 2 as
        in the paper's rMD17 models); the last layer keeps only the scalars.
    num_interactions: message-passing layers (2).
    correlation: body order nu of the product basis, messages of nu + 1 bodies (3: 4-body).
    MLP_irreps: hidden irreps of the non-linear readout of the last layer ("16x0e").
    radial_MLP: hidden sizes of the MLP on the radial basis ([64, 64, 64]).
    avg_num_neighbors: normaliser of the message sums; ``None``: from the training data
        (mean in-degree), 1 for a model built without data.
    atomic_numbers: elements the model accepts (its one-hot species table).
    """

    def __init__(
        self,
        r_max: float = 5.0,
        num_bessel: int = 8,
        num_polynomial_cutoff: int = 5,
        max_ell: int = 3,
        hidden_irreps: str = "256x0e + 256x1o + 256x2e",
        num_interactions: int = 2,
        correlation: int = 3,
        MLP_irreps: str = "16x0e",  # mace's names
        radial_MLP: tuple[int, ...] = (64, 64, 64),
        avg_num_neighbors: float | None = None,
        atomic_numbers: tuple[int, ...] = ORGANIC_ELEMENTS,
    ):
        super().__init__()
        modules, o3 = import_mace()
        zs = sorted({int(z) for z in atomic_numbers})
        if not zs or zs[0] < 1:
            raise ValueError(f"MACE: atomic_numbers must be positive atomic numbers, got {list(atomic_numbers)}")
        self.r_max = float(r_max)
        self.atomic_numbers = zs
        self.fit_avg_num_neighbors = avg_num_neighbors is None
        with warnings.catch_warnings():
            # e3nn 0.4.4 compiles its generated code with torch.jit.script, which warns about
            # itself (deprecated) and about e3nn's annotations, hundreds of times per model.
            warnings.filterwarnings("ignore", message=JIT_DEPRECATED, category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="The TorchScript type system", category=UserWarning)
            self.net = modules.MACE(
                r_max=self.r_max,
                num_bessel=num_bessel,
                num_polynomial_cutoff=num_polynomial_cutoff,
                max_ell=max_ell,
                interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
                interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
                num_interactions=num_interactions,
                num_elements=len(zs),
                hidden_irreps=o3.Irreps(hidden_irreps),
                MLP_irreps=o3.Irreps(MLP_irreps),
                atomic_energies=np.zeros(len(zs)),  # E0 = 0: EnergyModel holds the energy shift
                avg_num_neighbors=1.0 if avg_num_neighbors is None else float(avg_num_neighbors),
                atomic_numbers=zs,
                correlation=correlation,
                gate=modules.gate_dict["silu"],
                radial_MLP=[int(h) for h in radial_MLP],
                use_reduced_cg=False,  # run_train's default (the class's own default differs)
            )
        # species index of each atomic number (-1: not in atomic_numbers)
        index = torch.full((zs[-1] + 1,), -1, dtype=torch.long)
        index[torch.tensor(zs)] = torch.arange(len(zs))
        self.register_buffer("species_index", index, persistent=False)

    def set_avg_num_neighbors(self, value: float) -> None:
        for block in self.net.interactions:
            block.avg_num_neighbors = float(value)

    def graph(self, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """edge_index [2, n_edges]: row 0 the sender j, row 1 the receiver i, |r_i - r_j| < r_max."""
        src, dst = radius_graph(pos, batch, self.r_max)
        return torch.stack([src, dst])

    def fit_data_statistics(self, batches) -> dict:
        """If ``avg_num_neighbors`` was not given: set it to the mean in-degree over atoms with
        neighbours (as mace's ``compute_avg_num_neighbors``) in ``batches`` of (z, pos, batch), and
        return it as ``{"avg_num_neighbors": value}`` for the hyperparameters (else ``{}``)."""
        if not self.fit_avg_num_neighbors:
            return {}
        degrees = []
        for _, pos, batch in batches:
            receivers = self.graph(pos, batch)[1]
            degrees.append(torch.unique(receivers, return_counts=True)[1])
        counts = torch.cat(degrees) if degrees else torch.zeros(0)
        value = float(counts.double().mean()) if counts.numel() else 1.0
        self.set_avg_num_neighbors(value)
        self.fit_avg_num_neighbors = False
        return {"avg_num_neighbors": value}

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        n_struct = num_structures(batch)
        species = self.species_index[z.clamp(0, len(self.species_index) - 1)]  # [n_atoms]
        unknown = (species < 0) | (z >= len(self.species_index))
        if bool(unknown.any()):
            missing = sorted({int(v) for v in z[unknown]})
            raise ValueError(
                f"MACE: atomic number(s) {missing} are not in its atomic_numbers {self.atomic_numbers}; "
                f"add them to training.hparams.mace.atomic_numbers"
            )
        edge_index = self.graph(pos, batch)  # [2, n_edges]
        counts = torch.bincount(batch, minlength=n_struct)  # [n_struct]
        # mace calls requires_grad_(True) on the positions it is given: a caller's tensor that does
        # not require grad is passed as a detached alias so that its flag is left alone.
        positions = pos if pos.requires_grad else pos.detach()
        data = {
            "positions": positions,  # [n_atoms, 3]
            "node_attrs": nn.functional.one_hot(species, len(self.atomic_numbers)).to(pos.dtype),  # [n_atoms, n_el]
            "edge_index": edge_index,
            "shifts": pos.new_zeros(edge_index.shape[1], 3),  # isolated molecules: no periodic images
            "batch": batch,
            "ptr": torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]),  # [n_struct + 1]
            "cell": pos.new_zeros(3 * n_struct, 3),
        }
        # e3nn runs its spherical harmonics and generated tensor-product code as TorchScript, whose
        # profiling executor re-optimises a graph after its first calls: the last bits of the forces
        # would differ between a model's first and later calls (and from its reloaded copy).
        # Unoptimised execution gives the same numbers on every call.
        with torch.jit.optimized_execution(False):
            out = self.net(data, training=self.training, compute_force=False)
        return out["energy"]  # [n_struct]
