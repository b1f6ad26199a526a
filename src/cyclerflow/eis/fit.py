"""Fit one spectrum: model choice, restarts, identifiability fallback, KK check.

:func:`fit_spectrum` is the entry point; see docs/eis.md for the method in words.
"""

from __future__ import annotations

import numpy as np

from cyclerflow.eis.circuits import Circuit, Parallel, parse_circuit, without
from cyclerflow.eis.fitter import WEIGHTINGS, FitResult, fit_circuit
from cyclerflow.eis.guess import features, initial_guesses
from cyclerflow.eis.kk import KK_THRESHOLD, kramers_kronig
from cyclerflow.eis.models import AUTO_CANDIDATES, MODELS, Model, resolve_model
from cyclerflow.eis.spectrum import MIN_POINTS, check_spectrum
from cyclerflow.errors import InputError

#: a fit whose chi2 is within this factor of the KK fit's is "at the noise floor"
GOOD_ENOUGH = 1.6
#: largest relative standard error of R_bulk for the bulk arc to count as resolved
MAX_REL_STDERR_BULK = 0.2
#: evaluations allowed to a simpler candidate in the automatic model choice
SCREEN_NFEV = 40
#: a fit this far above the KK noise floor (and above POOR_FIT_ABS) is not ok
POOR_FIT = 20.0
POOR_FIT_ABS = 1e-3  # ~3 % RMS relative misfit
#: a screened candidate this far above the noise floor is dropped
SCREEN_REJECT = 30.0
#: BIC advantage a model with more parameters needs to be chosen
BIC_MARGIN = 10.0


def _start_vector(circuit: Circuit, initial) -> np.ndarray | None:
    if initial is None:
        return None
    if isinstance(initial, dict):
        missing = [n for n in circuit.param_names if n not in initial]
        if missing:
            raise InputError(
                f"initial guess lacks {', '.join(missing)} for circuit {circuit.string!r}"
            )
        vec = np.array([float(initial[n]) for n in circuit.param_names])
    else:
        vec = np.asarray(initial, dtype="f8").ravel()
        if vec.size != circuit.n_params:
            raise InputError(
                f"initial guess has {vec.size} values but circuit {circuit.string!r} has "
                f"{circuit.n_params} parameters ({', '.join(circuit.param_names)})"
            )
    if not np.all(np.isfinite(vec)) or np.any(vec[~circuit.exponent_mask] <= 0):
        raise InputError("initial guess values must be finite and > 0")
    return vec


def _fit_best(circuit, f, z, starts, weighting, chi2_floor, max_nfev: int = 300) -> FitResult:
    """Fit from each start until one reaches the noise floor; return the best."""
    best = None
    for p0 in starts:
        res = fit_circuit(circuit, f, z, p0, weighting=weighting, max_nfev=max_nfev)
        if best is None or (res.success and (not best.success or res.cost < best.cost)):
            best = res
        if best.success and best.chi2 <= GOOD_ENOUGH * chi2_floor:
            break
    return best


def _bic(res: FitResult, n_res: int, n_p: int) -> float:
    ssr = max(res.chi2 * (n_res - n_p), 1e-300)
    return n_res * np.log(ssr / n_res) + n_p * np.log(n_res)


def _tau(circuit: Circuit, params: np.ndarray, block, r_name: str) -> float | None:
    """Time constant (s) of an R||C or R||CPE block, or of a Zarc element."""
    if getattr(block, "kind", None) == "Zarc":
        return float(params[block.index + 1])
    r = params[circuit.element(r_name).index]
    for br in block.items:
        if len(br.items) == 1 and br.items[0].kind in ("C", "CPE"):
            el = br.items[0]
            if el.kind == "C":
                return float(r * params[el.index])
            q, n = params[el.index], params[el.index + 1]
            return float((r * q) ** (1.0 / n))
    return None


def _block_of(circuit: Circuit, el_name: str):
    """The top-level arc (p(...) block or Zarc element) holding a resistor or parameter."""
    for item in circuit.top_level():
        if isinstance(item, Parallel) and el_name in _names(item):
            return item
        if getattr(item, "kind", None) == "Zarc" and el_name == f"{item.name}_0":
            return item
    return None


def _names(node) -> set:
    if hasattr(node, "kind"):
        return {node.name}
    return set().union(*(_names(c) for c in node.items))


def _value(circuit: Circuit, params, stderr, name: str | None):
    if name is None or name not in circuit.param_names:
        return None, None
    i = circuit.param_names.index(name)
    return float(params[i]), float(stderr[i])


def fit_spectrum(
    frequency_hertz,
    z,
    circuit: str | None = None,
    *,
    initial=None,
    weighting: str = "modulus",
    roles: dict | None = None,
    lead_resistance_ohm: float | None = None,
    kk: bool = True,
    kk_threshold: float = KK_THRESHOLD,
    drop_inductive: bool = True,
    warm: dict | None = None,
    where: str | None = None,
) -> dict:
    """Fit an equivalent circuit to one impedance spectrum.

    Parameters
    ----------
    frequency_hertz, z
        Frequencies (Hz, strictly monotonic, either direction) and complex impedance (Ohm,
        Im < 0 capacitive). At least 10 points.
    circuit
        impedance.py circuit string, a ready-model name (``blocking``, ``bulk_gb``, ``cell``,
        ``cell_warburg``, ``cell_ohmic``, ``arc``), or None: choose among ``arc``,
        ``blocking`` and ``cell`` (the simplest that reaches the KK noise floor, else the
        best by BIC with a margin favouring fewer parameters; the result says which and why).
    initial
        Starting values (sequence in parameter order, or {name: value}); the data-derived
        guesses are still tried as restarts.
    weighting
        ``"modulus"`` (default), ``"proportional"`` or ``"unit"``.
    roles
        Override which element is lead / bulk / interface / grain_boundary.
    lead_resistance_ohm
        Subtracted from the high-frequency fallback estimates (default 0: not subtracted).
    kk
        Let a failed Kramers-Kronig test (largest relative residual above ``kk_threshold``)
        make ``fit_ok`` False. The test always runs and is always reported: its residual
        is also the noise floor that stops the restarts early.
    drop_inductive
        Leave out the points at the high-frequency end whose Im(Z) > 0 (cable inductance)
        from the fit; they still enter the KK test (which has an inductance term).

    Returns
    -------
    dict with ``circuit``, ``model``, ``model_selection``, ``method`` (``fit``,
    ``hf_intercept`` or ``phase_min``), ``params`` and ``stderr`` ({name: value}),
    ``r_bulk_ohm``, ``r_bulk_stderr_ohm``, ``r_interface_ohm``, ``r_grain_boundary_ohm``,
    ``r_lead_ohm`` (None where the model has no such element), ``f_bulk_hertz``
    (characteristic frequency of the bulk arc), ``bulk_resolved``, ``chi2``, ``fit_ok``,
    ``message``, ``flags``, ``kk_residual_max``, ``kk_ok``, ``z_fit`` (complex, over the
    measured frequencies in the caller's order), ``n_points``, ``n_points_used``,
    ``weighting``. Raises :class:`InputError` for bad input.
    """
    if weighting not in WEIGHTINGS:
        raise InputError(f"unknown weighting {weighting!r} (use one of {', '.join(WEIGHTINGS)})")
    f, zc, order = check_spectrum(frequency_hertz, z, where=where)
    inverse = np.argsort(order)
    flags: list[str] = []
    notes: list[str] = []
    k = 0
    if drop_inductive:
        while k < f.size and zc.imag[k] > 0:
            k += 1
        if k:
            flags.append("inductive_points_dropped")
            notes.append(f"{k} inductive high-frequency points left out of the fit")
    fu, zu = f[k:], zc[k:]
    if fu.size < MIN_POINTS:
        raise InputError(
            f"only {fu.size} capacitive points (Im(Z) < 0) after {k} inductive ones; at least {MIN_POINTS} needed",
            where=where,
        )
    # the KK fit always runs: it is also the noise floor that stops the restarts early
    kk_res = kramers_kronig(f, zc, threshold=kk_threshold)
    n_kk = 2 * f.size - (kk_res["m"] + 3)
    chi2_floor = float(
        np.sum(kk_res["residual_real"] ** 2 + kk_res["residual_imag"] ** 2) / max(n_kk, 1)
    )
    feat = features(fu, zu)
    warm = warm or {}

    if circuit is None:
        candidates = [MODELS[n] for n in AUTO_CANDIDATES]
        if initial is not None:
            raise InputError("an initial guess needs an explicit circuit")
    else:
        candidates = [resolve_model(circuit, roles)]
    fits: list[tuple[Model, FitResult]] = []
    for model in candidates:
        comp = model.compiled
        starts = []
        if len(candidates) == 1:
            v = _start_vector(comp, initial)
            if v is not None:
                starts.append(v)
        if model.name in warm and np.size(warm[model.name]) == comp.n_params:
            starts.append(np.asarray(warm[model.name], dtype="f8"))
        starts += initial_guesses(comp, fu, zu, feat)
        if len(candidates) > 1 and model is not candidates[-1]:
            # screen a simpler candidate with one short fit: if it is far from the noise
            # floor (> SCREEN_REJECT x), it cannot win; otherwise fit it properly
            quick = fit_circuit(comp, fu, zu, starts[0], weighting=weighting, max_nfev=SCREEN_NFEV)
            if quick.chi2 > SCREEN_REJECT * chi2_floor:
                fits.append((model, quick))
                continue
            starts = [quick.params, *starts[1:]]
        res = _fit_best(comp, fu, zu, starts, weighting, chi2_floor)
        fits.append((model, res))
        if len(candidates) > 1 and res.success and res.chi2 <= GOOD_ENOUGH * chi2_floor:
            break  # the simpler model already fits to the noise floor
    n_res = 2 * fu.size
    if len(fits) == 1:
        model, res = fits[0]
        selection = f"{model.name}: given" if circuit is not None else f"auto: {model.name}"
        if circuit is None:
            selection += f" (chi2 {res.chi2:.3g} at the KK noise floor {chi2_floor:.3g})"
    else:
        bics = [_bic(r, n_res, m.compiled.n_params) if r.success else np.inf for m, r in fits]
        choice = 0
        for i in range(1, len(fits)):
            if bics[i] < bics[choice] - BIC_MARGIN:
                choice = i
        model, res = fits[choice]
        selection = (
            "auto: "
            + model.name
            + " (BIC "
            + ", ".join(f"{m.name} {b:.1f}" for (m, _), b in zip(fits, bics, strict=True))
            + ")"
        )
    comp = model.compiled
    params, stderr = res.params, res.stderr
    method = "fit"
    ok = res.success
    if not res.success:
        notes.append(f"optimiser did not converge: {res.message}")

    roles_ = dict(model.roles)
    bulk_el = roles_.get("bulk")
    block = _block_of(comp, bulk_el) if bulk_el else None
    f_bulk = None
    resolved = True
    lead = 0.0 if lead_resistance_ohm is None else float(lead_resistance_ohm)
    if block is not None and bulk_el is not None:
        tau = _tau(comp, params, block, bulk_el)
        f_bulk = None if tau is None or tau <= 0 else float(1.0 / (2 * np.pi * tau))
        rb, sb = _value(comp, params, stderr, bulk_el)
        rel = sb / rb if rb else np.inf
        reasons = []
        if f_bulk is not None and f_bulk > fu[0]:
            reasons.append(
                f"its characteristic frequency {f_bulk:.3g} Hz is above the highest measured {fu[0]:.3g} Hz"
            )
        if not np.isfinite(rel) or rel > MAX_REL_STDERR_BULK:
            reasons.append(f"R_bulk is not identifiable (relative standard error {rel:.2g})")
        if reasons:
            resolved = False
            flags.append("bulk_arc_above_window")
            notes.append("bulk arc not resolved: " + "; ".join(reasons))
    warm_vec = {model.name: params.copy()} if res.success else {}

    r_bulk = r_bulk_se = None
    circuit_used, params_used, stderr_used, comp_used = comp, params, stderr, comp
    if resolved:
        if bulk_el is not None:
            r_bulk, r_bulk_se = _value(comp, params, stderr, bulk_el)
            if block is None:  # series resistance as bulk (cell_ohmic, custom without arc)
                method = "hf_intercept"
                r_bulk = r_bulk - lead
                notes.append(
                    "bulk resistance = fitted series resistance"
                    + (f" - lead {lead:g} Ohm" if lead else "")
                )
    else:
        # fallback 1: drop the bulk arc, fit the rest to the points below the phase minimum
        red_str = without(comp, block)
        red = parse_circuit(red_str) if red_str else None
        series_r = [e for e in (red.top_level() if red else ()) if getattr(e, "kind", None) == "R"]
        est = None
        if red is not None and series_r:
            pm = feat["phase_min"]
            lo = pm if 0 < pm < fu.size - MIN_POINTS else 0
            f2, z2 = fu[lo:], zu[lo:]
            rr = _fit_best(red, f2, z2, initial_guesses(red, f2, z2), weighting, chi2_floor)
            r0, s0 = _value(red, rr.params, rr.stderr, series_r[0].name)
            if rr.success and r0 - lead > 0:
                est = (r0 - lead, s0)
                method = "hf_intercept"
                comp_used, params_used, stderr_used = red, rr.params, rr.stderr
                res = rr
                notes.append(
                    f"R_bulk = high-frequency intercept {r0:.4g} Ohm of {red.string} fitted below "
                    f"{f2[0]:.3g} Hz"
                    + (
                        f", minus lead {lead:g} Ohm"
                        if lead
                        else " (lead resistance not subtracted)"
                    )
                )
        if est is None:
            pm = feat["phase_min"]
            r_pm = float(zu.real[pm]) - lead
            method = "phase_min"
            if r_pm > 0:
                est = (r_pm, None)
                notes.append(
                    f"R_bulk = Z' at the phase-angle minimum ({fu[pm]:.3g} Hz)"
                    + (f" minus lead {lead:g} Ohm" if lead else " (lead resistance not subtracted)")
                )
            else:
                ok = False
                notes.append("no positive bulk estimate from the phase-angle minimum either")
        if est is not None:
            r_bulk, r_bulk_se = est
        circuit_used = comp_used

    r_int, _ = _value(comp_used, params_used, stderr_used, roles_.get("interface"))
    r_gb, _ = _value(comp_used, params_used, stderr_used, roles_.get("grain_boundary"))
    r_lead = None
    if method == "fit" and roles_.get("lead"):
        r_lead, _ = _value(comp_used, params_used, stderr_used, roles_["lead"])
    if method == "phase_min":
        z_fit = np.full(f.size, np.nan + 0j)
        chi2 = None
        params_out, stderr_out = {}, {}
        circ_string = None
    else:
        z_fit = circuit_used.impedance(params_used, f)[inverse]
        chi2 = float(res.chi2)
        params_out = {
            n: float(v) for n, v in zip(circuit_used.param_names, params_used, strict=True)
        }
        stderr_out = {
            n: float(v) for n, v in zip(circuit_used.param_names, stderr_used, strict=True)
        }
        circ_string = circuit_used.string
        if chi2 > POOR_FIT * max(chi2_floor, 1e-300) and chi2 > POOR_FIT_ABS:
            ok = False
            flags.append("poor_fit")
            notes.append(
                f"chi2 {chi2:.3g} is {chi2 / max(chi2_floor, 1e-300):.0f}x the KK noise floor: "
                "the circuit does not describe this spectrum"
            )
        bad_at_bound = [
            n
            for n, b, e, u in zip(
                circuit_used.param_names,
                res.at_bound,
                circuit_used.exponent_mask,
                circuit_used.param_units,
                strict=True,
            )
            if b and not e and not (u == "Ohm" and params_out[n] < 1e-6 * feat["scale"])
        ]
        if bad_at_bound:
            ok = False
            notes.append("parameter(s) at a bound: " + ", ".join(bad_at_bound))
    if not kk_res["ok"]:
        flags.append("kk_failed")
        notes.append(
            f"Kramers-Kronig residual {kk_res['residual_max']:.3g} exceeds {kk_threshold:g}"
        )
    if kk and not kk_res["ok"]:
        ok = False
    if r_bulk is not None and not (np.isfinite(r_bulk) and r_bulk > 0):
        ok = False
        notes.append("bulk resistance is not a positive number")
        r_bulk = None
    return {
        "circuit": circ_string,
        "model": model.name if method != "phase_min" else None,
        "model_selection": selection,
        "method": method,
        "params": params_out,
        "stderr": stderr_out,
        "r_bulk_ohm": r_bulk,
        "r_bulk_stderr_ohm": r_bulk_se,
        "r_interface_ohm": r_int,
        "r_grain_boundary_ohm": r_gb,
        "r_lead_ohm": r_lead,
        "f_bulk_hertz": f_bulk,
        "bulk_resolved": resolved,
        "chi2": chi2,
        "fit_ok": bool(ok),
        "message": "; ".join(notes) if notes else "ok",
        "flags": flags,
        "kk_residual_max": kk_res["residual_max"],
        "kk_ok": kk_res["ok"],
        "z_fit": z_fit,
        "frequency_hertz": f[inverse],
        "n_points": int(f.size),
        "n_points_used": int(fu.size),
        "weighting": weighting,
        "roles": roles_,
        "warm": warm_vec,
    }
