"""MethodSCRIPT: packet parser and byte-level protocol tests of the PalmSens driver."""

from __future__ import annotations

import numpy as np
import pytest
from protocol_helpers import assert_guard_refusals

from cyclerflow.acquire.instrument import GuardedSource, SourceMeterChannel, StepGuard
from cyclerflow.drivers import palmsens
from cyclerflow.drivers.methodscript import (
    encode_value,
    parse_reply,
    parse_si_text,
    parse_value,
    si_text,
)
from cyclerflow.drivers.transports import ScriptedTransport
from cyclerflow.errors import InputError, InstrumentError

DRIVER = "palmsens"  # byte coverage of its command table: conftest.byte_coverage
PKT = "Peb80030D4m;ab83BB299u,10;ba8E4E1C0p,10,288"  # t=12.5 s, 3.912345 V, 15 µA


# --- parser ---------------------------------------------------------------------------
def test_packet_from_the_manual_example():
    r = parse_reply("Pda7F85F3Fu;ba48D503Dp,10,288")
    assert r.kind == "packet"
    da, ba = r.values
    assert da.type == "da" and da.quantity == "set_potential"
    assert da.value == pytest.approx((0x7F85F3F - 0x8000000) * 1e-6)  # -0.499905 V
    assert ba.value == pytest.approx((0x48D503D - 0x8000000) * 1e-12)
    assert ba.metadata == {"status": 0, "current_range": 0x88}


def test_status_flags_and_prefixes():
    v = parse_value("ba8000001n,13")
    assert v.value == pytest.approx(1e-9) and v.status_flags == ["timing_error", "overload"]
    assert parse_value("dc80003E8 ").value == 1000.0  # space = no prefix
    assert parse_value("ee8000010i").value == 16.0  # integer
    assert parse_value("cc8000002k").value == 2000.0
    assert parse_value("cb8000003M").value == 3e6


def test_encode_value_round_trip_and_resolution():
    for vt, x in [
        ("ab", 4.123456),
        ("ba", -7.5e-6),
        ("eb", 3600.123),
        ("cc", 1.2345e5),
        ("ba", 0.0),
    ]:
        assert parse_value(encode_value(vt, x)).value == pytest.approx(x, rel=1e-6, abs=1e-15)
    assert encode_value("ba", 15e-6) == "ba8E4E1C0p"  # hand-computed: 0x8000000 + 15e6 pA


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("e", "accepted"),
        ("M0007", "loop_start"),
        ("*", "loop_end"),
        ("", "end"),
        ("Thello", "text"),
    ],
)
def test_reply_kinds(line, kind):
    assert parse_reply(line).kind == kind


def test_error_reply():
    r = parse_reply("!0004: Line 3, Col 1")
    assert r.kind == "error" and r.code == 4 and "unknown command" in r.text and "Line 3" in r.text


@pytest.mark.parametrize(
    "line",
    ["Pab83BB2u", "P1z83BB299u", "PAB83BB299u", "Pab83BB29Gxu", "Pab83BB299u,9", "#@!~", "!zz"],
)
def test_garbled_lines_raise_naming_source_and_context(line):
    with pytest.raises(InstrumentError, match="psx.*'meas_loop_cp'.*garbled"):
        parse_reply(line, source="psx", context="meas_loop_cp")


def test_si_text():
    assert [si_text(x) for x in (4.2, 15e-6, 1e6, 0.1, 0, -0.5, 3.9123456)] == [
        "4200m",
        "15u",
        "1000000",
        "100m",
        "0",
        "-500m",
        "3912346u",
    ]
    assert (
        parse_si_text("4200m") == pytest.approx(4.2)
        and parse_si_text("51") == 51
        and parse_si_text("5i") == 5
    )


# --- driver bytes ---------------------------------------------------------------------
def channel(exchanges, **options):
    t = ScriptedTransport(exchanges, name="palmsens")
    return palmsens.open_channel("/dev/ttyUSB0", transport=t, **options), t


def finish(t):
    t.assert_done()


CONNECT = [("t", "tespico R1.3.2")]
LOOP_BODY = [
    "  timer_get t",
    "  pck_start",
    "    pck_add t",
    "    pck_add p",
    "    pck_add c",
    "  pck_end",
]


def ocp_lines(interval: str, duration: str, *, timer: bool = True) -> list[str]:
    """The MethodSCRIPT the driver sends for open-circuit potential readings."""
    return [
        "var p",
        "var t",
        *(["timer_start"] if timer else []),
        "set_pgstat_chan 0",
        "set_pgstat_mode 2",
        f"meas_loop_ocp p {interval} {duration}",
        "  timer_get t",
        "  pck_start",
        "    pck_add t",
        "    pck_add p",
        "  pck_end",
        "endloop",
    ]


def script(lines, replies):
    ex = [("e", None)] + [(x, None) for x in lines]
    return ex + [("", replies)]


def test_charge_script_with_compliance_and_read():
    cp = [
        "var p",
        "var c",
        "var t",
        "timer_start",
        "set_pgstat_chan 0",
        "set_pgstat_mode 2",
        "set_range ba 15u",
        "cell_on",
        "meas_loop_cp p c 15u 1 1000000",
        *LOOP_BODY,
        "  if p > 4200m",
        "    breakloop",
        "  endif",
        "endloop",
        "meas_loop_ca p c 4200m 1 1000000",
        *LOOP_BODY,
        "endloop",
        "on_finished:",
        "  cell_off",
    ]
    ch, t = channel(CONNECT + script(cp, ["e", "M0008", PKT]))
    assert isinstance(ch, SourceMeterChannel) and "eis" in ch.capabilities
    ch.connect()
    assert ch.identify() == "tespico R1.3.2"
    ch.source_current(15e-6, 4.2)
    s = ch.read()
    assert (s.time_s, s.voltage_v, s.current_a) == pytest.approx((12.5, 3.912345, 15e-6))
    finish(t)


def test_discharge_cv_ocv_and_abort():
    dis = [
        "var p",
        "var c",
        "var t",
        "timer_start",
        "set_pgstat_chan 0",
        "set_pgstat_mode 2",
        "set_range ba 7500n",
        "cell_on",
        "meas_loop_cp p c -7500n 500m 3600",
        *LOOP_BODY,
        "endloop",
        "on_finished:",
        "  cell_off",
    ]
    cv = [
        "var p",
        "var c",
        "var t",
        "var s",
        "set_pgstat_chan 0",
        "set_pgstat_mode 2",
        "set_range ba 20u",
        "store_var s 4200m da",  # the set point in every packet (read back on reconnect)
        "set_e 4200m",
        "cell_on",
        "meas_loop_ca p c 4200m 500m 3600",
        *LOOP_BODY[:-1],
        "    pck_add s",
        LOOP_BODY[-1],
        "endloop",
        "on_finished:",
        "  cell_off",
    ]
    ocv = ocp_lines("500m", "3600", timer=False)
    ch, t = channel(
        CONNECT
        + script(dis, ["e", "M0008", "Peb80030D4m;ab83BB299u;ba78D8F20p"])
        + [("Z", ["*", ""])]
        + script(cv, ["e", "M0007"])
        + [("Z", ["*", ""])]
        + script(ocv, ["e", "M000B"])
        + [("Z", ["*", ""])],
        interval_s=0.5,
        run_s=3600,
    )
    ch.connect()
    ch.source_current(-7.5e-6, 4.2)
    assert ch.read().current_a == pytest.approx(-7.5e-6)
    ch.source_voltage(4.2, 20e-6)
    ch.open_circuit()
    ch.output_off()
    ch.output_off()  # idempotent: nothing running, nothing sent
    finish(t)


def test_eis_script_around_measured_ocv():
    ocv = ocp_lines("100m", "100m")
    eis = [
        "var f",
        "var r",
        "var j",
        "set_pgstat_chan 0",
        "set_pgstat_mode 3",
        "set_max_bandwidth 200000",
        "set_range ba 1m",
        "set_e 3912345u",
        "cell_on",
        "meas_loop_eis f r j 10m 100000 1000 11 3912345u",
        "  pck_start",
        "    pck_add f",
        "    pck_add r",
        "    pck_add j",
        "  pck_end",
        "endloop",
        "on_finished:",
        "  cell_off",
    ]
    rest = ocp_lines("1", "1000000", timer=False)
    ch, t = channel(
        CONNECT
        + script(ocv, ["e", "M000B", "Peb80030D4m;ab83BB299u", "*", ""])
        + script(eis, ["e", "M000D", "Pdc80003E8 ;cc801E240m;cd7FF4D92m", "*", ""])
        + script(rest, ["e"])
    )
    ch.connect()
    f, z = ch.measure_eis(1e5, 1e3, 5, 0.01)
    np.testing.assert_allclose(f, [1000.0])
    np.testing.assert_allclose(z, [123.456 - 45.678j])
    finish(t)


def test_script_error_is_raised_with_line():
    ch, t = channel(
        CONNECT
        + [("e", None)]
        + [
            (x, None)
            for x in [
                *ocp_lines("1", "1000000"),
            ]
        ]
        + [("", ["!0004: Line 6, Col 1", ""])]
    )
    ch.connect()
    with pytest.raises(
        InstrumentError, match=r"palmsens .*'meas_loop_ocp'.*!0004 unknown command at Line 6"
    ):
        ch.open_circuit()


def test_in_stream_error_and_garbled_packet():
    ocv = ocp_lines("1", "1000000")
    ch, t = channel(
        CONNECT + script(ocv, ["e", "M000B", "Peb80030D4m;ab83BB299u", "!0005", "P#@!~"])
    )
    ch.connect()
    ch.open_circuit()
    with pytest.raises(InstrumentError, match="palmsens.*'meas_loop_ocp'.*garbled reply 'P#@!~'"):
        ch.read()


def test_bad_options_and_ranges():
    with pytest.raises(InputError, match="interval_s"):
        palmsens.open_channel("/dev/null", interval_s=0, transport=ScriptedTransport([]))
    ch, t = channel(CONNECT)
    ch.connect()
    with pytest.raises(InputError, match="current_range = 0.5 A is outside"):
        ch.source_current(0.5, 4.2)


# packets of a guarded discharge: time, potential, current and the set point (type db)
PKT_DIS = "Peb8989680u;ab83567E0u,10;ba71B1E40p,10;db71B1E40p"  # 10 s, 3.5 V, -15 uA, set -15 uA
PKT_TRIP = "Peb8B71B00u;ab82DC2D8u,10;ba71B1E40p,10;db71B1E40p"  # 12 s, 2.999 V: below 3 V
GUARD_LOOP = [
    "  timer_get t",
    "  pck_start",
    "    pck_add t",
    "    pck_add p",
    "    pck_add c",
    "    pck_add s",
    "  pck_end",
]


def guarded_cp(level, conditions, timer=True):
    lines = ["var p", "var c", "var t", "var s", *(["timer_start"] if timer else [])]
    lines += ["set_pgstat_chan 0", "set_pgstat_mode 2", "set_range ba 15u"]
    lines += [f"store_var s {level} db", "cell_on", f"meas_loop_cp p c {level} 1 1000000"]
    lines += GUARD_LOOP
    for cond in conditions:  # the device's own stop: both directions
        lines += [f"  if p {cond}", '    send_string "guard"', "    breakloop", "  endif"]
    return lines + ["endloop", "on_finished:", "  cell_off"]


def test_guarded_discharge_trips_on_the_device_and_is_read_back():
    ch, t = channel(
        CONNECT
        + script(guarded_cp("-15u", ["< 3"]), ["e", "M0008", PKT_DIS])
        + script(guarded_cp("15u", ["> 4200m", "< 3"], timer=False), ["e"])
    )
    assert isinstance(ch, GuardedSource) and ch.guarded_modes == {"cc", "cv", "ocv"}
    ch.connect()
    ch.source_current(-15e-6, 4.3, guard=StepGuard(voltage_min_v=3.0))
    s = ch.read()
    assert (s.time_s, s.voltage_v, s.current_a) == pytest.approx((10.0, 3.5, -15e-6))
    st = ch.source_state()
    assert (st.output_on, st.mode, st.setpoint, st.tripped) == (True, "current", -15e-6, False)
    t.pending.extend(
        [PKT_TRIP, "Tguard", "*", ""]
    )  # the device breaks the loop and ends the script
    s = ch.read()  # the packet that tripped; the driver does not restart the script
    assert s.voltage_v == pytest.approx(2.999) and ch.read().time_s == pytest.approx(12.0)
    st = ch.source_state()
    assert (st.output_on, st.mode, st.tripped) == (False, "off", True)
    # a charge: the guard's upper limit is the lower of the window and the compliance
    ch.source_current(15e-6, 4.2, guard=StepGuard(voltage_min_v=3.0, voltage_max_v=4.3))
    finish(t)


def test_reconnect_to_a_running_script_then_take_over():
    ch, t = channel(
        [("t", [PKT_DIS, "tespico R1.3.2"])]  # an earlier host's script still streams
        + [("Z", ["*", ""])]  # the next source change stops it first
        + script(guarded_cp("-15u", ["< 3"]), ["e"])
    )
    ch.connect()
    st = ch.source_state()
    assert (st.output_on, st.mode, st.setpoint) == (True, "current", -15e-6)
    assert st.reading.voltage_v == pytest.approx(3.5)
    ch.source_current(-15e-6, 4.3, guard=StepGuard(voltage_min_v=3.0))
    finish(t)
    # no packet seen before the firmware reply: the device answers busy, then Z, again
    ch, t = channel(
        CONNECT
        + script(guarded_cp("-15u", ["< 3"]), ["!0008"])
        + [("Z", ["*", ""])]
        + script(guarded_cp("-15u", ["< 3"]), ["e"])
    )
    ch.connect()
    ch.source_current(-15e-6, 4.3, guard=StepGuard(voltage_min_v=3.0))
    finish(t)


def test_guard_refusals_and_cv_compliance():
    ch, t = channel(CONNECT)
    ch.connect()
    assert_guard_refusals(ch)
    finish(t)


def test_every_command_is_covered(byte_coverage):
    """Runs last in this module: every command of the table was sent by a test above."""
    assert byte_coverage() == []
