"""Where a run is in its recipe, written as events, and read back to resume.

Positions are paths through the recipe tree: one element per level, ``(index,
iteration)`` for a loop (iteration counted from 1) and ``(index, 0)`` for the leaf
step. As text: ``"1:16/2"`` = top-level step 1 (a loop), its 16th iteration, inner
step 2. Each step writes ``step_start`` and ``step_end`` events whose messages are
``key=value`` pairs (``pos=1:16/2 kind=cc_discharge cycle=16 step_count=80 ...``),
so a restarted run finds where it stopped from the file alone.
"""

from __future__ import annotations

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


@dataclass
class FileState:
    complete: bool
    safety_stop: str | None
    resume: ResumePoint | None


def file_state(path: str | Path, current_kinds: frozenset[str]) -> FileState:
    """Read a cell file's events and data and say how to go on."""
    events = read_events(path)
    complete = any(e["kind"] == "note" and e["message"] == COMPLETE_MESSAGE for e in events)
    safety = None
    last_start = None
    step_ends: list[tuple[Pos, float]] = []
    start_index = -1
    for n, e in enumerate(events):
        kind = e["kind"]
        if kind == "safety_stop":
            safety = e["message"]
        elif kind == "resume":
            safety = None
        elif kind == "step_start":
            last_start = e
            start_index = n
        elif kind == "step_end":
            f = parse_fields(e["message"])
            if "pos" in f:
                step_ends.append((parse_pos(f["pos"]), float(f.get("q_ah", "0"))))
    cyc = read_cycling(
        path, columns=["test_time_second", "unix_time_second", "current_ampere", "step_count"]
    )
    t = cyc["test_time_second"].values
    if last_start is None:
        if len(t):
            raise InputError(
                "file has data but no step events: not written by `cyclerflow acquire`", path=path
            )
        return FileState(complete, safety, None)
    f = parse_fields(last_start["message"])
    pos = parse_pos(f["pos"])
    step_count = int(f["step_count"])
    cycle = int(f["cycle"])
    end_fields = next(
        (
            parse_fields(e["message"])
            for e in events[start_index + 1 :]
            if e["kind"] == "step_end"
            and parse_fields(e["message"]).get("step_count") == f["step_count"]
        ),
        None,
    )
    ended = end_fields is not None
    has_current = any(
        e["kind"] == "step_start"
        and parse_fields(e["message"]).get("cycle") == str(cycle)
        and parse_fields(e["message"]).get("kind") in current_kinds
        for e in events
    )
    rp = ResumePoint(
        pos=pos,
        mode="after" if ended else "continue",
        cycle=cycle,
        step_count=step_count,
        cycle_has_current=has_current,
        fields=f,
        end_fields=end_fields or {},
        step_ends=step_ends,
    )
    if len(t):
        rp.last_test_time_s = float(np.nanmax(t))
        u = cyc["unix_time_second"].values
        ok = np.isfinite(u) & np.isfinite(t)
        if ok.any():
            rp.unix_at_test_zero = float(u[ok][0] - t[ok][0])
    else:
        rp.last_test_time_s = float(last_start["test_time_second"])
    if not ended:
        sel = cyc["step_count"].values == step_count
        t0 = float(last_start["test_time_second"])
        ts, cur = t[sel], cyc["current_ampere"].values[sel]
        if len(ts):
            rp.elapsed_s = max(0.0, float(ts[-1]) - t0)
            rp.charge_ah = float(np.trapezoid(cur, ts)) / 3600.0 if len(ts) > 1 else 0.0
    return FileState(complete, safety, rp)
