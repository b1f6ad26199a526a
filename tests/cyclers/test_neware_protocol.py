"""Byte-level tests of every Neware BTS request the driver sends and every reply it reads.

Reply texts marked "recorded" keep the layout and values of replies recorded from a real
BTS 8.0 server and published with an open-source client (docs/cyclers.md, sources).
"""

from __future__ import annotations

import numpy as np
import pytest

from cyclerflow.drivers import neware_bts as nw
from cyclerflow.errors import InputError, InstrumentError

from . import cycler_helpers

DRIVER = "neware-bts"
#: message coverage of this module (fixtures of cycler_helpers)
_cycler_exchanges = cycler_helpers._cycler_exchanges
message_coverage = cycler_helpers.message_coverage

A = nw.Address("127.0.0.1", 27, 21, 1, 1)
HEAD = b'<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
T = b"\n\n#\r\n"
RHEAD = b'<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n'
ADDR = b'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="1"'


def test_connect_and_getdevinfo_requests():
    assert nw.connect_request() == HEAD + (
        b"<cmd>connect</cmd><username>admin</username><password>neware</password>"
        b"<type>bfgs</type></bts>" + T
    )
    assert nw.getdevinfo_request() == HEAD + b"<cmd>getdevinfo</cmd></bts>" + T


@pytest.mark.parametrize(
    ("build", "cmd", "tag", "tail"),
    [
        (nw.getchlstatus_request, b"getchlstatus", b"status", b">true</status>"),
        (nw.inquire_request, b"inquire", b"inquire", b' aux="0" barcode="1">true</inquire>'),
        (nw.stop_request, b"stop", b"stop", b">true</stop>"),
        (nw.clearflag_request, b"clearflag", b"clearflag", b">true</clearflag>"),
        (nw.light_request, b"light", b"light", b">true</light>"),
    ],
)
def test_listed_requests(build, cmd, tag, tail):
    want = HEAD + b"<cmd>" + cmd + b'</cmd><list count = "1"><' + tag + b" " + ADDR + tail
    assert build([A]) == want + b"</list></bts>" + T


def test_light_off_two_channels():
    b = nw.Address("127.0.0.1", 27, 21, 2, 8)
    got = nw.light_request([A, b], on=False)
    assert got.count(b">false</light>") == 2 and b'<list count = "2">' in got
    assert b'subdevid="2" chlid="8"' in got


def test_inquiredf_download_downloadlog_requests():
    addr = b'devtype="27" devid="21" subdevid="1" chlid="1"'
    assert nw.inquiredf_request([A]) == HEAD + (
        b'<cmd>inquiredf</cmd><list count = "1"><chl ' + addr + b' testid="0" /></list></bts>' + T
    )
    assert nw.download_request(A, 219576, 1000) == HEAD + (
        b"<cmd>download</cmd><download " + addr + b' auxid="0" testid="0" startpos="219576" '
        b'count="1000"/></bts>' + T
    )
    assert nw.downloadlog_request(A) == HEAD + (
        b"<cmd>downloadlog</cmd><download " + addr + b' testid="0"/></bts>' + T
    )


def test_start_request_escapes_barcode_and_path():
    got = nw.start_request(A, 'cell "7" <a>', "C:\\steps\\x&y.xml", "C:\\Neware data\\")
    assert got.startswith(HEAD + b'<cmd>start</cmd><list count = "1"><start ' + ADDR)
    assert b' barcode="cell &quot;7&quot; &lt;a&gt;">C:\\steps\\x&amp;y.xml</start>' in got
    assert b'<backup backupdir="C:\\Neware data\\" remotedir=""' in got
    assert got.endswith(b'backupfree="1" /></list></bts>' + T)


# --- replies -------------------------------------------------------------------------------


def _reply(cmd: bytes, body: bytes) -> bytes:
    return RHEAD + b"  <cmd>" + cmd + b"</cmd>\r\n" + body + b"</bts>"


def test_connect_reply_and_clock_field():
    ok = _reply(b"connect_resp", b"  <result>ok</result>\r\n")  # recorded
    assert nw.parse_connect(nw.parse_reply(ok, "connect")) == 1.0
    sim = _reply(b"connect_resp", b"  <result>ok</result>\r\n  <sim-clock>1000</sim-clock>\r\n")
    assert nw.parse_connect(nw.parse_reply(sim, "connect")) == 1000.0
    bad = _reply(b"connect_resp", b"  <result>ok</result>\r\n  <sim-clock>fast</sim-clock>\r\n")
    with pytest.raises(InstrumentError, match="clock"):
        nw.parse_connect(nw.parse_reply(bad, "connect"))
    with pytest.raises(InstrumentError, match="refused"):
        nw.parse_connect(
            nw.parse_reply(_reply(b"connect_resp", b"<result>false</result>"), "connect")
        )


def test_getdevinfo_reply_recorded():
    body = (
        b'  <serverip count="1">\r\n    <server ip="127.0.0.1" port="3306" />\r\n  </serverip>\r\n'
        b'  <middle count="2">\r\n'
        b'    <channel ip="127.0.0.1" devtype="27" devid="21" subdevid="1" Channelid="1">true</channel>\r\n'
        b'    <channel ip="127.0.0.1" devtype="27" devid="21" subdevid="2" Channelid="8">false</channel>\r\n'
        b"</middle>\r\n"
    )
    got = nw.parse_devinfo(nw.parse_reply(_reply(b"getdevinfo_resp", body), "getdevinfo"))
    assert got == [A, nw.Address("127.0.0.1", 27, 21, 2, 8)]


def _listing(cmd: bytes, lines: list[bytes]) -> bytes:
    inner = b"".join(b"    " + x + b"\r\n" for x in lines)
    return _reply(cmd, b'  <list count="%d">\r\n' % len(lines) + inner + b"  </list>\r\n")


def test_status_inquire_inquiredf_replies_recorded():
    st = _listing(
        b"getchlstatus_resp",
        [b"<status " + ADDR + b' reservepause="1">finish</status>',
         b"<status " + ADDR + b' reservepause="1">working</status>'],
    )  # fmt: skip
    assert nw.parse_states(nw.parse_reply(st, "getchlstatus")) == ["finish", "working"]
    inq = _listing(
        b"inquire_resp",
        [b'<inquire dev="27-21-1-2-0" cycle_id="44" step_id="4" step_type="dc" workstatus="working" '
         b'barcode="251203_kigr_gen17_02" current="-0.0003" voltage="4.6947" capacity="0.001" '
         b'energy="0.0047" totaltime="3189199.3" relativetime="12319" open_or_close="0" '
         b'log_code="102000" />'],
    )  # fmt: skip
    (rec,) = nw.parse_inquire(nw.parse_reply(inq, "inquire"))
    assert rec["workstatus"] == "working" and rec["step_type"] == "dc" and rec["cycle_id"] == "44"
    df = _listing(
        b"inquiredf_resp",
        [b'<chl devtype="27" devid="21" subdevid="1" chlid="1" testid="143" count="219585">true</chl>'],
    )  # fmt: skip
    assert nw.parse_inquiredf(nw.parse_reply(df, "inquiredf")) == [(143, 219585)]


@pytest.mark.parametrize("cmd", ["start", "stop", "light", "clearflag"])
def test_result_replies(cmd):
    c = cmd.encode()
    ok = _listing(c + b"_resp", [b"<" + c + b" " + ADDR + b">ok</" + c + b">"])
    no = _listing(c + b"_resp", [b"<" + c + b" " + ADDR + b">false</" + c + b">"])
    assert nw.parse_results(nw.parse_reply(ok, cmd)) == [True]
    assert nw.parse_results(nw.parse_reply(no, cmd)) == [False]


DOWNLOAD = _reply(
    b"donwload_resp",  # recorded: the server misspells it
    b'  <download devtype="27" devid="21" subdevid="1" chlid="1" testid="143" startpos="219576" '
    b'count="1000" auxid="0" />\r\n  <list count="2">\r\n'
    b'    <data seqid="219576" stepid="24" cycleid="29" steptype="dc" testtime="36070000" '
    b'atime="2025-12-28 22:29:05" volt="3.6780698299408" curr="-0.000295051460852847" '
    b'cap="0.00295628436449786" eng="0.0135611368830335" />\r\n'
    b'    <data seqid="219577" stepid="24" cycleid="29" steptype="dc" testtime="36080000" '
    b'atime="2025-12-28 22:29:15" volt="3.65799260139465" curr="-0.000295052188448608" '
    b'cap="0.00295710395391022" eng="0.0135641349350401" />\r\n  </list>\r\n',
)


def test_download_reply_recorded_fast_and_xml_paths_agree():
    r = nw.parse_download(DOWNLOAD)
    assert r.seq.tolist() == [219576, 219577] and r.step_id.tolist() == [24, 24]
    assert r.cycle_id.tolist() == [29, 29] and r.step_type.tolist() == ["dc", "dc"]
    assert r.step_time_s.tolist() == [36070.0, 36080.0]  # testtime is the step time in ms
    assert r.voltage_v[0] == 3.6780698299408 and r.current_a[1] == -0.000295052188448608
    assert r.capacity_ah[0] == 0.00295628436449786 and r.energy_wh[1] == 0.0135641349350401
    # attribute order changed: the fast path must step aside, the XML path reads it
    swapped = DOWNLOAD.replace(b'volt="3.6780698299408" curr', b"curr").replace(
        b'atime="2025-12-28 22:29:05"', b'atime="2025-12-28 22:29:05" volt="3.6780698299408"'
    )
    s = nw.parse_download(swapped)
    for f in ("seq", "voltage_v", "current_a", "capacity_ah", "step_time_s"):
        np.testing.assert_array_equal(getattr(s, f), getattr(r, f))
    empty = _reply(b"donwload_resp", b'  <download devtype="27" />\r\n  <list count="0" />\r\n')
    assert len(nw.parse_download(empty)) == 0


def test_downloadlog_reply_recorded():
    log = _reply(
        b"donwloadlog_resp",
        b'  <download devtype="27" devid="21" subdevid="1" chlid="1" testid="143" log_lever="0" />\r\n'
        b'  <list count="2">\r\n    <data seqid="1" log_code="100000" atime="2025-12-03 16:44:02" />\r\n'
        b'    <data seqid="219585" log_code="100001" atime="2025-12-28 22:30:11" />\r\n  </list>\r\n',
    )
    assert nw.parse_log(nw.parse_reply(log, "downloadlog")) == [
        (1, 100000, "2025-12-03 16:44:02"),
        (219585, 100001, "2025-12-28 22:30:11"),
    ]


def test_wrong_or_garbled_replies_are_errors():
    with pytest.raises(InstrumentError, match="expected a reply to stop"):
        nw.parse_reply(_reply(b"start_resp", b""), "stop")
    with pytest.raises(InstrumentError, match="unreadable"):
        nw.parse_reply(b"#@!<bts", "stop")
    with pytest.raises(InstrumentError):
        nw.parse_download(b'<bts><cmd>inquire_resp</cmd><list count="0"/></bts>')


def test_resource_strings():
    assert nw.parse_resource("TCPIP0::10.0.0.5::502::SOCKET") == ("10.0.0.5", 502)
    with pytest.raises(InputError, match="TCPIP0::HOST::PORT::SOCKET"):
        nw.parse_resource("ASRL/dev/ttyUSB0::INSTR")
    with pytest.raises(InputError, match="unknown option"):
        nw.NewareChannel("TCPIP0::h::502::SOCKET", chanel=2)


def test_simulator_answers_every_command_in_the_recorded_layout(neware_sim):
    sim = neware_sim(channels=2, units=2, speedup=0)
    strip = lambda b: b[: -len(T)]  # noqa: E731
    b = nw.Address("127.0.0.1", 27, 1, 2, 2)
    for req, cmd in [
        (nw.connect_request(), "connect"),
        (nw.getdevinfo_request(), "getdevinfo"),
        (nw.getchlstatus_request([b]), "getchlstatus"),
        (nw.inquire_request([b]), "inquire"),
        (nw.inquiredf_request([b]), "inquiredf"),
        (nw.stop_request([b]), "stop"),
        (nw.light_request([b]), "light"),
        (nw.clearflag_request([b]), "clearflag"),
        (nw.download_request(b, 1, 10), "download"),
        (nw.downloadlog_request(b), "downloadlog"),
    ]:
        out = sim.handle(strip(req))
        assert out.startswith(RHEAD) and out.endswith(b"</bts>" + T)
        nw.parse_reply(strip(out), cmd)
    rate = nw.parse_connect(
        nw.parse_reply(strip(sim.handle(strip(nw.connect_request()))), "connect")
    )
    assert rate == 0.0  # speed-up 0: the clock moves only when a test advances it
    devs = nw.parse_devinfo(
        nw.parse_reply(strip(sim.handle(strip(nw.getdevinfo_request()))), "getdevinfo")
    )
    assert len(devs) == 4 and b in devs
    out = sim.handle(strip(nw.download_request(b, 1, 10)))
    assert b"<cmd>donwload_resp</cmd>" in out


def test_simulator_cells_per_channel_from_a_file(tmp_path):
    from cyclerflow.drivers.sim.neware_bts import NewareSim

    from .cycler_helpers import CELL

    big = CELL.read_text().replace("nominal_capacity_uah: 15", "nominal_capacity_uah: 30")
    (tmp_path / "big.yaml").write_text(big)
    (tmp_path / "small.yaml").write_text(CELL.read_text())
    (tmp_path / "rack.yaml").write_text("channels: {2: big.yaml}\ndefault: small.yaml\n")
    sim = NewareSim(channels=3, speedup=0, cell=tmp_path / "rack.yaml")
    try:
        caps = [sim.channel(1, c).model.params.capacity_ah for c in (1, 2, 3)]
    finally:
        sim.stop()
    assert caps == pytest.approx([15e-6, 30e-6, 15e-6])
    (tmp_path / "bad.yaml").write_text("channels: {one: big.yaml}\n")
    with pytest.raises(InputError, match="channel number"):
        NewareSim(channels=1, cell=tmp_path / "bad.yaml")


def test_every_message_is_covered_and_its_numbers_have_units(message_coverage):
    """Runs last: every message's builder and parser ran in this module, and every
    numeric field they carried declares a unit in the driver's FIELD_UNITS."""
    uncovered, no_units = message_coverage()
    assert uncovered == [], f"messages no test here exercised: {uncovered}"
    assert no_units == [], f"numeric fields without units: {no_units}"
