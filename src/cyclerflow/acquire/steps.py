"""One function per step kind: program the source, poll until the end condition.

Each function takes the engine (:class:`~cyclerflow.acquire.engine.ChannelRunner`),
the parsed step and its :class:`~cyclerflow.acquire.stepevents.StepRun`, and returns
the reason the step ended (``time``, ``voltage``, ``current``, ``capacity``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from cyclerflow.acquire.instrument import Sample
from cyclerflow.acquire.link import InstrumentFault
from cyclerflow.acquire.progress import Pos, ResumePoint
from cyclerflow.acquire.recipe import (
    Cccv,
    ConstantCurrent,
    CvHold,
    Eis,
    Gitt,
    Record,
    Rest,
    SetTemperature,
    Until,
)
from cyclerflow.acquire.safety import check_temperature
from cyclerflow.acquire.sampling import EndCondition, poll, set_source
from cyclerflow.acquire.stepevents import StepRun
from cyclerflow.errors import SafetyStop

if TYPE_CHECKING:
    from cyclerflow.acquire.engine import ChannelRunner

#: the default voltage compliance of constant-current steps lies this fraction of the
#: safety window inside it
COMPLIANCE_MARGIN = 0.01


def record_of(eng: ChannelRunner, step: object) -> Record:
    """The step's own recording rule, else the recipe's."""
    return getattr(step, "record", None) or eng.recipe.record


def common_end(until: Until, run: StepRun, s: Sample, t: float, sign: float) -> str | None:
    """Time, capacity (|Ah|) and voltage ends; ``sign`` > 0 rising, < 0 falling, 0 either."""
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


def compliance(eng: ChannelRunner, current_a: float, target_v: float | None) -> float:
    """Voltage compliance (V) for a constant-current step: inside the safety window by
    :data:`COMPLIANCE_MARGIN` of its width, so the instrument's clamp holds the cell
    before the host-side limit trips (unless the step's own target lies beyond)."""
    lim = eng.limits
    margin = COMPLIANCE_MARGIN * (lim.voltage_max - lim.voltage_min)
    if current_a > 0:
        v = lim.voltage_max - margin
        return lim.voltage_max if target_v is not None and target_v >= v else v
    v = lim.voltage_min + margin
    return lim.voltage_min if target_v is not None and target_v <= v else v


#: a constant-current step whose current fell below this fraction of its set point may
#: have been stopped by the instrument's guard (asked on guarded channels)
TRIP_FRACTION = 0.01


def guard_tripped(eng: ChannelRunner, s: Sample, current_a: float) -> None:
    """On a channel that holds constant-current guards: when the current has all but
    stopped, ask the instrument whether its guard (the safety window) ended the step;
    :class:`SafetyStop` when it did (a safety limit was reached between readings)."""
    if "cc" not in eng.held or abs(s.current_a) > TRIP_FRACTION * abs(current_a):
        return
    state = eng.link.io(eng.ch.source_state)  # type: ignore[attr-defined]
    if not state.tripped:
        return
    eng.link.safe_off()
    raise SafetyStop(
        f"the instrument stopped the {current_a:.4g} A step at its guard "
        f"(reading {s.voltage_v:.4f} V): a safety limit was reached between readings"
    )


def rest(eng: ChannelRunner, step: Rest, run: StepRun) -> str:
    set_source(eng, eng.ch.open_circuit, **eng.guard_kw("ocv"))

    def end(run: StepRun, s: Sample, t: float) -> str | None:
        return common_end(step.until, run, s, t, 0.0)

    return poll(eng, run, record_of(eng, step), end, max_time=step.duration)


def cc(eng: ChannelRunner, step: ConstantCurrent, run: StepRun) -> str:
    i = step.current
    vlim = step.voltage_limit
    if vlim is None:
        vlim = compliance(eng, i, step.until.voltage)
    set_source(eng, eng.ch.source_current, i, vlim, **eng.guard_kw("cc"))
    sign = 1.0 if i > 0 else -1.0

    def end(run: StepRun, s: Sample, t: float) -> str | None:
        reason = common_end(step.until, run, s, t, sign)
        if reason is None:
            guard_tripped(eng, s, i)
        return reason

    if step.ici is not None:
        source = partial(set_source, eng, eng.ch.source_current, i, vlim, **eng.guard_kw("cc"))
        return cc_interrupted(eng, step, run, source, end)
    return poll(eng, run, record_of(eng, step), end, charging=i > 0)


def cc_interrupted(
    eng: ChannelRunner,
    step: ConstantCurrent,
    run: StepRun,
    source: Callable[[], None],
    end: EndCondition,
) -> str:
    """A constant-current step with intermittent current interruptions (``step.ici``):
    open circuit for ``duration`` after every ``every`` seconds of current, inside the
    one step. Interruptions are recorded at every sample interval; the charge-voltage-drop
    detector restarts after each. A resumed step restarts the on/off pattern."""
    ici = step.ici
    assert ici is not None
    rec = record_of(eng, step)
    dense = Record(every=eng.recipe.sample_interval)
    t_until = step.until.time
    elapsed = run.elapsed0
    while True:
        on_end = elapsed + ici.every
        reason = poll(eng, run, rec, end, charging=step.current > 0, max_time=on_end)
        elapsed = run.elapsed(run.last_t)
        if reason != "time" or (t_until is not None and elapsed >= t_until - 1e-9):
            return reason
        set_source(eng, eng.ch.open_circuit, **eng.guard_kw("ocv"))
        off_end = elapsed + ici.duration
        if t_until is not None:
            off_end = min(off_end, t_until)
        poll(eng, run, dense, lambda *a: None, max_time=off_end)
        elapsed = run.elapsed(run.last_t)
        if t_until is not None and elapsed >= t_until - 1e-9:
            return "time"
        source()  # current on again (the step's source was set before the first phase)
        run.v_max = -math.inf


def cv(eng: ChannelRunner, step: CvHold, run: StepRun) -> str:
    ilim = step.current_limit if step.current_limit is not None else eng.limits.current_max
    set_source(eng, eng.ch.source_voltage, step.voltage, ilim, **eng.guard_kw("cv"))
    return poll(eng, run, record_of(eng, step), cv_end(step.until))


def cv_end(until: Until) -> EndCondition:
    """End of a voltage hold: common ends, or |current| at or below ``until.current``."""

    def end(run: StepRun, s: Sample, t: float) -> str | None:
        reason = common_end(until, run, s, t, 0.0)
        if reason is None and until.current is not None and run.n > 1:
            if abs(s.current_a) <= until.current:
                reason = "current"
        return reason

    return end


def cccv(eng: ChannelRunner, step: Cccv, run: StepRun) -> str:
    i, v = step.current, step.voltage
    sign = 1.0 if i > 0 else -1.0
    set_source(eng, eng.ch.source_current, i, compliance(eng, i, v), **eng.guard_kw("cc"))
    until = step.until
    no_current = until.model_copy(update={"current": None})

    def cc_end(run: StepRun, s: Sample, t: float) -> str | None:
        reason = common_end(no_current, run, s, t, 0.0)
        if reason is None and (s.voltage_v - v) * sign >= 0:
            return "cv"
        if reason is None:
            guard_tripped(eng, s, i)
        return reason

    reason = poll(eng, run, record_of(eng, step), cc_end, charging=i > 0)
    if reason != "cv":
        return reason
    set_source(eng, eng.ch.source_voltage, v, abs(i), **eng.guard_kw("cv"))
    n_cc = run.n
    end = cv_end(until)

    def cv_part_end(run: StepRun, s: Sample, t: float) -> str | None:
        if run.n <= n_cc + 1:
            return common_end(no_current, run, s, t, 0.0)
        return end(run, s, t)

    return poll(eng, run, record_of(eng, step), cv_part_end)


def eis(eng: ChannelRunner, step: Eis, run: StepRun) -> str:
    if step.dc_level is None:
        set_source(eng, eng.ch.open_circuit, **eng.guard_kw("ocv"))
    # one reading before: safety check and a row in the record
    poll(eng, run, eng.recipe.record, lambda *a: "before_eis")
    temp = eng.temperature_now()
    unix = eng.tb.unix0 + eng.tb.now()
    kwargs = {} if step.dc_level is None else {"dc_level": step.dc_level}
    eng.link.source = None
    freq, z = eng.link.io(
        lambda: eng.ch.measure_eis(
            step.f_start, step.f_stop, step.points_per_decade, step.amplitude, **kwargs
        )
    )
    freq = np.asarray(freq, dtype=float)
    z = np.asarray(z, dtype=complex)
    if freq.shape != z.shape or freq.ndim != 1 or not len(freq):
        raise InstrumentFault(f"EIS returned {freq.shape} frequencies and {z.shape} impedances")
    eng.w.append_spectrum(
        freq,
        z.real,
        z.imag,
        unix_time_second=unix,
        cycle_count=eng.cycle,
        temperature_kelvin=temp,
        amplitude=step.amplitude,
        dc_level=step.dc_level,
        technique="PEIS",
    )
    eng.result.spectra += 1
    set_source(eng, eng.ch.open_circuit, **eng.guard_kw("ocv"))
    poll(eng, run, eng.recipe.record, lambda r, s, t: "spectrum" if r.n > 1 else None)
    return "spectrum"


def set_temperature(eng: ChannelRunner, step: SetTemperature, run: StepRun) -> str:
    tc = eng.tc
    if tc is None:
        raise InstrumentFault("set_temperature needs a temperature controller on this channel")
    target = eng.setpoint if eng.setpoint is not None else step.setpoint
    set_source(eng, eng.ch.open_circuit, **eng.guard_kw("ocv"))
    eng.link.io(lambda: tc.set_setpoint(target, step.ramp_k_per_min))
    tol = step.tolerance_k
    since: list[float] = []

    def end(run: StepRun, s: Sample, t: float) -> str | None:
        breach = check_temperature(eng.limits, s.temperature_k)
        if breach:
            eng.link.safe_off()
            raise SafetyStop(breach)
        if abs(s.temperature_k - target) <= tol:
            since[:] = since or [t]
            if t - since[0] >= step.stable_for - 1e-9:
                return "stable"
        else:
            since.clear()
        if run.elapsed(t) >= step.timeout:
            return "timeout"
        return None

    reason = poll(eng, run, record_of(eng, step), end)
    if reason == "timeout":
        eng.event(
            "limit", f"temperature not stable within {step.timeout:g} s of {target:.2f} K; going on"
        )
    return reason


def _gitt_start(step: Gitt, rp: ResumePoint | None) -> tuple[int, str, ResumePoint | None] | None:
    """(pulse number, phase, resume point of an interrupted phase) to go on from; None
    when the step had finished."""
    if rp is None:
        return 1, "pulse", None
    k = int(rp.fields.get("n", "1"))
    was = rp.fields.get("phase", "pulse")
    if rp.mode != "after":
        return k, was, rp
    if rp.end_fields.get("done") == "1":
        return None
    n, phase = (k, "rest") if was == "pulse" else (k + 1, "pulse")
    return n, phase, None


def gitt(eng: ChannelRunner, step: Gitt, pos: Pos, rp: ResumePoint | None) -> None:
    """Pulses and rests until the voltage end or ``max_pulses`` (one step_start/end each)."""
    start = _gitt_start(step, rp)
    if start is None:
        return
    n, phase, rest_rp = start
    i = step.current
    sign = 1.0 if i > 0 else -1.0
    vlim = compliance(eng, i, step.until.voltage)
    until = step.until.model_copy(update={"time": None})

    def pulse_end(run: StepRun, s: Sample, t: float) -> str | None:
        reason = common_end(until, run, s, t, sign)
        if reason is None:
            guard_tripped(eng, s, i)
        return reason

    rec = record_of(eng, step)
    while n <= step.max_pulses:
        if phase == "pulse":
            run = eng.steps.start("gitt", pos, rest_rp, phase="pulse", n=n)
            rest_rp = None
            guard = eng.guard_kw("cc")
            set_source(eng, eng.ch.source_current, i, vlim, **guard)
            reason = poll(eng, run, rec, pulse_end, charging=i > 0, max_time=step.pulse)
            done = reason == "voltage"
            eng.steps.end(run, reason, phase="pulse", n=n, done=int(done))
            if done:
                return
        run = eng.steps.start("rest", pos, rest_rp, phase="rest", n=n)
        rest_rp = None
        set_source(eng, eng.ch.open_circuit, **eng.guard_kw("ocv"))
        reason = poll(eng, run, rec, lambda *a: None, max_time=step.rest)
        eng.steps.end(run, reason, phase="rest", n=n, done=int(n == step.max_pulses))
        n, phase = n + 1, "pulse"


#: step kinds run by :func:`run_step` (gitt runs its own phases)
_KINDS: dict[type, Callable[..., str]] = {
    Rest: rest,
    ConstantCurrent: cc,
    CvHold: cv,
    Cccv: cccv,
    Eis: eis,
    SetTemperature: set_temperature,
}


def run_step(eng: ChannelRunner, step: object, run: StepRun) -> str:
    """Run one step of a kind in :data:`_KINDS`; the reason it ended."""
    fn = _KINDS.get(type(step))
    if fn is None:  # pragma: no cover - the parser makes only the kinds above
        raise TypeError(f"unknown step {step!r}")
    return fn(eng, step, run)
