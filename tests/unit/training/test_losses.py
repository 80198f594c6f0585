"""ASTEROID's losses: bias and weights on a hand-made case; sliced score matching vs exact trace."""

import math

import numpy as np
import pytest
import torch

from pipeline.models import build
from pipeline.training.batching import TensorData
from pipeline.training.losses import bias, bias_weights, exact_score_matching_loss, score_matching_loss, supervised_loss
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
    per_frame = [
        float(supervised_loss(model, data, torch.tensor([i]), rho=0.3, create_graph=False)[0]) for i in range(3)
    ]
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
    many = np.mean(
        [float(score_matching_loss(model, data, idx, kT, n_projections=50, generator=gen)) for _ in range(8)]
    )  # 400 projections
    assert abs(many - exact) < 0.05 * abs(exact) + 1e-3
    assert abs(many - exact) <= abs(few - exact) + 1e-2  # more projections: closer (or both already tight)


def test_gamma_tokens_round_trip_and_bad_ones_name_the_forms():
    from pipeline.layout import gamma_from_token, gamma_token

    assert gamma_from_token("1.5") == ("absolute", 1.5)
    assert gamma_from_token("r0.5") == ("relative", 0.5)
    assert gamma_from_token("inf") == ("inf", math.inf)
    for kind, value in [("absolute", 1.5), ("relative", 0.5), ("absolute", 1.0), ("relative", 1.0)]:
        assert gamma_from_token(gamma_token(kind, value)) == (kind, value)
    for bad in ("abc", "r", "-1", "r0", "rinf"):
        with pytest.raises(ValueError, match="gamma"):
            gamma_from_token(bad)


def test_relative_gamma_is_a_multiple_of_the_bias_spread():
    from pipeline.training.losses import bias_spread, resolve_gamma

    B = np.array([8.0, 9.0, 10.0, 11.0, 12.0])  # IQR = 2
    assert bias_spread(B) == pytest.approx(2.0)
    assert resolve_gamma("relative", 0.5, B) == pytest.approx(1.0)
    assert resolve_gamma("absolute", 3.0, B) == 3.0
    assert bias_spread(np.full(4, 7.0)) > 0  # degenerate: no division by zero
    with pytest.raises(ValueError, match="needs the bias"):
        resolve_gamma("relative", 1.0, None)


def test_relative_weights_ignore_the_stage1_error_offset_and_scale():
    """A better or worse stage-1 model shifts and scales B; the relative grid keeps the weights."""
    from pipeline.training.losses import normalised_bias_weights, resolve_gamma

    rng = np.random.default_rng(0)
    B = 9.9 + 0.8 * rng.standard_normal(500)  # the xTB case: narrow spread far above gamma = 1
    w = normalised_bias_weights(B, resolve_gamma("relative", 1.0, B))
    B2 = 3.0 + 0.5 * (B - 9.9)  # another stage-1 model: smaller offset and spread
    w2 = normalised_bias_weights(B2, resolve_gamma("relative", 1.0, B2))
    np.testing.assert_allclose(w, w2, rtol=1e-12)
    assert w.max() == 1.0 and w.min() > 1e-4 and 0.05 < np.median(w) < 0.5  # weights differ; none underflow
    raw = np.exp(-B / 1.0)
    assert np.median(raw) < 1e-3  # the absolute gamma = 1 of the paper: the raw weights are tiny


def test_effective_sample_size():
    from pipeline.training.losses import effective_sample_size

    assert effective_sample_size(np.ones(50)) == pytest.approx(50)
    assert effective_sample_size(np.r_[1.0, np.zeros(9)]) == pytest.approx(1)
    assert effective_sample_size(3 * np.r_[1.0, 1.0, 0.0, 0.0]) == pytest.approx(2)
