"""Bootstrap intervals: they see a real difference, stay wide around none, and are paired."""

import numpy as np
import pytest

from pipeline.evaluation import stats


def _frames(n=60, seed=0):
    """Per-frame errors with a large frame-to-frame spread (some frames are hard for every method)."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=0.0, sigma=0.8, size=n)


def test_identical_methods_give_zero_reduction_and_no_significance():
    e = _frames()
    ci = stats.reduction_interval(e, e)
    assert ci.estimate == 0.0 and ci.low == 0.0 and ci.high == 0.0 and not ci.significant


def test_a_real_improvement_is_significant_and_its_size_is_recovered():
    rng = np.random.default_rng(1)
    base = _frames()
    better = 0.6 * base * rng.lognormal(0, 0.1, size=base.size)  # 40% lower on every frame, with noise
    ci = stats.reduction_interval(better, base)
    assert ci.significant and ci.low < ci.estimate < ci.high
    assert abs(ci.estimate - 0.4) < 0.05 and ci.low > 0.3


def test_noise_alone_is_not_significant():
    rng = np.random.default_rng(2)
    base = _frames()
    other = base * rng.lognormal(0, 0.3, size=base.size)  # no systematic difference
    ci = stats.reduction_interval(other, base)
    assert ci.low < 0 < ci.high and not ci.significant


def test_pairing_removes_the_shared_frame_difficulty():
    """A 10% gain on every frame is significant when paired, although the frames' errors spread
    over a factor of 10: an unpaired comparison (shuffled frames) cannot see it."""
    base = _frames(80)
    better = 0.9 * base
    paired = stats.reduction_interval(better, base)
    assert paired.significant and paired.high - paired.low < 1e-9
    unpaired = stats.reduction_interval(better, np.random.default_rng(3).permutation(base))
    assert unpaired.high - unpaired.low > 0.2


def test_seeds_are_resampled_so_seed_variation_widens_the_interval():
    base = np.stack([_frames(seed=0)] * 3)
    steady = 0.8 * base
    erratic = base * np.array([[0.5], [0.8], [1.1]])  # same mean gain, very different per seed
    ci_s, ci_e = stats.reduction_interval(steady, base), stats.reduction_interval(erratic, base)
    assert ci_e.high - ci_e.low > 0.2 > ci_s.high - ci_s.low


def test_mean_interval_contains_the_mean_and_shrinks_with_more_frames():
    small, large = stats.mean_interval(_frames(20)), stats.mean_interval(_frames(2000))
    assert small.low < small.estimate < small.high
    assert (large.high - large.low) < (small.high - small.low) / 4


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="equal shapes"):
        stats.reduction_interval(np.ones((2, 5)), np.ones((1, 5)))
    with pytest.raises(ValueError, match="n_seeds, n_frames"):
        stats.mean_interval(np.ones((2, 2, 2)))


def test_spearman():
    x = np.arange(10.0)
    assert stats.spearman(x, x**3) == pytest.approx(1.0)
    assert stats.spearman(x, -x) == pytest.approx(-1.0)
    assert np.isnan(stats.spearman(x, np.ones(10)))
