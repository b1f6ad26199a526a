"""Voltage profiles and dQ/dV of selected cycles, read straight from a cell file.

Only the rows of the selected cycles are read (the ``cycle_count`` column is read
once to find them), so a 10,000-cycle file costs one column read, not the whole table.
Half-cycles are runs of samples with the same current sign whose magnitude exceeds
2 % of the largest current magnitude in that cycle (relative, no absolute threshold);
capacity is the trapezoidal integral of |I| dt from the start of each half-cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cyclerflow.store import open_cell_file

REST_FRACTION = 0.02


def select_cycles(cycles: Sequence[int], n: int = 8, *, reference: int | None = None) -> list[int]:
    """Up to ``n`` cycles spread over the record: first, reference, last and
    (log-spaced for long records) cycles in between."""
    cyc = np.unique(np.asarray([c for c in cycles if c is not None and c >= 0], dtype=int))
    if len(cyc) <= n:
        return [int(c) for c in cyc]
    pick = {int(cyc[0]), int(cyc[-1])}
    if reference is not None and reference in set(cyc.tolist()):
        pick.add(int(reference))
    span = cyc[-1] - cyc[0]
    targets = cyc[0] + (np.geomspace(1, span + 1, n) - 1 if span > 50 else np.linspace(0, span, n))
    for t in targets:
        if len(pick) >= n:
            break
        pick.add(int(cyc[np.argmin(np.abs(cyc - t))]))
    return sorted(pick)


def read_cycle_rows(
    path: str | Path, cycles: Sequence[int], columns: Sequence[str] | None = None
) -> dict[int, dict[str, np.ndarray]]:
    """Rows of the given cycles, one dict (column -> array) per cycle; all columns by default."""
    want = sorted({int(c) for c in cycles})
    out: dict[int, dict[str, np.ndarray]] = {}
    if not want:
        return out
    with open_cell_file(path) as f:
        cyc = f["cycling"]
        if f.swmr_mode:
            for d in cyc.values():
                d.refresh()
        needed = ("test_time_second", "voltage_volt", "current_ampere", "cycle_count")
        if any(c not in cyc for c in needed):
            return out
        names = [c for c in (columns or list(cyc.keys())) if c in cyc]
        n = min(cyc[c].shape[0] for c in cyc)
        cc = cyc["cycle_count"][:n]
        for c in want:
            idx = np.flatnonzero(cc == c)
            if not len(idx):
                continue
            lo, hi = int(idx[0]), int(idx[-1]) + 1
            keep = cc[lo:hi] == c
            out[c] = {k: cyc[k][lo:hi][keep] for k in names}
    return out


def half_cycles(t: np.ndarray, v: np.ndarray, i: np.ndarray, cycle: int) -> list[dict[str, Any]]:
    """Split one cycle's rows into charge / discharge curves (capacity from the half's start)."""
    t, v, i = (np.asarray(a, dtype="f8") for a in (t, v, i))
    ok = np.isfinite(t) & np.isfinite(v) & np.isfinite(i)
    t, v, i = t[ok], v[ok], i[ok]
    if len(i) < 2:
        return []
    imax = np.max(np.abs(i))
    if imax <= 0:
        return []
    sign = np.where(np.abs(i) > REST_FRACTION * imax, np.sign(i), 0).astype(int)
    curves = []
    for s, half in ((1, "charge"), (-1, "discharge")):
        m = sign == s
        if m.sum() < 2:
            continue
        idx = np.flatnonzero(m)
        # the longest contiguous run of this sign (CC + CV of one half are contiguous)
        breaks = np.flatnonzero(np.diff(idx) > 1)
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks + 1, [len(idx)]])
        k = int(np.argmax(ends - starts))
        sel = idx[starts[k] : ends[k]]
        if len(sel) < 2:
            continue
        tt, ii = t[sel], np.abs(i[sel])
        q = np.concatenate([[0.0], np.cumsum(0.5 * (ii[1:] + ii[:-1]) * np.diff(tt))]) / 3600.0
        curves.append({"cycle": int(cycle), "half": half, "capacity_ah": q, "voltage_v": v[sel]})
    return curves


def dqdv(curve: dict[str, Any], *, n_points: int = 120, smooth: int = 5) -> dict[str, Any]:
    """dQ/dV (Ah/V, positive) of one half-cycle on an even voltage grid.

    The voltage is made monotonic in the half's direction (running max for charge,
    running min for discharge) before Q(V) is interpolated, then differentiated and
    smoothed with a ``smooth``-point moving average.
    """
    v = np.asarray(curve["voltage_v"], dtype="f8")
    q = np.asarray(curve["capacity_ah"], dtype="f8")
    if curve["half"] == "charge":
        vm = np.maximum.accumulate(v)
    else:
        vm = -np.maximum.accumulate(-v)
    lo, hi = float(np.min(vm)), float(np.max(vm))
    if hi - lo <= 0 or len(v) < 4:
        return {
            **{k: curve[k] for k in ("cycle", "half")},
            "voltage_v": np.array([]),
            "dqdv_ah_per_v": np.array([]),
        }
    grid = np.linspace(lo, hi, n_points)
    order = np.argsort(vm, kind="stable")
    vs, qs = vm[order], q[order]
    uniq, first = np.unique(vs, return_index=True)
    qg = np.interp(grid, uniq, qs[first])
    d = np.abs(np.gradient(qg, grid))
    if smooth > 1:
        d = np.convolve(d, np.ones(smooth) / smooth, mode="same")
    return {"cycle": curve["cycle"], "half": curve["half"], "voltage_v": grid, "dqdv_ah_per_v": d}


def cycle_curves(path: str | Path, cycles: Sequence[int]) -> list[dict[str, Any]]:
    """Voltage-capacity curves (both halves) of the given cycles, with the report's own split."""
    rows = read_cycle_rows(
        path, cycles, ("test_time_second", "voltage_volt", "current_ampere", "cycle_count")
    )
    out: list[dict[str, Any]] = []
    for c in sorted(rows):
        r = rows[c]
        out.extend(half_cycles(r["test_time_second"], r["voltage_volt"], r["current_ampere"], c))
    return out


def _split_points(ds, value: str) -> list[dict[str, Any]]:
    """cyclerflow.cycling point datasets (dim ``point``, coords cycle/half/half_index) -> curve dicts."""
    hi = np.asarray(ds["half_index"].values)
    out = []
    for k in np.unique(hi):
        m = hi == k
        out.append(
            {
                "cycle": int(ds["cycle"].values[m][0]),
                "half": str(ds["half"].values[m][0]),
                "voltage_v": np.asarray(ds["voltage_volt"].values[m], dtype="f8"),
                value: np.asarray(ds[value].values[m], dtype="f8"),
            }
        )
    return out


def curves_and_dqdv(
    path: str | Path, cycles: Sequence[int], *, first_half: str | None = None
) -> tuple[list[dict], list[dict], str]:
    """(voltage curves, dQ/dV curves, method note) of the given cycles.

    Uses :func:`cyclerflow.cycling.voltage_curves` and :func:`cyclerflow.cycling.dqdv` on
    the rows of those cycles only (the same half-cycle split as the analysis); falls back
    to this module's own split when that package is not available or refuses the data.
    """
    rows = read_cycle_rows(path, cycles)
    if not rows:
        return [], [], ""
    try:
        import xarray as xr

        from cyclerflow.cycling import dqdv as cyc_dqdv
        from cyclerflow.cycling import voltage_curves

        cols = list(next(iter(rows.values())))
        ds = xr.Dataset(
            {c: ("sample", np.concatenate([rows[k][c] for k in sorted(rows)])) for c in cols}
        )
        sel = sorted(rows)
        vc = voltage_curves(ds, sel, first_half=first_half)
        dq = cyc_dqdv(ds, sel, first_half=first_half)
        curves = _split_points(vc, "capacity_ah")
        dqs = [
            {**d, "dqdv_ah_per_v": np.abs(d.pop("dqdv_ah_per_volt"))}
            for d in _split_points(dq, "dqdv_ah_per_volt")
        ]
        return (
            curves,
            dqs,
            "voltage profiles and dQ/dV: cyclerflow.cycling ("
            + str(dq.attrs.get("method", "local least-squares slope of Q(V)"))
            + ")",
        )
    except Exception:  # fall back to the report's own split (e.g. package absent, odd data)
        curves = []
        for c in sorted(rows):
            r = rows[c]
            curves.extend(
                half_cycles(r["test_time_second"], r["voltage_volt"], r["current_ampere"], c)
            )
        dqs = [d for d in (dqdv(c) for c in curves) if len(d["voltage_v"])]
        return (
            curves,
            dqs,
            "voltage profiles and dQ/dV: report's own half-cycle split (|I| > 2 % of the cycle's max), Q(V) on a 120-point grid, 5-point smoothing",
        )
