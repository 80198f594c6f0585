"""Which frames get the expensive labels: committee disagreement with a diversity term.

A committee (K models trained on the frames labelled so far, with different seeds) predicts forces
on a pool of candidate frames; a frame's disagreement is the spread of those predictions
(`committee_disagreement`, kcal/mol/Å). Taking the most uncertain frames alone would often take
near-copies of one strained geometry, so a batch is picked greedily (`pick_batch`): each pick
maximises

    score_j = u_j · (1 − exp(−(d_j / ℓ)²))

where d_j is the distance of candidate j to the nearest frame already labelled or picked, in the
space of inverse interatomic distances (rotation- and translation-invariant, as the corrected
pre-training's distance), and ℓ = `diversity` × the median of those distances over the candidates
before the first pick. A candidate on top of a labelled or picked frame scores 0; one further than
about 2ℓ from all of them keeps its full disagreement. `diversity = 0` is plain top-n by
disagreement.
"""

from __future__ import annotations

import numpy as np


def committee_disagreement(F: np.ndarray) -> np.ndarray:
    """Per frame: the mean over atoms of the norm of the force standard deviation across the
    committee's models. F: [n_models, n_frames, n_atoms, 3] -> [n_frames]."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 4 or F.shape[0] < 2:
        raise ValueError(f"committee forces must be [n_models >= 2, n_frames, n_atoms, 3], got {F.shape}")
    return np.linalg.norm(F.std(axis=0), axis=-1).mean(axis=-1)


def nearest_sq_distance(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Squared distance of each row of X to its nearest row of Y [n] (inf when Y is empty),
    in chunks of 512 rows ([chunk, m] at a time)."""
    if len(Y) == 0:
        return np.full(len(X), np.inf)
    out = np.empty(len(X))
    for s in range(0, len(X), 512):
        out[s : s + 512] = ((X[s : s + 512, None, :] - Y[None, :, :]) ** 2).sum(-1).min(axis=1)  # [chunk]
    return out


def pick_batch(
    disagreement: np.ndarray,
    X_candidates: np.ndarray,
    X_labelled: np.ndarray,
    n_pick: int,
    diversity: float = 1.0,
) -> np.ndarray:
    """Indices into the candidates of the next batch, in the order picked (see the module docstring).

    disagreement: [n_candidates] (kcal/mol/Å); X_candidates: [n_candidates, n_features] and
    X_labelled: [n_labelled, n_features] descriptors (pipeline.training.corrected.inverse_distances).
    Ties go to the lower index, so the pick is deterministic."""
    u = np.asarray(disagreement, dtype=np.float64)  # [n]
    Xc, Xl = np.asarray(X_candidates, dtype=np.float64), np.asarray(X_labelled, dtype=np.float64)
    if Xc.ndim != 2 or len(Xc) != len(u):
        raise ValueError(f"{len(u)} disagreements for candidate descriptors of shape {Xc.shape}")
    if not 0 < n_pick <= len(u):
        raise ValueError(f"cannot pick {n_pick} frames from {len(u)} candidates")
    if diversity < 0:
        raise ValueError(f"diversity must be >= 0, got {diversity}")
    d2 = nearest_sq_distance(Xc, Xl)  # [n] to the nearest labelled frame
    finite = d2[np.isfinite(d2)]
    ell2 = (diversity**2) * float(np.median(finite if len(finite) else nearest_sq_distance(Xc, Xc[:1])))
    picked: list[int] = []
    available = np.ones(len(u), dtype=bool)
    for _ in range(n_pick):
        factor = 1.0 - np.exp(-d2 / ell2) if ell2 > 0 else np.ones_like(u)  # [n]
        score = np.where(available, u * factor, -np.inf)
        j = int(np.argmax(score))
        picked.append(j)
        available[j] = False
        d2 = np.minimum(d2, ((Xc - Xc[j]) ** 2).sum(-1))
    return np.asarray(picked, dtype=np.int64)
