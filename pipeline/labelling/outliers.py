"""Implausible labels: frames whose energy or force norm is a gross outlier within their dataset.

A finite label can still be wrong (an SCF that converged to another state, a unit slip in one
frame of an imported file). Each merged dataset is screened with a robust score

    z = |x - median(x)| / (1.4826 * MAD(x))

(MAD: median absolute deviation; 1.4826 * MAD estimates the standard deviation of normal data and
is not inflated by the outliers themselves) on two statistics per frame: the energy and the
largest atomic force norm. Frames with z above `labelling.outliers.max_robust_z` are listed in
`<subset>.outliers.csv` with their reason; `action: drop` (the default) leaves them out of the
dataset, `keep` keeps them. Datasets smaller than `min_frames` are not screened (a median and a
MAD of a handful of frames say little).

Defaults measured on GAFF2 frames of 500 K MD (3000 frames each of ethanol and aspirin; 50,000
random sets of 20 frames per molecule): the largest z of any legitimate frame was 20.5 once
(ethanol max|F|, probability 2e-5 per set of 20), at most 16 in sets of 25 and at most 10 in sets
of 100 or more; so max_robust_z 20 from 20 frames flags gross errors only (for ethanol at 500 K an
energy about 2.4 eV from the median, a unit slip, a wrong electronic state).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import Dataset

COLUMNS = ["level", "frame_id", "key", "value", "median", "robust_z", "reason", "action"]
ACTIONS = ("drop", "keep")
MAD_TO_SIGMA = 1.4826
DEFAULTS = {"action": "drop", "max_robust_z": 20.0, "min_frames": 20}


def robust_z(x: np.ndarray) -> np.ndarray:
    """|x - median| in units of the MAD-estimated standard deviation (0 for a constant set)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return np.zeros(0)
    dev = np.abs(x - np.median(x))
    scale = MAD_TO_SIGMA * np.median(dev)
    if scale == 0:  # more than half the values equal: fall back to the mean deviation
        scale = 1.2533 * dev.mean()
    if scale == 0:
        return np.zeros_like(x)
    return dev / scale


def frame_statistics(ds: Dataset) -> dict[str, np.ndarray]:
    """Per-frame statistics screened for outliers: energy (eV) and max atomic force norm (eV/A)."""
    return {"E": ds.E, "max|F|": np.linalg.norm(ds.F, axis=2).max(axis=1)}


def find_outliers(ds: Dataset, level: str, max_robust_z: float, min_frames: int, action: str) -> pd.DataFrame:
    """One row per (frame, statistic) beyond the threshold; empty for unlabelled or small sets."""
    if action not in ACTIONS:
        raise ValueError(f"labelling.outliers.action: {action!r} is not one of {', '.join(ACTIONS)}")
    if not ds.labelled or len(ds) < min_frames:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    unit = {"E": "eV", "max|F|": "eV/A"}
    for key, x in frame_statistics(ds).items():
        z = robust_z(x)
        med = float(np.median(x))
        for i in np.flatnonzero(z > max_robust_z):
            rows.append(
                dict(
                    level=level,
                    frame_id=int(ds.frame_id[i]),
                    key=key,
                    value=float(x[i]),
                    median=med,
                    robust_z=float(z[i]),
                    reason=(
                        f"{key} = {x[i]:.6g} {unit[key]} is {z[i]:.1f} robust standard deviations from the "
                        f"set's median {med:.6g} (limit labelling.outliers.max_robust_z = {max_robust_z:g})"
                    ),
                    action="dropped" if action == "drop" else "kept",
                )
            )
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["frame_id", "key"], kind="stable").reset_index(drop=True)


def screen(ds: Dataset, level: str, settings: dict) -> tuple[Dataset, pd.DataFrame]:
    """Flag outliers; drop them when settings['action'] is 'drop'. Returns (dataset, table)."""
    s = {**DEFAULTS, **(settings or {})}
    table = find_outliers(ds, level, s["max_robust_z"], s["min_frames"], s["action"])
    flagged = sorted(set(table["frame_id"].astype(int)))
    out = ds
    if flagged and s["action"] == "drop":
        keep = np.flatnonzero(~np.isin(ds.frame_id, flagged))
        out = ds.subset(keep)
    out.meta = {
        **out.meta,
        "n_outliers": len(flagged),
        "n_outliers_dropped": len(flagged) if s["action"] == "drop" else 0,
    }
    return out, table
