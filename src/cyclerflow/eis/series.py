"""A temperature series analysed as a series.

After every spectrum is fitted on its own (:func:`cyclerflow.eis.analysis.fit_many`),
:func:`refine_series` makes the series consistent, in three named steps:

1. :func:`refit_inconsistent`: a point whose roles differ from its neighbours', or whose
   bulk or total resistance breaks the fall with temperature by more than its error, is
   re-fitted from its neighbour's parameters scaled along the Arrhenius trend (each arc's
   R by the trend of its role, its CPE Q so that the arc keeps its capacitance). The
   re-fit is kept when it has the neighbour's roles and a chi-square no worse than 1.5x.
2. :func:`fix_bulk_capacitance`: where the bulk arc leaves the window, R_bulk is found
   with the bulk arc's capacitance and exponent fixed from the nearest colder resolved
   fits (profile over R_bulk, the rest of the circuit fitted at each step); its
   uncertainty combines the profile's curvature and the spread of those capacitances.
3. :func:`flag_role_changes`: a point whose roles still differ from a neighbour's gets
   ``roles_differ_from_neighbours`` and the reason.

It applies to spectra at three or more distinct known temperatures (one per temperature).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import theilslopes

from cyclerflow.eis.circuits import arcs
from cyclerflow.eis.fit import fit_fixed_bulk, fit_spectrum, prepare
from cyclerflow.eis.fitter import fit_circuit
from cyclerflow.eis.kk import KK_THRESHOLD
from cyclerflow.eis.models import MODELS, resolve_model
from cyclerflow.eis.result import BulkEstimate, SpectrumFit
from cyclerflow.errors import InputError

#: a re-fit is kept when its chi2 is at most this times the original's
REFIT_CHI2 = 1.5
#: colder resolved fits the bulk capacitance is taken from
N_COLDER = 3
#: smallest relative spread assumed for the bulk capacitance taken from colder fits
MIN_C_SPREAD = 0.01


@dataclass(frozen=True)
class Trend:
    """ln R = a + b / T per role (Theil-Sen over the fits where the role is determined)."""

    slopes: dict

    def ratio(self, role: str, t_from: float, t_to: float) -> float:
        b = self.slopes.get(role, self.slopes.get("bulk"))
        return 1.0 if b is None else float(math.exp(b * (1 / t_to - 1 / t_from)))


def refine_series(items, fits: list, kw: dict) -> list:
    """The three steps above on fits sorted by temperature (``items``: (f, z, info))."""
    temps = [info["temperature_kelvin"] for _, _, info in items]
    known = [t for t in temps if np.isfinite(t)]
    if (
        len(known) < 3
        or len(known) != len(temps)
        or len({round(t, 1) for t in known}) != len(temps)
    ):
        return fits
    fits = refit_inconsistent(items, list(fits), kw)
    fits = fix_bulk_capacitance(items, fits, kw)
    return flag_role_changes(temps, fits)


def _ok(r) -> bool:
    return isinstance(r, SpectrumFit) and r.fit_ok


def signature(r) -> tuple:
    """The roles of a fit's arcs, high to low frequency."""
    if not isinstance(r, SpectrumFit) or r.role_evidence is None:
        return ()
    arcs_ = sorted(r.role_evidence.arcs, key=lambda a: -np.nan_to_num(a.f_peak_hertz, nan=-1))
    return tuple(a.role or "?" for a in arcs_)


def trend(temps: list[float], fits: list) -> Trend:
    """Per-role Arrhenius slopes of the arc resistances (resolved fits only)."""
    pts: dict[str, list] = {}
    for t, r in zip(temps, fits, strict=True):
        if not _ok(r) or r.role_evidence is None:
            continue
        for a in r.role_evidence.arcs:
            if a.role and a.determined and a.resistance_ohm > 0:
                pts.setdefault(a.role, []).append((1 / t, math.log(a.resistance_ohm)))
    slopes = {}
    for role, p in pts.items():
        if len({x for x, _ in p}) >= 2:
            x, y = np.array(p).T
            slopes[role] = float(theilslopes(y, x)[0])
    return Trend(slopes)


def _suspects(temps, fits) -> dict[int, str]:
    """{index: reason} of points breaking monotonicity or differing in roles."""
    out: dict[int, str] = {}
    sigs = [signature(r) for r in fits]
    for i, s in enumerate(sigs):
        nbs = [sigs[j] for j in (i - 1, i + 1) if 0 <= j < len(fits) and sigs[j]]
        if s and nbs and all(s != nb for nb in nbs):
            out[i] = f"roles {'/'.join(s)} differ from the neighbours' {'/'.join(nbs[0])}"
    for key in ("r_bulk_ohm", "total"):
        for i in _non_monotonic(temps, fits, key):
            out.setdefault(i, f"{key.replace('_ohm', '')} resistance rises with temperature")
    for i, r in enumerate(fits):
        if isinstance(r, SpectrumFit) and not r.fit_ok and "kk_failed" not in r.flags:
            out.setdefault(i, "the fit on its own is not ok")
    return out


def _resistance(r, key: str):
    if not _ok(r):
        return None, None
    if key == "total":
        if r.r_bulk_ohm is None or r.r_grain_boundary_ohm is None:
            return None, None
        return r.r_bulk_ohm + r.r_grain_boundary_ohm, r.r_grain_boundary_stderr_ohm or 0.0
    return r.r_bulk_ohm, r.r_bulk_stderr_ohm or 0.0


def _non_monotonic(temps, fits, key: str) -> list[int]:
    """Points of a rising pair (beyond 2 standard errors) farther from the trend."""
    vals = [(i, *_resistance(r, key)) for i, r in enumerate(fits)]
    vals = [(i, v, s) for i, v, s in vals if v is not None and v > 0]
    if len(vals) < 3:
        return []
    x = np.array([1 / temps[i] for i, _, _ in vals])
    y = np.log([v for _, v, _ in vals])
    slope, icpt = theilslopes(y, x)[:2]
    resid = np.abs(y - (icpt + slope * x))
    bad = []
    for k in range(1, len(vals)):
        (_, v0, s0), (_, v1, s1) = vals[k - 1], vals[k]
        if v1 > v0 + 2 * math.hypot(s0, s1):
            bad.append(vals[k if resid[k] >= resid[k - 1] else k - 1][0])
    return bad


def _scaled_start(nb: SpectrumFit, t_nb: float, t: float, tr: Trend) -> np.ndarray:
    """The neighbour's parameters with each arc moved along its role's trend."""
    comp = resolve_model(nb.circuit).compiled
    p = np.array([nb.params[n] for n in comp.param_names])
    for _, res, cap in arcs(comp):
        if res is None:
            continue
        role = nb.role_evidence.role_of(res.name) if nb.role_evidence else None
        k = tr.ratio(role or "bulk", t_nb, t)
        p[res.index] *= k
        if cap is not None and cap.kind == "CPE":
            p[cap.index] *= k ** (p[cap.index + 1] - 1)  # keeps C = (R^(1-n) Q)^(1/n)
        elif cap is not None:
            p[cap.index] *= 1.0
    return p


def _model_of(fit: SpectrumFit) -> str:
    """The ready-model name of a fit (its roles), else its circuit string."""
    return fit.model if fit.model in MODELS else fit.circuit


def _neighbour(i: int, fits: list, bad: dict) -> int | None:
    """Nearest consistent, resolved neighbour of point i (colder first on a tie)."""
    for d in range(1, len(fits)):
        for j in (i - d, i + d):
            r = fits[j] if 0 <= j < len(fits) else None
            if j not in bad and _ok(r) and r.method == "fit" and r.circuit:
                return j
    return None


def refit_inconsistent(items, fits: list, kw: dict) -> list:
    """Step 1: re-fit suspects from their neighbours' Arrhenius-scaled parameters."""
    temps = [info["temperature_kelvin"] for _, _, info in items]
    bad = _suspects(temps, fits)
    if not bad:
        return fits
    tr = trend(temps, fits)
    for i, why in sorted(bad.items()):
        j = _neighbour(i, fits, bad)
        old = fits[i]
        if j is None or not isinstance(old, SpectrumFit):
            continue
        nb = fits[j]
        f, z, info = items[i]
        start = _scaled_start(nb, temps[j], temps[i], tr)
        try:
            new = fit_spectrum(
                f, z, _model_of(nb), initial=start, where=f"spectrum {info['spectrum_id']}", **kw
            )
        except InputError:
            continue
        better = old.chi2 is None or new.chi2 <= REFIT_CHI2 * old.chi2 or not old.fit_ok
        if signature(new) == signature(nb) and new.fit_ok and better:
            fits[i] = new.with_note(
                f"re-fitted from the {temps[j]:.1f} K neighbour's parameters scaled along the "
                f"Arrhenius trend ({why})",
                "refit_from_neighbours",
            )
    return fits


def _colder_bulk(i: int, temps, fits) -> list[int]:
    """Indices of up to N_COLDER nearest colder fits with a resolved bulk arc."""
    out = [
        j
        for j in range(i - 1, -1, -1)
        if temps[j] < temps[i]
        and _ok(fits[j])
        and fits[j].method == "fit"
        and fits[j].bulk_resolved
        and fits[j].circuit
        and fits[j].role_evidence is not None
    ]
    return out[:N_COLDER]


def fix_bulk_capacitance(items, fits: list, kw: dict) -> list:
    """Step 2: unresolved bulk arcs get R_bulk with C_bulk fixed from colder fits."""
    temps = [info["temperature_kelvin"] for _, _, info in items]
    tr = trend(temps, fits)
    for i, r in enumerate(fits):
        if not isinstance(r, SpectrumFit) or r.bulk_resolved or r.method == "fit":
            continue
        colder = _colder_bulk(i, temps, fits)
        if not colder:
            continue
        f, z, info = items[i]
        try:
            new = _fixed_capacitance_fit(f, z, temps[i], temps, fits, colder, tr, kw, info)
        except (InputError, ValueError, FloatingPointError):
            new = None
        if new is not None and new.fit_ok:
            fits[i] = new
    return fits


def _bulk_arc(fit: SpectrumFit):
    """(circuit, R element, CPE element) of a fit's bulk arc, or None."""
    comp = resolve_model(fit.circuit).compiled
    bulk = fit.roles.get("bulk")
    for _, res, cap in arcs(comp):
        if res is not None and res.name == bulk and cap is not None and cap.kind == "CPE":
            return comp, res, cap
    return None


def _fixed_capacitance_fit(f, z, t, temps, fits, idx, tr, kw, info) -> SpectrumFit | None:
    colder = [fits[j] for j in idx]
    ref = colder[0]
    found = _bulk_arc(ref)
    if found is None:
        return None
    comp, res_el, cap = found
    caps = [a.capacitance_farad for c in colder for a in c.role_evidence.arcs if a.role == "bulk"]
    ns = [c.params.get(f"{cap.name}_1") for c in colder if c.circuit == ref.circuit]
    c_b, n_b = float(np.median(caps)), float(np.median([n for n in ns if n]))
    spread = max(float(np.std(np.log(caps))) if len(caps) > 1 else 0.0, MIN_C_SPREAD)
    prep = prepare(f, z, drop_inductive=True, kk_threshold=KK_THRESHOLD, where=None)
    start = _scaled_start(ref, temps[idx[0]], t, tr)
    prof = _Profile(comp, res_el.index, cap.index, prep.fu, prep.zu, kw.get("weighting", "modulus"))
    r_b, se_stat, p_opt = prof.solve(c_b, n_b, start)
    r_hi = prof.solve(c_b * (1 + spread), n_b, p_opt)[0]
    r_lo = prof.solve(c_b * (1 - spread), n_b, p_opt)[0]
    se = float(math.hypot(se_stat, abs(r_hi - r_lo) / 2))
    f_b = 1.0 / (2 * math.pi * r_b * c_b)
    q_b = c_b**n_b * r_b ** (n_b - 1)
    note = (
        f"bulk arc above the window: R_bulk {r_b:.4g} +- {se:.2g} Ohm fitted with the bulk "
        f"capacitance {c_b:.3g} F and exponent {n_b:.3f} fixed from {len(colder)} colder "
        "resolved fit(s)"
    )
    est = BulkEstimate(
        r_b,
        se,
        "fixed_capacitance",
        False,
        f_b,
        ("bulk_arc_above_window", "bulk_capacitance_fixed"),
        (note,),
    )
    fixed = {res_el.name: r_b, f"{cap.name}_0": q_b, f"{cap.name}_1": n_b}
    return fit_fixed_bulk(
        f,
        z,
        _model_of(ref),
        p_opt,
        fixed,
        est,
        weighting=kw.get("weighting", "modulus"),
        context=kw.get("context"),
        where=f"spectrum {info['spectrum_id']}",
    )


@dataclass
class _Profile:
    """Cost of the best fit with the bulk arc fixed at (R, C, n), as a function of R."""

    comp: object
    i_r: int
    i_q: int
    f: np.ndarray
    z: np.ndarray
    weighting: str

    def _fit(self, r: float, c: float, n: float, p0: np.ndarray):
        p = np.array(p0, dtype="f8")
        p[self.i_r], p[self.i_q], p[self.i_q + 1] = r, c**n * r ** (n - 1), n
        mask = np.zeros(p.size, bool)
        mask[[self.i_r, self.i_q, self.i_q + 1]] = True
        return fit_circuit(
            self.comp, self.f, self.z, p, weighting=self.weighting, fixed=mask, max_nfev=100
        )

    def solve(self, c: float, n: float, p0: np.ndarray) -> tuple[float, float, np.ndarray]:
        """(R_bulk, its standard error from the profile's curvature, parameters)."""
        state = {"p": np.array(p0, dtype="f8")}

        def cost(u: float) -> float:
            res = self._fit(math.exp(u), c, n, state["p"])
            if res.success:
                state["p"] = res.params
            return res.cost

        u0 = math.log(p0[self.i_r])
        sol = minimize_scalar(
            cost, bounds=(u0 - 2.5, u0 + 2.5), method="bounded", options={"xatol": 1e-4}
        )
        u = float(sol.x)
        best = self._fit(math.exp(u), c, n, state["p"])
        h = 0.02
        cp, cm = cost(u + h), cost(u - h)
        curv = (cp + cm - 2 * best.cost) / h**2
        dof = max(2 * self.f.size - (self.comp.n_params - 3) - 1, 1)
        se_u = math.sqrt(2 * best.cost / dof / curv) if curv > 0 else math.inf
        return math.exp(u), math.exp(u) * se_u, best.params


def flag_role_changes(temps, fits: list) -> list:
    """Step 3: flag a point whose roles differ from a neighbour's, with the reason."""
    sigs = [signature(r) for r in fits]
    out = list(fits)
    for i, r in enumerate(fits):
        if not isinstance(r, SpectrumFit) or not sigs[i]:
            continue
        diff = [j for j in (i - 1, i + 1) if 0 <= j < len(fits) and sigs[j] and sigs[j] != sigs[i]]
        if not diff:
            continue
        j = diff[0]
        out[i] = r.with_note(
            f"roles {'/'.join(sigs[i])} differ from the {temps[j]:.1f} K neighbour's "
            f"{'/'.join(sigs[j])}: {_why(r, sigs[i], sigs[j])}",
            "roles_differ_from_neighbours",
        )
    return out


def _why(r: SpectrumFit, mine: tuple, theirs: tuple) -> str:
    if "bulk_arc_above_window" in r.flags:
        return "the bulk arc lies above the measured window here"
    if "grain_boundary" in theirs and "grain_boundary" not in mine:
        return "the grain-boundary arc is not inside the measured window here"
    if len(mine) < len(theirs):
        return f"only {len(mine)} arc(s) resolved here"
    return "a re-fit from the neighbours' parameters did not reproduce their roles"
