"""Small least-squares helpers shared by the transport methods."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Line:
    """y = slope x + intercept fitted by least squares; r2 the coefficient of determination."""

    slope: float
    intercept: float
    r2: float
    n: int


def fit_line(x: np.ndarray, y: np.ndarray) -> Line | None:
    """Least-squares straight line, or None with fewer than 3 points or no spread in x."""
    x = np.asarray(x, "f8")
    y = np.asarray(y, "f8")
    if len(x) < 3:
        return None
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    if sxx <= 0:
        return None
    slope = float(((x - xm) * (y - ym)).sum()) / sxx
    intercept = float(ym - slope * xm)
    ss_res = float(((y - slope * x - intercept) ** 2).sum())
    ss_tot = float(((y - ym) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return Line(slope, intercept, r2, len(x))


def finite(x: float | None) -> float | None:
    """Python float, or None for None/NaN/inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
