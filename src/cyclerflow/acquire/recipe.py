"""The acquisition recipe (YAML) -> a validated tree of steps in SI units.

A recipe is a mapping with ``name``, ``limits`` (host-side safety limits) and
``steps``; each step is a one-key mapping ``{kind: {options}}``. Quantities carry
units (``"10 uA"``, ``"4.2 V"``, ``"1 h"``, ``"80 degC"``); currents may also be
C-rates (``"C/5"``, ``"2C"``) when the nominal capacity is known (cell metadata
``nominal_capacity_uah`` or the recipe's ``nominal_capacity``).

Every error is an :class:`~cyclerflow.errors.InputError` naming the file and the
step path, e.g. ``recipe.yaml: steps[1].loop.steps[0].cc_charge.current: ...``.
See docs/acquisition.md for every key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from cyclerflow.errors import InputError
from cyclerflow.units import parse_quantity

# --- quantity types -----------------------------------------------------------------

_C_RATE = re.compile(r"^\s*(?:(\d+(?:\.\d*)?|\.\d+)\s*)?C\s*(?:/\s*(\d+(?:\.\d*)?|\.\d+))?\s*$")


def _si_number(value: Any, info: ValidationInfo) -> bool:
    """Bare numbers are SI only when a model is built in code (no parse context)."""
    return info.context is None and isinstance(value, (int, float)) and not isinstance(value, bool)


def _quantity(dimension: str):
    def parse(value: Any, info: ValidationInfo) -> float:
        if _si_number(value, info):
            return float(value)
        try:
            return parse_quantity(value, dimension, where="value")
        except InputError as err:
            raise ValueError(err.bare_message.removeprefix("value: ")) from None

    return Annotated[float, BeforeValidator(parse)]


def parse_current(value: Any, nominal_capacity_ah: float | None) -> float:
    """A current (``"10 uA"``) or a C-rate (``"C/5"``, ``"2C"``) -> amperes (as given, unsigned)."""
    if isinstance(value, str):
        m = _C_RATE.match(value)
        if m:
            mult = float(m.group(1)) if m.group(1) else 1.0
            div = float(m.group(2)) if m.group(2) else 1.0
            if div == 0:
                raise ValueError(f"C-rate {value!r} divides by zero")
            if not nominal_capacity_ah:
                raise ValueError(
                    f"C-rate {value!r} needs the nominal capacity "
                    "(nominal_capacity_uah in the cell metadata, or nominal_capacity in the recipe)"
                )
            return mult / div * nominal_capacity_ah
    try:
        return parse_quantity(value, "current", where="value")
    except InputError as err:
        raise ValueError(err.bare_message.removeprefix("value: ")) from None


def _current(value: Any, info: ValidationInfo) -> float:
    if _si_number(value, info):
        return float(value)
    cap = (info.context or {}).get("nominal_capacity_ah")
    return parse_current(value, cap)


def _capacity(value: Any, info: ValidationInfo) -> float:
    """Charge in Ah, or a percentage of the nominal capacity (``"50 %"``)."""
    if _si_number(value, info):
        return float(value)
    if isinstance(value, str) and value.strip().endswith("%"):
        cap = (info.context or {}).get("nominal_capacity_ah")
        if not cap:
            raise ValueError(f"{value!r} is relative to the nominal capacity, which is not known")
        try:
            frac = parse_quantity(value, "fraction", where="value")
        except InputError as err:
            raise ValueError(err.bare_message.removeprefix("value: ")) from None
        return frac * cap
    try:
        return parse_quantity(value, "charge", where="value")
    except InputError as err:
        raise ValueError(err.bare_message.removeprefix("value: ")) from None


def _fraction(value: Any, info: ValidationInfo) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_quantity(value, "fraction", where="value")
    except InputError as err:
        raise ValueError(err.bare_message.removeprefix("value: ")) from None


Voltage = _quantity("voltage")
Time = _quantity("time")
Frequency = _quantity("frequency")
Temperature = _quantity("temperature")
Current = Annotated[float, BeforeValidator(_current)]
Capacity = Annotated[float, BeforeValidator(_capacity)]
Fraction = Annotated[float, BeforeValidator(_fraction)]


def _positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be > 0 (got {value:g} in SI units)")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- parts --------------------------------------------------------------------------


class Limits(_Model):
    """Host-side safety limits, checked on every sample (SI: V, A, K, s)."""

    voltage_max: Voltage
    voltage_min: Voltage
    current_max: Current
    temperature_max: Temperature | None = None
    temperature_min: Temperature | None = None
    step_time_max: Time | None = None
    #: soft-short detector: during a charge step, the voltage falling this far below
    #: the highest voltage seen in the step is a safety stop
    charge_voltage_drop: Voltage | None = None

    @model_validator(mode="after")
    def _check(self) -> Limits:
        if self.voltage_min >= self.voltage_max:
            raise ValueError(
                f"voltage_min ({self.voltage_min:g} V) must be below voltage_max ({self.voltage_max:g} V)"
            )
        _positive("current_max", self.current_max)
        _positive("step_time_max", self.step_time_max)
        _positive("charge_voltage_drop", self.charge_voltage_drop)
        if (
            self.temperature_min is not None
            and self.temperature_max is not None
            and self.temperature_min >= self.temperature_max
        ):
            raise ValueError("temperature_min must be below temperature_max")
        return self


class Until(_Model):
    """End conditions of a step; the first one met ends it.

    ``voltage``: crossed in the step's direction (up for charge, down for discharge;
    for rest/ocv, crossed from either side). ``current``: magnitude fell to or below.
    ``time``: step time reached. ``capacity``: charge passed in the step (Ah or % of
    nominal) reached.
    """

    voltage: Voltage | None = None
    current: Current | None = None
    time: Time | None = None
    capacity: Capacity | None = None

    @model_validator(mode="after")
    def _check(self) -> Until:
        _positive("current", self.current)
        _positive("time", self.time)
        _positive("capacity", self.capacity)
        return self

    def empty(self) -> bool:
        return all(v is None for v in (self.voltage, self.current, self.time, self.capacity))


class Record(_Model):
    """Recording rule: a sample is stored every ``every`` seconds, or sooner when the
    voltage moved by ``dv`` (or the current by ``di``) since the last stored sample."""

    every: Time = 10.0
    dv: Voltage | None = None
    di: Current | None = None

    @model_validator(mode="after")
    def _check(self) -> Record:
        _positive("every", self.every)
        _positive("dv", self.dv)
        _positive("di", self.di)
        return self


class LoopUntil(_Model):
    """Loop end conditions, checked after each iteration."""

    #: discharge capacity of an iteration below this fraction of the first iteration's
    retention: Fraction | None = None
    #: discharge capacity of an iteration below this
    discharge_capacity: Capacity | None = None

    def empty(self) -> bool:
        return self.retention is None and self.discharge_capacity is None


# --- steps --------------------------------------------------------------------------


class _Step(_Model):
    #: 1-based position of this leaf in the recipe (depth first); set by the parser
    index: int = 0


class Rest(_Step):
    kind: Literal["rest", "ocv"] = "rest"
    duration: Time | None = None
    until: Until = Until()
    record: Record | None = None

    @model_validator(mode="after")
    def _check(self) -> Rest:
        _positive("duration", self.duration)
        if self.duration is None and self.until.empty():
            raise ValueError("needs 'duration' or an 'until' condition")
        if self.until.current is not None:
            raise ValueError("until.current makes no sense at open circuit")
        return self


class Ici(_Model):
    """Intermittent current interruption of a constant-current step: open circuit for
    ``duration`` after every ``every`` seconds of current (both s)."""

    every: Time
    duration: Time

    @model_validator(mode="after")
    def _check(self) -> Ici:
        _positive("every", self.every)
        _positive("duration", self.duration)
        if self.duration >= self.every:
            raise ValueError(
                f"duration ({self.duration:g} s) must be shorter than every ({self.every:g} s)"
            )
        return self


class ConstantCurrent(_Step):
    """cc_charge / cc_discharge. ``current`` is signed here (> 0 charges)."""

    kind: Literal["cc_charge", "cc_discharge"]
    current: Current
    voltage_limit: Voltage | None = None
    until: Until = Until()
    record: Record | None = None
    ici: Ici | None = None

    @model_validator(mode="after")
    def _check(self) -> ConstantCurrent:
        if self.until.empty():
            raise ValueError("needs an 'until' condition (voltage, time or capacity)")
        if self.until.current is not None:
            raise ValueError("until.current is for cv_hold / cccv, not constant current")
        return self


class CvHold(_Step):
    """A voltage hold; ``float`` steps are holds of a fixed ``duration`` (leakage)."""

    kind: Literal["cv_hold", "float"] = "cv_hold"
    voltage: Voltage
    current_limit: Current | None = None
    until: Until = Until()
    record: Record | None = None

    @model_validator(mode="after")
    def _check(self) -> CvHold:
        if self.until.empty():
            raise ValueError("needs an 'until' condition (current, time or capacity)")
        if self.until.voltage is not None:
            raise ValueError("until.voltage makes no sense while holding a voltage")
        return self


class Float(_Step):
    """``float``: hold ``voltage`` for ``duration``; the current at its end is the
    cell's leakage (self-discharge, soft shorts)."""

    voltage: Voltage
    duration: Time
    current_limit: Current | None = None
    record: Record | None = None

    @model_validator(mode="after")
    def _check(self) -> Float:
        _positive("duration", self.duration)
        return self

    def hold(self) -> CvHold:
        """The :class:`CvHold` that runs it."""
        return CvHold(
            kind="float",
            index=self.index,
            voltage=self.voltage,
            current_limit=self.current_limit,
            until=Until(time=self.duration),
            record=self.record,
        )


class Cccv(_Step):
    """Constant current to ``voltage``, then hold it until ``until`` (current/time)."""

    kind: Literal["cccv"] = "cccv"
    current: Current
    voltage: Voltage
    direction: Literal["charge", "discharge"] = "charge"
    until: Until = Until()
    record: Record | None = None

    @model_validator(mode="after")
    def _check(self) -> Cccv:
        if self.until.current is None and self.until.time is None and self.until.capacity is None:
            raise ValueError(
                "needs an 'until' condition for the CV part (current, time or capacity)"
            )
        if self.until.voltage is not None:
            raise ValueError("until.voltage: the CC part ends at 'voltage' already")
        return self


class Eis(_Step):
    """Potentiostatic impedance spectrum around the present state (amplitude in V rms)."""

    kind: Literal["eis"] = "eis"
    f_start: Frequency
    f_stop: Frequency
    points_per_decade: int = Field(10, ge=1, le=100)
    amplitude: Voltage = 0.01
    dc_level: Voltage | None = None
    #: inside a loop: run on iterations every, 2*every, ... only
    every: int | None = Field(None, ge=1)
    #: with ``every``: also run on the first iteration
    also_first: bool = False

    @model_validator(mode="after")
    def _check(self) -> Eis:
        _positive("f_start", self.f_start)
        _positive("f_stop", self.f_stop)
        _positive("amplitude", self.amplitude)
        if self.f_start == self.f_stop:
            raise ValueError("f_start and f_stop must differ")
        return self


class Gitt(_Step):
    """Current pulses of ``pulse`` seconds each followed by ``rest``, until the
    voltage limit is crossed during a pulse or ``max_pulses`` is reached."""

    kind: Literal["gitt"] = "gitt"
    current: Current
    direction: Literal["charge", "discharge"] = "discharge"
    pulse: Time
    rest: Time
    until: Until = Until()
    max_pulses: int = Field(1000, ge=1)
    record: Record | None = None

    @model_validator(mode="after")
    def _check(self) -> Gitt:
        _positive("pulse", self.pulse)
        _positive("rest", self.rest)
        if self.until.voltage is None:
            raise ValueError("needs until.voltage (the cut-off that ends the titration)")
        return self


class SetTemperature(_Step):
    """Set the temperature controller and wait until it is stable."""

    kind: Literal["set_temperature"] = "set_temperature"
    setpoint: Temperature
    tolerance: Temperature | None = None  # a temperature difference, written in K
    stable_for: Time = 600.0
    timeout: Time = 7200.0
    ramp_k_per_min: float | None = Field(None, gt=0)
    record: Record | None = None

    @model_validator(mode="after")
    def _check(self) -> SetTemperature:
        _positive("stable_for", self.stable_for)
        _positive("timeout", self.timeout)
        if self.timeout < self.stable_for:
            raise ValueError("timeout must be at least stable_for")
        return self

    @property
    def tolerance_k(self) -> float:
        return 0.2 if self.tolerance is None else self.tolerance


class Loop(_Model):
    kind: Literal["loop"] = "loop"
    repeat: int | None = Field(None, ge=1)
    until: LoopUntil = LoopUntil()
    steps: tuple[Any, ...]
    #: False for the internal loops of gitt / temperature_series (no new cycle per iteration)
    counts_cycles: bool = True
    #: gitt: a voltage end condition in the body ends the whole loop
    label: str = "loop"
    #: temperature_series: the set point of each iteration (K)
    setpoints: tuple[float, ...] = ()


Step = Rest | ConstantCurrent | CvHold | Cccv | Eis | Gitt | SetTemperature | Loop

CURRENT_KINDS = frozenset({"cc_charge", "cc_discharge", "cv_hold", "float", "cccv", "gitt"})


#: ``on_resume`` values: go on with the interrupted step, run it again from its
#: start, or refuse to resume (output off, a clear message)
RESUME_POLICIES = ("continue", "restart_step", "stop")


class Recipe(_Model):
    name: str
    limits: Limits
    steps: tuple[Any, ...]
    sample_interval: Time = 1.0
    record: Record = Record()
    nominal_capacity_ah: float | None = None
    text: str = ""
    source: str | None = None
    #: what a restarted run does with the step the host died in (see RESUME_POLICIES);
    #: None: continue only when the instrument held the step's limits and the gap is
    #: shorter than ``max_gap``, else stop
    on_resume: str | None = None
    #: longest gap (simulated s) the default resume policy continues across
    max_gap: float = 600.0

    def leaves(self) -> list[Step]:
        """Every leaf step, depth first (their ``index`` is 1..n)."""
        out: list[Step] = []

        def walk(steps: tuple[Any, ...]) -> None:
            for s in steps:
                if isinstance(s, Loop):
                    walk(s.steps)
                else:
                    out.append(s)

        walk(self.steps)
        return out

    def needs_temperature_controller(self) -> bool:
        return any(isinstance(s, SetTemperature) for s in self.leaves())

    def needs(self) -> set[str]:
        """Channel capabilities the recipe uses (cc, cv, ocv, eis)."""
        need: set[str] = set()
        for s in self.leaves():
            if isinstance(s, (ConstantCurrent, Gitt)):
                need.add("cc")
            elif isinstance(s, CvHold):
                need.add("cv")
            elif isinstance(s, Cccv):
                need |= {"cc", "cv"}
            elif isinstance(s, Eis):
                need.add("eis")
        return need


# --- parsing ------------------------------------------------------------------------

_STEP_MODELS: dict[str, type[_Model]] = {
    "rest": Rest,
    "ocv": Rest,
    "cc_charge": ConstantCurrent,
    "cc_discharge": ConstantCurrent,
    "cv_hold": CvHold,
    "cccv": Cccv,
    "eis": Eis,
    "gitt": Gitt,
    "float": Float,
    "set_temperature": SetTemperature,
}
KINDS = (*_STEP_MODELS, "loop", "temperature_series")


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _format(err: ValidationError, prefix: str) -> str:
    first = err.errors()[0]
    where = ".".join(p for p in (prefix, _loc(first["loc"])) if p)
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        return f"{where}: is required"
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    if first["type"].startswith(("int_", "bool_", "literal_", "greater", "less", "string_")):
        return f"{where}: {msg} (got {first.get('input')!r})"
    return f"{where}: {msg}"


class _Parser:
    def __init__(self, source: str | None, context: dict[str, Any]):
        self.source = source
        self.ctx = context
        self.n_leaves = 0

    def fail(self, message: str) -> InputError:
        return InputError(message, path=self.source)

    def validate(self, model: type[_Model], body: Any, where: str, **extra: Any) -> Any:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise self.fail(f"{where}: expected a mapping of options, got {body!r}")
        try:
            return model.model_validate({**body, **extra}, context=self.ctx)
        except ValidationError as err:
            raise self.fail(_format(err, where)) from None

    def steps(self, raw: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"{where}: expected a non-empty list of steps")
        return tuple(self.step(item, f"{where}[{i}]") for i, item in enumerate(raw))

    def step(self, raw: Any, where: str) -> Any:
        if not isinstance(raw, dict) or len(raw) != 1:
            raise self.fail(
                f"{where}: a step is a mapping with exactly one key, one of {', '.join(KINDS)}"
            )
        ((kind, body),) = raw.items()
        here = f"{where}.{kind}"
        if kind == "loop":
            return self.loop(body, here)
        if kind == "temperature_series":
            return self.temperature_series(body, here)
        if kind not in _STEP_MODELS:
            raise self.fail(f"{where}: unknown step {kind!r} (expected one of {', '.join(KINDS)})")
        model = _STEP_MODELS[kind]
        extra: dict[str, Any] = {}
        if model in (Rest, ConstantCurrent):
            extra["kind"] = kind
        if isinstance(body, dict) and ("kind" in body or "index" in body):
            raise self.fail(f"{here}: 'kind'/'index' are not options")
        self.n_leaves += 1
        step = self.validate(model, body, here, index=self.n_leaves, **extra)
        return self.signed(step.hold() if isinstance(step, Float) else step, kind, here)

    def signed(self, step: Any, kind: str, here: str) -> Any:
        """The step with its current signed (> 0 charges) after checking its magnitude."""
        if isinstance(step, ConstantCurrent):
            _positive_or_fail(self, step.current, f"{here}.current")
            if kind == "cc_discharge":
                step = step.model_copy(update={"current": -step.current})
        elif isinstance(step, (Cccv, Gitt)):
            _positive_or_fail(self, step.current, f"{here}.current")
            if step.direction == "discharge":
                step = step.model_copy(update={"current": -step.current})
        elif isinstance(step, CvHold) and step.current_limit is not None:
            _positive_or_fail(self, step.current_limit, f"{here}.current_limit")
        return step

    def loop(self, body: Any, here: str) -> Loop:
        if not isinstance(body, dict):
            raise self.fail(f"{here}: expected a mapping with 'repeat' and/or 'until', and 'steps'")
        unknown = set(body) - {"repeat", "until", "steps"}
        if unknown:
            raise self.fail(
                f"{here}.{sorted(unknown)[0]}: unknown key (expected repeat, until, steps)"
            )
        if "steps" not in body:
            raise self.fail(f"{here}.steps: is required")
        steps = self.steps(body["steps"], f"{here}.steps")
        loop = self.validate(Loop, {k: v for k, v in body.items() if k != "steps"}, here, steps=())
        if loop.repeat is None and loop.until.empty():
            raise self.fail(f"{here}: needs 'repeat' (a count) or an 'until' condition")
        return loop.model_copy(update={"steps": steps})

    def temperature_series(self, body: Any, here: str) -> Loop:
        if not isinstance(body, dict):
            raise self.fail(f"{here}: expected a mapping with 'setpoints' and 'steps'")
        allowed = {
            "setpoints",
            "tolerance",
            "stable_for",
            "timeout",
            "ramp_k_per_min",
            "steps",
            "record",
        }
        unknown = set(body) - allowed
        if unknown:
            raise self.fail(
                f"{here}.{sorted(unknown)[0]}: unknown key (expected one of {', '.join(sorted(allowed))})"
            )
        pts = body.get("setpoints")
        if not isinstance(pts, list) or not pts:
            raise self.fail(
                f"{here}.setpoints: expected a non-empty list of temperatures such as '25 degC'"
            )
        kelvin = []
        for i, p in enumerate(pts):
            try:
                kelvin.append(parse_quantity(p, "temperature", where="value"))
            except InputError as err:
                raise self.fail(
                    f"{here}.setpoints[{i}]: {err.bare_message.removeprefix('value: ')}"
                ) from None
            if kelvin[-1] <= 0:
                raise self.fail(f"{here}.setpoints[{i}]: below absolute zero ({p!r})")
        options = {
            k: body[k]
            for k in ("tolerance", "stable_for", "timeout", "ramp_k_per_min", "record")
            if k in body
        }
        self.n_leaves += 1
        setter = self.validate(
            SetTemperature, {**options, "setpoint": f"{kelvin[0]!r} K"}, here, index=self.n_leaves
        )
        if "steps" not in body:
            raise self.fail(f"{here}.steps: is required (e.g. an eis step)")
        inner = self.steps(body["steps"], f"{here}.steps")
        return Loop(
            repeat=len(kelvin),
            steps=(setter, *inner),
            counts_cycles=False,
            label="temperature_series",
            setpoints=tuple(kelvin),
        )


def _positive_or_fail(p: _Parser, value: float, where: str) -> None:
    if not value > 0:
        raise p.fail(
            f"{where}: must be a positive magnitude (the engine applies the sign), got {value:g} A"
        )


def _check_against_limits(
    p: _Parser, recipe_steps: tuple[Any, ...], limits: Limits, where: str
) -> None:
    """Set points outside the safety limits are errors before anything is switched on."""
    for i, s in enumerate(recipe_steps):
        if isinstance(s, Loop):
            _check_against_limits(p, s.steps, limits, f"{where}[{i}].{s.label}.steps")
            if s.label == "temperature_series":
                _check_series(p, s, limits, f"{where}[{i}].temperature_series")
        else:
            _check_leaf(p, s, limits, f"{where}[{i}].{s.kind}")


def _check_series(p: _Parser, s: Loop, limits: Limits, here: str) -> None:
    for k, t in enumerate(s.setpoints):
        if limits.temperature_max is not None and t > limits.temperature_max:
            raise p.fail(
                f"{here}.setpoints[{k}]: {t - 273.15:g} degC is above "
                f"limits.temperature_max ({limits.temperature_max - 273.15:g} degC)"
            )


def _check_leaf(p: _Parser, s: Any, limits: Limits, here: str) -> None:
    window = f"({limits.voltage_min:g} V .. {limits.voltage_max:g} V)"
    cur = getattr(s, "current", None)
    if cur is not None and abs(cur) > limits.current_max:
        raise p.fail(
            f"{here}.current: {abs(cur):.4g} A is above limits.current_max ({limits.current_max:.4g} A)"
        )
    for key in ("voltage", "voltage_limit"):
        v = getattr(s, key, None)
        if v is not None and not limits.voltage_min <= v <= limits.voltage_max:
            raise p.fail(f"{here}.{key}: {v:g} V is outside the limits {window}")
    until = getattr(s, "until", None)
    if isinstance(until, Until) and until.voltage is not None:
        if not limits.voltage_min <= until.voltage <= limits.voltage_max:
            raise p.fail(
                f"{here}.until.voltage: {until.voltage:g} V is outside the limits {window}"
            )
    if isinstance(s, SetTemperature) and limits.temperature_max is not None:
        if s.setpoint > limits.temperature_max:
            raise p.fail(f"{here}.setpoint: above limits.temperature_max")


def parse_recipe(
    data: Any,
    *,
    source: str | Path | None = None,
    nominal_capacity_ah: float | None = None,
    text: str = "",
) -> Recipe:
    """Validate a recipe mapping; ``nominal_capacity_ah`` (from the cell) enables C-rates."""
    src = None if source is None else str(source)
    if not isinstance(data, dict):
        raise InputError("a recipe is a mapping with 'name', 'limits' and 'steps'", path=src)
    allowed = {
        "name",
        "limits",
        "steps",
        "sample_interval",
        "record",
        "nominal_capacity",
        "description",
        "on_resume",
        "max_gap",
    }
    unknown = set(data) - allowed
    if unknown:
        raise InputError(
            f"{sorted(unknown)[0]}: unknown key (expected one of {', '.join(sorted(allowed))})",
            path=src,
        )
    cap = nominal_capacity_ah
    if "nominal_capacity" in data:
        try:
            cap = parse_quantity(data["nominal_capacity"], "charge", where="nominal_capacity")
        except InputError as err:
            raise InputError(err.bare_message, path=src) from None
        if cap <= 0:
            raise InputError("nominal_capacity: must be > 0", path=src)
    p = _Parser(src, {"nominal_capacity_ah": cap})
    if "limits" not in data:
        raise InputError(
            "limits: is required (voltage_max, voltage_min, current_max: host-side safety limits)",
            path=src,
        )
    limits = p.validate(Limits, data["limits"], "limits")
    if "steps" not in data:
        raise InputError("steps: is required", path=src)
    steps = p.steps(data["steps"], "steps")
    name = data.get("name", Path(src).stem if src else "recipe")
    if not isinstance(name, str) or not name:
        raise InputError(f"name: expected a text, got {name!r}", path=src)
    record = p.validate(Record, data.get("record"), "record")
    sample_interval = _positive_time(data, "sample_interval", "1 s", src)
    on_resume = data.get("on_resume")
    if on_resume is not None and on_resume not in RESUME_POLICIES:
        raise InputError(
            f"on_resume: expected one of {', '.join(RESUME_POLICIES)}, got {on_resume!r}",
            path=src,
        )
    max_gap = _positive_time(data, "max_gap", "10 min", src)
    _check_against_limits(p, steps, limits, "steps")
    return Recipe(
        name=name,
        limits=limits,
        steps=steps,
        sample_interval=sample_interval,
        record=record,
        nominal_capacity_ah=cap,
        text=text,
        source=src,
        on_resume=on_resume,
        max_gap=max_gap,
    )


def _positive_time(data: dict, key: str, default: str, src: str | None) -> float:
    try:
        value = parse_quantity(data.get(key, default), "time", where=key)
    except InputError as err:
        raise InputError(err.bare_message, path=src) from None
    if value <= 0:
        raise InputError(f"{key}: must be > 0", path=src)
    return value


def load_recipe(path: str | Path, *, nominal_capacity_ah: float | None = None) -> Recipe:
    """Read and validate a recipe YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("recipe file not found", path=path) from None
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text (byte {err.start})", path=path) from None
    return loads_recipe(text, source=path, nominal_capacity_ah=nominal_capacity_ah)


def loads_recipe(
    text: str, *, source: str | Path | None = None, nominal_capacity_ah: float | None = None
) -> Recipe:
    """Validate a recipe given as YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(f"cannot parse YAML: {' '.join(str(err).split())}", path=source) from None
    if data is None:
        raise InputError("recipe is empty", path=source)
    return parse_recipe(data, source=source, nominal_capacity_ah=nominal_capacity_ah, text=text)
