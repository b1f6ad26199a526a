"""Lake Shore 335 temperature controller (and 335-style controllers) over serial or TCP.

Resource: the 335's USB port appears as a serial device (``/dev/ttyUSB0``, 57600 baud,
7 data bits, odd parity, 1 stop bit, CR LF); ``socket://host:port`` for a serial
bridge, the simulator, or TCP-capable siblings. Output 1 controls input A by default.

Commands used: ``*IDN?``, ``*CLS``, ``*ESR?`` (the 335 has no error queue; the standard
event status register bits 32/16/4 = command/execution/query error are reported as
errors), ``SETP``, ``SETP?``, ``RAMP``, ``RANGE`` (heater range), ``RAMPST?``, ``KRDG?``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cyclerflow.errors import InputError, InstrumentError

from .commands import Command, CommandSet
from .simclock import clock_rate_from
from .transports import Transport, open_transport

ESR_BITS = {32: "command error", 16: "execution error (value out of range)", 4: "query error"}

COMMANDS = CommandSet(
    "lakeshore335",
    [
        Command("identify", "*IDN?", kind="query", type="str"),
        Command("clear_status", "*CLS"),
        Command("event_status", "*ESR?", kind="query", type="int", units="1", doc="bit mask"),
        Command("setpoint", "SETP {output},{value}", type="float", range=(0.0, 1500.0), units="K"),
        Command("setpoint_q", "SETP? {output}", kind="query", type="float", units="K"),
        Command(
            "ramp", "RAMP {output},{on},{value}", type="float", range=(0.0, 100.0), units="K/min"
        ),
        Command(
            "ramp_status", "RAMPST? {output}", kind="query", type="int", units="1", doc="1 ramping"
        ),
        Command(
            "heater_range",
            "RANGE {output},{value}",
            type="int",
            range=(0, 3),
            units="1",
            doc="0 off, 1 low, 2 medium, 3 high",
        ),
        Command("temperature", "KRDG? {input}", kind="query", type="float", units="K"),
    ],
)


class LakeShore335:
    """TemperatureController for a Lake Shore 335 (see module doc)."""

    driver = "lakeshore335"

    def __init__(
        self,
        resource: str,
        *,
        name: str | None = None,
        output: int = 1,
        input: str = "A",
        heater_range: int = 3,
        timeout_s: float = 2.0,
        transport: Transport | None = None,
        **transport_options,
    ):
        if output not in (1, 2):
            raise InputError(f"lakeshore335: output must be 1 or 2, got {output!r}")
        if input.upper() not in ("A", "B"):
            raise InputError(f"lakeshore335: input must be A or B, got {input!r}")
        self.resource, self.name = resource, name or self.driver
        self.output, self.input, self.heater_range = output, input.upper(), heater_range
        opts = dict(
            baudrate=57600,
            bytesize=7,
            parity="O",
            stopbits=1,
            write_termination="\r\n",
            read_termination="\n",
        )
        opts.update(transport_options)
        self.transport = transport or open_transport(
            resource, name=self.driver, timeout_s=timeout_s, **opts
        )
        self._idn = ""

    def _label(self) -> str:
        return f"{self.driver} ({self.resource})"

    def connect(self) -> None:
        self.transport.open()
        self._idn = COMMANDS.query(self.transport, "identify")
        if "335" not in self._idn:
            self.transport.close()
            raise InstrumentError(
                f"{self._label()}: '*IDN?' answered {self._idn!r}, which is not a Lake Shore 335"
            )
        COMMANDS.write(self.transport, "clear_status")

    def close(self) -> None:
        self.transport.close()

    def identify(self) -> str:
        return self._idn

    def clock_rate(self) -> float:
        """1.0 on hardware; a simulator's speed-up from the ``sim-clock=`` field of ``*IDN?``."""
        return clock_rate_from(self._idn, source=self._label())

    def errors(self) -> list[str]:
        """Decode and clear the standard event status register."""
        esr = COMMANDS.query(self.transport, "event_status")
        return [f"*ESR? bit {bit}: {text}" for bit, text in ESR_BITS.items() if esr & bit]

    def check_errors(self, context: str) -> None:
        errs = self.errors()
        if errs:
            raise InstrumentError(
                f"{self._label()}: after {context}: instrument reported {'; '.join(errs)}"
            )

    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None:
        """Set point (K), ramping at ``ramp_k_per_min`` if given, heater on."""
        out = self.output
        sent = []
        if ramp_k_per_min is None:
            sent.append(COMMANDS.write(self.transport, "ramp", 0.0, output=out, on=0))
        else:
            sent.append(COMMANDS.write(self.transport, "ramp", ramp_k_per_min, output=out, on=1))
        sent.append(COMMANDS.write(self.transport, "setpoint", kelvin, output=out))
        sent.append(COMMANDS.write(self.transport, "heater_range", self.heater_range, output=out))
        self.check_errors(" / ".join(repr(s) for s in sent))

    def setpoint(self) -> float:
        return COMMANDS.query(self.transport, "setpoint_q", output=self.output)

    def ramping(self) -> bool:
        return COMMANDS.query(self.transport, "ramp_status", output=self.output) == 1

    def read_temperature(self) -> float:
        """Sample temperature (K) of the control input."""
        return COMMANDS.query(self.transport, "temperature", input=self.input)

    def wait_until_stable(
        self,
        tolerance_k: float = 0.1,
        window_s: float = 60.0,
        timeout_s: float = 3600.0,
        poll_s: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> float:
        """Wait until the ramp is done and every reading stays within ``tolerance_k`` of
        the set point for ``window_s`` (wall seconds of ``clock``); returns the temperature.
        Raises InstrumentError after ``timeout_s``."""
        target = self.setpoint()
        start = clock()
        stable_since: float | None = None
        while True:
            now = clock()
            t = self.read_temperature()
            if abs(t - target) <= tolerance_k and not self.ramping():
                stable_since = now if stable_since is None else stable_since
                if now - stable_since >= window_s:
                    return t
            else:
                stable_since = None
            if now - start > timeout_s:
                raise InstrumentError(
                    f"{self._label()}: temperature {t:.3f} K not stable within ±{tolerance_k:g} K of "
                    f"{target:.3f} K after {timeout_s:g} s"
                )
            sleep(poll_s)


def open_channel(resource: str, **options) -> LakeShore335:
    """A Lake Shore 335 on ``resource`` (call ``connect()`` before use).

    Options: ``name``, ``output`` (1), ``input`` ("A"), ``heater_range`` (0-3, default 3),
    ``timeout_s`` (2) and serial settings (``baudrate`` 57600, ``bytesize`` 7, ``parity`` "O").
    """
    return LakeShore335(resource, **options)


def simulator_protocol():
    from .sim.lakeshore335 import LakeShore335Sim

    return LakeShore335Sim


def serve_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 7777,
    cell=None,
    speedup: float = 1.0,
    faults=(),
    seed: int = 0,
):
    """Serve a simulated Lake Shore 335 on TCP (blocking); see docs/simulators.md."""
    from .sim import serve

    serve(
        "lakeshore335", host=host, port=port, cell=cell, speedup=speedup, faults=faults, seed=seed
    )
