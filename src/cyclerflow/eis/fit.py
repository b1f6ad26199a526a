"""Fit one spectrum: model choice, restarts, roles by physics, bulk fallback, KK check.

:func:`fit_spectrum` is the entry point and runs named steps: :func:`prepare` (checks,
inductive points, KK noise floor), :func:`candidates`, :func:`fit_candidates`,
:func:`select_model`, :func:`assign_roles` (cyclerflow.eis.roles), :func:`bulk_estimate`
(resolution check and high-frequency fallback), :func:`quality`. See docs/eis.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cyclerflow.eis.circuits import Circuit, Parallel, arcs, parse_circuit, without
from cyclerflow.eis.drt_start import drt_start, quick_arc_count, quick_drt
from cyclerflow.eis.fitter import WEIGHTINGS, FitResult, fit_circuit, param_bounds
from cyclerflow.eis.guess import features, initial_guesses
from cyclerflow.eis.kk import KK_THRESHOLD, kramers_kronig
from cyclerflow.eis.models import AUTO_CANDIDATES, MODELS, Model, resolve_model
from cyclerflow.eis.result import BulkEstimate, Prepared, SpectrumFit
from cyclerflow.eis.roles import CANDIDATES, CellContext, assign_roles, split_arc
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
#: where the quick-DRT start goes among the starts: "restart" (the first restart, tried
#: when the data guess misses the noise floor), "first", "auto" (first only when the
#: DRT resolves more arcs than -Z'' has apexes) or "off". All four give the same fits
#: on 450 synthetic and the real pellet spectra; "first" costs up to 28 % more CPU on
#: close arcs, "auto" 0-8 % (docs/eis.md, "As a start"); the default is "auto": the DRT
#: is the first start wherever it sees more than the apex heuristic, a restart elsewhere
DRT_START = "auto"


@dataclass(frozen=True)
class FitOptions:
    """Settings of one fit: weighting, KK, constraints ({name: value}, {name: (lo, hi)})."""

    weighting: str = "modulus"
    kk: bool = True
    kk_threshold: float = KK_THRESHOLD
    fixed: dict = field(default_factory=dict)
    bounds: dict = field(default_factory=dict)
    lead_resistance_ohm: float | None = None
    context: CellContext = field(default_factory=CellContext)
    roles: dict | None = None


# --- step 1: the spectrum -------------------------------------------------------------


def prepare(
    frequency_hertz, z, *, drop_inductive: bool, kk_threshold: float, where: str | None
) -> Prepared:
    """Check the spectrum, leave out inductive top points, run the KK test (noise floor)."""
    f, zc, order = check_spectrum(frequency_hertz, z, where=where)
    k = 0
    if drop_inductive:
        while k < f.size and zc.imag[k] > 0:
            k += 1
    fu, zu = f[k:], zc[k:]
    if fu.size < MIN_POINTS:
        raise InputError(
            f"only {fu.size} capacitive points (Im(Z) < 0) after {k} inductive ones; "
            f"at least {MIN_POINTS} needed",
            where=where,
        )
    kk_res = kramers_kronig(f, zc, threshold=kk_threshold)
    n_kk = 2 * f.size - (kk_res["m"] + 3)
    resid = kk_res["residual_real"] ** 2 + kk_res["residual_imag"] ** 2
    floor = float(np.sum(resid) / max(n_kk, 1))
    flags = ("inductive_points_dropped",) if k else ()
    notes = (f"{k} inductive high-frequency points left out of the fit",) if k else ()
    feat = features(fu, zu)
    return Prepared(
        f, zc, np.argsort(order), fu, zu, feat, kk_res, floor, flags, notes, _drt(fu, zu)
    )


def _drt(f: np.ndarray, z: np.ndarray):
    """The quick DRT of the points to fit, or None when NNLS gives up (never fatal)."""
    try:
        return quick_drt(f, z)
    except (RuntimeError, ValueError, np.linalg.LinAlgError):
        return None


# --- step 2: which models, constrained how --------------------------------------------


def candidates(circuit: str | None, opts: FitOptions, initial) -> list[Model]:
    """The models to try: the given one, or the sample type's ready models."""
    if circuit is not None:
        return [resolve_model(circuit, opts.roles)]
    if initial is not None:
        raise InputError("an initial guess needs an explicit circuit")
    names = CANDIDATES.get(opts.context.sample_type or "", AUTO_CANDIDATES)
    models = [resolve_model(n, opts.roles) if opts.roles else MODELS[n] for n in names]
    wanted = set(opts.fixed) | set(opts.bounds)
    if wanted:
        models = [m for m in models if wanted <= set(m.compiled.param_names)]
        if not models:
            raise InputError(
                f"no automatic model has the parameter(s) {', '.join(sorted(wanted))}: "
                "give --circuit"
            )
    return models


def constraints(comp: Circuit, opts: FitOptions, z_scale: float):
    """(fixed mask, fixed values, (lo, hi) bounds) of a circuit from the named options."""
    names = comp.param_names
    unknown = [n for n in (*opts.fixed, *opts.bounds) if n not in names]
    if unknown:
        raise InputError(
            f"parameter {unknown[0]!r} is not in circuit {comp.string!r} "
            f"(its parameters: {', '.join(names)})"
        )
    lo, hi = param_bounds(comp, z_scale)
    for n, (a, b) in opts.bounds.items():
        i = names.index(n)
        a = max(float(a), 1e-30) if not comp.exponent_mask[i] else float(a)
        if not a < float(b):
            raise InputError(f"bounds of {n}: lower {a:g} is not below upper {float(b):g}")
        lo[i], hi[i] = a, float(b)
    mask = np.zeros(comp.n_params, bool)
    values = np.zeros(comp.n_params)
    for n, v in opts.fixed.items():
        i = names.index(n)
        if not np.isfinite(v) or (not comp.exponent_mask[i] and v <= 0):
            raise InputError(f"fixed {n} = {v!r}: must be a finite number (> 0 unless an exponent)")
        mask[i], values[i] = True, float(v)
        lo[i], hi[i] = min(lo[i], v * 0.5), max(hi[i], v * 2 + 1e-30)
    return mask, values, (lo, hi)


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


# --- step 3: fit the candidates ---------------------------------------------------------


@dataclass(frozen=True)
class _Constrained:
    """A compiled circuit with its fixed-parameter mask/values and bounds."""

    comp: Circuit
    mask: np.ndarray
    values: np.ndarray
    bounds: tuple

    def start(self, p) -> np.ndarray:
        p = np.array(p, dtype="f8")
        p[self.mask] = self.values[self.mask]
        lo, hi = self.bounds
        return np.clip(p, lo, hi)

    def fit(self, f, z, p0, weighting: str, max_nfev: int = 300) -> FitResult:
        fixed = self.mask if self.mask.any() else None
        return fit_circuit(
            self.comp,
            f,
            z,
            self.start(p0),
            weighting=weighting,
            max_nfev=max_nfev,
            bounds=self.bounds,
            fixed=fixed,
        )


def _data_starts(comp: Circuit, prep: Prepared) -> list[np.ndarray]:
    """The data-derived starts with the quick-DRT start (``prep.drt``, computed once per
    spectrum and also the role evidence's ``drt_arcs``) placed by :data:`DRT_START`.
    "auto" puts it first only where the apex heuristic is blind: the DRT resolves at
    least as many arcs as the circuit has while -Z'' shows fewer apexes."""
    guesses = initial_guesses(comp, prep.fu, prep.zu, prep.feat)
    if DRT_START == "off" or prep.drt is None:
        return guesses
    from_drt = drt_start(prep.drt, comp, guesses[0])
    if from_drt is None:
        return guesses
    n_arcs = sum(1 for _, r, c in arcs(comp) if r is not None and c is not None)
    blind = quick_arc_count(prep.drt) >= n_arcs > len(prep.feat["apex"])
    if DRT_START == "first" or (DRT_START == "auto" and blind):
        return [from_drt, *guesses]
    return [guesses[0], from_drt, *guesses[1:]]


def _fit_best(cc: _Constrained, f, z, starts, weighting, chi2_floor, max_nfev=300) -> FitResult:
    """Fit from each start until one reaches the noise floor; return the best."""
    best = None
    for p0 in starts:
        res = cc.fit(f, z, p0, weighting, max_nfev)
        if best is None or (res.success and (not best.success or res.cost < best.cost)):
            best = res
        if best.success and best.chi2 <= GOOD_ENOUGH * chi2_floor:
            break
    return best


def fit_candidates(
    models: list[Model], prep: Prepared, opts: FitOptions, initial, warm: dict
) -> list[tuple[Model, _Constrained, FitResult]]:
    """Fit each candidate (a simpler one screened first); stop at the noise floor."""
    fits = []
    auto = len(models) > 1
    for model in models:
        comp = model.compiled
        cc = _Constrained(comp, *constraints(comp, opts, prep.feat["scale"]))
        starts = []
        v = None if auto else _start_vector(comp, initial)
        if v is not None:
            starts.append(v)
        if model.name in warm and np.size(warm[model.name]) == comp.n_params:
            starts.append(np.asarray(warm[model.name], dtype="f8"))
        starts += _data_starts(comp, prep)
        if auto and model is not models[-1]:
            # one short fit: far above the noise floor, a simpler model cannot win
            quick = cc.fit(prep.fu, prep.zu, starts[0], opts.weighting, SCREEN_NFEV)
            if quick.chi2 > SCREEN_REJECT * prep.chi2_floor:
                fits.append((model, cc, quick))
                continue
            starts = [quick.params, *starts[1:]]
        res = _fit_best(cc, prep.fu, prep.zu, starts, opts.weighting, prep.chi2_floor)
        fits.append((model, cc, res))
        if auto and res.success and res.chi2 <= GOOD_ENOUGH * prep.chi2_floor:
            break  # the simpler model already fits to the noise floor
    return fits


def _bic(res: FitResult, n_res: int, n_p: int) -> float:
    ssr = max(res.chi2 * (n_res - n_p), 1e-300)
    return n_res * np.log(ssr / n_res) + n_p * np.log(n_res)


def select_model(fits, prep: Prepared, given: bool):
    """(model, constrained circuit, fit, selection text): noise floor first, else BIC."""
    if len(fits) == 1:
        model, cc, res = fits[0]
        if given:
            return model, cc, res, f"{model.name}: given"
        text = (
            f"auto: {model.name} (chi2 {res.chi2:.3g} at the KK noise floor {prep.chi2_floor:.3g})"
        )
        return model, cc, res, text
    n_res = 2 * prep.fu.size
    bics = [_bic(r, n_res, m.compiled.n_params) if r.success else np.inf for m, _, r in fits]
    split = [split_arc(m.compiled, r.params, float(prep.fu.max())) for m, _, r in fits]
    if any(np.isfinite(b) and s is None for b, s in zip(bics, split, strict=True)):
        bics = [np.inf if s else b for b, s in zip(bics, split, strict=True)]
    choice = 0
    for i in range(1, len(fits)):
        if bics[i] < bics[choice] - BIC_MARGIN:
            choice = i
    listing = ", ".join(f"{m.name} {b:.1f}" for (m, _, _), b in zip(fits, bics, strict=True))
    why = "; ".join(
        f"{m.name} not taken: {s}" for (m, _, _), s in zip(fits, split, strict=True) if s
    )
    model, cc, res = fits[choice]
    return model, cc, res, f"auto: {model.name} (BIC {listing})" + (f"; {why}" if why else "")


# --- step 4: the bulk resistance --------------------------------------------------------


def _value(circuit: Circuit, params, stderr, name: str | None):
    if name is None or name not in circuit.param_names:
        return None, None
    i = circuit.param_names.index(name)
    return float(params[i]), float(stderr[i])


def _block_of(circuit: Circuit, el_name: str):
    """The top-level arc (p(...) block or Zarc element) holding a resistor."""
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


def _lead_text(lead: float) -> str:
    return f", minus lead {lead:g} Ohm" if lead else " (lead resistance not subtracted)"


def bulk_estimate(
    comp: Circuit, res: FitResult, roles: dict, prep: Prepared, opts: FitOptions
) -> tuple[BulkEstimate, Circuit, FitResult]:
    """R_bulk from the fit when its arc is resolved, else from the high-frequency side.

    Returns (estimate, circuit and fit the reported parameters come from).
    """
    bulk_el = roles.get("bulk")
    lead = float(opts.lead_resistance_ohm or 0.0)
    if bulk_el is None:
        return BulkEstimate(None, None, "fit", True), comp, res
    block = _block_of(comp, bulk_el)
    rb, sb = _value(comp, res.params, res.stderr, bulk_el)
    if block is None:  # a series resistance standing for the bulk
        return _series_bulk(comp, res, roles, prep, rb, sb, lead), comp, res
    tau = _tau(comp, res.params, block, bulk_el)
    f_b = None if tau is None or tau <= 0 else float(1.0 / (2 * np.pi * tau))
    rel = sb / rb if rb else np.inf
    reasons = []
    if f_b is not None and f_b > prep.fu[0]:
        reasons.append(
            f"its characteristic frequency {f_b:.3g} Hz is above the highest measured "
            f"{prep.fu[0]:.3g} Hz"
        )
    if not np.isfinite(rel) or rel > MAX_REL_STDERR_BULK:
        reasons.append(f"R_bulk is not identifiable (relative standard error {rel:.2g})")
    if not reasons:
        return BulkEstimate(rb, sb, "fit", True, f_b), comp, res
    note = "bulk arc not resolved: " + "; ".join(reasons)
    est, comp2, res2 = hf_fallback(comp, block, prep, opts, f_b, lead)
    se, notes = _with_extrapolation(est, rb - lead, rel)
    est = BulkEstimate(
        est.r_ohm,
        se,
        est.method,
        False,
        f_b,
        ("bulk_arc_above_window",),
        (note, *est.notes, *notes),
    )
    return est, comp2 or comp, res2 or res


def _with_extrapolation(est: BulkEstimate, r_arc: float, rel: float):
    """(uncertainty, notes) of a high-frequency estimate, widened by half its gap to the
    full fit's own extrapolation of the bulk arc when that is determined (relative
    standard error <= MAX_REL_STDERR_BULK): the two estimate the same resistance from the
    two sides of the window's edge, so their disagreement is part of the uncertainty.
    On the published pellet at 190 °C the intercept is 28 % below the extrapolation
    (which matches the published value) and its own error alone was 4.5 times smaller."""
    if est.r_ohm is None or est.stderr_ohm is None or not (rel <= MAX_REL_STDERR_BULK):
        return est.stderr_ohm, ()
    if not (np.isfinite(r_arc) and r_arc > 0):
        return est.stderr_ohm, ()
    se = float(np.hypot(est.stderr_ohm, abs(r_arc - est.r_ohm) / 2))
    return se, (f"the fit's extrapolation of the bulk arc gives {r_arc:.4g} Ohm (in the error)",)


def _series_bulk(comp, res, roles, prep, rb, sb, lead) -> BulkEstimate:
    """Bulk = a series resistance (cell_ohmic, or no arc has bulk capacitance)."""
    if roles.get("bulk") != roles.get("lead"):
        return BulkEstimate(
            rb - lead, sb, "hf_intercept", True, None, (), ("bulk resistance = fitted series R",)
        )
    # physics found no bulk arc: the series R holds lead + bulk (arc above the window)
    spread = max(rb - float(prep.zu.real[0]), 0.0) / 2
    se = float(np.hypot(sb or 0.0, spread))
    note = (
        f"no arc has a bulk capacitance: R_bulk = high-frequency intercept {rb:.4g} Ohm"
        + _lead_text(lead)
    )
    return BulkEstimate(
        rb - lead, se, "hf_intercept", False, None, ("bulk_arc_above_window",), (note,)
    )


def hf_fallback(comp: Circuit, block, prep: Prepared, opts: FitOptions, f_b, lead):
    """Drop the bulk arc; fit the rest to the points where the bulk has relaxed.

    Its series resistance is the high-frequency intercept (lead + bulk). Uncertainty:
    the fit's standard error combined with half the gap between that intercept and Z'
    at the highest frequency (the part of the bulk arc inside the window). Falls back to
    Z' at the phase-angle minimum when no series resistance is left.
    Returns (estimate, reduced circuit or None, its fit or None).
    """
    red_str = without(comp, block)
    red = parse_circuit(red_str) if red_str else None
    series_r = [e for e in (red.top_level() if red else ()) if getattr(e, "kind", None) == "R"]
    if red is not None and series_r:
        f2, z2 = _relaxed_points(red, prep, f_b)
        cc = _Constrained(red, *constraints(red, _drop(opts, red), prep.feat["scale"]))
        rr = _fit_best(cc, f2, z2, initial_guesses(red, f2, z2), opts.weighting, prep.chi2_floor)
        r0, s0 = _value(red, rr.params, rr.stderr, series_r[0].name)
        if rr.success and r0 - lead > 0:
            spread = max(r0 - float(prep.zu.real[0]), 0.0) / 2
            note = (
                f"R_bulk = high-frequency intercept {r0:.4g} Ohm of {red.string} fitted "
                f"below {f2[0]:.3g} Hz" + _lead_text(lead)
            )
            est = BulkEstimate(r0 - lead, float(np.hypot(s0, spread)), "hf_intercept", False)
            return BulkEstimate(**{**est.__dict__, "notes": (note,)}), red, rr
    pm = prep.feat["phase_min"]
    r_pm = float(prep.zu.real[pm]) - lead
    if r_pm <= 0:
        note = "no positive bulk estimate from the phase-angle minimum either"
        return BulkEstimate(None, None, "phase_min", False, notes=(note,)), None, None
    note = f"R_bulk = Z' at the phase-angle minimum ({prep.fu[pm]:.3g} Hz)" + _lead_text(lead)
    return BulkEstimate(r_pm, None, "phase_min", False, notes=(note,)), None, None


def _drop(opts: FitOptions, circuit: Circuit) -> FitOptions:
    """Options restricted to the parameters a (reduced) circuit still has."""
    from dataclasses import replace

    keep = set(circuit.param_names)
    return replace(
        opts,
        fixed={k: v for k, v in opts.fixed.items() if k in keep},
        bounds={k: v for k, v in opts.bounds.items() if k in keep},
    )


def _relaxed_points(red: Circuit, prep: Prepared, f_b):
    """Points the reduced circuit is fitted to: below the phase minimum when it has no
    arc left (only the electrode tail), else below f_bulk/10 (or all points)."""
    fu, zu = prep.fu, prep.zu
    if not any(
        isinstance(i, Parallel) or getattr(i, "kind", "") == "Zarc" for i in red.top_level()
    ):
        pm = prep.feat["phase_min"]
        lo = pm if 0 < pm < fu.size - MIN_POINTS else 0
        return fu[lo:], zu[lo:]
    if f_b is not None and np.isfinite(f_b):
        keep = fu <= f_b / 10
        if keep.sum() >= MIN_POINTS + red.n_params:
            return fu[keep], zu[keep]
    return fu, zu


# --- step 5: quality --------------------------------------------------------------------


def quality(comp: Circuit | None, res: FitResult | None, prep: Prepared, opts: FitOptions):
    """(ok, flags, notes) from convergence, misfit, parameters at bounds and the KK test."""
    ok, flags, notes = True, [], []
    if res is not None:
        if not res.success:
            ok = False
            notes.append(f"optimiser did not converge: {res.message}")
        floor = max(prep.chi2_floor, 1e-300)
        if res.chi2 > POOR_FIT * floor and res.chi2 > POOR_FIT_ABS:
            ok = False
            flags.append("poor_fit")
            notes.append(
                f"chi2 {res.chi2:.3g} is {res.chi2 / floor:.0f}x the KK noise floor: "
                "the circuit does not describe this spectrum"
            )
        at = _at_bound(comp, res, prep, opts)
        if at:
            ok = False
            notes.append("parameter(s) at a bound: " + ", ".join(at))
        mine = [
            n for n, b in zip(comp.param_names, res.at_bound, strict=True) if b and n in opts.bounds
        ]
        if mine:
            flags.append("at_user_bound")
            notes.append("parameter(s) at the bounds you set: " + ", ".join(mine))
    if not prep.kk["ok"]:
        flags.append("kk_failed")
        notes.append(
            f"Kramers-Kronig residual {prep.kk['residual_max']:.3g} exceeds {opts.kk_threshold:g}"
        )
        ok = ok and not opts.kk
    return ok, flags, notes


def _at_bound(comp: Circuit, res: FitResult, prep: Prepared, opts: FitOptions) -> list[str]:
    out = []
    for n, b, e, u, v in zip(
        comp.param_names,
        res.at_bound,
        comp.exponent_mask,
        comp.param_units,
        res.params,
        strict=True,
    ):
        tiny_r = u == "Ohm" and v < 1e-6 * prep.feat["scale"]
        if b and not e and not tiny_r and n not in opts.bounds and n not in opts.fixed:
            out.append(n)
    return out


# --- the entry point ---------------------------------------------------------------------


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
    fixed: dict | None = None,
    bounds: dict | None = None,
    context: CellContext | None = None,
) -> SpectrumFit:
    """Fit an equivalent circuit to one impedance spectrum.

    ``frequency_hertz``/``z``: Hz (strictly monotonic, either direction) and complex Ohm
    (Im < 0 capacitive), at least 10 points. ``circuit``: impedance.py circuit string,
    a ready-model name, or None for the automatic choice among the sample type's ready
    models (the simplest at the KK noise floor, else BIC). ``initial``: starting values
    (sequence or {name: value}). ``weighting``: ``modulus`` | ``proportional`` |
    ``unit``. ``roles``: role -> element overrides (then roles are not assigned by
    capacitance). ``fixed``/``bounds``: {name: value} / {name: (lo, hi)} in impedance.py's
    parameter names. ``context``: sample type and geometry
    (:func:`cyclerflow.eis.roles.context_from_metadata`), which choose the candidate
    models and scale the capacitance ranges of the roles. ``lead_resistance_ohm`` is
    subtracted from high-frequency estimates. ``kk``: a failed KK test makes ``fit_ok``
    false. Returns a :class:`SpectrumFit`; raises :class:`InputError` for bad input.
    """
    if weighting not in WEIGHTINGS:
        raise InputError(f"unknown weighting {weighting!r} (use one of {', '.join(WEIGHTINGS)})")
    opts = FitOptions(
        weighting,
        kk,
        kk_threshold,
        dict(fixed or {}),
        dict(bounds or {}),
        lead_resistance_ohm,
        context or CellContext(),
        roles,
    )
    prep = prepare(
        frequency_hertz, z, drop_inductive=drop_inductive, kk_threshold=kk_threshold, where=where
    )
    models = candidates(circuit, opts, initial)
    fits = fit_candidates(models, prep, opts, initial, warm or {})
    model, cc, res, selection = select_model(fits, prep, circuit is not None)
    return finish(model, cc.comp, res, selection, prep, opts)


def fit_fixed_bulk(
    frequency_hertz,
    z,
    circuit: str,
    start,
    fixed: dict,
    estimate: BulkEstimate,
    *,
    weighting: str = "modulus",
    context: CellContext | None = None,
    where: str | None = None,
) -> SpectrumFit:
    """Fit ``circuit`` from ``start`` with ``fixed`` parameters held; the bulk estimate
    is given (the series-level fallback with the bulk capacitance fixed)."""
    opts = FitOptions(weighting, fixed=dict(fixed), context=context or CellContext())
    prep = prepare(frequency_hertz, z, drop_inductive=True, kk_threshold=KK_THRESHOLD, where=where)
    model = resolve_model(circuit)
    cc = _Constrained(model.compiled, *constraints(model.compiled, opts, prep.feat["scale"]))
    res = cc.fit(prep.fu, prep.zu, start, weighting)
    return finish(
        model, cc.comp, res, f"{model.name}: bulk capacitance fixed", prep, opts, estimate
    )


def finish(
    model: Model,
    comp: Circuit,
    res: FitResult,
    selection: str,
    prep: Prepared,
    opts: FitOptions,
    bulk: BulkEstimate | None = None,
) -> SpectrumFit:
    """Roles by capacitance, the bulk estimate and the quality checks -> :class:`SpectrumFit`."""
    role_map, evidence = assign_roles(
        comp, res.params, opts.context, dict(model.roles), res.stderr, reassign=not opts.roles
    )
    if prep.drt is not None:
        evidence = replace(evidence, drt_arcs=quick_arc_count(prep.drt))
    if bulk is None:
        est, comp_used, res_used = bulk_estimate(comp, res, role_map, prep, opts)
    else:
        est, comp_used, res_used = bulk, comp, res
    keep_curve = est.method != "phase_min"
    ok, q_flags, q_notes = quality(
        comp_used if keep_curve else None, res_used if keep_curve else None, prep, opts
    )
    r_bulk = est.r_ohm
    notes = [*prep.notes, *est.notes, *q_notes]
    if r_bulk is not None and not (np.isfinite(r_bulk) and r_bulk > 0):
        ok, r_bulk = False, None
        notes.append("bulk resistance is not a positive number")
    if est.r_ohm is None and role_map.get("bulk") and est.method == "phase_min":
        ok = False
    swapped = _role_note(model, role_map)
    if swapped:
        notes.append(swapped)
    return _assemble(
        model,
        comp_used,
        res_used,
        selection,
        prep,
        opts,
        role_map,
        evidence,
        est,
        r_bulk,
        ok,
        [*prep.flags, *est.flags, *q_flags],
        notes,
        keep_curve,
        res,
    )


def _role_note(model: Model, role_map: dict) -> str | None:
    changed = [
        f"{r} = {role_map.get(r)}"
        for r in ("bulk", "grain_boundary", "interface")
        if role_map.get(r) != model.roles.get(r) and role_map.get(r) is not None
    ]
    return "roles by capacitance: " + ", ".join(changed) if changed else None


def _other_resistances(comp, res, role_map, keep_curve, flags, notes):
    """(R_interface, R_gb, its stderr); an undetermined grain boundary is not reported."""
    if not keep_curve:
        return None, None, None
    r_int, _ = _value(comp, res.params, res.stderr, role_map.get("interface"))
    r_gb, s_gb = _value(comp, res.params, res.stderr, role_map.get("grain_boundary"))
    if r_gb is not None and not (s_gb is not None and s_gb <= MAX_REL_STDERR_BULK * r_gb):
        notes.append(
            f"grain-boundary arc not resolved (R {r_gb:.4g} +- {s_gb:.2g} Ohm): not reported"
        )
        flags.append("grain_boundary_not_resolved")
        r_gb = s_gb = None
    return r_int, r_gb, s_gb


def _assemble(
    model,
    comp,
    res,
    selection,
    prep,
    opts,
    role_map,
    evidence,
    est,
    r_bulk,
    ok,
    flags,
    notes,
    keep_curve,
    full_res,
) -> SpectrumFit:
    if keep_curve:
        z_fit = comp.impedance(res.params, prep.f)[prep.inverse]
        params = dict(zip(comp.param_names, map(float, res.params), strict=True))
        stderr = dict(zip(comp.param_names, map(float, res.stderr), strict=True))
    else:
        z_fit, params, stderr = np.full(prep.f.size, np.nan + 0j), {}, {}
    r_int, r_gb, s_gb = _other_resistances(comp, res, role_map, keep_curve, flags, notes)
    r_lead = None
    if est.method == "fit" and role_map.get("lead"):
        r_lead, _ = _value(comp, res.params, res.stderr, role_map["lead"])
    return SpectrumFit(
        circuit=comp.string if keep_curve else None,
        model=model.name if keep_curve else None,
        model_selection=selection,
        method=est.method,
        params=params,
        stderr=stderr,
        r_bulk_ohm=r_bulk,
        r_bulk_stderr_ohm=est.stderr_ohm,
        r_interface_ohm=r_int,
        r_grain_boundary_ohm=r_gb,
        r_grain_boundary_stderr_ohm=s_gb,
        r_lead_ohm=r_lead,
        f_bulk_hertz=est.f_bulk_hertz,
        bulk_resolved=est.resolved,
        chi2=float(res.chi2) if keep_curve else None,
        fit_ok=bool(ok),
        message="; ".join(notes) if notes else "ok",
        flags=tuple(flags),
        kk_residual_max=prep.kk["residual_max"],
        kk_ok=prep.kk["ok"],
        z_fit=z_fit,
        frequency_hertz=prep.f[prep.inverse],
        n_points=int(prep.f.size),
        n_points_used=int(prep.fu.size),
        weighting=opts.weighting,
        roles=role_map,
        role_evidence=evidence,
        fixed=tuple(opts.fixed),
        warm={model.name: full_res.params.copy()} if full_res.success else {},
    )
