"""Energy models (force fields) and their public API.

``build(name, **hparams)`` returns an :class:`EnergyModel`: a backbone from :data:`MODELS`
mapping (atomic numbers, positions in Angstrom, structure index) to one energy per
structure, plus the normalisation E = energy_scale * E_backbone + energy_shift * n_atoms.
Forces are -dE/dpos (:func:`energy_and_forces`), so every model is conservative, and all
models are smooth and twice differentiable (force training and sliced score matching).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

from .egnn import EGNN
from .gemnet import GemNetT, ScaleFactor, fit_scale_factors
from .graph import num_structures
from .mace import MACE
from .so3lr import SO3LR

MODELS: dict[str, type[nn.Module]] = {"egnn": EGNN, "gemnet": GemNetT, "mace": MACE, "so3lr": SO3LR}

__all__ = [
    "MODELS",
    "EnergyModel",
    "build",
    "default_hparams",
    "energy_and_forces",
    "fit_data_statistics",
    "fit_scale_factors",
    "load_model",
    "save_model",
]


def _model_class(name: str) -> type[nn.Module]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    return MODELS[name]


def default_hparams(name: str) -> dict:
    """Default keyword arguments of model ``name`` (all hyperparameters it accepts)."""
    params = inspect.signature(_model_class(name).__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self"}


class EnergyModel(nn.Module):
    """Wraps a backbone; holds ``name``, ``hparams``, ``extra`` and normalisation buffers.

    Buffers: ``energy_shift`` (per atom) and ``energy_scale`` (scalar tensors, saved in the
    state dict). ``extra`` is free-form metadata restored by :func:`load_model`.
    """

    def __init__(self, name: str, hparams: dict, backbone: nn.Module):
        super().__init__()
        self.name = name
        self.hparams = dict(hparams)
        self.backbone = backbone
        self.extra: dict = {}
        self.register_buffer("energy_shift", torch.tensor(0.0))
        self.register_buffer("energy_scale", torch.tensor(1.0))

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """z [n_atoms] long, pos [n_atoms, 3] Angstrom, batch [n_atoms] sorted -> energies [n_struct]."""
        energy = self.backbone(z, pos, batch)  # [n_struct]
        n_atoms = torch.bincount(batch, minlength=num_structures(batch)).to(energy.dtype)  # [n_struct]
        return self.energy_scale * energy + self.energy_shift * n_atoms

    @torch.no_grad()
    def set_normalization(self, energy_shift_per_atom: float, energy_scale: float) -> None:
        self.energy_shift.fill_(float(energy_shift_per_atom))
        self.energy_scale.fill_(float(energy_scale))


def build(name: str, **hparams) -> EnergyModel:
    """Model ``name`` (a key of :data:`MODELS`) with ``hparams`` overriding its defaults."""
    cls = _model_class(name)
    defaults = default_hparams(name)
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise TypeError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for model {name!r}; valid: {', '.join(defaults)}"
        )
    full = {**defaults, **hparams}
    return EnergyModel(name, full, cls(**full))


@torch.no_grad()
def fit_data_statistics(model: EnergyModel, batches: list) -> None:
    """Fit what a fresh model takes from data before training, on a few batches of (z, pos, batch).

    GemNet: its ScaleFactor layers (:func:`fit_scale_factors`). A backbone with a
    ``fit_data_statistics(batches) -> dict`` method (MACE: ``avg_num_neighbors``) sets its
    statistics that were not given as hyperparameters; the values it returns become
    hyperparameters of ``model``, so that :func:`load_model` rebuilds the backbone with them.
    """
    if any(isinstance(m, ScaleFactor) for m in model.modules()):
        fit_scale_factors(model, batches)
    fit = getattr(model.backbone, "fit_data_statistics", None)
    if fit is not None:
        model.hparams.update(fit(batches))


def energy_and_forces(
    model: nn.Module, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies [n_struct] and forces F = -dE/dpos [n_atoms, 3].

    ``create_graph=True`` keeps the graph so that losses on E and F can be backpropagated
    (gradients of forces w.r.t. parameters, or w.r.t. ``pos`` when ``pos`` requires grad,
    e.g. for score matching). With ``create_graph=False`` both outputs are detached.
    Works inside ``torch.no_grad()`` and for ``pos`` that does not require grad.
    """
    with torch.enable_grad():
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        energy = model(z, pos, batch)  # [n_struct]
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)
    if not create_graph:
        energy = energy.detach()
    return energy, -grad


def save_model(model: EnergyModel, path, extra: dict | None = None) -> None:
    """Write ``{"name", "hparams", "state_dict", "extra"}`` with torch.save."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"name": model.name, "hparams": model.hparams, "state_dict": model.state_dict(), "extra": dict(extra or {})},
        path,
    )


def load_model(path, device="cpu") -> EnergyModel:
    """Rebuild a model saved by :func:`save_model` (same dtype), with ``model.extra`` set."""
    # Checkpoints are written by this pipeline; ``extra`` may hold arbitrary picklable metadata.
    ckpt = torch.load(path, map_location=device, weights_only=False)
    model = build(ckpt["name"], **ckpt["hparams"])
    dtype = next((t.dtype for t in ckpt["state_dict"].values() if t.is_floating_point()), torch.get_default_dtype())
    model.to(device=device, dtype=dtype)
    model.load_state_dict(ckpt["state_dict"])
    model.extra = ckpt["extra"]
    return model
