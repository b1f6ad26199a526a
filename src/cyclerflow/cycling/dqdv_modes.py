"""Degradation-mode tracking from dQ/dV peaks, from constant-current segments only.

dQ/dV is taken only over constant-current steps (:mod:`cyclerflow.transport.steps`):
a CV hold adds charge at a fixed voltage and would make an unbounded spike. Per cycle
and direction, the CC samples give Q(V); Q is interpolated onto a uniform voltage grid
of ``grid_points`` points over the curve's range and differentiated by a
Savitzky–Golay filter (polynomial order 2, window ``window_fraction`` of the grid, at
least 5 points): that is the smoothing. Peaks: ``scipy.signal.find_peaks`` with a
prominence of at least ``min_prominence`` x the curve's maximum; per peak its voltage
(V), height (Ah/V) and area (Ah, integral of dQ/dV between the peak's bases).

Peaks of the first analysed cycle are tracked through later cycles (nearest peak within
``match_fraction`` x the voltage range of where it was last found): position drift
(V/cycle, Huber line) and relative change of height and area, first to last cycle.
Shifts of peak positions point to resistance growth / loss of lithium inventory,
shrinking areas to loss of active material of the electrode whose stage the peak
belongs to (docs/transport.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import find_peaks, savgol_filter

from cyclerflow.cycling.fade import robust_line
from cyclerflow.transport.steps import CC, Record


@dataclass(frozen=True)
class DqdvOptions:
    """Grid, smoothing, peak and tracking settings (see module docstring)."""

    grid_points: int = 400
    window_fraction: float = 0.02
    min_prominence: float = 0.05
    match_fraction: float = 0.05
    max_cycles: int = 100
    direction: str = "discharge"

    @property
    def window(self) -> int:
        """Savitzky–Golay window (odd number of grid points, at least 5)."""
        return max(5, int(self.window_fraction * self.grid_points) | 1)


def cc_curve(rec: Record, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, |Q| in Ah from 0) over the given CC steps, charge accumulated across them."""
    vs, qs, offset = [], [], 0.0
    for k in steps:
        q = np.abs(rec.q_local(int(k)) - rec.step_q0[k]) / 3600.0
        vs.append(rec.v[rec.steps.start[k] : rec.steps.end[k]])
        qs.append(offset + q)
        offset += q[-1]
    if not vs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(vs), np.concatenate(qs)


def dqdv_curve(v: np.ndarray, q: np.ndarray, opt: DqdvOptions) -> tuple[np.ndarray, np.ndarray]:
    """(voltage grid V, |dQ/dV| Ah/V), Savitzky–Golay on Q interpolated onto the grid."""
    if len(v) < 10 or np.ptp(v) <= 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(v, kind="stable")
    grid = np.linspace(v[order][0], v[order][-1], opt.grid_points)
    q_grid = np.interp(grid, v[order], q[order])
    win = opt.window
    d = savgol_filter(q_grid, win, 2, deriv=1, delta=float(grid[1] - grid[0]))
    return grid, np.abs(d)


def peaks(grid: np.ndarray, d: np.ndarray, opt: DqdvOptions) -> list[dict[str, float]]:
    """Peaks of one dQ/dV curve: voltage, height and area between the peak's bases."""
    if len(d) == 0 or d.max() <= 0:
        return []
    idx, props = find_peaks(d, prominence=opt.min_prominence * float(d.max()))
    out = []
    for p, lo, hi in zip(idx, props["left_bases"], props["right_bases"], strict=True):
        area = float(np.trapezoid(d[lo : hi + 1], grid[lo : hi + 1]))
        out.append({"voltage_v": float(grid[p]), "height_ah_per_v": float(d[p]), "area_ah": area})
    return out


def cycle_steps(rec: Record, starts_s: np.ndarray, sign: int) -> dict[int, np.ndarray]:
    """Cycle position -> indices of its CC steps of current sign ``sign``."""
    st = rec.steps
    pos = np.searchsorted(starts_s, rec.t[st.start], side="right") - 1
    sel = np.flatnonzero((st.kind == CC) & (np.sign(st.current) == sign) & (pos >= 0))
    groups: dict[int, list[int]] = {}
    for k, p in zip(sel.tolist(), pos[sel].tolist(), strict=True):
        groups.setdefault(p, []).append(k)
    return {p: np.asarray(ks) for p, ks in groups.items()}


def _track(rows: list[dict], span: float, opt: DqdvOptions) -> list[dict[str, Any]]:
    if not rows or not rows[0]["peaks"]:
        return []
    tracks = []
    for n, ref in enumerate(rows[0]["peaks"]):
        pts, at = [], ref["voltage_v"]
        for r in rows:  # follow the peak from cycle to cycle
            near = [p for p in r["peaks"] if abs(p["voltage_v"] - at) <= opt.match_fraction * span]
            if near:
                best = min(near, key=lambda p: abs(p["voltage_v"] - at))
                pts.append((r["cycle"], best))
                at = best["voltage_v"]
        cyc = np.array([c for c, _ in pts], "f8")
        volts = np.array([p["voltage_v"] for _, p in pts])
        drift = robust_line(cyc, volts, x0=cyc[0]).slope if len(pts) >= 3 else None
        last = pts[-1][1]
        tracks.append(
            {
                "peak": n + 1,
                "first_voltage_v": ref["voltage_v"],
                "last_voltage_v": last["voltage_v"],
                "voltage_drift_v_per_cycle": drift,
                "height_change_fraction": last["height_ah_per_v"] / ref["height_ah_per_v"] - 1,
                "area_change_fraction": last["area_ah"] / ref["area_ah"] - 1
                if ref["area_ah"]
                else None,
                "cycles_found": len(pts),
            }
        )
    return tracks


def track_peaks(
    rec: Record, cycles: np.ndarray, starts_s: np.ndarray, complete: np.ndarray, opt=DqdvOptions()
) -> dict[str, Any]:
    """dQ/dV peaks per analysed cycle and their drift (the ``dqdv_peaks`` object)."""
    sign = -1 if opt.direction == "discharge" else 1
    by_pos = cycle_steps(rec, starts_s, sign)
    usable = [p for p in np.flatnonzero(complete).tolist() if p in by_pos]
    if len(usable) > opt.max_cycles:
        usable = [usable[j] for j in np.linspace(0, len(usable) - 1, opt.max_cycles).astype(int)]
    rows, lo, hi = [], np.inf, -np.inf
    for p in usable:
        v, q = cc_curve(rec, by_pos[p])
        grid, d = dqdv_curve(v, q, opt)
        if len(grid):
            lo, hi = min(lo, grid[0]), max(hi, grid[-1])
        rows.append({"cycle": int(cycles[p]), "peaks": peaks(grid, d, opt)})
    span = hi - lo if np.isfinite(hi - lo) else 0.0
    return {
        "direction": opt.direction,
        "source": "constant-current steps only (CV holds and rests excluded)",
        "smoothing": f"Q interpolated onto {opt.grid_points} uniform voltage points, "
        f"Savitzky-Golay order 2, window {opt.window} points",
        "peak_prominence_fraction": opt.min_prominence,
        "cycles": rows,
        "tracks": _track(rows, span, opt),
    }
