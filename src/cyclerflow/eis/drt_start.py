"""A cheap DRT for every circuit fit: start values and a second opinion on the arc count.

The full DRT (:func:`cyclerflow.eis.drt.compute_drt`, ``cyclerflow drt``) chooses lambda
by GCV, refines the series-CPE exponent by a 1-D search and uses 6-12 basis functions
per decade: 5-15 ms per spectrum. That is as long as a circuit fit, too much to run
before every fit. This one keeps the model (Gaussian basis in ln tau, Tikhonov on the
first derivative, non-negative, R_inf + L + series CPE) and cuts the cost:

* **4 basis functions per decade** (resolution ~0.4 decade: enough to place an arc);
* **kernels and penalty cached per frequency grid** (a series, or a batch from one
  instrument, shares its grid: the Gauss-Hermite quadrature runs once);
* **a fixed lambda**, :data:`QUICK_LAMBDA` (dimensionless: gamma in units of the span of
  Re Z, points weighted by 1/|Z|), chosen from GCV's choices on the test and benchmark
  spectra (docs/eis-drt.md);
* the series-CPE exponent from the low-frequency slope, not refined.

Its peaks seed every ``p(R, CPE)`` block of a circuit (:func:`drt_start`), and
:func:`quick_arc_count` is the second opinion on how many arcs the spectrum holds.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from cyclerflow.eis import drt as _drt
from cyclerflow.eis.circuits import Circuit, arcs

#: basis functions per decade of tau
QUICK_POINTS_PER_DECADE = 4.0
#: fixed regularisation parameter (dimensionless, see the module docstring)
QUICK_LAMBDA = 1e-6
#: grids cached (kernels + penalty root each, a few 10 kB)
CACHE_GRIDS = 64


@lru_cache(maxsize=CACHE_GRIDS)
def _grid(f_bytes: bytes) -> tuple[_drt._Basis, np.ndarray, np.ndarray, np.ndarray]:
    """(basis, real kernel, imaginary kernel, penalty root) of a frequency grid (Hz)."""
    f = np.frombuffer(f_bytes, dtype="f8")
    basis = _drt._basis(f, QUICK_POINTS_PER_DECADE)
    k_re, k_im = _drt._kernels(2 * math.pi * f, basis)
    m = _drt._penalty(basis, 1)
    m += np.eye(m.shape[0]) * 1e-10 * np.trace(m) / m.shape[0]
    root = np.linalg.cholesky(m).T
    return basis, k_re, k_im, root


def quick_drt(f: np.ndarray, z: np.ndarray) -> _drt.DrtResult:
    """DRT of a checked spectrum (Hz, complex Ohm, same length, > 10 points) at the
    fixed lambda. Same result type as the full DRT, ``method`` = ``"quick"``."""
    f = np.ascontiguousarray(f, dtype="f8")
    basis, k_re, k_im, root = _grid(f.tobytes())
    scale = max(float(np.ptp(z.real)), 1e-3 * float(np.abs(z).max()))
    design = _drt._Design(2 * math.pi * f, z, 1.0 / np.abs(z), k_re, k_im, root, scale)
    cpe_n = _drt._low_frequency_exponent(f, z)
    prob = _drt._problem(design, inductance=True, cpe_n=cpe_n)
    x = _drt._solve(prob, QUICK_LAMBDA)
    return _drt.drt_result(prob, x, basis, f, method="quick", lam=QUICK_LAMBDA, cpe_n=cpe_n)


def quick_arc_count(res: _drt.DrtResult) -> int:
    """Significant DRT peaks inside the window: the second opinion on the arc count."""
    return sum(1 for p in res.peaks if p.significant and p.in_window)


def drt_start(res: _drt.DrtResult, circuit: Circuit, base: np.ndarray) -> np.ndarray | None:
    """``base`` (a start vector of ``circuit``, the data-derived guess) with every arc's
    resistance and time constant taken from the DRT peaks, or None when the DRT has
    fewer peaks than the circuit has ``p(R, C|CPE)`` blocks.

    Only R and tau come from the DRT: they are what it measures well. Its exponents
    (from the peak widths) are biased low at the quick DRT's resolution, and its R_inf
    is ~0 whenever an arc reaches above the window, so the CPE exponents, the series
    elements and the lead keep ``base``'s values; each Q is set to tau^n / R so that the
    arc peaks where the DRT says. Blocks take the peaks in order of increasing tau
    (the usual high-to-low-frequency order of a circuit string).
    """
    blocks = [(r, c) for _, r, c in arcs(circuit) if r is not None and c is not None]
    if not blocks:
        return None
    guess = _drt.drt_initial_guess(res)
    if len(guess.arcs) != len(blocks):
        guess = _drt.drt_initial_guess(res, n_arcs=len(blocks))
    if len(guess.arcs) < len(blocks):
        return None
    vec = np.array(base, dtype="f8")
    for (r_el, c_el), arc in zip(blocks, guess.arcs, strict=True):
        vec[r_el.index] = arc.r_ohm
        if c_el.kind == "CPE":
            n = float(vec[c_el.index + 1])
            vec[c_el.index] = arc.tau_second**n / arc.r_ohm
        else:
            vec[c_el.index] = arc.tau_second / arc.r_ohm
    if not (np.all(np.isfinite(vec)) and np.all(vec[~circuit.exponent_mask] > 0)):
        return None
    return vec
