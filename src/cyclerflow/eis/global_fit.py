"""Global fit of a temperature series: one circuit, shared CPE exponents, one chi-square.

:func:`global_fit` fits all spectra of a series at once. Every parameter is per
temperature except the exponents of the arcs' CPEs (and Zarc gammas), which are shared
across temperatures (and, with ``share_q=True``, the CPE Q values too), as published
analyses of temperature series do (the arc's shape does not change with temperature,
its resistance does). One weighted least-squares problem: residuals of every spectrum
stacked (modulus weighting by default), log-space positive parameters, the analytic
Jacobian of each spectrum placed in its own columns plus the shared ones. The reduced
chi-square is the modulus-weighted one of :mod:`cyclerflow.eis.fitter`, over all points.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from cyclerflow.eis.circuits import EXPONENT_BOUNDS, Circuit, parse_circuit
from cyclerflow.eis.fitter import weights
from cyclerflow.eis.result import SpectrumFit
from cyclerflow.eis.spectrum import check_spectrum
from cyclerflow.errors import InputError

_LO, _HI = EXPONENT_BOUNDS


@dataclass(frozen=True)
class GlobalFit:
    """Per-temperature parameters and the shared ones, with standard errors.

    ``params``/``stderr``: one {name: value} per spectrum (shared names repeated);
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
    """Parameters shared across temperatures: exponents (and CPE Q with ``share_q``)."""
    out = [n for n, e in zip(circuit.param_names, circuit.exponent_mask, strict=True) if e]
    if share_q:
        out += [f"{e.name}_0" for e in circuit.elements if e.kind == "CPE"]
    return out


@dataclass(frozen=True)
class _Layout:
    """Where each spectrum's parameters live in the global vector x."""

    n_p: int
    local: np.ndarray  # indices of per-spectrum parameters within one spectrum
    shared: np.ndarray  # indices of shared parameters within one spectrum
    n_spec: int
    log_mask: np.ndarray  # per-spectrum: fitted in log space

    def spectrum_x(self, k: int) -> np.ndarray:
        """Indices into x of spectrum k's parameters, in circuit order."""
        idx = np.empty(self.n_p, int)
        idx[self.local] = k * self.local.size + np.arange(self.local.size)
        idx[self.shared] = self.n_spec * self.local.size + np.arange(self.shared.size)
        return idx


def _data(spectra):
    """(f, z, weights) per spectrum: checked, inductive top points left out."""
    out = []
    for i, (f, z) in enumerate(spectra):
        f, z, _ = check_spectrum(f, z, where=f"spectrum {i + 1} of the series")
        k = int(np.argmax(z.imag < 0)) if np.any(z.imag < 0) else 0
        out.append((f[k:], z[k:]))
    return out


def global_fit(
    temperatures_kelvin,
    spectra: list[tuple[np.ndarray, np.ndarray]],
    circuit: str,
    starts: list,
    *,
    share_q: bool = False,
    weighting: str = "modulus",
    max_iter: int = 100,
) -> GlobalFit:
    """Fit ``circuit`` to every (frequency Hz, Z Ohm) spectrum at once, sharing the CPE
    exponents (and Q with ``share_q``). ``starts``: one parameter vector per spectrum
    (e.g. the single fits'); the shared values start at their median."""
    t0 = time.perf_counter()
    comp = parse_circuit(circuit)
    if len(starts) != len(spectra) or len(spectra) != len(temperatures_kelvin):
        raise InputError("a global fit needs one start and one temperature per spectrum")
    if len(spectra) < 2:
        raise InputError("a global fit needs at least two spectra")
    data = _data(spectra)
    names = list(comp.param_names)
    sh = np.array([names.index(n) for n in shared_names(comp, share_q)], int)
    loc = np.array([i for i in range(comp.n_params) if i not in set(sh)], int)
    lay = _Layout(comp.n_params, loc, sh, len(spectra), ~comp.exponent_mask)
    p0 = np.array([np.asarray(s, "f8") for s in starts])
    problem = _Problem(comp, lay, data, weighting)
    sol = levenberg_marquardt(problem, _pack(p0, lay), max_iter=max_iter)
    return _result(comp, lay, problem, sol, temperatures_kelvin, time.perf_counter() - t0)


@dataclass(frozen=True)
class _Solution:
    x: np.ndarray
    normal: np.ndarray  # J^T J at x
    cost: float  # 0.5 * sum of squared weighted residuals
    converged: bool
    n_iter: int


def levenberg_marquardt(problem, x0: np.ndarray, *, max_iter: int = 100) -> _Solution:
    """Levenberg-Marquardt on the normal equations, which the block structure of the
    series keeps small (J^T J is assembled from each spectrum's own block and solved as a
    dense matrix of the parameter count); Marquardt's diagonal scaling."""
    x = np.asarray(x0, dtype="f8")
    a, g, cost = problem.normal_equations(x)
    lam, converged, it = 1e-3, False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        d = np.clip(np.diag(a), 1e-12, None)
        accepted = False
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
                accepted = True
                break
            lam *= 10
        if not accepted:
            converged = True  # no downhill step left: at the minimum to working precision
            break
        small = cost - c_new <= 1e-8 * cost or np.max(np.abs(step)) < 1e-8
        x, lam = x + step, max(lam / 10, 1e-12)
        a, g, cost = problem.normal_equations(x)
        if small:
            converged = True
            break
    return _Solution(x, a, cost, converged, it)


def _to_p(v: np.ndarray, log_mask: np.ndarray) -> np.ndarray:
    """x -> parameters: exp for positive ones, a logistic map into the exponent bounds."""
    with np.errstate(over="ignore"):
        return np.where(log_mask, np.exp(v), _LO + (_HI - _LO) / (1 + np.exp(-v)))


def _dp_dx(p: np.ndarray, log_mask: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(log_mask, p, (p - _LO) * (_HI - p) / (_HI - _LO))


def _to_x(p: np.ndarray, log_mask: np.ndarray) -> np.ndarray:
    q = np.clip((p - _LO) / (_HI - _LO), 1e-6, 1 - 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(log_mask, np.log(np.maximum(p, 1e-300)), np.log(q / (1 - q)))


def _pack(p0: np.ndarray, lay: _Layout) -> np.ndarray:
    """Start vector x (log space for positive parameters, logit for exponents)."""
    n_x = lay.n_spec * lay.local.size + lay.shared.size
    x0 = np.zeros(n_x)
    shared_start = np.median(p0[:, lay.shared], axis=0) if lay.shared.size else np.array([])
    for k in range(lay.n_spec):
        p = p0[k].copy()
        p[lay.shared] = shared_start
        x0[lay.spectrum_x(k)] = _to_x(p, lay.log_mask)
    return x0


class _Problem:
    """Stacked residuals and Jacobian of every spectrum (cached per x)."""

    def __init__(self, comp: Circuit, lay: _Layout, data, weighting: str):
        self.comp, self.lay = comp, lay
        self.omega = [2 * np.pi * f for f, _ in data]
        self.ljw = [np.log(w) + 0.5j * np.pi for w in self.omega]
        self.z = [z for _, z in data]
        self.w = [weights(z, weighting) for z in self.z]
        self.n_res = [2 * z.size for z in self.z]
        self.idx = [lay.spectrum_x(k) for k in range(lay.n_spec)]

    def params(self, x: np.ndarray, k: int) -> np.ndarray:
        return _to_p(x[self.idx[k]], self.lay.log_mask)

    def _model(self, x: np.ndarray, k: int, jac: bool):
        p = self.params(x, k)
        if not jac:
            w = self.omega[k]
            return p, self.comp.impedance(p, w / (2 * np.pi)), None
        zm, dz = self.comp.impedance_and_jacobian(p, self.omega[k], self.ljw[k])
        return p, zm, dz

    def residuals(self, x: np.ndarray) -> np.ndarray:
        rows = []
        for k in range(self.lay.n_spec):
            _, zm, _ = self._model(x, k, False)
            wr, wi = self.w[k]
            d = zm - self.z[k]
            rows.append(np.concatenate([d.real * wr, d.imag * wi]))
        r = np.concatenate(rows)
        return np.where(np.isfinite(r), r, 1e10)

    def normal_equations(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(J^T J, J^T r, 0.5 r^T r), assembled spectrum by spectrum."""
        a, g, ssr = np.zeros((x.size, x.size)), np.zeros(x.size), 0.0
        for k in range(self.lay.n_spec):
            p, zm, dz = self._model(x, k, True)
            wr, wi = self.w[k]
            d = zm - self.z[k]
            r = np.concatenate([d.real * wr, d.imag * wi])
            dx = dz * _dp_dx(p, self.lay.log_mask)[:, None]
            jb = np.concatenate([dx.real * wr, dx.imag * wi], axis=1).T
            ok = np.isfinite(r)
            r, jb = np.where(ok, r, 1e10), np.where(np.isfinite(jb), jb, 0.0)
            idx = self.idx[k]
            a[np.ix_(idx, idx)] += jb.T @ jb
            g[idx] += jb.T @ r
            ssr += float(r @ r)
        return a, g, 0.5 * ssr

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        jac, off = np.zeros((sum(self.n_res), x.size)), 0
        for k in range(self.lay.n_spec):
            p, _, dz = self._model(x, k, True)
            wr, wi = self.w[k]
            dx = dz * _dp_dx(p, self.lay.log_mask)[:, None]
            n = self.n_res[k]
            jac[off : off + n, self.idx[k]] = np.concatenate([dx.real * wr, dx.imag * wi], axis=1).T
            off += n
        return np.where(np.isfinite(jac), jac, 0.0)

    def chi2(self, x) -> float:
        """Modulus-weighted reduced chi-square over every point."""
        ssr = sum(
            float(
                np.sum(
                    np.abs(self.comp.impedance(self.params(x, k), self.omega[k] / (2 * np.pi)) - z)
                    ** 2
                    / np.abs(z) ** 2
                )
            )
            for k, z in enumerate(self.z)
        )
        return ssr / max(sum(self.n_res) - x.size, 1)


def _result(comp, lay, problem: _Problem, sol: _Solution, temps, seconds) -> GlobalFit:
    x = sol.x
    dof = max(sum(problem.n_res) - x.size, 1)
    cov = np.linalg.pinv(sol.normal) * (2 * sol.cost / dof)
    sx = np.sqrt(np.clip(np.diag(cov), 0, None))
    names = comp.param_names
    params, stderr = [], []
    for k in range(lay.n_spec):
        p = problem.params(x, k)
        se = sx[lay.spectrum_x(k)] * _dp_dx(p, lay.log_mask)
        params.append(dict(zip(names, map(float, p), strict=True)))
        stderr.append(dict(zip(names, map(float, se), strict=True)))
    shared = {names[i]: params[0][names[i]] for i in lay.shared}
    shared_se = {names[i]: stderr[0][names[i]] for i in lay.shared}
    return GlobalFit(
        comp.string,
        tuple(float(t) for t in temps),
        tuple(params),
        tuple(stderr),
        shared,
        shared_se,
        problem.chi2(x),
        sol.converged,
        sol.n_iter,
        float(seconds),
    )


def global_block(
    items, fits: list, geo, convention: str, *, share_q: bool = False, weighting: str = "modulus"
) -> dict:
    """The ``global_fit`` object of ``analyze_spectra``: the series fitted at once with
    the circuit most single fits used, starting from them (spectra fitted otherwise start
    from an Arrhenius-scaled neighbour); per-temperature resistances and Arrhenius fits."""
    from cyclerflow.eis.series import trend

    temps = [info["temperature_kelvin"] for _, _, info in items]
    keep = [k for k, r in enumerate(fits) if isinstance(r, SpectrumFit) and np.isfinite(temps[k])]
    full = [k for k in keep if fits[k].circuit and fits[k].method in ("fit", "fixed_capacitance")]
    if len(keep) < 2 or not full:
        return {"note": "a global fit needs two or more fitted spectra at known temperatures"}
    circuit = Counter(fits[k].circuit for k in full).most_common(1)[0][0]
    refs = [k for k in full if fits[k].circuit == circuit]
    tr = trend(temps, fits)
    starts, roles = [], []
    for k in keep:
        j = k if k in refs else min(refs, key=lambda m: abs(temps[m] - temps[k]))
        starts.append(_start_from(fits[j], temps[j], temps[k], tr))
        roles.append(fits[j].roles)
    g = global_fit(
        [temps[k] for k in keep],
        [(items[k][0], items[k][1]) for k in keep],
        circuit,
        starts,
        share_q=share_q,
        weighting=weighting,
    )
    rows = [
        _global_row(temps[k], p, se, rl)
        for k, p, se, rl in zip(keep, g.params, g.stderr, roles, strict=True)
    ]
    out = {**g.to_dict(), "share_q": share_q, "per_temperature": rows}
    out["arrhenius"] = _global_arrhenius(rows, "r_bulk_ohm", geo, convention)
    if any(r["r_grain_boundary_ohm"] is not None for r in rows):
        out["arrhenius_total"] = _global_arrhenius(rows, "r_total_ohm", geo, convention)
    return out


def _start_from(ref, t_ref: float, t: float, tr) -> np.ndarray:
    from cyclerflow.eis.series import _scaled_start

    return _scaled_start(ref, t_ref, t, tr)


def _global_row(t: float, p: dict, se: dict, roles: dict) -> dict:
    def get(role):
        el = roles.get(role)
        return (p.get(el), se.get(el)) if el in p else (None, None)

    rb, sb = get("bulk")
    rg, sg = get("grain_boundary")
    ri, _ = get("interface")
    return {
        "temperature_kelvin": t,
        "r_bulk_ohm": rb,
        "r_bulk_stderr_ohm": sb,
        "r_grain_boundary_ohm": rg,
        "r_grain_boundary_stderr_ohm": sg,
        "r_total_ohm": rb + rg if rb is not None and rg is not None else None,
        "r_interface_ohm": ri,
        "params": p,
    }


def _global_arrhenius(rows: list[dict], key: str, geo, convention: str) -> dict | None:
    """Arrhenius of the global resistances; points weighted by their standard errors when
    bulk (a point whose relative error is over 20 % is left out)."""
    from cyclerflow.eis.summary import arrhenius_block

    pts = []
    for r in rows:
        v = r[key]
        se = r["r_bulk_stderr_ohm"] if key == "r_bulk_ohm" else None
        if v is None or not v > 0 or (se is not None and not se < 0.2 * v):
            continue
        pts.append((r["temperature_kelvin"], v, se / v if se else np.nan))
    block, _ = arrhenius_block(pts, geo, convention, ("global",))
    return block
