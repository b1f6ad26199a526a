"""Maccor MacNet client: JSON-RPC over TCP (one cycler channel per object).

A request is one JSON object ``{"jsonrpc":"2.0","method":"MacNet","params":{"FClass":F,
"FNum":N,"Chan":C,...},"id":K}`` sent as it is (no terminator); the server answers one
JSON object ``{"jsonrpc":"2.0","result":{"FClass":F,"FNum":N,"Chan":C,...},"id":K}``
ended by ``\\r\\n``. ``Chan`` is 0-based on the wire (channel 1 is ``Chan: 0``). Messages
used (FClass, FNum): (1, 2) general information (``TestChannels``), (4, 7) status and
latest readings of one channel, (6, 2) start a test with a stored procedure, (6, 5)
reset a channel (stops its test). See docs/cyclers-maccor.md for the sources.

MacNet's JSON interface returns a channel's **latest readings only**: there is no
download of stored records. The driver polls the channel at the recipe's recording
interval (simulated seconds / the clock rate) in a background thread and numbers the
distinct readings itself (``vendor_record_id`` = synthesised sequence ids). What the
cycler recorded between two polls - and everything during a host outage - is not
recoverable through MacNet; the driver notes each such gap (``gap`` events).

Resource: ``TCPIP0::HOST::PORT::SOCKET`` (default port 57570). Options: ``channel``
(1-based, default 1), ``procedure`` (the stored procedure's name, required to start),
``timeout`` (s), ``poll`` (simulated s between polls; default the recipe's recording
interval), ``name``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from cyclerflow.acquire.cycler import Carry, CyclerRecords, CyclerStatus
from cyclerflow.acquire.instrument import ConnectionLost
from cyclerflow.acquire.recipe import Cccv, ConstantCurrent, CvHold, Loop, Recipe, Rest
from cyclerflow.errors import InputError, InstrumentError

#: station/acquire route channels of this driver to cyclerflow.acquire.cycler
RUNS_OWN_SCHEDULE = True
#: the stored procedure/schedule on the cycler holds its own limits (not the recipe's)
SAFETY_LIMITS_IN_SCHEDULE = False

DEFAULT_PORT = 57570
TERMINATOR = b"\r\n"
#: field of the general-information reply a simulator adds (a real server has none)
CLOCK_FIELD = "SimClock"
GENERAL_INFO, STATUS, START, RESET = (1, 2), (4, 7), (6, 2), (6, 5)

#: ``Stat`` codes of the status reply (as the public client decodes them)
STAT_NAMES = {
    0: "Available", 1: "Selected", 2: "Active", 3: "Suspended", 4: "Completed",
    5: "Problem", 6: "Not/Avl", 7: "Reset", 8: "Start", 9: "PWR Fail", 10: "No Cntllr",
    11: "ShutDown", 12: "Starting", 13: "Blocked", 14: "Waiting", 15: "FRA", 16: "Rem Maint",
}  # fmt: skip
#: Stat code -> CyclerStatus state (anything else: ``stop``)
STATE_OF_STAT = {2: "working", 8: "working", 12: "working", 14: "working", 3: "pause"}
STATE_OF_STAT |= {4: "finish", 5: "protect", 9: "protect", 10: "protect", 11: "protect"}

#: every message: name -> (request builder, reply parser), functions of this module
MESSAGES = {
    "general_info": ("general_info_request", "parse_clock"),
    "status": ("status_request", "parse_status"),
    "start": ("start_request", "parse_ok"),
    "reset": ("reset_request", "parse_ok"),
}


# --- requests (bytes on the wire) ------------------------------------------------------


def request(fclass: int, fnum: int, chan: int, msg_id: int = 1, **params) -> bytes:
    """One request; ``chan`` is the 1-based channel (sent 0-based), -1 for none."""
    body = {"FClass": fclass, "FNum": fnum, "Chan": chan - 1 if chan > 0 else chan, **params}
    obj = {"jsonrpc": "2.0", "method": "MacNet", "params": body, "id": msg_id}
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def general_info_request(msg_id: int = 1) -> bytes:
    return request(*GENERAL_INFO, -1, msg_id)


def status_request(chan: int, msg_id: int = 1) -> bytes:
    return request(*STATUS, chan, msg_id)


def reset_request(chan: int, msg_id: int = 1) -> bytes:
    return request(*RESET, chan, msg_id)


def start_request(chan: int, test_name: str, procedure: str, msg_id: int = 1, **kw) -> bytes:
    """(6, 2): start ``procedure`` (a stored procedure, no ``.000``) as test ``test_name``.
    ``kw`` overrides the defaults of the other fields (C-rate ``Crate`` in Ah, ...)."""
    if len(test_name) > 25 or len(procedure) > 25:
        raise InputError(
            f"maccor: test and procedure names are 25 characters at most: "
            f"{test_name!r}, {procedure!r}"
        )
    fields = {
        "TestName": test_name, "ProcName": procedure, "Comment": "cyclerflow", "Crate": 1,
        "ChamberNum": 0, "StartCycle": 0, "TotCycles": 0, "Mass": 1, "VGain": 0,
        "AbsTRepAlign": 0, "ParallelR": 0, "VDivHiR": 0, "VDivLoR": 0, "CANpos": -1,
        "CANprof": "", "RegimeName": "",
    }  # fmt: skip
    return request(*START, chan, msg_id, **(fields | kw))


# --- replies -------------------------------------------------------------------------


def parse_reply(data: bytes, what: tuple[int, int]) -> dict:
    """The ``result`` object of a reply (terminator stripped), checked to answer ``what``."""
    text = data.removesuffix(TERMINATOR).decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise InstrumentError(
            f"maccor: unreadable reply to {what} ({err.msg}): {text[:80]!r}"
        ) from None
    if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
        raise InstrumentError(f"maccor: not a JSON-RPC 2.0 reply to {what}: {text[:80]!r}")
    if "error" in obj:
        raise InstrumentError(f"maccor: {what} answered with an error: {obj['error']}")
    res = obj.get("result")
    if not isinstance(res, dict) or (res.get("FClass"), res.get("FNum")) != what:
        raise InstrumentError(f"maccor: expected a reply to {what}, got {text[:80]!r}")
    return res


def parse_clock(res: dict) -> float:
    """General information -> clock rate (1.0 unless a simulator declares its speed-up)."""
    if CLOCK_FIELD not in res:
        return 1.0
    value = res[CLOCK_FIELD]
    if not isinstance(value, (int, float)) or not value > 0:
        raise InstrumentError(f"maccor: unreadable clock field {CLOCK_FIELD}={value!r}")
    return float(value)


def parse_ok(res: dict, what: str) -> None:
    if str(res.get("Result", "")).strip().upper() != "OK":
        raise InstrumentError(f"maccor: {what} refused ({res.get('Result')!r})")


@dataclass(frozen=True)
class Reading:
    """One (4, 7) status reply. SI: s, V, A (> 0 charges), Ah, Wh (step counters)."""

    stat: int
    last_rec: int
    cycle: int
    step: int
    test_time_s: float
    step_time_s: float
    capacity_ah: float
    energy_wh: float
    current_a: float
    voltage_v: float

    @property
    def state(self) -> str:
        return STATE_OF_STAT.get(self.stat, "stop")


def parse_status(res: dict) -> Reading:
    keys = (
        "Stat",
        "LastRecNum",
        "Cycle",
        "Step",
        "TestTime",
        "StepTime",
        "Capacity",
        "Energy",
        "Current",
        "Voltage",
    )
    missing = [k for k in keys if not isinstance(res.get(k), (int, float))]
    if missing:
        raise InstrumentError(f"maccor: status reply without numeric {', '.join(missing)}")
    v = [res[k] for k in keys]
    return Reading(int(v[0]), int(v[1]), int(v[2]), int(v[3]), *map(float, v[4:]))


# --- recipe -> the stored procedure's steps ----------------------------------------------


@dataclass(frozen=True)
class ProcStep:
    """A step of the stored procedure a recipe describes (numbered 1.. as in Maccor's
    editor; a loop's end is a step of its own). ``current_a`` signed, > 0 charges."""

    number: int
    kind: str  # rest, cc, cccv, loop, end
    type_name: str  # vendor_step_type name: rest, cc, dc, cccv, cccv_dc
    leaf: int = -1
    recipe_kind: str = ""
    current_a: float = 0.0
    voltage_v: float | None = None
    stop_voltage_v: float | None = None
    stop_current_a: float | None = None
    time_s: float | None = None
    capacity_ah: float | None = None
    loop_start: int = 0
    loop_count: int = 0


def _leaf(s, n: int, prev: str, recipe: Recipe, where: str) -> ProcStep:
    u, common = s.until, {"leaf": s.index, "recipe_kind": s.kind}
    common |= {"time_s": u.time, "capacity_ah": getattr(u, "capacity", None)}
    if isinstance(s, Rest):
        if u.voltage is not None or u.capacity is not None:
            raise InputError(f"{where}: a rest mapped to MacNet ends on time only (use duration)")
        times = [t for t in (s.duration, u.time) if t is not None]
        return ProcStep(n, "rest", "rest", **(common | {"time_s": min(times)}))
    if isinstance(s, ConstantCurrent):
        sign = 1.0 if s.kind == "cc_charge" else -1.0
        return ProcStep(
            n,
            "cc",
            "cc" if sign > 0 else "dc",
            current_a=sign * abs(s.current),
            stop_voltage_v=u.voltage,
            **common,
        )
    if isinstance(s, Cccv):
        charge, current = s.direction == "charge", abs(s.current)
    else:
        charge = prev != "cc_discharge"
        current = abs(s.current_limit or recipe.limits.current_max)
    return ProcStep(
        n,
        "cccv",
        "cccv" if charge else "cccv_dc",
        current_a=current if charge else -current,
        voltage_v=s.voltage,
        stop_current_a=u.current,
        **common,
    )


def procedure_steps(recipe: Recipe) -> tuple[ProcStep, ...]:
    """The steps of the stored procedure ``recipe`` describes; InputError naming the first
    recipe step a MacNet-started procedure cannot run (eis, gitt, temperature, ...)."""
    out: list[ProcStep] = []
    prev = [""]

    def walk(steps, where: str) -> None:
        for k, s in enumerate(steps):
            here = f"{where}[{k}]"
            if isinstance(s, Loop):
                if s.repeat is None or not s.until.empty() or not s.counts_cycles:
                    raise InputError(
                        f"{here}.loop: only loops with a fixed repeat: N map to a Maccor procedure",
                        path=recipe.source,
                    )
                first = len(out) + 1
                walk(s.steps, f"{here}.loop.steps")
                out.append(
                    ProcStep(len(out) + 1, "loop", "cycle", loop_start=first, loop_count=s.repeat)
                )
            elif isinstance(s, (Rest, ConstantCurrent, Cccv, CvHold)):
                try:
                    out.append(_leaf(s, len(out) + 1, prev[0], recipe, f"{here}.{s.kind}"))
                except InputError as err:
                    raise InputError(err.bare_message, path=recipe.source) from None
                prev[0] = s.kind
            else:
                raise InputError(
                    f"{here}.{s.kind}: maccor-macnet runs stored procedures of rest, "
                    f"cc, cccv and cv_hold steps only; it has no {s.kind!r} step",
                    path=recipe.source,
                )

    walk(recipe.steps, "steps")
    out.append(ProcStep(len(out) + 1, "end", "end"))
    return tuple(out)


def check_recipe(recipe: Recipe) -> None:
    """Raise InputError naming the first recipe step a stored procedure cannot hold."""
    procedure_steps(recipe)


def record_interval(recipe: Recipe) -> float:
    """The shortest recording interval any step of ``recipe`` asks for (s)."""
    every = [recipe.record.every]
    every += [s.record.every for s in recipe.leaves() if getattr(s, "record", None) is not None]
    return min(every)


# --- readings -> records ----------------------------------------------------------------


class Numbering:
    """Distinct readings -> records with synthesised sequence ids (1-based, gap-free).

    ``step_time_s`` of a record is counted from the previous step's last reading, so that
    the runner's rebuilt test time equals the cycler's ``TestTime`` (the cycler's own
    step time is at most one poll interval shorter)."""

    def __init__(self, last_seq: int = 0, ref_s: float = 0.0, last_t: float = -1.0):
        self.rows: list[tuple] = []
        self.first_seq = last_seq + 1
        self.ref_s, self.last_t = ref_s, last_t
        self.key: tuple[int, int] | None = None
        self.last_rec = -1

    @property
    def count(self) -> int:
        """The last sequence id given."""
        return self.first_seq - 1 + len(self.rows)

    def add(self, r: Reading) -> bool:
        """Store ``r`` when it is new (later test time); True when stored."""
        if r.test_time_s <= self.last_t:
            return False
        key = (r.step, r.cycle)
        if self.key is not None and key != self.key:
            self.ref_s = self.last_t
        self.key, self.last_t = key, r.test_time_s
        self.rows.append(
            (
                self.count + 1,
                r.step,
                r.cycle,
                r.test_time_s - self.ref_s,
                r.voltage_v,
                r.current_a,
                r.capacity_ah,
                r.energy_wh,
            )
        )
        return True

    def records(self, from_seq: int, count: int, type_of: dict[int, str]) -> CyclerRecords:
        lo = max(from_seq - self.first_seq, 0)
        part = self.rows[lo : lo + count]
        cols = list(zip(*part, strict=True)) if part else [()] * 8
        return CyclerRecords(
            seq=np.array(cols[0], dtype="i8"),
            step_id=np.array(cols[1], dtype="i8"),
            cycle_id=np.array(cols[2], dtype="i8"),
            step_type=np.array([type_of.get(s, "unknown") for s in cols[1]], dtype="U8"),
            step_time_s=np.array(cols[3], dtype="f8"),
            voltage_v=np.array(cols[4], dtype="f8"),
            current_a=np.array(cols[5], dtype="f8"),
            capacity_ah=np.array(cols[6], dtype="f8"),
            energy_wh=np.array(cols[7], dtype="f8"),
        )


# --- the link ----------------------------------------------------------------------------


def parse_resource(resource: str) -> tuple[str, int]:
    parts = resource.split("::")
    if (
        len(parts) in (3, 4)
        and parts[0].upper().startswith("TCPIP")
        and parts[-1].upper() == "SOCKET"
    ):
        try:
            return parts[1], int(parts[2]) if len(parts) == 4 else DEFAULT_PORT
        except ValueError:
            pass
    raise InputError(f"maccor-macnet resource {resource!r}: expected TCPIP0::HOST::PORT::SOCKET")


class MacNetLink:
    """One TCP connection to a MacNet server: request -> reply (``\\r\\n`` stripped)."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._sock: socket.socket | None = None
        self._buf = b""
        self.lock = threading.Lock()

    def open(self) -> None:
        with self.lock:
            self._close()
            try:
                self._sock = socket.create_connection((self.host, self.port), self.timeout_s)
            except OSError as err:
                raise ConnectionLost(
                    f"maccor: cannot connect to {self.host}:{self.port}: {err}"
                ) from None
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buf = b""

    def close(self) -> None:
        with self.lock:
            self._close()

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def exchange(self, data: bytes) -> bytes:
        with self.lock:
            if self._sock is None:
                raise ConnectionLost("maccor: not connected")
            try:
                self._sock.sendall(data)
                while (end := self._buf.find(TERMINATOR)) < 0:
                    chunk = self._sock.recv(65536)
                    if not chunk:
                        raise ConnectionLost("maccor: connection lost (closed by the server)")
                    self._buf += chunk
                reply, self._buf = self._buf[:end], self._buf[end + len(TERMINATOR) :]
                return reply
            except TimeoutError:
                self._close()
                raise ConnectionLost(f"maccor: no reply within {self.timeout_s:g} s") from None
            except OSError as err:
                self._close()
                raise ConnectionLost(f"maccor: connection lost ({err})") from None


# --- the channel -------------------------------------------------------------------------


class MaccorChannel:
    """One MacNet channel (implements ``cyclerflow.acquire.cycler.CyclerChannel`` and
    ``PolledCyclerChannel``): a poller thread reads (4, 7) every poll interval."""

    def __init__(self, resource: str, **options):
        host, port = parse_resource(resource)
        unknown = set(options) - {"channel", "procedure", "timeout", "poll", "name"}
        if unknown:
            raise InputError(f"maccor-macnet: unknown option(s) {', '.join(sorted(unknown))}")
        self.name = str(options.get("name", ""))
        self.channel = int(options.get("channel", 1))
        self.procedure = str(options.get("procedure", ""))
        self.poll_s = float(options["poll"]) if "poll" in options else None
        self.link = MacNetLink(host, port, float(options.get("timeout", 10.0)))
        self._rate, self._ids = 1.0, 0
        self._num = Numbering()
        self._types: dict[int, str] = {}
        self._latest: Reading | None = None
        self._error: Exception | None = None
        self._notes: deque[str] = deque()  # appended by the poller thread
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def _ask(self, make, what: tuple[int, int]) -> dict:
        self._ids += 1
        return parse_reply(self.link.exchange(make(self._ids)), what)

    def connect(self) -> None:
        self._stop_poller()
        self.link.open()
        info = self._ask(general_info_request, GENERAL_INFO)
        self._rate = parse_clock(info)
        n = info.get("TestChannels")
        if isinstance(n, int) and not 1 <= self.channel <= n:
            raise InstrumentError(
                f"maccor: the server has {n} channels, not channel {self.channel}"
            )
        if self._latest is not None:  # a reconnect: go on polling
            self._start_poller()

    def close(self) -> None:
        self._stop_poller()
        self.link.close()

    def identify(self) -> str:
        return f"Maccor MacNet {self.link.host}:{self.link.port} channel {self.channel}"

    def clock_rate(self) -> float:
        return self._rate

    def check_recipe(self, recipe: Recipe) -> None:
        check_recipe(recipe)
        if not self.procedure:
            raise InputError(
                "maccor-macnet: option procedure=NAME (the stored procedure) is needed"
            )

    def recipe_steps(self, recipe: Recipe) -> dict[int, tuple[int, str]]:
        steps = procedure_steps(recipe)
        self._types = {p.number: p.type_name for p in steps}
        if self.poll_s is None:
            self.poll_s = record_interval(recipe)
        return {p.number: (p.leaf, p.recipe_kind) for p in steps if p.leaf >= 0}

    def start(self, recipe: Recipe, barcode: str) -> None:
        self.recipe_steps(recipe)
        name = (barcode or "cyclerflow")[:25]
        cap = recipe.nominal_capacity_ah or 1
        res = self._ask(
            lambda i: start_request(self.channel, name, self.procedure, i, Crate=cap), START
        )
        parse_ok(res, f"start of {self.procedure!r} on channel {self.channel}")
        self._num = Numbering()
        self._poll_once()
        self._start_poller()

    def resume_from(self, carry: Carry) -> None:
        """Rejoin a running test after a host restart: go on numbering after the file's
        last record; what the cycler recorded meanwhile is lost (a ``gap`` note)."""
        last_t = carry.step_offset_s + carry.step_time_s
        self._num = Numbering(carry.last_seq, carry.step_offset_s, last_t)
        self._num.key = carry.step_key
        r = self._read()
        if r.test_time_s < last_t:
            raise InstrumentError(
                f"maccor: channel {self.channel} is at test time {r.test_time_s:g} s, before the "
                f"file's last record ({last_t:g} s): another test; choose a new output file"
            )
        self._num.add(r)
        self._latest = r
        self._gap_note(last_t, r, "host restart")
        self._start_poller()

    def take_notes(self) -> list[str]:
        notes = []
        while self._notes:
            notes.append(self._notes.popleft())
        return notes

    def stop(self) -> None:
        parse_ok(
            self._ask(lambda i: reset_request(self.channel, i), RESET),
            f"reset of channel {self.channel}",
        )

    def status(self) -> CyclerStatus:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        latest = self._latest
        if latest is None or (latest.state in ("working", "pause") and not self._polling()):
            # no poller keeps the reading fresh (a reconnect failed before it restarted):
            # read now, never report a stale reading as the channel's state
            self._poll_once()
        r = self._latest
        alarm = STAT_NAMES.get(r.stat, f"Stat={r.stat}") if r.state == "protect" else ""
        return CyclerStatus(r.state, 1, self._num.count, alarm)

    def download(self, from_seq: int, count: int) -> CyclerRecords:
        return self._num.records(from_seq, count, self._types)

    # polling ------------------------------------------------------------------------------
    def _read(self) -> Reading:
        return parse_status(self._ask(lambda i: status_request(self.channel, i), STATUS))

    def _poll_once(self) -> Reading:
        r = self._read()
        prev = self._num.last_t
        if self._num.add(r) and prev >= 0 and self.poll_s:
            self._gap_note(prev, r, "")
        self._latest = r
        return r

    def _gap_note(self, prev_t: float, r: Reading, why: str) -> None:
        if self.poll_s and r.test_time_s - prev_t > 3 * self.poll_s:
            self._notes.append(
                f"gap test_time={prev_t:.3f}..{r.test_time_s:.3f} s"
                + (f" ({why})" if why else "")
                + ": MacNet returns the latest reading only; records in between are not recoverable"
            )

    def _start_poller(self) -> None:
        self._stop_poller()
        self._halt = threading.Event()
        wall = (self.poll_s or 1.0) / (self._rate or 1.0)
        self._thread = threading.Thread(
            target=self._poll_loop,
            args=(self._halt, wall),
            name=f"macnet-poll-{self.channel}",
            daemon=True,
        )
        self._thread.start()

    def _polling(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _stop_poller(self) -> None:
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        self._thread = None

    def _poll_loop(self, halt: threading.Event, wall_s: float) -> None:
        while not halt.wait(wall_s):
            try:
                r = self._poll_once()
            except Exception as err:  # handed to the runner at its next status()
                self._error = err
                return
            if r.state not in ("working", "pause"):
                return


def open_channel(resource: str, **options) -> MaccorChannel:
    return MaccorChannel(resource, **options)


def serve_cycler_simulator(**kwargs) -> None:
    """``cyclerflow simulate maccor-macnet``: blocking (see drivers/sim/maccor_macnet.py)."""
    from .sim.maccor_macnet import serve

    serve(**kwargs)


# fmt: off
#: unit of every numeric field sent or read ("1": a count, index or code)
FIELD_UNITS: dict[str, str] = {
    # JSON-RPC envelope and ids, counts, codes, flags
    **dict.fromkeys(
        ("id", "msg_id", "FClass", "FNum", "Chan", "chan", "TestChannels", "SystemType",
         "Stat", "LastRecNum", "Cycle", "Step", "RF1", "RF2", "ChamberNum", "StartCycle",
         "TotCycles", "AbsTRepAlign", "CANpos", "VGain"),
        "1",
    ),
    CLOCK_FIELD: "1",  # simulated s per wall s
    # status reply (docs/cyclers-maccor.md)
    "TestTime": "s", "StepTime": "s", "Capacity": "Ah", "Energy": "Wh", "Current": "A",
    "Voltage": "V",
    # start request: Crate is the nominal capacity; Mass in g; divider/parallel resistors
    "Crate": "Ah", "Mass": "g", "ParallelR": "ohm", "VDivHiR": "ohm", "VDivLoR": "ohm",
    # Reading (parse_status)
    "stat": "1", "last_rec": "1", "cycle": "1", "step": "1", "test_time_s": "s",
    "step_time_s": "s", "capacity_ah": "Ah", "energy_wh": "Wh", "current_a": "A",
    "voltage_v": "V",
}
# fmt: on
