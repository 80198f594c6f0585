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

import logging

import numpy as np

log = logging.getLogger(__name__)


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


# ----------------------------------------------------------------------------- one round
COMMITTEE_SEED_OFFSET = 1000  # committee seeds never equal a training seed of the evaluated models


def committee_seed(seed: int, member: int) -> int:
    """Training seed of committee member `member` of the selection of training seed `seed`."""
    return COMMITTEE_SEED_OFFSET * (member + 1) + int(seed)


def committee_forces(models, R: np.ndarray, z: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Every member's forces on the frames [n_models, n_frames, n_atoms, 3] (kcal/mol/Å): the
    correction for Δ members, the whole force for plain ones."""
    from .training.corrected import corrections

    return corrections(models, R, z, device)[1]


def validation_rows(models, val, cheap_val, kind: str, device: str = "cpu") -> list[dict]:
    """The committee on the validation frames: its disagreement and the true per-frame force MAE of
    its mean prediction (for a Δ committee: the cheap labels plus the mean correction)."""
    from . import units
    from .delta import align
    from .training.corrected import frame_force_mae

    if kind == "delta":
        ia, ic = align(val, cheap_val)
        F = committee_forces(models, cheap_val.R[ic], cheap_val.z, device)  # [K, n, n_atoms, 3]
        F_pred = units.ev_to_kcal(cheap_val.F[ic]) + F.mean(axis=0)
    else:
        ia = np.arange(len(val))
        F = committee_forces(models, val.R, val.z, device)
        F_pred = F.mean(axis=0)
    err = frame_force_mae(F_pred, units.ev_to_kcal(val.F[ia]))  # [n_val]
    u = committee_disagreement(F)
    return [
        dict(frame_id=int(f), disagreement_kcal=float(a), true_error_kcal=float(b))
        for f, a, b in zip(val.frame_id[ia], u, err)
    ]


def select_round(
    *,
    committee_paths: list,
    kind: str,
    candidates_npz,
    labelled_npz,
    n_labelled: int,
    n_pick: int,
    diversity: float,
    val_npz,
    cheap_val_npz=None,
    seed: int,
    round_: int,
    out_frames,
    out_scores,
    out_validation,
    device: str = "cpu",
) -> dict:
    """One round of selection: the committee scores every candidate frame that is not labelled yet,
    `pick_batch` picks `n_pick` of them, and the picked frames are written as a frames file (the
    subset the label rules label). Also writes every candidate's scores and the committee's
    disagreement against its true error on the validation frames.

    The candidates are a frames file or a labelled pool (whose labels are then recorded with the
    scores, to show what was picked). The frames file's metadata records the round and its cost:
    the committee's training CPU (from the members' metadata) and this step's scoring CPU."""
    import time

    import pandas as pd

    from . import records, units
    from .data import Dataset, atomic_write, load_npz
    from .evaluation.stats import spearman
    from .models import load_model
    from .training.corrected import inverse_distances
    from .training.stages import resolve_device

    c0 = time.process_time()
    device = str(resolve_device(device))
    models = [load_model(p, device=device) for p in committee_paths]
    if len(models) < 2:
        raise ValueError(f"a committee needs >= 2 models, got {len(models)}")
    pool, labelled = load_npz(candidates_npz), load_npz(labelled_npz)
    if n_labelled > len(labelled):
        raise ValueError(f"{labelled_npz} holds {len(labelled)} frames, fewer than the {n_labelled} labelled so far")
    labelled = labelled.subset(np.arange(n_labelled))
    if not np.array_equal(pool.z, labelled.z):
        raise ValueError(f"{candidates_npz} and {labelled_npz} hold different molecules")
    free = ~np.isin(pool.frame_id, labelled.frame_id)  # [n_pool] not labelled yet
    cand = pool.subset(np.flatnonzero(free))
    u = committee_disagreement(committee_forces(models, cand.R, cand.z, device))  # [n_cand]
    Xc, Xl = inverse_distances(cand.R), inverse_distances(labelled.R)
    d_nearest = np.sqrt(nearest_sq_distance(Xc, Xl))  # [n_cand] before this round's picks
    picked = pick_batch(u, Xc, Xl, n_pick, diversity)
    order = np.full(len(cand), -1)
    order[picked] = np.arange(len(picked))
    cheap_val = load_npz(cheap_val_npz) if cheap_val_npz else None
    val_rows = validation_rows(models, load_npz(val_npz), cheap_val, kind, device)
    scoring_cpu = time.process_time() - c0
    committee_cpu = float(sum(float(m.extra.get("train_cpu_s") or 0.0) for m in models))
    batch = cand.subset(picked)
    frames = Dataset(
        R=batch.R,
        z=batch.z,
        frame_id=batch.frame_id,
        name=pool.name,
        meta={
            "selection": {
                "seed": int(seed),
                "round": int(round_),
                "committee": kind,
                "committee_size": len(models),
                "diversity": float(diversity),
                "n_candidates": len(cand),
                "committee_cpu_s": committee_cpu,
                "scoring_cpu_s": scoring_cpu,
            }
        },
    )
    frames.save(out_frames)
    labelled_pool = pool.labelled  # the pool's own labels describe what was picked (the report's histograms)
    scores = pd.DataFrame(
        {
            "seed": int(seed),
            "round": int(round_),
            "frame_id": cand.frame_id.astype(int),
            "disagreement_kcal": u,
            "distance": d_nearest,
            "pick_order": order,
            "cheap_energy_kcal": units.ev_to_kcal(cand.E - pool.E.mean()) if labelled_pool else np.nan,
            "cheap_force_rms_kcal": (
                np.sqrt((units.ev_to_kcal(cand.F) ** 2).mean(axis=(1, 2))) if labelled_pool else np.nan
            ),
        },
        columns=records.SELECTION,
    )
    atomic_write(out_scores, lambda tmp: scores.to_csv(tmp, index=False))
    val = pd.DataFrame(
        [{"seed": int(seed), "round": int(round_), "committee": kind, **r} for r in val_rows],
        columns=records.SELECTION_VALIDATION,
    )
    atomic_write(out_validation, lambda tmp: val.to_csv(tmp, index=False))
    rho = spearman(val["disagreement_kcal"], val["true_error_kcal"])
    log.info(
        "seed %d round %d: picked %d of %d candidates (disagreement %.3g..%.3g kcal/mol/Å, picks' mean %.3g); "
        "validation rank correlation %.2f; %.1f CPU-s scoring",
        seed, round_, len(picked), len(cand), u.min(), u.max(), u[picked].mean(), rho, scoring_cpu,
    )  # fmt: skip
    return {"picked": batch.frame_id.tolist(), "spearman": rho, "scoring_cpu_s": scoring_cpu}


def merge_selected(*, first_npz, n_first: int, batch_npzs: list, batch_frames: list, out) -> None:
    """The frames a selection has labelled after its last batch, in the order they were labelled:
    the random round 0 (the first `n_first` frames of `first_npz`) and then each batch, at one level.
    Its metadata sums what the selection cost (committee training and scoring, CPU s), read from the
    batches' frames files (`batch_frames`, the same order)."""
    from .data import concat, load_npz

    first = load_npz(first_npz)
    if n_first > len(first):
        raise ValueError(f"{first_npz} holds {len(first)} frames, fewer than round 0's {n_first}")
    parts = [first.subset(np.arange(n_first))] + [load_npz(p) for p in batch_npzs]
    ids = np.concatenate([p.frame_id for p in parts])
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("a frame appears in two rounds of one selection; rerun the select_frames rules")
    if len(batch_frames) != len(batch_npzs):
        raise ValueError(f"{len(batch_npzs)} labelled batches but {len(batch_frames)} batch frames files")
    rounds = [load_npz(p).meta.get("selection", {}) for p in batch_frames]
    merged = concat(parts)
    merged.meta = dict(first.meta)
    merged.meta["selected"] = {
        "n_first": int(n_first),
        "rounds": rounds,
        "selection_cpu_s": float(sum(r.get("committee_cpu_s", 0.0) + r.get("scoring_cpu_s", 0.0) for r in rounds)),
    }
    merged.save(out)
