"""Bias-corrected pre-training: the cheap pool relabelled by a Δ model, with a per-frame estimate
of the corrected label's remaining error.

ASTEROID's stage 2 learns the cheap level's forces, which may be off the accurate level on every
frame; the bias weights can only say which frames are least wrong. Here the Δ model trained on the
same N accurate frames (accurate − cheap) corrects every cheap label instead:

    E_j = E_cheap,j + ΔE_θ(x_j),   F_j = F_cheap,j − ∇ΔE_θ(x_j)

and stage 2 weights each frame by exp(−u_j/γ), where u_j estimates the error left in the corrected
label. Two estimators, both ranked against the true error of the corrected labels on the validation
frames (where accurate labels exist):

- ``distance``: the distance of the frame to the nearest of the Δ model's training frames, in the
  space of inverse interatomic distances (a Δ model is reliable near its training data);
- ``committee``: the spread of the corrections of Δ models trained with other seeds on the same
  frames (needs at least two seeds).

The chosen estimator (``auto``: the better Spearman rank correlation on validation) is calibrated to
kcal/mol/Å by a least-squares line on the validation frames, so absolute γ keep their meaning.
Energies are stored in eV and forces in eV/Å like every dataset; the Δ model predicts kcal/mol.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from .. import records, units
from ..data import Dataset, atomic_write, load_npz
from ..selection import committee_disagreement, nearest_sq_distance

log = logging.getLogger(__name__)

ESTIMATORS = ("distance", "committee")


def inverse_distances(R: np.ndarray) -> np.ndarray:
    """Inverse interatomic distances of each frame, [n_frames, n_pairs] (1/Å): a descriptor invariant
    to rotation and translation."""
    R = np.asarray(R, dtype=np.float64)  # [n_frames, n_atoms, 3]
    i, j = np.triu_indices(R.shape[1], k=1)
    return 1.0 / np.linalg.norm(R[:, i] - R[:, j], axis=-1)  # [n_frames, n_pairs]


def nearest_distance(R: np.ndarray, R_ref: np.ndarray) -> np.ndarray:
    """Distance of each frame of R to its nearest frame of R_ref in inverse-distance space [n_frames]."""
    return np.sqrt(nearest_sq_distance(inverse_distances(R), inverse_distances(R_ref)))


def corrections(models, R: np.ndarray, z: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Δ corrections of every model on the frames: E [n_models, n_frames] (kcal/mol) and
    F [n_models, n_frames, n_atoms, 3] (kcal/mol/Å)."""
    from ..evaluation.predict import predict

    out = [predict(m, R, z, device=device) for m in models]
    return np.stack([e for e, _ in out]), np.stack([f for _, f in out])


def corrected_dataset(cheap: Dataset, dE_kcal: np.ndarray, dF_kcal: np.ndarray) -> Dataset:
    """The cheap labels plus a Δ correction (kcal/mol, kcal/mol/Å), in the cheap dataset's storage
    units (eV, eV/Å); frame ids, positions and label CPU cost are the cheap pool's."""
    return Dataset(
        R=cheap.R,
        z=cheap.z,
        E=cheap.E + units.kcal_to_ev(dE_kcal),
        F=cheap.F + units.kcal_to_ev(dF_kcal),
        frame_id=cheap.frame_id,
        cpu_s=cheap.cpu_s,
        wall_s=cheap.wall_s,
        name=cheap.name,
        theory=f"{cheap.theory} + Δ correction",
        meta=dict(cheap.meta),
    )


def frame_force_mae(F_pred_kcal: np.ndarray, F_true_kcal: np.ndarray) -> np.ndarray:
    return np.abs(F_pred_kcal - F_true_kcal).mean(axis=(1, 2))  # [n_frames]


def _spearman(x, y) -> float:
    from ..evaluation.stats import spearman

    return spearman(x, y)


def _calibrate(raw_val: np.ndarray, err_val: np.ndarray) -> tuple[float, float]:
    """Least-squares line err ≈ a + b·raw on the validation frames (b ≥ 0)."""
    b, a = np.polyfit(raw_val, err_val, 1) if np.ptp(raw_val) > 0 else (0.0, float(err_val.mean()))
    if b < 0:
        b, a = 0.0, float(err_val.mean())
    return float(a), float(b)


def _val_corrections(delta_models, val: Dataset, cheap_val: Dataset, device):
    """On the validation frames both levels labelled: (ids into val, the corrected labels' true
    per-frame force MAE, every model's force corrections [n_models, n_frames, n_atoms, 3])."""
    from ..delta import align

    ia, ic = align(val, cheap_val)
    _, dF = corrections(delta_models, cheap_val.R[ic], cheap_val.z, device)
    F_corr = units.ev_to_kcal(cheap_val.F[ic]) + dF[0]
    return ia, frame_force_mae(F_corr, units.ev_to_kcal(val.F[ia])), dF


def estimate_uncertainty(delta_models, pool_dF, val, cheap_val, pool_R, train_R, choice="auto", device="cpu"):
    """u_j on the pool (kcal/mol/Å), the chosen estimator and one diagnostic row per estimator.

    delta_models[0] is the model whose corrections label the pool; the others only form the
    committee. pool_dF: every model's force corrections on the pool [n_models, n_pool, n_atoms, 3]."""
    ia, err, val_dF = _val_corrections(delta_models, val, cheap_val, device)
    raw_val = {"distance": nearest_distance(val.R[ia], train_R)}
    raw_pool = {"distance": nearest_distance(pool_R, train_R)}
    if len(delta_models) >= 2:
        raw_val["committee"], raw_pool["committee"] = committee_disagreement(val_dF), committee_disagreement(pool_dF)
    rho = {k: _spearman(v, err) for k, v in raw_val.items()}
    if choice == "auto":
        chosen = max(rho, key=lambda k: (np.nan_to_num(rho[k], nan=-2.0), k == "distance"))
    elif choice in raw_val:
        chosen = choice
    else:
        raise ValueError(f"uncertainty {choice!r} is not available with {len(delta_models)} Δ model(s); use distance")
    a, b = _calibrate(raw_val[chosen], err)
    u = np.clip(a + b * raw_pool[chosen], 0.0, None)
    rows = [
        dict(estimator=k, n_val=len(err), spearman=rho[k], mean_true_error=float(err.mean()), chosen=k == chosen)
        for k in raw_val
    ]
    return u, chosen, rows


def correct_pool(
    *,
    delta_paths: list,
    cheap_npz,
    train_npz,
    val_npz,
    cheap_val_npz,
    uncertainty: str,
    out_pool,
    out_uncertainty,
    out_csv,
    device: str = "cpu",
) -> dict:
    """Relabel the cheap pool with the first Δ model and estimate u_j (the others: its committee).

    Writes the corrected pool (a labelled dataset), the uncertainty (frame_id, B = u_j in
    kcal/mol/Å, bias_cpu_s = CPU of this step, n_train, delta_cpu_s: what training the Δ models
    cost; the format of ASTEROID's bias file, so stage 2 reads either) and the ranking diagnostic."""
    from ..models import load_model
    from .stages import resolve_device

    c0 = time.process_time()
    device = str(resolve_device(device))  # 'auto': CUDA when available
    models = [load_model(p, device=device) for p in delta_paths]
    meta = dict(models[0].extra)
    cheap, val, cheap_val = load_npz(cheap_npz), load_npz(val_npz), load_npz(cheap_val_npz)
    if not np.array_equal(cheap.z, val.z):
        raise ValueError(f"{cheap_npz} and {val_npz} hold different molecules")
    if uncertainty == "committee" and len(models) < 2:
        raise ValueError("corrected.uncertainty 'committee' is not available with 1 Δ model: set >= 2 training.seeds")
    # the committee's corrections on the pool only when it can be chosen: [n_models, n_pool] (and atoms, xyz)
    dE, dF = corrections(models if uncertainty != "distance" else models[:1], cheap.R, cheap.z, device)
    pool = corrected_dataset(cheap, dE[0], dF[0])
    train_R = _training_positions(meta, load_npz(train_npz))
    u, chosen, rows = estimate_uncertainty(models, dF, val, cheap_val, pool.R, train_R, uncertainty, device)
    cpu_s = time.process_time() - c0
    n_train, seed, level = int(meta["n_train"]), int(meta["seed"]), str(meta["cheap_level"])
    pool.meta.update(corrected_by=str(delta_paths[0]), uncertainty=chosen, n_train=n_train)
    atomic_write(out_pool, lambda tmp: pool.save(tmp))
    delta_cpu = float(sum(float(m.extra.get("train_cpu_s") or 0.0) for m in models))

    def write_u(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, frame_id=pool.frame_id, B=u, bias_cpu_s=cpu_s, n_train=n_train, delta_cpu_s=delta_cpu)

    atomic_write(out_uncertainty, write_u)
    diag = pd.DataFrame(
        [{"model": meta["model_name"], "cheap_level": level, "n_train": n_train, "seed": seed, **r} for r in rows],
        columns=records.CORRECTED_UNCERTAINTY,
    )
    atomic_write(out_csv, lambda tmp: diag.to_csv(tmp, index=False))
    log.info(
        "corrected %d %s frames (u: %s, %.1f CPU-s); validation ranking: %s", len(pool), level, chosen, cpu_s, rows
    )
    return {"uncertainty": chosen, "cpu_s": cpu_s, "rows": rows}


def _training_positions(meta: dict, train: Dataset) -> np.ndarray:
    """Positions of the Δ model's training frames (its metadata lists their frame ids) [n, n_atoms, 3]."""
    ids = [int(f) for f in meta.get("train_frame_id", [])]
    where = {int(f): i for i, f in enumerate(train.frame_id)}
    missing = [f for f in ids if f not in where]
    if not ids or missing:
        raise ValueError(f"the Δ model's training frames {missing or '(none recorded)'} are not in the training set")
    return train.R[[where[f] for f in ids]]
