"""Cycle types: classify cycles by protocol and report retention and fade per type.

Many records interleave slow reference (diagnostic) cycles with fast ageing cycles; a
single retention curve then jumps between the two. Each cycle is described by its
protocol features, taken from the record's steps (:mod:`cyclerflow.transport.steps`):

- median constant-current charge and discharge currents (|A|);
- voltage window: highest end-of-charge and lowest end-of-discharge step voltage (V);
- whether it has a CV hold on charge;
- total rest time (s), as a fraction of the cycle's duration.

Values of one feature are grouped by single linkage: sorted, a new group starts where
the next value differs by more than the tolerance (currents: a ratio of
``ratio_tolerance``; voltages: the larger of ``voltage_tolerance`` x the span of the
cycles' end voltages and ``voltage_level_tolerance`` x their median level, so cycles
ended by time rather than voltage do not split; rest fractions: ``rest_fraction_step``). A
cycle type is one combination of groups, numbered in order of first appearance.
Retention per type = discharge capacity / that of the type's first complete cycle;
fade = Huber straight line of that retention vs cycle number; end of life = first cycle
of the type whose median-filtered retention is below 80 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cyclerflow.cycling.fade import first_below, robust_line
from cyclerflow.transport.steps import CC, CV, REST, Record


@dataclass(frozen=True)
class TypeOptions:
    """Tolerances of the grouping (see module docstring)."""

    ratio_tolerance: float = 1.25
    voltage_tolerance: float = 0.02
    voltage_level_tolerance: float = 0.01
    rest_fraction_step: float = 0.1
    retention_level: float = 0.8


@dataclass(frozen=True)
class Features:
    """Per cycle (in the order of ``cycle``): protocol features; NaN where absent."""

    cycle: np.ndarray
    i_charge: np.ndarray
    i_discharge: np.ndarray
    v_max: np.ndarray
    v_min: np.ndarray
    cv_hold: np.ndarray
    rest_s: np.ndarray
    rest_fraction: np.ndarray


def _median_by(pos: np.ndarray, values: np.ndarray, m: int) -> np.ndarray:
    out = np.full(m, np.nan)
    if len(pos) == 0:
        return out
    order = np.lexsort((values, pos))
    p, x = pos[order], values[order]
    keys, first, count = np.unique(p, return_index=True, return_counts=True)
    out[keys] = 0.5 * (x[first + (count - 1) // 2] + x[first + count // 2])
    return out


def features(rec: Record, cycles: np.ndarray, starts_s: np.ndarray) -> Features:
    """Protocol features of each cycle from the steps that start within it."""
    st, m = rec.steps, len(cycles)
    t_step = rec.t[st.start]
    pos = np.searchsorted(starts_s, t_step, side="right") - 1
    inside = pos >= 0
    v_end = rec.v[st.end - 1]
    dur = st.duration(rec.t)
    ch = inside & (st.kind == CC) & (st.current > 0)
    dis = inside & (st.kind == CC) & (st.current < 0)
    v_max = np.full(m, -np.inf)
    v_min = np.full(m, np.inf)
    act = inside & (st.kind != REST)
    np.maximum.at(v_max, pos[act & (st.current > 0)], v_end[act & (st.current > 0)])
    np.minimum.at(v_min, pos[act & (st.current < 0)], v_end[act & (st.current < 0)])
    cvh = inside & (st.kind == CV) & (st.current > 0)
    rest = inside & (st.kind == REST)
    rest_s = np.bincount(pos[rest], weights=dur[rest], minlength=m)[:m]
    span = np.diff(np.append(starts_s, rec.t[-1]))
    return Features(
        cycle=cycles,
        i_charge=_median_by(pos[ch], np.abs(st.current[ch]), m),
        i_discharge=_median_by(pos[dis], np.abs(st.current[dis]), m),
        v_max=np.where(np.isfinite(v_max), v_max, np.nan),
        v_min=np.where(np.isfinite(v_min), v_min, np.nan),
        cv_hold=np.bincount(pos[cvh], minlength=m)[:m] > 0,
        rest_s=rest_s,
        rest_fraction=np.where(span > 0, rest_s / np.where(span > 0, span, 1.0), np.nan),
    )


def link_groups(x: np.ndarray, *, ratio: float | None = None, step: float | None = None):
    """Group ids by single linkage on sorted values (NaN -> its own group -1)."""
    out = np.full(len(x), -1, "i8")
    ok = np.isfinite(x)
    if not ok.any():
        return out
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(x[ok], kind="stable")]
    xs = x[order]
    if ratio is not None:
        xs = np.log(np.maximum(xs, 1e-300))
        gap = np.log(ratio)
    else:
        gap = step
    out[order] = np.concatenate(([0], np.cumsum(np.diff(xs) > gap)))
    return out


def classify(f: Features, opt: TypeOptions = TypeOptions()) -> np.ndarray:
    """Cycle type (1, 2, ...) per cycle, numbered in order of first appearance."""
    volts = np.r_[f.v_max, f.v_min]
    volts = volts[np.isfinite(volts)]
    span = float(np.ptp(volts)) if len(volts) else 0.0
    level = float(np.median(np.abs(volts))) if len(volts) else 0.0
    v_step = max(opt.voltage_tolerance * span, opt.voltage_level_tolerance * level, 1e-9)
    keys = np.stack(
        [
            link_groups(f.i_charge, ratio=opt.ratio_tolerance),
            link_groups(f.i_discharge, ratio=opt.ratio_tolerance),
            link_groups(f.v_max, step=v_step),
            link_groups(f.v_min, step=v_step),
            f.cv_hold.astype("i8"),
            link_groups(f.rest_fraction, step=opt.rest_fraction_step),
        ],
        axis=1,
    )
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), "i8")
    rank[np.argsort(first)] = np.arange(1, len(first) + 1)
    return rank[inverse.ravel()]


def _describe(f: Features, sel: np.ndarray) -> dict[str, Any]:
    def med(a):
        a = a[sel]
        a = a[np.isfinite(a)]
        return float(np.median(a)) if len(a) else None

    return {
        "charge_current_a": med(f.i_charge),
        "discharge_current_a": med(f.i_discharge),
        "upper_voltage_v": med(f.v_max),
        "lower_voltage_v": med(f.v_min),
        "cv_hold": bool(np.any(f.cv_hold[sel])),
        "rest_s": med(f.rest_s),
    }


def by_type(
    f: Features, types: np.ndarray, q_dis: np.ndarray, complete: np.ndarray, opt=TypeOptions()
) -> list[dict[str, Any]]:
    """Per type: protocol, cycles, retention (per cycle), fade and end of life."""
    out = []
    for ty in np.unique(types):
        sel = types == ty
        good = sel & complete & np.isfinite(q_dis) & (q_dis > 0)
        entry: dict[str, Any] = {"cycle_type": int(ty), "n_cycles": int(sel.sum())}
        entry["protocol"] = _describe(f, sel)
        if not good.any():
            out.append({**entry, "retention": [], "fade_rate_per_cycle": None})
            continue
        cyc = f.cycle[good]
        ret = q_dis[good] / q_dis[good][0]
        fit = robust_line(cyc.astype("f8"), ret, x0=float(cyc[0])) if len(cyc) >= 3 else None
        entry.update(
            {
                "reference_cycle": int(cyc[0]),
                "reference_discharge_capacity_ah": float(q_dis[good][0]),
                "retention": [
                    {"cycle": int(c), "capacity_retention": float(r)}
                    for c, r in zip(cyc, ret, strict=True)
                ],
                "fade_rate_per_cycle": None if fit is None else fit.slope,
                "cycles_to_80_percent": first_below(cyc, ret, opt.retention_level),
            }
        )
        out.append(entry)
    out.sort(key=lambda e: -e["n_cycles"])
    return out


def add_cycle_types(summary: dict[str, Any], per_cycle, rec: Record) -> None:
    """Classify the cycles of an ``analyze_cycling`` result in place: ``cycle_type`` per
    cycle row and per-cycle variable, ``by_cycle_type`` and its method in the summary."""
    cycles = np.asarray(per_cycle["cycle"].values, "i8")
    starts = np.asarray(per_cycle["start_time_second"].values, "f8")
    f = features(rec, cycles, starts)
    types = classify(f)
    for row, ty in zip(summary["cycles"], types, strict=True):
        row["cycle_type"] = int(ty)
    per_cycle["cycle_type"] = ("cycle", types, {"units": "1", "long_name": "cycle type"})
    q_dis = np.asarray(per_cycle["discharge_capacity_ah"].values, "f8")
    complete = np.asarray(per_cycle["complete"].values).astype(bool)
    summary["by_cycle_type"] = by_type(f, types, q_dis, complete)
    summary["cycle_type_method"] = (
        "single-linkage groups of median CC charge / discharge current (ratio 1.25), "
        "end-of-charge / end-of-discharge voltage (max of 2 % of their span, 1 % of their "
        "level), CV hold, rest fraction of the cycle (gap 0.1); retention per type vs "
        "its first complete cycle"
    )
