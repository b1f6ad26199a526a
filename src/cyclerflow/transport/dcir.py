"""DCIR: resistance at chosen times after every current step change.

For a step change between step k-1 and step k (|ΔI| above ``jump_fraction`` x the
record's reference current, with ΔI = first current of step k - last current of step
k-1), with t0 and V0 the time and voltage of the last sample before the change,

    R(dt) = (V(t0 + dt) - V0) / ΔI

for each dt of ``times_s`` that the sampling resolves: a sample of step k lies within
``tolerance`` x dt of t0 + dt (its voltage is used as is; no interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cyclerflow.transport.steps import Record

METHOD = "R(dt) = (V(t0+dt) - V(t0)) / dI at each current step change; t0 = last sample before"


@dataclass(frozen=True)
class DcirOptions:
    """times_s: delays after the step (s); tolerance: relative time match of a sample;
    jump_fraction: minimum |ΔI| / reference current."""

    times_s: tuple[float, ...] = (0.1, 1.0, 10.0, 30.0)
    tolerance: float = 0.1
    jump_fraction: float = 0.05


@dataclass(frozen=True)
class DcirTable:
    """One row per step change: time (s), ΔI (A), step index, cycle and R per delay (Ω)."""

    time_s: np.ndarray
    delta_i_a: np.ndarray
    step: np.ndarray
    r_ohm: dict[float, np.ndarray]


def dcir_table(rec: Record, opt: DcirOptions = DcirOptions()) -> DcirTable:
    """Vectorised over all step changes of the record."""
    st, t, v, i = rec.steps, rec.t, rec.v, rec.i
    k = np.arange(1, len(st))
    a = st.start[k]
    di = i[a] - i[a - 1]
    keep = np.abs(di) > opt.jump_fraction * rec.i_ref
    k, a, di = k[keep], a[keep], di[keep]
    t0, v0, end = t[a - 1], v[a - 1], st.end[k]
    out: dict[float, np.ndarray] = {}
    for dt in opt.times_s:
        target = t0 + dt
        j = np.searchsorted(t, target)
        j = np.clip(j, 1, len(t) - 1)
        left = np.abs(t[j - 1] - target) < np.abs(t[j] - target)
        j = np.where(left, j - 1, j)
        ok = (j >= a) & (j < end) & (np.abs(t[j] - target) <= opt.tolerance * dt)
        out[dt] = np.where(ok, (v[j] - v0) / di, np.nan)
    return DcirTable(time_s=t0, delta_i_a=di, step=k, r_ohm=out)


def key(dt: float) -> str:
    """JSON key of the resistance at delay dt (s): ``r_0.1s_ohm``."""
    return f"r_{dt:g}s_ohm"


def dcir(rec: Record, cycle_of, opt: DcirOptions = DcirOptions()) -> tuple[list[dict], DcirTable]:
    """One entry per step change with a resolved delay: time, ΔI, cycle, R per delay
    (None where the sampling does not resolve it); and the table itself.

    ``cycle_of(times)`` maps test times (s) to cycle numbers (or -1)."""
    tab = dcir_table(rec, opt)
    cyc = cycle_of(tab.time_s)
    if len(tab.step) == 0:
        return [], tab
    rs = np.column_stack([tab.r_ohm[dt] for dt in opt.times_s])
    keep = ~np.isnan(rs).all(axis=1)
    keys = [key(dt) for dt in opt.times_s]
    cols = [np.where(np.isnan(rs[keep, j]), None, rs[keep, j]).tolist() for j in range(len(keys))]
    cyc_list = np.where(cyc[keep] < 0, None, cyc[keep]).tolist()
    base = zip(
        tab.time_s[keep].tolist(),
        tab.step[keep].tolist(),
        cyc_list,
        tab.delta_i_a[keep].tolist(),
        strict=True,
    )
    out = []
    for n, (t0, k, c, di) in enumerate(base):
        entry = {"time_s": t0, "step": k, "cycle": c, "delta_current_a": di}
        for name, col in zip(keys, cols, strict=True):
            entry[name] = col[n]
        out.append(entry)
    return out, tab


def group_medians(
    groups: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group keys, median of the finite values, count) per group, vectorised."""
    ok = np.isfinite(values)
    g, x = groups[ok], values[ok]
    if len(g) == 0:
        return np.zeros(0, groups.dtype), np.zeros(0), np.zeros(0, "i8")
    order = np.lexsort((x, g))
    g, x = g[order], x[order]
    keys, first, count = np.unique(g, return_index=True, return_counts=True)
    lo = first + (count - 1) // 2
    hi = first + count // 2
    return keys, 0.5 * (x[lo] + x[hi]), count


def by_cycle(tab: DcirTable, cycles: np.ndarray, opt: DcirOptions = DcirOptions()) -> list[dict]:
    """Median R (Ω) per cycle, direction of the current change and delay."""
    ok = cycles >= 0
    direction = (tab.delta_i_a > 0).astype("i8")
    groups = np.where(ok, cycles * 2 + direction, -1)
    table: dict[int, dict] = {}
    for dt in opt.times_s:
        keys, med, cnt = group_medians(groups[ok], tab.r_ohm[dt][ok])
        for g, m, c in zip(keys.tolist(), med.tolist(), cnt.tolist(), strict=True):
            row = table.setdefault(
                g,
                {"cycle": g // 2, "current_change": "up" if g % 2 else "down", "n": 0},
            )
            row[key(dt)] = m
            row["n"] = max(row["n"], c)
    names = [key(dt) for dt in opt.times_s]
    return [{**{n: None for n in names}, **table[g]} for g in sorted(table)]
