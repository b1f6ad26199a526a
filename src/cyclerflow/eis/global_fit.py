"""Global fit of a temperature series: one circuit, shared arc parameters, one chi-square.

:func:`global_fit` fits all spectra of a series at once. Every parameter is per
temperature except the ``shared`` ones, which take one value across temperatures. A
shared name is a parameter name of the circuit (``CPE1_1``, an exponent; ``CPE1_0``, a
Q) or ``<CPE>_C``, the effective capacitance C = (R^(1-n) Q)^(1/n) (F) of an R||CPE arc:
such an arc is then fitted as (R, C, n) with Q = C^n R^(n-1), so that sharing C keeps
the arc's capacitance (geometric, temperature-independent for bulk and grain boundary)
while its resistance and exponent move. Which names to share is decided by
:mod:`cyclerflow.eis.global_series`; the default here (``shared=None``) is the CPE
exponents (and Q with ``share_q``).

One weighted least-squares problem: residuals of every spectrum stacked (modulus
weighting by default), positive parameters in log space, exponents through a logistic
map into the exponent bounds, the analytic Jacobian of each spectrum placed in its own
columns plus the shared ones. The reduced chi-square is the modulus-weighted one of
:mod:`cyclerflow.eis.fitter`, over all points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cyclerflow.eis.circuits import EXPONENT_BOUNDS, Circuit, arcs, parse_circuit
from cyclerflow.eis.fitter import weights
from cyclerflow.eis.lm import Solution, levenberg_marquardt
from cyclerflow.eis.spectrum import check_spectrum
from cyclerflow.errors import InputError

_LO, _HI = EXPONENT_BOUNDS
#: suffix of an arc's effective-capacitance name (``CPE1_C``)
CAPACITANCE_SUFFIX = "_C"


@dataclass(frozen=True)
class GlobalFit:
    """Per-temperature parameters and the shared ones, with standard errors.

    ``params``/``stderr``: one {name: value} per spectrum (circuit parameters, plus
    ``<CPE>_C`` in F for arcs fitted by capacitance; shared names repeated);
    ``shared``: {name: value}; ``chi2``: modulus-weighted reduced chi-square of all
    points; ``seconds``: wall time of the fit.
    """

    circuit: str
    temperatures_kelvin: tuple[float, ...]
    params: tuple[dict, ...]
    stderr: tuple[dict, ...]
    shared: dict
    shared_stderr: dict
    chi2: float
    success: bool
    nfev: int
    seconds: float
    n_residuals: int = 0  #: real and imaginary residuals over all spectra

    def to_dict(self) -> dict:
        return {
            "circuit": self.circuit,
            "shared": dict(self.shared),
            "shared_stderr": dict(self.shared_stderr),
            "chi2": self.chi2,
            "success": self.success,
            "iterations": self.nfev,
            "seconds": self.seconds,
        }


def shared_names(circuit: Circuit, share_q: bool = False) -> list[str]:
    """Exponents (and CPE Q with ``share_q``): the plain sharing of published fits."""
    out = [n for n, e in zip(circuit.param_names, circuit.exponent_mask, strict=True) if e]
    if share_q:
        out += [f"{e.name}_0" for e in circuit.elements if e.kind == "CPE"]
    return out


def capacitance_arcs(circuit: Circuit) -> dict[str, tuple[int, int, int]]:
    """{``<CPE>_C``: (index of R, of Q, of n)} for every top-level R||CPE arc."""
    out = {}
    for _, r, c in arcs(circuit):
        if r is not None and c is not None and c.kind == "CPE":
            out[c.name + CAPACITANCE_SUFFIX] = (r.index, c.index, c.index + 1)
    return out


@dataclass(frozen=True)
class _Map:
    """Per-spectrum vector x (log / logit) -> circuit parameters p, and dp/dx.

    ``carcs``: (R, Q, n) indices of arcs whose Q slot holds ln C instead of ln Q."""

    log_mask: np.ndarray
    carcs: tuple[tuple[int, int, int], ...]

    def natural(self, x: np.ndarray) -> np.ndarray:
        """x -> u: exp for positive parameters (C in the Q slot of a capacitance arc)."""
        with np.errstate(over="ignore"):
            return np.where(self.log_mask, np.exp(x), _LO + (_HI - _LO) / (1 + np.exp(-x)))

    def params(self, x: np.ndarray) -> np.ndarray:
        p = self.natural(x)
        for r, q, n in self.carcs:
            with np.errstate(over="ignore", invalid="ignore"):
                p[q] = np.exp(p[n] * x[q] + (p[n] - 1) * x[r])  # Q = C^n R^(n-1)
        return p

    def to_x(self, p: np.ndarray) -> np.ndarray:
        u = np.array(p, dtype="f8")
        for r, q, n in self.carcs:
            u[q] = (u[r] ** (1 - u[n]) * u[q]) ** (1 / u[n])
        k = np.clip((u - _LO) / (_HI - _LO), 1e-6, 1 - 1e-6)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.log_mask, np.log(np.maximum(u, 1e-300)), np.log(k / (1 - k)))

    def dp_dx(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Matrix M[i, j] = dp_i / dx_j of one spectrum."""
        u = self.natural(x)
        with np.errstate(over="ignore", invalid="ignore"):
            diag = np.where(self.log_mask, u, (u - _LO) * (_HI - u) / (_HI - _LO))
        m = np.diag(diag)
        for r, q, n in self.carcs:
            m[q, q] = p[q] * p[n]
            m[q, r] = p[q] * (p[n] - 1)
            m[q, n] = p[q] * (x[q] + x[r]) * diag[n]  # d ln Q / d n = ln(R C)
        return np.where(np.isfinite(m), m, 0.0)


@dataclass(frozen=True)
class _Layout:
    """Where each spectrum's parameters live in the global vector x."""

    n_p: int
    local: np.ndarray  # indices of per-spectrum parameters within one spectrum
    shared: np.ndarray  # indices of shared parameters within one spectrum
    n_spec: int

    def spectrum_x(self, k: int) -> np.ndarray:
        """Indices into x of spectrum k's parameters, in circuit order."""
        idx = np.empty(self.n_p, int)
        idx[self.local] = k * self.local.size + np.arange(self.local.size)
        idx[self.shared] = self.n_spec * self.local.size + np.arange(self.shared.size)
        return idx


def _data(spectra):
    """(f, z) per spectrum: checked, inductive top points left out."""
    out = []
    for i, (f, z) in enumerate(spectra):
        f, z, _ = check_spectrum(f, z, where=f"spectrum {i + 1} of the series")
        k = int(np.argmax(z.imag < 0)) if np.any(z.imag < 0) else 0
        out.append((f[k:], z[k:]))
    return out


def _slots(comp: Circuit, shared: list[str]) -> tuple[np.ndarray, tuple]:
    """(indices of the shared slots, capacitance arcs) for the shared names."""
    caps = capacitance_arcs(comp)
    names = list(comp.param_names)
    idx, carcs = [], []
    for s in shared:
        if s in caps:
            carcs.append(caps[s])
            idx.append(caps[s][1])
        elif s in names:
            idx.append(names.index(s))
        else:
            known = ", ".join([*names, *caps])
            raise InputError(f"shared parameter {s!r} is not in circuit {comp.string!r} ({known})")
    if len(set(idx)) != len(idx):
        raise InputError("a Q and the capacitance of the same arc cannot both be shared")
    return np.array(idx, int), tuple(carcs)


def global_fit(
    temperatures_kelvin,
    spectra: list[tuple[np.ndarray, np.ndarray]],
    circuit: str,
    starts: list,
    *,
    shared: list[str] | None = None,
    share_q: bool = False,
    weighting: str = "modulus",
    max_iter: int = 100,
) -> GlobalFit:
    """Fit ``circuit`` to every (frequency Hz, Z Ohm) spectrum at once, with the
    ``shared`` names (default: the CPE exponents, and Q with ``share_q``) taking one
    value across the series. ``starts``: one parameter vector per spectrum (e.g. the
    single fits'); the shared values start at their median."""
    t0 = time.perf_counter()
    comp = parse_circuit(circuit)
    if len(starts) != len(spectra) or len(spectra) != len(temperatures_kelvin):
        raise InputError("a global fit needs one start and one temperature per spectrum")
    if len(spectra) < 2:
        raise InputError("a global fit needs at least two spectra")
    names = shared_names(comp, share_q) if shared is None else list(shared)
    sh, carcs = _slots(comp, names)
    loc = np.array([i for i in range(comp.n_params) if i not in set(sh)], int)
    lay = _Layout(comp.n_params, loc, sh, len(spectra))
    pmap = _Map(~comp.exponent_mask, carcs)
    problem = _Problem(comp, lay, pmap, _data(spectra), weighting)
    x0 = _pack(np.array([np.asarray(s, "f8") for s in starts]), lay, pmap)
    sol = levenberg_marquardt(problem, x0, max_iter=max_iter)
    return _result(comp, names, problem, sol, temperatures_kelvin, time.perf_counter() - t0)


def _pack(p0: np.ndarray, lay: _Layout, pmap: _Map) -> np.ndarray:
    """Start vector x; each shared slot starts at the median of the starts' values."""
    xs = np.array([pmap.to_x(p) for p in p0])
    x0 = np.zeros(lay.n_spec * lay.local.size + lay.shared.size)
    for k in range(lay.n_spec):
        x0[lay.spectrum_x(k)] = xs[k]
    if lay.shared.size:
        x0[lay.n_spec * lay.local.size :] = np.median(xs[:, lay.shared], axis=0)
    return x0


class _Problem:
    """Stacked residuals and the normal equations of every spectrum."""

    def __init__(self, comp: Circuit, lay: _Layout, pmap: _Map, data, weighting: str):
        self.comp, self.lay, self.map = comp, lay, pmap
        self.f = [f for f, _ in data]
        self.omega = [2 * np.pi * f for f, _ in data]
        self.ljw = [np.log(w) + 0.5j * np.pi for w in self.omega]
        self.z = [z for _, z in data]
        self.w = [weights(z, weighting) for z in self.z]
        self.n_res = [2 * z.size for z in self.z]
        self.idx = [lay.spectrum_x(k) for k in range(lay.n_spec)]

    def params(self, x: np.ndarray, k: int) -> np.ndarray:
        return self.map.params(x[self.idx[k]])

    def _residual(self, k: int, zm: np.ndarray) -> np.ndarray:
        wr, wi = self.w[k]
        d = zm - self.z[k]
        return np.concatenate([d.real * wr, d.imag * wi])

    def residuals(self, x: np.ndarray) -> np.ndarray:
        r = np.concatenate(
            [
                self._residual(k, self.comp.impedance(self.params(x, k), self.f[k]))
                for k in range(self.lay.n_spec)
            ]
        )
        return np.where(np.isfinite(r), r, 1e10)

    def normal_equations(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(J^T J, J^T r, 0.5 r^T r), assembled spectrum by spectrum."""
        a, g, ssr = np.zeros((x.size, x.size)), np.zeros(x.size), 0.0
        for k in range(self.lay.n_spec):
            xk = x[self.idx[k]]
            p = self.map.params(xk)
            zm, dz = self.comp.impedance_and_jacobian(p, self.omega[k], self.ljw[k])
            r = self._residual(k, zm)
            dx = self.map.dp_dx(xk, p).T @ dz
            wr, wi = self.w[k]
            jb = np.concatenate([dx.real * wr, dx.imag * wi], axis=1).T
            r, jb = np.where(np.isfinite(r), r, 1e10), np.where(np.isfinite(jb), jb, 0.0)
            idx = self.idx[k]
            a[np.ix_(idx, idx)] += jb.T @ jb
            g[idx] += jb.T @ r
            ssr += float(r @ r)
        return a, g, 0.5 * ssr

    def chi2(self, x) -> float:
        """Modulus-weighted reduced chi-square over every point."""
        ssr = 0.0
        for k, z in enumerate(self.z):
            zm = self.comp.impedance(self.params(x, k), self.f[k])
            ssr += float(np.sum(np.abs(zm - z) ** 2 / np.abs(z) ** 2))
        return ssr / max(sum(self.n_res) - x.size, 1)


def _spectrum_values(problem: _Problem, names, x, cov, k) -> tuple[dict, dict]:
    """({name: value}, {name: stderr}) of spectrum k, capacitances of C-arcs included."""
    idx = problem.idx[k]
    xk = x[idx]
    p = problem.map.params(xk)
    m = problem.map.dp_dx(xk, p)
    ck = cov[np.ix_(idx, idx)]
    se = np.sqrt(np.clip(np.diag(m @ ck @ m.T), 0, None))
    vals = dict(zip(names, map(float, p), strict=True))
    errs = dict(zip(names, map(float, se), strict=True))
    caps = {v[1]: n for n, v in capacitance_arcs(problem.comp).items()}
    for _, q, _ in problem.map.carcs:
        c = float(np.exp(xk[q]))
        vals[caps[q]], errs[caps[q]] = c, c * float(np.sqrt(max(ck[q, q], 0.0)))
    return vals, errs


def _result(comp, shared, problem: _Problem, sol: Solution, temps, seconds) -> GlobalFit:
    x = sol.x
    dof = max(sum(problem.n_res) - x.size, 1)
    cov = np.linalg.pinv(sol.normal) * (2 * sol.cost / dof)
    pairs = [_spectrum_values(problem, comp.param_names, x, cov, k) for k in range(len(temps))]
    params, stderr = tuple(p for p, _ in pairs), tuple(s for _, s in pairs)
    return GlobalFit(
        comp.string,
        tuple(float(t) for t in temps),
        params,
        stderr,
        {n: params[0][n] for n in shared},
        {n: stderr[0][n] for n in shared},
        problem.chi2(x),
        sol.converged,
        sol.n_iter,
        float(seconds),
        int(sum(problem.n_res)),
    )
