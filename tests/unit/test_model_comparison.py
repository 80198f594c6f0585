"""benchmarks/model_comparison.py pairs errors on the seeds both sides have: only sGDML, which has
no seed, is repeated for every seed of the other side (a neural model run with one seed is not)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import model_comparison


def test_a_one_seed_model_pairs_on_its_seed_only():
    one = ([0], np.full((1, 5), 1.0))
    three = ([0, 1, 2], np.arange(15.0).reshape(3, 5))
    a, b, n = model_comparison.paired(one, three)
    assert n == 1 and a.shape == b.shape == (1, 5)
    np.testing.assert_array_equal(b, three[1][:1])
    a, b, n = model_comparison.paired(three, ([1, 2], three[1][1:]))
    assert n == 2
    np.testing.assert_array_equal(a, three[1][1:])
    assert model_comparison.paired(one, ([1], three[1][1:2])) is None


def test_sgdml_is_repeated_for_every_seed():
    three = ([0, 1, 2], np.arange(15.0).reshape(3, 5))
    sgdml = ([0], np.full((1, 5), 2.0))
    a, b, n = model_comparison.paired(three, sgdml, b_deterministic=True)
    assert n == 3 and a.shape == b.shape == (3, 5) and (b == 2.0).all()
