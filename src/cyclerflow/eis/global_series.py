"""The ``global_fit`` block of ``analyze_spectra``: what to share, decided by the data.

Sharing a parameter across temperatures is an assumption about the sample. An arc whose
shape does not change with temperature has one effective capacitance C (geometric for
bulk and grain boundary) and one exponent n; but the exponent of an arc made of many
grain boundaries with a spread of activation energies narrows as the temperature rises
(on the published pellet series the grain-boundary n goes 0.79 -> 0.89 over 140-200 °C
at a constant C = 1.75e-11 F), and forcing one n on it moves the bulk / grain-boundary
split: that gave a global bulk Ea of 0.81 eV against 0.58 eV from the single fits.

So nothing is shared on faith (:func:`choose_shared`). The series is first fitted with
every parameter per temperature (the "free" fit, which reproduces the single fits); then
each candidate group (an R||CPE arc's C and n; a series CPE's n) is shared alone and
kept when an F-test cannot tell the shared fit from the free one (p >= SHARE_P). The
kept groups are shared together in the reported fit, and ``sharing`` lists every test.
``share="q"`` shares the CPE exponents and Q values instead, without tests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_dist

from cyclerflow.eis.circuits import Circuit, parse_circuit
from cyclerflow.eis.global_fit import GlobalFit, capacitance_arcs, global_fit, shared_names
from cyclerflow.eis.result import SpectrumFit

#: a group is shared when the F-test of sharing it against the free fit gives p >= this
SHARE_P = 0.01


@dataclass(frozen=True)
class ShareTest:
    """F-test of one shared group against the free fit (chi2 modulus-weighted, reduced)."""

    names: tuple[str, ...]
    chi2: float
    f_statistic: float
    p_value: float
    shared: bool

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "chi2": self.chi2,
            "f_statistic": self.f_statistic,
            "p_value": self.p_value,
            "shared": self.shared,
        }


def candidate_groups(comp: Circuit) -> list[tuple[str, ...]]:
    """Each R||CPE arc's (C, n) and each other exponent (a series CPE's n) on its own."""
    groups, used = [], set()
    for cap_name, (_, _, n) in capacitance_arcs(comp).items():
        groups.append((cap_name, comp.param_names[n]))
        used.add(n)
    for i, (name, e) in enumerate(zip(comp.param_names, comp.exponent_mask, strict=True)):
        if e and i not in used:
            groups.append((name,))
    return groups


def _n_free(fit: GlobalFit, n_shared: int) -> int:
    n_spec, n_p = len(fit.params), len(parse_circuit(fit.circuit).param_names)
    return n_spec * n_p - n_shared * (n_spec - 1)


def f_test(free: GlobalFit, shared: GlobalFit, group_size: int) -> ShareTest:
    """Does sharing ``group_size`` parameters make the fit significantly worse?"""
    n_res, p_free = free.n_residuals, _n_free(free, 0)
    k = group_size * (len(free.params) - 1)
    dof = max(n_res - p_free, 1)
    ssr_f, ssr_s = free.chi2 * dof, shared.chi2 * max(n_res - p_free + k, 1)
    f_stat = max(ssr_s - ssr_f, 0.0) / k / (ssr_f / dof)
    p = float(f_dist.sf(f_stat, k, dof))
    return ShareTest(tuple(shared.shared), shared.chi2, float(f_stat), p, p >= SHARE_P)


def choose_shared(temps, spectra, circuit: str, starts, weighting: str):
    """(reported fit, free fit, tests): groups shared when the data allow it."""
    comp = parse_circuit(circuit)
    free = global_fit(temps, spectra, circuit, starts, shared=[], weighting=weighting)
    from_free = [np.array([p[n] for n in comp.param_names]) for p in free.params]
    tests = []
    for group in candidate_groups(comp):
        g = global_fit(temps, spectra, circuit, from_free, shared=list(group), weighting=weighting)
        tests.append(f_test(free, g, len(group)))
    keep = [n for t in tests if t.shared for n in t.names]
    if not keep:
        return free, free, tests
    final = global_fit(temps, spectra, circuit, from_free, shared=keep, weighting=weighting)
    return final, free, tests


def _series_inputs(items, fits):
    """(indices kept, circuit, starts, roles) of the spectra the global fit uses."""
    from cyclerflow.eis.series import _scaled_start, trend

    temps = [info["temperature_kelvin"] for _, _, info in items]
    keep = [k for k, r in enumerate(fits) if isinstance(r, SpectrumFit) and np.isfinite(temps[k])]
    full = [k for k in keep if fits[k].circuit and fits[k].method in ("fit", "fixed_capacitance")]
    if len(keep) < 2 or not full:
        return None
    circuit = Counter(fits[k].circuit for k in full).most_common(1)[0][0]
    refs = [k for k in full if fits[k].circuit == circuit]
    tr = trend(temps, fits)
    starts, roles = [], []
    for k in keep:
        j = k if k in refs else min(refs, key=lambda m: abs(temps[m] - temps[k]))
        starts.append(_scaled_start(fits[j], temps[j], temps[k], tr))
        roles.append(fits[j].roles)
    return keep, circuit, starts, roles


def global_block(
    items, fits: list, geo, convention: str, *, share="auto", weighting: str = "modulus"
) -> dict:
    """The ``global_fit`` object: the series fitted at once with the circuit most single
    fits used, starting from them (spectra fitted otherwise start from an
    Arrhenius-scaled neighbour). ``share``: ``"auto"`` (groups kept by the F-test),
    ``"q"`` (CPE exponents and Q) or a list of names (:func:`global_fit`'s ``shared``).
    Per-temperature resistances and Arrhenius fits."""
    inputs = _series_inputs(items, fits)
    if inputs is None:
        return {
            "note": "a global fit needs two or more fitted spectra at known temperatures, "
            "one at least with its full circuit kept (method fit or fixed_capacitance; "
            "a high-frequency estimate everywhere means the bulk arc is above the window "
            "at every temperature, which sharing cannot resolve)"
        }
    keep, circuit, starts, roles = inputs
    temps = [items[k][2]["temperature_kelvin"] for k in keep]
    spectra = [(items[k][0], items[k][1]) for k in keep]
    out: dict = {}
    if share != "auto":
        names = shared_names(parse_circuit(circuit), True) if share == "q" else list(share)
        g = global_fit(temps, spectra, circuit, starts, shared=names, weighting=weighting)
    else:
        g, free, tests = choose_shared(temps, spectra, circuit, starts, weighting)
        out["sharing"] = [t.to_dict() for t in tests]
        out["chi2_free"] = free.chi2
    rows = [
        _global_row(t, p, se, rl)
        for t, p, se, rl in zip(temps, g.params, g.stderr, roles, strict=True)
    ]
    out = {**g.to_dict(), **out, "share": share if isinstance(share, str) else "given"}
    out["per_temperature"] = rows
    out["arrhenius"] = _global_arrhenius(rows, "r_bulk_ohm", geo, convention)
    if any(r["r_grain_boundary_ohm"] is not None for r in rows):
        out["arrhenius_total"] = _global_arrhenius(rows, "r_total_ohm", geo, convention)
    return out


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
