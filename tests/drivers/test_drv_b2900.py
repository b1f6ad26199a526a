"""Byte-level protocol tests of the Keysight B2900 driver."""

from __future__ import annotations

import pytest

from cyclerflow.acquire.instrument import GuardedSource, SourceMeterChannel, StepGuard
from cyclerflow.drivers import b2900
from cyclerflow.drivers.transports import ScriptedTransport
from cyclerflow.errors import InputError, InstrumentError

IDN = "Keysight Technologies,B2901A,MY51140001,3.4.2011.5100"
NOERR = '+0,"No error"'
CONNECT = [
    ("*IDN?", IDN),
    ("*CLS", None),
    (":OUTP:OFF:MODE HIZ", None),
    (':SENS:FUNC "VOLT","CURR"', None),
    (":SENS:VOLT:RANG:AUTO ON", None),
    (":SENS:CURR:RANG:AUTO ON", None),
    (":FORM:ELEM:SENS VOLT,CURR,TIME", None),
    (":SYST:TIME:TIM:COUN:RES", None),
    (":SYST:ERR:NEXT?", NOERR),
]
# the first source change after connect stops a guard acquisition an earlier host may have
# left running (the B2900 cannot tell) and turns auto output-off off
ABORT = [(":ABOR:ACQ", None), (":OUTP:OFF:AUTO OFF", None)]
# the first constant-current source after connect: levels, then the mode, then on
CC_FIRST = ABORT + [
    (":SENS:VOLT:PROT 4.2", None),
    (":SOUR:CURR 1.5e-5", None),
    (":SOUR:FUNC:MODE CURR", None),
    (":OUTP ON", None),
    (":SYST:ERR:NEXT?", NOERR),
]
DRIVER = "b2900"  # byte coverage of its command table: conftest.byte_coverage


def channel(exchanges, **options):
    t = ScriptedTransport(exchanges, name="b2900")
    return b2900.open_channel("TCPIP0::192.0.2.11::5025::SOCKET", transport=t, **options), t


def finish(t):
    t.assert_done()


def test_connect_identify_and_type():
    ch, t = channel(CONNECT)
    assert isinstance(ch, SourceMeterChannel)
    ch.connect()
    assert ch.identify() == IDN
    finish(t)


def test_current_source_sets_level_before_mode_and_reads_meas():
    ch, t = channel(
        CONNECT
        + CC_FIRST
        + [
            (":MEAS?", "+3.912345E+00,+1.500000E-05,+1.250000E+01"),
            (":SENS:CURR:PROT 2e-5", None),
            (":SOUR:VOLT 4.2", None),
            (":SOUR:FUNC:MODE VOLT", None),
            (":OUTP ON", None),
            (":SYST:ERR:NEXT?", NOERR),
            (":MEAS?", "+4.200000E+00,+1.100000E-05,+1.300000E+01"),
        ]
    )
    ch.connect()
    ch.source_current(15e-6, 4.2)
    s = ch.read()
    assert (s.voltage_v, s.current_a, s.time_s) == (3.912345, 1.5e-5, 12.5)
    ch.source_voltage(4.2, 20e-6)
    s = ch.read()
    assert (s.voltage_v, s.current_a, s.time_s) == (4.2, 1.1e-5, 13.0)
    finish(t)


def test_switch_between_two_readings_in_one_message():
    ch, t = channel(
        CONNECT
        + CC_FIRST
        + [
            (
                ":MEAS?;:SENS:VOLT:PROT 20;:SOUR:CURR 0;:MEAS?",
                "+4.150200E+00,+1.500000E-05,+3.000000E+03;"
                "+4.101000E+00,+0.000000E+00,+3.000001E+03",
            ),
            (":SYST:ERR:NEXT?", NOERR),
        ]
    )
    ch.connect()
    ch.source_current(15e-6, 4.2)
    before, after = ch.open_circuit(read_around=True)
    assert (before.voltage_v, before.current_a, before.time_s) == (4.1502, 1.5e-5, 3000.0)
    assert (after.voltage_v, after.current_a, after.time_s) == (4.101, 0.0, 3000.001)
    finish(t)


def test_open_circuit_and_output_off():
    ch, t = channel(
        CONNECT
        + ABORT
        + [
            (":SENS:VOLT:PROT 20", None),
            (":SOUR:CURR 0", None),
            (":SOUR:FUNC:MODE CURR", None),
            (":OUTP ON", None),
            (":SYST:ERR:NEXT?", NOERR),
            (":OUTP OFF;:OUTP?", "0"),
            (":OUTP OFF;:OUTP?", "0"),
        ]
    )
    ch.connect()
    ch.open_circuit()
    ch.output_off()
    ch.close()
    finish(t)


def test_error_queue_surfaced_with_command():
    ch, t = channel(
        CONNECT
        + ABORT
        + [
            (":SENS:VOLT:PROT 4.2", None),
            (":SOUR:CURR 1.5e-5", None),
            (":SOUR:FUNC:MODE CURR", None),
            (":OUTP ON", None),
            (":SYST:ERR:NEXT?", '+802,"Output relay must be ON"'),
            (":SYST:ERR:NEXT?", NOERR),
        ]
    )
    ch.connect()
    with pytest.raises(
        InstrumentError,
        match=r'b2900 .*:ABOR:ACQ.*:SOUR:FUNC:MODE CURR.*802,"Output relay must be ON"',
    ):
        ch.source_current(15e-6, 4.2)
    finish(t)


def test_garbled_meas_and_range():
    ch, t = channel([(":MEAS?", "+3.9E+00;+1.5E-05")])
    with pytest.raises(InstrumentError, match="b2900.*':MEAS\\?'.*garbled"):
        ch.read()
    with pytest.raises(InputError, match="current_limit = 5 A is outside"):
        ch.source_voltage(4.2, 5.0)


def guard_program(low, high, interval="1"):
    """The B2900 guard: limit test on the voltage, stop at the first failure, timer-triggered
    acquisition, automatic output off when the channel goes idle."""
    return [
        (":CALC:FEED VOLT", None),
        (":CALC:LIM:FUNC LIM", None),
        (f":CALC:LIM:LOW {low}", None),
        (f":CALC:LIM:UPP {high}", None),
        (":CALC:LIM:STAT ON", None),
        (":CALC:CLIM:UPD IMM", None),
        (":TRIG:ACQ:SOUR TIM", None),
        (f":TRIG:ACQ:TIM {interval}", None),
        (":TRIG:ACQ:COUN 100000", None),
        (":ARM:ACQ:COUN INF", None),
        (":OUTP:OFF:AUTO ON", None),
        (":INIT:ACQ", None),
    ]


def test_guarded_discharge_trip_read_back_and_hold():
    ch, t = channel(
        CONNECT
        + ABORT
        + [
            (":SENS:VOLT:PROT 4.3", None),
            (":SOUR:CURR -1.5e-5", None),
            (":SOUR:FUNC:MODE CURR", None),
            (":OUTP ON", None),
            *guard_program("3", "210"),
            (":SYST:ERR:NEXT?", NOERR),
            (":FETC?", "+3.100000E+00,-1.500000E-05,+2.000000E+02"),
            # reconnect-style read-back after the limit test stopped the acquisition
            (":OUTP?", "0"),
            (":SOUR:FUNC:MODE?", "CURR"),
            (":SOUR:CURR?", "-1.500000E-05"),
            (":CALC:LIM:FAIL?", "1"),
            (":OUTP?", "0"),
            (":FETC?", "+2.999000E+00,-1.500000E-05,+2.100000E+02"),
            # a constant-voltage hold after it: no program, compliance <= current_max;
            # auto output-off off again first (it would end every :MEAS? with output off)
            *ABORT,
            (":SENS:CURR:PROT 2e-5", None),
            (":SOUR:VOLT 4.2", None),
            (":SOUR:FUNC:MODE VOLT", None),
            (":OUTP ON", None),
            (":SYST:ERR:NEXT?", NOERR),
            (":OUTP?", "1"),
            (":SOUR:FUNC:MODE?", "VOLT"),
            (":SOUR:VOLT?", "+4.200000E+00"),
            (":CALC:LIM:FAIL?", "0"),
            (":OUTP?", "1"),
            (":FETC?", "+4.200000E+00,+1.100000E-05,+2.200000E+02"),
        ]
    )
    assert isinstance(ch, GuardedSource)
    ch.connect()
    ch.source_current(-15e-6, 4.3, guard=StepGuard(voltage_min_v=3.0))
    s = ch.read()
    assert (s.voltage_v, s.current_a, s.time_s) == (3.1, -1.5e-5, 200.0)
    st = ch.source_state()
    assert (st.output_on, st.mode, st.setpoint, st.tripped) == (False, "off", -1.5e-5, True)
    assert st.reading.voltage_v == 2.999
    ch.source_voltage(4.2, 1e-4, guard=StepGuard(3.0, 4.3, current_max_a=2e-5))
    st = ch.source_state()
    assert (st.output_on, st.mode, st.setpoint, st.tripped) == (True, "voltage", 4.2, False)
    finish(t)


def test_every_command_is_covered(byte_coverage):
    """Runs last in this module: every command of the table was sent by a test above."""
    assert byte_coverage() == []
