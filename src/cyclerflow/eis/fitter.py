"""Weighted complex non-linear least squares for one circuit and one spectrum.

Positive parameters are fitted as their logarithm (scale-free, cannot turn negative);
exponents (CPE alpha, Zarc gamma ...) linearly within ``EXPONENT_BOUNDS``. The model
and its analytic Jacobian come from :class:`cyclerflow.eis.circuits.Circuit`;
:func:`scipy.optimize.least_squares` (trust-region reflective, bounds) does the rest.

Weighting (``weighting=``):

- ``"modulus"`` (default): residuals divided by |Z| (every point counts by its relative
  error; what a potentiostat's error model looks like),
- ``"proportional"``: real and imaginary residuals divided by |Z'| and |Z''|
  (floored at 1 % of |Z|),
- ``"unit"``: unweighted (what impedance.py's ``CustomCircuit.fit`` does by default).

``chi2`` is always the modulus-weighted reduced chi-square
``sum(|Z_fit - Z|^2 / |Z|^2) / (2N - P)`` so it compares across spectra and weightings
(0.5 % noise on each component gives about 2.5e-5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from cyclerflow.eis.circuits import EXPONENT_BOUNDS, Circuit

WEIGHTINGS = ("modulus", "proportional", "unit")


@dataclass
class FitResult:
    params: np.ndarray
    stderr: np.ndarray
    chi2: float
    cost: float  # 0.5 * sum of squared weighted residuals (fit weighting)
    success: bool
    nfev: int
    at_bound: np.ndarray
    z_fit: np.ndarray
    message: str


def weights(z: np.ndarray, weighting: str) -> tuple[np.ndarray, np.ndarray]:
    """(weights of real parts, weights of imaginary parts)."""
    mod = np.abs(z)
    if weighting == "modulus":
        return 1.0 / mod, 1.0 / mod
    if weighting == "proportional":
        return 1.0 / np.maximum(np.abs(z.real), 0.01 * mod), 1.0 / np.maximum(
            np.abs(z.imag), 0.01 * mod
        )
    if weighting == "unit":
        s = 1.0 / np.median(mod)
        return np.full(z.shape, s), np.full(z.shape, s)
    raise ValueError(f"unknown weighting {weighting!r} (use one of {', '.join(WEIGHTINGS)})")


def param_bounds(circuit: Circuit, z_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds in natural units: resistances 1e-9..1e3 x z_scale, exponents EXPONENT_BOUNDS."""
    lo = np.full(circuit.n_params, 1e-30)
    hi = np.full(circuit.n_params, 1e30)
    for i, u in enumerate(circuit.param_units):
        if u == "Ohm":
            lo[i], hi[i] = 1e-9 * z_scale, 1e3 * z_scale
    lo[circuit.exponent_mask], hi[circuit.exponent_mask] = EXPONENT_BOUNDS
    return lo, hi


def fit_circuit(
    circuit: Circuit,
    frequency_hertz: np.ndarray,
    z: np.ndarray,
    p0,
    *,
    weighting: str = "modulus",
    max_nfev: int = 300,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    tol: float = 1e-10,
    fixed: np.ndarray | None = None,
) -> FitResult:
    """Fit ``circuit`` to ``z`` (Ohm, complex) at ``frequency_hertz`` from ``p0``.

    ``bounds``: (lower, upper) in natural units per parameter (default
    :func:`param_bounds`); ``fixed``: boolean mask of parameters held at their ``p0``
    value (their standard error is 0).
    """
    z = np.asarray(z, dtype=complex)
    free = np.ones(circuit.n_params, bool) if fixed is None else ~np.asarray(fixed, bool)
    obj = _Objective(circuit, frequency_hertz, z, weighting, free, np.asarray(p0, dtype="f8"))
    lo, hi = bounds if bounds is not None else param_bounds(circuit, float(np.max(np.abs(z))))
    expo = obj.expo
    xlo = np.where(expo, lo[free], np.log(lo[free]))
    xhi = np.where(expo, hi[free], np.log(hi[free]))
    p_free = obj.p_full[free]
    x0 = np.where(expo, p_free, np.log(np.maximum(p_free, 1e-300)))
    span = xhi - xlo
    x0 = np.clip(x0, xlo + 1e-9 * span, xhi - 1e-9 * span)
    if not free.any():
        x, ok, msg, nfev = x0, True, "every parameter fixed", 0
    else:
        x, ok, msg, nfev = _solve(obj.fun, obj.jacf, x0, xlo, xhi, tol, max_nfev)
    at_free = (np.abs(x - xlo) < 1e-6 * span) | (np.abs(x - xhi) < 1e-6 * span)
    return obj.result(x, ok, msg, nfev, at_free)


class _Objective:
    """Weighted residuals and Jacobian in x (log space for positive free parameters)."""

    def __init__(self, circuit: Circuit, f, z, weighting: str, free, p_full):
        self.circuit, self.z, self.free = circuit, z, free
        self.f = np.asarray(f, dtype="f8")
        self.omega = 2 * np.pi * self.f
        self.ljw = np.log(self.omega) + 0.5j * np.pi
        self.wr, self.wi = weights(z, weighting)
        self.expo = circuit.exponent_mask[free]
        self.p_full = p_full.copy()
        self._key, self._r, self._j = None, None, None

    def to_p(self, x) -> np.ndarray:
        p = self.p_full.copy()
        p[self.free] = np.where(self.expo, x, np.exp(x))
        return p

    def evaluate(self, x):
        key = x.tobytes()
        if self._key != key:
            p = self.to_p(x)
            zm, jac = self.circuit.impedance_and_jacobian(p, self.omega, self.ljw)
            d = zm - self.z
            self._r = np.concatenate([d.real * self.wr, d.imag * self.wi])
            jx = jac[self.free] * np.where(self.expo, 1.0, p[self.free])[:, None]
            self._j = np.concatenate([jx.real * self.wr, jx.imag * self.wi], axis=1).T
            self._key = key
        return self._r, self._j

    def fun(self, x):
        r = self.evaluate(x)[0]
        return np.where(np.isfinite(r), r, 1e10)

    def jacf(self, x):
        j = self.evaluate(x)[1]
        return np.where(np.isfinite(j), j, 0.0)

    def result(self, x, ok: bool, msg: str, nfev: int, at_free) -> FitResult:
        """Parameters, standard errors (from J at the optimum), chi2 and bound flags."""
        p = self.to_p(x)
        r, jr = self.evaluate(x)
        n_p = int(self.free.sum())
        dof = max(r.size - n_p, 1)
        ssr = float(r @ r)
        zm = self.circuit.impedance(p, self.f)
        chi2 = float(np.sum(np.abs(zm - self.z) ** 2 / np.abs(self.z) ** 2) / dof)
        try:
            cov = np.linalg.pinv(jr.T @ jr) * (ssr / dof)
            sx = np.sqrt(np.clip(np.diag(cov), 0, None))
        except np.linalg.LinAlgError:  # pragma: no cover - defensive
            sx = np.full(n_p, np.inf)
        stderr = np.zeros(p.size)
        stderr[self.free] = np.where(self.expo, sx, p[self.free] * sx)
        at_bound = np.zeros(p.size, bool)
        at_bound[self.free] = at_free
        ok = ok and bool(np.all(np.isfinite(p))) and np.isfinite(chi2)
        return FitResult(p, stderr, chi2, 0.5 * ssr, ok, nfev, at_bound, zm, msg)


def _solve(fun, jacf, x0, xlo, xhi, tol, max_nfev):
    """scipy's trust-region reflective solver; (x, converged, message, evaluations)."""
    try:
        sol = least_squares(
            fun,
            x0,
            jac=jacf,
            bounds=(xlo, xhi),
            method="trf",
            x_scale="jac",
            ftol=tol,
            xtol=tol,
            gtol=tol,
            max_nfev=max_nfev,
        )
        return sol.x, bool(sol.status > 0), sol.message, int(sol.nfev)
    except (ValueError, np.linalg.LinAlgError) as err:  # pragma: no cover - defensive
        return x0, False, str(err), 0
