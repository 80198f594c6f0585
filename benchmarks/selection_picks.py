"""What committee selection picks, and what its diversity term changes (issue 27).

For every selection round of a run (`selection/s<seed>/r<round>/scores.csv`, the candidates of the
round with the committee's force disagreement, their energy and force RMS at the pool's level and
the pick order), compares the batch that was picked with the batch that top-n by disagreement alone
(`selection.diversity: 0`) would have picked from the same scores, without training anything:

- outliers: the picks' median percentile of the pool-level energy and force RMS among the round's
  candidates, and the fraction above the candidates' 95th percentile. The candidates are random MD
  frames, the distribution the random test frames are drawn from, so a batch far in the tails is one
  the test set rarely probes;
- redundancy: the mean distance of each pick to its nearest other pick of the batch (inverse
  interatomic distances, 1/Å, as the selection's own distance), against the candidates' typical
  spacing (the same measure for a random batch of the same size);
- overlap: how many of the picks top-n would also have picked.

    python benchmarks/selection_picks.py --run . --molecule ethanol --level xtb
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from common import markdown_table, print_machine

from pipeline import layout
from pipeline.data import load_npz
from pipeline.training.corrected import inverse_distances


def within_batch_spacing(X: np.ndarray) -> float:
    """Mean distance of each row of X [n, n_features] to its nearest other row."""
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)  # [n, n]
    np.fill_diagonal(d2, np.inf)
    return float(np.sqrt(d2.min(axis=1)).mean())


def _percentile_of(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Percentile (0-100) of each value within the reference distribution."""
    ref = np.sort(reference)
    return 100.0 * np.searchsorted(ref, values, side="right") / len(ref)


def batch_stats(scores: pd.DataFrame, rows: np.ndarray, X: np.ndarray) -> dict:
    """Outlier and redundancy figures of the batch `rows` (positions in `scores`) of one round;
    X: the candidates' descriptors [n_candidates, n_features], in the order of `scores`."""
    out = {}
    for col, name in (("cheap_energy_kcal", "energy"), ("cheap_force_rms_kcal", "force_rms")):
        ref = scores[col].to_numpy(dtype=float)
        if np.isnan(ref).all():  # an unlabelled candidate pool records no energies
            out[f"{name}_median_pct"] = out[f"{name}_above_p95"] = np.nan
            continue
        pct = _percentile_of(ref[rows], ref)
        out[f"{name}_median_pct"] = float(np.median(pct))
        out[f"{name}_above_p95"] = float((ref[rows] > np.percentile(ref, 95)).mean())
    out["spacing"] = within_batch_spacing(X[rows])
    out["disagreement_mean"] = float(scores["disagreement_kcal"].to_numpy()[rows].mean())
    return out


def round_comparison(scores: pd.DataFrame, X: np.ndarray, seed: int = 0) -> list[dict]:
    """The picked batch, top-n by disagreement and a random batch of one round, as rows."""
    picked = scores.index[scores["pick_order"] >= 0].to_numpy()
    picked = picked[np.argsort(scores.loc[picked, "pick_order"].to_numpy())]
    n = len(picked)
    if n < 2:
        raise SystemExit(f"seed {scores['seed'].iloc[0]} round {scores['round'].iloc[0]}: fewer than 2 picks")
    u = scores["disagreement_kcal"].to_numpy()
    top = np.argsort(-u, kind="stable")[:n]  # pick_batch with diversity 0: ties to the lower index
    rand = np.random.default_rng(seed).choice(len(scores), size=n, replace=False)
    overlap = len(set(picked) & set(top))
    return [
        {"batch": "picked (with diversity)", "n": n, "overlap_with_top_n": overlap, **batch_stats(scores, picked, X)},
        {"batch": "top-n by disagreement", "n": n, "overlap_with_top_n": n, **batch_stats(scores, top, X)},
        {"batch": "random", "n": n, "overlap_with_top_n": len(set(rand) & set(top)), **batch_stats(scores, rand, X)},
    ]


def run_rounds(workdir: Path, molecule: str, level: str) -> pd.DataFrame:
    """round_comparison for every selection round of the run under `workdir`."""
    pool = load_npz(workdir / layout.dataset(molecule, level, f"cheap-{level}"))
    where = {int(f): i for i, f in enumerate(pool.frame_id)}
    pattern = layout.file("selection_scores", molecule=molecule, seed="*", round="*")
    files = sorted(workdir.glob(pattern))
    if not files:
        raise SystemExit(f"no {pattern} under {workdir}: a run with selection.enabled")
    rows = []
    for path in files:
        scores = pd.read_csv(path)
        seed, round_ = int(scores["seed"].iloc[0]), int(scores["round"].iloc[0])
        missing = [int(f) for f in scores["frame_id"] if int(f) not in where]
        if missing:
            raise SystemExit(f"{path}: candidates {missing[:5]} are not in the {level} pool")
        X = inverse_distances(pool.R[[where[int(f)] for f in scores["frame_id"]]])  # [n_candidates, n_pairs]
        for r in round_comparison(scores, X, seed):
            rows.append({"seed": seed, "round": round_, **r})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=".", help="the run's directory (holding results/)")
    ap.add_argument("--molecule", default="ethanol")
    ap.add_argument("--level", default="xtb", help="selection.level: the candidates' pool")
    a = ap.parse_args()
    df = run_rounds(Path(a.run), a.molecule, a.level)
    print_machine()
    print("## Each round's batch: picked, top-n by disagreement alone, random (same candidates)\n")
    cols = [
        "seed",
        "round",
        "batch",
        "n",
        "overlap_with_top_n",
        "disagreement_mean",
        "energy_median_pct",
        "energy_above_p95",
        "force_rms_median_pct",
        "force_rms_above_p95",
        "spacing",
    ]
    fmt = dict.fromkeys(("disagreement_mean", "energy_above_p95", "force_rms_above_p95", "spacing"), "{:.2f}")
    fmt |= dict.fromkeys(("energy_median_pct", "force_rms_median_pct"), "{:.0f}")
    body = [[fmt[c].format(r[c]) if c in fmt else r[c] for c in cols] for r in df.to_dict("records")]
    headers = [
        "seed",
        "round",
        "batch",
        "frames",
        "also in top-n",
        "disagreement (kcal/mol/Å)",
        "energy: median percentile",
        "energy: > p95",
        "force RMS: median percentile",
        "force RMS: > p95",
        "spacing (1/Å)",
    ]
    print(markdown_table(headers, body))
    print("\n## Mean over seeds, per round\n")
    mean = df.groupby(["round", "batch"], sort=True)[cols[4:]].mean().reset_index()
    body = [
        [r["round"], r["batch"], *(fmt.get(c, "{:.1f}").format(r[c]) for c in cols[4:])]
        for r in mean.to_dict("records")
    ]
    print(markdown_table(["round", "batch", *headers[4:]], body))


if __name__ == "__main__":
    main()
