"""Kramers-Kronig validation by the linear (Voigt) method of Schönleber et al.

A spectrum that obeys the Kramers-Kronig relations can be represented by a series
resistance, ``M`` RC (Voigt) elements with fixed time constants spread log-evenly over
``1/omega_max .. 1/omega_min``, a series capacitance (blocking electrodes) and a series
inductance. Only the element values are unknown, so the fit is linear (one weighted
least-squares solve per ``M``). ``M`` grows until the share of negative resistances
``mu = 1 - sum|R_k<0| / sum|R_k>0|`` drops to ``c`` (default 0.85), which stops before
the RC elements start fitting noise. The relative residuals ``(Z - Z_KK)/|Z|`` are the
test: a few per cent or less for a valid spectrum.

Reference: M. Schönleber, D. Klotz, E. Ivers-Tiffée, Electrochim. Acta 131 (2014) 20-27.

:func:`linkk_impedance_py` runs impedance.py's own ``linKK`` for comparison; it fails
on numpy 2 as shipped (it ``eval``s reprs of numpy scalars), so the call is wrapped in
numpy's legacy print options, which fixes that without touching its code.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from scipy.linalg import lstsq

#: default largest relative KK residual of a valid spectrum
KK_THRESHOLD = 0.03


def _design(omega: np.ndarray, taus: np.ndarray, capacitance: bool, inductance: bool) -> np.ndarray:
    cols = [np.ones_like(omega, dtype=complex)]
    cols.extend(1.0 / (1.0 + 1j * omega[:, None] * taus[None, :]).T)
    if capacitance:
        cols.append(1.0 / (1j * omega))  # coefficient = 1/C
    if inductance:
        cols.append(1j * omega)  # coefficient = L
    return np.array(cols).T


def kramers_kronig(
    frequency_hertz,
    z,
    *,
    c: float = 0.85,
    max_m: int | None = None,
    capacitance: bool = True,
    inductance: bool = True,
    threshold: float = KK_THRESHOLD,
    search: str = "bisect",
    min_m: int | None = None,
) -> dict:
    """Linear Kramers-Kronig test of one spectrum (modulus-weighted complex fit).

    Parameters: frequencies in Hz, complex impedance in Ohm (Im < 0 capacitive);
    ``capacitance`` adds a series capacitor (needed for ion-blocking electrodes, whose
    impedance grows without bound at low frequency), ``inductance`` a series inductor.

    ``min_m``: smallest M tried (default: one RC element per decade of frequency; mu
    can dip below ``c`` by chance at a handful of elements on a spectrum spanning many
    decades, which leaves residuals of tens of per cent on a valid spectrum).
    ``search="linear"`` steps M up one by one as impedance.py's ``linKK`` does;
    the default bisection finds the same M when mu falls monotonically, in ~6 solves.

    Returns a dict: ``m`` (RC elements used), ``mu``, ``z_kk`` (complex, Ohm),
    ``residual_real`` and ``residual_imag`` ((Z - Z_KK)/|Z|), ``residual_max``,
    ``residual_rms``, ``ok`` (``residual_max <= threshold``), ``threshold``.
    """
    f = np.asarray(frequency_hertz, dtype="f8")
    z = np.asarray(z, dtype=complex)
    n = f.size
    omega = 2 * np.pi * f
    w = 1.0 / np.abs(z)
    tmin, tmax = 1.0 / omega.max(), 1.0 / omega.min()
    max_m = max_m or max(3, min(60, n - 3))
    zw = np.concatenate([(z * w).real, (z * w).imag])
    cache: dict[int, tuple] = {}

    def solve(m: int) -> tuple:
        if m not in cache:
            taus = np.geomspace(tmin, tmax, m)
            a = _design(omega, taus, capacitance, inductance) * w[:, None]
            coef = lstsq(
                np.vstack([a.real, a.imag]), zw, lapack_driver="gelsy", check_finite=False
            )[0]
            rk = coef[1 : 1 + m]
            pos = np.abs(rk[rk >= 0]).sum()
            mu = 1.0 - np.abs(rk[rk < 0]).sum() / pos if pos > 0 else 0.0
            cache[m] = (m, mu, coef, taus)
        return cache[m]

    if min_m is None:  # one RC element per decade at least (mu can dip at a tiny M)
        min_m = max(2, int(np.ceil(np.log10(omega.max() / omega.min()))))
    best = _choose_m(solve, c, min(max(2, int(min_m)), max_m), max_m, search)
    m, mu, coef, taus = best
    zk = _design(omega, taus, capacitance, inductance) @ coef
    res = (z - zk) / np.abs(z)
    rmax = float(max(np.abs(res.real).max(), np.abs(res.imag).max()))
    return {
        "m": int(m),
        "mu": float(mu),
        "z_kk": zk,
        "residual_real": res.real,
        "residual_imag": res.imag,
        "residual_max": rmax,
        "residual_rms": float(np.sqrt(np.mean(np.abs(res) ** 2) / 2)),
        "ok": bool(rmax <= threshold),
        "threshold": threshold,
    }


def _choose_m(solve, c: float, min_m: int, max_m: int, search: str) -> tuple:
    """The smallest M >= min_m with mu <= c: linear scan, or galloping + bisection."""
    if search == "linear":
        for m in range(min_m, max_m + 1):
            best = solve(m)
            if best[1] <= c:
                break
        return best
    lo, hi = min_m, min(2 * min_m, max_m)
    while hi < max_m and solve(hi)[1] > c:
        lo, hi = hi + 1, min(2 * hi, max_m)
    if solve(hi)[1] > c:
        return solve(hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if solve(mid)[1] <= c:
            hi = mid
        else:
            lo = mid + 1
    return solve(lo)


def linkk_impedance_py(
    frequency_hertz,
    z,
    *,
    c: float = 0.85,
    max_m: int = 50,
    fit_type: str = "complex",
    add_cap: bool = True,
):
    """impedance.py's ``validation.linKK``, made to run on numpy 2 (for comparisons).

    Returns ``(M, mu, Z_linKK, res_real, res_imag)`` as impedance.py does. Its debug
    prints are swallowed. Slow (string ``eval`` per step): use :func:`kramers_kronig`.
    """
    from impedance.validation import linKK

    f = np.asarray(frequency_hertz, dtype="f8")
    z = np.asarray(z, dtype=complex)
    with np.printoptions(legacy="1.25"), contextlib.redirect_stdout(io.StringIO()):
        return linKK(f, z, c=c, max_M=max_m, fit_type=fit_type, add_cap=add_cap)
