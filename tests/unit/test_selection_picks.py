"""benchmarks/selection_picks.py on candidates whose answer is known: the most uncertain frames form
one tight, high-energy cluster, so top-n by disagreement takes near-copies in the tail, and the
diversity term (the real `pick_batch`) spreads the batch out."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import selection_picks

from pipeline.selection import pick_batch


def _round(n_cand=200, n_pick=8, diversity=1.0):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_cand, 6))  # descriptors of the candidates
    X[:8] = X[0] + 0.01 * rng.normal(size=(8, 6))  # a tight cluster of near-copies ...
    u = rng.uniform(0.1, 1.0, n_cand)
    u[:8] = rng.uniform(2.0, 2.1, 8)  # ... that the committee is most unsure about
    energy = rng.normal(size=n_cand)
    energy[:8] += 5.0  # in the energy tail
    picked = pick_batch(u, X, X[-1:], n_pick, diversity)
    order = np.full(n_cand, -1)
    order[picked] = np.arange(n_pick)
    scores = pd.DataFrame(
        {
            "seed": 0,
            "round": 1,
            "frame_id": np.arange(n_cand),
            "disagreement_kcal": u,
            "distance": 0.0,
            "pick_order": order,
            "cheap_energy_kcal": energy,
            "cheap_force_rms_kcal": np.abs(energy),
        }
    )
    return scores, X


def test_top_n_takes_the_cluster_and_the_diversity_term_spreads_the_batch():
    scores, X = _round()
    picked, top, rand = selection_picks.round_comparison(scores, X)
    assert top["energy_above_p95"] == 1.0 and top["energy_median_pct"] > 95  # all eight in the tail
    assert picked["spacing"] > 10 * top["spacing"]  # near-copies against a spread batch
    assert picked["overlap_with_top_n"] < picked["n"] and picked["energy_above_p95"] < 1.0
    assert rand["energy_median_pct"] < 80


def test_without_diversity_the_picks_are_top_n():
    scores, X = _round(diversity=0.0)
    picked, top, _ = selection_picks.round_comparison(scores, X)
    assert picked["overlap_with_top_n"] == picked["n"] == 8
    assert picked["spacing"] == top["spacing"]
