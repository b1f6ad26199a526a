"""Per-cycle table and per-cell summary: capacity, energy, CE, retention, fade.

:func:`analyze_cycling` returns the JSON-ready ``cycling`` object of docs/cli.md and an
``xr.Dataset`` over ``cycle`` with every per-cycle quantity (units attributes and
provenance attributes). Definitions are in docs/cycling.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import xarray as xr

from cyclerflow.cycling.fade import first_below, robust_line
from cyclerflow.cycling.incomplete import (
    Completeness,
    CycleSpans,
    Gap,
    classify_cycles,
    gap_events,
)
from cyclerflow.cycling.segment import (
    CHARGE,
    DIRECTION_NAME,
    Segmentation,
    Thresholds,
    prepare_samples,
    segment,
)
from cyclerflow.errors import InputError
from cyclerflow.schema import CellMetadata

METHOD = (
    "integral of current (and current x voltage) over each run of samples in float64: "
    "trapezoid from the run's first to its last sample (instantaneous samples) or "
    "rectangle sum of interval means (current_sampling=interval_mean); runs = same current "
    "sign, instrument step and cycle; rest runs (peak |I| <= rest_fraction x reference "
    "current) excluded"
)
CE_CONVENTION_CHARGE_FIRST = "discharge / charge of the same cycle (cycles start with charge)"
CE_CONVENTION_DISCHARGE_FIRST = "charge / discharge of the same cycle (cycles start with discharge)"
RETENTION_BASIS = "discharge capacity / discharge capacity of the reference cycle"
RETENTION_LEVEL = 0.8


def _f(x: Any) -> float | None:
    """Python float or None (for NaN/inf/None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(a, "f8") / np.asarray(b, "f8")
    out[~np.isfinite(out)] = np.nan
    return out


def normalisation(meta: CellMetadata | None) -> tuple[dict[str, float | None], list[str]]:
    """Area (cm²), cathode thickness (µm) and cathode mass (g) from metadata, with notes."""
    notes: list[str] = []
    if meta is None:
        return (
            {"area_cm2": None, "cathode_thickness_um": None, "cathode_mass_g": None},
            ["no cell metadata: per-area, per-thickness and per-mass capacities are null"],
        )
    area = meta.active_area_cm2
    th_m = meta.cathode_thickness_m
    mass_kg = meta.cathode_mass_kg
    if area is None:
        notes.append("no active_area_cm2 in metadata: per-area capacities are null")
    if th_m is None:
        notes.append("no cathode layer thickness in metadata: µAh/(cm²·µm) is null")
    if mass_kg is None:
        notes.append(
            "no cathode mass_mg (nor density_g_cm3 x thickness x area) in metadata: mAh/g is null"
        )
    return (
        {
            "area_cm2": area,
            "cathode_thickness_um": None if th_m is None else th_m * 1e6,
            "cathode_mass_g": None if mass_kg is None else mass_kg * 1e3,
        },
        notes,
    )


def _spans_and_sums(seg: Segmentation, s) -> tuple[CycleSpans, dict[str, np.ndarray]]:
    """Sum run integrals into cycles (vectorised with bincount): spans and Ah/Wh sums."""
    act = np.flatnonzero(seg.active)
    rc = seg.run_cycle[act]
    cycles, inv = np.unique(rc, return_inverse=True)
    m = len(cycles)
    pos = seg.sign[act] > 0
    q = seg.q_as[act] / 3600.0
    e = seg.e_ws[act] / 3600.0
    sums = {
        "qc": np.bincount(inv, weights=np.where(pos, q, 0.0), minlength=m),
        "qd": -np.bincount(inv, weights=np.where(pos, 0.0, q), minlength=m),
        "ec": np.bincount(inv, weights=np.where(pos, e, 0.0), minlength=m),
        "ed": -np.bincount(inv, weights=np.where(pos, 0.0, e), minlength=m),
    }
    n_ch = np.bincount(inv, weights=pos.astype("f8"), minlength=m)
    n_dis = np.bincount(inv, weights=(~pos).astype("f8"), minlength=m)
    # first / last active run of each cycle
    _, first_idx = np.unique(inv, return_index=True)
    _, last_rev = np.unique(inv[::-1], return_index=True)
    first_run, last_run = act[first_idx], act[len(inv) - 1 - last_rev]
    # cut-short halves -> cycles
    cut = np.zeros(m, bool)
    reason = [""] * m
    cyc_pos = {int(c): k for k, c in enumerate(cycles)}
    for h in np.flatnonzero(seg.half_cut_short):
        for c in np.unique(seg.run_cycle[np.flatnonzero(seg.run_half == h)]):
            k = cyc_pos[int(c)]
            cut[k] = True
            reason[k] = reason[k] or seg.half_cut_reason[h]
    charge_first = seg.first_half == CHARGE
    spans = CycleSpans(
        cycle=cycles.astype("i8"),
        first_run=first_run,
        last_run=last_run,
        t0=s.t[seg.starts[first_run]],
        t1=s.t[seg.ends[last_run] - 1],
        n_in=n_ch if charge_first else n_dis,
        n_out=n_dis if charge_first else n_ch,
        first_dir=seg.sign[first_run].astype("i8"),
        cut=cut,
        cut_reason=reason,
    )
    return spans, sums


@dataclass(frozen=True)
class CycleTable:
    """Per cycle, in cycle order: charge/discharge capacity (Ah) and energy (Wh), the
    span of its active samples (s), and whether it counts (see cycling/incomplete.py)."""

    cycle: np.ndarray
    qc: np.ndarray
    qd: np.ndarray
    ec: np.ndarray
    ed: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    first_half: int
    flags: Completeness

    @property
    def complete(self) -> np.ndarray:
        return self.flags.complete

    @property
    def q_in_out(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.qc, self.qd) if self.first_half == CHARGE else (self.qd, self.qc)

    @property
    def e_in_out(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.ec, self.ed) if self.first_half == CHARGE else (self.ed, self.ec)


def _unbridge_gaps(s, seg: Segmentation, gaps: list[Gap]) -> Segmentation:
    """Remove from the run integrals what the integration rule put across each gap event
    (the samples either side of an unrecorded interval are in one run when the engine
    resumed the same step): only recorded charge stays in the capacities."""
    if not gaps:
        return seg
    q, e = seg.q_as.copy(), seg.e_ws.copy()
    n = len(s.t)
    for g in gaps:
        j = int(np.searchsorted(s.t, g.start_s, side="right")) - 1
        tol = 1e-9 * max(1.0, abs(g.end_s))
        if j < 0 or j + 1 >= n or s.t[j + 1] < g.end_s - tol:
            continue
        r = int(np.searchsorted(seg.starts, j, side="right")) - 1
        if seg.ends[r] <= j + 1:  # the gap lies between two runs: nothing bridged
            continue
        dt = s.t[j + 1] - s.t[j]
        if s.current_sampling == "interval_mean":
            q[r] -= s.i[j + 1] * dt
            e[r] -= s.i[j + 1] * s.v[j + 1] * dt
        else:
            q[r] -= 0.5 * (s.i[j] + s.i[j + 1]) * dt
            e[r] -= 0.5 * (s.i[j] * s.v[j] + s.i[j + 1] * s.v[j + 1]) * dt
    return replace(seg, q_as=q, e_ws=e)


def cycle_table(
    s, seg: Segmentation, events: Iterable[dict] | None, *, count_gap_estimates: bool = False
) -> CycleTable:
    """Per-cycle sums and completeness; gap estimates (Ah) added where they are counted."""
    seg = _unbridge_gaps(s, seg, gap_events(events))
    spans, sums = _spans_and_sums(seg, s)
    flags = classify_cycles(s, seg, spans, events, count_gap_estimates=count_gap_estimates)
    est = flags.estimate_ah
    return CycleTable(
        cycle=spans.cycle,
        qc=sums["qc"] + np.clip(est, 0.0, None),
        qd=sums["qd"] + np.clip(-est, 0.0, None),
        ec=sums["ec"],
        ed=sums["ed"],
        t0=spans.t0,
        t1=spans.t1,
        first_half=seg.first_half,
        flags=flags,
    )


@dataclass(frozen=True)
class Reference:
    """Reference cycle, its position and discharge capacity (Ah), and retention per cycle."""

    cycle: int
    k: int
    q_ah: float
    retention: np.ndarray


def _reference(tab: CycleTable, reference_cycle: int | None, where) -> Reference:
    complete_cycles = tab.cycle[tab.complete]
    if reference_cycle is None:
        ref = int(complete_cycles[0])
    else:
        ref = int(reference_cycle)
        if ref not in set(complete_cycles.tolist()):
            raise InputError(
                f"reference cycle {ref} is not a complete cycle "
                f"(complete cycles: {_ranges(complete_cycles)})",
                path=where,
                where="--reference-cycle",
            )
    k_ref = int(np.flatnonzero(tab.cycle == ref)[0])
    q_ref = float(tab.qd[k_ref])
    m = len(tab.cycle)
    retention = np.where(tab.complete, tab.qd / q_ref, np.nan) if q_ref > 0 else np.full(m, np.nan)
    return Reference(ref, k_ref, q_ref, retention)


@dataclass(frozen=True)
class Fade:
    """Fade fit of retention vs cycle over ``window`` (complete cycles only)."""

    window: tuple[int, int]
    n: int
    rate: float | None
    stderr: float | None
    intercept: float | None
    below: int | None
    extrapolated: float | None


def _fade(tab: CycleTable, ref: Reference, fade_window: Sequence[int] | None) -> Fade:
    complete, cycles = tab.complete, tab.cycle
    if fade_window is None:
        lo, hi = ref.cycle, int(cycles[complete][-1])
    else:
        lo, hi = int(fade_window[0]), int(fade_window[1])
        if hi < lo:
            raise InputError(f"fade window ({lo}, {hi}) is empty", where="fade_window")
    sel = complete & (cycles >= lo) & (cycles <= hi) & np.isfinite(ref.retention)
    fade = fade_se = intercept = None
    n_fit = int(sel.sum())
    if n_fit >= 3:
        fit = robust_line(cycles[sel].astype("f8"), ref.retention[sel], x0=float(ref.cycle))
        fade, fade_se, intercept = -fit.slope, fit.slope_stderr, fit.intercept
    below = first_below(cycles[complete], ref.retention[complete], RETENTION_LEVEL)
    extrap = None
    if fade is not None and fade > 0 and intercept is not None:
        extrap = ref.cycle + (intercept - RETENTION_LEVEL) / fade
    return Fade((lo, hi), n_fit, fade, fade_se, intercept, below, extrap)


def _ce_stats(tab: CycleTable, ce: np.ndarray) -> dict[str, Any]:
    """CE statistics over complete cycles after the first complete one (formation)."""
    ce_sel = tab.complete.copy()
    ce_sel[int(np.flatnonzero(tab.complete)[0])] = False
    if not ce_sel.any():
        ce_sel = tab.complete.copy()
    ce_vals = ce[ce_sel]
    return {
        "ce_mean": _f(np.mean(ce_vals)),
        "ce_median": _f(np.median(ce_vals)),
        "ce_std": _f(np.std(ce_vals, ddof=1)) if len(ce_vals) > 1 else None,
        "ce_min": _f(np.min(ce_vals)),
        "ce_max": _f(np.max(ce_vals)),
        "ce_cycles": [int(tab.cycle[ce_sel][0]), int(tab.cycle[ce_sel][-1])],
        "ce_n": int(len(ce_vals)),
    }


def _derived(tab: CycleTable, ref: Reference, meta: CellMetadata | None) -> dict[str, Any]:
    """Per-cycle efficiencies, mean voltages and normalised capacities (arrays)."""
    q_in, q_out = tab.q_in_out
    e_in, e_out = tab.e_in_out
    norm, notes = normalisation(meta)
    area, thick, mass = norm["area_cm2"], norm["cathode_thickness_um"], norm["cathode_mass_g"]
    nan = np.full(len(tab.cycle), np.nan)
    per_area = tab.qd * 1e6 / area if area else nan
    v_ch, v_dis = _div(tab.ec, tab.qc), _div(tab.ed, tab.qd)
    return {
        "ce": np.where(tab.complete, _div(q_out, q_in), np.nan),
        "ee": np.where(tab.complete, _div(e_out, e_in), np.nan),
        "retention": ref.retention,
        "v_ch": v_ch,
        "v_dis": v_dis,
        "hyst": v_ch - v_dis,
        "per_area": per_area,
        "per_area_um": per_area / thick if (area and thick) else nan,
        "per_g": tab.qd * 1e3 / mass if mass else nan,
        "norm": norm,
        "norm_notes": notes,
    }


def _rows(tab: CycleTable, d: dict[str, Any]) -> list[dict[str, Any]]:
    fl = tab.flags
    return [
        {
            "cycle": int(tab.cycle[k]),
            "charge_capacity_ah": _f(tab.qc[k]),
            "discharge_capacity_ah": _f(tab.qd[k]),
            "coulombic_efficiency": _f(d["ce"][k]),
            "capacity_retention": _f(d["retention"][k]),
            "charge_energy_wh": _f(tab.ec[k]),
            "discharge_energy_wh": _f(tab.ed[k]),
            "discharge_capacity_uah_per_cm2": _f(d["per_area"][k]),
            "discharge_capacity_uah_per_cm2_um": _f(d["per_area_um"][k]),
            "discharge_capacity_mah_per_g": _f(d["per_g"][k]),
            "energy_efficiency": _f(d["ee"][k]),
            "mean_charge_voltage_v": _f(d["v_ch"][k]),
            "mean_discharge_voltage_v": _f(d["v_dis"][k]),
            "voltage_hysteresis_v": _f(d["hyst"][k]),
            "complete": bool(fl.complete[k]),
            "incomplete_reason": fl.reason[k],
            "incomplete_detail": fl.detail[k] or None,
            "estimated_charge_ah": _f(abs(fl.estimate_ah[k])) if fl.estimate_ah[k] else None,
        }
        for k in range(len(tab.cycle))
    ]


def analyze_cycling(
    ds: xr.Dataset,
    meta: CellMetadata | None = None,
    *,
    reference_cycle: int | None = None,
    first_half: str | None = None,
    fade_window: Sequence[int] | None = None,
    thresholds: Thresholds | None = None,
    events: Iterable[dict] | None = None,
    current_sampling: str | None = None,
    count_gap_estimates: bool = False,
    keep: dict | None = None,
) -> tuple[dict[str, Any], xr.Dataset]:
    """Per-cycle capacities (Ah), energies (Wh), CE, retention and the cell's fade.

    Parameters
    ----------
    ds: cycling record over ``sample`` (``cyclerflow.store.read_cycling``): seconds, volts,
        amperes (charge > 0), optional ``cycle_count``/``step_count``/``step_index``.
    meta: cell metadata for normalised capacities (µAh/cm², µAh/(cm²·µm), mAh/g).
    reference_cycle: cycle number for retention (default: first complete cycle).
    first_half: ``"charge"``/``"discharge"`` to override the detected first half.
    fade_window: ``(first, last)`` cycle numbers of the fade fit (default: reference
        cycle to the last complete cycle).
    thresholds: relative segmentation thresholds (:class:`Thresholds`).
    events: the cell's events (``cyclerflow.store.read_events``): ``safety_stop``,
        ``stop`` and ``gap`` events make the cycle they interrupt incomplete.
    current_sampling: ``"instantaneous"`` (trapezoid, default) or ``"interval_mean"``
        (rectangle rule, for currents averaged over the preceding interval such as
        BioLogic ``<I>``); default from ``ds.current_ampere.attrs["sampling"]``.
    count_gap_estimates: count a cycle whose only defect is a gap event carrying an
        estimated charge, with that charge added (flagged in ``estimated_charge_ah``).
    keep: a dict that receives ``samples`` and ``segmentation`` (the transport analyses
        reuse them).

    Returns ``(summary, per_cycle)``: a JSON-ready dict (no NaN; ``None`` where a value
    cannot be computed) and an ``xr.Dataset`` over ``cycle``.
    Raises :class:`InputError` when no complete cycle exists or the reference cycle is
    not a complete cycle.
    """
    th = thresholds or Thresholds()
    s = prepare_samples(ds, current_sampling)
    where = s.source or None
    seg = segment(s, th, first_half=first_half)
    if keep is not None:
        keep.update(samples=s, segmentation=seg)
    tab = cycle_table(s, seg, events, count_gap_estimates=count_gap_estimates)
    if not tab.complete.any():
        why = "; ".join(
            f"cycle {c}: {r} ({d})"
            for c, r, d in zip(
                tab.cycle[:5], tab.flags.reason[:5], tab.flags.detail[:5], strict=True
            )
        )
        raise InputError(f"no complete cycle found ({why})", path=where)
    ref = _reference(tab, reference_cycle, where)
    fade = _fade(tab, ref, fade_window)
    d = _derived(tab, ref, meta)
    summary = _summary(tab, seg, s, ref, fade, d, th, count_gap_estimates)
    return summary, _dataset(tab, d, summary=summary)


def _summary(tab, seg, s, ref, fade, d, th, count_gap_estimates) -> dict[str, Any]:
    q_in, q_out = tab.q_in_out
    k_first = int(np.flatnonzero(tab.complete)[0])
    fh = tab.first_half
    fl = tab.flags
    return {
        "reference_cycle": ref.cycle,
        "fade_rate_per_cycle": _f(fade.rate),
        "first_cycle_irreversible_ah": _f(q_in[k_first] - q_out[k_first]),
        "cycles": _rows(tab, d),
        "first_half": DIRECTION_NAME[fh],
        "first_half_detected": DIRECTION_NAME[seg.first_half_detected],
        "cycle_source": seg.cycle_source,
        "ce_convention": (
            CE_CONVENTION_CHARGE_FIRST if fh == CHARGE else CE_CONVENTION_DISCHARGE_FIRST
        ),
        "retention_basis": RETENTION_BASIS,
        "reference_discharge_capacity_ah": _f(ref.q_ah),
        "first_complete_cycle": int(tab.cycle[k_first]),
        "fade_rate_stderr_per_cycle": _f(fade.stderr),
        "fade_fit_intercept": _f(fade.intercept),
        "fade_window": list(fade.window),
        "fade_method": "Huber-IRLS straight line of capacity_retention vs cycle (MAD scale)",
        "fade_n_cycles": fade.n,
        "cycles_to_80_percent": fade.below,
        "cycles_to_80_percent_extrapolated": _f(fade.extrapolated),
        **_ce_stats(tab, d["ce"]),
        "n_cycles": len(tab.cycle),
        "n_complete_cycles": int(tab.complete.sum()),
        "incomplete_cycles": [
            {"cycle": int(tab.cycle[k]), "reason": fl.reason[k], "detail": fl.detail[k]}
            for k in np.flatnonzero(~tab.complete)
        ],
        "gaps": fl.gaps,
        "count_gap_estimates": bool(count_gap_estimates),
        "dropped_samples": int(s.n_dropped),
        "current_sampling": s.current_sampling,
        "reference_current_a": _f(seg.i_ref_a),
        "current_noise_a": _f(seg.noise_a),
        "rest_threshold_a": _f(seg.threshold_a),
        "thresholds": th.as_attrs(),
        "normalisation": {k: _f(v) for k, v in d["norm"].items()},
        "notes": seg.notes + d["norm_notes"],
    }


def _ranges(c: np.ndarray) -> str:
    c = np.asarray(c)
    if len(c) == 0:
        return "none"
    brk = np.flatnonzero(np.diff(c) != 1)
    lo = np.r_[c[0], c[brk + 1]]
    hi = np.r_[c[brk], c[-1]]
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(lo, hi, strict=True)]
    return ", ".join(parts[:10]) + (" ..." if len(parts) > 10 else "")


def _dataset_attrs(summary: dict[str, Any]) -> dict[str, Any]:
    """Provenance and headline attributes of the per-cycle dataset."""
    attrs = {
        "method": METHOD,
        "first_half": summary["first_half"],
        "first_half_detected": summary["first_half_detected"],
        "cycle_source": summary["cycle_source"],
        "ce_convention": summary["ce_convention"],
        "retention_basis": RETENTION_BASIS,
        "reference_cycle": summary["reference_cycle"],
        "fade_method": summary["fade_method"],
        "fade_window": np.asarray(summary["fade_window"], "i8"),
        "reference_current_a": summary["reference_current_a"],
        "rest_threshold_a": summary["rest_threshold_a"],
        "thresholds": json.dumps(summary["thresholds"]),
        "dropped_samples": summary["dropped_samples"],
        "current_sampling": summary["current_sampling"],
        "notes": json.dumps(summary["notes"]),
    }
    for key in (
        "fade_rate_per_cycle",
        "fade_rate_stderr_per_cycle",
        "first_cycle_irreversible_ah",
        "cycles_to_80_percent",
        "cycles_to_80_percent_extrapolated",
        "ce_mean",
        "ce_median",
    ):
        if summary[key] is not None:
            attrs[key] = summary[key]
    return attrs


def _dataset(tab: CycleTable, v: dict[str, Any], *, summary: dict[str, Any]) -> xr.Dataset:
    """The per-cycle table as an ``xr.Dataset`` over ``cycle`` (units and provenance)."""

    def var(data, units, long_name):
        return ("cycle", np.asarray(data), {"units": units, "long_name": long_name})

    fl = tab.flags
    data = {
        "charge_capacity_ah": var(tab.qc, "A h", "charge capacity"),
        "discharge_capacity_ah": var(tab.qd, "A h", "discharge capacity"),
        "charge_energy_wh": var(tab.ec, "W h", "charge energy"),
        "discharge_energy_wh": var(tab.ed, "W h", "discharge energy"),
        "coulombic_efficiency": var(v["ce"], "1", summary["ce_convention"]),
        "energy_efficiency": var(v["ee"], "1", "energy out / energy in, same cycle"),
        "capacity_retention": var(
            v["retention"], "1", f"{RETENTION_BASIS} ({summary['reference_cycle']})"
        ),
        "mean_charge_voltage_volt": var(v["v_ch"], "V", "charge energy / charge capacity"),
        "mean_discharge_voltage_volt": var(
            v["v_dis"], "V", "discharge energy / discharge capacity"
        ),
        "voltage_hysteresis_volt": var(v["hyst"], "V", "mean charge - mean discharge voltage"),
        "discharge_capacity_uah_per_cm2": var(v["per_area"], "uA h cm-2", "per active area"),
        "discharge_capacity_uah_per_cm2_um": var(
            v["per_area_um"], "uA h cm-2 um-1", "per active area and cathode thickness"
        ),
        "discharge_capacity_mah_per_g": var(v["per_g"], "mA h g-1", "per cathode mass"),
        "complete": (
            "cycle",
            fl.complete.astype("i1"),
            {"units": "1", "flag_values": [0, 1], "flag_meanings": "incomplete complete"},
        ),
        "incomplete_reason": ("cycle", np.asarray([r or "" for r in fl.reason], object), {}),
        "incomplete_detail": ("cycle", np.asarray(list(fl.detail), object), {}),
        "estimated_charge_ah": var(
            np.abs(fl.estimate_ah), "A h", "gap charge estimate counted in this cycle"
        ),
        "start_time_second": var(tab.t0, "s", "test time of the first active sample"),
        "end_time_second": var(tab.t1, "s", "test time of the last active sample"),
    }
    attrs = _dataset_attrs(summary)
    ds = xr.Dataset(data, coords={"cycle": ("cycle", tab.cycle, {"units": "1"})}, attrs=attrs)
    for name in ("incomplete_reason", "incomplete_detail"):
        ds[name] = ds[name].astype(str)
    return ds
