"""Levenberg-Marquardt on the normal equations (the global series fit's solver).

The problem object gives ``normal_equations(x) -> (J^T J, J^T r, 0.5 r^T r)`` and
``residuals(x)``. A global fit's Jacobian is block-structured (each spectrum's own
parameters plus the shared columns), so J^T J is assembled spectrum by spectrum and
solved as a dense matrix of the parameter count, with Marquardt's diagonal scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Solution:
    """Where the solver stopped: x, J^T J there, the cost 0.5 r^T r, iterations."""

    x: np.ndarray
    normal: np.ndarray
    cost: float
    converged: bool
    n_iter: int


def _step(problem, x, a, g, cost, lam):
    """(step, new cost, lambda) of the first downhill damped step, or (None, cost, lam)."""
    d = np.clip(np.diag(a), 1e-12, None)
    while lam < 1e12:
        try:
            step = np.linalg.solve(a + lam * np.diag(d), -g)
        except np.linalg.LinAlgError:
            lam *= 10
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            r_new = problem.residuals(x + step)
            c_new = 0.5 * float(r_new @ r_new)
        if np.isfinite(c_new) and c_new < cost:
            return step, c_new, lam
        lam *= 10
    return None, cost, lam


def levenberg_marquardt(problem, x0: np.ndarray, *, max_iter: int = 100) -> Solution:
    """Minimise 0.5 |r(x)|^2 from ``x0``; converged when no downhill step is left or
    the cost falls by less than 1e-8 relative (or the step is below 1e-8)."""
    x = np.asarray(x0, dtype="f8")
    a, g, cost = problem.normal_equations(x)
    lam, converged, it = 1e-3, False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        step, c_new, lam = _step(problem, x, a, g, cost, lam)
        if step is None:
            converged = True  # no downhill step left: at the minimum to working precision
            break
        small = cost - c_new <= 1e-8 * cost or np.max(np.abs(step)) < 1e-8
        x, lam = x + step, max(lam / 10, 1e-12)
        a, g, cost = problem.normal_equations(x)
        if small:
            converged = True
            break
    return Solution(x, a, cost, converged, it)
