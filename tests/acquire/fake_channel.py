"""An in-process test double of an instrument channel with an exactly solvable cell.

Not a mock: a small physical model (linear OCV ``a + b*soc``, series resistance R)
whose state advances with the engine's clock, integrated analytically, so tests
know the true charge of every half-cycle. Faults can be switched on by tests.

Also usable as a driver module (``open_channel``) for the CLI subprocess tests:
``--driver fake_channel`` with this folder on PYTHONPATH.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from cyclerflow.acquire.instrument import Sample, SourceState, StepGuard
from cyclerflow.errors import InstrumentError


class HostKilled(BaseException):
    """The host process died here (SIGKILL): nothing after it reaches the instrument."""


@dataclass
class FakeCell:
    capacity_ah: float = 15e-6
    soc: float = 0.05
    a: float = 3.3  # OCV at soc 0 (V)
    b: float = 0.9  # OCV slope (V per unit soc)
    r_ohm: float = 2000.0
    short_ohm: float | None = None
    true_charge_ah: float = 0.0
    #: [sign, charge_ah] per half-cycle (run of one current sign; zero current does not end it)
    halves: list[list[float]] = field(default_factory=list)

    def ocv(self) -> float:
        return self.a + self.b * self.soc

    def add_charge(self, q_ah: float) -> None:
        self.soc += q_ah / self.capacity_ah
        self.true_charge_ah += q_ah
        if q_ah == 0:
            return
        sign = 1.0 if q_ah > 0 else -1.0
        if self.halves and self.halves[-1][0] == sign:
            self.halves[-1][1] += abs(q_ah)
        else:
            self.halves.append([sign, abs(q_ah)])


class FakeChannel:
    """Implements :class:`cyclerflow.acquire.instrument.SourceMeterChannel`."""

    capabilities = frozenset({"cc", "cv", "ocv", "eis"})

    def __init__(self, now=None, cell: FakeCell | None = None, name: str = "fake"):
        self.name = name
        self.cell = cell or FakeCell()
        self._now = now or time.monotonic
        self._t = self._now()
        self.mode = "off"
        self.i_set = 0.0
        self.v_set = 0.0
        self.v_lim = 0.0
        self.i_lim = 0.0
        self.connected = False
        self.output_on = False
        self.lock = threading.Lock()
        # faults
        self.drop_at: float | None = None  # clock time after which reads fail until reconnect
        self.refuse_reconnect = False
        self.garble_at: float | None = None
        self.short_at: float | None = None
        self.short_ohm = 1000.0
        self.error_queue: list[str] = []
        self.error_at: float | None = None  # the first source command after this time fails
        self.error_text = '-222,"Data out of range"'
        self.connects = 0
        self.reads = 0
        self.read_times: list[float] = []
        self.eis_temperatures: list[float] = []
        self.temperature_k = float("nan")
        #: instrument timestamps run this many times faster than the clock it follows
        self.time_scale = 1.0
        #: clock time at which the host "dies": the next read raises HostKilled and
        #: every later command of that host is lost (the source stays as it was)
        self.kill_at: float | None = None
        self.host_dead = False

    # -- model ----------------------------------------------------------------------
    def _advance(self) -> None:
        t = self._now()
        dt = t - self._t
        self._t = t
        if dt <= 0:
            return
        c = self.cell
        if self.short_at is not None and t >= self.short_at and c.short_ohm is None:
            c.short_ohm = self.short_ohm
        if self.mode == "cc":
            self._cc(dt)
        elif self.mode in ("cv", "cc_compliance"):
            self._cv(dt)
        if c.short_ohm is not None:  # self-discharge through the leak (not at the terminals)
            leak_q = c.ocv() / (c.short_ohm + c.r_ohm) * dt / 3600.0
            c.soc -= leak_q / c.capacity_ah

    def _cc(self, dt: float) -> None:
        c, i = self.cell, self.i_set
        # time until the terminal voltage reaches the compliance, then hold it (CV)
        soc_lim = (self.v_lim - i * c.r_ohm - c.a) / c.b
        t_cross = (soc_lim - c.soc) * c.capacity_ah * 3600.0 / i if i else math.inf
        if 0 <= t_cross < dt:
            c.add_charge(i * t_cross / 3600.0)
            self.mode, self.v_set, self.i_lim = "cv", self.v_lim, abs(i)
            self._cv(dt - t_cross)
            self.mode = "cc_compliance"
            return
        c.add_charge(i * dt / 3600.0)

    def _cv(self, dt: float) -> None:
        c = self.cell
        i0 = (self.v_set - c.ocv()) / c.r_ohm
        if abs(i0) > self.i_lim:  # current-limited part: constant current until unclipped
            i = math.copysign(self.i_lim, i0)
            soc_free = (self.v_set - i * c.r_ohm - c.a) / c.b
            t_free = (soc_free - c.soc) * c.capacity_ah * 3600.0 / i
            if t_free >= dt:
                c.add_charge(i * dt / 3600.0)
                return
            c.add_charge(i * t_free / 3600.0)
            dt -= t_free
        soc_eq = (self.v_set - c.a) / c.b
        tau = c.r_ohm * c.capacity_ah * 3600.0 / c.b
        soc1 = soc_eq + (c.soc - soc_eq) * math.exp(-dt / tau)
        c.add_charge((soc1 - c.soc) * c.capacity_ah)

    def _terminal(self) -> tuple[float, float]:
        c = self.cell
        ocv = c.ocv()
        if c.short_ohm is not None:  # leak through the internal resistance pulls V down
            ocv -= ocv / (c.short_ohm + c.r_ohm) * c.r_ohm
        if self.mode == "cc":
            return ocv + self.i_set * c.r_ohm, self.i_set
        if self.mode in ("cv", "cc_compliance"):
            i = (self.v_set - ocv) / c.r_ohm
            if abs(i) > self.i_lim:
                i = math.copysign(self.i_lim, i)
                return ocv + i * c.r_ohm, i
            return self.v_set, i
        return ocv, 0.0

    # -- channel protocol -------------------------------------------------------------
    def _link(self) -> None:
        if not self.connected:
            raise ConnectionResetError("not connected")
        if self.drop_at is not None and self._now() >= self.drop_at:
            self.connected = False
            self.drop_at = None
            raise ConnectionResetError("connection reset by peer (fault)")

    def connect(self) -> None:
        if self.refuse_reconnect and self.connects > 0:
            raise ConnectionRefusedError("connection refused (fault)")
        self.connected = True
        self.connects += 1

    def close(self) -> None:
        self.connected = False

    def identify(self) -> str:
        self._link()
        return "FAKE,CELL,0,1"

    def output_off(self) -> None:
        self._link()
        if self.host_dead:
            return
        with self.lock:
            self._advance()
            self.mode, self.output_on = "off", False

    def _ignored(self) -> bool:
        return self.host_dead

    def _maybe_error(self) -> None:
        if self.error_at is not None and self._now() >= self.error_at:
            self.error_queue.append(self.error_text)
            self.error_at = None

    def source_current(self, current_a: float, voltage_limit_v: float) -> None:
        self._link()
        if self._ignored():
            return
        self._maybe_error()
        with self.lock:
            self._advance()
            self.mode, self.i_set, self.v_lim, self.output_on = (
                "cc",
                current_a,
                voltage_limit_v,
                True,
            )

    def source_voltage(self, voltage_v: float, current_limit_a: float) -> None:
        self._link()
        if self._ignored():
            return
        self._maybe_error()
        with self.lock:
            self._advance()
            self.mode, self.v_set, self.i_lim, self.output_on = (
                "cv",
                voltage_v,
                current_limit_a,
                True,
            )

    def open_circuit(self) -> None:
        self._link()
        if self._ignored():
            return
        self._maybe_error()
        with self.lock:
            self._advance()
            self.mode, self.output_on = "ocv", False

    def revive(self, now=None) -> None:
        """A new host process connects. ``now``: the clock the instrument follows from
        here on (it must go on from the old one's time plus the gap); the model
        integrates the gap in the state the dead host left it in."""
        with self.lock:
            if now is not None:
                self._now = now
            self._advance()
        self.host_dead = False

    def read(self) -> Sample:
        self._link()
        if self.kill_at is not None and not self.host_dead and self._now() >= self.kill_at:
            self.host_dead, self.kill_at = True, None
            raise HostKilled()
        if self.garble_at is not None and self._now() >= self.garble_at:
            raise InstrumentError("garbled reply b'\\x8f#?!' to READ?")
        with self.lock:
            self._advance()
            v, i = self._terminal()
            self.reads += 1
            self.read_times.append(self._t)
            return Sample(self._t * self.time_scale, v, i, self.temperature_k)

    def errors(self) -> list[str]:
        self._link()
        out, self.error_queue = self.error_queue, []
        return out

    def measure_eis(self, f_start_hz, f_stop_hz, points_per_decade, amplitude, dc_level=0.0):
        self._link()
        n = max(2, int(round(abs(math.log10(f_start_hz / f_stop_hz)) * points_per_decade)) + 1)
        f = np.logspace(math.log10(f_start_hz), math.log10(f_stop_hz), n)
        w = 2 * np.pi * f
        r_el = (
            100.0
            if math.isnan(self.temperature_k)
            else 100.0 * math.exp(3000 * (1 / self.temperature_k - 1 / 298.15))
        )
        z = 20.0 + r_el / (1 + 1j * w * r_el * 1e-9) + 1 / (1j * w * 1e-6)
        self.eis_temperatures.append(self.temperature_k)
        return f, z


class ClockedFakeChannel(FakeChannel):
    """Reports its clock rate (:class:`~cyclerflow.acquire.instrument.ReportsClock`)."""

    def __init__(self, *args, rate: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate = rate

    def clock_rate(self) -> float:
        return self.rate


class GuardedFakeChannel(FakeChannel):
    """Holds a :class:`StepGuard` itself (:class:`~cyclerflow.acquire.instrument.GuardedSource`):
    in constant current it switches its output off when the terminal voltage reaches
    the guard window (solved exactly, like the compliance); keeps a charge counter
    since the last source change when ``counter`` is set."""

    guarded_modes = frozenset({"cc", "cv", "ocv"})

    def __init__(self, *args, counter: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.guard: StepGuard | None = None
        self.guards: list[StepGuard | None] = []
        self.tripped = False
        self.counter = counter
        self._q0 = 0.0

    def _program(self, guard: StepGuard | None) -> None:
        self.guard, self.tripped = guard, False
        self.guards.append(guard)
        self._q0 = self.cell.true_charge_ah

    def source_current(self, current_a, voltage_limit_v, *, guard: StepGuard | None = None):
        super().source_current(current_a, voltage_limit_v)
        if not self._ignored():
            self._program(guard)

    def source_voltage(self, voltage_v, current_limit_a, *, guard: StepGuard | None = None):
        super().source_voltage(voltage_v, current_limit_a)
        if not self._ignored():
            self._program(guard)

    def open_circuit(self, *, guard: StepGuard | None = None):
        super().open_circuit()
        if not self._ignored():
            self._program(guard)

    def _cc(self, dt: float) -> None:
        g, c, i = self.guard, self.cell, self.i_set
        edge = None if g is None else (g.voltage_max_v if i > 0 else g.voltage_min_v)
        if edge is not None and i:
            soc_edge = (edge - i * c.r_ohm - c.a) / c.b
            t_edge = (soc_edge - c.soc) * c.capacity_ah * 3600.0 / i
            if 0 <= t_edge < dt:
                c.add_charge(i * t_edge / 3600.0)
                self.mode, self.output_on, self.tripped = "off", False, True
                return
        super()._cc(dt)

    def source_state(self) -> SourceState:
        self._link()
        with self.lock:
            self._advance()
            v, i = self._terminal()
            names = {"cc": "current", "cv": "voltage", "cc_compliance": "voltage"}
            mode = names.get(self.mode, "open_circuit" if self.mode == "ocv" else "off")
            setpoint = (
                self.i_set if mode == "current" else (self.v_set if mode == "voltage" else 0.0)
            )
            q = self.cell.true_charge_ah - self._q0 if self.counter else None
            reading = Sample(self._t * self.time_scale, v, i, self.temperature_k)
            return SourceState(self.output_on, mode, setpoint, reading, self.tripped, q)


class FakeTemperatureController:
    """First-order approach to the set point (time constant ``tau`` simulated seconds)."""

    def __init__(
        self, now, channel: FakeChannel | None = None, start_k: float = 298.15, tau: float = 60.0
    ):
        self.name = "fake-tc"
        self._now = now
        self._t = now()
        self.temp = start_k
        self.setpoint = start_k
        self.tau = tau
        self.channel = channel
        self.setpoints: list[float] = []

    def _advance(self) -> None:
        t = self._now()
        dt, self._t = t - self._t, t
        self.temp = self.setpoint + (self.temp - self.setpoint) * math.exp(-max(dt, 0) / self.tau)
        if self.channel is not None:
            self.channel.temperature_k = self.temp

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def identify(self) -> str:
        return "FAKE,TC"

    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None:
        self._advance()
        self.setpoint = kelvin
        self.setpoints.append(kelvin)

    def read_temperature(self) -> float:
        self._advance()
        return self.temp


# --- as a driver module (CLI subprocess tests) ------------------------------------------

_SPEEDUP = {"x": 1.0}


def open_channel(resource: str, **options) -> FakeChannel:
    """``resource`` names the channel. Options: speedup (must match the engine's), soc,
    and faults in simulated seconds: drop_at, garble_at, short_at; refuse_connect,
    refuse_reconnect (booleans)."""
    speed = float(options.get("speedup", 1.0))
    t0 = time.monotonic()
    now = lambda: (time.monotonic() - t0) * speed  # noqa: E731
    if options.get("guarded"):
        ch = GuardedFakeChannel(now=now, name=resource)
    elif "clock_rate" in options:
        ch = ClockedFakeChannel(now=now, name=resource, rate=float(options["clock_rate"]))
    else:
        ch = FakeChannel(now=now, name=resource)
    if "soc" in options:
        ch.cell.soc = float(options["soc"])
    for key in ("drop_at", "garble_at", "short_at"):
        if key in options:
            setattr(ch, key, float(options[key]))
    ch.refuse_reconnect = bool(options.get("refuse_reconnect", False))
    if options.get("refuse_connect"):
        ch.refuse_reconnect, ch.connects = True, 1
    return ch


def serve_simulator(**kwargs) -> None:  # pragma: no cover - not a served protocol
    raise NotImplementedError
