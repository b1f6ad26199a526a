"""Capacity fade: robust straight-line fit of retention vs cycle number.

``fade_rate_per_cycle`` is minus the slope of capacity retention (fraction of the
reference cycle's discharge capacity) per cycle, from a Huber M-estimator fitted by
iteratively reweighted least squares (scale from the median absolute deviation), so
that a few outlying cycles (a temperature excursion, a re-started channel) do not
move it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HUBER_K = 1.345  # 95 % efficiency for Gaussian residuals


@dataclass
class LineFit:
    """retention ~ intercept + slope * (cycle - x0)."""

    slope: float
    intercept: float
    slope_stderr: float
    x0: float
    n: int


def robust_line(x: np.ndarray, y: np.ndarray, *, x0: float = 0.0, iterations: int = 50) -> LineFit:
    """Huber-IRLS straight line through (x, y); ``x0`` is the origin of the intercept."""
    x = np.asarray(x, "f8") - x0
    y = np.asarray(y, "f8")
    n = len(x)
    if n < 2:
        raise ValueError("need at least two points")
    w = np.ones(n)
    a = b = 0.0
    for _ in range(iterations):
        sw = w.sum()
        xm, ym = (w * x).sum() / sw, (w * y).sum() / sw
        dx = x - xm
        sxx = (w * dx * dx).sum()
        b_new = (w * dx * (y - ym)).sum() / sxx if sxx > 0 else 0.0
        a_new = ym - b_new * xm
        r = y - a_new - b_new * x
        mad = np.median(np.abs(r - np.median(r)))
        scale = 1.4826 * mad
        conv = abs(b_new - b) <= 1e-12 * max(1.0, abs(b_new)) and abs(a_new - a) <= 1e-12
        a, b = a_new, b_new
        if scale <= 0 or conv:
            break
        u = np.abs(r) / (HUBER_K * scale)
        w = np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-300))
    r = y - a - b * x
    dof = max(n - 2, 1)
    sw = w.sum()
    xm = (w * x).sum() / sw
    sxx = (w * (x - xm) ** 2).sum()
    s2 = (w * r * r).sum() / dof
    se = float(np.sqrt(s2 / sxx)) if sxx > 0 else float("nan")
    return LineFit(slope=float(b), intercept=float(a), slope_stderr=se, x0=float(x0), n=n)


def first_below(
    cycles: np.ndarray, retention: np.ndarray, level: float, *, window: int = 5
) -> int | None:
    """First cycle number whose retention, median-filtered over ``window`` consecutive
    (complete) cycles, is below ``level`` (None if never). The filter keeps a single
    noisy cycle from defining the cycle life."""
    r = np.asarray(retention, "f8")
    if len(r) >= window > 1:
        h = window // 2
        pad = np.pad(r, h, mode="edge")
        r = np.median(np.lib.stride_tricks.sliding_window_view(pad, 2 * h + 1), axis=1)
    below = np.flatnonzero(r < level)
    return None if len(below) == 0 else int(cycles[below[0]])
