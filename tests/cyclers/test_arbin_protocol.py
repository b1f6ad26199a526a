"""Arbin CTI: byte-level tests of every request and reply the driver uses."""

from __future__ import annotations

import socket
import struct

import pytest

from cyclerflow.drivers import arbin_cti as cti
from cyclerflow.errors import InputError, InstrumentError

from . import cycler_helpers

DRIVER = "arbin-cti"
#: message coverage of this module (fixtures of cycler_helpers)
_cycler_exchanges = cycler_helpers._cycler_exchanges
message_coverage = cycler_helpers.message_coverage

HEAD = bytes.fromhex("dddddddddddddd11")  # 0x11DDDDDDDDDDDDDD little-endian


def _check(msg: bytes, code: int, total: int) -> bytes:
    """Header, length (bytes after it), command, extended code 0, byte-sum checksum."""
    assert len(msg) == total
    assert msg[:8] == HEAD
    assert struct.unpack_from("<I", msg, 8)[0] == total - 12
    assert struct.unpack_from("<II", msg, 12) == (code, 0)
    assert struct.unpack_from("<H", msg, total - 2)[0] == sum(msg[:-2]) % 65536
    return msg[20:-2]


def test_login_request_bytes():
    body = _check(cti.login_request("123", "pw"), 0xEEAB0001, 86)  # length field 74
    assert body[:32] == b"123" + bytes(29)
    assert body[32:64] == b"pw" + bytes(30)


def test_channel_info_request_bytes():
    body = _check(cti.channel_info_request(5), 0xEEAB0003, 62)  # length field 50
    assert struct.unpack_from("<hhI", body) == (5, 1, 0) and body[8:] == bytes(32)


def test_assign_start_stop_request_bytes():
    body = _check(cti.assign_schedule_request(2, "Rest.sdx", 1.5e-5, "B7"), 0xBB210001, 671)
    assert struct.unpack_from("<iB", body) == (2, 0)
    assert body[5:405].rstrip(b"\0") == "Rest.sdx".encode("utf-16-le").rstrip(b"\0")
    assert struct.unpack_from("<f", body, 405)[0] == pytest.approx(1.5e-5)
    assert body[409:553].decode("utf-16-le").rstrip("\0") == "B7"
    body = _check(cti.start_schedule_request(3, "t1"), 0xBB320004, 172)  # length 160
    assert body[:144].decode("utf-16-le").rstrip("\0") == "t1"
    assert struct.unpack_from("<IH", body, 144) == (1, 3)
    body = _check(cti.stop_schedule_request(7), 0xBB310001, 128)  # length 116
    assert struct.unpack_from("<IB", body) == (7, 0) and body[5:] == bytes(101)


def test_checksum_wraps_at_16_bits():
    msg = cti.frame(0xEEBA0001, bytes([0xFF]) * 1000)
    assert sum(msg[:-2]) > 65535
    assert struct.unpack_from("<H", msg, len(msg) - 2)[0] == sum(msg[:-2]) & 0xFFFF
    assert cti.split_frame(msg + b"xy") == (0xEEBA0001, bytes([0xFF]) * 1000, b"xy")


def test_split_frame_waits_and_refuses_bad_frames():
    msg = cti.login_request("a", "b")
    assert cti.split_frame(msg[:30]) is None
    bad = msg[:-1] + bytes([msg[-1] ^ 1])
    with pytest.raises(cti.ChecksumError, match="bad checksum"):
        cti.split_frame(bad)
    with pytest.raises(cti.ChecksumError, match="not a CTI frame"):
        cti.split_frame(b"\0" * 8 + msg[8:])


def _login_reply(result=1, channels=16, tail=b"") -> bytes:
    body = cti.LOGIN_REP.pack(
        result, b"\x7f\0\0\1", b"SN123", b"", b"", b"", b"", b"", b"", b"", 0, 8, 1, channels, 1, 0
    )
    return cti.frame(0xEEBA0001, body + tail)


def test_login_reply_layout_and_clock():
    msg = _login_reply()
    assert len(msg) == 8678
    payload = _check(msg, 0xEEBA0001, 8678)
    assert payload[8632:8656] == struct.pack("<IIIIII", 0, 8, 1, 16, 1, 0)  # at byte 8652
    r = cti.parse_login(payload)
    assert (r.result, r.serial, r.version, r.channels, r.clock_rate) == (
        "success",
        "SN123",
        8,
        16,
        1.0,
    )
    tail = cti.SIM_CLOCK_TAG + struct.pack("<d", 1000.0)
    assert cti.parse_login(cti.split_frame(_login_reply(tail=tail))[1]).clock_rate == 1000.0
    assert cti.parse_login(cti.split_frame(_login_reply(result=2))[1]).result == "fail"


def _info_block(k=1, status=2, text="Step 3 Cycle 2", name="T", aux=0) -> bytes:
    counts = [aux] + [0] * 13
    return cti.INFO_CHANNEL.pack(
        k, status, 0, "S.sdx".encode("utf-16-le"), name.encode("utf-16-le"), b"",
        text.encode(), b"", b"", b"", 0, 100.5, 20.25, 3.9, 1.5e-5, 0.0, 2e-6, 0.0, 7e-6, 0.0,
        *([0.0] * 5), *counts,
    ) + bytes(8 * aux)  # fmt: skip


def test_channel_info_reply_layout():
    block = _info_block()
    assert len(block) == 1753
    msg = cti.frame(0xEEBA0003, struct.pack("<I", 1) + block)
    payload = _check(msg, 0xEEBA0003, 1779)  # one channel, no aux: 1779 bytes
    # fields at the byte offsets of the public layout (frame offsets)
    assert struct.unpack_from("<dd", msg, 1685) == (100.5, 20.25)
    assert struct.unpack_from("<f", msg, 1701)[0] == pytest.approx(3.9)
    (r,) = cti.parse_channel_info(payload)
    assert (r.channel, r.status_name, r.schedule, r.test_name) == (1, "Charge", "S.sdx", "T")
    assert r.step_cycle() == (3, 2)
    assert r.charge_capacity_ah == pytest.approx(2e-6) and r.charge_energy_wh == pytest.approx(7e-6)
    two = struct.pack("<I", 2) + _info_block(0, aux=2) + _info_block(1, status=15)
    got = cti.parse_channel_info(two)
    assert [x.channel for x in got] == [0, 1] and got[1].status_name == "Finished"
    with pytest.raises(InstrumentError, match="shorter"):
        cti.parse_channel_info(struct.pack("<I", 2) + block)
    with pytest.raises(InstrumentError, match="no step and cycle"):
        cti.parse_channel_info(struct.pack("<I", 1) + _info_block(text="--"))[0].step_cycle()


def test_result_replies():
    msg = cti.frame(0xBB230004, cti.RESULT_REP.pack(3, 21, b""))
    payload = _check(msg, 0xBB230004, 128)
    assert cti.parse_result(payload, cti.START_RESULTS) == (
        3,
        21,
        "no schedule assigned to the channel",
    )
    assert (
        cti.parse_result(payload, cti.ASSIGN_RESULTS)[2]
        == "channel is downloading another schedule"
    )
    assert (
        cti.state_of(15) == "finish"
        and cti.state_of(8) == "protect"
        and cti.state_of(2) == "working"
    )


def test_resource_and_options():
    assert cti.parse_resource("TCPIP0::10.0.0.5::9031::SOCKET") == ("10.0.0.5", 9031)
    with pytest.raises(InputError, match="expected TCPIP0"):
        cti.parse_resource("COM3")
    with pytest.raises(InputError, match="unknown option"):
        cti.ArbinChannel("TCPIP0::h::1::SOCKET", unit=2)
    with pytest.raises(InputError, match="option 'schedule'"):
        cti.ArbinChannel("TCPIP0::h::1::SOCKET", channel=2)
    with pytest.raises(InputError, match="longer than 71 characters"):
        cti.start_schedule_request(0, "x" * 80)


def test_simulator_refuses_a_bad_checksum_and_keeps_serving():
    from cyclerflow.drivers.sim.arbin_cti import ArbinSim

    sim = ArbinSim(channels=2, speedup=1000).start()
    try:
        good = cti.login_request("admin", "x")
        with socket.create_connection((sim.host, sim.port), timeout=5) as s:
            s.sendall(good[:-2] + bytes([good[-2] ^ 0xFF, good[-1]]))
            assert s.recv(100) == b""  # no reply: the connection is closed
        assert sim.rejected == 1
        ch = cti.ArbinChannel(sim.resource, channel=2, schedule="none.sdx")
        ch.connect()  # a new connection is served
        assert ch.clock_rate() == 1000.0 and ch.login.channels == 2
        st = ch.status()
        assert (st.state, st.test_id, st.record_count) == ("stop", 0, 0)
        ch.close()
    finally:
        sim.stop()


def test_every_message_is_covered_and_its_numbers_have_units(message_coverage):
    """Runs last: every message's builder and parser ran in this module, and every
    numeric field they carried declares a unit in the driver's FIELD_UNITS."""
    uncovered, no_units = message_coverage()
    assert uncovered == [], f"messages no test here exercised: {uncovered}"
    assert no_units == [], f"numeric fields without units: {no_units}"
