"""Confidence intervals for test errors and error reductions (bootstrap over test frames).

Every comparison the report states ("ASTEROID removes x% of standard training's force error")
comes with a 95% interval from a *paired* bootstrap: the same resampled test frames score both
methods, so frame-to-frame difficulty cancels. With several training seeds the seeds are resampled
too (matched between the two methods), so the interval also covers seed-to-seed variation; with
one seed it covers test-frame sampling only, and the report says so.

Inputs are per-frame force MAEs, shaped [n_seeds, n_frames] (kcal/mol/A).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BOOTSTRAP = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero (for a reduction: a real difference at 95%)."""
        return bool(self.low > 0 or self.high < 0)


def _resample_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap counts [n_boot, n] (each row sums to n); one row of ones when n == 1."""
    if n == 1:
        return np.ones((n_boot, 1))
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def _as_2d(err) -> np.ndarray:
    a = np.asarray(err, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"per-frame errors must be [n_seeds, n_frames], got shape {a.shape}")
    return a


def _boot_means(a: np.ndarray, seed_w: np.ndarray, frame_w: np.ndarray) -> np.ndarray:
    """Mean of a [S, F] under bootstrap seed counts [B, S] and frame counts [B, F] -> [B]."""
    S, F = a.shape
    return ((seed_w @ a) * frame_w).sum(axis=1) / (S * F)


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - CONFIDENCE) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def mean_interval(err, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> Interval:
    """Mean error with its 95% bootstrap interval (frames, and seeds when several)."""
    a = _as_2d(err)
    rng = np.random.default_rng(seed)
    sw, fw = _resample_weights(a.shape[0], n_boot, rng), _resample_weights(a.shape[1], n_boot, rng)
    lo, hi = _percentiles(_boot_means(a, sw, fw))
    return Interval(float(a.mean()), lo, hi)


def reduction_interval(err_method, err_baseline, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> Interval:
    """Relative error reduction 1 - mean(method)/mean(baseline), paired bootstrap interval.

    Both arrays are [n_seeds, n_frames] on the same test frames in the same order (and the same
    seeds in the same order); positive means the method has the lower error.
    """
    a, b = _as_2d(err_method), _as_2d(err_baseline)
    if a.shape != b.shape:
        raise ValueError(f"paired errors need equal shapes, got {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    sw, fw = _resample_weights(a.shape[0], n_boot, rng), _resample_weights(a.shape[1], n_boot, rng)
    boot = 1.0 - _boot_means(a, sw, fw) / _boot_means(b, sw, fw)
    lo, hi = _percentiles(boot)
    return Interval(float(1.0 - a.mean() / b.mean()), lo, hi)


def spearman(x, y) -> float:
    """Spearman rank correlation (NaN for fewer than 3 points or a constant input)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)
