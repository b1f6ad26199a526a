"""Segmentation of a cycling record into runs, half-cycles and cycles.

Vocabulary (see docs/cycling.md):

- *run*: a maximal block of consecutive samples with the same sign of the current and
  the same instrument step and cycle (``step_count``/``step_index``/``cycle_count``
  where present). A run is
  *active* if its largest |current| exceeds ``rest_fraction`` x the record's reference
  current, else it is *rest* (open circuit, OCV, pauses, EIS around zero current).
  Without step columns, samples with |I| at or below that threshold count as sign 0,
  so a rest (noisy or not) always starts a new run.
- *half-cycle*: a maximal sequence of active runs of one direction; rest runs between
  them do not split it (a CC step, its CV hold and a pause in the middle are one half).
  A half-cycle holding less than ``min_half_fraction`` of the largest half-cycle's
  charge is not a half-cycle (noise lobes in a rest, EIS excitation): its runs are
  treated as rest.
- *cycle*: one "in" half followed by one "out" half; ``first_half`` says which
  direction comes first. Cycles come from the instrument's ``cycle_count`` when present
  and consistent with ``first_half``, otherwise from the sequence of half-cycles.

Everything is vectorised over samples; Python loops only run over a handful of
filtering passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from cyclerflow.cycling.integrate import (
    interval_lengths,
    run_integrals_interval_mean,
    trapezoid_sample_weights,
    weighted_run_sums,
)
from cyclerflow.errors import InputError

CHARGE, DISCHARGE = 1, -1
DIRECTION_NAME = {CHARGE: "charge", DISCHARGE: "discharge"}


@dataclass(frozen=True)
class Thresholds:
    """Relative thresholds of the segmentation (all fractions, no absolute currents).

    rest_fraction: a run is active if its peak |I| exceeds the rest threshold
        max(rest_fraction x I_ref, noise_factor x noise), where I_ref is the
        ``reference_quantile`` quantile of |I| over the record (a proxy for the channel's
        range / the largest set point) and noise the robust sample-to-sample noise of the
        current (so a record of pure noise, e.g. an OCV, has no active runs).
    min_half_fraction: half-cycles carrying less than this fraction of the largest
        half-cycle's charge are treated as rest.
    cut_short_fraction: a half-cycle whose end voltage misses the local median end
        voltage of its direction by more than this fraction of the voltage swing
        (median end of charge - median end of discharge) and whose charge is below
        (1 - this fraction) x the local median charge is reported as cut short.
    cut_short_window: number of same-direction half-cycles in that local median.
    """

    rest_fraction: float = 5e-3
    noise_factor: float = 5.0
    reference_quantile: float = 0.999
    min_half_fraction: float = 1e-3
    cut_short_fraction: float = 0.05
    cut_short_window: int = 21

    def as_attrs(self) -> dict[str, float | int]:
        return {
            "rest_fraction": self.rest_fraction,
            "noise_factor": self.noise_factor,
            "reference_quantile": self.reference_quantile,
            "min_half_fraction": self.min_half_fraction,
            "cut_short_fraction": self.cut_short_fraction,
            "cut_short_window": self.cut_short_window,
        }


@dataclass
class Samples:
    """Clean float64 columns (rows with NaN time/current/voltage dropped)."""

    t: np.ndarray
    i: np.ndarray
    v: np.ndarray
    step: np.ndarray | None
    cycle: np.ndarray | None
    n_dropped: int
    source: str = ""
    current_sampling: str = "instantaneous"
    dt: np.ndarray | None = None  # t[1:] - t[:-1] (s), kept from the input check


@dataclass
class Segmentation:
    """Runs, half-cycles and cycle labels of one record (indices into :class:`Samples`)."""

    starts: np.ndarray  # first sample of each run
    ends: np.ndarray  # one past the last sample of each run
    sign: np.ndarray  # int8 sign of the current in each run
    active: np.ndarray  # bool
    q_as: np.ndarray  # signed charge of each run, A s
    e_ws: np.ndarray  # signed energy of each run, W s (integral of I*V)
    run_half: np.ndarray  # half id of each run, -1 for rest
    half_dir: np.ndarray  # +1 / -1 per half
    half_first_run: np.ndarray
    half_last_run: np.ndarray
    half_q_as: np.ndarray  # |charge| per half, A s
    half_cycle: np.ndarray  # cycle number per half
    run_cycle: np.ndarray  # cycle number per run (-1 for rest runs)
    half_cut_short: np.ndarray  # bool
    half_cut_reason: list[str]
    first_half: int
    first_half_detected: int | None
    cycle_source: str
    i_ref_a: float
    noise_a: float
    threshold_a: float
    thresholds: Thresholds
    notes: list[str] = field(default_factory=list)


# --- input --------------------------------------------------------------------------


def _int_column(ds: xr.Dataset, name: str) -> np.ndarray | None:
    if name not in ds:
        return None
    a = np.asarray(ds[name].values)
    if a.dtype.kind == "f":
        a = np.where(np.isnan(a), -1, a).astype("i8")
    a = a.astype("i8", copy=False)
    if a.size == 0 or (a < 0).all():
        return None
    return a


CURRENT_SAMPLING = ("instantaneous", "interval_mean")


def prepare_samples(ds: xr.Dataset, current_sampling: str | None = None) -> Samples:
    """Extract and validate the columns; drop rows with a missing time, current or voltage.

    ``current_sampling``: ``"instantaneous"`` (samples of the current, integrated by the
    trapezoid rule) or ``"interval_mean"`` (each value is the mean current over the
    interval ending at that sample, as BioLogic's ``<I>``; integrated by the rectangle
    rule). Default: the ``sampling`` attribute of ``current_ampere``, else instantaneous.
    """
    source = str(ds.attrs.get("source", "") or "")
    missing = [c for c in ("test_time_second", "current_ampere", "voltage_volt") if c not in ds]
    if missing:
        raise InputError(f"cycling data lacks column(s) {missing}", path=source or None)
    t = np.asarray(ds["test_time_second"].values, dtype="f8")
    i = np.asarray(ds["current_ampere"].values, dtype="f8")
    v = np.asarray(ds["voltage_volt"].values, dtype="f8")
    sampling = current_sampling or ds["current_ampere"].attrs.get("sampling") or "instantaneous"
    if sampling not in CURRENT_SAMPLING:
        raise InputError(
            f"current sampling must be one of {CURRENT_SAMPLING} (got {sampling!r})",
            path=source or None,
        )
    step = _int_column(ds, "step_count")
    if step is None:
        step = _int_column(ds, "step_index")
    cycle = _int_column(ds, "cycle_count")
    bad = np.isnan(t) | np.isnan(i) | np.isnan(v)
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        keep = ~bad
        t, i, v = t[keep], i[keep], v[keep]
        step = None if step is None else step[keep]
        cycle = None if cycle is None else cycle[keep]
    if len(t) < 2:
        raise InputError(
            f"no complete cycle found (only {len(t)} usable sample(s))", path=source or None
        )
    dt = np.diff(t)
    back = np.flatnonzero(dt < 0)
    if len(back):
        k = int(back[0]) + 1
        raise InputError(
            f"test_time_second goes backwards at usable sample {k} "
            f"({t[k - 1]:.6g} s -> {t[k]:.6g} s); expected non-decreasing time",
            path=source or None,
        )
    return Samples(
        t=t,
        i=i,
        v=v,
        step=step,
        cycle=cycle,
        n_dropped=n_bad,
        source=source,
        current_sampling=str(sampling),
        dt=dt,
    )


def reference_current(i: np.ndarray, quantile: float) -> float:
    """Robust scale of |I| (A): a high quantile on at most ~1M evenly strided samples."""
    stride = max(1, len(i) // 1_000_000)
    a = np.abs(i[::stride])
    ref = float(np.quantile(a, quantile)) if len(a) else 0.0
    if ref <= 0.0:
        ref = float(np.max(np.abs(i))) if len(i) else 0.0
    return ref


# --- runs and half-cycles ------------------------------------------------------------


def current_noise(i: np.ndarray) -> float:
    """Robust sample-to-sample noise of the current (A): 1.4826 x median|dI| / sqrt(2).

    Computed on at most ~1M evenly strided pairs of consecutive samples; steps and ramps
    are rare outliers that the median ignores. 0 for exactly repeated readings.
    """
    n = len(i)
    if n < 3:
        return 0.0
    stride = max(1, n // 1_000_000)
    k = np.arange(0, n - 1, stride)
    d = np.abs(i[k + 1] - i[k])
    return float(1.4826 * np.median(d) / np.sqrt(2.0))


def rest_threshold(i: np.ndarray, th: Thresholds) -> tuple[float, float, float]:
    """(reference current, noise, rest threshold) in A; see :class:`Thresholds`."""
    i_ref = reference_current(i, th.reference_quantile)
    noise = current_noise(i)
    return i_ref, noise, max(th.rest_fraction * i_ref, th.noise_factor * noise)


def find_runs(s: Samples, thr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run starts/ends (exclusive) and run sign, given the rest threshold ``thr`` (A).

    With instrument step columns, runs split where the step or the sign of the current
    changes (a CV tail stays in its step however small it gets). Without them, runs
    split where the class of the current changes: +1 / -1 above the rest threshold,
    0 at or below it (so that a noisy rest never joins the step before it).
    """
    n = len(s.t)
    sg = np.sign(s.i).astype("i1")
    if s.step is None:
        sg[np.abs(s.i) <= thr] = 0
    change = sg[1:] != sg[:-1]
    if s.step is not None:
        change |= s.step[1:] != s.step[:-1]
    if s.cycle is not None:
        change |= s.cycle[1:] != s.cycle[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    ends = np.append(starts[1:], n)
    return starts, ends, sg[starts]


def integrate_runs(s: Samples, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Charge (A s) and energy (W s) of every run, by the rule for the current's sampling."""
    if s.current_sampling == "interval_mean":
        dt = interval_lengths(s.t)
        return (
            run_integrals_interval_mean(s.i, dt, starts),
            run_integrals_interval_mean(s.i * s.v, dt, starts),
        )
    big_w = trapezoid_sample_weights(s.t, starts)
    buf = np.empty(len(s.t), "f8")
    q = weighted_run_sums(s.i, big_w, starts, buf)
    np.multiply(s.i, s.v, out=buf)
    e = weighted_run_sums(buf, big_w, starts, buf)
    return q, e


def _halves(sign: np.ndarray, active: np.ndarray, q: np.ndarray):
    act = np.flatnonzero(active)
    if len(act) == 0:
        return act, np.zeros(0, "i8"), np.zeros(0, "i8"), np.zeros(0)
    d = sign[act]
    new = np.empty(len(act), bool)
    new[0] = True
    np.not_equal(d[1:], d[:-1], out=new[1:])
    first = np.flatnonzero(new)
    hq = np.add.reduceat(np.abs(q[act]), first)
    hid = np.cumsum(new) - 1
    return act, hid, first, hq


def _drop_small_halves(sign, active, q, th: Thresholds):
    """Drop runs, then "half-cycles", negligible next to the largest half-cycle (noise
    lobes, EIS excitation), so that they neither join nor split real ones. Returns the
    final ``_halves`` tuple; ``active`` is updated in place."""
    act, hid, first, hq = _halves(sign, active, q)
    if len(hq):
        active &= np.abs(q) >= th.min_half_fraction * hq.max()
    for _ in range(10):
        act, hid, first, hq = _halves(sign, active, q)
        if len(hq) == 0:
            break
        small = hq < th.min_half_fraction * hq.max()
        if not small.any():
            break
        active[act[small[hid]]] = False
    return _halves(sign, active, q)


def _first_half(s: Samples, starts, act, half_first_run, half_dir, first_half):
    """(first half asked or detected, detected, vendor-detected or None)."""
    detected_vendor = None
    if s.cycle is not None and (s.cycle[starts[act]] >= 0).all():
        vc = s.cycle[starts[half_first_run]]
        newc = np.r_[True, vc[1:] != vc[:-1]]
        dirs_at_cycle_start = half_dir[newc]
        n_ch = int(np.count_nonzero(dirs_at_cycle_start == CHARGE))
        n_dis = len(dirs_at_cycle_start) - n_ch
        detected_vendor = CHARGE if n_ch >= n_dis else DISCHARGE
    detected = detected_vendor if detected_vendor is not None else int(half_dir[0])
    if first_half is None:
        return detected, detected, detected_vendor
    if first_half in ("charge", "discharge"):
        return (CHARGE if first_half == "charge" else DISCHARGE), detected, detected_vendor
    raise InputError(f"first_half must be 'charge' or 'discharge' (got {first_half!r})")


def _cycle_labels(s: Samples, starts, act, hid, half_first_run, half_dir, fh, vendor, notes):
    """(cycle per run, cycle per half, cycle source): the instrument's cycle_count when it
    agrees with ``fh``, else counted from the half-cycle sequence."""
    run_cycle = np.full(len(starts), -1, dtype="i8")
    if vendor is not None and fh == vendor:
        run_cycle[act] = s.cycle[starts[act]]
        return run_cycle, run_cycle[half_first_run], "cycle_count column"
    if vendor is not None:
        notes.append(
            "cycle_count ignored: its cycles start with "
            f"{DIRECTION_NAME[vendor]} but first_half={DIRECTION_NAME[fh]} was asked"
        )
    half_cycle = np.cumsum(half_dir == fh).astype("i8")
    run_cycle[act] = half_cycle[hid]
    return run_cycle, half_cycle, "current (half-cycle sequence)"


def _mark_safety_stops(half_t0, times, cut, reasons) -> None:
    """Mark the half-cycle each safety stop time (s) falls in as cut short (in place)."""
    if times is None or not len(times):
        return
    k = np.searchsorted(half_t0, np.asarray(times, "f8"), side="right") - 1
    for j in np.unique(k[k >= 0]):
        if not cut[j]:
            cut[j] = True
            reasons[j] = "safety_stop event during this half-cycle"


def segment(
    s: Samples,
    th: Thresholds = Thresholds(),
    *,
    first_half: str | None = None,
    safety_stop_times: np.ndarray | None = None,
) -> Segmentation:
    """Segment a record into runs, half-cycles and cycles (see module docstring).

    ``safety_stop_times`` (s): half-cycles holding one are marked cut short (the cycle
    analysis maps stop events itself, see :mod:`cyclerflow.cycling.incomplete`)."""
    where = s.source or None
    i_ref, noise, thr = rest_threshold(s.i, th)
    if i_ref <= 0.0:
        raise InputError(
            "no complete cycle found (the current is zero throughout the record)", path=where
        )
    starts, ends, sign = find_runs(s, thr)
    peak = np.maximum.reduceat(np.abs(s.i), starts)
    active = (sign != 0) & (peak > thr)
    q, e = integrate_runs(s, starts)
    act, hid, first, hq = _drop_small_halves(sign, active, q, th)
    if len(hq) == 0:
        raise InputError(
            "no complete cycle found (no charge or discharge above the rest threshold "
            f"{thr:.3g} A = max({th.rest_fraction:g} x reference current {i_ref:.3g} A, "
            f"{th.noise_factor:g} x current noise {noise:.3g} A))",
            path=where,
        )
    run_half = np.full(len(starts), -1, dtype="i8")
    run_half[act] = hid
    half_dir = sign[act[first]].astype("i8")
    half_first_run = act[first]
    half_last_run = act[np.append(first[1:], len(act)) - 1]
    notes: list[str] = []
    fh, detected, vendor = _first_half(s, starts, act, half_first_run, half_dir, first_half)
    run_cycle, half_cycle, cycle_source = _cycle_labels(
        s, starts, act, hid, half_first_run, half_dir, fh, vendor, notes
    )
    cut, reasons = _cut_short(s, ends, half_dir, half_last_run, hq, th)
    _mark_safety_stops(s.t[starts[half_first_run]], safety_stop_times, cut, reasons)
    return Segmentation(
        starts=starts,
        ends=ends,
        sign=sign,
        active=active,
        q_as=q,
        e_ws=e,
        run_half=run_half,
        half_dir=half_dir,
        half_first_run=half_first_run,
        half_last_run=half_last_run,
        half_q_as=hq,
        half_cycle=half_cycle,
        run_cycle=run_cycle,
        half_cut_short=cut,
        half_cut_reason=reasons,
        first_half=fh,
        first_half_detected=detected,
        cycle_source=cycle_source,
        i_ref_a=i_ref,
        noise_a=noise,
        threshold_a=thr,
        thresholds=th,
        notes=notes,
    )


def _local_median(x: np.ndarray, window: int) -> np.ndarray:
    half = window // 2
    if len(x) <= window:
        return np.full(len(x), np.median(x))
    pad = np.pad(x, half, mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1)
    return np.median(view, axis=1)


def _cut_short(s, ends, half_dir, last_run, half_q, th: Thresholds):
    """Flag interrupted half-cycles: end voltage short of the neighbours' AND less charge.

    Both conditions are needed: a time- or capacity-terminated protocol ends at varying
    voltages with full charge, a fading cell passes less charge but still reaches its
    cut-off voltage; a safety stop or power cut does neither.
    """
    n_h = len(half_dir)
    cut = np.zeros(n_h, bool)
    reasons = [""] * n_h
    v_end = s.v[ends[last_run] - 1]
    ch, dis = half_dir == CHARGE, half_dir == DISCHARGE
    if ch.sum() < 3 or dis.sum() < 3:
        return cut, reasons
    swing = abs(float(np.median(v_end[ch]) - np.median(v_end[dis])))
    if swing <= 0:
        return cut, reasons
    tol = th.cut_short_fraction * swing
    for mask, d in ((ch, CHARGE), (dis, DISCHARGE)):
        idx = np.flatnonzero(mask)
        ref = _local_median(v_end[idx], th.cut_short_window)
        q_ref = _local_median(half_q[idx], th.cut_short_window)
        short_v = (ref - v_end[idx] > tol) if d == CHARGE else (v_end[idx] - ref > tol)
        short_q = half_q[idx] < (1.0 - th.cut_short_fraction) * q_ref
        short = short_v & short_q
        for j, r, qr in zip(idx[short], ref[short], q_ref[short], strict=True):
            cut[j] = True
            reasons[j] = (
                f"{DIRECTION_NAME[d]} ended at {v_end[j]:.4g} V, short of the usual "
                f"end voltage {r:.4g} V, after {half_q[j] / qr:.1%} of the usual charge "
                "(interrupted, e.g. safety stop)"
            )
    return cut, reasons
