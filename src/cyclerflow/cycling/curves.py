"""Voltage-capacity curves and dQ/dV per cycle and half-cycle, as xarray objects.

Both return long ("tidy") datasets over a ``point`` dimension, one point per measured
sample, with ``cycle`` and ``half`` coordinates: no resampling onto a grid, so no
invented points. Select one curve with ``ds.where((ds.cycle == 3) & (ds.half ==
"discharge"), drop=True)`` or group with ``ds.groupby("cycle")``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from cyclerflow.cycling.integrate import (
    cumulative_in_runs,
    cumulative_interval_mean,
    interval_lengths,
    interval_weights,
)
from cyclerflow.cycling.segment import (
    DIRECTION_NAME,
    Thresholds,
    prepare_samples,
    segment,
)


def _ranges_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + n)`` for all (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, "i8")
    offs = np.cumsum(lengths) - lengths
    return np.repeat(starts - offs, lengths) + np.arange(total)


def voltage_curves(
    ds: xr.Dataset,
    cycles: list[int] | None = None,
    *,
    first_half: str | None = None,
    thresholds: Thresholds | None = None,
    current_sampling: str | None = None,
) -> xr.Dataset:
    """Voltage (V) vs capacity (Ah, from 0 at the start of each half-cycle) per cycle & half.

    Only samples of active runs (charge/discharge incl. CV holds) are included; the
    capacity at the last point of a half equals that half's capacity in
    :func:`analyze_cycling`. ``cycles`` selects cycle numbers (default: all).
    """
    th = thresholds or Thresholds()
    s = prepare_samples(ds, current_sampling)
    seg = segment(s, th, first_half=first_half)
    act = np.flatnonzero(seg.active)
    if cycles is not None:
        act = act[np.isin(seg.run_cycle[act], np.asarray(list(cycles), "i8"))]
    if s.current_sampling == "interval_mean":
        cum = cumulative_interval_mean(s.i, interval_lengths(s.t), seg.starts)
    else:
        cum = cumulative_in_runs(s.i, interval_weights(s.t, seg.starts), seg.starts)
    cum = np.abs(cum) / 3600.0
    # offset of each run within its half: charge of the half's earlier runs
    q_run = np.abs(seg.q_as[act]) / 3600.0
    h = seg.run_half[act]
    new_half = np.r_[True, h[1:] != h[:-1]] if len(h) else np.zeros(0, bool)
    csum = np.cumsum(q_run)
    grp_start = np.maximum.accumulate(np.where(new_half, np.arange(len(h)), 0))
    before = csum - q_run
    offset = before - before[grp_start]
    lengths = seg.ends[act] - seg.starts[act]
    idx = _ranges_index(seg.starts[act], lengths)
    cap = cum[idx] + np.repeat(offset, lengths)
    sign = seg.sign[act]
    half_name = np.where(np.repeat(sign, lengths) > 0, "charge", "discharge")
    out = xr.Dataset(
        {
            "capacity_ah": ("point", cap, {"units": "A h", "long_name": "capacity in half-cycle"}),
            "voltage_volt": ("point", s.v[idx], {"units": "V"}),
            "current_ampere": ("point", s.i[idx], {"units": "A"}),
            "test_time_second": ("point", s.t[idx], {"units": "s"}),
        },
        coords={
            "cycle": ("point", np.repeat(seg.run_cycle[act], lengths), {"units": "1"}),
            "half": ("point", half_name),
            "half_index": ("point", np.repeat(h, lengths), {"units": "1"}),
        },
        attrs={
            "first_half": DIRECTION_NAME[seg.first_half],
            "cycle_source": seg.cycle_source,
            "method": "cumulative integral of |I| dt within each half-cycle, rest excluded",
            "current_sampling": s.current_sampling,
        },
    )
    return out


def _local_slopes(q, v, hid, window_fraction, min_window, min_spread_fraction):
    """dQ/dV at every point: least-squares slope over a centred window within its half
    (``hid``: half index per point); (slope, usable) arrays."""
    n = len(q)
    new = np.r_[True, hid[1:] != hid[:-1]]
    g0 = np.flatnonzero(new)
    glen = np.diff(np.append(g0, n))
    gid = np.cumsum(new) - 1
    # centre each half for numerical stability
    x = v - (np.add.reduceat(v, g0) / glen)[gid]
    y = q - (np.add.reduceat(q, g0) / glen)[gid]
    hw = (np.maximum(min_window, np.round(window_fraction * glen).astype("i8")) // 2)[gid]
    pos = np.arange(n)
    lo = np.maximum(g0[gid], pos - hw)
    hi = np.minimum(g0[gid] + glen[gid], pos + hw + 1)

    def wsum(a):
        c = np.concatenate(([0.0], np.cumsum(a)))
        return c[hi] - c[lo]

    cnt = (hi - lo).astype("f8")
    sx, sy, sxx, sxy = wsum(x), wsum(y), wsum(x * x), wsum(x * y)
    var = cnt * sxx - sx * sx
    cov = cnt * sxy - sx * sy
    span = np.maximum.reduceat(v, g0) - np.minimum.reduceat(v, g0)
    min_var = (min_spread_fraction * span[gid] * cnt) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = cov / var
    return slope, (var > min_var) & (cnt >= 3) & np.isfinite(slope)


def dqdv(
    ds: xr.Dataset,
    cycles: list[int] | None = None,
    *,
    first_half: str | None = None,
    window_fraction: float = 0.02,
    min_window: int = 5,
    min_spread_fraction: float = 1e-4,
    thresholds: Thresholds | None = None,
    current_sampling: str | None = None,
) -> xr.Dataset:
    """Differential capacity dQ/dV (Ah/V) at the measured points of each half-cycle.

    Smoothing: at every point, the slope of a least-squares line Q(V) over a centred
    window of ``max(min_window, window_fraction x points in the half)`` neighbouring
    points of the same half (odd, truncated at the half's ends). Values are given only
    at measured points; points whose window spans less than ``min_spread_fraction`` of
    the half's voltage range (CV holds, where dQ/dV is undefined) are dropped.
    Discharge values are negative (Q grows while V falls).
    """
    vc = voltage_curves(
        ds, cycles, first_half=first_half, thresholds=thresholds, current_sampling=current_sampling
    )
    q = vc["capacity_ah"].values
    v = vc["voltage_volt"].values
    hid = vc["half_index"].values
    if len(q) == 0:
        return _empty_dqdv(vc)
    slope, ok = _local_slopes(q, v, hid, window_fraction, min_window, min_spread_fraction)
    keep = np.flatnonzero(ok)
    out = xr.Dataset(
        {
            "dqdv_ah_per_volt": (
                "point",
                slope[keep],
                {"units": "A h V-1", "long_name": "differential capacity dQ/dV"},
            ),
            "voltage_volt": ("point", v[keep], {"units": "V"}),
            "capacity_ah": ("point", q[keep], {"units": "A h"}),
        },
        coords={
            "cycle": ("point", vc["cycle"].values[keep], {"units": "1"}),
            "half": ("point", vc["half"].values[keep]),
            "half_index": ("point", hid[keep]),
        },
        attrs={
            **vc.attrs,
            "method": "local least-squares slope of Q vs V over a centred window of samples "
            "(no resampling)",
            "window_fraction": window_fraction,
            "min_window": min_window,
            "min_spread_fraction": min_spread_fraction,
        },
    )
    return out


def _empty_dqdv(vc: xr.Dataset) -> xr.Dataset:
    e = np.zeros(0)
    return xr.Dataset(
        {
            "dqdv_ah_per_volt": ("point", e, {"units": "A h V-1"}),
            "voltage_volt": ("point", e, {"units": "V"}),
            "capacity_ah": ("point", e, {"units": "A h"}),
        },
        coords={
            "cycle": ("point", np.zeros(0, "i8")),
            "half": ("point", np.zeros(0, "U9")),
            "half_index": ("point", np.zeros(0, "i8")),
        },
        attrs=dict(vc.attrs),
    )


__all__ = ["dqdv", "voltage_curves"]
