"""The acquisition engine: runs one recipe on one instrument channel into one cell file.

:class:`ChannelRunner` walks the recipe tree (loops, cycles, resume point) and hands
each step to :mod:`cyclerflow.acquire.steps`; readings, safety checks and recording
are in :mod:`~cyclerflow.acquire.sampling`, the link in :mod:`~cyclerflow.acquire.link`,
the time axis in :mod:`~cyclerflow.acquire.timebase`, row buffering in
:mod:`~cyclerflow.acquire.rows`, step events in :mod:`~cyclerflow.acquire.stepevents`.
It never lets an exception leave with the output on: every way out goes through
``output_off``.

Outcomes (``ChannelResult.status``): ``complete``, ``stopped`` (Ctrl-C/SIGTERM),
``safety_stop``, ``error`` (garbled reply, instrument error queue not empty),
``disconnected`` (the link could not be restored), ``failed`` (anything else).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from cyclerflow.acquire import steps as kinds
from cyclerflow.acquire.clock import Clock
from cyclerflow.acquire.guards import held_modes, step_guard
from cyclerflow.acquire.instrument import (
    ConnectionLost,
    GuardedSource,
    Sample,
    SourceMeterChannel,
    SourceState,
    StepGuard,
    TemperatureController,
)
from cyclerflow.acquire.link import Link, ReconnectPolicy, Stopped
from cyclerflow.acquire.progress import (
    COMPLETE_MESSAGE,
    Pos,
    ResumePoint,
    format_fields,
    format_pos,
)
from cyclerflow.acquire.recipe import Eis, Gitt, Loop, Recipe
from cyclerflow.acquire.resume import (
    RESUME_REFUSED,
    Gap,
    ResumeRefused,
    decide,
    ended_in_gap,
    make_gap,
    resume_test_time,
    state_from_reading,
    step_at,
    step_source,
    stopped_by_itself,
)
from cyclerflow.acquire.rows import RowBuffer, RowContext
from cyclerflow.acquire.sampling import FirstReading
from cyclerflow.acquire.stepevents import StepEvents
from cyclerflow.acquire.timebase import READING_AGE_S, RateCheck, Timebase
from cyclerflow.errors import InstrumentError, SafetyStop
from cyclerflow.store import CellWriter

log = logging.getLogger("cyclerflow.acquire")


@dataclass
class ChannelResult:
    name: str
    out: Path
    status: str = "failed"
    message: str = ""
    samples_read: int = 0
    rows_written: int = 0
    cycles: int = 0
    spectra: int = 0
    #: polls that started more than one sampling interval late (samples missed)
    missed_polls: int = 0
    #: largest lateness of a poll behind its schedule (wall seconds)
    max_lateness_s: float = 0.0
    lateness_s: list[float] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "complete"


class ChannelRunner:
    """Run ``recipe`` on ``channel``, writing to ``writer``. Call :meth:`run` once."""

    def __init__(
        self,
        channel: SourceMeterChannel,
        writer: CellWriter,
        recipe: Recipe,
        *,
        clock: Clock | None = None,
        name: str | None = None,
        temperature: TemperatureController | None = None,
        resume: ResumePoint | None = None,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        keep_lateness: bool = False,
        flush_phase: float = 0.0,
        clock_source: str = "the host clock",
        start_notes: tuple[str, ...] = (),
        on_resume: str | None = None,
        output_off_at: float | None = None,
    ):
        self.ch = channel
        self.w = writer
        self.recipe = recipe
        self.limits = recipe.limits
        self.clock = clock or Clock()
        self.tc = temperature
        self.result = ChannelResult(name or channel.name or "channel", writer.path)
        self.keep_lateness = keep_lateness
        self.link = Link(channel, self.clock, reconnect, self._link_note, self.result.name)
        self.rows = RowBuffer(writer, flush_phase)
        self.tb = Timebase(self.clock)
        slack = 2 * recipe.sample_interval + READING_AGE_S * self.clock.speedup
        self.rate = RateCheck(self.clock, slack, clock_source)
        #: source modes whose guard the instrument holds itself
        self.held = held_modes(channel)
        self.steps = StepEvents(self)
        self.first_reading: FirstReading | None = None
        self._resume = resume
        self._start_notes = start_notes
        self._on_resume = on_resume
        #: Unix time a watchdog switched the output off while no engine ran
        self._off_at = output_off_at
        #: the gap of this restart, until the first step run after it takes it
        self.pending_gap: Gap | None = None
        self._gap_start = math.nan  # test time of the last stored sample (s)
        self.cycle = 1
        self.step_count = 0
        self.cycle_has_current = False
        self.step_ends: list[tuple[Pos, float]] = []
        self.setpoint: float | None = None
        self.iteration = 0
        self.step_index = 0
        if resume is not None:
            self._continue_counters(resume)

    def _continue_counters(self, rp: ResumePoint) -> None:
        """Counters and the time axis of a resumed file: test time goes on from the wall
        time since the last stored sample x the clock rate (see :mod:`.resume`)."""
        self.cycle = rp.cycle
        self.step_count = rp.step_count
        self.cycle_has_current = rp.cycle_has_current
        self.step_ends = list(rp.step_ends)
        if math.isfinite(rp.unix_at_test_zero):
            self.tb.unix0 = rp.unix_at_test_zero
        t = resume_test_time(rp, self.clock.wall_time(), self.clock.speedup)
        self.tb.start_at(t)
        self._gap_start = rp.last_test_time_s

    # -- small services the step kinds use --------------------------------------------
    def test_time(self) -> float:
        """Test time now (s)."""
        return self.tb.now()

    def check_stop(self) -> None:
        if self.clock.stop.is_set():
            raise Stopped()

    def record_row(self, t: float, s: Sample, ctx: RowContext | None = None) -> None:
        """Buffer one row at test time ``t``; ``ctx``: its counters (default: now)."""
        ctx = ctx or RowContext(self.cycle, self.step_count, self.step_index)
        self.rows.record(t, s, ctx, self.tb.unix0)

    def event(
        self,
        kind: str,
        message: str,
        *,
        step: int | None = None,
        t: float | None = None,
        flush: bool = True,
    ) -> None:
        """Write an event at test time ``t`` (default: now); rows buffered so far first."""
        if flush:
            self.rows.push(flush=False)
        tt = self.tb.now() if t is None else t
        self.w.add_event(
            kind,
            message,
            step=self.step_index if step is None else step,
            unix_time_second=self.tb.unix0 + tt,
            test_time_second=tt,
            flush=flush,
        )

    def _link_note(self, kind: str, message: str) -> None:
        if kind == "disconnect":
            self.rows.push()
        self.event(kind, message)

    def temperature_now(self) -> float:
        """The controller's temperature (K), NaN without one."""
        if self.tc is not None:
            return float(self.link.io(self.tc.read_temperature))
        return float("nan")

    def guard_kw(self, mode: str) -> dict[str, StepGuard]:
        """``{"guard": StepGuard}`` (the recipe's safety window,
        :func:`~cyclerflow.acquire.guards.step_guard`) for a source command in ``mode``
        on a channel that holds that mode's guard itself, else ``{}``."""
        if mode not in self.held:
            return {}
        return {"guard": step_guard(self.limits)}

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> ChannelResult:
        """Run the recipe to its end or to a stop; the output is off when this returns."""
        res = self.result
        try:
            self._walk_recipe()
            res.status, res.message = "complete", "recipe complete"
        except BaseException as err:
            self._outcome(err)
            if not isinstance(err, Exception):
                raise
        finally:
            try:
                self.rows.push()
                res.rows_written = self.w.flush()
            except Exception:
                log.exception("%s: flushing the cell file failed", res.name)
        res.cycles = self.cycle
        return res

    def _walk_recipe(self) -> None:
        self.check_stop()
        rp = self._resume
        if rp is not None:
            fields = format_fields(
                pos=format_pos(rp.pos), mode=rp.mode, cycle=rp.cycle, step_count=rp.step_count
            )
            self.event("resume", fields)
        self._write_start_notes()
        if rp is not None:
            self._take_gap(rp)
        # a known, safe state first (a killed run may have left it on)
        self.link.io(self.ch.output_off)
        stale = self.link.io(self.ch.errors)  # left from before this run: recorded, not fatal
        if stale:
            self.event(
                "note", "instrument error queue at start (cleared): " + "; ".join(map(str, stale))
            )
        try:
            self._run_block(self.recipe.steps, (), rp.pos if rp else None)
        finally:
            self._settle_open_events()
        self.link.safe_off()
        self._check_errors_at_end()
        self.rows.push()
        self.event("note", COMPLETE_MESSAGE)

    def _check_errors_at_end(self) -> None:
        """The error queue once more after the output is off: the drivers read it after
        every source change, so an error the instrument logged during the last step
        (between reads) would otherwise end in "recipe complete"."""
        left = self.link.io(self.ch.errors)
        if left:
            raise InstrumentError(
                "error queue at the end of the run (since the last source change): "
                + "; ".join(map(str, left))
            )

    def _write_start_notes(self) -> None:
        """The clock of this run (parsed by the next resume) and the caller's notes."""
        rate = format_fields(clock_rate=self.clock.speedup, wall_s=f"{self.clock.wall_time():.6f}")
        self.event("note", rate)
        for note in self._start_notes:
            self.event("note", note)

    def _take_gap(self, rp: ResumePoint) -> None:
        """Read back what the instrument did while no host ran, write the ``gap`` event
        and apply the resume policy (:class:`ResumeRefused` when it says stop)."""
        mode, setpoint = step_source(step_at(self.recipe, rp.pos), rp.fields)
        read_back = isinstance(self.ch, GuardedSource)
        if read_back:
            state = self.link.io(self.ch.source_state)
        else:
            try:
                reading = self.link.io(self.ch.read)
            except InstrumentError:
                reading = None
            state = state_from_reading(reading, mode, setpoint)
        on_for = None
        if self._off_at is not None and not state.output_on and mode != "ocv":
            # on until the watchdog switched it off (the readback sees it off now)
            on_for = (self._off_at - rp.wall_at_last_s) * self.clock.speedup
            state = SourceState(True, mode, setpoint, state.reading)
        elif read_back and rp.mode == "continue" and not self._host_switched_off(rp):
            state = stopped_by_itself(state, mode, setpoint)
        recorded = rp.charge_ah if rp.mode == "continue" else 0.0
        # the gap ends with the read-back: the instrument sourced until then
        gap = make_gap(self._gap_start, self.tb.now(), state, read_back, on_for, recorded)
        self.event("gap", gap.to_json(), t=gap.start_s)
        held = state.tripped or gap.mode in self.held or gap.mode == "ocv"
        if decide(self.recipe, rp, gap, held, self._on_resume) == "restart_step":
            if rp.mode == "continue":
                rp.mode = "restart"
        self.pending_gap = gap

    @staticmethod
    def _host_switched_off(rp: ResumePoint) -> bool:
        """The previous run's last word to the instrument was output off (a stop signal,
        a safety stop, a refusal to resume, or a read-back then death)."""
        return rp.ended_cleanly or rp.refused or rp.off_by_host

    def _outcome(self, err: BaseException) -> None:
        """Output off, then the result and an event for the way the run ended."""
        res = self.result
        self.link.safe_off()
        step = self.step_index
        if isinstance(err, SafetyStop):
            res.status, res.message = "safety_stop", str(err)
            self.event("safety_stop", str(err), step=step)
            log.warning("%s: safety stop: %s", res.name, err)
        elif isinstance(err, Stopped):
            res.status, res.message = "stopped", "stopped by signal (output off; restart to resume)"
            self.event("note", "stopped by signal (output off)", step=step)
        elif isinstance(err, ResumeRefused):
            res.status, res.message = "error", f"resume refused: {err}"
            self.event("note", f"{RESUME_REFUSED}: {err}", step=step)
            log.error("%s: %s", res.name, err)
        elif isinstance(err, ConnectionLost):
            res.status, res.message = "disconnected", str(err)
            self.event("disconnect", f"gave up: {err}", step=step)
            log.error("%s: %s", res.name, err)
        elif isinstance(err, InstrumentError):
            res.status, res.message = "error", f"instrument error: {err}"
            self.event("note", f"instrument error, output off: {err}", step=step)
            log.error("%s: instrument error: %s", res.name, err)
        else:
            res.status, res.message = "failed", f"{type(err).__name__}: {err}"
            with contextlib.suppress(Exception):
                self.event("note", f"engine failure, output off: {type(err).__name__}: {err}")
            if isinstance(err, Exception):
                log.exception("%s: engine failure", res.name, exc_info=err)

    def _settle_open_events(self) -> None:
        """On the way out of the recipe: write what is pending (never masks an error)."""
        try:
            self.steps.settle()
        except Exception:
            log.exception("%s: writing the last step events failed", self.result.name)

    # -- tree walking ----------------------------------------------------------------
    def _run_block(self, steps: tuple, prefix: Pos, resume: Pos | None) -> None:
        start = resume[0][0] if resume else 0
        for i in range(start, len(steps)):
            here = resume if (resume and i == start) else None
            step = steps[i]
            if isinstance(step, Loop):
                self._run_loop(step, prefix, i, here)
            else:
                self._run_leaf(step, prefix + ((i, 0),), resume=here is not None)

    def _run_loop(self, loop: Loop, prefix: Pos, i: int, resume: Pos | None) -> None:
        it0 = resume[0][1] if resume else 1
        n = loop.repeat if loop.repeat is not None else 10**9
        outer_iteration = self.iteration
        for it in range(it0, n + 1):
            inner = resume[1:] if (resume and it == it0) else None
            if not inner and loop.counts_cycles and self.cycle_has_current:
                self.cycle += 1
                self.cycle_has_current = False
            if loop.setpoints:
                self.setpoint = loop.setpoints[it - 1]
            self.iteration = it
            self._run_block(loop.steps, prefix + ((i, it),), inner or None)
            if self._loop_done(loop, prefix, i, it):
                break
        self.iteration = outer_iteration
        self.setpoint = None

    def _discharge_of(self, prefix: Pos) -> float:
        k = len(prefix)
        return -sum(q for pos, q in self.step_ends if pos[:k] == prefix and q < 0)

    def _loop_done(self, loop: Loop, base: Pos, i: int, it: int) -> bool:
        until = loop.until
        if until.empty():
            return False
        here = base + ((i, it),)
        q = self._discharge_of(here)
        if until.discharge_capacity is not None and q < until.discharge_capacity:
            self.event(
                "note", format_fields(loop=format_pos(here), end="discharge_capacity", q_ah=q)
            )
            return True
        if until.retention is not None:
            q1 = self._discharge_of(base + ((i, 1),))
            if q1 > 0 and q / q1 < until.retention:
                self.event(
                    "note", format_fields(loop=format_pos(here), end="retention", ratio=q / q1)
                )
                return True
        return False

    def _run_leaf(self, step, pos: Pos, *, resume: bool) -> None:
        rp = self._resume if resume else None
        self._resume = None if resume else self._resume
        if rp is not None and rp.mode == "after" and not isinstance(step, Gitt):
            return  # it ended before the restart
        if isinstance(step, Eis) and step.every and self.iteration:
            due = self.iteration % step.every == 0 or (step.also_first and self.iteration == 1)
            if not due:
                return
        self.step_index = step.index
        if isinstance(step, Gitt):
            kinds.gitt(self, step, pos, rp)
            return
        gap = self.pending_gap if rp is not None and rp.mode == "continue" else None
        run = self.steps.start(step.kind, pos, rp)
        reason = ended_in_gap(step, gap)
        if reason is not None:  # the instrument ended it (its guard): not sourced again
            run.notes["ended_in_gap"] = 1
        else:
            reason = kinds.run_step(self, step, run)
        self.steps.end(run, reason)
