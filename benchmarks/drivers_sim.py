"""Driver <-> simulator throughput (run by hand): reads per second over loopback, the wall
time of a simulated C/1 charge at --speedup 1000, and 16 Keithley simulators at once.

    /work/main/.venv/bin/python benchmarks/drivers_sim.py
"""

from __future__ import annotations

import threading
import time

from cyclerflow.acquire.instrument import StepGuard, load_driver
from cyclerflow.drivers.sim import start_simulator


def reads_per_second(driver: str, seconds: float = 1.0, guard=None, **options) -> float:
    """Reads per wall second; with ``guard`` during a step the instrument guards itself
    (SMUs then read the guard program's newest reading, waiting for a new one)."""
    server, _ = start_simulator(driver, speedup=1000.0)
    try:
        ch = load_driver(driver).open_channel(server.resource, **options)
        ch.connect()
        ch.source_current(1e-6, 4.2, **({"guard": guard} if guard else {}))
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            ch.read()
            n += 1
        ch.close()
        return n / (time.perf_counter() - t0)
    finally:
        server.stop()


def t_offset(driver: str, server) -> float:
    """Instrument time 0 on the model clock (buffer clear / timer start at connect)."""
    return server.state.get("smu", {}).get("t0", 0.0) + server.state.get("palmsens", {}).get(
        "timer_t0", 0.0
    )


def charge_wall_time(
    driver: str, *, read_around: bool = False, **options
) -> tuple[float, float, float, float]:
    """Wall seconds for a 15 µA charge to 4.2 V; (wall s, simulated s, file-vs-model
    charge error over the sampled window, charge outside the samples / whole charge).
    ``read_around``: switch on and off with readings in the same message (SCPI SMUs)."""
    server, _ = start_simulator(driver, speedup=1000.0)
    try:
        ch = load_driver(driver).open_channel(server.resource, **options)
        ch.connect()
        t0 = time.perf_counter()
        if read_around:
            samples = [ch.source_current(15e-6, 4.2, read_around=True)[1]]
        else:
            ch.source_current(15e-6, 4.2)
            samples = [ch.read()]
        while samples[-1].voltage_v < 4.2 - 1e-3:
            samples.append(ch.read())
        if read_around:
            samples.append(ch.open_circuit(read_around=True)[0])
        else:
            ch.open_circuit()
            samples.append(ch.read())
        wall = time.perf_counter() - t0
        q = (
            sum(
                0.5 * (a.current_a + b.current_a) * (b.time_s - a.time_s)
                for a, b in zip(samples, samples[1:], strict=False)
            )
            / 3600
        )
        with server.lock:
            true = server.model.charge_between(
                samples[0].time_s + t_offset(driver, server),
                samples[-1].time_s + t_offset(driver, server),
            )
            whole = server.model.half_cycles()[0].charge_ah
        ch.close()
        return wall, samples[-1].time_s - samples[0].time_s, abs(q - true) / true, 1 - q / whole
    finally:
        server.stop()


def sixteen_at_once(seconds: float = 2.0) -> float:
    servers = [start_simulator("keithley2450", speedup=1000.0)[0] for _ in range(16)]
    counts = [0] * 16

    def run(k: int) -> None:
        ch = load_driver("keithley2450").open_channel(servers[k].resource)
        ch.connect()
        ch.source_current(1e-6, 4.2)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            ch.read()
            counts[k] += 1
        ch.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in servers:
        s.stop()
    return sum(counts) / seconds


def dead_host_overshoot(driver: str, interval_s: float = 2.0) -> tuple[float, float]:
    """A guarded 15 µA discharge to 3.6 V whose host dies: (simulated s from the cell
    crossing 3.6 V to the instrument stopping, charge past the limit / (I x interval))."""
    import copy

    from cyclerflow.drivers.sim import CellModel, CellParams

    cell = CellModel(CellParams(initial_soc=0.3))
    server, _ = start_simulator(driver, speedup=0.0, cell=cell)
    key = "interval_s" if driver == "palmsens" else "guard_interval_s"
    try:
        ch = load_driver(driver).open_channel(server.resource, **{key: interval_s})
        ch.connect()
        ch.source_current(-15e-6, 4.3, guard=StepGuard(voltage_min_v=3.6))
        with server.lock:
            start, ref = cell.time_s, copy.deepcopy(cell)
        ch.transport.close()
        server.advance(4 * 3600.0)
        lo, hi = start, start + 3600.0
        while hi - lo > 1e-3:  # bisection on copies: constant current is step-size exact
            probe = copy.deepcopy(ref)
            probe.advance_to(0.5 * (lo + hi))
            lo, hi = (lo, 0.5 * (lo + hi)) if probe.measure()[0] < 3.6 else (0.5 * (lo + hi), hi)
        with server.lock:
            stop = [g for g in cell.segments if g.mode == "cc"][-1].end_s
            past = -cell.charge_between(hi, stop)
        return stop - hi, past / (15e-6 * interval_s / 3600.0)
    finally:
        server.stop()


if __name__ == "__main__":
    guard = StepGuard(voltage_min_v=2.5, voltage_max_v=4.3)
    for drv, opts in [("keithley2450", {}), ("b2900", {}), ("palmsens", {"interval_s": 1.0})]:
        plain = reads_per_second(drv, **opts)
        guarded = reads_per_second(drv, guard=guard, **opts)
        print(f"{drv:13s} reads/s over loopback: {plain:8.0f}; guarded step: {guarded:8.0f}")
    for drv in ("keithley2450", "b2900", "palmsens"):
        late_s, share = dead_host_overshoot(drv)
        print(
            f"{drv:13s} dead host, guarded discharge (2 s instrument interval): stopped "
            f"{late_s:5.3f} s after the crossing; charge past the limit = {share:4.2f} x (I x interval)"
        )
    for drv, opts in [
        ("keithley2450", {}),
        ("keithley2450", {"read_around": True}),
        ("palmsens", {"interval_s": 1.0}),
    ]:
        wall, sim_s, err, missed = charge_wall_time(drv, **opts)
        how = " (readings around the switches)" if opts.get("read_around") else ""
        print(
            f"{drv:13s} 15 µA charge to 4.2 V{how}: {sim_s:7.0f} simulated s in {wall:5.2f} wall s "
            f"(x{sim_s / wall:6.0f}); trapezoid over the samples vs model charge over the same "
            f"window: {err:.1e} relative; charge before the first/after the last sample: {missed:.1e}"
        )
    print(f"16 keithley2450 simulators, 16 threads: {sixteen_at_once():8.0f} reads/s in total")
