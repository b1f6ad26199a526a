"""Readings: the poll loop of a step, source changes, and the time stamp of each reading.

:func:`poll` reads every sample interval (simulated seconds) until the step's end
condition gives a reason, checks the host-side safety limits on every reading and
applies the recording rules (every ``record.every``, or on a ``dv``/``di`` change).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from cyclerflow.acquire.instrument import Sample
from cyclerflow.acquire.link import InstrumentFault, Stopped
from cyclerflow.acquire.recipe import Record
from cyclerflow.acquire.safety import check_charge_voltage_drop, check_sample, check_step_time
from cyclerflow.acquire.stepevents import StepRun
from cyclerflow.errors import SafetyStop

if TYPE_CHECKING:
    from cyclerflow.acquire.engine import ChannelRunner

#: an end condition: (run, reading, test time) -> reason the step ends, or None
EndCondition = Callable[[StepRun, Sample, float], "str | None"]


@dataclass(frozen=True, slots=True)
class FirstReading:
    """The next step's first reading, taken by the instrument right after the switch."""

    sample: Sample
    t: float


@dataclass
class _Schedule:
    """Poll slots of one poll loop: ``sched`` clock time of the next poll; every
    ``per`` slots one reading is stored (by slot, so timing jitter never skips one)."""

    interval: float
    per: int
    sched: float
    slot: int = 0
    next_slot: int = 0
    last_rec_v: float = math.nan
    last_rec_i: float = math.nan


def reads_around_switch(eng: ChannelRunner) -> bool:
    """The channel reads right before and after a source change in one exchange."""
    return "read_around_switch" in eng.ch.capabilities


def set_source(eng: ChannelRunner, fn: Callable[..., object], *args: object, **kw: object) -> None:
    """Send a source command ``fn(*args, **kw)`` (re-sent after a reconnect); the error
    queue is read after the first reading that follows it.

    At a step change on a channel that reads around the switch, the instrument reads
    right before and right after the switch in the same exchange: the reading before
    closes the previous step (its charge up to the switch is in the file however
    late the host reacted to the end condition), the one after is this step's first.
    """
    ev = eng.steps
    eng.link.source = partial(fn, *args, **kw)
    if ev.pending_end is None or not reads_around_switch(eng):
        ev.settle()
        eng.link.io(eng.link.source)
        return
    t0 = eng.clock.now()
    got = eng.link.io(partial(fn, *args, read_around=True, **kw))
    t1 = eng.clock.now()
    try:
        before, after = got  # type: ignore[misc]
        if not (isinstance(before, Sample) and isinstance(after, Sample)):
            raise TypeError
    except (TypeError, ValueError):
        raise InstrumentFault(
            f"driver returned {got!r} for a switch with readings, not two Samples"
        ) from None
    (before, tb), (after, ta) = stamp(eng, (before, after), t0, t1)
    ev.settle_end(before, tb)
    breach = check_sample(eng.limits, before)
    if breach is not None:
        eng.link.safe_off()
        eng.rows.push()
        raise SafetyStop(breach)
    ev.emit_start(tb)
    eng.first_reading = FirstReading(after, ta)


def read(eng: ChannelRunner) -> tuple[Sample, float]:
    """One reading and its test time."""
    t0 = eng.clock.now()
    s = eng.link.io(eng.ch.read)
    t1 = eng.clock.now()
    if not isinstance(s, Sample):
        raise InstrumentFault(f"driver returned {type(s).__name__}, not a Sample")
    ((s, t),) = stamp(eng, (s,), t0, t1)
    return s, t


def stamp(
    eng: ChannelRunner, samples: tuple[Sample, ...], t0: float, t1: float
) -> list[tuple[Sample, float]]:
    """Readings taken in one request (clock times ``t0`` .. ``t1``) with their test
    times and, with a temperature controller, its temperature (read once)."""
    eng.result.samples_read += len(samples)
    if eng.tc is not None:
        temp = float(eng.link.io(eng.tc.read_temperature))
        samples = tuple(Sample(s.time_s, s.voltage_v, s.current_a, temp) for s in samples)
    h0, h1 = eng.tb.of_clock(t0), eng.tb.of_clock(t1)
    for s in samples:
        eng.rate.check(s.time_s, h0, h1)
    return [(s, eng.tb.sample_time(s.time_s, h0, h1)) for s in samples]


def drain_errors(eng: ChannelRunner, when: str) -> None:
    """Raise :class:`InstrumentFault` when the instrument's error queue is not empty."""
    errors = eng.link.io(eng.ch.errors)
    if errors:
        raise InstrumentFault(f"instrument error queue {when}: " + "; ".join(map(str, errors)))


def _next_reading(eng: ChannelRunner) -> tuple[Sample, float]:
    if eng.first_reading is not None:
        fr, eng.first_reading = eng.first_reading, None  # taken with the switch
        return fr.sample, fr.t
    eng.steps.settle()
    return read(eng)


def _check_safety(eng: ChannelRunner, run: StepRun, s: Sample, t: float, charging: bool) -> None:
    breach = check_sample(eng.limits, s) or check_step_time(eng.limits, run.elapsed(t))
    if breach is None and charging:
        breach = check_charge_voltage_drop(eng.limits, s.voltage_v, run.v_max)
    if breach is not None:
        eng.link.safe_off()
        eng.record_row(t, s)
        eng.rows.push()
        raise SafetyStop(breach)


def _after_first_reading(eng: ChannelRunner, run: StepRun) -> None:
    drain_errors(eng, f"in {run.kind}")  # errors from the source command just sent
    if eng.steps.flush_at_first_reading:
        # the previous step's end and this step's start become durable now, once this
        # step has its first reading (a flush between the switch and that reading would
        # hide charge from the file): after a kill, a resume continues the step the
        # instrument is in instead of re-running steps that ended within the last flush
        eng.steps.flush_at_first_reading = False
        eng.rows.push()


def _maybe_record(
    eng: ChannelRunner, run: StepRun, record: Record, sch: _Schedule, s: Sample, t: float, end: bool
) -> None:
    if (
        end
        or run.n == 1
        or sch.slot >= sch.next_slot
        or (record.dv is not None and abs(s.voltage_v - sch.last_rec_v) >= record.dv)
        or (record.di is not None and abs(s.current_a - sch.last_rec_i) >= record.di)
    ):
        eng.record_row(t, s)
        sch.last_rec_v, sch.last_rec_i = s.voltage_v, s.current_a
        sch.next_slot = sch.slot + sch.per


def _advance(eng: ChannelRunner, run: StepRun, sch: _Schedule, max_time: float | None) -> None:
    """Move the schedule to the next poll (skipping slots more than one interval behind)."""
    sch.sched += sch.interval
    sch.slot += 1
    now = eng.clock.now()
    if now > sch.sched + sch.interval:
        missed = int((now - sch.sched) // sch.interval)
        eng.result.missed_polls += missed
        sch.sched += missed * sch.interval
        sch.slot += missed
    if max_time is not None:  # wake up exactly at the end of a timed step
        t_end_clock = eng.tb.to_clock(run.start_t - run.elapsed0 + max_time)
        sch.sched = min(sch.sched, max(t_end_clock, now))


def _stop(eng: ChannelRunner, run: StepRun) -> None:
    """Stopped while waiting: a last reading right before the output goes off, so the
    step's charge is complete; then raise :class:`Stopped`."""
    with contextlib.suppress(Exception):
        s, t = read(eng)
        run.charge += 0.5 * (s.current_a + run.last_i) * (t - run.last_t) / 3600.0
        run.last_t, run.last_i = t, s.current_a
        eng.record_row(t, s)
    eng.link.safe_off()
    eng.rows.push()
    raise Stopped()


def _note_lateness(eng: ChannelRunner, run: StepRun, sched: float) -> None:
    late = (eng.clock.now() - sched) / eng.clock.speedup
    if late > eng.result.max_lateness_s:
        eng.result.max_lateness_s = late
    if eng.keep_lateness and run.n:
        eng.result.lateness_s.append(late)


def poll(
    eng: ChannelRunner,
    run: StepRun,
    record: Record,
    end: EndCondition,
    *,
    charging: bool = False,
    max_time: float | None = None,
) -> str:
    """Read every sample interval until ``end`` returns a reason; apply safety and recording."""
    interval = min(eng.recipe.sample_interval, record.every)
    sch = _Schedule(interval, max(1, round(record.every / interval)), eng.clock.now())
    reads_here = 0
    while True:
        _note_lateness(eng, run, sch.sched)
        s, t = _next_reading(eng)
        reads_here += 1
        run.add(s, t)
        _check_safety(eng, run, s, t, charging)
        if reads_here == 1:
            _after_first_reading(eng, run)
        reason = end(run, s, t)
        if reason is None and max_time is not None and run.elapsed(t) >= max_time - 0.01 * interval:
            reason = "time"
        _maybe_record(eng, run, record, sch, s, t, reason is not None)
        if reason is not None:
            return reason  # no file I/O here: the next source command goes out first
        eng.rows.push_if_due()
        _advance(eng, run, sch, max_time)
        if not eng.clock.sleep_until(sch.sched):
            _stop(eng, run)
