"""ASE calculator around a trained EnergyModel, and :func:`load_forcefield` for the recommended
force field a run exports (results/<molecule>/forcefield).

The model works in kcal/mol and kcal/mol/Angstrom; ASE expects eV and eV/Angstrom.
The conversion is done here with :mod:`pipeline.units`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import torch
from ase.calculators.calculator import Calculator, all_changes

from .. import units
from ..models import load_model
from .predict import predict


class ModelCalculator(Calculator):
    """ASE calculator: energy (eV) and forces (eV/Angstrom) from a trained EnergyModel.

    Args:
      model: a loaded EnergyModel, or the path of one saved with pipeline.models.save_model.
      device: torch device to run on.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]

    def __init__(self, model: torch.nn.Module | str | os.PathLike, device: str = "cpu", **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            model = load_model(model, device=device)
        self.model = model
        self.device = device

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        E, F = predict(self.model, self.atoms.positions[None], self.atoms.numbers, batch_size=1, device=self.device)
        energy_ev = float(units.kcal_to_ev(E[0]))
        self.results["energy"] = energy_ev
        self.results["free_energy"] = energy_ev
        self.results["forces"] = units.kcal_to_ev(F[0])  # [n_atoms, 3] eV/A


def load_forcefield(directory: str | os.PathLike, device: str = "cpu") -> Calculator:
    """The ASE calculator of an exported force field (results/<molecule>/forcefield).

    Its metadata.json says which calculator: ModelCalculator for a plain model, DeltaCalculator for a
    Δ model (its cheap level, named in the metadata, is computed at every call; a GAFF2 level uses the
    gaff2.prmtop exported beside the model).
    """
    directory = Path(directory)
    meta_path = directory / "metadata.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: point load_forcefield at a run's forcefield/ directory")
    meta = json.loads(meta_path.read_text())
    kind = meta.get("calculator", "ModelCalculator")
    if kind == "ModelCalculator":
        return ModelCalculator(directory / "model.pt", device=device)
    if kind == "DeltaCalculator":
        from .delta_prediction import DeltaCalculator

        prmtop = str(directory / meta["prmtop"]) if meta.get("prmtop") else None
        return DeltaCalculator(directory / "model.pt", prmtop=prmtop, device=device)
    raise ValueError(f"{meta_path}: unknown calculator {kind!r} (known: ModelCalculator, DeltaCalculator)")
