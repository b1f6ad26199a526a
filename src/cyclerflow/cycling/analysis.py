"""Per-cycle table and per-cell summary: capacity, energy, CE, retention, fade.

:func:`analyze_cycling` returns the JSON-ready ``cycling`` object of DESIGN.md and an
``xr.Dataset`` over ``cycle`` with every per-cycle quantity (units attributes and
provenance attributes). Definitions are in docs/cycling.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from cyclerflow.cycling.fade import first_below, robust_line
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


def _safety_stop_times(events: Iterable[dict] | None) -> np.ndarray | None:
    if not events:
        return None
    ts = [
        e.get("test_time_second")
        for e in events
        if e.get("kind") == "safety_stop" and e.get("test_time_second") is not None
    ]
    ts = [float(t) for t in ts if math.isfinite(float(t))]
    return np.asarray(ts, "f8") if ts else None


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


def _per_cycle(seg: Segmentation, s) -> dict[str, np.ndarray]:
    """Sum run integrals into cycles (vectorised with bincount)."""
    act = np.flatnonzero(seg.active)
    rc = seg.run_cycle[act]
    cycles, inv = np.unique(rc, return_inverse=True)
    m = len(cycles)
    pos = seg.sign[act] > 0
    q = seg.q_as[act] / 3600.0
    e = seg.e_ws[act] / 3600.0
    qc = np.bincount(inv, weights=np.where(pos, q, 0.0), minlength=m)
    qd = -np.bincount(inv, weights=np.where(pos, 0.0, q), minlength=m)
    ec = np.bincount(inv, weights=np.where(pos, e, 0.0), minlength=m)
    ed = -np.bincount(inv, weights=np.where(pos, 0.0, e), minlength=m)
    n_ch = np.bincount(inv, weights=pos.astype("f8"), minlength=m)
    n_dis = np.bincount(inv, weights=(~pos).astype("f8"), minlength=m)
    # first / last active run of each cycle
    _, first_idx = np.unique(inv, return_index=True)
    _, last_rev = np.unique(inv[::-1], return_index=True)
    last_idx = len(inv) - 1 - last_rev
    first_run, last_run = act[first_idx], act[last_idx]
    t0 = s.t[seg.starts[first_run]]
    t1 = s.t[seg.ends[last_run] - 1]
    first_dir = seg.sign[first_run].astype("i8")
    # cut-short halves -> cycles
    cut = np.zeros(m, bool)
    reason = [""] * m
    cyc_pos = {int(c): k for k, c in enumerate(cycles)}
    for h in np.flatnonzero(seg.half_cut_short):
        runs = np.flatnonzero(seg.run_half == h)
        for c in np.unique(seg.run_cycle[runs]):
            k = cyc_pos[int(c)]
            cut[k] = True
            reason[k] = reason[k] or seg.half_cut_reason[h]
    return {
        "cycle": cycles.astype("i8"),
        "qc": qc,
        "qd": qd,
        "ec": ec,
        "ed": ed,
        "n_ch": n_ch,
        "n_dis": n_dis,
        "t0": t0,
        "t1": t1,
        "first_dir": first_dir,
        "cut": cut,
        "cut_reason": reason,
    }


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
    events: the cell's events (``cyclerflow.store.read_events``); ``safety_stop``
        events mark the half-cycle they fall in as cut short.
    current_sampling: ``"instantaneous"`` (trapezoid, default) or ``"interval_mean"``
        (rectangle rule, for currents averaged over the preceding interval such as
        BioLogic ``<I>``); default from ``ds.current_ampere.attrs["sampling"]``.

    Returns ``(summary, per_cycle)``: a JSON-ready dict (no NaN; ``None`` where a value
    cannot be computed) and an ``xr.Dataset`` over ``cycle``.
    Raises :class:`InputError` when no complete cycle exists or the reference cycle is
    not a complete cycle.
    """
    th = thresholds or Thresholds()
    s = prepare_samples(ds, current_sampling)
    where = s.source or None
    seg = segment(s, th, first_half=first_half, safety_stop_times=_safety_stop_times(events))
    pc = _per_cycle(seg, s)
    fh = seg.first_half
    q_in, q_out = (pc["qc"], pc["qd"]) if fh == CHARGE else (pc["qd"], pc["qc"])
    e_in, e_out = (pc["ec"], pc["ed"]) if fh == CHARGE else (pc["ed"], pc["ec"])
    n_in, n_out = (pc["n_ch"], pc["n_dis"]) if fh == CHARGE else (pc["n_dis"], pc["n_ch"])
    cycles = pc["cycle"]
    m = len(cycles)

    complete = np.ones(m, bool)
    reasons = list(pc["cut_reason"])
    for k in range(m):
        r = ""
        if n_in[k] == 0:
            r = f"no {DIRECTION_NAME[fh]} half-cycle"
        elif n_out[k] == 0:
            r = f"no {DIRECTION_NAME[-fh]} half-cycle"
        elif pc["first_dir"][k] != fh:
            r = f"starts with {DIRECTION_NAME[-fh]} (cycles start with {DIRECTION_NAME[fh]})"
        elif pc["cut"][k]:
            r = reasons[k]
        if r:
            complete[k] = False
            reasons[k] = r
        else:
            reasons[k] = ""
    if seg.cycle_source.startswith("current") and m and cycles[0] == 0:
        complete[0] = False
        reasons[0] = reasons[0] or "half-cycle before the first full cycle"

    if not complete.any():
        why = "; ".join(f"cycle {c}: {r}" for c, r in zip(cycles[:5], reasons[:5], strict=True))
        raise InputError(f"no complete cycle found ({why})", path=where)

    ce = np.where(complete, _div(q_out, q_in), np.nan)
    ee = np.where(complete, _div(e_out, e_in), np.nan)
    v_ch = _div(pc["ec"], pc["qc"])
    v_dis = _div(pc["ed"], pc["qd"])
    hyst = v_ch - v_dis

    complete_cycles = cycles[complete]
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
    k_ref = int(np.flatnonzero(cycles == ref)[0])
    q_ref = pc["qd"][k_ref]
    retention = np.where(complete, pc["qd"] / q_ref, np.nan) if q_ref > 0 else np.full(m, np.nan)

    k_first = int(np.flatnonzero(complete)[0])
    irreversible = q_in[k_first] - q_out[k_first]

    # fade fit
    if fade_window is None:
        lo, hi = ref, int(complete_cycles[-1])
    else:
        lo, hi = int(fade_window[0]), int(fade_window[1])
        if hi < lo:
            raise InputError(f"fade window ({lo}, {hi}) is empty", where="fade_window")
    sel = complete & (cycles >= lo) & (cycles <= hi) & np.isfinite(retention)
    fade = fade_se = intercept = None
    n_fit = int(sel.sum())
    if n_fit >= 3:
        fit = robust_line(cycles[sel].astype("f8"), retention[sel], x0=float(ref))
        fade, fade_se, intercept = -fit.slope, fit.slope_stderr, fit.intercept
    below = first_below(cycles[complete], retention[complete], RETENTION_LEVEL)
    extrap = None
    if fade is not None and fade > 0 and intercept is not None:
        extrap = ref + (intercept - RETENTION_LEVEL) / fade

    # CE statistics: complete cycles after the first complete one (formation excluded)
    ce_sel = complete.copy()
    ce_sel[k_first] = False
    if not ce_sel.any():
        ce_sel = complete.copy()
    ce_vals = ce[ce_sel]
    ce_stats = {
        "ce_mean": _f(np.mean(ce_vals)),
        "ce_median": _f(np.median(ce_vals)),
        "ce_std": _f(np.std(ce_vals, ddof=1)) if len(ce_vals) > 1 else None,
        "ce_min": _f(np.min(ce_vals)),
        "ce_max": _f(np.max(ce_vals)),
        "ce_cycles": [int(cycles[ce_sel][0]), int(cycles[ce_sel][-1])],
        "ce_n": int(len(ce_vals)),
    }

    norm, norm_notes = normalisation(meta)
    area, thick, mass = norm["area_cm2"], norm["cathode_thickness_um"], norm["cathode_mass_g"]
    qd_uah = pc["qd"] * 1e6
    per_area = qd_uah / area if area else np.full(m, np.nan)
    per_area_um = per_area / thick if (area and thick) else np.full(m, np.nan)
    per_g = pc["qd"] * 1e3 / mass if mass else np.full(m, np.nan)

    ce_conv = CE_CONVENTION_CHARGE_FIRST if fh == CHARGE else CE_CONVENTION_DISCHARGE_FIRST
    rows = []
    for k in range(m):
        rows.append(
            {
                "cycle": int(cycles[k]),
                "charge_capacity_ah": _f(pc["qc"][k]),
                "discharge_capacity_ah": _f(pc["qd"][k]),
                "coulombic_efficiency": _f(ce[k]),
                "capacity_retention": _f(retention[k]),
                "charge_energy_wh": _f(pc["ec"][k]),
                "discharge_energy_wh": _f(pc["ed"][k]),
                "discharge_capacity_uah_per_cm2": _f(per_area[k]),
                "discharge_capacity_uah_per_cm2_um": _f(per_area_um[k]),
                "discharge_capacity_mah_per_g": _f(per_g[k]),
                "energy_efficiency": _f(ee[k]),
                "mean_charge_voltage_v": _f(v_ch[k]),
                "mean_discharge_voltage_v": _f(v_dis[k]),
                "voltage_hysteresis_v": _f(hyst[k]),
                "complete": bool(complete[k]),
                "incomplete_reason": reasons[k] or None,
            }
        )
    summary: dict[str, Any] = {
        "reference_cycle": ref,
        "fade_rate_per_cycle": _f(fade),
        "first_cycle_irreversible_ah": _f(irreversible),
        "cycles": rows,
        "first_half": DIRECTION_NAME[fh],
        "first_half_detected": DIRECTION_NAME[seg.first_half_detected],
        "cycle_source": seg.cycle_source,
        "ce_convention": ce_conv,
        "retention_basis": RETENTION_BASIS,
        "reference_discharge_capacity_ah": _f(q_ref),
        "first_complete_cycle": int(cycles[k_first]),
        "fade_rate_stderr_per_cycle": _f(fade_se),
        "fade_fit_intercept": _f(intercept),
        "fade_window": [lo, hi],
        "fade_method": "Huber-IRLS straight line of capacity_retention vs cycle (MAD scale)",
        "fade_n_cycles": n_fit,
        "cycles_to_80_percent": below,
        "cycles_to_80_percent_extrapolated": _f(extrap),
        **ce_stats,
        "n_cycles": int(m),
        "n_complete_cycles": int(complete.sum()),
        "incomplete_cycles": [
            {"cycle": int(cycles[k]), "reason": reasons[k]} for k in np.flatnonzero(~complete)
        ],
        "dropped_samples": int(s.n_dropped),
        "current_sampling": s.current_sampling,
        "reference_current_a": _f(seg.i_ref_a),
        "current_noise_a": _f(seg.noise_a),
        "rest_threshold_a": _f(seg.threshold_a),
        "thresholds": th.as_attrs(),
        "normalisation": {k: _f(v) for k, v in norm.items()},
        "notes": seg.notes + norm_notes,
    }

    per_cycle = _dataset(
        cycles,
        pc,
        ce=ce,
        ee=ee,
        retention=retention,
        v_ch=v_ch,
        v_dis=v_dis,
        hyst=hyst,
        complete=complete,
        reasons=reasons,
        per_area=per_area,
        per_area_um=per_area_um,
        per_g=per_g,
        summary=summary,
    )
    return summary, per_cycle


def _ranges(c: np.ndarray) -> str:
    c = np.asarray(c)
    if len(c) == 0:
        return "none"
    brk = np.flatnonzero(np.diff(c) != 1)
    lo = np.r_[c[0], c[brk + 1]]
    hi = np.r_[c[brk], c[-1]]
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(lo, hi, strict=True)]
    return ", ".join(parts[:10]) + (" ..." if len(parts) > 10 else "")


def _dataset(cycles, pc, *, summary, reasons, **v) -> xr.Dataset:
    def var(data, units, long_name):
        return ("cycle", np.asarray(data), {"units": units, "long_name": long_name})

    data = {
        "charge_capacity_ah": var(pc["qc"], "A h", "charge capacity"),
        "discharge_capacity_ah": var(pc["qd"], "A h", "discharge capacity"),
        "charge_energy_wh": var(pc["ec"], "W h", "charge energy"),
        "discharge_energy_wh": var(pc["ed"], "W h", "discharge energy"),
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
            v["complete"].astype("i1"),
            {"units": "1", "flag_values": [0, 1], "flag_meanings": "incomplete complete"},
        ),
        "incomplete_reason": ("cycle", np.asarray([r or "" for r in reasons], dtype=object), {}),
        "start_time_second": var(pc["t0"], "s", "test time of the first active sample"),
        "end_time_second": var(pc["t1"], "s", "test time of the last active sample"),
    }
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
    ds = xr.Dataset(data, coords={"cycle": ("cycle", cycles, {"units": "1"})}, attrs=attrs)
    ds["incomplete_reason"] = ds["incomplete_reason"].astype(str)
    return ds
