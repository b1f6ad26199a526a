"""What the acquisition engine needs from an instrument channel (drivers implement it).

Core never imports drivers: the engine finds a driver module through the
``cyclerflow.drivers`` entry points (:func:`load_driver`). A driver module provides

- ``open_channel(resource: str, **options) -> SourceMeterChannel`` (or ``-> TemperatureController``)
- ``serve_simulator(*, host, port, cell, speedup, faults) -> None`` for ``cyclerflow simulate``
  (blocking; serves the instrument's real protocol on loopback TCP or a pty)

Optional capability ``read_around_switch``: the channel's ``source_current``,
``source_voltage`` and ``open_circuit`` accept ``read_around=True`` and then return
``(before, after)``, a reading taken right before the source change and one right
after it, by the instrument in one exchange (SCPI: ``READ?;<source commands>;READ?``).
The engine uses it at step changes so the charge passed between the end condition's
reading and the switch, and between the switch and the next step's first reading, is
in the file however late the host is.

Sign convention at this interface: current > 0 charges the cell. Drivers convert
from the instrument's own sign. All values SI (A, V, s, K, Hz, Ohm).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Protocol, runtime_checkable

import numpy as np

from cyclerflow.errors import InputError, InstrumentError


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading. ``time_s`` is the instrument's (or host's) clock in seconds."""

    time_s: float
    voltage_v: float
    current_a: float
    temperature_k: float = float("nan")


@dataclass(frozen=True, slots=True)
class StepGuard:
    """Limits the instrument itself must hold during one step, without the host (SI).

    ``voltage_min_v``/``voltage_max_v``: the cell voltage window (the step's own end
    voltage where it has one, else the recipe's safety limits); ``current_max_a``: a
    magnitude. ``None`` means no limit of that kind. When the instrument sees a reading
    outside the window it stops sourcing by itself (output off, or zero current).
    """

    voltage_min_v: float | None = None
    voltage_max_v: float | None = None
    current_max_a: float | None = None


@dataclass(frozen=True, slots=True)
class SourceState:
    """What an instrument reports about its source when the host (re)connects.

    ``mode``: "current", "voltage", "open_circuit" or "off"; ``setpoint``: A or V (signed,
    current > 0 charges); ``tripped``: the instrument stopped the step itself (a guard
    limit was reached) since it was programmed; ``charge_ah``: the instrument's own charge
    counter since the last source change, where it has one (else ``None``).
    """

    output_on: bool
    mode: str
    setpoint: float
    reading: Sample | None = None
    tripped: bool = False
    charge_ah: float | None = None


@runtime_checkable
class GuardedSource(Protocol):
    """Capability: the instrument holds a :class:`StepGuard` itself (second line of safety).

    ``guarded_modes`` is the subset of {"cc", "cv", "ocv"} whose guard the instrument
    holds without the host; ``source_current``/``source_voltage``/``open_circuit`` accept
    ``guard=StepGuard(...)`` and program it with the source change.
    """

    guarded_modes: frozenset[str]

    def source_state(self) -> SourceState:
        """Read back output state, mode, set point and a reading (on reconnect)."""


@runtime_checkable
class ReportsClock(Protocol):
    """Capability: the instrument says how fast its clock runs relative to real time.

    ``clock_rate()`` is 1.0 for a real instrument and the speed-up for a simulator (the
    simulators answer it from their identification string or a query); the engine uses it
    for the time axis and stops a run whose timestamps disagree with it by more than 1 %.
    """

    def clock_rate(self) -> float: ...


@runtime_checkable
class SourceMeterChannel(Protocol):
    """A galvanostat/potentiostat channel (SMU, potentiostat or cycler channel)."""

    name: str
    # subset of {"cc", "cv", "ocv", "eis", "temperature", "read_around_switch"}
    capabilities: frozenset[str]

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def identify(self) -> str: ...
    def output_off(self) -> None:
        """Switch the output off (idempotent, must not raise if already off)."""

    def source_current(
        self, current_a: float, voltage_limit_v: float, *, read_around: bool = False
    ) -> tuple[Sample, Sample] | None:
        """Constant current (signed, > 0 charging) with a voltage compliance.

        ``read_around=True`` (only asked of channels whose ``capabilities`` hold
        ``"read_around_switch"``): return ``(before, after)``, readings right before and
        right after the change, taken in one exchange. A :class:`GuardedSource` also
        takes ``guard=StepGuard(...)``."""

    def source_voltage(
        self, voltage_v: float, current_limit_a: float, *, read_around: bool = False
    ) -> tuple[Sample, Sample] | None:
        """Constant voltage with a current compliance (magnitude); ``read_around``,
        ``guard``: as :meth:`source_current`."""

    def open_circuit(self, *, read_around: bool = False) -> tuple[Sample, Sample] | None:
        """Rest: no current flows (output off or zero-current mode); reads still work;
        ``read_around``, ``guard``: as :meth:`source_current`."""

    def read(self) -> Sample: ...
    def errors(self) -> list[str]:
        """Drain the instrument's error queue (empty list = no errors)."""

    def measure_eis(
        self,
        f_start_hz: float,
        f_stop_hz: float,
        points_per_decade: int,
        amplitude: float,
        dc_level: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run a spectrum; returns (frequency_hertz, complex impedance in Ohm, signed)."""


@runtime_checkable
class TemperatureController(Protocol):
    name: str

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def identify(self) -> str: ...
    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None: ...
    def read_temperature(self) -> float: ...


def driver_names() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="cyclerflow.drivers"))


def load_driver(name: str) -> ModuleType:
    """The driver module registered under ``name`` in the ``cyclerflow.drivers`` entry points."""
    eps = {ep.name: ep for ep in entry_points(group="cyclerflow.drivers")}
    if name not in eps:
        raise InputError(f"unknown driver {name!r} (installed: {', '.join(sorted(eps)) or 'none'})")
    return eps[name].load()


class ConnectionLost(InstrumentError):
    """The link to an instrument is gone (closed socket, hang-up, no reply in time).

    Drivers must raise this (or a subclass) for a lost link so the engine retries
    with back-off; any other :class:`InstrumentError` (garbled reply, error queue)
    switches the output off and stops the channel, whatever its message says. The
    engine also retries ``ConnectionError``/``TimeoutError``/``EOFError``/``OSError`` and
    the serial/VISA libraries' I/O errors (see :func:`cyclerflow.acquire.link.is_connection_error`).
    """
