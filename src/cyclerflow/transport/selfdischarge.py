"""Self-discharge and soft shorts: open-circuit rests, CV float holds, stalled charges,
coulombic-efficiency anomalies (docs/transport.md).

Capacity basis Q: the metadata's nominal capacity when given, else the largest charge
sequence of the record. Soft-short bound: a leakage above ``short_percent_per_day`` of Q
per day (so the bound scales with capacity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cyclerflow.transport.capacity import ChargeSequences, charge_sequences, dv_dq_at
from cyclerflow.transport.fitting import finite, fit_line
from cyclerflow.transport.steps import CC, CV, REST, Record, held_end


@dataclass(frozen=True)
class SelfDischargeOptions:
    """min_rest_s / min_float_s: shortest rest / CV hold analysed (s); short_percent_per_day:
    soft-short leakage bound (% of capacity per day); faster_factor: a rest losing charge
    this many times faster than the median of the cell's earlier rests is flagged;
    stall_fraction: charge (fraction of Q) passed after the voltage maximum of a CC
    charge step, with the voltage falling by more than ``stall_drop`` x the record's
    voltage span (of step end voltages), that counts as a stalled charge."""

    min_rest_s: float = 1800.0
    min_float_s: float = 1800.0
    short_percent_per_day: float = 1.0
    faster_factor: float = 3.0
    stall_fraction: float = 0.02
    stall_drop: float = 0.01


@dataclass(frozen=True)
class Basis:
    """Capacity basis (Ah) and where it came from; area (cm²) or None; bound (A)."""

    capacity_ah: float | None
    source: str
    area_cm2: float | None
    bound_a: float | None


def basis(rec: Record, seqs: ChargeSequences, meta, opt: SelfDischargeOptions) -> Basis:
    """Capacity basis, area and soft-short leakage bound."""
    nominal = None if meta is None else meta.nominal_capacity_ah
    area = None if meta is None else meta.active_area_cm2
    if nominal:
        cap, src = nominal, "nominal_capacity_uah (metadata)"
    elif len(seqs.charge_as) and seqs.charge_as.max() > 0:
        cap, src = float(seqs.charge_as.max()) / 3600.0, "largest charge in the record"
    else:
        cap, src = None, "none (no charge in the record, no nominal capacity)"
    bound = None if cap is None else cap * opt.short_percent_per_day / 100.0 / 24.0
    return Basis(cap, src, area, bound)


def _rates(leak_a: float | None, b: Basis) -> dict:
    per_day = None
    if leak_a is not None and b.capacity_ah:
        per_day = leak_a * 24.0 / b.capacity_ah * 100.0
    return {
        "leakage_a": finite(leak_a),
        "leakage_a_per_cm2": finite(leak_a / b.area_cm2)
        if leak_a is not None and b.area_cm2
        else None,
        "rate_percent_per_day": finite(per_day),
        "rate_percent_per_year": finite(None if per_day is None else per_day * 365.25),
    }


def ocv_rests(rec: Record, seqs, b: Basis, opt: SelfDischargeOptions) -> list[dict]:
    """Open-circuit rests after a charge: dV/dt over the rest's second half -> leakage."""
    st, t, v = rec.steps, rec.t, rec.v
    dur = st.duration(t)
    out: list[dict] = []
    earlier: list[float] = []
    steps = np.arange(len(st))
    last_active = np.maximum.accumulate(np.where(st.kind != REST, steps, -1))
    for k in np.flatnonzero((st.kind == REST) & (dur >= opt.min_rest_s)):
        prev = last_active[k]
        if prev < 0 or st.current[prev] <= 0:
            continue
        a, b_ = int(st.start[k]), int(st.end[k])
        half = t[a:b_] >= t[a] + 0.5 * dur[k]
        line = fit_line(t[a:b_][half], v[a:b_][half])
        slope = None if line is None else line.slope
        dvdq = dv_dq_at(rec, seqs, int(k), float(v[b_ - 1]))
        leak = -slope / dvdq if slope is not None and dvdq else None
        row = {
            "method": "ocv_rest",
            "time_s": float(t[a]),
            "duration_s": float(dur[k]),
            "voltage_v": float(v[b_ - 1]),
            "dv_dt_v_per_s": finite(slope),
            "dv_dq_v_per_c": finite(dvdq),
            **_rates(leak, b),
        }
        row["flagged"], row["evidence"] = _judge_rest(leak, earlier, b, opt)
        if leak is not None:
            earlier.append(leak)
        out.append(row)
    return out


def _judge_rest(leak, earlier: list[float], b: Basis, opt) -> tuple[bool, str]:
    if leak is None or b.bound_a is None:
        return False, ""
    if leak > b.bound_a:
        return True, f"leakage {leak:.3g} A above the bound {b.bound_a:.3g} A"
    if earlier:
        ref = float(np.median(earlier))
        if ref > 0 and leak > opt.faster_factor * ref and leak > 0.1 * b.bound_a:
            return True, f"voltage falls {leak / ref:.1f}x faster than the cell's earlier rests"
    return False, ""


def floats(rec: Record, b: Basis, opt: SelfDischargeOptions) -> list[dict]:
    """CV holds on charge: the settled current of the last 10 % of the hold is the leakage
    (the hold includes its tail below the rest threshold, :func:`held_end`)."""
    st, t, i = rec.steps, rec.t, rec.i
    out = []
    for k in np.flatnonzero((st.kind == CV) & (st.current > 0)):
        a, b_ = int(st.start[k]), held_end(rec, int(k))
        tt, ii = t[a:b_], i[a:b_]
        dur = float(tt[-1] - t[a - 1]) if a > 0 else float(tt[-1] - tt[0])
        if dur < opt.min_float_s:
            continue
        frac = (tt - tt[0]) / (tt[-1] - tt[0])
        last, prev = ii[frac >= 0.9], ii[(frac >= 0.8) & (frac < 0.9)]
        if len(last) == 0 or len(prev) == 0:
            continue
        leak = float(last.mean())
        settled = bool(abs(prev.mean() - leak) <= 0.1 * abs(leak))
        flagged = bool(settled and b.bound_a is not None and leak > b.bound_a)
        out.append(
            {
                "method": "float",
                "time_s": float(tt[0]),
                "duration_s": dur,
                "voltage_v": float(np.median(rec.v[a:b_])),
                "settled": settled,
                **_rates(leak, b),
                "flagged": flagged,
                "evidence": f"float current {leak:.3g} A above the bound {b.bound_a:.3g} A"
                if flagged
                else "",
            }
        )
    return out


def stalls(rec: Record, b: Basis, opt: SelfDischargeOptions) -> list[dict]:
    """CC charge steps whose voltage falls after its maximum while charge still flows in,
    and whose maximum stays short of the cell's usual (median) CC-charge maximum: charge
    input without voltage rise, judged against the cell's own other charges."""
    if not b.capacity_ah:
        return []
    st, t, v = rec.steps, rec.t, rec.v
    ends = v[st.end - 1]
    tol = opt.stall_drop * (float(ends.max() - ends.min()) if len(ends) else 0.0)
    ks = np.flatnonzero((st.kind == CC) & (st.current > 0))
    peak = np.array([int(st.start[k]) + int(np.argmax(v[st.start[k] : st.end[k]])) for k in ks])
    if len(ks) < 2:
        return []
    usual = float(np.median(v[peak]))
    out = []
    for k, m in zip(ks.tolist(), peak.tolist(), strict=True):
        last = int(st.end[k]) - 1
        after = st.current[k] * (t[last] - t[m]) / 3600.0  # constant current
        drop = float(v[m] - v[last])
        short_of = usual - float(v[m])
        if after >= opt.stall_fraction * b.capacity_ah and drop > tol and short_of > tol:
            out.append(
                {
                    "method": "charge_stall",
                    "time_s": float(t[m]),
                    "flagged": True,
                    "charge_after_peak_ah": after,
                    "voltage_drop_v": drop,
                    "evidence": f"{after:.3g} Ah charged after the voltage peaked at "
                    f"{v[m]:.4g} V (the cell's charges usually reach {usual:.4g} V) while it "
                    f"fell by {drop:.3g} V",
                }
            )
    return out


def self_discharge(rec: Record, meta, opt: SelfDischargeOptions = SelfDischargeOptions()):
    """(events list, basis) for rests, floats and stalled charges of one record."""
    seqs = charge_sequences(rec)
    b = basis(rec, seqs, meta, opt)
    events = ocv_rests(rec, seqs, b, opt) + floats(rec, b, opt) + stalls(rec, b, opt)
    events.sort(key=lambda e: e["time_s"])
    return events, b
