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


def _key(dt: float) -> str:
    return f"r_{dt:g}s_ohm"


def dcir(rec: Record, cycle_of, opt: DcirOptions = DcirOptions()) -> list[dict]:
    """One entry per step change with a resolved delay: time, ΔI, cycle, R per delay.

    ``cycle_of(times)`` maps test times (s) to cycle numbers (or -1)."""
    tab = dcir_table(rec, opt)
    cyc = cycle_of(tab.time_s)
    rs = np.column_stack([tab.r_ohm[dt] for dt in opt.times_s]) if len(tab.step) else None
    out = []
    for n in range(len(tab.step)):
        row = rs[n]
        if np.isnan(row).all():
            continue
        entry = {
            "time_s": float(tab.time_s[n]),
            "step": int(tab.step[n]),
            "cycle": None if cyc[n] < 0 else int(cyc[n]),
            "delta_current_a": float(tab.delta_i_a[n]),
        }
        entry.update(
            {
                _key(dt): (None if np.isnan(r) else float(r))
                for dt, r in zip(opt.times_s, row, strict=True)
            }
        )
        out.append(entry)
    return out
