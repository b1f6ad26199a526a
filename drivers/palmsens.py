"""PalmSens potentiostats (EmStat Pico / EmStat4 ...) through MethodSCRIPT over serial.

Resource: a serial device (``/dev/ttyUSB0``, ``COM3``, ``ASRL/dev/ttyUSB0::INSTR``) or a
pyserial URL (``socket://127.0.0.1:5100`` for the simulator or a serial-over-TCP bridge).

Each source command runs one MethodSCRIPT that streams packets until it is replaced:
constant current is ``meas_loop_cp`` (with ``if p > Vmax / breakloop`` and a following
``meas_loop_ca`` at the limit, so a charge behaves like an SMU in compliance), constant
voltage ``meas_loop_ca`` (the current range is the compliance), rest ``meas_loop_ocp``,
EIS ``meas_loop_eis`` around the open-circuit voltage measured just before. Every
packet carries the device timer (``timer_get``, started once on connect), the WE
potential and current; ``read()`` returns the newest packet. ``Z`` aborts a script;
``on_finished: cell_off`` leaves the cell disconnected.
Sign: MethodSCRIPT currents are anodic-positive (oxidation at WE); with the cathode on
WE that charges the cell (``polarity=-1`` for reversed wiring).
"""

from __future__ import annotations

import math
import time

import numpy as np

from cyclerflow.acquire.instrument import Sample, SourceState, StepGuard
from cyclerflow.errors import InputError, InstrumentError

from .commands import Command, CommandSet
from .guards import check_current, cv_compliance
from .methodscript import Reply, packet_block, parse_reply
from .simclock import clock_rate_from
from .transports import Transport, open_transport

I_MAX, V_MAX = 0.03, 10.0
BUSY = 0x0008  # "!0008": a script is running

COMMANDS = CommandSet(
    "palmsens",
    [
        Command("firmware", "t", kind="query", type="str"),
        Command("execute", "e"),
        Command("abort", "Z"),
        Command("end_script", ""),
        Command("declare", "var {value}", type="str"),
        Command("timer_start", "timer_start"),
        Command("channel", "set_pgstat_chan 0"),
        Command(
            "mode",
            "set_pgstat_mode {value}",
            type="int",
            range=(0, 4),
            units="1",
            doc="2 low speed, 3 high speed (a mode number)",
        ),
        Command(
            "bandwidth",
            "set_max_bandwidth {value}",
            type="float",
            range=(1e-3, 2e5),
            units="Hz",
            number_format="si",
        ),
        Command(
            "current_range",
            "set_range ba {value}",
            type="float",
            range=(1e-9, I_MAX),
            units="A",
            number_format="si",
        ),
        Command(
            "set_potential",
            "set_e {value}",
            type="float",
            range=(-V_MAX, V_MAX),
            units="V",
            number_format="si",
        ),
        Command("cell_on", "cell_on"),
        Command("cell_off", "cell_off"),
        Command(
            "cp",
            "meas_loop_cp p c {value} {interval} {run}",
            type="float",
            range=(-I_MAX, I_MAX),
            units="A",
            number_format="si",
        ),
        Command(
            "ca",
            "meas_loop_ca p c {value} {interval} {run}",
            type="float",
            range=(-V_MAX, V_MAX),
            units="V",
            number_format="si",
        ),
        Command("ocp", "meas_loop_ocp p {interval} {run}", number_format="si"),
        Command(
            "eis",
            "meas_loop_eis f r j {value} {f_start} {f_stop} {n} {e_dc}",
            type="float",
            range=(1e-4, 0.25),
            units="V",
            number_format="si",
            doc="AC amplitude, start/stop frequency (Hz), points, DC potential (V)",
        ),
        Command("timer_get", "timer_get t"),
        Command(
            "break_above",
            "if p > {value}",
            type="float",
            range=(-V_MAX, V_MAX),
            units="V",
            number_format="si",
        ),
        Command(
            "break_below",
            "if p < {value}",
            type="float",
            range=(-V_MAX, V_MAX),
            units="V",
            number_format="si",
        ),
        Command(
            "store_setpoint",
            "store_var s {value} {vartype}",
            type="float",
            range=(-V_MAX, V_MAX),
            units="A or V (db: set current, da: set potential)",
            number_format="si",
            doc="the set point, sent in every packet so a reconnecting host can read it back",
        ),
        Command("trip_notice", 'send_string "guard"'),
        Command("breakloop", "breakloop"),
        Command("endif", "endif"),
        Command("endloop", "endloop"),
        Command("on_finished", "on_finished:"),
    ],
)


class PalmSensChannel:
    """SourceMeterChannel over MethodSCRIPT (see module doc)."""

    driver = "palmsens"
    capabilities = frozenset({"cc", "cv", "ocv", "eis"})
    # GuardedSource: constant current breaks its loop at the guard's window (both
    # directions) and the script ends with cell_off; constant voltage is the set point
    # with the current range (<= current_max) as compliance; rest passes no current
    guarded_modes = frozenset({"cc", "cv", "ocv"})

    def __init__(
        self,
        resource: str,
        *,
        name: str | None = None,
        timeout_s: float = 2.0,
        interval_s: float = 1.0,
        run_s: float = 1e6,
        polarity: int = 1,
        baudrate: int = 230400,
        transport: Transport | None = None,
    ):
        if polarity not in (1, -1):
            raise InputError(f"palmsens: polarity must be +1 or -1, got {polarity!r}")
        if not interval_s > 0:
            raise InputError(f"palmsens: interval_s must be > 0, got {interval_s!r}")
        self.resource, self.name = resource, name or self.driver
        self.timeout_s, self.interval_s, self.run_s, self.polarity = (
            timeout_s,
            interval_s,
            run_s,
            polarity,
        )
        self.transport = transport or open_transport(
            resource, name=self.driver, timeout_s=timeout_s, baudrate=baudrate
        )
        self._firmware = ""
        self._running = False
        self._technique = ""
        self._timer_started = False
        self._latest: Sample | None = None
        self._fresh = False
        self._errors: list[str] = []
        self._last_config: tuple | None = None
        self._tripped = False  # the running guard stopped the script ("Tguard" received)
        self._types: dict[str, float] = {}  # variable types and values of the newest packet

    # helpers -------------------------------------------------------------------------
    def _label(self) -> str:
        return f"{self.driver} ({self.resource})"

    def _line(self, name: str, value: object = None, **fields) -> str:
        return COMMANDS.format(name, value, **fields)

    def _parse(self, line: str) -> Reply:
        reply = parse_reply(line, source=self._label(), context=self._technique or "MethodSCRIPT")
        if reply.kind == "packet" and reply.get("ab") is not None:
            t = reply.get("eb")
            v = reply.get("ab")
            i = reply.get("ba") or 0.0
            if t is None:
                raise InstrumentError(
                    f"{self._label()}: {self._technique!r}: packet without time: {line[:60]!r}"
                )
            self._latest = Sample(
                time_s=t, voltage_v=self.polarity * v, current_a=self.polarity * i
            )
            self._types = {val.type: val.value for val in reply.values}
            self._fresh = True
            self._running = True  # packets stream only while a script runs
        elif reply.kind == "error":
            self._errors.append(reply.text)
        elif reply.kind == "end":
            self._running = False
        elif reply.kind == "text" and reply.text == "guard":
            self._tripped = True
        return reply

    def _run_script(self, technique: str, body: list[str], retried: bool = False) -> None:
        """Send ``e``, the script lines and the terminating empty line; wait for ``e``.
        A device busy with a script an earlier host left (``!0008``) gets ``Z`` first."""
        self._stop()
        self._technique = technique
        self.transport.write(self._line("execute"))
        for line in body:
            self.transport.write(line)
        self.transport.write(self._line("end_script"))
        reply = self._parse(self.transport.read_line(technique))
        while reply.kind in ("packet", "loop_end", "text", "loop_start", "end"):
            reply = self._parse(self.transport.read_line(technique))  # an earlier script's
        if reply.kind == "error" and reply.code == BUSY and not retried:
            self._errors.pop()
            self._running = True  # a script left by an earlier host: stop it, send again
            self._stop()
            return self._run_script(technique, body, retried=True)
        if reply.kind == "error":
            try:  # the device ends the failed script with an empty line
                self.transport.read_line(technique, 0.2)
            except InstrumentError:
                pass
            self._errors.pop()
            raise InstrumentError(
                f"{self._label()}: script {technique!r}: instrument reported {reply.text}"
            )
        if reply.kind != "accepted":
            raise InstrumentError(
                f"{self._label()}: script {technique!r}: expected 'e', got {reply.kind}"
            )
        self._running = True
        self._fresh = False
        self._tripped = False

    def _stop(self) -> None:
        """Abort a running script and read until its end."""
        if not self._running:
            return
        self.transport.write(self._line("abort"))
        while self._running:
            self._parse(self.transport.read_line("Z"))

    def _header(self, variables: str) -> list[str]:
        lines = [self._line("declare", v) for v in variables.split()]
        if not self._timer_started:
            lines.append(self._line("timer_start"))
            self._timer_started = True
        return lines + [self._line("channel")]

    def _loop_body(self, names: list[str]) -> list[str]:
        return ["  " + self._line("timer_get"), *packet_block("  ", names)]

    # SourceMeterChannel ------------------------------------------------------------
    def connect(self) -> None:
        """Open the link and ask the firmware version (``t``). Packets before its reply
        come from a script an earlier host left running: it keeps running (read it back
        with :meth:`source_state`); the next source change stops it."""
        self.transport.open()
        self._running = False
        self._timer_started = False
        self._tripped = False
        self._latest, self._fresh, self._types = None, False, {}
        self.transport.write(COMMANDS.format("firmware"))
        for _ in range(10_000):
            line = self.transport.read_line("t")
            if line.startswith("t"):
                self._firmware = line
                return
            self._parse(line)
        raise InstrumentError(f"{self._label()}: 't': no firmware version among the replies")

    def close(self) -> None:
        try:
            self.output_off()
        except InstrumentError:
            pass
        finally:
            self.transport.close()

    def identify(self) -> str:
        return self._firmware

    def clock_rate(self) -> float:
        """1.0 on hardware; a simulator's speed-up from the ``sim-clock=`` field of its
        firmware-version (``t``) reply."""
        return clock_rate_from(self._firmware, source=self._label())

    def output_off(self) -> None:
        self._stop()
        self._last_config = None

    def errors(self) -> list[str]:
        self._drain()
        out, self._errors = self._errors, []
        return out

    def source_current(
        self, current_a: float, voltage_limit_v: float, *, guard: StepGuard | None = None
    ) -> None:
        """Constant current. Unguarded, a charge holds ``voltage_limit_v`` once reached
        (``meas_loop_ca`` after the loop, like an SMU in compliance). With ``guard``, the
        loop breaks when the potential leaves the guard's window in either direction (a
        charge also at ``voltage_limit_v``), the device sends ``Tguard`` and the script
        ends with ``cell_off``: the device stops the current without the host."""
        check_current(self._label(), current_a, guard)
        if guard is not None and current_a != 0:
            self._run_script("meas_loop_cp", self._guarded_cp(current_a, voltage_limit_v, guard))
            self._last_config = ("cc", current_a, voltage_limit_v, guard)
            return
        i = self.polarity * current_a
        vlim = abs(voltage_limit_v)
        rng = max(abs(i), 1e-9)
        fields = dict(interval=self.interval_s, run=self.run_s)
        body = self._header("p c t") + [
            self._line("mode", 2),
            self._line("current_range", rng),
            self._line("cell_on"),
            self._line("cp", i, **fields),
            *self._loop_body(["t", "p", "c"]),
        ]
        if i > 0:  # compliance: hold the limit like an SMU would
            body += [
                "  " + self._line("break_above", vlim),
                "    " + self._line("breakloop"),
                "  " + self._line("endif"),
                self._line("endloop"),
                self._line("ca", vlim * self.polarity, **fields),
                *self._loop_body(["t", "p", "c"]),
            ]
        body += [self._line("endloop"), self._line("on_finished"), "  " + self._line("cell_off")]
        self._run_script("meas_loop_cp", body)
        self._last_config = ("cc", current_a, voltage_limit_v)

    def _guarded_cp(self, current_a: float, voltage_limit_v: float, guard: StepGuard) -> list:
        """The constant-current script with the guard's conditions (device's own sign)."""
        i = self.polarity * current_a
        lo, hi = guard.voltage_min_v, guard.voltage_max_v
        if current_a > 0:
            hi = abs(voltage_limit_v) if hi is None else min(hi, abs(voltage_limit_v))
        if self.polarity == -1:
            lo, hi = (None if hi is None else -hi), (None if lo is None else -lo)
        fields = dict(interval=self.interval_s, run=self.run_s)
        body = self._header("p c t s") + [
            self._line("mode", 2),
            self._line("current_range", max(abs(i), 1e-9)),
            self._line("store_setpoint", i, vartype="db"),
            self._line("cell_on"),
            self._line("cp", i, **fields),
            *self._loop_body(["t", "p", "c", "s"]),
        ]
        for name, limit in (("break_above", hi), ("break_below", lo)):
            if limit is not None:
                body += [
                    "  " + self._line(name, limit),
                    "    " + self._line("trip_notice"),
                    "    " + self._line("breakloop"),
                    "  " + self._line("endif"),
                ]
        return body + [
            self._line("endloop"),
            self._line("on_finished"),
            "  " + self._line("cell_off"),
        ]

    def source_voltage(
        self, voltage_v: float, current_limit_a: float, *, guard: StepGuard | None = None
    ) -> None:
        """Constant voltage; the current range is the compliance (with ``guard``: at most its
        current_max, and a set point outside its window is refused)."""
        current_limit_a = cv_compliance(self._label(), voltage_v, current_limit_a, guard)
        v = self.polarity * voltage_v
        fields = dict(interval=self.interval_s, run=self.run_s)
        # the set point goes into every packet (``da``): a host that reconnects reads back
        # a voltage hold
        body = self._header("p c t s") + [
            self._line("mode", 2),
            self._line("current_range", abs(current_limit_a)),
            self._line("store_setpoint", v, vartype="da"),
            self._line("set_potential", v),
            self._line("cell_on"),
            self._line("ca", v, **fields),
            *self._loop_body(["t", "p", "c", "s"]),
            self._line("endloop"),
            self._line("on_finished"),
            "  " + self._line("cell_off"),
        ]
        self._run_script("meas_loop_ca", body)
        self._last_config = ("cv", voltage_v, current_limit_a)

    def open_circuit(self, *, guard: StepGuard | None = None) -> None:
        """Rest at open circuit (``meas_loop_ocp``): no current, nothing to guard."""
        body = self._header("p t") + [
            self._line("mode", 2),
            self._line("ocp", interval=self.interval_s, run=self.run_s),
            *self._loop_body(["t", "p"]),
            self._line("endloop"),
        ]
        self._run_script("meas_loop_ocp", body)
        self._last_config = ("ocv",)

    def _drain(self) -> None:
        for line in self.transport.read_available():
            self._parse(line)

    def read(self) -> Sample:
        """The newest packet; waits for the first one after a new source command."""
        self._drain()
        if (
            not self._running
            and self._last_config is not None
            and not self._fresh
            and not self._tripped
        ):
            self._restart()
        while not self._fresh:
            if not self._running:
                if self._latest is None:
                    raise InstrumentError(f"{self._label()}: no measurement running")
                break
            self._parse(self.transport.read_line(self._technique, self.timeout_s + self.interval_s))
        if self._errors:
            errs, self._errors = self._errors, []
            raise InstrumentError(
                f"{self._label()}: {self._technique!r}: instrument reported {'; '.join(errs)}"
            )
        self._fresh = False
        assert self._latest is not None
        if not self._running and self._last_config is not None and not self._tripped:
            self._restart()  # the loop ran out (run_s): keep measuring in the same mode
        return self._latest  # after a trip: the packet that tripped, until the next source change

    def source_state(self) -> SourceState:
        """What the device does now: a running script streams packets (output on; the
        packet's set-point variable tells the mode: ``db`` set current, ``da`` set
        potential, none = open circuit), no script = cell off. Waits up to one packet
        interval for a packet. ``tripped``: this host saw the guard's ``Tguard``."""
        self._drain()
        rate = self.clock_rate()
        if not self._fresh and rate > 0:
            deadline = time.monotonic() + 1.5 * self.interval_s / rate + 0.05
            while self._latest is None and time.monotonic() < deadline:
                time.sleep(0.01)
                self._drain()
        on = self._running
        if not on:
            mode, setpoint = "off", 0.0
        elif "db" in self._types:
            mode, setpoint = "current", self.polarity * self._types["db"]
        elif "da" in self._types:
            mode, setpoint = "voltage", self.polarity * self._types["da"]
        elif "ba" in self._types:
            mode, setpoint = "unknown", 0.0  # a script without a set-point variable
        else:
            mode, setpoint = "open_circuit", 0.0
        return SourceState(
            output_on=on, mode=mode, setpoint=setpoint, reading=self._latest, tripped=self._tripped
        )

    def _restart(self) -> None:
        cfg = self._last_config
        if cfg[0] == "cc" and len(cfg) > 3:
            self.source_current(cfg[1], cfg[2], guard=cfg[3])
        elif cfg[0] == "cc":
            self.source_current(cfg[1], cfg[2])
        elif cfg[0] == "cv":
            self.source_voltage(cfg[1], cfg[2])
        else:
            self.open_circuit()

    def measure_eis(self, f_start_hz, f_stop_hz, points_per_decade, amplitude, dc_level=0.0):
        """Potentiostatic EIS at (open-circuit voltage + ``dc_level``) V; returns (f, Z).

        The open-circuit voltage is measured by a short ``meas_loop_ocp`` just before.
        Afterwards the channel rests at open circuit (OCP streaming).
        """
        if not (f_start_hz > 0 and f_stop_hz > 0) or points_per_decade < 1:
            raise InputError(
                f"{self.driver}: EIS needs positive frequencies and points_per_decade >= 1"
            )
        ocv = self._measure_ocv()
        decades = abs(math.log10(f_start_hz / f_stop_hz))
        n = max(int(round(points_per_decade * decades)) + 1, 2)
        body = self._header("f r j") + [
            self._line("mode", 3),
            self._line("bandwidth", 200e3),
            self._line("current_range", 1e-3),
            self._line("set_potential", ocv + self.polarity * dc_level),
            self._line("cell_on"),
            self._line(
                "eis",
                amplitude,
                f_start=f_start_hz,
                f_stop=f_stop_hz,
                n=n,
                e_dc=ocv + self.polarity * dc_level,
            ),
            *packet_block("  ", ["f", "r", "j"]),
            self._line("endloop"),
            self._line("on_finished"),
            "  " + self._line("cell_off"),
        ]
        self._run_script("meas_loop_eis", body)
        freqs, zs = [], []
        f_min = min(f_start_hz, f_stop_hz)
        while self._running:
            reply = self._parse(
                self.transport.read_line("meas_loop_eis", self.timeout_s + 10.0 / f_min)
            )
            if reply.kind == "packet":
                f, re_, im = reply.get("dc"), reply.get("cc"), reply.get("cd")
                if f is None or re_ is None or im is None:
                    raise InstrumentError(
                        f"{self._label()}: 'meas_loop_eis': packet without f, Z', Z''"
                    )
                freqs.append(f)
                zs.append(complex(re_, im))
        if self._errors:
            errs, self._errors = self._errors, []
            raise InstrumentError(
                f"{self._label()}: 'meas_loop_eis': instrument reported {'; '.join(errs)}"
            )
        self.open_circuit()
        return np.asarray(freqs, dtype="f8"), np.asarray(zs, dtype="c16")

    def _measure_ocv(self) -> float:
        body = self._header("p t") + [
            self._line("mode", 2),
            self._line("ocp", interval=0.1, run=0.1),
            *self._loop_body(["t", "p"]),
            self._line("endloop"),
        ]
        self._run_script("meas_loop_ocp", body)
        while self._running:
            self._parse(self.transport.read_line("meas_loop_ocp", self.timeout_s + 1.0))
        if self._latest is None or not self._fresh:
            raise InstrumentError(
                f"{self._label()}: 'meas_loop_ocp': no potential reading before EIS"
            )
        self._fresh = False
        return self.polarity * self._latest.voltage_v


def open_channel(resource: str, **options) -> PalmSensChannel:
    """A PalmSens channel on ``resource`` (call ``connect()`` before use).

    Options: ``name``, ``timeout_s`` (2), ``interval_s`` (packet interval, 1 s, simulated
    seconds on a simulator), ``run_s`` (length of each streaming loop, 1e6 s; the
    driver restarts it when it runs out), ``polarity``, ``baudrate`` (230400).
    """
    return PalmSensChannel(resource, **options)


def simulator_protocol():
    from .sim.palmsens import PalmSensSim

    return PalmSensSim


def serve_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 5100,
    cell=None,
    speedup: float = 1.0,
    faults=(),
    seed: int = 0,
):
    """Serve a simulated MethodSCRIPT potentiostat on TCP (blocking); see docs/simulators.md."""
    from .sim import serve

    serve("palmsens", host=host, port=port, cell=cell, speedup=speedup, faults=faults, seed=seed)
