"""The instrument holds the limit when the host dies: driver + simulator over loopback, no engine.

A guarded constant-current discharge is programmed, then the host stops talking (the
socket is closed without switching anything off, as a SIGKILLed host leaves it). The
simulated instrument's own program must stop the discharge within one of its
measurement intervals of the cell crossing the limit.
"""

from __future__ import annotations

import copy

import pytest

from cyclerflow.acquire.instrument import StepGuard, load_driver
from cyclerflow.drivers.sim import CellModel, CellParams, start_simulator

V_MIN = 3.6
CURRENT = -15e-6  # 1C discharge of the 15 uAh cell
INTERVAL = 2.0  # instrument seconds between the instrument's own limit tests


def crossing_time(model: CellModel, start_s: float, v_min: float) -> float:
    """When a copy of ``model`` (at ``start_s``, discharging) first reads below ``v_min``.

    Under constant current the model's state after a time is independent of the step
    size, so bisection on copies gives the truth to 1 ms."""
    lo, hi = start_s, start_s + 3600.0
    while hi - lo > 1e-3:
        mid = 0.5 * (lo + hi)
        probe = copy.deepcopy(model)
        probe.advance_to(mid)
        if probe.measure()[0] < v_min:
            hi = mid
        else:
            lo = mid
    return hi


# how each driver is told the instrument's own measurement interval
INTERVAL_OPTION = {
    "keithley2450": "guard_interval_s",
    "b2900": "guard_interval_s",
    "palmsens": "interval_s",  # MethodSCRIPT: the loop's packet interval
}


@pytest.mark.parametrize("driver", ["keithley2450", "b2900", "palmsens"])
def test_instrument_stops_the_discharge_of_a_dead_host(driver):
    cell = CellModel(CellParams(initial_soc=0.3))
    server, _ = start_simulator(driver, speedup=0.0, cell=cell)
    try:
        options = {INTERVAL_OPTION[driver]: INTERVAL}
        ch = load_driver(driver).open_channel(server.resource, **options)
        ch.connect()
        ch.source_current(CURRENT, 4.3, guard=StepGuard(voltage_min_v=V_MIN, voltage_max_v=4.3))
        server.advance(60.0)
        assert ch.read().current_a == pytest.approx(CURRENT)
        with server.lock:
            start = cell.time_s
            reference = copy.deepcopy(cell)
        ch.transport.close()  # the host dies: no output off, no further command
        server.advance(4 * 3600.0)  # hours pass; only the instrument acts
        with server.lock:
            server.sync()
            t_cross = crossing_time(reference, start, V_MIN)
            cc = [s for s in cell.segments if s.mode == "cc" and abs(s.setpoint - CURRENT) < 1e-12]
            t_stop = cc[-1].end_s
            after = cell.segments[-1]
            overshoot_ah = -cell.charge_between(t_cross, t_stop)
        # the instrument stopped within one interval of the crossing ...
        assert 0.0 <= t_stop - t_cross <= INTERVAL + 1e-6
        assert overshoot_ah <= abs(CURRENT) * INTERVAL / 3600.0 * (1 + 1e-9)
        # ... and nothing flowed afterwards: output off (open circuit) for the hours since
        assert after.mode == "ocv" and after.charge_ah == 0.0
        assert cell.time_s - t_stop > 3 * 3600.0
        # a new host reads back what happened
        ch2 = load_driver(driver).open_channel(server.resource)
        ch2.connect()
        st = ch2.source_state()
        assert (st.output_on, st.mode) == (False, "off")
        if driver != "palmsens":  # a script that ended leaves no record on the device
            assert (st.tripped, st.setpoint) == (True, pytest.approx(CURRENT))
            assert st.reading.voltage_v < V_MIN  # the reading that tripped the guard
        ch2.close()
    finally:
        server.stop()


def test_without_a_guard_the_dead_host_over_discharges():
    """The control: the same discharge unguarded runs the cell far below the limit."""
    cell = CellModel(CellParams(initial_soc=0.3))
    server, _ = start_simulator("keithley2450", speedup=0.0, cell=cell)
    try:
        ch = load_driver("keithley2450").open_channel(server.resource)
        ch.connect()
        ch.source_current(CURRENT, 4.3)
        ch.transport.close()
        server.advance(4 * 3600.0)
        with server.lock:
            assert cell.measure()[0] < V_MIN - 0.5
    finally:
        server.stop()


HOST = """
import sys, time
from cyclerflow.acquire.instrument import StepGuard, load_driver
driver, resource, option = sys.argv[1:4]
ch = load_driver(driver).open_channel(resource, **{option: %r})
ch.connect()
ch.source_current(%r, 4.3, guard=StepGuard(voltage_min_v=%r))
print("programmed", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("driver", ["keithley2450", "b2900", "palmsens"])
def test_sigkilled_host_process_at_1000x(driver):
    """The host is a separate process killed with SIGKILL mid-discharge; the simulator
    runs in real time at 1000x and nobody talks to it afterwards."""
    import signal
    import subprocess
    import sys
    import time

    cell = CellModel(CellParams(initial_soc=0.3))
    server, _ = start_simulator(driver, speedup=1000.0, cell=cell)
    code = HOST % (INTERVAL, CURRENT, V_MIN)
    host = subprocess.Popen(
        [sys.executable, "-c", code, driver, server.resource, INTERVAL_OPTION[driver]],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stdout.readline().strip() == "programmed"
        with server.lock:
            server.sync()
            start, reference = cell.time_s, copy.deepcopy(cell)
        host.send_signal(signal.SIGKILL)
        host.wait(10)
        assert reference.measure()[0] > V_MIN  # still above the limit when the host died
        time.sleep(4.0)  # 4000 simulated s: the unguarded cell would be far below
        with server.lock:
            server.sync()
            t_cross = crossing_time(reference, start, V_MIN)
            cc = [s for s in cell.segments if s.mode == "cc" and abs(s.setpoint - CURRENT) < 1e-12]
            t_stop = cc[-1].end_s
            overshoot_ah = -cell.charge_between(t_cross, t_stop)
            last = cell.segments[-1]
        assert 0.0 <= t_stop - t_cross <= INTERVAL + 1e-6
        assert overshoot_ah <= abs(CURRENT) * INTERVAL / 3600.0 * (1 + 1e-9)
        assert last.mode == "ocv" and last.charge_ah == 0.0
    finally:
        if host.poll() is None:
            host.kill()
        server.stop()
