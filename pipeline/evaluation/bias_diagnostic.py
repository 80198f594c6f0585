"""Does the bias estimate work on this molecule? B_j against the true cheap-label error.

ASTEROID never sees the true per-frame error of a cheap label, |F_cheap - F_accurate|: it
estimates it with the stage-1 model, B_j = mean|F_stage1(x_j) - F_cheap,j|. On the validation
frames, which are labelled at the accurate level anyway, the cheap level is computed too (free for
GAFF2, milliseconds for xTB), so the estimate can be checked: a high rank correlation means the
bias weights single out the frames whose cheap labels really are worst.

All forces in kcal/mol/A; per-frame values are means over atoms and Cartesian components.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import records, units
from ..data import atomic_write, load_npz
from ..training.losses import bias

COLUMNS = records.BIAS_FRAMES


def bias_diagnostic(*, model_path, cheap_val_npz, accurate_val_npz, cheap_level: str, out_csv, device="cpu"):
    from ..models import load_model
    from .predict import predict

    model = load_model(model_path, device=device)
    extra = dict(getattr(model, "extra", {}) or {})
    cheap, acc = load_npz(cheap_val_npz), load_npz(accurate_val_npz)
    common, i_cheap, i_acc = np.intersect1d(cheap.frame_id, acc.frame_id, return_indices=True)
    if len(common) == 0:
        raise ValueError(
            f"{cheap_val_npz} and {accurate_val_npz} share no frames (frame_id); both must label the validation subset"
        )
    cheap, acc = cheap.subset(i_cheap), acc.subset(i_acc)
    F_cheap, F_acc = units.ev_to_kcal(cheap.F), units.ev_to_kcal(acc.F)  # [n, n_atoms, 3]
    _, F_model = predict(model, cheap.R, cheap.z, device=device)  # [n, n_atoms, 3]
    df = pd.DataFrame(
        {
            "model": extra.get("model_name", ""),
            "cheap_level": cheap_level,
            "n_train": int(extra.get("n_train", 0)),
            "seed": int(extra.get("seed", 0)),
            "frame_id": common,
            "bias_estimate": bias(F_model, F_cheap),
            "true_bias": bias(F_cheap, F_acc),
            "stage1_error": bias(F_model, F_acc),
        },
        columns=COLUMNS,
    )
    atomic_write(out_csv, lambda tmp: df.to_csv(tmp, index=False))
    return df


def summarise(per_frame: pd.DataFrame) -> pd.DataFrame:
    """Per (model, cheap level, N, seed): Spearman correlation of B_j with the true bias, means."""
    from .stats import spearman

    cols = records.BIAS_SUMMARY
    rows = []
    for key, g in per_frame.groupby(["model", "cheap_level", "n_train", "seed"]) if len(per_frame) else []:
        rows.append(
            dict(
                zip(cols[:4], key),
                n_frames=len(g),
                spearman=spearman(g["bias_estimate"], g["true_bias"]),
                mean_bias_estimate=g["bias_estimate"].mean(),
                mean_true_bias=g["true_bias"].mean(),
                mean_stage1_error=g["stage1_error"].mean(),
            )
        )
    return pd.DataFrame(rows, columns=cols)
