"""Arbin CTI client (Console TCP/IP Interface of MITS Pro / MITS 10), one channel per object.

Every message is a little-endian frame: the fixed 8-byte header ``0x11DDDDDDDDDDDDDD``,
a 32-bit length (bytes after the length field: command code + extended code + payload +
checksum), the 32-bit command code, a 32-bit extended code (0), the payload, and a 16-bit
checksum: the byte sum of everything before it, modulo 2**16. Requests carry codes
``0xEEAB....``/``0xBB..0001``; each reply has its own code (login ``0xEEAB0001`` ->
``0xEEBA0001``). Layouts, codes and result tables: see docs/cyclers-arbin.md (sources:
the public pycti-arbin client and its recorded/mock frames).

CTI gives a channel's *present readings*, not a record store. The driver therefore
makes one record of every new reading it polls (new: another step, cycle or step time
than the last record) and numbers them itself, continuing the file's last sequence id
(:meth:`ArbinChannel.resume_at`). What the cycler measured between two polls - and
while the host was down - is not in the file; docs/cyclers-arbin.md says what that means.

A recipe runs as a schedule stored in MITS Pro, named by the ``schedule`` option: CTI
assigns it to the channel and starts it; it cannot upload a schedule. The recipe must
describe that schedule (its steps are numbered as :func:`schedule_steps` lists them);
what a schedule cannot hold is refused before anything starts.

Resource ``TCPIP0::HOST::PORT::SOCKET``. Options: ``channel`` (1-based, default 1; the
wire counts from 0), ``schedule`` (stored schedule name, e.g. ``cc-cycling.sdx``),
``user``/``password``, ``timeout`` (s), ``test_name`` (default: the barcode + start time).
"""

from __future__ import annotations

import re
import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np

from cyclerflow.acquire.cycler import CyclerRecords, CyclerStatus
from cyclerflow.acquire.instrument import ConnectionLost
from cyclerflow.acquire.recipe import Recipe
from cyclerflow.acquire.schedule_neware import to_step_file
from cyclerflow.errors import InputError, InstrumentError

from .cycler_common import TcpLink, socket_address

#: station/acquire route channels of this driver to cyclerflow.acquire.cycler
RUNS_OWN_SCHEDULE = True
#: the stored procedure/schedule on the cycler holds its own limits (not the recipe's)
SAFETY_LIMITS_IN_SCHEDULE = False

HEADER = 0x11DDDDDDDDDDDDDD
PREFIX = struct.Struct("<QIII")  # header, length, command code, extended code

LOGIN, LOGIN_REPLY = 0xEEAB0001, 0xEEBA0001
CHANNEL_INFO, CHANNEL_INFO_REPLY = 0xEEAB0003, 0xEEBA0003
ASSIGN_SCHEDULE, ASSIGN_SCHEDULE_REPLY = 0xBB210001, 0xBB120001
START_SCHEDULE, START_SCHEDULE_REPLY = 0xBB320004, 0xBB230004
STOP_SCHEDULE, STOP_SCHEDULE_REPLY = 0xBB310001, 0xBB130001
REPLY_OF = {
    LOGIN: LOGIN_REPLY,
    CHANNEL_INFO: CHANNEL_INFO_REPLY,
    ASSIGN_SCHEDULE: ASSIGN_SCHEDULE_REPLY,
    START_SCHEDULE: START_SCHEDULE_REPLY,
    STOP_SCHEDULE: STOP_SCHEDULE_REPLY,
}

LOGIN_REQ = struct.Struct("<32s32s")
#: result, IP, serial, note, nickname, location, emergency contact, comments (UTF-16,
#: 1024 chars each), e-mail, call, ITAC, version, allow control, channels, user type,
#: picture length
LOGIN_REP = struct.Struct("<I4s16s256s2048s2048s2048s2048s128s32sIIIIII")
LOGIN_RESULTS = {1: "success", 2: "fail", 3: "already logged in"}
#: a simulator appends this tag and its speed-up (float64) after the login reply
SIM_CLOCK_TAG = b"SIMCLOCK"

INFO_REQ = struct.Struct("<hhI32s")  # channel (0-based), selection, aux options, reserved
#: one channel of the channel-info reply (then 8 bytes per aux reading)
INFO_CHANNEL = struct.Struct("<IhB400s144s100s64s144s400s400sHdd12f14H")
ASSIGN_REQ = struct.Struct("<iB400sf144s16f32s")
START_REQ = struct.Struct("<144sIH")  # test name, channel count, channel (one)
STOP_REQ = struct.Struct("<IB101s")
RESULT_REP = struct.Struct("<IB101s")  # channel, result code, reserved

ASSIGN_RESULTS = {
    0: "success", 16: "channel does not exist", 17: "monitor window in use",
    18: "schedule name cannot be empty", 19: "schedule name not found",
    20: "channel is running", 21: "channel is downloading another schedule",
    22: "cannot assign a schedule while a batch file is open", 23: "assign failed",
}  # fmt: skip
START_RESULTS = {
    0: "success", 16: "invalid channel index", 17: "a user holds the start/resume window",
    18: "channel is running or unsafe", 19: "channel not connected to DAQ",
    20: "schedule not compatible with the system configuration",
    21: "no schedule assigned to the channel", 22: "schedule version does not match MITS",
    25: "invalid step number", 27: "invalid auxiliary count in schedule",
    31: "no selected channels", 33: "DAQ still downloading schedule",
    34: "error querying database", 35: "test name cannot be empty",
    37: "invalid parallel channel number", 38: "schedule safety precheck failed",
}  # fmt: skip
STOP_RESULTS = {0: "success", 16: "channel index does not exist", 17: "monitor window in use"}

#: every message: name -> (request builder, reply parser), functions of this module
MESSAGES = {
    "login": ("login_request", "parse_login"),
    "channel_info": ("channel_info_request", "parse_channel_info"),
    "assign_schedule": ("assign_schedule_request", "parse_result"),
    "start_schedule": ("start_schedule_request", "parse_result"),
    "stop_schedule": ("stop_schedule_request", "parse_result"),
}

#: channel status codes of the channel-info reply
STATUS_NAMES = (
    "Idle", "Transition", "Charge", "Discharge", "Rest", "Wait", "External Charge",
    "Calibration", "Unsafe", "Pulse", "Internal Resistance", "AC Impedance", "ACI Cell",
    "Test Settings", "Error", "Finished", "Volt Meter", "Waiting for ACS", "Pause", "Empty",
    "Idle from MCU", "Start", "Running", "Step Transfer", "Resume", "Go Pause", "Go Stop",
    "Go Next Step", "Online Update", "DAQ Memory Unsafe", "ACR",
)  # fmt: skip
STOPPED_CODES = {0: "stop", 19: "stop", 20: "stop", 15: "finish", 18: "pause"}
ALARM_CODES = {8, 14, 29}
STEP_TYPE_OF_CODE = {2: "cc", 3: "dc", 4: "rest"}


class ChecksumError(InstrumentError):
    """A frame whose checksum or header is wrong."""


# --- frames ------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """The CTI checksum: byte sum modulo 2**16."""
    return sum(data) & 0xFFFF


def frame(command: int, payload: bytes) -> bytes:
    """One framed message: prefix + payload + checksum."""
    head = PREFIX.pack(HEADER, 4 + 4 + len(payload) + 2, command, 0)
    raw = head + payload
    return raw + struct.pack("<H", checksum(raw))


def split_frame(buf: bytes) -> tuple[int, bytes, bytes] | None:
    """(command, payload, rest of ``buf``) of the first whole frame, None when incomplete.
    ChecksumError on a wrong header or checksum."""
    if len(buf) < PREFIX.size:
        return None
    head, length, command, _ = PREFIX.unpack_from(buf)
    if head != HEADER or length < 10:
        raise ChecksumError(f"arbin: not a CTI frame (header {head:#x}, length {length})")
    end = 12 + length
    if len(buf) < end:
        return None
    (got,) = struct.unpack_from("<H", buf, end - 2)
    want = checksum(buf[: end - 2])
    if got != want:
        raise ChecksumError(f"arbin: bad checksum {got:#06x} (expected {want:#06x})")
    return command, bytes(buf[PREFIX.size : end - 2]), bytes(buf[end:])


def _text(raw: bytes, encoding: str = "utf-16-le") -> str:
    if encoding == "utf-16-le":
        raw = raw[: len(raw) // 2 * 2]
        for k in range(0, len(raw), 2):
            if raw[k : k + 2] == b"\0\0":
                raw = raw[:k]
                break
    return raw.decode(encoding, errors="replace").rstrip("\0")


def _wide(text: str, size: int) -> bytes:
    raw = text.encode("utf-16-le")
    if len(raw) > size - 2:
        raise InputError(f"arbin: {text!r} is longer than {size // 2 - 1} characters")
    return raw


def _narrow(text: str, size: int) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > size:
        raise InputError(f"arbin: {text!r} is longer than {size} bytes")
    return raw


# --- requests -----------------------------------------------------------------------------


def login_request(user: str, password: str) -> bytes:
    return frame(LOGIN, LOGIN_REQ.pack(_narrow(user, 32), _narrow(password, 32)))


def channel_info_request(channel: int) -> bytes:
    """``channel``: 0-based; selection 1 = that one channel."""
    return frame(CHANNEL_INFO, INFO_REQ.pack(channel, 1, 0, b""))


def assign_schedule_request(
    channel: int, schedule: str, capacity_ah: float = 1.0, barcode: str = ""
) -> bytes:
    payload = ASSIGN_REQ.pack(
        channel, 0, _wide(schedule, 400), capacity_ah, _wide(barcode, 144), *([1.0] * 16), b""
    )
    return frame(ASSIGN_SCHEDULE, payload)


def start_schedule_request(channel: int, test_name: str) -> bytes:
    return frame(START_SCHEDULE, START_REQ.pack(_wide(test_name, 144), 1, channel))


def stop_schedule_request(channel: int) -> bytes:
    return frame(STOP_SCHEDULE, STOP_REQ.pack(channel, 0, b""))


# --- replies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginReply:
    result: str
    serial: str
    version: int
    allow_control: int
    channels: int
    clock_rate: float = 1.0


def parse_login(payload: bytes) -> LoginReply:
    if len(payload) < LOGIN_REP.size:
        raise InstrumentError(f"arbin: login reply of {len(payload)} bytes is too short")
    f = LOGIN_REP.unpack_from(payload)
    result = LOGIN_RESULTS.get(f[0], f"code {f[0]}")
    rate = 1.0
    tail = payload[LOGIN_REP.size + f[15] :]
    if tail.startswith(SIM_CLOCK_TAG) and len(tail) >= len(SIM_CLOCK_TAG) + 8:
        (rate,) = struct.unpack_from("<d", tail, len(SIM_CLOCK_TAG))
        if not rate >= 0:
            raise InstrumentError(f"arbin: unreadable simulator clock {rate!r}")
    return LoginReply(result, _text(f[2], "ascii"), f[11], f[12], f[13], rate)


@dataclass(frozen=True)
class Reading:
    """One channel of a channel-info reply (SI: s, V, A, Ah, Wh)."""

    channel: int
    status: int
    schedule: str
    test_name: str
    step_and_cycle: str
    barcode: str
    test_time_s: float
    step_time_s: float
    voltage_v: float
    current_a: float
    charge_capacity_ah: float
    discharge_capacity_ah: float
    charge_energy_wh: float
    discharge_energy_wh: float

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status] if 0 <= self.status < len(STATUS_NAMES) else "?"

    def step_cycle(self) -> tuple[int, int]:
        """Step and cycle index: the first two integers of the step-and-cycle text."""
        nums = [int(x) for x in re.findall(r"\d+", self.step_and_cycle)[:2]]
        if len(nums) < 2:
            raise InstrumentError(
                f"arbin: no step and cycle index in {self.step_and_cycle!r} (channel "
                f"{self.channel + 1})"
            )
        return nums[0], nums[1]


def parse_channel_info(payload: bytes) -> list[Reading]:
    """Channel-info reply -> one Reading per channel (aux readings skipped)."""
    (n,) = struct.unpack_from("<I", payload)
    pos, out = 4, []
    for _ in range(n):
        if len(payload) < pos + INFO_CHANNEL.size:
            raise InstrumentError("arbin: channel-info reply shorter than its channel count")
        f = INFO_CHANNEL.unpack_from(payload, pos)
        floats, counts = f[13:25], f[25:39]
        if counts[12] or counts[13]:
            raise InstrumentError("arbin: BMS/SMB readings in channel info are not supported")
        pos += INFO_CHANNEL.size + 8 * sum(counts[:12])
        out.append(
            Reading(
                channel=f[0], status=f[1], schedule=_text(f[3]), test_name=_text(f[4]),
                step_and_cycle=_text(f[6], "ascii"), barcode=_text(f[7]),
                test_time_s=f[11], step_time_s=f[12], voltage_v=floats[0],
                current_a=floats[1], charge_capacity_ah=floats[3],
                discharge_capacity_ah=floats[4], charge_energy_wh=floats[5],
                discharge_energy_wh=floats[6],
            )
        )  # fmt: skip
    return out


def parse_result(payload: bytes, table: dict[int, str]) -> tuple[int, int, str]:
    """(channel, code, meaning) of an assign/start/stop reply."""
    channel, code, _ = RESULT_REP.unpack_from(payload)
    return channel, code, table.get(code, f"code {code}")


# --- the link ------------------------------------------------------------------------------


def parse_resource(resource: str) -> tuple[str, int]:
    address = socket_address(resource)
    if address is None:
        raise InputError(
            f"arbin-cti resource {resource!r}: expected TCPIP0::HOST::PORT::SOCKET (the CTI port "
            "set in MITS; there is no documented default)"
        )
    return address


def _split_reply(buf: bytes) -> tuple[tuple[int, bytes], bytes] | None:
    got = split_frame(buf)
    return None if got is None else ((got[0], got[1]), got[2])


class CtiLink(TcpLink):
    """One TCP connection to a CTI server: frame -> reply frame (checked)."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0):
        super().__init__("arbin", host, port, timeout_s, recv_bytes=1 << 16)

    def exchange(self, request: bytes) -> bytes:
        """Send one frame, return the payload of its reply (command code checked)."""
        if self._sock is None:
            raise ConnectionLost("arbin: not connected")
        command = PREFIX.unpack_from(request)[2]
        code, payload = self.transact(request, _split_reply)
        if code != REPLY_OF[command]:
            raise InstrumentError(
                f"arbin: expected reply {REPLY_OF[command]:#010x} to {command:#010x}, got {code:#010x}"
            )
        return payload


# --- recipe mapping -------------------------------------------------------------------------

_WORDING = (
    ("a Neware BTS step file", "an Arbin schedule"),
    ("a Neware step file", "an Arbin schedule"),
    ("Neware step file", "Arbin schedule"),
    ("step file", "schedule"),
    ("Neware", "Arbin"),
)


def check_recipe(recipe: Recipe) -> None:
    """Raise InputError naming the first recipe step the stored-schedule mapping cannot hold
    (the same step set as a Neware step file: rest on time, CC/CCCV/CV with voltage,
    current, time and capacity limits, loops of a fixed count; no EIS, GITT, pulses)."""
    try:
        to_step_file(recipe)
    except InputError as err:
        text = err.bare_message
        for old, new in _WORDING:
            text = text.replace(old, new)
        raise InputError(text, path=recipe.source) from None


def schedule_steps(recipe: Recipe) -> dict[int, tuple[int, str]]:
    """Schedule step number -> (recipe leaf index, recipe step kind); loops take a step
    of their own after their body, as in the stored schedule the recipe describes."""
    sched = to_step_file(recipe)
    return {k: (v, sched.kind_of_step[k]) for k, v in sched.leaf_of_step.items()}


def test_id_of(test_name: str) -> int:
    """A stable id of a test (CTI names tests; the host files keep an integer)."""
    return zlib.crc32(test_name.encode("utf-8")) & 0x7FFFFFFF if test_name else 0


def state_of(status: int) -> str:
    """Channel status code -> CyclerStatus state."""
    if status in ALARM_CODES:
        return "protect"
    return STOPPED_CODES.get(status, "working")


@dataclass(frozen=True)
class ArbinRecords(CyclerRecords):
    """Records with the channel's own test time (s): the file keeps it as read instead of
    rebuilding it from step times (polling misses the end of every step)."""

    test_time_s: np.ndarray


# --- the channel -----------------------------------------------------------------------------


def _no_records() -> CyclerRecords:
    ints, floats = (np.zeros(0, "i8") for _ in range(3)), (np.zeros(0) for _ in range(5))
    return CyclerRecords(*ints, np.zeros(0, "U8"), *floats)


class ArbinChannel:
    """One channel of a CTI server (implements ``cyclerflow.acquire.cycler.CyclerChannel``)."""

    def __init__(self, resource: str, **options):
        host, port = parse_resource(resource)
        known = {"channel", "schedule", "user", "password", "timeout", "test_name", "name"}
        unknown = set(options) - known
        if unknown:
            raise InputError(f"arbin-cti: unknown option(s) {', '.join(sorted(unknown))}")
        self.name = str(options.get("name", ""))
        self.channel = int(options.get("channel", 1))
        if self.channel < 1:
            raise InputError(f"arbin-cti: channel must be >= 1, got {self.channel}")
        self.schedule = str(options.get("schedule", ""))
        if not self.schedule:
            raise InputError(
                "arbin-cti: option 'schedule' (the name of the stored MITS schedule to run) "
                "is missing"
            )
        self.user = str(options.get("user", "admin"))
        self.password = str(options.get("password", "000000"))
        self.test_name = str(options.get("test_name", ""))
        self.link = CtiLink(host, port, float(options.get("timeout", 10.0)))
        self.login: LoginReply | None = None
        self._seq = 0
        self._last_key: tuple[int, int, float] | None = None
        self._pending: list[Reading] = []
        self._held: Reading | None = None
        self._record_s = 0.0

    @property
    def wire_channel(self) -> int:
        return self.channel - 1

    def connect(self) -> None:
        self.link.open()
        reply = parse_login(self.link.exchange(login_request(self.user, self.password)))
        if reply.result not in ("success", "already logged in"):
            raise InstrumentError(f"arbin: login refused ({reply.result})")
        if self.channel > reply.channels:
            raise InstrumentError(
                f"arbin: the server has {reply.channels} channels, not channel {self.channel}"
            )
        self.login = reply

    def close(self) -> None:
        self.link.close()

    def identify(self) -> str:
        sn = self.login.serial if self.login else "?"
        return f"Arbin CTI {self.link.host}:{self.link.port} serial {sn} channel {self.channel}"

    def clock_rate(self) -> float:
        return self.login.clock_rate if self.login else 1.0

    def check_recipe(self, recipe: Recipe) -> None:
        check_recipe(recipe)

    def recipe_steps(self, recipe: Recipe) -> dict[int, tuple[int, str]]:
        self._record_s = to_step_file(recipe).record_interval_s  # one reading per interval
        return schedule_steps(recipe)

    def start(self, recipe: Recipe, barcode: str) -> None:
        self.check_recipe(recipe)
        name = self.test_name or f"{barcode or 'cyclerflow'}-{time.strftime('%Y%m%dT%H%M%S')}"
        cap = recipe.nominal_capacity_ah or 1.0
        req = assign_schedule_request(self.wire_channel, self.schedule, cap, barcode)
        _, code, what = parse_result(self.link.exchange(req), ASSIGN_RESULTS)
        if code:
            raise InstrumentError(f"arbin: channel {self.channel}: assign schedule failed ({what})")
        req = start_schedule_request(self.wire_channel, name)
        _, code, what = parse_result(self.link.exchange(req), START_RESULTS)
        if code:
            raise InstrumentError(f"arbin: channel {self.channel} refused to start ({what})")

    def stop(self) -> None:
        req = stop_schedule_request(self.wire_channel)
        _, code, what = parse_result(self.link.exchange(req), STOP_RESULTS)
        if code:
            raise InstrumentError(f"arbin: channel {self.channel} did not stop ({what})")

    def reading(self) -> Reading:
        got = parse_channel_info(self.link.exchange(channel_info_request(self.wire_channel)))
        if len(got) != 1:
            raise InstrumentError(f"arbin: no channel {self.channel} in the channel-info reply")
        r = got[0]
        if r.channel != self.wire_channel:
            raise InstrumentError(f"arbin: asked for channel {self.channel}, got {r.channel + 1}")
        return r

    def resume_at(self, last_seq: int, step_key: tuple[int, int] | None, step_time_s: float):
        """Continue the file: its last sequence id and the (step, cycle, step time) of its
        last record (a reading equal to it is not stored again)."""
        self._seq = int(last_seq)
        self._last_key = None if step_key is None else (*step_key, float(step_time_s))
        self._pending, self._held = [], None

    def status(self) -> CyclerStatus:
        """Poll the channel; a new reading becomes a pending record (see :meth:`_select`)."""
        r = self.reading()
        state = state_of(r.status)
        if self._pending:  # polled twice without a download: keep the newest as held
            self._held = self._pending[-1]
        self._pending = self._select(r, state) if r.test_name else []
        alarm = r.status_name if state == "protect" else ""
        return CyclerStatus(state, test_id_of(r.test_name), self._seq + len(self._pending), alarm)

    def _select(self, r: Reading, state: str) -> list[Reading]:
        """The readings to store now: on a new step the last reading held back from the
        step before (its end, as near as polling sees it) and the new one; within a step
        one reading per record interval; when the channel stops, its final reading."""
        key, last = _key(r), self._last_key
        if key == last:
            return []
        if last is None or key[:2] != last[:2] or key[2] < last[2]:
            held, self._held = self._held, None
            keep = held is not None and last is not None and _key(held)[:2] == last[:2]
            return [held, r] if keep and _key(held)[2] > last[2] else [r]
        if state != "working" or key[2] - last[2] >= self._record_s - 1e-9:
            self._held = None
            return [r]
        self._held = r
        return []

    def download(self, from_seq: int, count: int) -> CyclerRecords:
        """Pending readings as records from ``from_seq`` (CTI keeps no records to fetch)."""
        rs = self._pending[: max(count, 0)]
        if not rs or from_seq != self._seq + 1:
            return _no_records()
        self._pending = self._pending[len(rs) :]
        self._seq, self._last_key = from_seq + len(rs) - 1, _key(rs[-1])
        sc = np.array([_key(x)[:2] for x in rs], "i8")
        pick = np.array
        return ArbinRecords(
            seq=np.arange(from_seq, from_seq + len(rs), dtype="i8"),
            step_id=sc[:, 0],
            cycle_id=sc[:, 1],
            step_type=pick([STEP_TYPE_OF_CODE.get(x.status, "rest") for x in rs], "U8"),
            step_time_s=pick([x.step_time_s for x in rs]),
            voltage_v=pick([x.voltage_v for x in rs]),
            current_a=pick([x.current_a for x in rs]),
            capacity_ah=pick([_counters(x)[0] for x in rs]),
            energy_wh=pick([_counters(x)[1] for x in rs]),
            test_time_s=pick([x.test_time_s for x in rs]),
        )


def _counters(r: Reading) -> tuple[float, float]:
    """The step's capacity (Ah) and energy (Wh): the charge or discharge pair in use."""
    if r.charge_capacity_ah >= r.discharge_capacity_ah:
        return r.charge_capacity_ah, r.charge_energy_wh
    return r.discharge_capacity_ah, r.discharge_energy_wh


def _key(r: Reading) -> tuple[int, int, float]:
    step, cycle = r.step_cycle()
    return step, cycle, float(r.step_time_s)


def open_channel(resource: str, **options) -> ArbinChannel:
    return ArbinChannel(resource, **options)


def serve_cycler_simulator(**kwargs) -> None:
    """``cyclerflow simulate arbin-cti``: blocking (see drivers/sim/arbin_cti.py)."""
    from .sim.arbin_cti import serve

    serve(**kwargs)


# fmt: off
#: unit of every numeric field sent or read ("1": a count, index or code)
FIELD_UNITS: dict[str, str] = {
    # requests: 0-based channel, the cell's nominal capacity
    "channel": "1", "capacity_ah": "Ah",
    # login reply
    "version": "1", "allow_control": "1", "channels": "1", "clock_rate": "1",
    # channel-info reply (Reading)
    "status": "1", "test_time_s": "s", "step_time_s": "s", "voltage_v": "V",
    "current_a": "A", "charge_capacity_ah": "Ah", "discharge_capacity_ah": "Ah",
    "charge_energy_wh": "Wh", "discharge_energy_wh": "Wh",
}
# fmt: on
