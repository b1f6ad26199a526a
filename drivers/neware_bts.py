"""Neware BTS 8.x client: the BTS server's TCP/XML API (one cycler channel per object).

Every request is ``<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">`` + body +
``</bts>`` followed by the terminator ``\\n\\n#\\r\\n``; every reply ends with the same
terminator and names itself ``<cmd>NAME_resp</cmd>`` - except ``download`` and
``downloadlog``, which real BTS 8.0 servers answer as ``donwload_resp`` and
``donwloadlog_resp`` (accepted here, as are the correct spellings). A channel is
addressed by ``ip``, ``devtype``, ``devid`` (the device), ``subdevid`` (the unit) and
``chlid`` (the channel), as ``getdevinfo`` lists them. See docs/cyclers.md for the
sources of every message and what stays untested without hardware. BTS 9.x has no such
API.

Resource: ``TCPIP0::HOST::PORT::SOCKET`` (the BTS server, default port 502). Options:
``unit`` (sub-device, default 1), ``channel`` (default 1), ``device`` (device id, default
the first one the server lists), ``user``/``password``, ``timeout`` (s), ``stepdir``
(folder the step files are written to; it must be readable by the BTS server at the same
path), ``backupdir`` (where BTS saves its own data file), ``chunk`` (records per download
request, default 1000).
"""

from __future__ import annotations

import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from cyclerflow.acquire.cycler import CyclerRecords, CyclerStatus
from cyclerflow.acquire.recipe import Recipe
from cyclerflow.acquire.schedule_neware import check_recipe as _check_recipe
from cyclerflow.acquire.schedule_neware import to_step_file
from cyclerflow.errors import InputError, InstrumentError

from .cycler_common import TcpLink, socket_address

#: station/acquire route channels of this driver to cyclerflow.acquire.cycler
RUNS_OWN_SCHEDULE = True
#: the recipe's safety limits go into the step file's whole-test protection
SAFETY_LIMITS_IN_SCHEDULE = True

TERMINATOR = b"\n\n#\r\n"
HEADER = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
FOOTER = "</bts>"
DEFAULT_PORT = 502
#: reply names as real BTS 8.0 servers spell them, besides NAME_resp
MISSPELT = {"download": "donwload_resp", "downloadlog": "donwloadlog_resp"}
#: sim-clock element a simulator adds to its connect reply (a real server has none)
CLOCK_TAG = "sim-clock"


def quoteattr(value: str) -> str:
    """An XML attribute value in double quotes (``"`` written as ``&quot;``)."""
    return '"' + escape(value, {'"': "&quot;"}) + '"'


@dataclass(frozen=True)
class Address:
    """A channel's address as getdevinfo lists it."""

    ip: str
    devtype: int
    devid: int
    subdevid: int
    chlid: int

    def attrs(self, *, ip: bool = True) -> str:
        pre = f"ip={quoteattr(self.ip)} " if ip else ""
        return (
            f'{pre}devtype="{self.devtype}" devid="{self.devid}" '
            f'subdevid="{self.subdevid}" chlid="{self.chlid}"'
        )


# --- requests (bytes on the wire) ------------------------------------------------------


def request(body: str) -> bytes:
    """One framed request."""
    return (HEADER + body + FOOTER).encode("utf-8") + TERMINATOR


def connect_request(user: str = "admin", password: str = "neware") -> bytes:
    return request(
        f"<cmd>connect</cmd><username>{escape(user)}</username>"
        f"<password>{escape(password)}</password><type>bfgs</type>"
    )


def getdevinfo_request() -> bytes:
    return request("<cmd>getdevinfo</cmd>")


def _listed(cmd: str, tag: str, addrs: list[Address], text: str = "true", extra: str = "") -> bytes:
    items = "".join(f"<{tag} {a.attrs()}{extra}>{text}</{tag}>" for a in addrs)
    return request(f'<cmd>{cmd}</cmd><list count = "{len(addrs)}">{items}</list>')


def getchlstatus_request(addrs: list[Address]) -> bytes:
    return _listed("getchlstatus", "status", addrs)


def inquire_request(addrs: list[Address]) -> bytes:
    return _listed("inquire", "inquire", addrs, extra=' aux="0" barcode="1"')


def inquiredf_request(addrs: list[Address]) -> bytes:
    items = "".join(f'<chl {a.attrs(ip=False)} testid="0" />' for a in addrs)
    return request(f'<cmd>inquiredf</cmd><list count = "{len(addrs)}">{items}</list>')


def stop_request(addrs: list[Address]) -> bytes:
    return _listed("stop", "stop", addrs)


def light_request(addrs: list[Address], on: bool = True) -> bytes:
    return _listed("light", "light", addrs, text="true" if on else "false")


def clearflag_request(addrs: list[Address]) -> bytes:
    return _listed("clearflag", "clearflag", addrs)


def start_request(addr: Address, barcode: str, step_file: str, backupdir: str) -> bytes:
    backup = (
        f'<backup backupdir={quoteattr(backupdir)} remotedir="" filenametype="0" '
        'customfilename="" addtimewhenrepeat="0" createdirbydate="0" filetype="0" '
        'backupontime="1" backupontimeinterval="720" backupfree="1" />'
    )
    return request(
        f'<cmd>start</cmd><list count = "1"><start {addr.attrs()} barcode={quoteattr(barcode)}>'
        f"{escape(step_file)}</start>{backup}</list>"
    )


def download_request(addr: Address, startpos: int, count: int) -> bytes:
    return request(
        f"<cmd>download</cmd><download {addr.attrs(ip=False)} "
        f'auxid="0" testid="0" startpos="{startpos}" count="{count}"/>'
    )


def downloadlog_request(addr: Address) -> bytes:
    return request(f'<cmd>downloadlog</cmd><download {addr.attrs(ip=False)} testid="0"/>')


# --- replies -------------------------------------------------------------------------


def parse_reply(data: bytes, command: str) -> ET.Element:
    """The reply's root element, checked to answer ``command``."""
    text = data.removesuffix(TERMINATOR).decode("utf-8", errors="replace")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise InstrumentError(
            f"neware: unreadable reply to {command} ({err}): {text[:80]!r}"
        ) from None
    cmd = (root.findtext("cmd") or "").strip()
    if cmd not in (f"{command}_resp", MISSPELT.get(command)):
        raise InstrumentError(f"neware: expected a reply to {command}, got {cmd or text[:80]!r}")
    return root


def _items(root: ET.Element) -> list[ET.Element]:
    lst = root.find("list")
    return [] if lst is None else list(lst)


def parse_connect(root: ET.Element) -> float:
    """Connect result -> the clock rate (1.0 unless a simulator declares its speed-up)."""
    if (root.findtext("result") or "").strip() != "ok":
        raise InstrumentError(f"neware: connect refused ({root.findtext('result')!r})")
    rate = root.findtext(CLOCK_TAG)
    if rate is None:
        return 1.0
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InstrumentError(f"neware: unreadable clock field {CLOCK_TAG}={rate!r}")
    return value


def parse_devinfo(root: ET.Element) -> list[Address]:
    middle = root.find("middle")
    out = []
    for ch in [] if middle is None else list(middle):
        a = ch.attrib
        out.append(
            Address(
                a.get("ip", "127.0.0.1"),
                int(a["devtype"]),
                int(a["devid"]),
                int(a["subdevid"]),
                int(a.get("Channelid", a.get("chlid", "0"))),
            )
        )
    return out


def parse_states(root: ET.Element) -> list[str]:
    """getchlstatus: one state per requested channel, in request order."""
    return [(el.text or "").strip() for el in _items(root)]


def parse_results(root: ET.Element) -> list[bool]:
    """start/stop/light/clearflag: ``ok`` per channel."""
    return [(el.text or "").strip() == "ok" for el in _items(root)]


def parse_inquiredf(root: ET.Element) -> list[tuple[int, int]]:
    """(test id, record count) per requested channel."""
    return [(int(el.get("testid", "0")), int(el.get("count", "0"))) for el in _items(root)]


def parse_inquire(root: ET.Element) -> list[dict[str, str]]:
    return [dict(el.attrib) for el in _items(root)]


def parse_log(root: ET.Element) -> list[tuple[int, int, str]]:
    """downloadlog: (seq id, log code, absolute time text) per entry."""
    return [
        (int(el.get("seqid", "0")), int(el.get("log_code", "0")), el.get("atime", ""))
        for el in _items(root)
    ]


#: attributes of a download record in the order BTS 8.0 writes them
DATA_ATTRS = (
    b"seqid", b"stepid", b"cycleid", b"steptype", b"testtime", b"atime", b"volt", b"curr",
    b"cap", b"eng",
)  # fmt: skip
_COUNT = re.compile(rb'<list count="(\d+)"')


def parse_download(data: bytes) -> CyclerRecords:
    """download reply -> records. ``testtime`` is the step time in ms; ``cap`` Ah, ``eng`` Wh.

    Fast path: the records are split at their quotes and every attribute is read as one
    column, taken only when each record has exactly the attributes BTS 8.0 writes, in its
    order, and the count matches the reply's list count; otherwise (another order, a
    "--" value) every record is read through the XML parser."""
    head = data.find(b"<list")
    if head < 0:
        return _parse_download_xml(data)
    parse_reply(data[:head] + b"</bts>", "download")
    m = _COUNT.search(data, head)
    count = int(m.group(1)) if m else -1
    end = data.rfind(b"</list>")
    if count == 0:
        return _records([], [], [], [], [], [], [], [], [])
    try:
        return _fast_columns(data[data.index(b">", head) + 1 : end], count)
    except ValueError:
        return _parse_download_xml(data)


def _fast_columns(body: bytes, count: int) -> CyclerRecords:
    """Columns of ``count`` records from the text between ``<list ...>`` and ``</list>``
    (ValueError when the layout is not the expected one)."""
    k = len(DATA_ATTRS)
    toks = body.split(b'"')
    if len(toks) != 2 * k * count + 1:
        raise ValueError("layout")
    for f, name in enumerate(DATA_ATTRS):
        names = set(toks[2 * f : 2 * k * count : 2 * k])
        lead = b"<data " if f == 0 else b" "
        if not all(n.rstrip().endswith(lead + name + b"=") or n.endswith(b" " + name + b"=")
                   for n in names):  # fmt: skip
            raise ValueError("layout")
    col = {name: toks[2 * f + 1 :: 2 * k] for f, name in enumerate(DATA_ATTRS)}
    num = {
        n: np.fromiter(map(float, col[n]), "f8", count)
        for n in (b"testtime", b"volt", b"curr", b"cap", b"eng")
    }
    return CyclerRecords(
        seq=np.fromiter(map(int, col[b"seqid"]), "i8", count),
        step_id=np.fromiter(map(int, col[b"stepid"]), "i8", count),
        cycle_id=np.fromiter(map(int, col[b"cycleid"]), "i8", count),
        step_type=np.array(col[b"steptype"]).astype("U8"),
        step_time_s=num[b"testtime"] / 1e3,
        voltage_v=num[b"volt"],
        current_a=num[b"curr"],
        capacity_ah=num[b"cap"],
        energy_wh=num[b"eng"],
    )


def _num(values, dtype: str) -> np.ndarray:
    return np.array([float("nan") if v in (b"--", "--") else v for v in values]).astype(dtype)


def _records(seq, step, cyc, stype, ttime, volt, curr, cap, eng) -> CyclerRecords:
    return CyclerRecords(
        seq=np.asarray(seq, dtype="i8") if seq else np.zeros(0, "i8"),
        step_id=np.asarray(step, dtype="i8") if step else np.zeros(0, "i8"),
        cycle_id=np.asarray(cyc, dtype="i8") if cyc else np.zeros(0, "i8"),
        step_type=np.array([s.decode() if isinstance(s, bytes) else s for s in stype], dtype="U8"),
        step_time_s=_num(ttime, "f8") / 1e3,
        voltage_v=_num(volt, "f8"),
        current_a=_num(curr, "f8"),
        capacity_ah=_num(cap, "f8"),
        energy_wh=_num(eng, "f8"),
    )


def _parse_download_xml(data: bytes) -> CyclerRecords:
    root = parse_reply(data, "download")
    els = _items(root)
    keys = ("seqid", "stepid", "cycleid", "steptype", "testtime", "volt", "curr", "cap", "eng")
    try:
        cols = [[el.attrib[k] for el in els] for k in keys]
    except KeyError as err:
        raise InstrumentError(f"neware: download record without {err.args[0]!r}") from None
    return _records(*cols)


# --- the link ----------------------------------------------------------------------------


def parse_resource(resource: str) -> tuple[str, int]:
    address = socket_address(resource, default_port=DEFAULT_PORT)
    if address is None:
        raise InputError(f"neware-bts resource {resource!r}: expected TCPIP0::HOST::PORT::SOCKET")
    return address


def _split_reply(buf: bytes) -> tuple[bytes, bytes] | None:
    end = buf.find(TERMINATOR)
    return None if end < 0 else (buf[:end], buf[end + len(TERMINATOR) :])


class BtsLink(TcpLink):
    """One TCP connection to a BTS server: framed request -> framed reply."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0):
        super().__init__("neware", host, port, timeout_s, recv_bytes=1 << 20)

    def exchange(self, data: bytes) -> bytes:
        """Send one request, return its reply (terminator stripped)."""
        return self.transact(data, _split_reply)


# --- the channel -------------------------------------------------------------------------


class NewareChannel:
    """One channel of a BTS server (implements ``cyclerflow.acquire.cycler.CyclerChannel``)."""

    capabilities = frozenset({"cc", "cv", "ocv"})

    def __init__(self, resource: str, **options):
        host, port = parse_resource(resource)
        known = {"unit", "channel", "device", "user", "password", "timeout"}
        known |= {"stepdir", "backupdir", "chunk", "name"}
        unknown = set(options) - known
        if unknown:
            raise InputError(f"neware-bts: unknown option(s) {', '.join(sorted(unknown))}")
        self.name = str(options.get("name", ""))
        self.unit = int(options.get("unit", 1))
        self.channel = int(options.get("channel", 1))
        self.device = options.get("device")
        self.user = str(options.get("user", "admin"))
        self.password = str(options.get("password", "neware"))
        self.stepdir = Path(options.get("stepdir") or tempfile.gettempdir())
        self.backupdir = str(options.get("backupdir", "C:\\Neware data\\"))
        self.chunk = int(options.get("chunk", 1000))
        self.link = BtsLink(host, port, float(options.get("timeout", 10.0)))
        self.address: Address | None = None
        self._rate = 1.0

    def _ask(self, data: bytes, command: str) -> ET.Element:
        return parse_reply(self.link.exchange(data), command)

    def connect(self) -> None:
        self.link.open()
        self._rate = parse_connect(self._ask(connect_request(self.user, self.password), "connect"))
        addrs = parse_devinfo(self._ask(getdevinfo_request(), "getdevinfo"))
        want = [a for a in addrs if a.subdevid == self.unit and a.chlid == self.channel]
        if self.device is not None:
            want = [a for a in want if a.devid == int(self.device)]
        if not want:
            raise InstrumentError(
                f"neware: the server lists no channel unit={self.unit} channel={self.channel}"
                + (f" device={self.device}" if self.device is not None else "")
            )
        self.address = want[0]

    def close(self) -> None:
        self.link.close()

    def identify(self) -> str:
        a = self.address
        where = f"{a.devtype}-{a.devid}-{a.subdevid}-{a.chlid}" if a else "?"
        return f"Neware BTS {self.link.host}:{self.link.port} channel {where}"

    def clock_rate(self) -> float:
        return self._rate

    def check_recipe(self, recipe: Recipe) -> None:
        _check_recipe(recipe)

    def recipe_steps(self, recipe: Recipe) -> dict[int, tuple[int, str]]:
        sched = to_step_file(recipe)
        return {k: (v, sched.kind_of_step[k]) for k, v in sched.leaf_of_step.items()}

    def start(self, recipe: Recipe, barcode: str) -> None:
        sched = to_step_file(recipe, remark=barcode)
        path = self.stepdir / f"cyclerflow-{barcode or 'test'}-{self.unit}-{self.channel}.xml"
        path.write_text(sched.xml, encoding="utf-8")
        root = self._ask(start_request(self.address, barcode, str(path), self.backupdir), "start")
        if parse_results(root) != [True]:
            raise InstrumentError(f"neware: channel {self.identify()} refused to start")

    def stop(self) -> None:
        root = self._ask(stop_request([self.address]), "stop")
        if parse_results(root) != [True]:
            raise InstrumentError(f"neware: channel {self.identify()} did not stop")

    def status(self) -> CyclerStatus:
        (state,) = parse_states(self._ask(getchlstatus_request([self.address]), "getchlstatus"))
        ((test_id, count),) = parse_inquiredf(
            self._ask(inquiredf_request([self.address]), "inquiredf")
        )
        alarm = ""
        if state == "protect":
            entries = self.log()
            alarm = f"log_code={entries[-1][1]}" if entries else "protect"
        return CyclerStatus(state, test_id, count, alarm)

    def download(self, from_seq: int, count: int) -> CyclerRecords:
        parts = []
        done = 0
        while done < count:
            n = min(self.chunk, count - done)
            recs = parse_download(
                self.link.exchange(download_request(self.address, from_seq + done, n))
            )
            if not len(recs):
                break
            parts.append(recs)
            done += len(recs)
        return concat_records(parts)

    def log(self) -> list[tuple[int, int, str]]:
        return parse_log(self._ask(downloadlog_request(self.address), "downloadlog"))

    def inquire(self) -> dict[str, str]:
        (rec,) = parse_inquire(self._ask(inquire_request([self.address]), "inquire"))
        return rec

    def light(self, on: bool = True) -> bool:
        return parse_results(self._ask(light_request([self.address], on), "light")) == [True]

    def clearflag(self) -> bool:
        return parse_results(self._ask(clearflag_request([self.address]), "clearflag")) == [True]


def concat_records(parts: list[CyclerRecords]) -> CyclerRecords:
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return _records([], [], [], [], [], [], [], [], [])
    names = CyclerRecords.__dataclass_fields__
    return CyclerRecords(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in names})


def open_channel(resource: str, **options) -> NewareChannel:
    return NewareChannel(resource, **options)


def check_recipe(recipe: Recipe) -> None:
    """Raise InputError naming the first recipe step a Neware step file cannot hold."""
    _check_recipe(recipe)


def serve_cycler_simulator(**kwargs) -> None:
    """``cyclerflow simulate neware-bts``: blocking (see drivers/sim/neware_bts.py)."""
    from .sim.neware_bts import serve

    serve(**kwargs)


#: every message: name -> (request builder, reply parser), functions of this module
MESSAGES = {
    "connect": ("connect_request", "parse_connect"),
    "getdevinfo": ("getdevinfo_request", "parse_devinfo"),
    "getchlstatus": ("getchlstatus_request", "parse_states"),
    "inquire": ("inquire_request", "parse_inquire"),
    "inquiredf": ("inquiredf_request", "parse_inquiredf"),
    "start": ("start_request", "parse_results"),
    "stop": ("stop_request", "parse_results"),
    "light": ("light_request", "parse_results"),
    "clearflag": ("clearflag_request", "parse_results"),
    "download": ("download_request", "parse_download"),
    "downloadlog": ("downloadlog_request", "parse_log"),
}

# fmt: off
#: unit of every numeric field sent or read ("1": a count, index or code)
FIELD_UNITS: dict[str, str] = {
    # addresses, ids, counts, flags and codes (requests and replies)
    **dict.fromkeys(
        ("devtype", "devid", "subdevid", "chlid", "Channelid", "testid", "auxid", "aux",
         "barcode", "count", "startpos", "seqid", "stepid", "cycleid", "log_code",
         "log_lever", "open_or_close", "reservepause", "port", "version", "filenametype",
         "filetype", "addtimewhenrepeat", "createdirbydate", "backupontime", "backupfree"),
        "1",
    ),
    "backupontimeinterval": "min",
    CLOCK_TAG: "1",  # simulated s per wall s
    # download records: step time in ms, SI otherwise
    "testtime": "ms", "volt": "V", "curr": "A", "cap": "Ah", "eng": "Wh",
    # inquire replies (latest reading)
    "voltage": "V", "current": "A", "capacity": "mAh", "energy": "mWh",
    "totaltime": "s", "relativetime": "s",
    # CyclerRecords built from the download
    "seq": "1", "step_id": "1", "cycle_id": "1", "step_time_s": "s", "voltage_v": "V",
    "current_a": "A", "capacity_ah": "Ah", "energy_wh": "Wh",
    "step_type": "1",  # a label array (rest, cc, dc ...)
}
# fmt: on
