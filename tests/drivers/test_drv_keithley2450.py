"""Byte-level protocol tests of the Keithley 2450 driver: exact writes, recorded replies."""

from __future__ import annotations

import pytest
from protocol_helpers import assert_guard_refusals

from cyclerflow.acquire.instrument import GuardedSource, SourceMeterChannel, StepGuard
from cyclerflow.drivers import keithley2450
from cyclerflow.drivers.transports import ScriptedTransport
from cyclerflow.errors import InputError, InstrumentError

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04451117,1.7.12b"
NOERR = '0,"No error"'
CONNECT = [
    ("*IDN?", IDN),
    (":TRIG:STAT?", "IDLE;IDLE;0"),  # no trigger model left running by an earlier host
    ("*CLS", None),
    (":OUTP:SMOD HIMP", None),
    (":SOUR:CURR:READ:BACK ON", None),
    (":SOUR:VOLT:READ:BACK ON", None),
    (':TRAC:CLE "defbuffer1"', None),
    (":SYST:ERR?", NOERR),
]
CC_FIRST = [
    (":SOUR:FUNC CURR", None),
    (":SOUR:CURR:RANG:AUTO ON", None),
    (':SENS:FUNC "VOLT"', None),
    (":SENS:VOLT:RANG:AUTO ON", None),
    (":SOUR:CURR:VLIM 4.2", None),
    (":SOUR:CURR 1.5e-5", None),
    (":OUTP ON", None),
    (":SYST:ERR?", NOERR),
]
READ = ':READ? "defbuffer1", READ, SOUR, REL'
#: a constant 4.2 V with a 20 uA compliance, output on, no error
CV_4V2 = [
    (":SOUR:FUNC VOLT", None),
    (":SOUR:VOLT:RANG:AUTO ON", None),
    (':SENS:FUNC "CURR"', None),
    (":SENS:CURR:RANG:AUTO ON", None),
    (":SOUR:VOLT:ILIM 2e-5", None),
    (":SOUR:VOLT 4.2", None),
    (":OUTP ON", None),
    (":SYST:ERR?", NOERR),
]
DRIVER = "keithley2450"  # byte coverage of its command table: conftest.byte_coverage


def channel(exchanges, **options):
    t = ScriptedTransport(exchanges, name="keithley2450")
    ch = keithley2450.open_channel("TCPIP0::192.0.2.10::5025::SOCKET", transport=t, **options)
    return ch, t


def finish(t):
    t.assert_done()


def test_is_a_source_meter_channel():
    ch, _ = channel([])
    assert isinstance(ch, SourceMeterChannel)
    assert ch.capabilities == frozenset({"cc", "cv", "ocv", "read_around_switch"})


def test_connect_and_identify():
    ch, t = channel(CONNECT)
    ch.connect()
    assert ch.identify() == IDN
    finish(t)


def test_wrong_instrument_is_refused():
    ch, t = channel([("*IDN?", "Keysight Technologies,B2901A,MY1,4.0")])
    with pytest.raises(InstrumentError, match="not a 2450"):
        ch.connect()


def test_charge_then_new_current_then_read():
    ch, t = channel(
        CONNECT
        + CC_FIRST
        + [(READ, "3.912345E+00,1.500000E-05,1.250000E+01")]
        + [(":SOUR:CURR:VLIM 4.2", None), (":SOUR:CURR -7.5e-6", None), (":SYST:ERR?", NOERR)]
        + [(READ, "3.801000E+00,-7.500000E-06,2.000000E+01")]
    )
    ch.connect()
    ch.source_current(15e-6, 4.2)
    s = ch.read()
    assert (s.time_s, s.voltage_v, s.current_a) == (12.5, 3.912345, 1.5e-5)
    ch.source_current(-7.5e-6, 4.2)  # same mode: only level and limit are sent
    s = ch.read()
    assert s.current_a == -7.5e-6 and s.voltage_v == 3.801
    finish(t)


def test_switch_between_two_readings_in_one_message():
    # end of a charge, then a constant-voltage hold: the 2450 reads in CC (reading =
    # voltage), switches, and reads again in CV (reading = current) in one exchange
    switch = ";".join(
        [
            READ,
            ":SOUR:FUNC VOLT",
            ":SOUR:VOLT:RANG:AUTO ON",
            ':SENS:FUNC "CURR"',
            ":SENS:CURR:RANG:AUTO ON",
            ":SOUR:VOLT:ILIM 1.5e-5",
            ":SOUR:VOLT 4.2",
            ":OUTP ON",
            READ,
        ]
    )
    ch, t = channel(
        CONNECT
        + CC_FIRST
        + [
            (
                switch,
                "4.200100E+00,1.500000E-05,3.600000E+03;1.499000E-05,4.200000E+00,3.600001E+03",
            ),
            (":SYST:ERR?", NOERR),
        ]
    )
    ch.connect()
    ch.source_current(15e-6, 4.2)
    before, after = ch.source_voltage(4.2, 15e-6, read_around=True)
    assert (before.voltage_v, before.current_a, before.time_s) == (4.2001, 1.5e-5, 3600.0)
    assert (after.voltage_v, after.current_a, after.time_s) == (4.2, 1.499e-5, 3600.001)
    finish(t)


def test_switch_with_readings_garbled_reply_names_the_message():
    ch, t = channel(
        CONNECT
        + CC_FIRST
        + [
            (
                f"{READ};:SOUR:CURR:VLIM 4.2;:SOUR:CURR -1.5e-5;{READ}",
                "4.2,1.5e-5,3600.0",
            )
        ]
    )
    ch.connect()
    ch.source_current(15e-6, 4.2)
    with pytest.raises(InstrumentError, match="keithley2450.*two readings"):
        ch.source_current(-15e-6, 4.2, read_around=True)


def test_constant_voltage_reads_current_from_reading_element():
    ch, t = channel(
        CONNECT
        + CV_4V2
        + [
            (READ, "1.234000E-06,4.200000E+00,3.000000E+01"),
        ]
    )
    ch.connect()
    ch.source_voltage(4.2, 20e-6)
    s = ch.read()
    assert (s.voltage_v, s.current_a, s.time_s) == (4.2, 1.234e-6, 30.0)
    finish(t)


def test_open_circuit_is_zero_current_with_wide_limit_and_polarity():
    ch, t = channel(
        CONNECT
        + [
            (":SOUR:FUNC CURR", None),
            (":SOUR:CURR:RANG:AUTO ON", None),
            (':SENS:FUNC "VOLT"', None),
            (":SENS:VOLT:RANG:AUTO ON", None),
            (":SOUR:CURR:VLIM 20", None),
            (":SOUR:CURR 0", None),
            (":OUTP ON", None),
            (":SYST:ERR?", NOERR),
            (READ, "-3.900000E+00,0.000000E+00,1.000000E+00"),
            (":SOUR:CURR:VLIM 4.2", None),
            (":SOUR:CURR -1e-5", None),
            (":SYST:ERR?", NOERR),
        ],
        polarity=-1,
    )
    ch.connect()
    ch.open_circuit()
    assert ch.read().voltage_v == 3.9  # reversed wiring: the driver converts the sign
    ch.source_current(1e-5, 4.2)  # charging 10 µA is -10 µA at the instrument
    finish(t)


def test_error_queue_is_drained_and_surfaced():
    ch, t = channel(
        CONNECT
        + CC_FIRST[:-1]
        + [
            (":SYST:ERR?", '-222,"Parameter data out of range"'),
            (":SYST:ERR?", '5074,"Output disabled"'),
            (":SYST:ERR?", NOERR),
        ]
    )
    ch.connect()
    with pytest.raises(InstrumentError) as err:
        ch.source_current(15e-6, 4.2)
    msg = str(err.value)
    assert "keithley2450" in msg and ":SOUR:CURR 1.5e-5" in msg
    assert '-222,"Parameter data out of range"' in msg and "5074" in msg
    finish(t)


def test_errors_returns_list():
    ch, t = channel(
        [(":SYST:ERR?", '-113,"Undefined header"'), (":SYST:ERR?", NOERR), (":SYST:ERR?", NOERR)]
    )
    assert ch.errors() == ['-113,"Undefined header"']
    assert ch.errors() == []
    finish(t)


def test_garbled_read_names_instrument_and_command():
    ch, t = channel(CONNECT + CC_FIRST + [(READ, "3.9E+00,#@!~")])
    ch.connect()
    ch.source_current(15e-6, 4.2)
    with pytest.raises(InstrumentError) as err:
        ch.read()
    assert (
        "keithley2450" in str(err.value)
        and "READ?" in str(err.value)
        and "garbled" in str(err.value)
    )


def test_output_off_close_and_no_eis():
    ch, t = channel(CONNECT + [(":OUTP OFF;:OUTP?", "0"), (":OUTP OFF;:OUTP?", "0")])
    ch.connect()
    ch.output_off()
    ch.close()
    assert t.is_open is False
    with pytest.raises(InstrumentError, match="EIS"):
        ch.measure_eis(1e5, 1, 10, 0.01)
    finish(t)


def test_out_of_range_setpoint_sends_nothing():
    ch, t = channel(CONNECT)
    ch.connect()
    with pytest.raises(InputError, match="source_current = 2 A is outside -1.05 .. 1.05 A"):
        ch.source_current(2.0, 4.2)
    finish(t)


FETCH = ':FETC? "defbuffer1", READ, SOUR, REL'


# the guard program (2450 reference manual, trigger model blocks): measure, branch to the
# output-off block 5 when the reading is outside the limits, else wait and loop
def guard_program(kind, low, high, delay="1"):
    return [
        (':TRIG:LOAD "Empty"', None),
        (':TRIG:BLOC:MEAS 1, "defbuffer1", 1', None),
        (f":TRIG:BLOC:BRAN:LIM:CONS 2, {kind}, {low}, {high}, 5, 1", None),
        (f":TRIG:BLOC:DEL:CONS 3, {delay}", None),
        (":TRIG:BLOC:BRAN:ALW 4, 1", None),
        (":TRIG:BLOC:SOUR:STAT 5, OFF", None),
        (":INIT", None),
    ]


def test_guarded_discharge_charge_state_and_cv():
    discharge = [
        (":SOUR:FUNC CURR", None),
        (":SOUR:CURR:RANG:AUTO ON", None),
        (':SENS:FUNC "VOLT"', None),
        (":SENS:VOLT:RANG:AUTO ON", None),
        (":SOUR:CURR:VLIM 4.3", None),
        (":SOUR:CURR -1.5e-5", None),
        (":OUTP ON", None),
        *guard_program("OUTSIDE", "3", "4.3"),
        (":SYST:ERR?", NOERR),
        (FETCH, "3.500000E+00,-1.500000E-05,1.000000E+01"),
    ]
    charge = [  # same function: abort the running program, level, output on again, program
        (":ABOR", None),
        (":SOUR:CURR:VLIM 4.3", None),
        (":SOUR:CURR 1.5e-5", None),
        (":OUTP ON", None),
        *guard_program("ABOVE", "4.2", "4.2", delay="0.5"),
        (":SYST:ERR?", NOERR),
    ]
    state = [  # the program turned the output off at block 5: tripped
        (":OUTP?", "0"),
        (":SOUR:FUNC?", "CURR"),
        (":SOUR:CURR?", "1.500000E-05"),
        (":TRIG:STAT?", "IDLE;IDLE;5"),
        (FETCH, "4.200300E+00,1.500000E-05,3.600000E+03"),
    ]
    hold = [  # constant voltage: compliance limited to the guard's current_max
        (":ABOR", None),  # after a trip as after a running program
        *CV_4V2,
        (":OUTP?", "1"),
        (":SOUR:FUNC?", "VOLT"),
        (":SOUR:VOLT?", "4.200000E+00"),
        (":TRIG:STAT?", "ABORTED;ABORTED;3"),  # stopped by the host: not a trip
        (READ, "1.200000E-06,4.200000E+00,3.700000E+03"),
    ]
    ch, t = channel(CONNECT + discharge + charge + state + hold)
    assert isinstance(ch, GuardedSource) and ch.guarded_modes == {"cc", "cv", "ocv"}
    ch.connect()
    ch.source_current(-15e-6, 4.3, guard=StepGuard(voltage_min_v=3.0, voltage_max_v=4.3))
    s = ch.read()  # the trigger model's newest reading, no :READ? while it runs
    assert (s.voltage_v, s.current_a, s.time_s) == (3.5, -1.5e-5, 10.0)
    ch.guard_interval_s = 0.5
    ch.source_current(15e-6, 4.3, guard=StepGuard(voltage_max_v=4.2))
    st = ch.source_state()
    assert (st.output_on, st.mode, st.setpoint, st.tripped) == (False, "off", 1.5e-5, True)
    assert st.reading.voltage_v == 4.2003 and st.charge_ah is None
    ch.source_voltage(4.2, 1e-4, guard=StepGuard(3.0, 4.3, current_max_a=2e-5))
    st = ch.source_state()
    assert (st.output_on, st.mode, st.setpoint, st.tripped) == (True, "voltage", 4.2, False)
    assert (st.reading.voltage_v, st.reading.current_a) == (4.2, 1.2e-6)
    finish(t)


def test_guard_with_readings_around_the_switch_and_reversed_wiring():
    switch = ";".join(
        [
            ":ABOR",
            READ,
            ":SOUR:CURR:VLIM 4.3",
            ":SOUR:CURR 1.5e-5",  # discharging 15 uA is +15 uA at a reversed instrument
            ":OUTP ON",
            READ,
            *[w for w, _ in guard_program("ABOVE", "-3", "-3")],
        ]
    )
    ch, t = channel(
        CONNECT
        + CC_FIRST[:4]
        + [(":SOUR:CURR:VLIM 4.3", None), (":SOUR:CURR -1.5e-5", None), (":OUTP ON", None)]
        + guard_program("BELOW", "-4.2", "-4.2")
        + [(":SYST:ERR?", NOERR)]
        + [(switch, "-4.1E+00,-1.5E-05,3.6E+03;-4.0E+00,1.5E-05,3.6E+03"), (":SYST:ERR?", NOERR)],
        polarity=-1,
    )
    ch.connect()
    # charge, cell at most 4.2 V: the instrument reads -V, so "below -4.2"
    ch.source_current(15e-6, 4.3, guard=StepGuard(voltage_max_v=4.2))
    before, after = ch.source_current(
        -15e-6, 4.3, read_around=True, guard=StepGuard(voltage_min_v=3.0)
    )
    assert (before.voltage_v, before.current_a) == (4.1, 1.5e-5)
    assert (after.voltage_v, after.current_a) == (4.0, -1.5e-5)
    finish(t)


def test_reconnect_to_a_running_trigger_model_keeps_its_buffer():
    ch, t = channel(
        [
            ("*IDN?", IDN),
            (":TRIG:STAT?", "RUNNING;RUNNING;3"),
            ("*CLS", None),
            (":OUTP:SMOD HIMP", None),
            (":SOUR:CURR:READ:BACK ON", None),
            (":SOUR:VOLT:READ:BACK ON", None),
            (":SYST:ERR?", NOERR),  # no :TRAC:CLE: it would stop the guard
            (":OUTP?", "1"),
            (":SOUR:FUNC?", "CURR"),
            (":SOUR:CURR?", "-1.500000E-05"),
            (":TRIG:STAT?", "RUNNING;RUNNING;3"),
            (FETCH, "3.100000E+00,-1.500000E-05,5.400000E+03"),
        ]
    )
    ch.connect()
    st = ch.source_state()
    assert (st.output_on, st.mode, st.setpoint, st.tripped) == (True, "current", -1.5e-5, False)
    assert st.reading.time_s == 5400.0
    finish(t)


def test_guard_refusals_send_nothing():
    ch, t = channel(CONNECT)
    ch.connect()
    assert_guard_refusals(ch)
    with pytest.raises(InputError, match="block_limit.low = -300 V"):
        ch.source_current(-1e-5, 4.2, guard=StepGuard(voltage_min_v=-300.0))
    with pytest.raises(InputError, match="guard_interval_s"):
        keithley2450.open_channel("TCPIP0::x::5025::SOCKET", transport=t, guard_interval_s=0)
    finish(t)


def test_garbled_trigger_state_is_named():
    ch, t = channel([("*IDN?", IDN), (":TRIG:STAT?", "what")])
    with pytest.raises(InstrumentError, match=r"TRIG:STAT\?.*garbled"):
        ch.connect()


def test_every_command_is_covered(byte_coverage):
    """Runs last in this module: every command of the table was sent by a test above."""
    assert byte_coverage() == []
