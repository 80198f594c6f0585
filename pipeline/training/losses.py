"""Losses of the ASTEROID paper, in training units (kcal/mol, kcal/mol/A).

- Supervised (Eq. 1, with per-frame weights of Eq. 2):
  L = mean_j w_j [ (1 - rho) * mean_{atoms,xyz} (F_j - F^_j)^2 + rho * (E_j - E^_j)^2 ]
- Bias of a cheap frame (stage 1 model theta_0):  B_j = mean_{atoms,xyz} |F(x_j; theta_0) - f_j|
  and its weight w_j = exp(-B_j / gamma)  (gamma in kcal/mol/A; gamma = inf gives w_j = 1).
- Sliced score matching on unlabelled Boltzmann samples at temperature T:
  L = E_x [ kB*T * tr(dF/dx) + |F|^2 / 2 ] / n_atoms, tr(J) estimated as E_v[v^T J v] with
  Rademacher projections v.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..models import energy_and_forces


def supervised_loss(model, data, idx, rho: float, create_graph: bool = True):
    """Weighted force/energy loss over frames `idx`. Returns (loss, per-frame force MAE [B])."""
    z, pos, batch = data.batch(idx)
    E_pred, F_pred = energy_and_forces(model, z, pos, batch, create_graph=create_graph)
    F_pred = F_pred.reshape(len(idx), data.n_atoms, 3)  # [B, n_atoms, 3]
    dF = F_pred - data.F[idx]  # [B, n_atoms, 3]
    l_f = dF.pow(2).mean(dim=(1, 2))  # [B]
    l_e = (E_pred - data.E[idx]).pow(2)  # [B]
    w = data.w[idx]  # [B]
    loss = (w * ((1 - rho) * l_f + rho * l_e)).mean()
    return loss, dF.abs().mean(dim=(1, 2)).detach()


def bias(F_model: np.ndarray, F_cheap: np.ndarray) -> np.ndarray:
    """B_j = mean over atoms and components of |F_model - F_cheap| (both [n, n_atoms, 3])."""
    return np.abs(np.asarray(F_model) - np.asarray(F_cheap)).mean(axis=(1, 2))  # [n]


def bias_weights(B: np.ndarray, gamma: float) -> np.ndarray:
    """w_j = exp(-B_j / gamma); gamma = inf gives unit weights (no bias correction)."""
    if math.isinf(gamma):
        return np.ones_like(B, dtype=np.float64)
    return np.exp(-np.asarray(B, dtype=np.float64) / gamma)


def bias_spread(B: np.ndarray) -> float:
    """The scale relative gammas are measured in: the interquartile range of B (kcal/mol/A).

    At small N, B_j is dominated by the stage-1 model's own error, so all B_j sit far above any
    fixed gamma; only their spread decides how weights differ between frames (the overall scale
    of the weights is a constant factor that Adam largely removes). Falls back to the standard
    deviation when the IQR is zero.
    """
    B = np.asarray(B, dtype=np.float64)
    q25, q75 = np.percentile(B, [25, 75])
    spread = float(q75 - q25)
    if spread <= 0:
        spread = float(B.std())
    return spread if spread > 0 else 1e-6


def resolve_gamma(kind: str, value: float | None, B: np.ndarray | None) -> float:
    """The absolute gamma (kcal/mol/A) of a candidate: absolute (value), relative (value x the
    spread of B, which it needs) or inf."""
    if kind == "inf":
        return math.inf
    if value is None or not value > 0 or math.isinf(value):
        raise ValueError(f"{kind} gamma {value!r}: must be a positive finite number")
    if kind == "relative":
        if B is None:
            raise ValueError(f"relative gamma {value!r} needs the bias values B")
        return value * bias_spread(B)
    if kind != "absolute":
        raise ValueError(f"gamma kind {kind!r}: expected absolute, relative or inf")
    return value


def normalised_bias_weights(B: np.ndarray, gamma: float) -> np.ndarray:
    """exp(-B_j/gamma) divided by its largest value: the same relative weights without underflow
    (at gamma far below B every raw weight can be below 1e-300)."""
    B = np.asarray(B, dtype=np.float64)
    return bias_weights(B - B.min(), gamma)


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective number of frames, (sum w)^2 / sum w^2 (scale-free)."""
    w = np.asarray(w, dtype=np.float64)
    s2 = float((w**2).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def jacobian_trace_sliced(F: torch.Tensor, pos: torch.Tensor, n_projections: int, generator=None):
    """Sliced estimate of tr(dF/dx) per atom-row block: returns [n_atoms_total] contributions.

    For each projection v (Rademacher, shape of pos): v^T (dF/dx) v = v . grad_x (F . v).
    Summing the returned vector over a structure's atoms gives that structure's estimate.
    """
    total = torch.zeros(pos.shape[0], dtype=pos.dtype, device=pos.device)  # [n_atoms_total]
    for _ in range(n_projections):
        v = torch.randint(0, 2, pos.shape, generator=generator, device="cpu").to(pos) * 2 - 1  # [n_atoms_total, 3]
        (g,) = torch.autograd.grad((F * v).sum(), pos, create_graph=True)  # [n_atoms_total, 3]
        total = total + (g * v).sum(dim=1)
    return total / n_projections


def score_matching_loss(model, data, idx, kT: float, n_projections: int = 1, generator=None):
    """Sliced score-matching loss, mean over structures, per atom. kT in kcal/mol."""
    z, pos, batch = data.batch(idx)
    pos = pos.clone().requires_grad_(True)
    _, F = energy_and_forces(model, z, pos, batch, create_graph=True)  # [n_atoms_total, 3]
    tr = jacobian_trace_sliced(F, pos, n_projections, generator)  # [n_atoms_total]
    per_atom = kT * tr + 0.5 * F.pow(2).sum(dim=1)  # [n_atoms_total]
    return per_atom.sum() / (len(idx) * data.n_atoms)


def exact_score_matching_loss(model, data, idx, kT: float):
    """The same loss with the exact Jacobian trace (3*n_atoms backward passes): for tests."""
    z, pos, batch = data.batch(idx)
    pos = pos.clone().requires_grad_(True)
    _, F = energy_and_forces(model, z, pos, batch, create_graph=True)
    tr = torch.zeros((), dtype=pos.dtype)
    for a in range(pos.shape[0]):
        for c in range(3):
            (g,) = torch.autograd.grad(F[a, c], pos, create_graph=True)
            tr = tr + g[a, c]
    return (kT * tr + 0.5 * F.pow(2).sum()) / (len(idx) * data.n_atoms)
