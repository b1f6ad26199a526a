"""A restarted run: the time that passed, what the instrument did meanwhile, and whether to go on.

The host may have died (SIGKILL, power cut) while the instrument kept sourcing. On
restart the engine

1. continues the time axis from the wall clock x the clock rate (never from the
   last stored sample): :func:`resume_test_time`;
2. reads back the source state (:class:`~cyclerflow.acquire.instrument.GuardedSource`)
   or, where the instrument cannot say, takes one reading and assumes the step's
   set point was in force (:func:`read_back`);
3. writes a ``gap`` event (JSON: :class:`Gap`) with an estimate of the charge that
   passed unrecorded, marked as such;
4. decides by the recipe's ``on_resume`` (:func:`decide`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from cyclerflow.acquire.instrument import Sample, SourceState
from cyclerflow.acquire.progress import REFUSED_NOTE, Pos, ResumePoint
from cyclerflow.acquire.recipe import (
    Cccv,
    ConstantCurrent,
    CvHold,
    Gitt,
    Loop,
    Recipe,
)
from cyclerflow.errors import InstrumentError, SafetyStop

#: the note a run that refused to resume ends with (the next run refuses again unless
#: told otherwise)
RESUME_REFUSED = REFUSED_NOTE

#: a current below this (A) at reconnect counts as "no current flowing"
NO_CURRENT_A = 1e-12

#: a current source delivering this fraction less than its set point is in compliance
COMPLIANCE_FRACTION = 0.01


class ResumeRefused(InstrumentError):
    """The resume policy says stop (output off; the message says why and what to do)."""


#: bytes of an event message (store.layout.EVENT_DTYPE "message")
GAP_MESSAGE_BYTES = 240


@dataclass(frozen=True, slots=True)
class Gap:
    """Time without a host (test seconds) and what the instrument did meanwhile.

    ``setpoint``: A (signed, > 0 charges) or V; ``reading_v``: the voltage read at
    reconnect; ``estimated_charge_ah``: charge that passed unrecorded (signed Ah, an
    estimate by ``estimate_method``: ``instrument_counter``, ``output_off``,
    ``setpoint_x_duration`` (``_no_readback``: the recipe's set point of an instrument
    that cannot read back; ``_upper_bound``: the instrument tripped its guard some time
    in the gap), ``reading_current_x_duration`` (a voltage hold), ``unknown``; a suffix
    ``_until_watchdog_off``: only up to the moment a watchdog switched the output off).
    ``tripped``: the instrument stopped a constant current itself (its guard, the
    recipe's safety window) at some time in the gap.
    """

    start_s: float
    end_s: float
    output_on: bool
    mode: str
    setpoint: float
    reading_v: float
    estimated_charge_ah: float
    estimate_method: str
    tripped: bool = False

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def sourced(self) -> bool:
        """Charge moved in the gap (the output was on at reconnect, sourcing current or
        voltage, or the estimate says so). A rest held as a 0 A source with the output
        on (a source-measure unit's open circuit) moved none."""
        q = self.estimated_charge_ah
        return (self.output_on and self.mode != "ocv") or (math.isfinite(q) and q != 0.0)

    def to_json(self) -> str:
        """Compact JSON (event messages hold 240 bytes); NaN becomes null. Floats keep
        10 significant digits; only when the message would not fit, the redundant
        ``estimated`` marker goes first, then digits (down to 6)."""
        tries = [(10, True)] + [(digits, False) for digits in (10, 9, 8, 7, 6)]
        for digits, marker in tries:
            text = self._json(digits, marker)
            if len(text.encode()) <= GAP_MESSAGE_BYTES:
                return text
        return text

    def _json(self, digits: int, marker: bool) -> str:
        d: dict[str, object] = {}
        for k, v in asdict(self).items():
            if isinstance(v, float):
                v = float(f"{v:.{digits}g}") if math.isfinite(v) else None
            d[k] = v
        if not self.tripped:
            del d["tripped"]  # written only when true: the message holds 240 bytes
        if marker:
            d["estimated"] = True
        return json.dumps(d, separators=(",", ":"))


def resume_test_time(rp: ResumePoint, wall_now: float, rate: float) -> float:
    """Test time (s) at restart: the last stored sample plus the wall time since it
    x ``rate`` (never less than the last sample)."""
    wall_last = rp.wall_at_last_s
    if not math.isfinite(wall_last) and math.isfinite(rp.unix_at_test_zero):
        # files from before clock notes: the run's rate was the same throughout
        wall_last = rp.unix_at_test_zero + rp.last_test_time_s / rate
    if not math.isfinite(wall_last):
        return rp.last_test_time_s + 1e-6
    return rp.last_test_time_s + max(0.0, (wall_now - wall_last) * rate) + 1e-6


def step_at(recipe: Recipe, pos: Pos) -> object:
    """The leaf step at position ``pos`` of the recipe tree."""
    steps: tuple = recipe.steps
    step: object = None
    for i, _ in pos:
        step = steps[i]
        if isinstance(step, Loop):
            steps = step.steps
    return step


def step_source(step: object, fields: dict[str, str]) -> tuple[str, float]:
    """(mode, set point) the step programs: ``cc`` with A, ``cv`` with V, or ``ocv``."""
    if isinstance(step, Gitt):
        return ("cc", step.current) if fields.get("phase", "pulse") == "pulse" else ("ocv", 0.0)
    if isinstance(step, (ConstantCurrent, Cccv)):
        return "cc", step.current
    if isinstance(step, CvHold):
        return "cv", step.voltage
    return "ocv", 0.0


_MODE_OF_STATE = {"current": "cc", "voltage": "cv", "open_circuit": "ocv", "off": "ocv"}


def state_from_reading(reading: Sample | None, mode: str, setpoint: float) -> SourceState:
    """What an instrument without read-back was doing: the step's source, on while a
    current flows at reconnect (``reading``: the first reading, None when it failed)."""
    if reading is None:
        return SourceState(mode != "ocv", mode, setpoint, None)
    on = abs(reading.current_a) > NO_CURRENT_A
    return SourceState(on, mode if on else "ocv", setpoint if on else 0.0, reading)


def in_compliance(state: SourceState) -> bool:
    """A current source found delivering clearly less than its set point: its voltage
    compliance holds the cell (the current tapered at some time in the gap)."""
    r = state.reading
    if r is None or not math.isfinite(r.current_a) or state.setpoint == 0.0:
        return False
    return abs(r.current_a) < (1.0 - COMPLIANCE_FRACTION) * abs(state.setpoint)


def estimate_charge(
    state: SourceState, duration_s: float, read_back: bool, recorded_ah: float = 0.0
) -> tuple[float, str]:
    """(signed Ah, method) of the charge that passed during a gap of ``duration_s``;
    ``recorded_ah``: what the file holds of the step since its source change (the
    instrument's counter counts from there)."""
    if state.charge_ah is not None:
        return state.charge_ah - recorded_ah, "instrument_counter"
    if state.tripped:  # a current until some time in the gap: at most all of it
        return state.setpoint * duration_s / 3600.0, "setpoint_x_duration_upper_bound"
    mode = _MODE_OF_STATE.get(state.mode, state.mode)
    if not state.output_on or mode == "ocv":
        return 0.0, "output_off"
    if mode == "cc":
        how = "setpoint_x_duration"
        if not read_back:
            how += "_no_readback"  # the recipe's set point, the current showed it on
        elif in_compliance(state):
            how += "_upper_bound"  # the source's voltage limit cut the current down
        return state.setpoint * duration_s / 3600.0, how
    if state.reading is not None and math.isfinite(state.reading.current_a):
        return state.reading.current_a * duration_s / 3600.0, "reading_current_x_duration"
    return math.nan, "unknown"


def make_gap(
    start_s: float,
    end_s: float,
    state: SourceState,
    read_back: bool,
    on_for_s: float | None = None,
    recorded_ah: float = 0.0,
) -> Gap:
    """The gap event of a restart (test seconds ``start_s`` .. ``end_s``); ``on_for_s``:
    the output was on only this long (a watchdog switched it off), else the whole gap."""
    on_s = end_s - start_s if on_for_s is None else min(max(on_for_s, 0.0), end_s - start_s)
    q, how = estimate_charge(state, on_s, read_back, recorded_ah)
    if on_for_s is not None:
        how += "_until_watchdog_off"
    mode = _MODE_OF_STATE.get(state.mode, state.mode)
    v = state.reading.voltage_v if state.reading is not None else math.nan
    return Gap(start_s, end_s, state.output_on, mode, state.setpoint, v, q, how, state.tripped)


def stopped_by_itself(state: SourceState, mode: str, setpoint: float) -> SourceState:
    """The read-back of a constant current ``setpoint`` (A) that the host did not stop
    (no stop signal, no safety stop, no watchdog) found with its output off: the
    instrument stopped it itself (its guard) at an unknown time of the gap. Some
    instruments say so (``tripped``); one whose program ends at the trip (MethodSCRIPT)
    cannot tell a host that connects later."""
    if state.output_on or mode != "cc" or setpoint == 0.0:
        return state
    level = state.setpoint if state.setpoint else setpoint
    return SourceState(False, state.mode, level, state.reading, True, state.charge_ah)


def ended_in_gap(step: object, gap: Gap | None) -> str | None:
    """Why a continued step already ended while no host ran (None: it goes on).

    A constant current the instrument stopped at the safety window passed the step's
    own end voltage, which lies inside the window (``voltage``); without a voltage end
    the cell reached a safety limit: :class:`~cyclerflow.errors.SafetyStop`."""
    if gap is None or not gap.tripped or not isinstance(step, ConstantCurrent):
        return None
    if step.until.voltage is not None:
        return "voltage"
    raise SafetyStop(
        f"the instrument stopped the {step.current:.4g} A step at its guard while no host "
        f"ran (reading {gap.reading_v:.4f} V): a safety limit was reached"
    )


def decide(recipe: Recipe, rp: ResumePoint, gap: Gap, held: bool, override: str | None) -> str:
    """``continue``, ``restart_step`` or raise :class:`ResumeRefused`.

    ``held``: the instrument held the interrupted step's limits itself (or its output
    was off). The recipe's ``on_resume`` (or ``override``) decides; without one the run
    continues only when ``held`` and the gap is shorter than ``max_gap``, or when the
    previous run ended with the host switching the output off itself.
    """
    policy = override or recipe.on_resume
    if policy is None and rp.refused:
        raise ResumeRefused(
            "the previous run refused to resume (see its note); check the cell, then run "
            "again with --on-resume continue (or restart_step)"
        )
    if policy == "stop":
        raise ResumeRefused(
            f"on_resume: stop; the host was away {gap.duration_s:.4g} s (output "
            f"{'on' if gap.output_on else 'off'} meanwhile); output is off"
        )
    if policy is not None:
        return policy
    if rp.ended_cleanly or not gap.output_on:
        return "continue"
    if held and gap.duration_s <= recipe.max_gap:
        return "continue"
    why = (
        f"the gap of {gap.duration_s:.4g} s is longer than max_gap {recipe.max_gap:.4g} s"
        if held
        else f"the instrument does not hold the limits of {gap.mode} steps by itself"
    )
    raise ResumeRefused(
        f"not resuming: the host was away {gap.duration_s:.4g} s with the output on "
        f"({gap.mode} {gap.setpoint:.4g}) and {why}; the output is off now. Check the cell, "
        "then run again with --on-resume continue (or restart_step), or set on_resume in "
        "the recipe"
    )
