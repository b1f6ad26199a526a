"""Step bookkeeping: the state of the running step and its ``step_start``/``step_end`` events.

A step's end and the next step's start are written at the switch between them (see
:func:`cyclerflow.acquire.sampling.set_source`): the source command goes out first,
and on a channel that reads around the switch the reading taken right before it
closes the previous step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cyclerflow.acquire.instrument import Sample
from cyclerflow.acquire.progress import Pos, ResumePoint, format_fields, format_pos
from cyclerflow.acquire.recipe import CURRENT_KINDS
from cyclerflow.acquire.rows import RowContext

if TYPE_CHECKING:
    from cyclerflow.acquire.engine import ChannelRunner


@dataclass
class StepRun:
    """State of the step being run (for end conditions and the step_end event)."""

    kind: str
    pos: Pos
    start_t: float  # test time (s) when this run of the step started
    elapsed0: float = 0.0  # time spent before a resume
    charge0: float = 0.0  # Ah passed before a resume
    charge: float = 0.0  # Ah passed in this run
    v_start: float = float("nan")
    v_max: float = -math.inf
    last_t: float = float("nan")
    last_i: float = float("nan")
    n: int = 0
    #: end-step extras (e.g. an estimated gap charge), written into the step_end event
    notes: dict[str, object] = field(default_factory=dict)

    def elapsed(self, t: float) -> float:
        return self.elapsed0 + (t - self.start_t)

    @property
    def total_charge(self) -> float:
        return self.charge0 + self.charge

    def add(self, s: Sample, t: float) -> None:
        """Take reading ``s`` at test time ``t``: trapezoid charge since the last one (Ah)."""
        if self.n:
            self.charge += 0.5 * (s.current_a + self.last_i) * (t - self.last_t) / 3600.0
        else:
            self.v_start = s.voltage_v
        self.n += 1
        self.last_t, self.last_i = t, s.current_a
        self.v_max = max(self.v_max, s.voltage_v)


@dataclass(frozen=True, slots=True)
class PendingStart:
    """A step_start event waiting for the switch."""

    run: StepRun
    message: str


@dataclass(frozen=True, slots=True)
class PendingEnd:
    """A step_end event waiting for the switch to the next step.

    ``ctx``: the ended step's row counters; ``k``: its index in ``step_ends``.
    """

    run: StepRun
    reason: str
    extra: dict[str, object]
    ctx: RowContext
    k: int


class StepEvents:
    """Pending step_start / step_end of one channel (see the module docstring)."""

    def __init__(self, eng: ChannelRunner):
        self.eng = eng
        self.pending_start: PendingStart | None = None
        self.pending_end: PendingEnd | None = None
        #: flush the file at the next step's first reading (see sampling.poll)
        self.flush_at_first_reading = False

    def start(self, kind: str, pos: Pos, rp: ResumePoint | None, **extra: object) -> StepRun:
        """A new run of a step (``rp``: continue an interrupted one)."""
        eng = self.eng
        eng.check_stop()
        run = StepRun(kind, pos, eng.tb.now())
        gap, eng.pending_gap = eng.pending_gap, None
        if gap is not None and gap.sourced:  # the first step after a restart carries
            run.notes = {"gap_s": gap.duration_s, "gap_q_ah": gap.estimated_charge_ah}
        if rp is not None and rp.mode == "continue":
            run.elapsed0, run.charge0 = rp.elapsed_s, rp.charge_ah
            if gap is not None and gap.sourced:  # the step went on without a host
                run.elapsed0 += gap.duration_s
                if math.isfinite(gap.estimated_charge_ah):
                    run.charge0 += gap.estimated_charge_ah
                run.notes["q_estimated"] = 1
            return run  # the step goes on under its old step_count
        eng.step_count += 1
        if kind in CURRENT_KINDS:
            eng.cycle_has_current = True
        message = format_fields(
            pos=format_pos(pos),
            kind=kind,
            cycle=eng.cycle,
            step_count=eng.step_count,
            step_index=eng.step_index,
            **extra,
        )
        self.pending_start = PendingStart(run, message)
        return run

    def end(self, run: StepRun, reason: str, **extra: object) -> None:
        """The step is over; its step_end is written at the switch to the next step,
        after the reading taken with that switch where the instrument can."""
        eng = self.eng
        self.settle_end()
        eng.step_ends.append((run.pos, run.total_charge))
        ctx = RowContext(eng.cycle, eng.step_count, eng.step_index)
        self.pending_end = PendingEnd(run, reason, extra, ctx, len(eng.step_ends) - 1)

    def settle_end(self, before: Sample | None = None, t: float = math.nan) -> None:
        """Write the pending step_end (``before``: the step's last reading, taken with
        the switch at test time ``t``)."""
        p = self.pending_end
        if p is None:
            return
        self.pending_end = None
        eng, run = self.eng, p.run
        if before is not None:
            run.add(before, t)
            eng.record_row(t, before, p.ctx)
            eng.step_ends[p.k] = (run.pos, run.total_charge)
        tt = run.last_t if math.isfinite(run.last_t) else eng.tb.now()
        fields = format_fields(
            pos=format_pos(run.pos),
            kind=run.kind,
            reason=p.reason,
            q_ah=run.total_charge,
            duration_s=run.elapsed(tt),
            cycle=p.ctx.cycle,
            step_count=p.ctx.step_count,
            **p.extra,
            **run.notes,
        )
        eng.event("step_end", fields, step=p.ctx.step_index, t=tt, flush=False)
        # made durable at the next step's first reading (see sampling.poll): never
        # between the end condition and the switch, where every ms of a flush is
        # charge the file does not see
        self.flush_at_first_reading = True

    def emit_start(self, t: float | None = None) -> None:
        """Write the pending step_start (``t``: the switch, which then starts the step)."""
        p = self.pending_start
        if p is None:
            return
        self.pending_start = None
        if t is not None:
            p.run.start_t = t
        self.eng.event("step_start", p.message, t=p.run.start_t, flush=False)

    def settle(self) -> None:
        """Write whatever is pending (end, then start)."""
        self.settle_end()
        self.emit_start()
