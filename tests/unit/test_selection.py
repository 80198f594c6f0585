"""Frames picked by committee disagreement with a diversity term (pipeline/selection.py)."""

import numpy as np
import pytest

from pipeline.selection import committee_disagreement, pick_batch
from pipeline.training.corrected import inverse_distances
from tests.conftest import ETHANOL_R


def _frames(n, seed, scale=0.05):
    rng = np.random.default_rng(seed)
    return ETHANOL_R[None] + scale * rng.standard_normal((n, 9, 3))  # [n, 9, 3]


def test_disagreement_is_the_committee_force_spread():
    F = np.zeros((2, 3, 9, 3))
    F[1, 1, :, 0] = 2.0  # two models differ by 2 kcal/mol/Å along x on every atom of frame 1
    assert committee_disagreement(F) == pytest.approx([0.0, 1.0, 0.0])  # std of (0, 2) is 1
    with pytest.raises(ValueError, match="n_models >= 2"):
        committee_disagreement(F[:1])


def test_without_diversity_the_most_uncertain_frames_are_picked():
    X = inverse_distances(_frames(20, 0))
    u = np.random.default_rng(1).random(20)
    assert list(pick_batch(u, X, X[:0], 5, diversity=0.0)) == list(np.argsort(-u)[:5])


def test_diversity_picks_one_of_many_copies_of_the_most_uncertain_frame():
    """Ten near-copies of one strained frame top the disagreement: plain top-n takes them all, the
    diversity term takes one and then the most uncertain of the other frames."""
    base = _frames(30, 2)
    copies = base[:1] + 1e-4 * np.random.default_rng(3).standard_normal((10, 9, 3))
    R = np.concatenate([copies, base[1:]])  # [39, 9, 3]: frames 0-9 are the copies
    u = np.concatenate([np.full(10, 5.0), np.linspace(1.0, 2.0, 29)])
    X, labelled = inverse_distances(R), inverse_distances(_frames(5, 4))
    top = pick_batch(u, X, labelled, 4, diversity=0.0)
    assert set(top) <= set(range(10))
    diverse = pick_batch(u, X, labelled, 4, diversity=1.0)
    assert sum(int(j) < 10 for j in diverse) == 1 and diverse[0] < 10
    assert 38 in diverse  # the most uncertain of the other frames (u = 2.0)


def test_a_frame_on_top_of_a_labelled_one_is_not_picked():
    R = _frames(12, 5)
    X = inverse_distances(R)
    u = np.ones(12)
    u[3] = 10.0
    picked = pick_batch(u, X, X[[3]], 3, diversity=1.0)  # frame 3 is already labelled
    assert 3 not in picked and len(set(picked)) == 3


def test_bad_requests_are_refused():
    X = inverse_distances(_frames(4, 6))
    with pytest.raises(ValueError, match="cannot pick 5 frames from 4"):
        pick_batch(np.ones(4), X, X[:0], 5)
    with pytest.raises(ValueError, match="3 disagreements"):
        pick_batch(np.ones(3), X, X[:0], 1)
