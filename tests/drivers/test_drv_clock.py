"""The simulators' clock field (``sim-clock=``) byte by byte, and every driver's ``clock_rate()``."""

from __future__ import annotations

import socket

import pytest

from cyclerflow.acquire.instrument import ReportsClock, load_driver
from cyclerflow.drivers import b2900, keithley2450, lakeshore335, palmsens
from cyclerflow.drivers.sim import start_simulator
from cyclerflow.drivers.simclock import clock_rate_from
from cyclerflow.drivers.transports import ScriptedTransport
from cyclerflow.errors import InstrumentError

# what each simulator sends for its identification query at --speedup 250 (bytes on the wire)
WIRE = {
    "keithley2450": (
        b"*IDN?\n",
        b"KEITHLEY INSTRUMENTS,MODEL 2450,04500001,1.7.12b sim-clock=250\n",
    ),
    "b2900": (b"*IDN?\n", b"Keysight Technologies,B2901A,MY00000001,4.0.2046.2626 sim-clock=250\n"),
    "palmsens": (b"t\n", b"tespico R1.3.2#Jul  1 2024 sim-clock=250\n"),
    "lakeshore335": (b"*IDN?\r\n", b"LSCI,MODEL335,LSA0001,2.5 sim-clock=250\r\n"),
}


def _host_port(resource: str) -> tuple[str, int]:
    """``socket://HOST:PORT`` or ``TCPIP0::HOST::PORT::SOCKET`` -> (host, port)."""
    if "://" in resource:
        host, port = resource.split("://")[1].rsplit(":", 1)
    else:
        host, port = resource.split("::")[1:3]
    return host, int(port)


@pytest.mark.parametrize("driver", sorted(WIRE))
def test_simulator_identification_carries_its_clock(driver):
    server, _ = start_simulator(driver, speedup=250.0)
    try:
        query, expected = WIRE[driver]
        with socket.create_connection(_host_port(server.resource), timeout=2.0) as s:
            s.sendall(query)
            got = b""
            while not got.endswith(b"\n"):
                got += s.recv(4096)
        assert got == expected
    finally:
        server.stop()


@pytest.mark.parametrize("speedup", [1.0, 250.0, 0.0])
@pytest.mark.parametrize("driver", sorted(WIRE))
def test_every_driver_reports_the_simulator_clock(driver, speedup):
    server, _ = start_simulator(driver, speedup=speedup)
    try:
        ch = load_driver(driver).open_channel(server.resource)
        ch.connect()
        assert isinstance(ch, ReportsClock)
        assert ch.clock_rate() == speedup
        ch.close()
    finally:
        server.stop()


# real instruments: no clock field, rate 1.0 (replies as the instruments send them)
@pytest.mark.parametrize(
    ("module", "exchanges", "resource"),
    [
        (
            keithley2450,
            [("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04451117,1.7.12b")],
            "TCPIP0::192.0.2.10::5025::SOCKET",
        ),
        (
            b2900,
            [("*IDN?", "Keysight Technologies,B2901A,MY51140001,3.4.2011.5100")],
            "TCPIP0::192.0.2.11::5025::SOCKET",
        ),
    ],
)
def test_real_smu_identification_means_real_time(module, exchanges, resource):
    t = ScriptedTransport(exchanges, name=module.__name__)
    ch = module.open_channel(resource, transport=t)
    assert ch.clock_rate() == 1.0
    t.assert_done()


def test_real_palmsens_and_lakeshore_mean_real_time():
    t = ScriptedTransport([("t", "tespico R1.3.2#Jul  1 2024")], name="palmsens")
    ch = palmsens.open_channel("/dev/ttyUSB0", transport=t)
    ch.connect()
    assert ch.clock_rate() == 1.0
    t2 = ScriptedTransport(
        [("*IDN?", "LSCI,MODEL335,LSA1234,2.5"), ("*CLS", None)], name="lakeshore335"
    )
    lc = lakeshore335.open_channel("/dev/ttyUSB1", transport=t2)
    lc.connect()
    assert lc.clock_rate() == 1.0
    t.assert_done()
    t2.assert_done()


def test_simulated_smu_clock_is_read_from_idn():
    t = ScriptedTransport(
        [("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04500001,1.7.12b sim-clock=1000")],
        name="keithley2450",
    )
    ch = keithley2450.open_channel("TCPIP0::127.0.0.1::5025::SOCKET", transport=t)
    assert ch.clock_rate() == 1000.0
    t.assert_done()


@pytest.mark.parametrize("field", ["sim-clock=fast", "sim-clock=-2", "sim-clock=nan", "sim-clock="])
def test_unreadable_clock_field_is_an_error(field):
    with pytest.raises(InstrumentError, match="unreadable clock field"):
        clock_rate_from(f"LSCI,MODEL335,LSA0001,2.5 {field}", source="lakeshore335 (x)")


def test_clock_field_parsing():
    assert clock_rate_from("tespico R1.3.2 sim-clock=0.5") == 0.5
    assert clock_rate_from("A,B,C,1.0 sim-clock=1e+03") == 1000.0
    assert clock_rate_from("A,B,C,my-sim-clock=5") == 1.0  # not the field (no separator)
