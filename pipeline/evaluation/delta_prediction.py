"""Δ-learning at prediction time: the cheap level plus a learned correction.

- :class:`DeltaCalculator`: ASE calculator, E = E_cheap(x) + ΔE_θ(x) and F = F_cheap(x) − ∇ΔE_θ(x),
  the cheap level computed at every call (so an MD step costs one cheap-level calculation plus one
  model call);
- :func:`evaluate_delta`: test errors of a Δ model (EGNN, GemNet) in the same eval.json and
  predictions.npz as :func:`pipeline.evaluation.predict.evaluate_model`;
- :func:`run_sgdml_delta`: sGDML as a kernel Δ-model (trained on accurate − cheap of train[:N],
  sigma chosen on the validation difference), evaluated the same way.

Test predictions use the cheap labels the pipeline computed on the test frames (cached and counted
like every label); a test frame without one (dropped as an outlier, or failed) is computed here.
Every eval.json carries ``predict_cpu_s_per_frame``: the CPU seconds of one prediction on one frame
(≈ one MD step), the cheap level's share included (``predict_cheap_cpu_s_per_frame``).
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .. import units
from ..data import Dataset, load_npz
from ..delta import CheapPotential, DeltaError, cheap_labels_for, difference_dataset
from ..models import load_model
from .calculator import CommitteeMixin, torch_threads
from .predict import TIMED_FRAMES, load_labelled, predict, predict_cpu_s_per_frame, write_evaluation


def delta_metadata(model) -> dict:
    """The Δ model's metadata; raises DeltaError for a model that is not a Δ model."""
    extra = dict(getattr(model, "extra", None) or {})
    if extra.get("stage") != "delta" or "cheap_entry" not in extra:
        raise DeltaError(
            f"not a Δ model (stage {extra.get('stage')!r}); train it with `python -m pipeline train-delta`"
        )
    return extra


def cheap_potential_of(model, z, prmtop: str | None = None) -> CheapPotential:
    """The cheap level a Δ model was trained on, rebuilt from the config entry saved with it."""
    extra = delta_metadata(model)
    return CheapPotential(extra["cheap_level"], extra["cheap_entry"], z, prmtop=prmtop)


class DeltaCalculator(CommitteeMixin, Calculator):
    """ASE calculator of a Δ model: energy (eV) and forces (eV/Å) = cheap level + correction.

    Args:
      model: a loaded Δ EnergyModel or the path of one (its metadata names the cheap level).
      z: [n_atoms] atomic numbers (to build the cheap level); left out, they are taken from the
        first Atoms object it is asked about.
      prmtop: the molecule's GAFF2 prmtop when the cheap level is GAFF2 (empirical).
      potential: a CheapPotential to use instead of the one the model's metadata describes.
      committee: other Δ models (or paths) of the same method and cheap level; with any, every call
        also sets results["force_disagreement"] (eV/Å, the spread of the corrections).
      threads: torch threads of each call (pipeline.evaluation.calculator); None leaves torch's setting.
    A cheap-level calculation that fails gives NaN energy and forces (an MD run stops there).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "force_disagreement"]

    def __init__(
        self,
        model: torch.nn.Module | str | os.PathLike,
        z=None,
        prmtop: str | None = None,
        device: str = "cpu",
        potential: CheapPotential | None = None,
        committee=(),
        threads: int | None = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            model = load_model(model, device=device)
        self.model = model
        self.device = device
        self.threads = threads
        self.prmtop = prmtop
        delta_metadata(model)  # refuse a model that is not a Δ model now, not at the first call
        self._set_committee(committee, device)
        for m in self.committee:
            if delta_metadata(m)["cheap_level"] != delta_metadata(model)["cheap_level"]:
                raise DeltaError("a Δ committee corrects one cheap level; its members correct different ones")
        if potential is None and z is not None:
            potential = cheap_potential_of(model, z, prmtop)
        self.potential = potential

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.potential is None:
            self.potential = cheap_potential_of(self.model, self.atoms.numbers, self.prmtop)
        elif len(self.potential.z) != len(self.atoms) or (self.potential.z != self.atoms.numbers).any():
            raise DeltaError(
                f"this Δ calculator's cheap level was built for atomic numbers {self.potential.z.tolist()}, "
                f"not {self.atoms.numbers.tolist()}; make one calculator per molecule"
            )
        e_cheap, f_cheap, ok = self.potential(self.atoms.positions)  # eV, eV/A
        with torch_threads(self.threads):
            E, F = predict(self.model, self.atoms.positions[None], self.atoms.numbers, batch_size=1, device=self.device)
            self._record_disagreement(F[0])
        energy = e_cheap + float(units.kcal_to_ev(E[0])) if ok else float("nan")
        forces = f_cheap + units.kcal_to_ev(F[0]) if ok else np.full_like(f_cheap, np.nan)
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = forces  # [n_atoms, 3] eV/A


def cheap_cpu_s_per_frame(potential: CheapPotential, test: Dataset, cheap: Dataset) -> tuple[float, str]:
    """CPU seconds of one cheap-level calculation: the mean the labelling jobs recorded on the test
    frames for computed levels; timed here on up to TIMED_FRAMES test frames for GAFF2 (whose
    recorded cost is that of the sampling MD per saved frame, not of one force call)."""
    if potential.level.COMPUTED and len(cheap) and float(cheap.cpu_s.mean()) > 0:
        return float(cheap.cpu_s.mean()), "recorded by the labelling jobs (mean over the test frames)"
    before_s, before_n = potential.cpu_s, potential.calls
    for R in test.R[:TIMED_FRAMES]:
        potential(R)
    return (potential.cpu_s - before_s) / max(potential.calls - before_n, 1), "timed at evaluation"


def _delta_info(potential, test, cheap, cheap_info, model_cpu_s) -> dict:
    cheap_s, how = cheap_cpu_s_per_frame(potential, test, cheap)
    return {
        "cheap_level": potential.name,
        "cheap_theory": potential.level.theory,
        "predict_model_cpu_s_per_frame": model_cpu_s,
        "predict_cheap_cpu_s_per_frame": cheap_s,
        "predict_cheap_cost_source": how,
        "predict_cpu_s_per_frame": model_cpu_s + cheap_s,
        "predict_calls_cheap_level": True,
        "n_test_cheap_from_labels": cheap_info["n_from_labels"],
        "n_test_cheap_computed": cheap_info["n_computed"],
    }


def evaluate_delta(
    model_path,
    test_npz,
    cheap_test_npz,
    out_json,
    out_predictions_npz,
    prmtop: str | None = None,
    device: str = "cpu",
    batch_size: int = 64,
) -> dict:
    """Test errors of a Δ model: prediction = cheap label + correction on every accurate test frame."""
    model = load_model(model_path, device=device)
    test = load_labelled(test_npz)
    cheap = load_npz(cheap_test_npz)
    potential = cheap_potential_of(model, test.z, prmtop)
    E_c, F_c, cheap_info = cheap_labels_for(test, cheap, potential)
    E_m, F_m = predict(model, test.R, test.z, batch_size=batch_size, device=device)  # kcal/mol, kcal/mol/A
    E_pred = units.ev_to_kcal(E_c) + E_m
    F_pred = units.ev_to_kcal(F_c) + F_m
    info = {
        "method": "delta",
        "model_path": str(model_path),
        "test_npz": str(test_npz),
        "cheap_test_npz": str(cheap_test_npz),
        "model_extra": delta_metadata(model),
        **_delta_info(
            potential, test, cheap, cheap_info, predict_cpu_s_per_frame(model, test.R, test.z, device=device)
        ),
    }
    return write_evaluation(out_json, out_predictions_npz, E_pred, F_pred, test, info)


def run_sgdml_delta(
    *,
    train_npz,
    cheap_train_npz,
    val_npz,
    cheap_val_npz,
    test_npz,
    cheap_test_npz,
    n_train: int,
    cheap_level: str,
    cheap_entry: dict,
    out_json,
    out_predictions_npz,
    out_model=None,
    prmtop: str | None = None,
    sigmas,
    lam: float = 1e-10,
    use_sym: bool = True,
    max_processes: int | None = None,
) -> dict:
    """sGDML trained on accurate − cheap of the accurate train[:N] (sigma chosen on the validation
    difference); test prediction = cheap label + the kernel correction."""
    from ..data import atomic_write
    from .sgdml_baseline import fit_sgdml, sgdml_cpu_s_per_frame, sgdml_predict

    train, val, test = load_labelled(train_npz), load_labelled(val_npz), load_labelled(test_npz)
    if n_train > len(train):
        raise ValueError(f"{train_npz} has {len(train)} frames, fewer than N = {n_train}")
    d_train = difference_dataset(train.subset(np.arange(n_train)), load_npz(cheap_train_npz))
    d_val = difference_dataset(val, load_npz(cheap_val_npz))
    model, info = fit_sgdml(d_train, d_val, sigmas=tuple(sigmas), lam=lam, use_sym=use_sym, max_processes=max_processes)
    cheap = load_npz(cheap_test_npz)
    potential = CheapPotential(cheap_level, cheap_entry, test.z, prmtop=prmtop)
    E_c, F_c, cheap_info = cheap_labels_for(test, cheap, potential)
    E_m, F_m = sgdml_predict(model, test.R, max_processes)
    if out_model is not None:
        atomic_write(out_model, lambda tmp: np.savez_compressed(tmp, **model))
    info.update(
        method="delta_sgdml",
        n_train=n_train,
        n_delta_train=len(d_train),
        cheap_entry=dict(cheap_entry),
        train_npz=str(train_npz),
        cheap_train_npz=str(cheap_train_npz),
        valid_npz=str(val_npz),
        test_npz=str(test_npz),
        cheap_test_npz=str(cheap_test_npz),
        train_frame_id=[int(f) for f in d_train.frame_id],
        model_path=None if out_model is None else str(out_model),
        **_delta_info(potential, test, cheap, cheap_info, sgdml_cpu_s_per_frame(model, test.R)),
    )
    return write_evaluation(
        out_json, out_predictions_npz, units.ev_to_kcal(E_c) + E_m, units.ev_to_kcal(F_c) + F_m, test, info
    )
