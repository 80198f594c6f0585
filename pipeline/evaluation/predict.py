"""Batched prediction with a trained EnergyModel, error metrics, and test-set evaluation.

Units: trained models take positions in Angstrom and return energies in kcal/mol and
forces in kcal/mol/Angstrom; datasets on disk hold eV and eV/Angstrom
(:mod:`pipeline.data`). Conversion happens here, through :mod:`pipeline.units`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from .. import units
from ..data import Dataset, atomic_write, load_npz
from ..models import energy_and_forces, load_model

E_UNIT = "kcal/mol"
F_UNIT = "kcal/mol/Ang"
R_UNIT = "Ang"


def predict(model: torch.nn.Module, R, z, batch_size: int = 64, device: str = "cpu"):
    """Energies and forces of frames of one molecule.

    Args:
      model: EnergyModel, forward(z, pos, batch) -> energies per structure.
      R: [n_frames, n_atoms, 3] positions, Angstrom.
      z: [n_atoms] atomic numbers.
      batch_size: frames per forward pass.
      device: torch device the model is moved to and run on.

    Returns:
      E [n_frames] (kcal/mol) and F [n_frames, n_atoms, 3] (kcal/mol/Angstrom), numpy
      float64, in the model's units. The model runs in eval mode and gets its previous
      mode back afterwards; forces come from autograd with respect to positions only, so
      no parameter gradients are accumulated.
    """
    R = np.asarray(R, dtype=np.float64)  # [n_frames, n_atoms, 3]
    z = np.asarray(z, dtype=np.int64).reshape(-1)  # [n_atoms]
    if R.ndim != 3 or R.shape[1:] != (len(z), 3):
        raise ValueError(f"R has shape {R.shape}; expected [n_frames, {len(z)}, 3] to match z")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_frames, n_atoms = R.shape[:2]
    model.to(device)
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.get_default_dtype()
    z_t = torch.as_tensor(z, dtype=torch.long, device=device)  # [n_atoms]

    E_out = np.empty(n_frames)  # [n_frames]
    F_out = np.empty((n_frames, n_atoms, 3))  # [n_frames, n_atoms, 3]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, n_frames, batch_size):
            chunk = R[start : start + batch_size]  # [m, n_atoms, 3]
            m = len(chunk)
            pos = torch.as_tensor(chunk.reshape(-1, 3), dtype=dtype, device=device)  # [m*n_atoms, 3]
            z_batch = z_t.repeat(m)  # [m*n_atoms]
            batch = torch.arange(m, device=device).repeat_interleave(n_atoms)  # [m*n_atoms]
            E, F = energy_and_forces(model, z_batch, pos, batch, create_graph=False)
            E_out[start : start + m] = E.detach().to("cpu", torch.float64).numpy()
            F_out[start : start + m] = F.detach().to("cpu", torch.float64).numpy().reshape(m, n_atoms, 3)
    finally:
        model.train(was_training)
    return E_out, F_out


# Frames timed one at a time for the prediction cost (one frame per call, as in an MD step).
TIMED_FRAMES = 20


def predict_cpu_s_per_frame(model: torch.nn.Module, R, z, device: str = "cpu", n_frames: int = TIMED_FRAMES) -> float:
    """CPU seconds of one energy-and-forces call on a single frame (the cost of an MD step with this
    model), the mean over the first `n_frames` frames of R [n, n_atoms, 3] after one warm-up call."""
    import time

    R = np.asarray(R, dtype=np.float64)[:n_frames]
    predict(model, R[:1], z, batch_size=1, device=device)  # warm-up (allocations, lazy init)
    c0 = time.process_time()
    for i in range(len(R)):
        predict(model, R[i : i + 1], z, batch_size=1, device=device)
    return (time.process_time() - c0) / max(len(R), 1)


def metrics(E_pred, F_pred, E_ref, F_ref) -> dict:
    """Energy and force errors; all inputs in kcal/mol and kcal/mol/Angstrom.

    Force errors are over all Cartesian components of all atoms of all frames.
    Energy errors are on raw (absolute) energies, no per-set offset removed, since the
    models are trained on absolute energies.

    Returns a dict of floats: force_mae_kcal, force_rmse_kcal (kcal/mol/A),
    force_mae_mev, force_rmse_mev (meV/A), energy_mae_kcal, energy_rmse_kcal (kcal/mol),
    energy_mae_mev, energy_rmse_mev (meV).
    """
    E_pred = np.asarray(E_pred, dtype=np.float64).reshape(-1)  # [n_frames]
    E_ref = np.asarray(E_ref, dtype=np.float64).reshape(-1)  # [n_frames]
    F_pred = np.asarray(F_pred, dtype=np.float64)  # [n_frames, n_atoms, 3]
    F_ref = np.asarray(F_ref, dtype=np.float64)  # [n_frames, n_atoms, 3]
    if E_pred.shape != E_ref.shape:
        raise ValueError(f"E_pred has shape {E_pred.shape}, E_ref {E_ref.shape}; they must match")
    if F_pred.shape != F_ref.shape:
        raise ValueError(f"F_pred has shape {F_pred.shape}, F_ref {F_ref.shape}; they must match")
    if E_pred.size == 0:
        raise ValueError("metrics of an empty set are undefined")
    dF = F_pred - F_ref
    dE = E_pred - E_ref
    out = {
        "force_mae_kcal": float(np.mean(np.abs(dF))),
        "force_rmse_kcal": float(np.sqrt(np.mean(dF**2))),
        "energy_mae_kcal": float(np.mean(np.abs(dE))),
        "energy_rmse_kcal": float(np.sqrt(np.mean(dE**2))),
    }
    out["force_mae_mev"] = float(units.kcal_to_mev(out["force_mae_kcal"]))
    out["force_rmse_mev"] = float(units.kcal_to_mev(out["force_rmse_kcal"]))
    out["energy_mae_mev"] = float(units.kcal_to_mev(out["energy_mae_kcal"]))
    out["energy_rmse_mev"] = float(units.kcal_to_mev(out["energy_rmse_kcal"]))
    return out


def to_jsonable(obj):
    """Nested dicts/lists of numpy or torch values -> plain JSON types (unknown objects -> str)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def write_evaluation(
    out_json: str | os.PathLike,
    out_predictions_npz: str | os.PathLike,
    E_pred,
    F_pred,
    test: Dataset,
    info: dict,
) -> dict:
    """Score predictions against a labelled test set and write the JSON and the npz.

    Args:
      E_pred: [n_test] kcal/mol; F_pred: [n_test, n_atoms, 3] kcal/mol/Angstrom.
      test: labelled Dataset in storage units (eV, eV/Angstrom); converted here.
      info: extra JSON fields (method, paths, model information).

    Returns the JSON dict: the :func:`metrics` keys, n_test, units and `info`.
    """
    E_ref = units.ev_to_kcal(test.E)  # [n_test] kcal/mol
    F_ref = units.ev_to_kcal(test.F)  # [n_test, n_atoms, 3] kcal/mol/A
    result = metrics(E_pred, F_pred, E_ref, F_ref)
    result.update(n_test=len(test), e_unit=E_UNIT, f_unit=F_UNIT)
    # Per-frame force MAE (kcal/mol/A) in test-set order: the unit of the bootstrap intervals.
    result["per_frame_force_mae_kcal"] = np.abs(np.asarray(F_pred, dtype=np.float64) - F_ref).mean(axis=(1, 2))
    result["frame_id"] = np.asarray(test.frame_id)
    result = to_jsonable({**result, **info})
    text = json.dumps(result, indent=2, sort_keys=True)
    atomic_write(out_json, lambda tmp: Path(tmp).write_text(text + "\n"))
    arrays = dict(
        E_pred=np.asarray(E_pred, dtype=np.float64),
        F_pred=np.asarray(F_pred, dtype=np.float64),
        E_ref=E_ref,
        F_ref=F_ref,
        frame_id=test.frame_id,
        z=test.z,
        e_unit=E_UNIT,
        f_unit=F_UNIT,
        r_unit=R_UNIT,
    )
    atomic_write(out_predictions_npz, lambda tmp: np.savez(tmp, **arrays))
    return result


def load_labelled(path: str | os.PathLike) -> Dataset:
    """load_npz that insists on energy and force labels (test/validation sets)."""
    ds = load_npz(path)
    if not ds.labelled:
        raise ValueError(f"{path}: needs energies E and forces F to be scored; it has none")
    return ds


def evaluate_model(
    model_path: str | os.PathLike,
    test_npz: str | os.PathLike,
    out_json: str | os.PathLike,
    out_predictions_npz: str | os.PathLike,
    device: str = "cpu",
    batch_size: int = 64,
) -> dict:
    """Evaluate a saved model on the accurate test set.

    Writes `out_json` (metrics in kcal/mol and meV units, n_test, model extra info, the CPU
    seconds of one single-frame prediction: predict_cpu_s_per_frame) and
    `out_predictions_npz` (E_pred, F_pred, E_ref, F_ref in kcal/mol(/A), frame_id, z,
    e_unit, f_unit, r_unit). Returns the JSON dict.
    """
    model = load_model(model_path, device=device)
    test = load_labelled(test_npz)
    E_pred, F_pred = predict(model, test.R, test.z, batch_size=batch_size, device=device)
    info = {
        "method": "model",
        "model_path": str(model_path),
        "test_npz": str(test_npz),
        "model_extra": getattr(model, "extra", None) or {},
        "predict_cpu_s_per_frame": predict_cpu_s_per_frame(model, test.R, test.z, device=device),
    }
    return write_evaluation(out_json, out_predictions_npz, E_pred, F_pred, test, info)
