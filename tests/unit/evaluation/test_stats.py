"""Intervals: they see a real difference, stay wide around none, are paired, and -- with few
training seeds -- hold the population value as often as they claim (checked against simulated
experiments whose truth is known)."""

import numpy as np
import pytest

from pipeline.evaluation import stats


def _frames(n=60, seed=0):
    """Per-frame errors with a large frame-to-frame spread (some frames are hard for every method)."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=0.0, sigma=0.8, size=n)


def test_identical_methods_give_zero_reduction_and_no_significance():
    e = _frames()
    for errors in (e, np.stack([e, 1.3 * e, 0.8 * e])):
        ci = stats.reduction_interval(errors, errors)
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
    seeds = stats.reduction_interval(np.stack([better] * 3), np.stack([base] * 3))
    assert seeds.significant and seeds.high - seeds.low < 1e-9


def test_seed_variation_widens_the_interval():
    base = np.stack([_frames(seed=0)] * 3)
    steady = 0.8 * base
    erratic = base * np.array([[0.5], [0.8], [1.1]])  # same mean gain, very different per seed
    ci_s, ci_e = stats.reduction_interval(steady, base), stats.reduction_interval(erratic, base)
    assert ci_e.high - ci_e.low > 0.2 > ci_s.high - ci_s.low
    assert not ci_e.significant and ci_s.significant


def test_mean_interval_contains_the_mean_and_shrinks_with_more_frames():
    small, large = stats.mean_interval(_frames(20)), stats.mean_interval(_frames(2000))
    assert small.low < small.estimate < small.high
    assert (large.high - large.low) < (small.high - small.low) / 4


def test_one_seed_is_a_frame_bootstrap_and_the_seed_count_is_reported():
    e = _frames()
    one, also_one = stats.mean_interval(e, n_boot=500), stats.mean_interval(e[None], n_boot=500)
    assert one == also_one and one.n_seeds == 1
    w = np.random.default_rng(0).multinomial(e.size, np.full(e.size, 1 / e.size), size=500) / e.size
    assert (one.low, one.high) == pytest.approx(tuple(np.percentile(w @ e, [2.5, 97.5])))
    three = stats.mean_interval(np.stack([e, 1.1 * e, 0.9 * e]))
    assert three.n_seeds == 3 and stats.reduction_interval(0.9 * e, e).n_seeds == 1
    assert stats.reduction_interval(np.stack([e, e]), np.stack([e, 1.2 * e])).n_seeds == 2
    est, low, high = three.estimate, three.low, three.high  # the fields callers read are unchanged
    assert low < est < high


def test_variance_components_separate_seed_and_shared_frame_spread():
    rng = np.random.default_rng(4)
    seed_effect = rng.normal(size=(5, 1))
    frame_effect = rng.normal(size=(1, 30))
    v_seed, v_frame = stats.variance_components(seed_effect + np.zeros((5, 30)))
    assert v_seed == pytest.approx(np.var(seed_effect, ddof=1) / 5) and v_frame == pytest.approx(0.0, abs=1e-12)
    v_seed, v_frame = stats.variance_components(frame_effect + np.zeros((5, 30)))
    assert v_seed == pytest.approx(0.0, abs=1e-12) and v_frame == pytest.approx(np.var(frame_effect, ddof=1) / 30)
    with pytest.raises(ValueError, match="two seeds"):
        stats.variance_components(np.ones((1, 5)))


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


# --- coverage against a known truth -------------------------------------------------------------

N_EXPERIMENTS = 400
TRUE_REDUCTION = 0.2


def _experiments(n_seeds, n_frames, rng, frame_sd=0.4, seed_sd=0.4, noise_sd=0.3, method_frame_sd=0.2):
    """N_EXPERIMENTS simulated experiments shaped like ours: per-frame force MAEs of a baseline b and
    a method a, [n_exp, n_seeds, n_frames], on the same test frames (for every seed and both methods).

    log b[s, f] = frame difficulty g_f + seed effect u_s + noise; the method shares g_f, adds its own
    frame effect h_f (the frames it is better or worse at, the same for every seed), its own seed
    effect and noise, and a factor k. The seed effects spread as much as the frames do. Population
    values (infinitely many seeds and frames): E[b] = exp((frame_sd^2 + seed_sd^2 + noise_sd^2)/2),
    E[a] = k exp(method_frame_sd^2/2) E[b] = (1 - TRUE_REDUCTION) E[b].
    """
    shape = (N_EXPERIMENTS, n_seeds, n_frames)
    g = rng.normal(0, frame_sd, (N_EXPERIMENTS, 1, n_frames))
    h = rng.normal(0, method_frame_sd, (N_EXPERIMENTS, 1, n_frames))
    k = (1 - TRUE_REDUCTION) / np.exp(method_frame_sd**2 / 2)
    b = np.exp(g + rng.normal(0, seed_sd, (N_EXPERIMENTS, n_seeds, 1)) + rng.normal(0, noise_sd, shape))
    a = k * np.exp(g + h + rng.normal(0, seed_sd, (N_EXPERIMENTS, n_seeds, 1)) + rng.normal(0, noise_sd, shape))
    mean_b = np.exp((frame_sd**2 + seed_sd**2 + noise_sd**2) / 2)
    return a, b, (1 - TRUE_REDUCTION) * mean_b, mean_b


def _old_bootstrap(a, b, rng, n_boot=200):
    """The previous method: seeds and frames resampled independently, percentile interval.
    Returns the (low, high) of the reduction and of mean(b)."""
    S, F = a.shape
    sw = rng.multinomial(S, np.full(S, 1 / S), size=n_boot)
    fw = rng.multinomial(F, np.full(F, 1 / F), size=n_boot)
    mean_a, mean_b = ((sw @ a) * fw).sum(1) / (S * F), ((sw @ b) * fw).sum(1) / (S * F)
    return np.percentile(1 - mean_a / mean_b, [2.5, 97.5]), np.percentile(mean_b, [2.5, 97.5])


def _covers(ci, truth):
    return ci.low <= truth <= ci.high


@pytest.mark.parametrize("n_seeds", [3, 5])
@pytest.mark.parametrize("n_frames", [40, 200])
def test_nominal_95_percent_intervals_hold_the_truth_with_few_seeds(n_seeds, n_frames):
    rng = np.random.default_rng(100 * n_seeds + n_frames)
    a, b, mean_a, mean_b = _experiments(n_seeds, n_frames, rng)
    hits, old_hits = np.zeros(3), np.zeros(2)
    for ea, eb in zip(a, b, strict=True):
        hits += [
            _covers(stats.reduction_interval(ea, eb), TRUE_REDUCTION),
            _covers(stats.mean_interval(ea), mean_a),
            _covers(stats.mean_interval(eb), mean_b),
        ]
        (r_lo, r_hi), (m_lo, m_hi) = _old_bootstrap(ea, eb, rng)
        old_hits += [r_lo <= TRUE_REDUCTION <= r_hi, m_lo <= mean_b <= m_hi]
    coverage, old_coverage = hits / N_EXPERIMENTS, old_hits / N_EXPERIMENTS
    print(f"S={n_seeds} F={n_frames}: coverage (reduction, mean a, mean b) {coverage}, old {old_coverage}")
    assert (coverage >= 0.90).all(), coverage
    if n_seeds == 3:  # the test can see the bug it guards against
        assert (old_coverage < 0.85).all(), old_coverage


def test_the_shared_frame_term_is_needed_when_seeds_agree():
    """Seeds that barely differ, a method whose advantage depends on the frame: the error left is
    the choice of test frames, shared by every seed. The between-seed variance alone misses it."""
    rng = np.random.default_rng(7)
    a, b, _, _ = _experiments(3, 40, rng, seed_sd=0.01, noise_sd=0.05, method_frame_sd=0.3)
    hits = seed_only_hits = 0
    for ea, eb in zip(a, b, strict=True):
        ci = stats.reduction_interval(ea, eb)
        hits += _covers(ci, TRUE_REDUCTION)
        ratio = ea.mean() / eb.mean()
        v_seed, _ = stats.variance_components((ea - ratio * eb) / eb.mean())
        seed_only_hits += abs(ci.estimate - TRUE_REDUCTION) <= 4.303 * np.sqrt(v_seed)  # t_{0.975, 2}
    print(f"coverage {hits / N_EXPERIMENTS}, seed term only {seed_only_hits / N_EXPERIMENTS}")
    assert hits / N_EXPERIMENTS >= 0.90
    assert seed_only_hits / N_EXPERIMENTS < 0.7
