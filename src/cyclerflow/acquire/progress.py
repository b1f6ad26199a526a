"""Where a run is in its recipe, written as events, and read back to resume.

Positions are paths through the recipe tree: one element per level, ``(index,
iteration)`` for a loop (iteration counted from 1) and ``(index, 0)`` for the leaf
step. As text: ``"1:16/2"`` = top-level step 1 (a loop), its 16th iteration, inner
step 2. Each step writes ``step_start`` and ``step_end`` events whose messages are
``key=value`` pairs (``pos=1:16/2 kind=cc_discharge cycle=16 step_count=80 ...``),
so a restarted run finds where it stopped from the file alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.store import read_cycling, read_events

Pos = tuple[tuple[int, int], ...]

COMPLETE_MESSAGE = "recipe complete"


def format_pos(pos: Pos) -> str:
    return "/".join(f"{i}:{it}" if it else f"{i}" for i, it in pos)


def parse_pos(text: str) -> Pos:
    out = []
    for part in text.split("/"):
        i, _, it = part.partition(":")
        out.append((int(i), int(it) if it else 0))
    return tuple(out)


def format_fields(**fields: object) -> str:
    parts = []
    for k, v in fields.items():
        if isinstance(v, float):
            v = f"{v:.10g}"
        parts.append(f"{k}={v}")
    return " ".join(parts)


def parse_fields(message: str) -> dict[str, str]:
    out = {}
    for part in message.split():
        k, sep, v = part.partition("=")
        if sep:
            out[k] = v
    return out


@dataclass
class ResumePoint:
    """What a restarted run needs: where to go on and the counters to continue."""

    pos: Pos
    #: "continue": the step was interrupted (run the rest of it);
    #: "after": it ended (go on with the next one)
    mode: str
    cycle: int
    step_count: int
    cycle_has_current: bool
    #: simulated seconds already spent in an interrupted step, and charge passed (Ah)
    elapsed_s: float = 0.0
    charge_ah: float = 0.0
    #: extra fields of the interrupted step's start event (e.g. gitt pulse)
    fields: dict[str, str] = field(default_factory=dict)
    #: fields of its end event when it ended
    end_fields: dict[str, str] = field(default_factory=dict)
    last_test_time_s: float = 0.0
    unix_at_test_zero: float = float("nan")
    #: (position, signed charge in Ah) of every finished step, for loop conditions
    step_ends: list[tuple[Pos, float]] = field(default_factory=list)
    #: Unix time (wall s) when the last stored sample was taken (NaN: unknown)
    wall_at_last_s: float = float("nan")
    #: clock rate (x real time) of the run that stored it (NaN: unknown)
    clock_rate: float = float("nan")
    #: the previous run ended with the host switching the output off (a stop signal
    #: or a safety stop), not by dying
    ended_cleanly: bool = False
    #: the previous run refused to resume (its resume policy said stop)
    refused: bool = False
    #: the previous run read the instrument back (its gap event) and died before it
    #: stored a sample: the last the host did was switch the output off
    off_by_host: bool = False


@dataclass
class FileState:
    complete: bool
    safety_stop: str | None
    resume: ResumePoint | None


#: the note each run writes at its start: ``clock_rate=X wall_s=W`` at test time T
CLOCK_NOTE_PREFIX = "clock_rate="

#: the start of the note a run that refused to resume ends with
REFUSED_NOTE = "resume refused"

#: notes that mean the host itself switched the output off and closed the file
_CLEAN_END_NOTES = ("stopped by signal (output off)",)


@dataclass(frozen=True)
class _EventScan:
    """What the events of a file say (see :func:`file_state`)."""

    complete: bool
    safety: str | None
    last_start: dict | None
    start_index: int
    step_ends: list[tuple[Pos, float]]
    #: (rate, wall s, test s) of the last clock note
    clock: tuple[float, float, float] | None
    #: end (test s) of the last gap event
    gap_end_s: float
    ended_cleanly: bool
    refused: bool


def _scan_events(events: list[dict]) -> _EventScan:
    complete = any(e["kind"] == "note" and e["message"] == COMPLETE_MESSAGE for e in events)
    safety, last_start, start_index, clock, gap_end = None, None, -1, None, -np.inf
    step_ends: list[tuple[Pos, float]] = []
    for n, e in enumerate(events):
        kind, msg = e["kind"], e["message"]
        if kind == "safety_stop":
            safety = msg
        elif kind == "resume":
            safety = None
        elif kind == "step_start":
            last_start, start_index = e, n
        elif kind == "step_end":
            f = parse_fields(msg)
            if "pos" in f:
                step_ends.append((parse_pos(f["pos"]), float(f.get("q_ah", "0"))))
        elif kind == "note" and msg.startswith(CLOCK_NOTE_PREFIX):
            f = parse_fields(msg)
            clock = (float(f["clock_rate"]), float(f["wall_s"]), float(e["test_time_second"]))
        elif kind == "gap":
            gap_end = max(gap_end, _gap_end(msg))
    last = events[-1] if events else None
    clean = last is not None and (
        last["kind"] == "safety_stop"
        or (last["kind"] == "note" and last["message"] in _CLEAN_END_NOTES)
    )
    refused = (
        last is not None and last["kind"] == "note" and last["message"].startswith(REFUSED_NOTE)
    )
    return _EventScan(
        complete, safety, last_start, start_index, step_ends, clock, gap_end, clean, refused
    )


def _gap_end(message: str) -> float:
    try:
        return float(json.loads(message)["end_s"])
    except (ValueError, KeyError, TypeError):
        return -np.inf


def file_state(path: str | Path, current_kinds: frozenset[str]) -> FileState:
    """Read a cell file's events and data and say how to go on."""
    events = read_events(path)
    scan = _scan_events(events)
    cyc = read_cycling(
        path, columns=["test_time_second", "unix_time_second", "current_ampere", "step_count"]
    )
    t = cyc["test_time_second"].values
    if scan.last_start is None:
        if len(t):
            raise InputError(
                "file has data but no step events: not written by `cyclerflow acquire`", path=path
            )
        return FileState(scan.complete, scan.safety, None)
    rp = _resume_point(events, scan, current_kinds)
    _fill_times(rp, cyc, scan)
    return FileState(scan.complete, scan.safety, rp)


def _resume_point(
    events: list[dict], scan: _EventScan, current_kinds: frozenset[str]
) -> ResumePoint:
    last_start = scan.last_start
    assert last_start is not None
    f = parse_fields(last_start["message"])
    cycle = int(f["cycle"])
    end_fields = next(
        (
            parse_fields(e["message"])
            for e in events[scan.start_index + 1 :]
            if e["kind"] == "step_end"
            and parse_fields(e["message"]).get("step_count") == f["step_count"]
        ),
        None,
    )
    has_current = any(
        e["kind"] == "step_start"
        and parse_fields(e["message"]).get("cycle") == str(cycle)
        and parse_fields(e["message"]).get("kind") in current_kinds
        for e in events
    )
    return ResumePoint(
        pos=parse_pos(f["pos"]),
        mode="after" if end_fields is not None else "continue",
        cycle=cycle,
        step_count=int(f["step_count"]),
        cycle_has_current=has_current,
        fields=f,
        end_fields=end_fields or {},
        step_ends=scan.step_ends,
        ended_cleanly=scan.ended_cleanly,
        refused=scan.refused,
    )


def _fill_times(rp: ResumePoint, cyc, scan: _EventScan) -> None:
    """Last test time, Unix time at test zero, wall time of the last sample, and the
    elapsed time and charge of an interrupted step."""
    t = cyc["test_time_second"].values
    t0 = float(scan.last_start["test_time_second"])
    if len(t):
        rp.last_test_time_s = float(np.nanmax(t))
        u = cyc["unix_time_second"].values
        ok = np.isfinite(u) & np.isfinite(t)
        if ok.any():
            rp.unix_at_test_zero = float(u[ok][0] - t[ok][0])
    else:
        rp.last_test_time_s = t0
    rp.off_by_host = scan.gap_end_s >= rp.last_test_time_s
    rp.last_test_time_s = max(rp.last_test_time_s, scan.gap_end_s)
    if scan.clock is not None:
        rate, wall, tt = scan.clock
        rp.clock_rate = rate
        rp.wall_at_last_s = wall + (rp.last_test_time_s - tt) / rate
    if rp.mode == "continue":
        sel = cyc["step_count"].values == rp.step_count
        ts, cur = t[sel], cyc["current_ampere"].values[sel]
        if len(ts):
            rp.elapsed_s = max(0.0, float(ts[-1]) - t0)
            rp.charge_ah = float(np.trapezoid(cur, ts)) / 3600.0 if len(ts) > 1 else 0.0
