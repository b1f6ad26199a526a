"""Distribution of relaxation times (DRT) by Tikhonov regularisation, lambda from GCV.

Model (docs/eis-drt.md)::

    Z(w) = R_inf + j w L + 1/(Q (j w)^n) + integral gamma(ln tau) / (1 + j w tau) d ln tau
    gamma(y) = sum_k x_k exp(-(eps (y - y_k))^2),   x_k >= 0,  y = ln(tau / s)

fitted to the real and imaginary parts together, each point weighted by 1/|Z|, with the
penalty ``lambda * integral (d gamma / d ln tau)^2`` (first derivative; second on request).
The inductance and a series CPE (blocking electrode or diffusion tail, 1/(Q (j w)^n) with n
from the low-frequency slope, refined by GCV) are optional, non-negative and not penalised.
``lambda`` is chosen by (modified, rho = GCV_RHO) generalised cross-validation (GCV) on the
unconstrained ridge problem; the non-negative solution at that ``lambda`` is found by NNLS.

Peaks are local maxima of gamma; the area between the minima either side of a peak (ripples
next to it merged in) is its resistance ``r_ohm`` (Ohm), and ``share`` is that area over the
total polarisation resistance (the whole area under gamma).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg, optimize, signal

from cyclerflow.eis.spectrum import check_spectrum
from cyclerflow.errors import InputError

#: how lambda is chosen (the only method implemented)
METHOD = "gcv"
#: search range of log10(lambda) (lambda is dimensionless: data weighted by 1/|Z|,
#: gamma in units of the span of Re(Z))
LOG10_LAMBDA_RANGE = (-10.0, 1.0)
#: modified GCV: weight rho on the effective number of parameters (1 = plain GCV; rho > 1
#: counters GCV's known under-smoothing at small n; 2 chosen on synthetic RC/ZARC spectra,
#: docs/eis-drt.md)
GCV_RHO = 2.0
#: a local maximum of gamma counts as a peak when its prominence is at least this
#: fraction of the largest gamma
PEAK_PROMINENCE = 0.03
#: a listed peak counts as a resolved arc (``significant``) when its prominence is at least
#: this fraction of the largest gamma (smaller bumps are regularisation ripples at 0.5 % noise)
SIGNIFICANT_PROMINENCE = 0.1
#: a ripple within this many decades of a resolved peak is merged into it
MERGE_DECADES = 1.5
#: a peak smaller than this share of the polarisation resistance is not an arc (count_arcs)
MIN_ARC_SHARE = 0.03
#: decades the basis extends beyond the measured 1/(2 pi f) range on each side
EXTEND_DECADES = 1.0
#: Gaussian full width at half maximum, in basis spacings
FWHM_SPACINGS = 1.5
#: lowest frequencies that decide whether a series CPE is in the model
LOW_F_POINTS = 4
#: the series-CPE exponent is searched within this distance of its low-frequency slope
CPE_N_SEARCH = 0.1
#: rms relative residual above which the result carries a note
POOR_FIT_RESIDUAL = 0.05
#: points per decade of the output gamma(tau) curve
CURVE_POINTS_PER_DECADE = 50
_HERMITE = np.polynomial.hermite.hermgauss(24)  # exact to rounding for the default basis


@dataclass(frozen=True)
class DrtPeak:
    """One peak of gamma(ln tau)."""

    tau_second: float  #: relaxation time at the maximum (s)
    r_ohm: float  #: area of the peak between its neighbouring minima (Ohm)
    share: float  #: r_ohm / polarisation resistance (0..1)
    gamma_ohm: float  #: height of gamma at the maximum (Ohm per unit ln tau)
    fwhm_decades: float  #: full width at half maximum (decades of tau; nan if cut off)
    in_window: bool  #: tau lies within the measured 1/(2 pi f) range
    prominence: float  #: prominence of the maximum over the largest gamma (0..1)

    @property
    def significant(self) -> bool:
        """A resolved arc rather than a ripple: prominence >= SIGNIFICANT_PROMINENCE and
        share >= MIN_ARC_SHARE."""
        return self.prominence >= SIGNIFICANT_PROMINENCE and self.share >= MIN_ARC_SHARE

    @property
    def f_peak_hertz(self) -> float:
        """Characteristic frequency 1/(2 pi tau) (Hz)."""
        return 1.0 / (2 * math.pi * self.tau_second)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tau_second": self.tau_second,
            "f_peak_hertz": self.f_peak_hertz,
            "r_ohm": self.r_ohm,
            "share": self.share,
            "gamma_ohm": self.gamma_ohm,
            "fwhm_decades": None if not math.isfinite(self.fwhm_decades) else self.fwhm_decades,
            "in_window": self.in_window,
            "prominence": self.prominence,
            "significant": self.significant,
        }


@dataclass(frozen=True, eq=False)
class DrtResult:
    """DRT of one spectrum. Arrays: the gamma(tau) curve (tau in s, gamma in Ohm)."""

    method: str  #: how lambda was chosen: "gcv" or "fixed"
    lambda_: float  #: regularisation parameter (dimensionless, see module docstring)
    penalty: str  #: "first_derivative" or "second_derivative"
    r_inf_ohm: float  #: ohmic (high-frequency) resistance (Ohm)
    inductance_henry: float | None  #: series inductance (H); None when not in the model
    series_cpe_q: float | None  #: series CPE coefficient Q (F s^(n-1); F for n = 1) or None
    series_cpe_n: float | None  #: its exponent (from the low-frequency slope) or None
    r_polarisation_ohm: float  #: area under gamma (Ohm)
    peaks: tuple[DrtPeak, ...]
    residual_rms_relative: float  #: rms of (Z_model - Z)/|Z| over real and imaginary parts
    n_points: int
    tau_window_second: tuple[float, float]  #: 1/(2 pi f_max), 1/(2 pi f_min)
    basis_fwhm_decades: float  #: width of one Gaussian basis function (resolution limit)
    notes: tuple[str, ...]  #: warnings about this result (lambda at a bound, poor fit)
    tau_second: np.ndarray = field(repr=False)
    gamma_ohm: np.ndarray = field(repr=False)

    def to_dict(self, *, curve: bool = False) -> dict[str, Any]:
        """JSON-ready dict (DESIGN.md ``drt``); ``curve=True`` adds tau_second/gamma_ohm lists."""
        out: dict[str, Any] = {
            "method": self.method,
            "lambda": self.lambda_,
            "basis": "gaussian_rbf_log_tau",
            "gcv_rho": GCV_RHO if self.method == METHOD else None,
            "penalty": self.penalty,
            "r_inf_ohm": self.r_inf_ohm,
            "inductance_henry": self.inductance_henry,
            "series_cpe_q": self.series_cpe_q,
            "series_cpe_n": self.series_cpe_n,
            "r_polarisation_ohm": self.r_polarisation_ohm,
            "n_arcs": count_arcs(self),
            "peaks": [p.to_dict() for p in self.peaks],
            "residual_rms_relative": self.residual_rms_relative,
            "n_points": self.n_points,
            "tau_window_second": list(self.tau_window_second),
            "basis_fwhm_decades": self.basis_fwhm_decades,
            "notes": list(self.notes),
        }
        if curve:
            out["tau_second"] = self.tau_second.tolist()
            out["gamma_ohm"] = self.gamma_ohm.tolist()
        return out


@dataclass(frozen=True, eq=False)
class _Basis:
    centres: np.ndarray  #: ln(tau_k / s)
    eps: float  #: Gaussian shape: exp(-(eps * dy)^2)


@dataclass(frozen=True, eq=False)
class _Problem:
    """Weighted least-squares system: a (n x p) @ x ~ b, first ``n_free`` columns unpenalised."""

    a: np.ndarray
    b: np.ndarray
    root: np.ndarray  #: (p1 x p1) upper Cholesky factor of the penalty on the gamma block
    n_free: int
    scale_ohm: float
    terms: tuple[str, ...]  #: names of the unpenalised columns
    norms: np.ndarray  #: norms the unpenalised columns were divided by


def _basis(f: np.ndarray, points_per_decade: float | None) -> _Basis:
    lo = math.log10(1 / (2 * math.pi * f.max())) - EXTEND_DECADES
    hi = math.log10(1 / (2 * math.pi * f.min())) + EXTEND_DECADES
    if points_per_decade is None:
        data_ppd = (f.size - 1) / max(math.log10(f.max() / f.min()), 1e-9)
        points_per_decade = min(max(data_ppd, 6.0), 12.0)
    n = max(int(math.ceil((hi - lo) * points_per_decade)) + 1, 4)
    centres = np.linspace(lo, hi, n) * math.log(10)
    spacing = centres[1] - centres[0]
    return _Basis(centres, 2 * math.sqrt(math.log(2)) / (FWHM_SPACINGS * spacing))


def _kernels(omega: np.ndarray, basis: _Basis) -> tuple[np.ndarray, np.ndarray]:
    """(A_re, A_im) with A[m, k] = integral phi_k(y) K(omega_m e^y) dy, Gauss-Hermite quadrature."""
    s, w = _HERMITE
    v = np.log(omega)[:, None, None] + basis.centres[None, :, None] + (s / basis.eps)[None, None, :]
    wt = w / basis.eps
    a_re = (0.5 * (1.0 - np.tanh(v))) @ wt
    a_im = -(0.5 / np.cosh(np.clip(v, -700, 700))) @ wt
    return a_re, a_im


def _penalty(basis: _Basis, order: int) -> np.ndarray:
    """Exact integral of (d^order gamma / dy^order)^2 for the Gaussian basis (p x p)."""
    d = basis.centres[:, None] - basis.centres[None, :]
    s = basis.eps**2 / 2
    g = math.sqrt(math.pi / 2) / basis.eps * np.exp(-s * d**2)
    if order == 1:
        return (2 * s - 4 * s**2 * d**2) * g
    return (12 * s**2 - 48 * s**3 * d**2 + 16 * s**4 * d**4) * g


def _free_columns(omega: np.ndarray, inductance: bool, cpe_n: float | None):
    cols_re, cols_im, names = [np.ones_like(omega)], [np.zeros_like(omega)], ["r_inf"]
    if inductance:
        cols_re.append(np.zeros_like(omega))
        cols_im.append(omega * 1e-6)  # unknown: L in microhenry
        names.append("inductance")
    if cpe_n is not None:
        mag = omega**-cpe_n  # unknown: 1/Q
        cols_re.append(math.cos(cpe_n * math.pi / 2) * mag)
        cols_im.append(-math.sin(cpe_n * math.pi / 2) * mag)
        names.append("inverse_q")
    return np.column_stack(cols_re), np.column_stack(cols_im), tuple(names)


@dataclass(frozen=True, eq=False)
class _Design:
    """What does not change when the extra terms change: kernels, weights, penalty root."""

    omega: np.ndarray  #: rad/s
    z: np.ndarray  #: Ohm
    weight: np.ndarray  #: 1/|Z|
    k_re: np.ndarray
    k_im: np.ndarray
    root: np.ndarray
    scale_ohm: float  #: unit of the unknowns (span of Re Z)


def _design(f: np.ndarray, z: np.ndarray, basis: _Basis, order: int) -> _Design:
    omega = 2 * math.pi * f
    k_re, k_im = _kernels(omega, basis)
    m = _penalty(basis, order)
    m += np.eye(m.shape[0]) * 1e-10 * np.trace(m) / m.shape[0]
    root = linalg.cholesky(m, lower=False)
    scale = max(float(np.ptp(z.real)), 1e-3 * float(np.abs(z).max()))
    return _Design(omega, z, 1.0 / np.abs(z), k_re, k_im, root, scale)


def _problem(d: _Design, *, inductance: bool, cpe_n: float | None) -> _Problem:
    f_re, f_im, names = _free_columns(d.omega, inductance, cpe_n)
    w = d.weight[:, None]
    a = np.vstack([np.hstack([f_re, d.k_re]) * w, np.hstack([f_im, d.k_im]) * w])
    # free columns to unit norm so NNLS sees comparable columns (undone in _unpack)
    norms = np.linalg.norm(a[:, : len(names)], axis=0)
    a[:, : len(names)] /= norms
    b = np.concatenate([d.z.real * d.weight, d.z.imag * d.weight]) / d.scale_ohm
    return _Problem(a, b, d.root, len(names), d.scale_ohm, names, norms)


def _refine_cpe_n(d: _Design, inductance: bool, n0: float) -> float:
    """Series-CPE exponent minimising the GCV minimum, within +-CPE_N_SEARCH of ``n0``."""
    grid = np.linspace(*LOG10_LAMBDA_RANGE, 45)

    def score(n: float) -> float:
        prob = _problem(d, inductance=inductance, cpe_n=n)
        return float(_gcv_curve(prob)(grid).min())

    lo, hi = max(0.4, n0 - CPE_N_SEARCH), min(1.0, n0 + CPE_N_SEARCH)
    res = optimize.minimize_scalar(
        score, bounds=(lo, hi), method="bounded", options={"xatol": 2e-3}
    )
    return float(res.x) if res.success and res.fun <= score(n0) else n0


def _gcv_curve(prob: _Problem):
    """Vectorised GCV(lambda) of the unconstrained ridge problem; returns a callable."""
    a0, a1 = prob.a[:, : prob.n_free], prob.a[:, prob.n_free :]
    q0, _ = np.linalg.qr(a0)
    bproj = a1 - q0 @ (q0.T @ a1)
    cproj = prob.b - q0 @ (q0.T @ prob.b)
    atil = linalg.solve_triangular(prob.root, bproj.T, trans="T", lower=False).T
    u, sv, _ = np.linalg.svd(atil, full_matrices=False)
    beta = u.T @ cproj
    outside = max(float(cproj @ cproj - beta @ beta), 0.0)
    n = prob.b.size
    s2 = sv**2

    def gcv(log10_lam: np.ndarray) -> np.ndarray:
        lam = 10.0 ** np.atleast_1d(log10_lam)[:, None]
        filt = s2 / (s2 + lam)
        resid = (((1 - filt) * beta) ** 2).sum(axis=1) + outside
        dof = n - GCV_RHO * (prob.n_free + filt.sum(axis=1))
        return n * resid / np.maximum(dof, 1e-12) ** 2

    return gcv


def gcv_lambda(prob: _Problem) -> float:
    """lambda minimising GCV: a grid over LOG10_LAMBDA_RANGE, then a bounded 1-D search."""
    gcv = _gcv_curve(prob)
    grid = np.linspace(*LOG10_LAMBDA_RANGE, 45)
    vals = gcv(grid)
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(
        lambda x: float(gcv(x)[0]), bounds=(lo, hi), method="bounded", options={"xatol": 1e-3}
    )
    best = float(res.x) if res.success and res.fun <= vals[i] else float(grid[i])
    return 10.0**best


def _solve(prob: _Problem, lam: float) -> np.ndarray:
    """Non-negative Tikhonov solution (all unknowns >= 0) by NNLS on the stacked system."""
    p1 = prob.root.shape[0]
    reg = np.hstack([np.zeros((p1, prob.n_free)), math.sqrt(lam) * prob.root])
    big_a = np.vstack([prob.a, reg])
    big_b = np.concatenate([prob.b, np.zeros(p1)])
    x, _ = optimize.nnls(big_a, big_b, maxiter=50 * big_a.shape[1])
    return x


def _low_frequency_exponent(f: np.ndarray, z: np.ndarray) -> float | None:
    """n of a series CPE when the low-frequency end is still rising (blocking spike or
    diffusion tail): -Im(Z) grows over the lowest LOW_F_POINTS frequencies and the slope of
    log(-Im Z) against log f is steeper than -0.5 (n = -slope, at most 1). Else None."""
    i = np.argsort(f)[:LOW_F_POINTS]
    mim = -z[i].imag
    if np.any(mim <= 0) or not np.all(np.diff(mim) < 0):
        return None
    n = -float(np.polyfit(np.log(f[i]), np.log(mim), 1)[0])
    return min(n, 1.0) if n >= 0.5 else None


def _unpack(prob: _Problem, x: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """(free terms in SI units, gamma coefficients in Ohm) from the scaled solution."""
    free = x[: prob.n_free] / prob.norms * prob.scale_ohm
    vals = dict(zip(prob.terms, free.tolist(), strict=True))
    out = {"r_inf_ohm": vals["r_inf"]}
    out["inductance_henry"] = vals["inductance"] * 1e-6 if "inductance" in vals else None
    inv_q = vals.get("inverse_q")
    out["series_cpe_q"] = 1.0 / inv_q if inv_q is not None and inv_q > 0 else None
    return out, x[prob.n_free :] * prob.scale_ohm


def _curve(basis: _Basis, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """gamma(y) on a fine grid in y = ln tau (CURVE_POINTS_PER_DECADE)."""
    lo, hi = basis.centres[0] - 3 / basis.eps, basis.centres[-1] + 3 / basis.eps
    n = int(math.ceil((hi - lo) / math.log(10) * CURVE_POINTS_PER_DECADE)) + 1
    y = np.linspace(lo, hi, n)
    phi = np.exp(-((basis.eps * (y[:, None] - basis.centres[None, :])) ** 2))
    return y, phi @ coef


def _half_width(y: np.ndarray, g: np.ndarray, i: int, lo: int, hi: int) -> float:
    """FWHM (in y units) of the peak at i, searching within [lo, hi]; nan if cut off."""
    half = g[i] / 2
    left = np.flatnonzero(g[lo : i + 1] < half)
    right = np.flatnonzero(g[i : hi + 1] < half)
    if left.size == 0 or right.size == 0:
        return math.nan
    a = lo + int(left[-1])
    b = i + int(right[0])
    ya = y[a] + (half - g[a]) * (y[a + 1] - y[a]) / (g[a + 1] - g[a])
    yb = y[b - 1] + (half - g[b - 1]) * (y[b] - y[b - 1]) / (g[b] - g[b - 1])
    return float(yb - ya)


def _peak_position(y: np.ndarray, g: np.ndarray, i: int) -> float:
    """Parabolic refinement of a grid maximum (y units)."""
    den = g[i - 1] - 2 * g[i] + g[i + 1]
    off = 0.5 * (g[i - 1] - g[i + 1]) / den if den < 0 else 0.0
    return float(y[i] + np.clip(off, -0.5, 0.5) * (y[1] - y[0]))


def _owners(y_peaks: np.ndarray, prom: np.ndarray) -> np.ndarray:
    """Index of the peak each candidate's area goes to: a ripple (prominence below
    SIGNIFICANT_PROMINENCE) joins the nearest resolved peak within MERGE_DECADES."""
    owner = np.arange(y_peaks.size)
    strong = np.flatnonzero(prom >= SIGNIFICANT_PROMINENCE)
    if strong.size == 0:
        return owner
    for k in np.flatnonzero(prom < SIGNIFICANT_PROMINENCE):
        dist = np.abs(y_peaks[strong] - y_peaks[k]) / math.log(10)
        if dist.min() <= MERGE_DECADES:
            owner[k] = strong[int(np.argmin(dist))]
    return owner


def _candidates(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(maxima indices, prominences relative to max gamma, valley indices around them)."""
    gmax = float(g.max())
    idx, props = signal.find_peaks(g, prominence=PEAK_PROMINENCE * gmax)
    prom = props["prominences"] / gmax
    if idx.size == 0:
        idx, prom = np.array([int(np.argmax(g))]), np.array([1.0])
    pairs = zip(idx[:-1], idx[1:], strict=True)
    valleys = [0] + [int(a + np.argmin(g[a : b + 1])) for a, b in pairs] + [g.size - 1]
    return idx, prom, valleys


def find_drt_peaks(
    y: np.ndarray, g: np.ndarray, window: tuple[float, float]
) -> tuple[tuple[DrtPeak, ...], float]:
    """Peaks of gamma(y) (y = ln tau/s, gamma in Ohm) split at the minima between them;
    ripples next to a resolved peak are merged into it (see :func:`_owners`).

    Returns (peaks sorted by tau, polarisation resistance = total area in Ohm).
    """
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(y))])
    total = float(cum[-1])
    if not np.any(g > 0) or total <= 0:
        return (), max(total, 0.0)
    idx, prom, valleys = _candidates(g)
    owner = _owners(y[idx], prom)
    peaks = []
    for k in np.unique(owner):
        members = np.flatnonzero(owner == k)
        lo, hi = valleys[members.min()], valleys[members.max() + 1]
        i = int(idx[k])
        tau = math.exp(_peak_position(y, g, i)) if 0 < i < g.size - 1 else math.exp(y[i])
        area = float(cum[hi] - cum[lo])
        peaks.append(
            DrtPeak(
                tau_second=tau,
                r_ohm=area,
                share=area / total,
                gamma_ohm=float(g[i]),
                fwhm_decades=_half_width(y, g, i, lo, hi) / math.log(10),
                in_window=window[0] <= tau <= window[1],
                prominence=float(prom[k]),
            )
        )
    return tuple(peaks), total


def _notes(by_gcv: bool, lam: float, rms: float) -> tuple[str, ...]:
    notes = []
    lo, hi = LOG10_LAMBDA_RANGE
    if by_gcv and lam <= 10**lo * 1.001:
        notes.append(
            "GCV lambda at the lower end of its search range: little smoothing "
            "(low noise, or a dominant series CPE); small peaks may be ripples"
        )
    if by_gcv and lam >= 10**hi / 1.001:
        notes.append("GCV lambda at the upper end of its range: gamma is oversmoothed")
    if rms > POOR_FIT_RESIDUAL:
        notes.append(
            f"residual {100 * rms:.1f} % of |Z|: the spectrum is not a non-negative DRT "
            "(Kramers-Kronig violation, drift, noise or an inductive loop?)"
        )
    return tuple(notes)


def _check_options(lam: float | None, penalty_order: int) -> None:
    if lam is not None and not (math.isfinite(lam) and lam > 0):
        raise InputError(f"lambda must be a finite number > 0, got {lam!r}")
    if penalty_order not in (1, 2):
        raise InputError(f"penalty order must be 1 or 2, got {penalty_order!r}")


def compute_drt(
    frequency_hertz: Sequence[float] | np.ndarray,
    z: Sequence[complex] | np.ndarray,
    *,
    lam: float | None = None,
    inductance: bool = True,
    series_cpe: bool | None = None,
    penalty_order: int = 1,
    points_per_decade: float | None = None,
    path: object | None = None,
    where: str | None = None,
) -> DrtResult:
    """DRT of one spectrum (frequencies in Hz, complex Z in Ohm, Im negative = capacitive).

    ``lam``: fixed regularisation parameter; default None chooses it by GCV.
    ``inductance``: include a series L >= 0. ``series_cpe``: include a series CPE for a
    blocking electrode or diffusion tail; None decides from the low-frequency end (see
    :func:`_low_frequency_exponent`; n is then refined by GCV), True forces it, False
    leaves it out. Raises :class:`InputError` for a spectrum that cannot be analysed.
    """
    _check_options(lam, penalty_order)
    f, zc, _ = check_spectrum(frequency_hertz, z, path=path, where=where)
    cpe_n = _low_frequency_exponent(f, zc)
    if series_cpe is True and cpe_n is None:
        cpe_n = 1.0
    elif series_cpe is False:
        cpe_n = None
    basis = _basis(f, points_per_decade)
    design = _design(f, zc, basis, penalty_order)
    if cpe_n is not None:
        cpe_n = _refine_cpe_n(design, inductance, cpe_n)
    prob = _problem(design, inductance=inductance, cpe_n=cpe_n)
    chosen = gcv_lambda(prob) if lam is None else float(lam)
    x = _solve(prob, chosen)
    return drt_result(
        prob,
        x,
        basis,
        f,
        method=METHOD if lam is None else "fixed",
        lam=chosen,
        penalty_order=penalty_order,
        cpe_n=cpe_n,
        notes=lambda rms: _notes(lam is None, chosen, rms),
    )


def drt_result(
    prob: _Problem,
    x: np.ndarray,
    basis: _Basis,
    f: np.ndarray,
    *,
    method: str,
    lam: float,
    penalty_order: int = 1,
    cpe_n: float | None,
    notes=None,
) -> DrtResult:
    """The :class:`DrtResult` of a solved problem (``x``: its unknowns) on frequencies
    ``f`` (Hz): the series terms, the gamma curve, its peaks and the residual. ``notes``:
    None or a function of the rms relative residual giving the result's notes. One
    constructor for the full DRT and the quick one (:mod:`cyclerflow.eis.drt_start`)."""
    rms = float(np.sqrt(np.mean((prob.a @ x - prob.b) ** 2))) * prob.scale_ohm
    terms, coef = _unpack(prob, x)
    y, g = _curve(basis, coef)
    window = (float(1 / (2 * math.pi * f.max())), float(1 / (2 * math.pi * f.min())))
    peaks, total = find_drt_peaks(y, g, window)
    return DrtResult(
        method=method,
        lambda_=lam,
        penalty="first_derivative" if penalty_order == 1 else "second_derivative",
        r_inf_ohm=terms["r_inf_ohm"],
        inductance_henry=terms["inductance_henry"],
        series_cpe_q=terms["series_cpe_q"],
        series_cpe_n=cpe_n if terms["series_cpe_q"] is not None else None,
        r_polarisation_ohm=total,
        peaks=peaks,
        residual_rms_relative=rms,
        n_points=int(f.size),
        tau_window_second=window,
        basis_fwhm_decades=2 * math.sqrt(math.log(2)) / basis.eps / math.log(10),
        notes=notes(rms) if notes is not None else (),
        tau_second=np.exp(y),
        gamma_ohm=g,
    )


def count_arcs(
    result: DrtResult, *, min_share: float = MIN_ARC_SHARE, in_window_only: bool = True
) -> int:
    """Number of DRT peaks that count as arcs: share >= ``min_share`` and (by default)
    tau inside the measured window. A second opinion on how many arcs a spectrum has."""
    return sum(
        1 for p in result.peaks if p.share >= min_share and (p.in_window or not in_window_only)
    )


@dataclass(frozen=True)
class ArcGuess:
    """Starting values for one R||CPE element from a DRT peak."""

    r_ohm: float  #: peak area (Ohm)
    tau_second: float  #: peak relaxation time (s)
    n: float  #: CPE exponent from the peak width (ZARC shape), 0.5..1
    q: float  #: CPE coefficient tau^n / R (F s^(n-1))

    @property
    def c_farad(self) -> float:
        """Effective capacitance tau / R (F)."""
        return self.tau_second / self.r_ohm


@dataclass(frozen=True)
class DrtGuess:
    """Starting point for a circuit fit: R_inf and one ArcGuess per arc, by increasing tau."""

    r_inf_ohm: float
    arcs: tuple[ArcGuess, ...]
    series_cpe_q: float | None  #: series (blocking / diffusion) CPE Q, if in the DRT model
    series_cpe_n: float | None  #: its exponent


def _zarc_fwhm_decades(n: float) -> float:
    """FWHM (decades) of the DRT of an ideal ZARC R/(1 + (j w tau)^n)."""
    c = math.cos((1 - n) * math.pi)
    return 2 * math.acosh(2 - c) / n / math.log(10)


def _n_from_width(fwhm_decades: float, basis_fwhm_decades: float) -> float:
    if not math.isfinite(fwhm_decades):
        return 0.8
    w = math.sqrt(max(fwhm_decades**2 - basis_fwhm_decades**2, 0.0))
    lo, hi = 0.5, 0.999
    if w <= _zarc_fwhm_decades(hi):
        return 1.0
    if w >= _zarc_fwhm_decades(lo):
        return lo
    return float(optimize.brentq(lambda n: _zarc_fwhm_decades(n) - w, lo, hi, xtol=1e-4))


def drt_initial_guess(result: DrtResult, n_arcs: int | None = None) -> DrtGuess:
    """Starting values for a circuit fit from a DRT (docs/eis-drt.md).

    Uses the peaks that :func:`count_arcs` counts; with ``n_arcs`` the largest ``n_arcs``
    peaks (by area, any window position) instead. CPE exponents come from the peak widths
    (ZARC shape after removing the basis width), so they are biased low for narrow peaks.
    """
    if n_arcs is None:
        chosen = [p for p in result.peaks if p.share >= MIN_ARC_SHARE and p.in_window]
    else:
        chosen = sorted(result.peaks, key=lambda p: p.r_ohm, reverse=True)[: max(n_arcs, 0)]
    arcs = []
    for p in sorted(chosen, key=lambda p: p.tau_second):
        n = _n_from_width(p.fwhm_decades, result.basis_fwhm_decades)
        arcs.append(ArcGuess(p.r_ohm, p.tau_second, n, p.tau_second**n / p.r_ohm))
    return DrtGuess(result.r_inf_ohm, tuple(arcs), result.series_cpe_q, result.series_cpe_n)


def _block_values(cap, arc: ArcGuess) -> list[float] | None:
    if cap is None:
        return None
    if cap.kind == "CPE":
        return [arc.q, arc.n]
    return [arc.c_farad]


def _series_values(el, result: DrtResult, scale: float, r_done: bool) -> list[float] | None:
    """Start values for a top-level series element, or None when the DRT says nothing."""
    if el.kind == "R" and not r_done:
        return [max(result.r_inf_ohm, 1e-6 * scale)]
    if el.kind == "L":
        return [max(result.inductance_henry or 0.0, 1e-12)]
    if el.kind in ("CPE", "C") and result.series_cpe_q is not None:
        n = result.series_cpe_n or 1.0
        return [result.series_cpe_q, n] if el.kind == "CPE" else [result.series_cpe_q]
    return None


def drt_start_parameters(result: DrtResult, circuit: Any) -> dict[str, float] | None:
    """Starting values {parameter name: value} for a circuit fit, from the DRT.

    ``circuit``: an impedance.py circuit string or a parsed ``Circuit``. Top-level
    ``p(R, C|CPE)`` blocks take the DRT arcs in order of increasing tau (the usual
    high-to-low-frequency order of a circuit string); the first series R takes R_inf,
    an L the inductance, a series C/CPE the DRT's series CPE. Returns None when the DRT
    cannot seed every parameter (fewer arcs than blocks, elements it has no value for):
    the caller then keeps its own guesses. Pass the result as ``initial=`` to
    :func:`cyclerflow.eis.fit_spectrum`.
    """
    from cyclerflow.eis.circuits import Parallel, arcs, parse_circuit

    circ = parse_circuit(circuit) if isinstance(circuit, str) else circuit
    blocks = arcs(circ)
    guess = drt_initial_guess(result)
    if len(guess.arcs) != len(blocks):
        guess = drt_initial_guess(result, n_arcs=len(blocks))
    if len(guess.arcs) < len(blocks):
        return None
    values: dict[str, list[float] | None] = {}
    for (_, res, cap), arc in zip(blocks, guess.arcs, strict=True):
        if res is None:
            return None
        values[res.name] = [arc.r_ohm]
        values[cap.name if cap else "?"] = _block_values(cap, arc)
    r_done = False
    for item in circ.top_level():
        if not isinstance(item, Parallel):
            values[item.name] = _series_values(item, result, result.r_polarisation_ohm, r_done)
            r_done = r_done or item.kind == "R"
    flat: dict[str, float] = {}
    for el in circ.elements:
        vals = values.get(el.name)
        if vals is None or len(vals) != el.n_params:
            return None
        names = [el.name] if el.n_params == 1 else [f"{el.name}_{k}" for k in range(el.n_params)]
        flat.update(zip(names, (float(v) for v in vals), strict=True))
    return flat


def drt_for_spectra(spectra: Sequence[Any]) -> list[dict[str, Any]]:
    """The ``eis.drt`` list of ``analyze --json``: one entry per spectrum (xarray Datasets
    as stored), ``spectrum_id`` plus :meth:`DrtResult.to_dict`, or ``error`` when the
    spectrum cannot be analysed (never raises for one bad spectrum)."""
    out = []
    for i, ds in enumerate(spectra):
        sid = int(ds.attrs.get("spectrum_id", i + 1))
        f = np.asarray(ds["frequency_hertz"].values, dtype="f8")
        z = np.asarray(ds["real_impedance_ohm"].values, "f8") + 1j * np.asarray(
            ds["imaginary_impedance_ohm"].values, "f8"
        )
        try:
            out.append({"spectrum_id": sid, **compute_drt(f, z).to_dict()})
        except InputError as err:
            out.append({"spectrum_id": sid, "error": err.bare_message})
    return out
