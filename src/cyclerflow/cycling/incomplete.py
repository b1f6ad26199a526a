"""Which cycles are complete, and why the others are not.

A cycle is *incomplete* when the record does not hold all of it: it ends with the record
(``end_of_record``), at a stop written by an importer (``stopped``), at a safety stop
(``safety_stop``), or it spans an unrecorded gap (``gap``: an event of kind ``gap`` from
the acquisition engine, or an interval between two samples longer than the rest of the
cycle's recorded time). Structural reasons come from the segmentation: a missing half
(``missing_half``), a cycle that starts with the out-half (``wrong_start``), the half
before the first full cycle (``before_first_cycle``), a half-cycle cut short by the
voltage/charge test (``cut_short``). Definitions and precedence: docs/cycling.md.

Incomplete cycles are kept out of fade, retention-based end of life and CE statistics.
With ``count_gap_estimates`` a cycle whose only defect is a gap carrying a charge estimate
counts, with the estimate added to the half it fell in, and is flagged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from cyclerflow.cycling.segment import CHARGE, DIRECTION_NAME, Samples, Segmentation
from cyclerflow.errors import InputError

#: incomplete_reason codes from events and the record's end, by precedence (first wins)
EVENT_REASONS = ("safety_stop", "stopped", "gap", "end_of_record")
STRUCTURAL_REASONS = ("missing_half", "wrong_start", "before_first_cycle", "cut_short")
#: a time gap with no event must also exceed this many median sampling intervals
MIN_GAP_INTERVALS = 10.0


@dataclass(frozen=True)
class Gap:
    """An unrecorded interval: test times (s) of the samples either side of it."""

    start_s: float
    end_s: float
    source: str  # "event" or "time"
    output_on: bool | None = None
    estimated_charge_ah: float | None = None
    estimate_method: str | None = None

    def as_dict(self, cycle: int | None) -> dict:
        return {
            "start_s": self.start_s,
            "end_s": self.end_s,
            "duration_s": self.end_s - self.start_s,
            "cycle": cycle,
            "source": self.source,
            "output_on": self.output_on,
            "estimated_charge_ah": self.estimated_charge_ah,
            "estimate_method": self.estimate_method,
        }


@dataclass(frozen=True)
class CycleSpans:
    """Per cycle (in the order of the per-cycle table): its number, first and last
    active run, first and last active sample time (s), and its half-cycle counts."""

    cycle: np.ndarray
    first_run: np.ndarray
    last_run: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    first_dir: np.ndarray
    cut: np.ndarray
    cut_reason: list[str]


@dataclass(frozen=True)
class Completeness:
    """Per cycle: complete?, reason code (None if complete), human-readable detail,
    the gap-estimated charge added (Ah, signed: > 0 into the charge half; 0 if none)."""

    complete: np.ndarray
    reason: list[str | None]
    detail: list[str]
    estimate_ah: np.ndarray
    gaps: list[dict]


def event_times(events: Iterable[dict] | None, kind: str) -> np.ndarray:
    """Finite test times (s) of the events of one kind."""
    ts = []
    for e in events or ():
        t = e.get("test_time_second")
        if e.get("kind") == kind and t is not None and math.isfinite(float(t)):
            ts.append(float(t))
    return np.asarray(ts, "f8")


def _opt_float(d: dict, key: str, k: int) -> float | None:
    v = d.get(key)
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        raise InputError(f"gap event {k}: {key} must be a number, got {v!r}") from None


def gap_events(events: Iterable[dict] | None) -> list[Gap]:
    """The ``gap`` events (message: JSON with ``start_s``, ``end_s``, ``output_on``,
    ``estimated_charge_ah``, ``estimate_method``, ...); a malformed one is an error."""
    gaps = []
    for k, e in enumerate(events or ()):
        if e.get("kind") != "gap":
            continue
        try:
            msg = json.loads(e.get("message") or "{}")
        except json.JSONDecodeError:
            raise InputError(f"gap event {k}: message is not JSON: {e.get('message')!r}") from None
        if not isinstance(msg, dict):
            raise InputError(f"gap event {k}: message must be a JSON object")
        start = _opt_float(msg, "start_s", k)
        end = _opt_float(msg, "end_s", k)
        start = float(e.get("test_time_second")) if start is None else start
        if end is None or not end >= start:
            raise InputError(f"gap event {k}: end_s must be a time >= start_s, got {end!r}")
        output_on = msg.get("output_on")
        gaps.append(
            Gap(
                start,
                end,
                "event",
                None if output_on is None else bool(output_on),
                _opt_float(msg, "estimated_charge_ah", k),
                msg.get("estimate_method"),
            )
        )
    return gaps


def cycle_time_gaps(s: Samples, seg: Segmentation, spans: CycleSpans) -> list[tuple[int, Gap]]:
    """(cycle position, gap) for cycles whose longest sample interval exceeds the rest
    of their recorded time and ``MIN_GAP_INTERVALS`` median sampling intervals."""
    if len(s.t) < 3 or len(spans.cycle) == 0:
        return []
    dt = np.diff(s.t) if s.dt is None else s.dt
    a = seg.starts[spans.first_run]
    b = seg.ends[spans.last_run] - 1  # max over dt[a:b]: the intervals inside the cycle
    # reduceat over (a, b) pairs; b may be len(dt) (the record's last sample): clip it
    # and fold that last interval back in below
    idx = np.column_stack([a, np.minimum(b, len(dt) - 1)]).ravel()
    big = np.maximum.reduceat(dt, np.minimum(idx, len(dt) - 1))[::2]
    at_end = b == len(dt)
    big[at_end] = np.maximum(big[at_end], dt[-1])
    big = np.where(b > a, big, 0.0)
    own = (spans.t1 - spans.t0) - big
    stride = max(1, len(dt) // 100_000)  # the median sampling interval, on a subsample
    floor = MIN_GAP_INTERVALS * float(np.median(dt[::stride]))
    out = []
    for k in np.flatnonzero((big > own) & (big > floor)):
        j = a[k] + int(np.argmax(dt[a[k] : b[k]]))
        out.append((int(k), Gap(float(s.t[j]), float(s.t[j + 1]), "time")))
    return out


class _Locator:
    """Maps test times to runs, half-cycles and cycle positions of one segmentation."""

    def __init__(self, s: Samples, seg: Segmentation, spans: CycleSpans):
        self.s, self.seg, self.spans = s, seg, spans
        self.pos = {int(c): k for k, c in enumerate(spans.cycle)}
        runs = np.arange(len(seg.starts))
        self.prev_active = np.maximum.accumulate(np.where(seg.active, runs, -1))

    def run_at(self, t: float) -> int:
        """Run holding the last sample at or before ``t`` (-1 before the record)."""
        j = int(np.searchsorted(self.s.t, t, side="right")) - 1
        return -1 if j < 0 else int(np.searchsorted(self.seg.starts, j, side="right")) - 1

    def active_run_at(self, t: float, *, through_rest: bool) -> int:
        r = self.run_at(t)
        if r < 0 or self.seg.active[r]:
            return r
        return int(self.prev_active[r]) if through_rest else -1

    def cycle_pos(self, run: int) -> int | None:
        if run < 0 or self.seg.run_cycle[run] < 0:
            return None
        return self.pos.get(int(self.seg.run_cycle[run]))

    def half_short(self, run: int, fraction: float, window: int) -> bool | None:
        """Is the half holding ``run`` short of its predecessors' median charge?
        None when no earlier half of its direction exists."""
        h = int(self.seg.run_half[run])
        d = self.seg.half_dir[h]
        prev = np.flatnonzero(self.seg.half_dir[:h] == d)[-window:]
        if len(prev) == 0:
            return None
        return bool(self.seg.half_q_as[h] < (1.0 - fraction) * np.median(self.seg.half_q_as[prev]))


def structural_reasons(seg: Segmentation, spans: CycleSpans) -> tuple[list[str | None], list[str]]:
    """Reason code and detail per cycle from the segmentation alone."""
    fh = seg.first_half
    codes: list[str | None] = []
    details: list[str] = []
    for k in range(len(spans.cycle)):
        code, det = None, ""
        if spans.n_in[k] == 0:
            code, det = "missing_half", f"no {DIRECTION_NAME[fh]} half-cycle"
        elif spans.n_out[k] == 0:
            code, det = "missing_half", f"no {DIRECTION_NAME[-fh]} half-cycle"
        elif spans.first_dir[k] != fh:
            code = "wrong_start"
            det = f"starts with {DIRECTION_NAME[-fh]} (cycles start with {DIRECTION_NAME[fh]})"
        elif spans.cut[k]:
            code, det = "cut_short", spans.cut_reason[k]
        codes.append(code)
        details.append(det)
    if seg.cycle_source.startswith("current") and len(spans.cycle) and spans.cycle[0] == 0:
        codes[0] = codes[0] or "before_first_cycle"
        details[0] = details[0] or "half-cycle before the first full cycle"
    return codes, details


def _flag(found: dict[int, tuple[str, str]], k: int | None, code: str, detail: str) -> None:
    """Keep the reason of highest precedence per cycle position."""
    if k is None:
        return
    old = found.get(k)
    if old is None or EVENT_REASONS.index(code) < EVENT_REASONS.index(old[0]):
        found[k] = (code, detail)


def _stop_reasons(loc: _Locator, events, codes, found, th) -> None:
    for t in event_times(events, "safety_stop"):
        r = loc.active_run_at(t, through_rest=True)
        k = loc.cycle_pos(r)
        if k is not None and (loc.seg.active[loc.run_at(t)] or codes[k] is not None):
            _flag(found, k, "safety_stop", f"safety_stop event at {t:.6g} s")
    for t in event_times(events, "stop"):
        r = loc.active_run_at(t, through_rest=True)
        k = loc.cycle_pos(r)
        if k is None:
            continue
        short = loc.half_short(r, th.cut_short_fraction, th.cut_short_window)
        if codes[k] is not None or (loc.seg.active[loc.run_at(t)] and short is not False):
            _flag(found, k, "stopped", f"stop event at {t:.6g} s (test stopped mid-cycle)")


def _gap_reasons(loc: _Locator, gaps: list[Gap], found) -> list[tuple[int | None, Gap]]:
    placed = []
    sp = loc.spans
    for g in gaps:
        ks = set(np.flatnonzero((sp.t0 < g.end_s) & (sp.t1 > g.start_s)).tolist())
        at = loc.cycle_pos(loc.active_run_at(g.start_s, through_rest=False))
        if at is not None:
            ks.add(at)
        for k in sorted(ks):
            _flag(found, k, "gap", f"unrecorded gap {g.start_s:.6g}-{g.end_s:.6g} s")
        placed.append((min(ks) if ks else None, g))
    return placed


def _end_of_record(loc: _Locator, codes, found, th) -> None:
    """The cycle the record ends in: incomplete if it is structurally so, or if the
    record ends inside an active run whose half is short of its predecessors."""
    seg = loc.seg
    last_active = int(loc.prev_active[-1])
    k = loc.cycle_pos(last_active)
    if k is None:
        return
    ends_active = bool(seg.active[-1])
    short = loc.half_short(last_active, th.cut_short_fraction, th.cut_short_window)
    if codes[k] is not None or (ends_active and short):
        _flag(found, k, "end_of_record", "the record ends before this cycle does")


def classify_cycles(
    s: Samples,
    seg: Segmentation,
    spans: CycleSpans,
    events: Iterable[dict] | None,
    *,
    count_gap_estimates: bool = False,
) -> Completeness:
    """Complete flag, reason code and detail per cycle (see the module docstring)."""
    events = list(events or ())
    th = seg.thresholds
    codes, details = structural_reasons(seg, spans)
    structural = list(codes)
    loc = _Locator(s, seg, spans)
    found: dict[int, tuple[str, str]] = {}
    _stop_reasons(loc, events, codes, found, th)
    placed = _gap_reasons(loc, gap_events(events), found)
    for k, g in cycle_time_gaps(s, seg, spans):
        if k not in found or found[k][0] != "gap":
            _flag(found, k, "gap", f"no samples for {g.end_s - g.start_s:.6g} s (no gap event)")
            placed.append((k, g))
    _end_of_record(loc, codes, found, th)
    for k, (code, det) in found.items():
        details[k] = det + (f"; {details[k]}" if details[k] else "")
        codes[k] = code
    estimate = np.zeros(len(spans.cycle))
    if count_gap_estimates:
        _use_estimates(loc, placed, structural, codes, details, estimate)
    gaps = [g.as_dict(None if k is None else int(spans.cycle[k])) for k, g in placed]
    complete = np.array([c is None for c in codes], bool)
    return Completeness(complete, codes, details, estimate, gaps)


def _use_estimates(loc: _Locator, placed, structural, codes, details, estimate) -> None:
    """Count gap cycles whose every gap has a charge estimate (and nothing else wrong)."""
    by_cycle: dict[int, list[Gap]] = {}
    for k, g in placed:
        if k is not None:
            by_cycle.setdefault(k, []).append(g)
    for k, gs in by_cycle.items():
        if codes[k] != "gap" or structural[k] is not None:
            continue
        if any(g.estimated_charge_ah is None for g in gs):
            continue
        total = 0.0
        for g in gs:
            r = loc.active_run_at(g.start_s, through_rest=False)
            sign = 0 if r < 0 or not loc.seg.active[r] else int(loc.seg.sign[r])
            total += (1.0 if sign == CHARGE else -1.0) * abs(g.estimated_charge_ah) * abs(sign)
        estimate[k] = total
        codes[k] = None
        details[k] = "counted with the gap's estimated charge: " + details[k]
