"""Simulated PalmSens potentiostat speaking MethodSCRIPT (EmStat-style) over the cell model.

Supported script subset: ``var``, ``store_var VAR VALUE TYPE``, ``set_pgstat_chan``,
``set_pgstat_mode``, ``set_max_bandwidth``, ``set_range``, ``set_autoranging``,
``set_range_minmax``, ``set_e``, ``set_i``, ``cell_on``, ``cell_off``, ``timer_start``,
``timer_get``, ``meas_loop_cp|ca|ocp|eis ... endloop`` whose body holds ``timer_get``,
``pck_start/pck_add/pck_end``, ``if VAR OP VALUE`` / ``send_string "TEXT"`` /
``breakloop`` / ``endif``, and ``on_finished:``. ``Z`` aborts a running script. ``t``
returns the firmware version (also while a script runs).

The script runs on the device (kept on the server), not on the connection: a host that
disappears (closed serial port, killed process) leaves it running, with its conditions,
as a real device does; packets sent while no host is connected are lost. A script sent
while another runs is refused with ``!0008`` (busy) and its lines up to the empty line
are discarded.
Sign: positive current is anodic (oxidation at WE); with the cathode on WE that
charges the cell, as in the model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..methodscript import encode_value, parse_si_text
from ..simclock import with_clock
from .server import Protocol

COMPLIANCE_V = 10.0
TECHNIQUE_CODES = {
    "meas_loop_ca": 0x0007,
    "meas_loop_cp": 0x0008,
    "meas_loop_ocp": 0x000B,
    "meas_loop_eis": 0x000D,
}
LOOP_ARGS = {"meas_loop_ca": 5, "meas_loop_cp": 5, "meas_loop_ocp": 3, "meas_loop_eis": 8}
CONFIG = {
    "set_pgstat_chan",
    "set_pgstat_mode",
    "set_max_bandwidth",
    "set_range",
    "set_autoranging",
    "set_range_minmax",
    "set_e",
    "set_i",
    "cell_on",
    "cell_off",
    "timer_start",
    "var",
    "store_var",
}
LOOP_BODY = (
    "pck_start",
    "pck_add",
    "pck_end",
    "timer_get",
    "if",
    "breakloop",
    "endif",
    "send_string",
)
OPS = {">": np.greater, "<": np.less, ">=": np.greater_equal, "<=": np.less_equal}


class ScriptError(Exception):
    def __init__(self, code: int, line: int, col: int = 1):
        super().__init__(code)
        self.code, self.line, self.col = code, line, col


@dataclass
class Loop:
    command: str
    args: list[str]
    body: list[list[str]] = field(default_factory=list)


def _loop_statement(tokens: list[str], raw: str, n: int) -> list[str]:
    """A statement inside a measurement loop (ScriptError when not allowed there)."""
    cmd = tokens[0]
    if cmd not in LOOP_BODY:
        raise ScriptError(0x0004, n, raw.find(cmd) + 1)
    if cmd == "if" and (len(tokens) != 4 or tokens[2] not in OPS):
        raise ScriptError(0x000C, n, raw.find(cmd) + 1)
    return tokens


def _loop_start(tokens: list[str], raw: str, n: int) -> Loop:
    cmd = tokens[0]
    if len(tokens) - 1 != LOOP_ARGS[cmd]:
        raise ScriptError(0x0005, n, len(raw))
    try:
        for a in tokens[1:]:
            if not a.isalpha():
                parse_si_text(a)
    except ValueError:
        raise ScriptError(0x0005, n, 1) from None
    return Loop(cmd, tokens[1:])


def _statement(tokens: list[str], raw: str, n: int) -> list[str]:
    cmd = tokens[0]
    if cmd not in CONFIG:
        raise ScriptError(0x0004, n, raw.find(cmd) + 1)
    if cmd == "store_var" and (len(tokens) != 4 or len(tokens[3]) != 2):
        raise ScriptError(0x0005, n, 1)
    return tokens


def compile_script(lines: list[str]) -> tuple[list, list]:
    """(main statements, on_finished statements); statements are token lists or Loops."""
    main: list = []
    finished: list = []
    target = main
    loop: Loop | None = None
    for n, raw in enumerate(lines, start=1):
        tokens = raw.split()
        if not tokens:
            continue
        cmd = tokens[0]
        if cmd == "on_finished:":
            target = finished
        elif loop is not None and cmd == "endloop":
            target.append(loop)
            loop = None
        elif loop is not None:
            loop.body.append(_loop_statement(tokens, raw, n))
        elif cmd in LOOP_ARGS:
            loop = _loop_start(tokens, raw, n)
        else:
            target.append(_statement(tokens, raw, n))
    if loop is not None:
        raise ScriptError(0x000C, len(lines), 1)
    return main, finished


class PalmSensDevice:
    """The device: runs one script at a time in simulated time (the server's program)."""

    def __init__(self, server):
        self.server = server
        self.model = server.model
        # public (docs/simulators.md): server.state["palmsens"]["timer_t0"] on the model clock
        self.public = server.state.setdefault("palmsens", {"timer_t0": 0.0})
        self.running = False
        self.queue: list = []
        self.finished: list = []
        self.loop: Loop | None = None
        self.loop_next = 0.0
        self.loop_end = 0.0
        self.loop_dt = 0.0
        self.eis_freqs: np.ndarray | None = None
        self.eis_i = 0
        self.eis_wall_next = 0.0
        self.vars: dict[str, tuple[str, float]] = {}
        self.ba_range = 1e-3
        self.outbox: list[str] = []
        self.hosts = 0  # connected hosts; output with none is lost

    def emit(self, lines: list[str]) -> None:
        if self.hosts > 0:
            self.outbox.extend(lines)

    # script start/stop (called with the server lock held, model at now) -------------
    def start(self, main: list, finished: list) -> None:
        self.queue, self.finished = list(main), finished
        self.running = True
        self.emit(["e"])
        self._run()

    def abort(self) -> None:
        if self.running:
            self._finish(aborted=True)

    def _exec(self, tokens: list[str]) -> None:
        cmd = tokens[0]
        if cmd == "set_range" and len(tokens) == 3 and tokens[1] == "ba":
            self.ba_range = abs(parse_si_text(tokens[2]))
        elif cmd == "cell_off":
            self.model.set_open_circuit()
        elif cmd == "timer_start":
            self.public["timer_t0"] = self.model.time_s
        elif cmd == "store_var":
            self.vars[tokens[1]] = (tokens[3], parse_si_text(tokens[2]))

    def _run(self) -> None:
        """Execute statements until a loop starts or the script ends."""
        while self.queue:
            st = self.queue.pop(0)
            if isinstance(st, Loop):
                self.emit([f"M{TECHNIQUE_CODES[st.command]:04X}"])
                self._begin_loop(st)
                return
            self._exec(st)
        self._finish()

    def _begin_loop(self, loop: Loop) -> None:
        self.loop = loop
        a = loop.args
        t = self.model.time_s
        if loop.command == "meas_loop_cp":
            self.model.set_current(parse_si_text(a[2]), COMPLIANCE_V)
            self.loop_dt, run = parse_si_text(a[3]), parse_si_text(a[4])
        elif loop.command == "meas_loop_ca":
            self.model.set_voltage(parse_si_text(a[2]), self.ba_range)
            self.loop_dt, run = parse_si_text(a[3]), parse_si_text(a[4])
        elif loop.command == "meas_loop_ocp":
            self.model.set_open_circuit()
            self.loop_dt, run = parse_si_text(a[1]), parse_si_text(a[2])
        else:  # eis around the present state: no net charge
            self.model.set_open_circuit()
            f0, f1, n = parse_si_text(a[4]), parse_si_text(a[5]), int(parse_si_text(a[6]))
            self.eis_freqs = np.geomspace(f0, f1, max(n, 1))
            self.eis_i = 0
            self.eis_wall_next = time.monotonic()
            self.loop_dt, run = 0.0, math.inf
        self.loop_next = t + self.loop_dt
        self.loop_end = t + run

    # the program: loop iterations up to simulated time ``now`` ------------------------
    def __call__(self, now: float) -> None:
        while self.running and self.loop is not None and self.loop.command != "meas_loop_eis":
            if self.loop_next > now + 1e-9 or self.loop_next > self.loop_end + 1e-9:
                break
            t = self.loop_next
            self.loop_next += self.loop_dt
            self.model.advance_to(t)
            v, i = self.model.measure()
            a = self.loop.args
            values = {a[0]: ("ab", v)}
            if self.loop.command != "meas_loop_ocp":
                values[a[1]] = ("ba", i)
            if self._body(values, t):
                self._end_loop()
        if self.running and self.loop is not None and self.loop.command != "meas_loop_eis":
            if self.loop_next > self.loop_end + 1e-9 and self.loop_end <= now + 1e-9:
                self.model.advance_to(self.loop_end)
                self._end_loop()

    def tick_eis(self) -> None:
        """EIS points: a few periods per point, paced on the wall clock."""
        if not (self.running and self.loop is not None and self.loop.command == "meas_loop_eis"):
            return
        assert self.eis_freqs is not None
        while self.eis_i < len(self.eis_freqs) and time.monotonic() >= self.eis_wall_next:
            f = float(self.eis_freqs[self.eis_i])
            measure_s = max(3.0 / f, 0.05)  # a few periods per point (simulated seconds)
            if self.server.clock.speedup == 0:
                self.server.clock.advance(measure_s)
            t = self.server.sync()
            z = complex(self.model.impedance(np.array([f]))[0])
            self.eis_wall_next = time.monotonic() + self.server.clock.wall_seconds(measure_s)
            a = self.loop.args
            self._body({a[0]: ("dc", f), a[1]: ("cc", z.real), a[2]: ("cd", z.imag)}, t)
            self.eis_i += 1
        if self.eis_i >= len(self.eis_freqs):
            self._end_loop()

    def _body(self, values: dict[str, tuple[str, float]], t: float) -> bool:
        """Run one loop iteration's body; True when it breaks the loop."""
        self.vars.update(values)
        packet: list[str] | None = None
        skip = False
        for tokens in self.loop.body if self.loop else []:
            cmd = tokens[0]
            if cmd == "endif":
                skip = False
            elif skip:
                continue
            elif cmd == "timer_get":
                self.vars[tokens[1]] = ("eb", t - self.public["timer_t0"])
            elif cmd == "pck_start":
                packet = []
            elif cmd == "pck_add" and packet is not None:
                vt, val = self.vars.get(tokens[1], ("aa", 0.0))
                packet.append(encode_value(vt, val, ",10" if vt in ("ba", "ab") else ""))
            elif cmd == "pck_end" and packet is not None:
                self.emit(["P" + ";".join(packet)])
                packet = None
            elif cmd == "if":
                lhs = self.vars.get(tokens[1], ("aa", math.nan))[1]
                skip = not bool(OPS[tokens[2]](lhs, parse_si_text(tokens[3])))
            elif cmd == "send_string":
                self.emit(["T" + " ".join(tokens[1:]).strip('"')])
            elif cmd == "breakloop":
                return True
        return False

    def _end_loop(self) -> None:
        self.loop = None
        self.emit(["*"])
        self._run()

    def _finish(self, aborted: bool = False) -> None:
        if aborted and self.loop is not None:
            self.emit(["*"])
        self.loop = None
        self.queue = []
        for st in self.finished:
            if not isinstance(st, Loop):
                self._exec(st)
        self.finished = []
        self.running = False
        self.emit([""])


class PalmSensSim(Protocol):
    resource_template = "socket://{host}:{port}"
    FIRMWARE = "tespico R1.3.2#Jul  1 2024"

    def __init__(self, server):
        super().__init__(server)
        self.device = server.state.get("palmsens_device")
        if self.device is None:
            self.device = server.state["palmsens_device"] = PalmSensDevice(server)
            server.instrument_program = self.device
        with server.lock:
            self.device.hosts += 1
            self.device.outbox.clear()  # what was sent to nobody is gone
        self.collecting: list[str] | None = None
        self.discarding = False
        self.pending_error: int | None = None

    def inject_error(self) -> None:
        self.pending_error = 0x0005

    # input --------------------------------------------------------------------
    def handle(self, line: str) -> list[str]:
        if self.collecting is not None or self.discarding:
            if line.strip() != "":
                if self.collecting is not None:
                    self.collecting.append(line)
                return []
            if self.discarding:
                self.discarding = False
                return []
            lines, self.collecting = self.collecting, None
            return self._start(lines)
        cmd = line.strip()
        with self.server.lock:
            self.server.sync()
            if cmd == "e":
                if self.device.running:
                    self.discarding = True
                    return ["!0008"]  # busy: the script that follows is not run
                self.collecting = []
                return []
            if cmd == "Z":
                self.device.abort()
                return self._drain()
            if cmd == "t":
                return [with_clock(self.FIRMWARE, self.server.clock.speedup)]
        if cmd == "":
            return []
        return ["!0004"]

    def _start(self, lines: list[str]) -> list[str]:
        if self.pending_error is not None:
            code, self.pending_error = self.pending_error, None
            return [f"!{code:04X}: Line 1, Col 1", ""]
        try:
            main, finished = compile_script(lines)
        except ScriptError as err:
            return [f"!{err.code:04X}: Line {err.line}, Col {err.col}", ""]
        with self.server.lock:
            self.server.sync()
            self.device.start(main, finished)
            return self._drain()

    def _drain(self) -> list[str]:
        out, self.device.outbox[:] = list(self.device.outbox), []
        return out

    def tick(self) -> list[str]:
        with self.server.lock:
            self.server.sync()
            self.device.tick_eis()
            return self._drain()

    def close(self) -> None:
        with self.server.lock:
            self.device.hosts -= 1
            if self.device.hosts == 0:
                self.device.outbox.clear()
