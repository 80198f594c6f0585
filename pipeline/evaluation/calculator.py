"""ASE calculator around a trained EnergyModel, and :func:`load_forcefield` for the recommended
force field a run exports (results/<molecule>/forcefield).

The model works in kcal/mol and kcal/mol/Angstrom; ASE expects eV and eV/Angstrom.
The conversion is done here with :mod:`pipeline.units`.

A calculator given a committee (the same method's models of other training seeds) still predicts
with its own model, and also reports the committee's force disagreement at every call,
``calc.results["force_disagreement"]`` (eV/Å; :func:`pipeline.selection.committee_disagreement`
over its model and the members): large where the models were not trained, so a user sees when MD
leaves the region the force field knows.

Each call runs torch on `threads` threads (default 1, restored after the call): a molecule of tens
of atoms gains nothing from more, and on cores other jobs share, torch's spinning worker threads made
a 9-atom SO3LR MD step ~70x slower on 2 threads than on 1 (1.7 s against 25 ms, 2-core VM under load).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .. import units
from ..models import load_model
from ..selection import committee_disagreement
from .predict import predict


@contextmanager
def torch_threads(n: int | None):
    """torch's intra-op threads set to `n` inside the block (None: left as they are)."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _loaded(model, device: str):
    return load_model(model, device=device) if isinstance(model, (str, os.PathLike)) else model


class CommitteeMixin:
    """The committee of a calculator: members loaded once, their force disagreement per call."""

    def _set_committee(self, committee, device: str) -> None:
        self.committee = [_loaded(m, device) for m in committee]

    def _record_disagreement(self, F_own_kcal: np.ndarray) -> None:
        """force_disagreement (eV/Å) of the own model's forces [n_atoms, 3] (kcal/mol/Å; for a Δ
        model its correction, whose spread is the total's) and the members' at these positions."""
        if not self.committee:
            return
        R, z = self.atoms.positions[None], self.atoms.numbers
        F = [F_own_kcal] + [predict(m, R, z, batch_size=1, device=self.device)[1][0] for m in self.committee]
        u = committee_disagreement(np.stack(F)[:, None])[0]  # [n_models, 1, n_atoms, 3] -> one frame
        self.results["force_disagreement"] = float(units.kcal_to_ev(u))


class ModelCalculator(CommitteeMixin, Calculator):
    """ASE calculator: energy (eV) and forces (eV/Angstrom) from a trained EnergyModel.

    Args:
      model: a loaded EnergyModel, or the path of one saved with pipeline.models.save_model.
      device: torch device to run on.
      committee: other models (or paths) of the same method; with any, every call also sets
        results["force_disagreement"] (eV/Å). The energy and forces are the model's own.
      threads: torch threads of each call (module docstring); None leaves torch's setting.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "force_disagreement"]

    def __init__(
        self,
        model: torch.nn.Module | str | os.PathLike,
        device: str = "cpu",
        committee=(),
        threads: int | None = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.model = _loaded(model, device)
        self.device = device
        self.threads = threads
        self._set_committee(committee, device)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        with torch_threads(self.threads):
            R, z = self.atoms.positions[None], self.atoms.numbers
            E, F = predict(self.model, R, z, batch_size=1, device=self.device)
            energy_ev = float(units.kcal_to_ev(E[0]))
            self.results["energy"] = energy_ev
            self.results["free_energy"] = energy_ev
            self.results["forces"] = units.kcal_to_ev(F[0])  # [n_atoms, 3] eV/A
            self._record_disagreement(F[0])


def calculator_of(
    model: torch.nn.Module | str | os.PathLike,
    z=None,
    prmtop: str | None = None,
    device: str = "cpu",
    committee=(),
    threads: int | None = 1,
) -> Calculator:
    """The ASE calculator the workflow runs a saved model with: a Δ model (metadata stage "delta")
    as DeltaCalculator, whose cheap level is computed at every call, any other as ModelCalculator.
    z, prmtop: DeltaCalculator's (its cheap level); the other arguments as ModelCalculator's."""
    model = _loaded(model, device)
    if (model.extra or {}).get("stage") == "delta":
        from .delta_prediction import DeltaCalculator

        return DeltaCalculator(model, z=z, prmtop=prmtop, device=device, committee=committee, threads=threads)
    return ModelCalculator(model, device=device, committee=committee, threads=threads)


def load_forcefield(directory: str | os.PathLike, device: str = "cpu", threads: int | None = 1) -> Calculator:
    """The ASE calculator of an exported force field (results/<molecule>/forcefield).

    Its metadata.json says which calculator: ModelCalculator for a plain model, DeltaCalculator for a
    Δ model (its cheap level, named in the metadata, is computed at every call; a GAFF2 level uses the
    gaff2.prmtop exported beside the model). When the run trained the same method with other seeds,
    they are exported as its committee (metadata `committee`) and every call reports their force
    disagreement, ``calc.results["force_disagreement"]`` (eV/Å). `threads`: torch threads of each
    call (1 by default; see the module docstring).
    """
    directory = Path(directory)
    meta_path = directory / "metadata.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: point load_forcefield at a run's forcefield/ directory")
    meta = json.loads(meta_path.read_text())
    kind = meta.get("calculator", "ModelCalculator")
    committee = [directory / p for p in (meta.get("committee") or {}).get("members", [])]
    if kind == "ModelCalculator":
        return ModelCalculator(directory / "model.pt", device=device, committee=committee, threads=threads)
    if kind == "DeltaCalculator":
        from .delta_prediction import DeltaCalculator

        prmtop = str(directory / meta["prmtop"]) if meta.get("prmtop") else None
        return DeltaCalculator(
            directory / "model.pt", prmtop=prmtop, device=device, committee=committee, threads=threads
        )
    raise ValueError(f"{meta_path}: unknown calculator {kind!r} (known: ModelCalculator, DeltaCalculator)")
