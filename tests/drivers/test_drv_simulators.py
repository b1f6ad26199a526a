"""Drivers against their simulators over real loopback sockets, and fault injection."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from cyclerflow.acquire.instrument import ConnectionLost, load_driver
from cyclerflow.drivers.sim import start_simulator
from cyclerflow.errors import InputError, InstrumentError


@pytest.fixture
def sim():
    servers = []

    def start(driver, **kw):
        kw.setdefault("speedup", 0.0)
        server, _ = start_simulator(driver, **kw)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def settle() -> None:
    """Let a streaming simulator send the packets due after ``server.advance`` (5 ms ticks)."""
    time.sleep(0.1)


def connect(server, driver, **options):
    ch = load_driver(driver).open_channel(server.resource, **options)
    ch.connect()
    return ch


@pytest.mark.parametrize("driver", ["keithley2450", "b2900"])
def test_smu_charge_matches_model_charge(sim, driver):
    server = sim(driver)
    ch = connect(server, driver)
    assert ("2450" if driver == "keithley2450" else "B2901A") in ch.identify()
    ch.source_current(15e-6, 4.2)
    server.advance(1800.0)
    s = ch.read()
    assert s.current_a == pytest.approx(15e-6, rel=1e-6)
    assert 3.7 < s.voltage_v < 4.2
    ch.open_circuit()
    server.advance(60.0)
    rest = ch.read()
    assert rest.current_a == 0.0 and rest.voltage_v < s.voltage_v  # ohmic drop gone
    (half,) = server.model.half_cycles()
    assert half.charge_ah == pytest.approx(15e-6 * 1800 / 3600, rel=1e-9)
    assert ch.errors() == []
    ch.close()


@pytest.mark.parametrize("driver", ["keithley2450", "b2900"])
def test_switch_with_readings_is_one_simulated_instant(sim, driver):
    # real time at 1000x: the simulator answers one program message at one simulated
    # instant, so the readings around a switch bracket it exactly
    server = sim(driver, speedup=1000.0)
    ch = connect(server, driver)
    _, on = ch.source_current(15e-6, 4.2, read_around=True)
    assert on.current_a == pytest.approx(15e-6)
    time.sleep(0.05)
    before, after = ch.open_circuit(read_around=True)
    assert before.time_s == after.time_s > 10.0
    assert before.current_a == pytest.approx(15e-6) and after.current_a == 0.0
    assert after.voltage_v < before.voltage_v  # the ohmic drop is gone at once
    time.sleep(0.05)
    later = ch.read()
    assert later.time_s > after.time_s + 10.0  # the clock caught up with the wall time
    with server.lock:
        (half,) = server.model.half_cycles()
    assert half.charge_ah == pytest.approx(15e-6 * (before.time_s - on.time_s) / 3600, rel=1e-9)
    ch.close()


def test_smu_polarity_converts_the_instrument_sign(sim):
    server = sim("keithley2450")
    ch = connect(server, "keithley2450", polarity=-1)
    ch.source_current(5e-6, 4.2)  # declared reversed wiring: the instrument must source -5 µA
    server.advance(100)
    assert server.model.current_a == pytest.approx(-5e-6)  # the simulator is wired normally
    s = ch.read()
    assert s.current_a == pytest.approx(5e-6) and s.voltage_v < 0


def test_palmsens_streams_packets_with_instrument_time(sim):
    server = sim("palmsens")
    ch = connect(server, "palmsens", interval_s=1.0)
    ch.source_current(15e-6, 4.2)
    server.advance(10.0)
    settle()
    s = ch.read()
    assert s.time_s == pytest.approx(10.0, abs=1e-3)
    assert s.current_a == pytest.approx(15e-6, rel=1e-6)
    ch.open_circuit()
    server.advance(5.0)
    settle()
    assert ch.read().current_a == 0.0
    assert server.model.half_cycles()[0].charge_ah == pytest.approx(15e-6 * 10 / 3600, rel=1e-9)
    ch.close()


def test_palmsens_eis_matches_model_impedance(sim):
    server = sim("palmsens", speedup=1000.0)
    ch = connect(server, "palmsens")
    f, z = ch.measure_eis(1e5, 1.0, 4, 0.01)
    assert len(f) == 21 and f[0] == pytest.approx(1e5) and f[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(z, server.model.impedance(f), rtol=1e-5)
    assert np.all(z.imag < 0)
    ch.close()


def test_palmsens_breaks_to_voltage_hold_at_the_limit(sim):
    server = sim("palmsens")
    ch = connect(server, "palmsens", interval_s=10.0)
    ch.source_current(15e-6, 4.2)
    for _ in range(12):
        server.advance(500.0)
        settle()
        s = ch.read()
    assert s.voltage_v == pytest.approx(4.2, abs=5e-3)
    assert s.current_a < 15e-6 * 0.5


def test_lakeshore_heats_the_shared_cell(sim):
    smu = sim("keithley2450")
    ls = sim("lakeshore335", cell=smu.model)
    tc = connect(ls, "lakeshore335")
    assert "MODEL335" in tc.identify()
    r25 = smu.model.r_electrolyte_ohm()
    tc.set_setpoint(353.15, ramp_k_per_min=10.0)
    ls.clock.advance(3600.0)
    assert tc.read_temperature() == pytest.approx(353.15, abs=0.01)
    assert smu.model.temperature_k == pytest.approx(353.15, abs=0.01)
    assert smu.model.r_electrolyte_ohm() < r25 / 5
    assert tc.errors() == []
    tc.close()


# --- faults ---------------------------------------------------------------------------
def test_garbled_reply_is_a_clear_error(sim):
    server = sim("keithley2450")
    ch = connect(server, "keithley2450")
    ch.source_current(1e-6, 4.2)
    server.faults.arm("garble")
    with pytest.raises(InstrumentError) as err:
        ch.read()
    msg = str(err.value)
    assert "keithley2450" in msg and server.resource in msg and ":READ?" in msg and "garbled" in msg
    assert not isinstance(
        err.value, ConnectionLost
    )  # the link is fine: the engine must stop, not retry


def test_garbled_methodscript_packet(sim):
    server = sim("palmsens")
    ch = connect(server, "palmsens")
    ch.open_circuit()
    server.faults.arm("garble")
    server.advance(1.0)
    with pytest.raises(InstrumentError, match="palmsens .*'meas_loop_ocp'.*garbled"):
        ch.read()


def test_slow_reply_is_a_timeout(sim):
    server = sim("b2900")
    ch = connect(server, "b2900", timeout_s=0.2)
    server.faults.arm("slow", delay=0.6)
    with pytest.raises(
        ConnectionLost, match=r"b2900 .*':MEAS\?'.*no reply within 0.2 s \(timeout\)"
    ):
        ch.read()


def test_slow_reply_on_serial_is_a_timeout(sim):
    server = sim("lakeshore335")
    tc = connect(server, "lakeshore335", timeout_s=0.2)
    server.faults.arm("slow", delay=0.6)
    with pytest.raises(InstrumentError, match=r"lakeshore335 .*'KRDG\? A'.*timeout"):
        tc.read_temperature()


def test_dropped_connection_raises(sim):
    server = sim("keithley2450", faults=("drop:after=4",))
    ch = connect(
        server, "keithley2450", timeout_s=0.5
    )  # replies 1-3: *IDN?, :TRIG:STAT?, :SYST:ERR?
    with pytest.raises(
        InstrumentError, match=r"keithley2450 \(TCPIP0::127.0.0.1::\d+::SOCKET\): ':SYST:ERR\?'"
    ):
        ch.source_current(1e-6, 4.2)
        ch.read()


def test_instrument_error_queue_is_surfaced(sim):
    server = sim("keithley2450")
    ch = connect(server, "keithley2450")
    server.faults.arm("error")
    with pytest.raises(InstrumentError, match=r'-222,"Parameter data out of range"'):
        ch.source_current(1e-6, 4.2)
    ch.transport.write(":BOGus:HEADer 1")
    assert ch.errors() == ['-113,"Undefined header"']


def test_soft_short_fault_drains_the_resting_cell(sim):
    plain = sim("keithley2450", cell=None)
    shorted = sim("keithley2450", faults=("short:r=1e7",))
    for server in (plain, shorted):
        server.model.q_ah = 0.8 * server.model.capacity_ah
        ch = connect(server, "keithley2450")
        ch.open_circuit()
        server.advance(7200.0)
    lost_ah = plain.model.q_ah - shorted.model.q_ah
    assert lost_ah == pytest.approx(4.0 / 1e7 * 7200 / 3600, rel=0.1)  # V / R x t at about 4 V


def test_bad_fault_specs():
    with pytest.raises(InputError, match="unknown fault 'melt'"):
        start_simulator("keithley2450", faults=("melt",))
    with pytest.raises(InputError, match="slow:delay=x.*delay must be a number"):
        start_simulator("keithley2450", faults=("slow:delay=x",))
    with pytest.raises(InputError, match="unknown key"):
        start_simulator("keithley2450", faults=("drop:every=2",))


def test_many_simulators_at_once(sim):
    servers = [sim("keithley2450", speedup=1000.0) for _ in range(6)]
    channels = [connect(s, "keithley2450") for s in servers]
    for ch in channels:
        ch.source_current(15e-6, 4.2)
    for ch in channels:
        assert ch.read().current_a == pytest.approx(15e-6)
    assert len({s.port for s in servers}) == 6


def test_cli_simulate_serves_the_protocol(tmp_path, lipon_metadata):
    import yaml

    meta = tmp_path / "cell.yaml"
    meta.write_text(yaml.safe_dump(lipon_metadata))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cyclerflow.cli",
            "simulate",
            "keithley2450",
            "--port",
            "0",
            "--speedup",
            "100",
            "--cell",
            str(meta),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line and " sim-clock=100 " in line
        resource = line.split("resource=")[1].strip()
        ch = load_driver("keithley2450").open_channel(resource)
        ch.connect()
        assert ch.clock_rate() == 100.0  # what the instrument itself reports
        ch.source_current(0.35e-6, 4.2)
        assert ch.read().current_a == pytest.approx(0.35e-6)
        ch.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_simulate_bad_input_exit_2(tmp_path):
    from cyclerflow.cli import main

    assert main(["simulate", "keithley2450", "--fault", "melt"]) == 2
    assert main(["simulate", "nosuch"]) == 2
    assert main(["simulate", "b2900", "--cell", str(tmp_path / "missing.yaml")]) == 2


def test_error_fault_on_methodscript_and_lakeshore(sim):
    ps = sim("palmsens", faults=("error",))
    ch = connect(ps, "palmsens")
    with pytest.raises(
        InstrumentError, match=r"palmsens .*'meas_loop_ocp'.*!0005 invalid argument"
    ):
        ch.open_circuit()
    ls = sim("lakeshore335")
    tc = connect(ls, "lakeshore335")
    tc.read_temperature()  # a round trip: the simulator has handled connect's *CLS
    ls.faults.arm("error")
    assert tc.read_temperature() == pytest.approx(298.15)
    assert tc.errors() == ["*ESR? bit 16: execution error (value out of range)"]


def test_reconnect_after_a_dropped_link(sim):
    server = sim("keithley2450", faults=("drop:after=5",))
    ch = connect(server, "keithley2450", timeout_s=0.3)  # replies 1-3
    ch.source_current(2e-6, 4.2)  # reply 4 (:SYST:ERR?)
    with pytest.raises(ConnectionLost):
        ch.read()  # reply 5 is dropped with the connection
    ch.close()  # must not raise on a dead link
    ch.connect()  # a new connection; the instrument kept its state
    server.advance(36.0)
    assert ch.read().current_a == pytest.approx(2e-6)
