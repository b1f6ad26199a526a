"""Driver <-> simulator throughput (run by hand): reads per second over loopback, the wall
time of a simulated C/1 charge at --speedup 1000, and 16 Keithley simulators at once.

    /work/main/.venv/bin/python benchmarks/drivers_sim.py
"""

from __future__ import annotations

import threading
import time

from cyclerflow.drivers.sim import start_simulator

from cyclerflow.acquire.instrument import load_driver


def reads_per_second(driver: str, seconds: float = 1.0, **options) -> float:
    server, _ = start_simulator(driver, speedup=1000.0)
    try:
        ch = load_driver(driver).open_channel(server.resource, **options)
        ch.connect()
        ch.source_current(1e-6, 4.2)
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


if __name__ == "__main__":
    for drv, opts in [("keithley2450", {}), ("b2900", {}), ("palmsens", {"interval_s": 1.0})]:
        print(f"{drv:13s} reads/s over loopback: {reads_per_second(drv, **opts):8.0f}")
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
