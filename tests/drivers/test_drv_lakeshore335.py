"""Byte-level protocol tests of the Lake Shore 335 driver."""

from __future__ import annotations

import pytest

from cyclerflow.acquire.instrument import TemperatureController
from cyclerflow.drivers import lakeshore335
from cyclerflow.drivers.transports import ScriptedTransport
from cyclerflow.errors import InputError, InstrumentError

IDN = "LSCI,MODEL335,LSA1234,2.5"
DRIVER = "lakeshore335"  # byte coverage of its command table: conftest.byte_coverage


def controller(exchanges, **options):
    t = ScriptedTransport(exchanges, name="lakeshore335")
    return lakeshore335.open_channel("/dev/ttyUSB0", transport=t, **options), t


def finish(t):
    t.assert_done()


def test_connect_setpoint_ramp_read():
    c, t = controller(
        [
            ("*IDN?", IDN),
            ("*CLS", None),
            ("RAMP 1,1,2", None),
            ("SETP 1,323.15", None),
            ("RANGE 1,3", None),
            ("*ESR?", "0"),
            ("KRDG? A", "+310.250"),
            ("RAMP 1,0,0", None),
            ("SETP 1,250", None),
            ("RANGE 1,3", None),
            ("*ESR?", "0"),
        ]
    )
    assert isinstance(c, TemperatureController)
    c.connect()
    assert c.identify() == IDN
    c.set_setpoint(323.15, ramp_k_per_min=2.0)
    assert c.read_temperature() == 310.25
    c.set_setpoint(250.0)
    finish(t)


def test_execution_error_is_surfaced():
    c, t = controller(
        [("RAMP 1,0,0", None), ("SETP 1,300", None), ("RANGE 1,3", None), ("*ESR?", "48")]
    )
    with pytest.raises(
        InstrumentError, match="lakeshore335.*SETP 1,300.*command error.*execution error"
    ):
        c.set_setpoint(300.0)
    finish(t)


def test_wait_until_stable_uses_ramp_status_and_window():
    readings = ["+299.000", "+299.950", "+300.020", "+299.990", "+300.010"]
    ex = [("SETP? 1", "+300.0000")]
    ramp = ["1", "0", "0", "0"]
    ex.append(("KRDG? A", readings[0]))
    for r, st in zip(readings[1:], ramp, strict=True):
        ex += [("KRDG? A", r), ("RAMPST? 1", st)]
    c, t = controller(ex)
    now = [0.0]
    got = c.wait_until_stable(
        0.1, 2.0, 100.0, 1.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    assert got == 300.01  # stable at t=2, 3, 4 -> window of 2 s reached at t=4
    finish(t)


def test_wait_until_stable_times_out():
    c, t = controller([("SETP? 1", "+300.0000")] + [("KRDG? A", "+250.000")] * 4)
    now = [0.0]
    with pytest.raises(InstrumentError, match="not stable within ±0.1 K of 300.000 K after 2 s"):
        c.wait_until_stable(
            0.1, 1.0, 2.0, 1.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
        )


def test_bad_values():
    with pytest.raises(InputError, match="output must be 1 or 2"):
        lakeshore335.open_channel("/dev/null", output=3, transport=ScriptedTransport([]))
    c, t = controller([("RAMP 1,0,0", None)])
    with pytest.raises(InputError, match="setpoint = 2000 K is outside 0 .. 1500 K"):
        c.set_setpoint(2000.0)
    c, t = controller([("*IDN?", "LSCI,MODEL336,1,1"), ("*IDN?", "garbage")])
    with pytest.raises(InstrumentError, match="not a Lake Shore 335"):
        c.connect()


def test_every_command_is_covered(byte_coverage):
    """Runs last in this module: every command of the table was sent by a test above."""
    assert byte_coverage() == []
