"""The acquisition engine: runs one recipe on one instrument channel into one cell file.

:class:`ChannelRunner` walks the recipe tree (one method per step kind), polls the
channel every ``sample_interval`` (simulated seconds, see :class:`Clock`), checks
the host-side safety limits on every reading, applies the recording rules, and
streams rows and events into the SWMR cell file. It never lets an exception leave
with the output on: every way out goes through ``output_off``.

Outcomes (``ChannelResult.status``): ``complete``, ``stopped`` (Ctrl-C/SIGTERM),
``safety_stop``, ``error`` (garbled reply, instrument error queue not empty),
``disconnected`` (the link could not be restored), ``failed`` (anything else).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from cyclerflow.acquire.clock import Clock
from cyclerflow.acquire.instrument import (
    ConnectionLost,
    Sample,
    SourceMeterChannel,
    TemperatureController,
)
from cyclerflow.acquire.progress import (
    COMPLETE_MESSAGE,
    Pos,
    ResumePoint,
    format_fields,
    format_pos,
)
from cyclerflow.acquire.recipe import (
    CURRENT_KINDS,
    Cccv,
    ConstantCurrent,
    CvHold,
    Eis,
    Gitt,
    Loop,
    Recipe,
    Record,
    Rest,
    SetTemperature,
)
from cyclerflow.acquire.safety import (
    check_charge_voltage_drop,
    check_sample,
    check_step_time,
    check_temperature,
)
from cyclerflow.errors import InstrumentError, SafetyStop
from cyclerflow.store import LIVE_COLUMNS, CellWriter

log = logging.getLogger("cyclerflow.acquire")

#: instrument timestamps are used while they stay this close (wall seconds) to the host clock
TIME_TOLERANCE_S = 0.05

#: the default voltage compliance of constant-current steps lies this fraction of the
#: safety window inside it
COMPLIANCE_MARGIN = 0.01


class Stopped(Exception):
    """The stop flag was set (Ctrl-C / SIGTERM)."""


class InstrumentFault(InstrumentError):
    """The instrument reported errors in its queue, or sent a reply that makes no sense."""


_LINK_WORDS = (
    "connection lost",
    "not connected",
    "no reply within",
    "connection reset",
    "connection refused",
    "broken pipe",
    "cannot open",
    "timed out",
)


def is_connection_error(err: BaseException) -> bool:
    """Errors that mean the link dropped (retry with back-off) rather than a bad reply."""
    if isinstance(err, (ConnectionLost, ConnectionError, EOFError, TimeoutError)):
        return True
    if isinstance(err, InstrumentFault):
        return False
    names = {c.__name__ for c in type(err).__mro__}
    if names & {"SerialException", "PortNotOpenError", "VisaIOError"}:
        return "garbled" not in str(err).lower()
    if isinstance(err, InstrumentError):
        text = str(err).lower()
        return "garbled" not in text and any(w in text for w in _LINK_WORDS)
    return isinstance(err, OSError) and not isinstance(err, FileNotFoundError)


@dataclass(frozen=True)
class ReconnectPolicy:
    """Reconnect attempts after a lost link: wall-clock delays ``backoff * 2**k``, capped."""

    attempts: int = 5
    backoff_s: float = 0.5
    max_delay_s: float = 10.0

    def delays(self) -> list[float]:
        return [min(self.max_delay_s, self.backoff_s * 2**k) for k in range(self.attempts)]


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


@dataclass
class _StepRun:
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

    def elapsed(self, t: float) -> float:
        return self.elapsed0 + (t - self.start_t)

    @property
    def total_charge(self) -> float:
        return self.charge0 + self.charge


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
    ):
        self.ch = channel
        self.w = writer
        self.recipe = recipe
        self.limits = recipe.limits
        self.clock = clock or Clock()
        self.tc = temperature
        self.reconnect = reconnect
        self.result = ChannelResult(name or getattr(channel, "name", "channel"), writer.path)
        self._keep_lateness = keep_lateness
        self._resume = resume
        self.cycle = 1
        self.step_count = 0
        self.cycle_has_current = False
        self.step_ends: list[tuple[Pos, float]] = []
        self._source: Callable[[], object] | None = None
        self._setpoint: float | None = None
        self._break_loop = False
        self._iteration = 0
        self._step_index = 0
        # rows waiting to go to the writer (pushed every flush interval)
        self._rows: dict[str, list[float]] = {c: [] for c in LIVE_COLUMNS}
        # channels of a station push at staggered moments (``flush_phase`` in [0, 1) of
        # the flush interval) so their HDF5 writes do not all land at once
        self._last_push = time.monotonic() - (flush_phase % 1.0) * writer.flush_interval
        self._flush_at_first_reading = False
        # a step's end and the next step's start are written at the switch between them
        # (see _set_source): (run, reason, fields, (cycle, step_count, step_index), k)
        self._pending_end: tuple | None = None
        self._pending_start: tuple[_StepRun, str] | None = None
        # the next step's first reading, taken by the instrument right after the switch
        self._first_reading: tuple[Sample, float] | None = None
        self._t_offset = 0.0
        self._unix0 = time.time()
        self._anchor: tuple[float, float, float] | None = (
            None  # (instrument t, test t, last instrument t)
        )
        self._last_t = -math.inf
        if resume is not None:
            self.cycle = resume.cycle
            self.step_count = resume.step_count
            self.cycle_has_current = resume.cycle_has_current
            self.step_ends = list(resume.step_ends)
            if math.isfinite(resume.unix_at_test_zero):
                self._unix0 = resume.unix_at_test_zero
            if self.clock.speedup == 1.0 and math.isfinite(resume.unix_at_test_zero):
                self._t_offset = max(resume.last_test_time_s, time.time() - self._unix0)
            else:
                self._t_offset = resume.last_test_time_s
            self._t_offset += 1e-6
        self._t_offset -= self.clock.now()

    # -- time ---------------------------------------------------------------------------
    def test_time(self) -> float:
        return self._t_offset + self.clock.now()

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> ChannelResult:
        """Run the recipe to its end or to a stop; the output is off when this returns."""
        res = self.result
        try:
            self._check_stop()
            if self._resume is not None:
                rp = self._resume
                self._event(
                    "resume",
                    format_fields(
                        pos=format_pos(rp.pos),
                        mode=rp.mode,
                        cycle=rp.cycle,
                        step_count=rp.step_count,
                    ),
                )
            self._io(
                self.ch.output_off
            )  # a known, safe state first (a killed run may have left it on)
            stale = self._io(self.ch.errors)  # left from before this run: recorded, not fatal
            if stale:
                self._event(
                    "note",
                    "instrument error queue at start (cleared): " + "; ".join(map(str, stale)),
                )
            try:
                self._run_block(self.recipe.steps, (), self._resume.pos if self._resume else None)
            finally:
                self._settle_open_events()
            self._safe_off()
            self._push_rows()
            self._event("note", COMPLETE_MESSAGE)
            res.status, res.message = "complete", "recipe complete"
        except SafetyStop as err:
            self._safe_off()
            res.status, res.message = "safety_stop", str(err)
            self._event("safety_stop", str(err), step=self._step_index)
            log.warning("%s: safety stop: %s", res.name, err)
        except Stopped:
            self._safe_off()
            res.status, res.message = "stopped", "stopped by signal (output off; restart to resume)"
            self._event("note", "stopped by signal (output off)", step=self._step_index)
        except ConnectionLost as err:
            self._safe_off()
            res.status, res.message = "disconnected", str(err)
            self._event("disconnect", f"gave up: {err}", step=self._step_index)
            log.error("%s: %s", res.name, err)
        except InstrumentError as err:
            self._safe_off()
            res.status, res.message = "error", f"instrument error: {err}"
            self._event("note", f"instrument error, output off: {err}", step=self._step_index)
            log.error("%s: instrument error: %s", res.name, err)
        except BaseException as err:
            self._safe_off()
            res.status, res.message = "failed", f"{type(err).__name__}: {err}"
            try:
                self._event("note", f"engine failure, output off: {type(err).__name__}: {err}")
            except Exception:
                pass
            if not isinstance(err, Exception):
                raise
            log.exception("%s: engine failure", res.name)
        finally:
            try:
                self._push_rows()
                res.rows_written = self.w.flush()
            except Exception:
                log.exception("%s: flushing the cell file failed", res.name)
        res.cycles = self.cycle
        return res

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
            if self._break_loop:
                return

    def _run_loop(self, loop: Loop, prefix: Pos, i: int, resume: Pos | None) -> None:
        it0 = resume[0][1] if resume else 1
        n = loop.repeat if loop.repeat is not None else 10**9
        outer_iteration = self._iteration
        for it in range(it0, n + 1):
            inner = resume[1:] if (resume and it == it0) else None
            if not inner and loop.counts_cycles and self.cycle_has_current:
                self.cycle += 1
                self.cycle_has_current = False
            if loop.setpoints:
                self._setpoint = loop.setpoints[it - 1]
            here = prefix + ((i, it),)
            self._iteration = it
            self._run_block(loop.steps, here, inner or None)
            if self._break_loop:
                self._break_loop = False
                break
            if self._loop_done(loop, prefix + ((i, 0),), i, it):
                break
        self._iteration = outer_iteration
        self._setpoint = None

    def _discharge_of(self, prefix: Pos) -> float:
        k = len(prefix)
        return -sum(q for pos, q in self.step_ends if pos[:k] == prefix and q < 0)

    def _loop_done(self, loop: Loop, loop_pos: Pos, i: int, it: int) -> bool:
        until = loop.until
        if until.empty():
            return False
        base = loop_pos[:-1]
        q = self._discharge_of(base + ((i, it),))
        if until.discharge_capacity is not None and q < until.discharge_capacity:
            self._event(
                "note",
                format_fields(loop=format_pos(base + ((i, it),)), end="discharge_capacity", q_ah=q),
            )
            return True
        if until.retention is not None:
            q1 = self._discharge_of(base + ((i, 1),))
            if q1 > 0 and q / q1 < until.retention:
                self._event(
                    "note",
                    format_fields(
                        loop=format_pos(base + ((i, it),)), end="retention", ratio=q / q1
                    ),
                )
                return True
        return False

    def _run_leaf(self, step, pos: Pos, *, resume: bool) -> None:
        rp = self._resume if resume else None
        self._resume = None if resume else self._resume
        if rp is not None and rp.mode == "after" and not isinstance(step, Gitt):
            return  # it ended before the restart
        if isinstance(step, Eis) and step.every and self._iteration:
            due = self._iteration % step.every == 0 or (step.also_first and self._iteration == 1)
            if not due:
                return
        self._step_index = step.index
        if isinstance(step, Gitt):
            self._gitt(step, pos, rp)
            return
        run = self._start_step(step.kind, pos, rp)
        if isinstance(step, Rest):
            reason = self._rest(step, run)
        elif isinstance(step, ConstantCurrent):
            reason = self._cc(step, run)
        elif isinstance(step, CvHold):
            reason = self._cv(step, run)
        elif isinstance(step, Cccv):
            reason = self._cccv(step, run)
        elif isinstance(step, Eis):
            reason = self._eis(step, run)
        elif isinstance(step, SetTemperature):
            reason = self._set_temperature(step, run)
        else:  # pragma: no cover - the parser makes only the kinds above
            raise TypeError(f"unknown step {step!r}")
        self._end_step(run, reason)

    # -- step bookkeeping ----------------------------------------------------------------
    def _start_step(self, kind: str, pos: Pos, rp: ResumePoint | None, **extra: object) -> _StepRun:
        self._check_stop()
        t = self.test_time()
        run = _StepRun(kind, pos, t)
        if rp is not None and rp.mode == "continue":
            run.elapsed0, run.charge0 = rp.elapsed_s, rp.charge_ah
            # the step goes on under its old step_count
        else:
            self.step_count += 1
            if kind in CURRENT_KINDS:
                self.cycle_has_current = True
            # written at the switch (see _set_source): the source command goes out first
            message = format_fields(
                pos=format_pos(pos),
                kind=kind,
                cycle=self.cycle,
                step_count=self.step_count,
                step_index=self._step_index,
                **extra,
            )
            self._pending_start = (run, message)
        return run

    def _end_step(self, run: _StepRun, reason: str, **extra: object) -> None:
        """The step is over; its step_end event is written at the switch to the next step
        (:meth:`_set_source`), after the reading taken with that switch where the
        instrument can (its charge belongs to this step)."""
        self._settle_end()
        self.step_ends.append((run.pos, run.total_charge))
        ctx = (self.cycle, self.step_count, self._step_index)
        self._pending_end = (run, reason, extra, ctx, len(self.step_ends) - 1)

    def _settle_end(self, before: Sample | None = None, t: float = math.nan) -> None:
        """Write the pending step_end (``before``: the step's last reading, taken with
        the switch at test time ``t``)."""
        if self._pending_end is None:
            return
        run, reason, extra, ctx, k = self._pending_end
        self._pending_end = None
        if before is not None:
            if run.n:
                run.charge += 0.5 * (before.current_a + run.last_i) * (t - run.last_t) / 3600.0
            run.n += 1
            run.last_t, run.last_i = t, before.current_a
            self._record_row(t, before, ctx)
            self.step_ends[k] = (run.pos, run.total_charge)
        cycle, step_count, step_index = ctx
        tt = run.last_t if math.isfinite(run.last_t) else self.test_time()
        self._event(
            "step_end",
            format_fields(
                pos=format_pos(run.pos),
                kind=run.kind,
                reason=reason,
                q_ah=run.total_charge,
                duration_s=run.elapsed(tt),
                cycle=cycle,
                step_count=step_count,
                **extra,
            ),
            step=step_index,
            t=tt,
            flush=False,
        )
        # made durable at the next step's first reading (see _poll): never between the
        # end condition and the switch, where every ms of a flush is charge the file
        # does not see
        self._flush_at_first_reading = True

    def _emit_start(self, t: float | None = None) -> None:
        """Write the pending step_start (``t``: the switch, which then starts the step)."""
        if self._pending_start is None:
            return
        run, message = self._pending_start
        self._pending_start = None
        if t is not None:
            run.start_t = t
        self._event("step_start", message, t=run.start_t, flush=False)

    def _settle_open_events(self) -> None:
        """On the way out of the recipe: write what is pending (never masks an error)."""
        try:
            self._settle_end()
            self._emit_start()
        except Exception:
            log.exception("%s: writing the last step events failed", self.result.name)

    def _event(
        self,
        kind: str,
        message: str,
        *,
        step: int | None = None,
        t: float | None = None,
        flush: bool = True,
    ) -> None:
        if flush:
            self._push_rows(flush=False)
        tt = self.test_time() if t is None else t
        self.w.add_event(
            kind,
            message,
            step=self._step_index if step is None else step,
            unix_time_second=self._unix0 + tt,
            test_time_second=tt,
            flush=flush,
        )

    def _check_stop(self) -> None:
        if self.clock.stop.is_set():
            raise Stopped()

    # -- instrument I/O with reconnect ----------------------------------------------------
    def _io(self, fn: Callable[[], object]) -> object:
        """Call ``fn``; on a lost link, reconnect with back-off, re-apply the source, retry once."""
        try:
            return fn()
        except (InstrumentError, SafetyStop, Stopped) as err:
            if not is_connection_error(err):
                raise
            self._reconnect(err)
        except Exception as err:
            if not is_connection_error(err):
                raise InstrumentFault(f"{type(err).__name__}: {err}") from err
            self._reconnect(err)
        try:
            return fn()
        except Exception as err:
            if is_connection_error(err):
                raise ConnectionLost(f"link lost again right after reconnecting: {err}") from err
            if isinstance(err, InstrumentError):
                raise
            raise InstrumentFault(f"{type(err).__name__}: {err}") from err

    def _reconnect(self, err: BaseException) -> None:
        self._push_rows()
        self._event("disconnect", f"link lost: {type(err).__name__}: {err}")
        log.warning("%s: link lost (%s); reconnecting", self.result.name, err)
        last: BaseException = err
        for k, delay in enumerate(self.reconnect.delays(), start=1):
            if not self.clock.wall_sleep(delay):
                raise Stopped()
            try:
                try:
                    self.ch.close()
                except Exception:
                    pass
                self.ch.connect()
                if self._source is not None:
                    self._source()
                else:
                    self.ch.output_off()
            except Exception as e:  # keep trying
                last = e
                continue
            self._event("note", f"reconnected after {k} attempt(s)")
            return
        raise ConnectionLost(
            f"link lost ({type(err).__name__}: {err}); not restored after {self.reconnect.attempts} attempts (last: {last})"
        )

    def _set_source(self, fn: Callable[..., object], *args: object) -> None:
        """Send a source command ``fn(*args)`` (re-sent after a reconnect); the error
        queue is read after the first reading that follows it.

        At a step change on a channel with ``read_around_switch``, the instrument reads
        right before and right after the switch in the same exchange: the reading before
        closes the previous step (its charge up to the switch is in the file however
        late the host reacted to the end condition), the one after is this step's first.
        """
        self._source = partial(fn, *args)
        if self._pending_end is None or "read_around_switch" not in getattr(
            self.ch, "capabilities", ()
        ):
            self._settle_end()
            self._emit_start()
            self._io(self._source)
            return
        t0 = self.clock.now()
        got = self._io(partial(fn, *args, read_around=True))
        t1 = self.clock.now()
        try:
            before, after = got  # type: ignore[misc]
            if not (isinstance(before, Sample) and isinstance(after, Sample)):
                raise TypeError
        except (TypeError, ValueError):
            raise InstrumentFault(
                f"driver returned {got!r} for a switch with readings, not two Samples"
            ) from None
        (before, tb), (after, ta) = self._stamp((before, after), t0, t1)
        self._settle_end(before, tb)
        breach = check_sample(self.limits, before)
        if breach is not None:
            self._safe_off()
            self._push_rows()
            raise SafetyStop(breach)
        self._emit_start(tb)
        self._first_reading = (after, ta)

    def _drain_errors(self, when: str) -> None:
        errors = self._io(self.ch.errors)
        if errors:
            raise InstrumentFault(f"instrument error queue {when}: " + "; ".join(map(str, errors)))

    def _safe_off(self) -> None:
        """Output off, whatever state the link is in (one reconnect attempt if needed)."""
        self._source = None
        try:
            self.ch.output_off()
            return
        except Exception as err:
            first = err
        try:
            try:
                self.ch.close()
            except Exception:
                pass
            self.ch.connect()
            self.ch.output_off()
        except Exception as err:
            log.error("%s: could not switch the output off (%s; %s)", self.result.name, first, err)
            try:
                self._event("note", f"could not confirm output off: {first}")
            except Exception:
                pass

    # -- sampling -------------------------------------------------------------------------
    def _read(self) -> tuple[Sample, float]:
        """One reading and its test time (see :meth:`_sample_time`)."""
        t0 = self.clock.now()
        s = self._io(self.ch.read)
        t1 = self.clock.now()
        if not isinstance(s, Sample):
            raise InstrumentFault(f"driver returned {type(s).__name__}, not a Sample")
        ((s, t),) = self._stamp((s,), t0, t1)
        return s, t

    def _stamp(
        self, samples: tuple[Sample, ...], t0: float, t1: float
    ) -> list[tuple[Sample, float]]:
        """Readings taken in one request (clock times ``t0`` .. ``t1``) with their test
        times and, with a temperature controller, its temperature (read once)."""
        self.result.samples_read += len(samples)
        if self.tc is not None:
            temp = float(self._io(self.tc.read_temperature))
            samples = tuple(Sample(s.time_s, s.voltage_v, s.current_a, temp) for s in samples)
        h0, h1 = self._t_offset + t0, self._t_offset + t1
        return [(s, self._sample_time(s.time_s, h0, h1)) for s in samples]

    def _sample_time(self, instrument_t: float, host_t0: float, host_t1: float) -> float:
        """Test time of a reading taken between host test times ``host_t0`` (request
        sent) and ``host_t1`` (reply received): the instrument's own timestamp where it
        runs in step with the host clock (anchored to it), else the request's midpoint.

        Instrument timestamps are immune to host scheduling hiccups: a reading is taken
        inside its request, so a mapped timestamp is accepted anywhere in that window
        (however long a stall made it) plus :data:`TIME_TOLERANCE_S` (x speed-up) of
        drift; one that goes backwards (new buffer, reconnect, restarted script) or
        falls outside re-anchors.
        """
        t = 0.5 * (host_t0 + host_t1)
        if math.isfinite(instrument_t):
            a = self._anchor
            tol = TIME_TOLERANCE_S * self.clock.speedup
            if a is not None and instrument_t >= a[2]:
                mapped = a[1] + (instrument_t - a[0])
                if host_t0 - tol <= mapped <= host_t1 + tol:
                    t = mapped
                    self._anchor = (a[0], a[1], instrument_t)
                else:
                    self._anchor = (instrument_t, t, instrument_t)
            else:
                self._anchor = (instrument_t, t, instrument_t)
        if t <= self._last_t:
            t = self._last_t + 1e-6
        self._last_t = t
        return t

    def _record_row(self, t: float, s: Sample, ctx: tuple[int, int, int] | None = None) -> None:
        """Buffer one row; ``ctx`` = (cycle, step_count, step_index), default: now."""
        cycle, step_count, step_index = ctx or (self.cycle, self.step_count, self._step_index)
        r = self._rows
        r["test_time_second"].append(t)
        r["unix_time_second"].append(self._unix0 + t)
        r["voltage_volt"].append(s.voltage_v)
        r["current_ampere"].append(s.current_a)
        r["cycle_count"].append(cycle)
        r["step_count"].append(step_count)
        r["step_index"].append(step_index)
        r["temperature_kelvin"].append(s.temperature_k)

    def _push_rows(self, flush: bool = True) -> None:
        self._last_push = time.monotonic()
        if self._rows["test_time_second"]:
            rows = {c: np.asarray(v) for c, v in self._rows.items()}
            self._rows = {c: [] for c in LIVE_COLUMNS}
            self.w.append_cycling(rows)
        if flush:
            self.w.flush()

    def _poll(
        self,
        run: _StepRun,
        record: Record,
        end: Callable[[_StepRun, Sample, float], str | None],
        *,
        charging: bool = False,
        max_time: float | None = None,
    ) -> str:
        """Read every sample interval until ``end`` returns a reason; apply safety and recording."""
        every = record.every
        interval = min(self.recipe.sample_interval, every)
        last_rec_v, last_rec_i = math.nan, math.nan
        # recording by schedule slots, not by measured time differences, so that timing
        # jitter never skips a sample: every ``per`` polls one is stored
        per = max(1, round(every / interval))
        slot = next_slot = 0
        sched = self.clock.now()
        speed = self.clock.speedup
        lateness = self.result.lateness_s if self._keep_lateness else None
        reads_here = 0
        while True:
            late = (self.clock.now() - sched) / speed
            if late > self.result.max_lateness_s:
                self.result.max_lateness_s = late
            if lateness is not None and run.n:
                lateness.append(late)
            if self._first_reading is not None:
                s, t = self._first_reading  # taken with the switch (see _set_source)
                self._first_reading = None
            else:
                self._settle_end()
                self._emit_start()
                s, t = self._read()
            reads_here += 1
            # integrate the charge between polls (trapezoid, Ah)
            if run.n:
                run.charge += 0.5 * (s.current_a + run.last_i) * (t - run.last_t) / 3600.0
            else:
                run.v_start = s.voltage_v
            run.n += 1
            run.last_t, run.last_i = t, s.current_a
            run.v_max = max(run.v_max, s.voltage_v)
            breach = check_sample(self.limits, s) or check_step_time(self.limits, run.elapsed(t))
            if breach is None and charging:
                breach = check_charge_voltage_drop(self.limits, s.voltage_v, run.v_max)
            if breach is not None:
                self._safe_off()
                self._record_row(t, s)
                self._push_rows()
                raise SafetyStop(breach)
            if reads_here == 1:  # errors from the source command just sent
                self._drain_errors(f"in {run.kind}")
                if self._flush_at_first_reading:
                    # the previous step's end and this step's start become durable now,
                    # once this step has its first reading (a flush between the switch
                    # and that reading would hide charge from the file): after a kill, a
                    # resume continues the step the instrument is in instead of re-running
                    # steps that ended within the last flush interval
                    self._flush_at_first_reading = False
                    self._push_rows()
            reason = end(run, s, t)
            if (
                reason is None
                and max_time is not None
                and run.elapsed(t) >= max_time - 0.01 * interval
            ):
                reason = "time"
            if (
                reason is not None
                or run.n == 1
                or slot >= next_slot
                or (record.dv is not None and abs(s.voltage_v - last_rec_v) >= record.dv)
                or (record.di is not None and abs(s.current_a - last_rec_i) >= record.di)
            ):
                self._record_row(t, s)
                last_rec_v, last_rec_i = s.voltage_v, s.current_a
                next_slot = slot + per
            if reason is not None:
                return reason  # no file I/O here: the next source command goes out first
            if time.monotonic() - self._last_push >= self.w.flush_interval:
                self._push_rows()
            sched += interval
            slot += 1
            now = self.clock.now()
            if now > sched + interval:  # more than a whole interval behind: skip slots
                missed = int((now - sched) // interval)
                self.result.missed_polls += missed
                sched += missed * interval
                slot += missed
            if max_time is not None:  # wake up exactly at the end of a timed step
                t_end_clock = run.start_t - run.elapsed0 + max_time - self._t_offset
                sched = min(sched, max(t_end_clock, now))
            if not self.clock.sleep_until(sched):
                # a last reading right before the output goes off, so the step's charge is complete
                try:
                    s, t = self._read()
                    run.charge += 0.5 * (s.current_a + run.last_i) * (t - run.last_t) / 3600.0
                    run.last_t, run.last_i = t, s.current_a
                    self._record_row(t, s)
                except Exception:
                    pass
                self._safe_off()
                self._push_rows()
                raise Stopped()

    def _record_of(self, step) -> Record:
        return getattr(step, "record", None) or self.recipe.record

    # -- end conditions --------------------------------------------------------------------
    @staticmethod
    def _common_end(until, run: _StepRun, s: Sample, t: float, sign: float) -> str | None:
        if until.time is not None and run.elapsed(t) >= until.time - 1e-9:
            return "time"
        if until.capacity is not None and abs(run.total_charge) >= until.capacity:
            return "capacity"
        if until.voltage is not None:
            v = s.voltage_v
            if sign > 0 and v >= until.voltage:
                return "voltage"
            if sign < 0 and v <= until.voltage:
                return "voltage"
            if sign == 0 and run.n > 1 and (run.v_start - until.voltage) * (v - until.voltage) <= 0:
                return "voltage"
        return None

    # -- step kinds ---------------------------------------------------------------------
    def _compliance(self, current_a: float, target_v: float | None) -> float:
        """Voltage compliance for a constant-current step: inside the safety window by
        :data:`COMPLIANCE_MARGIN` of its width, so the instrument's clamp holds the cell
        before the host-side limit trips (unless the step's own target lies beyond)."""
        lim = self.limits
        margin = COMPLIANCE_MARGIN * (lim.voltage_max - lim.voltage_min)
        if current_a > 0:
            v = lim.voltage_max - margin
            return lim.voltage_max if target_v is not None and target_v >= v else v
        v = lim.voltage_min + margin
        return lim.voltage_min if target_v is not None and target_v <= v else v

    def _rest(self, step: Rest, run: _StepRun) -> str:
        self._set_source(self.ch.open_circuit)

        def end(run: _StepRun, s: Sample, t: float) -> str | None:
            return self._common_end(step.until, run, s, t, 0.0)

        return self._poll(run, self._record_of(step), end, max_time=step.duration)

    def _cc(self, step: ConstantCurrent, run: _StepRun) -> str:
        i = step.current
        if step.voltage_limit is not None:
            vlim = step.voltage_limit
        else:
            vlim = self._compliance(i, step.until.voltage)
        self._set_source(self.ch.source_current, i, vlim)
        sign = 1.0 if i > 0 else -1.0

        def end(run: _StepRun, s: Sample, t: float) -> str | None:
            return self._common_end(step.until, run, s, t, sign)

        return self._poll(run, self._record_of(step), end, charging=i > 0)

    def _cv(self, step: CvHold, run: _StepRun) -> str:
        ilim = step.current_limit if step.current_limit is not None else self.limits.current_max
        v = step.voltage
        self._set_source(self.ch.source_voltage, v, ilim)
        return self._poll(run, self._record_of(step), self._cv_end(step.until))

    def _cv_end(self, until) -> Callable[[_StepRun, Sample, float], str | None]:
        def end(run: _StepRun, s: Sample, t: float) -> str | None:
            reason = self._common_end(until, run, s, t, 0.0)
            if (
                reason is None
                and until.current is not None
                and run.n > 1
                and abs(s.current_a) <= until.current
            ):
                reason = "current"
            return reason

        return end

    def _cccv(self, step: Cccv, run: _StepRun) -> str:
        i, v = step.current, step.voltage
        sign = 1.0 if i > 0 else -1.0
        vlim = self._compliance(i, v)
        self._set_source(self.ch.source_current, i, vlim)
        until = step.until

        def cc_end(run: _StepRun, s: Sample, t: float) -> str | None:
            reason = self._common_end(until.model_copy(update={"current": None}), run, s, t, 0.0)
            if reason is None and (s.voltage_v - v) * sign >= 0:
                return "cv"
            return reason

        reason = self._poll(run, self._record_of(step), cc_end, charging=i > 0)
        if reason != "cv":
            return reason
        self._set_source(self.ch.source_voltage, v, abs(i))
        n_cc = run.n
        end = self._cv_end(until)

        def cv_end(run: _StepRun, s: Sample, t: float) -> str | None:
            if run.n <= n_cc + 1:
                return self._common_end(until.model_copy(update={"current": None}), run, s, t, 0.0)
            return end(run, s, t)

        return self._poll(run, self._record_of(step), cv_end)

    def _eis(self, step: Eis, run: _StepRun) -> str:
        if step.dc_level is None:
            self._set_source(self.ch.open_circuit)
        # one reading before: safety check and a row in the record
        self._poll(run, self.recipe.record, lambda *a: "before_eis")
        temp = self._temperature_now()
        unix = self._unix0 + self.test_time()
        kwargs = {} if step.dc_level is None else {"dc_level": step.dc_level}
        self._source = None
        freq, z = self._io(
            lambda: self.ch.measure_eis(
                step.f_start, step.f_stop, step.points_per_decade, step.amplitude, **kwargs
            )
        )
        freq = np.asarray(freq, dtype=float)
        z = np.asarray(z, dtype=complex)
        if freq.shape != z.shape or freq.ndim != 1 or not len(freq):
            raise InstrumentFault(f"EIS returned {freq.shape} frequencies and {z.shape} impedances")
        self.w.append_spectrum(
            freq,
            z.real,
            z.imag,
            unix_time_second=unix,
            cycle_count=self.cycle,
            temperature_kelvin=temp,
            amplitude=step.amplitude,
            dc_level=step.dc_level,
            technique="PEIS",
        )
        self.result.spectra += 1
        self._set_source(self.ch.open_circuit)
        self._poll(run, self.recipe.record, lambda r, s, t: "spectrum" if r.n > 1 else None)
        return "spectrum"

    def _temperature_now(self) -> float:
        if self.tc is not None:
            return float(self._io(self.tc.read_temperature))
        return float("nan")

    def _set_temperature(self, step: SetTemperature, run: _StepRun) -> str:
        if self.tc is None:
            raise InstrumentFault("set_temperature needs a temperature controller on this channel")
        target = self._setpoint if self._setpoint is not None else step.setpoint
        self._set_source(self.ch.open_circuit)
        self._io(lambda: self.tc.set_setpoint(target, step.ramp_k_per_min))
        tol = step.tolerance_k
        state = {"since": None}

        def end(run: _StepRun, s: Sample, t: float) -> str | None:
            breach = check_temperature(self.limits, s.temperature_k)
            if breach:
                self._safe_off()
                raise SafetyStop(breach)
            if abs(s.temperature_k - target) <= tol:
                if state["since"] is None:
                    state["since"] = t
                if t - state["since"] >= step.stable_for - 1e-9:
                    return "stable"
            else:
                state["since"] = None
            if run.elapsed(t) >= step.timeout:
                return "timeout"
            return None

        reason = self._poll(run, self._record_of(step), end)
        if reason == "timeout":
            self._event(
                "limit",
                f"temperature not stable within {step.timeout:g} s of {target:.2f} K; going on",
            )
        return reason

    def _gitt(self, step: Gitt, pos: Pos, rp: ResumePoint | None) -> None:
        i = step.current
        sign = 1.0 if i > 0 else -1.0
        vlim = self._compliance(i, step.until.voltage)
        n, phase = 1, "pulse"
        rest_rp = None
        if rp is not None:
            k = int(rp.fields.get("n", "1"))
            was = rp.fields.get("phase", "pulse")
            if rp.mode == "after":
                if rp.end_fields.get("done") == "1":
                    return
                n, phase = (k, "rest") if was == "pulse" else (k + 1, "pulse")
            else:
                n, phase, rest_rp = k, was, rp
        until = step.until.model_copy(update={"time": None})

        def pulse_end(run: _StepRun, s: Sample, t: float) -> str | None:
            return self._common_end(until, run, s, t, sign)

        while n <= step.max_pulses:
            if phase == "pulse":
                run = self._start_step("gitt", pos, rest_rp, phase="pulse", n=n)
                rest_rp = None
                self._set_source(self.ch.source_current, i, vlim)
                reason = self._poll(
                    run, self._record_of(step), pulse_end, charging=i > 0, max_time=step.pulse
                )
                done = reason == "voltage"
                self._end_step(run, reason, phase="pulse", n=n, done=int(done))
                if done:
                    return
                phase = "rest"
            run = self._start_step("rest", pos, rest_rp, phase="rest", n=n)
            rest_rp = None
            self._set_source(self.ch.open_circuit)
            reason = self._poll(run, self._record_of(step), lambda *a: None, max_time=step.rest)
            last = n == step.max_pulses
            self._end_step(run, reason, phase="rest", n=n, done=int(last))
            n, phase = n + 1, "pulse"
