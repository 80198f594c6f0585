"""ASTEROID's losses: bias and weights on a hand-made case; sliced score matching vs exact trace."""
import math

import numpy as np
import pytest
import torch

from pipeline.models import build
from pipeline.training.batching import TensorData
from pipeline.training.losses import (bias, bias_weights, exact_score_matching_loss, score_matching_loss,
                                      supervised_loss)
from tests.conftest import ETHANOL_R, ETHANOL_Z


def test_bias_is_mean_abs_force_difference():
    F_model = np.zeros((2, 2, 3))
    F_cheap = np.array([[[1, -1, 2], [0, 0, 2]], [[3, 3, 3], [-3, -3, -3]]], dtype=float)
    # frame 0: |.| = 1,1,2,0,0,2 -> mean 1; frame 1: all 3 -> mean 3
    np.testing.assert_allclose(bias(F_model, F_cheap), [1.0, 3.0])


def test_bias_weights_formula_and_unweighted_limit():
    B = np.array([0.0, 1.0, 3.0])
    np.testing.assert_allclose(bias_weights(B, 1.0), [1.0, math.exp(-1), math.exp(-3)])
    np.testing.assert_allclose(bias_weights(B, 2.0), [1.0, math.exp(-0.5), math.exp(-1.5)])
    np.testing.assert_array_equal(bias_weights(B, math.inf), [1.0, 1.0, 1.0])


def _data(n=3, seed=0, labelled=True):
    rng = np.random.default_rng(seed)
    R = torch.tensor(ETHANOL_R[None] + 0.05 * rng.standard_normal((n, 9, 3)))
    E = torch.tensor(rng.standard_normal(n)) if labelled else None
    F = torch.tensor(rng.standard_normal((n, 9, 3))) if labelled else None
    return TensorData(torch.tensor(ETHANOL_Z), R, E, F, torch.ones(n, dtype=torch.float64))


def test_weights_multiply_both_loss_terms():
    torch.manual_seed(0)
    model = build("egnn", hidden=8, num_layers=1).double()
    data = _data()
    idx = torch.arange(3)
    per_frame = [float(supervised_loss(model, data, torch.tensor([i]), rho=0.3, create_graph=False)[0]) for i in range(3)]
    data.w = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    weighted = float(supervised_loss(model, data, idx, rho=0.3, create_graph=False)[0])
    assert weighted == pytest.approx((per_frame[0] + 0.5 * per_frame[1]) / 3, rel=1e-10)


def test_sliced_score_matching_converges_to_exact_trace_loss():
    torch.manual_seed(0)
    model = build("egnn", hidden=8, num_layers=2).double()
    model.set_normalization(0.0, 5.0)
    data = _data(n=2, labelled=False)
    idx = torch.arange(2)
    kT = 0.99
    exact = exact_score_matching_loss(model, data, idx, kT).item()
    gen = torch.Generator().manual_seed(1)
    few = float(score_matching_loss(model, data, idx, kT, n_projections=1, generator=gen))
    many = np.mean([float(score_matching_loss(model, data, idx, kT, n_projections=50, generator=gen))
                    for _ in range(8)])  # 400 projections
    assert abs(many - exact) < 0.05 * abs(exact) + 1e-3
    assert abs(many - exact) <= abs(few - exact) + 1e-2  # more projections: closer (or both already tight)
