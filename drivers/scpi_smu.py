"""What SCPI source-measure units (Keithley 2450, Keysight B2900) share.

The command tables stay per instrument (their SCPI differs: ``VLIM`` vs ``PROT``,
``:READ?`` buffer elements vs ``:MEAS?`` with ``FORM:ELEM``, ``:SOUR:FUNC`` vs
``:SOUR:FUNC:MODE``, error reply ``0,"No error"`` vs ``+0,"No error"``). This base
holds the connection, the error queue, sign conversion and the channel protocol of
:class:`cyclerflow.acquire.instrument.SourceMeterChannel`; a subclass supplies the
command table and the few sequences that differ.
"""

from __future__ import annotations

import math
import time

import numpy as np

from cyclerflow.acquire.instrument import Sample, SourceState, StepGuard
from cyclerflow.errors import InputError, InstrumentError

from .commands import CommandSet
from .guards import check_current, cv_compliance
from .simclock import clock_rate_from
from .transports import Transport, open_transport


class ScpiSmuChannel:
    """A SourceMeterChannel over SCPI. ``polarity=-1`` if the cell is wired reversed."""

    commands: CommandSet
    driver = "scpi"
    model_keyword = ""  # must appear in *IDN?
    # read_around_switch: a source change can be sent in one program message between two
    # readings (see :meth:`_configure`)
    capabilities = frozenset({"cc", "cv", "ocv", "read_around_switch"})
    # GuardedSource: constant current runs under an instrument program that turns the
    # output off at the guard's voltage limits; constant voltage is held by the source
    # itself (set point, current compliance <= the guard's current_max); rest sources 0 A
    guarded_modes = frozenset({"cc", "cv", "ocv"})
    max_errors = 32

    def __init__(
        self,
        resource: str,
        *,
        name: str | None = None,
        timeout_s: float = 2.0,
        polarity: int = 1,
        ocv_voltage_limit_v: float = 20.0,
        guard_interval_s: float = 1.0,
        transport: Transport | None = None,
        **transport_options,
    ):
        if polarity not in (1, -1):
            raise InputError(f"{self.driver}: polarity must be +1 or -1, got {polarity!r}")
        self.resource = resource
        self.name = name or self.driver
        self.polarity = polarity
        self.ocv_voltage_limit_v = ocv_voltage_limit_v
        if not guard_interval_s > 0:
            raise InputError(
                f"{self.driver}: guard_interval_s must be > 0, got {guard_interval_s!r}"
            )
        self.guard_interval_s = guard_interval_s
        self.transport = transport or open_transport(
            resource, name=self.driver, timeout_s=timeout_s, **transport_options
        )
        self._idn = ""
        self._mode: str | None = None  # "cc", "cv" (source function configured) or None
        # the guard program: True running (or ran) since our last source change, False
        # not started, None unknown (after connect: an earlier host may have left one)
        self._program: bool | None = None
        self._last_time = math.nan

    # helpers ------------------------------------------------------------------------
    def _w(self, name: str, value: object = None) -> str:
        return self.commands.write(self.transport, name, value)

    def _q(self, name: str, value: object = None):
        return self.commands.query(self.transport, name, value)

    def _label(self) -> str:
        return f"{self.driver} ({self.resource})"

    def check_errors(self, context: str) -> None:
        """Raise :class:`InstrumentError` if the instrument's error queue is not empty."""
        errs = self.errors()
        if errs:
            raise InstrumentError(
                f"{self._label()}: after {context}: instrument reported {'; '.join(errs)}"
            )

    # SourceMeterChannel ---------------------------------------------------------------------
    def connect(self) -> None:
        self.transport.open()
        self._idn = self._q("identify")
        if self.model_keyword and self.model_keyword not in self._idn:
            self.transport.close()
            raise InstrumentError(
                f"{self._label()}: '*IDN?' answered {self._idn!r}, which is not a {self.model_keyword}"
            )
        running = self.program_running()
        for name, value in self.setup_sequence(keep_clock=bool(running)):
            self._w(name, value)
        self._mode = None
        self._program = running  # None: unknown, the first source change stops any
        self.check_errors("connect")

    def program_running(self) -> bool | None:
        """Whether a guard program left by an earlier host still runs (asked at connect;
        None when the instrument cannot tell)."""
        return None

    def setup_sequence(self, keep_clock: bool = False) -> list[tuple[str, object]]:
        return [("clear_status", None)]

    def close(self) -> None:
        try:
            self.output_off()
        except InstrumentError:
            pass
        finally:
            self.transport.close()

    def identify(self) -> str:
        if not self._idn:
            self._idn = self._q("identify")
        return self._idn

    def clock_rate(self) -> float:
        """How fast the instrument's clock runs relative to real time (1.0 on hardware;
        a simulator's speed-up from the ``sim-clock=`` field of its ``*IDN?`` reply)."""
        return clock_rate_from(self.identify(), source=self._label())

    def output_off(self) -> None:
        """Output off, confirmed: the same message reads the output state back, so the
        instrument has acted on it when this returns (a write alone may still sit in its
        input buffer when the host goes on, or goes away)."""
        message = f"{self.commands.format('output_off')};{self.commands.format('output_q')}"
        reply = self.transport.query(message)
        if self.commands.parse("output_q", reply, message, getattr(self.transport, "resource", "")):
            raise InstrumentError(f"{self._label()}: {message!r}: the output is still on")
        # the next source change programs the whole source and switches the output on
        # again, even in the function the instrument was left in (a read-back on
        # reconnect sets it)
        self._mode = None

    def errors(self) -> list[str]:
        out = []
        for _ in range(self.max_errors):
            code, message = self._q("next_error")
            if code == 0:
                break
            out.append(f'{code},"{message}"')
        return out

    def source_current(
        self,
        current_a: float,
        voltage_limit_v: float,
        *,
        read_around: bool = False,
        guard: StepGuard | None = None,
    ) -> tuple[Sample, Sample] | None:
        """Constant current; with ``guard`` the instrument turns its output off by itself at
        the guard's voltage limits (tested every ``guard_interval_s``)."""
        check_current(self._label(), current_a, guard)
        program = self._guard_program(guard) if current_a != 0 else []
        return self._configure(
            "cc",
            self.polarity * current_a,
            abs(voltage_limit_v),
            read_around=read_around,
            program=program,
        )

    def source_voltage(
        self,
        voltage_v: float,
        current_limit_a: float,
        *,
        read_around: bool = False,
        guard: StepGuard | None = None,
    ) -> tuple[Sample, Sample] | None:
        """Constant voltage; with ``guard`` the current compliance is at most its current_max
        and a set point outside its voltage window is refused (the source holds the rest)."""
        limit = cv_compliance(self._label(), voltage_v, abs(current_limit_a), guard)
        return self._configure("cv", self.polarity * voltage_v, limit, read_around=read_around)

    def open_circuit(
        self, *, read_around: bool = False, guard: StepGuard | None = None
    ) -> tuple[Sample, Sample] | None:
        """Source 0 A (a current source at zero is high-impedance): reads still work. No
        current flows, so there is nothing for the instrument to guard."""
        return self._configure("cc", 0.0, self.ocv_voltage_limit_v, read_around=read_around)

    def read(self) -> Sample:
        """A reading; while a guard program runs, the program's newest one (the instrument
        measures by itself then), waiting up to one guard interval for a new one."""
        if not self._program:
            return self._sample(self._q("read"), self._mode)
        sample = self._sample(self._q("fetch"), "cc")
        rate = self.clock_rate()
        if rate > 0 and sample.time_s == self._last_time:
            deadline = time.monotonic() + 1.5 * self.guard_interval_s / rate + 0.05
            while sample.time_s == self._last_time and time.monotonic() < deadline:
                time.sleep(min(0.1 * self.guard_interval_s / rate, 0.05))
                sample = self._sample(self._q("fetch"), "cc")
        self._last_time = sample.time_s
        return sample

    def source_state(self) -> SourceState:
        """Output on/off, mode, set point, a reading and whether the guard tripped, read
        back from the instrument (used on reconnect; the driver's own memory is not used)."""
        on = self._q("output_q")
        function = self._q("source_function_q").strip().upper()
        current = function.startswith("CURR")
        level = self.polarity * self._q("source_current_q" if current else "source_voltage_q")
        self._mode = "cc" if current else "cv"
        tripped, running = self.program_status()
        # after a trip reads return the reading that tripped, and the next source change
        # clears the program's settings (B2900: auto output-off) as after a running one
        self._program = running or tripped
        if running or tripped:
            reading = self._sample(self._q("fetch"), self._mode)
        else:
            reading = self._sample(self._q("read"), self._mode)
        if not on:
            mode = "off"
        elif current:
            mode = "current" if level != 0 else "open_circuit"
        else:
            mode = "voltage"
        return SourceState(
            output_on=bool(on), mode=mode, setpoint=level, reading=reading, tripped=tripped
        )

    def program_status(self) -> tuple[bool, bool]:
        """(tripped, still running) of the guard program, as the instrument reports them."""
        raise NotImplementedError

    def _guard_program(self, guard: StepGuard | None) -> list[tuple[str, object, dict]]:
        """Commands that make the instrument hold ``guard`` during constant current."""
        if guard is None or (guard.voltage_min_v is None and guard.voltage_max_v is None):
            return []
        return self.guard_sequence(*self.instrument_window(guard))

    def guard_sequence(self, v_min: float | None, v_max: float | None) -> list:
        """The instrument's program for a voltage window in the instrument's own sign."""
        raise NotImplementedError

    def instrument_window(self, guard: StepGuard) -> tuple[float | None, float | None]:
        """The guard's cell-voltage window as the instrument measures it (polarity)."""
        lo, hi = guard.voltage_min_v, guard.voltage_max_v
        if self.polarity == 1:
            return lo, hi
        return (None if hi is None else -hi), (None if lo is None else -lo)

    def _sample(self, values: list[float], mode: str | None) -> Sample:
        voltage, current, time_s = self._reading(values, mode)
        return Sample(
            time_s=time_s, voltage_v=self.polarity * voltage, current_a=self.polarity * current
        )

    def measure_eis(self, f_start_hz, f_stop_hz, points_per_decade, amplitude, dc_level=0.0):
        raise InstrumentError(f"{self._label()}: EIS is not available on a DC source-measure unit")

    # per instrument ----------------------------------------------------------------------
    def _configure(
        self,
        mode: str,
        level: float,
        limit: float,
        *,
        read_around: bool = False,
        program: list | None = None,
    ) -> tuple[Sample, Sample] | None:
        """Send the source sequence for ``mode``. With ``read_around``, the sequence goes
        in one program message between two reading queries (``READ?;<source
        commands>;READ?``): the instrument takes the last reading before the change and
        the first after it back to back, however long the host takes between its own
        reads. Returns ``(before, after)`` then, else None. A running guard program is
        aborted first (``abort``); ``program`` (a guard program) is started last."""
        program = program or []
        stop = self._program is not False
        body = self.configure_sequence(mode, level, limit, self._mode != mode, after_abort=stop)
        # format (and range-check) the whole sequence before anything is sent
        pre = [self.commands.format(n, v) for n, v in (self.abort_sequence() if stop else [])]
        sent = [self.commands.format(n, v) for n, v in body]
        post = [self.commands.format(n, v, **f) for n, v, f in program]
        old_mode = self._mode
        if not read_around:
            for text in pre + sent + post:
                self.transport.write(text)
            self._mode, self._program, self._last_time = mode, bool(program), math.nan
            self.check_errors(" / ".join(repr(s) for s in pre + sent + post))
            return None
        read = self.commands.format("read")
        message = ";".join([*pre, read, *sent, read, *post])
        reply = self.transport.query(message)
        self._mode, self._program, self._last_time = mode, bool(program), math.nan
        parts = reply.split(";")
        if len(parts) != 2:
            raise InstrumentError(
                f"{self._label()}: {message!r}: garbled reply {reply[:80]!r} "
                "(expected two readings separated by ';')"
            )
        source = getattr(self.transport, "resource", "")
        before = self._sample(self.commands.parse("read", parts[0], message, source), old_mode)
        after = self._sample(self.commands.parse("read", parts[1], message, source), mode)
        self.check_errors(repr(message))
        return before, after

    def configure_sequence(
        self, mode: str, level: float, limit: float, new_mode: bool, after_abort: bool = False
    ):
        raise NotImplementedError

    def abort_sequence(self) -> list[tuple[str, object]]:
        """Stop a guard program (harmless when none runs)."""
        return [("abort", None)]

    def _reading(self, values: list[float], mode: str | None) -> tuple[float, float, float]:
        """(voltage V, current A, instrument time s) from a reading's values in ``mode``."""
        raise NotImplementedError


def as_array(x) -> np.ndarray:
    return np.asarray(x, dtype="f8")
