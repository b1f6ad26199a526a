"""Acquisition engine benchmark: many simulated channels at once on this machine.

1. N channels (default 16) sampling at 10 Hz in real time, each on its own
   instrument simulator (Keithley 2450 protocol over loopback TCP, served by a
   separate process, as real instruments would be), with a live SWMR reader (another
   process) reading every file twice a second. Reports samples expected/recorded,
   polls missed, and how far sample timestamps lie from the 10 Hz schedule.
2. The highest speed-up at which all N channels still keep up (no poll missed,
   simulated sampling still every 0.1 s).
3. Host CPU time per sample (engine process only).

Run by hand:  .venv/bin/python benchmarks/acquire.py [--channels 16] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from cyclerflow.acquire.station import StationPlan, plan_channel, run_station

RECIPE = """
name: bench
limits: {{voltage_max: 4.3 V, voltage_min: 2.5 V, current_max: 100 uA}}
sample_interval: 100 ms
record: {{every: 100 ms}}
steps:
  - cc_charge: {{current: C/10, until: {{time: {seconds} s}}}}
"""
CELL = "cell_id: BENCH\nactive_area_cm2: 0.25\nnominal_capacity_uah: 15\n"

SIM_HOST = textwrap.dedent(
    """
    import gc, sys, json, time
    from cyclerflow.drivers.sim import start_simulator
    sys.setswitchinterval(0.001)  # 16 instruments in one process: keep each one's reply prompt
    n, speed = int(sys.argv[1]), float(sys.argv[2])
    servers = [start_simulator("keithley2450", speedup=speed)[0] for _ in range(n)]
    # a full garbage collection here stops all 16 simulated instruments for ~10 ms (their
    # timestamps then lag the engine's requests); real instruments have no such pauses
    gc.collect()
    gc.freeze()
    print(json.dumps([s.resource for s in servers]), flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    for s in servers:
        s.stop()
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    from cyclerflow.store import read_cycling
    paths, t_end = sys.argv[2:], time.time() + float(sys.argv[1])
    reads = rows = errors = 0
    while time.time() < t_end:
        for p in paths:
            try:
                rows += read_cycling(p).sizes["sample"]
                reads += 1
            except Exception:
                errors += 1
        time.sleep(0.5)
    print(reads, rows, errors, flush=True)
    """
)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_trial(n: int, seconds: float, speedup: float, folder: Path, *, reader: bool) -> dict:
    """N channels for ``seconds`` of wall time at ``speedup``; returns the figures."""
    sim_seconds = seconds * speedup
    (folder / "recipe.yaml").write_text(RECIPE.format(seconds=sim_seconds))
    (folder / "cell.yaml").write_text(CELL)
    for f in folder.glob("ch*.h5"):
        f.unlink()
    sims = subprocess.Popen(
        [sys.executable, "-c", SIM_HOST, str(n), str(speedup)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        resources = json.loads(sims.stdout.readline())
        plans = [
            plan_channel(
                name=f"ch{k + 1:02d}",
                driver="keithley2450",
                resource=res,
                cell=folder / "cell.yaml",
                recipe=folder / "recipe.yaml",
                out=folder / f"ch{k + 1:02d}.h5",
            )
            for k, res in enumerate(resources)
        ]
        rd = None
        if reader:
            rd = subprocess.Popen(
                [sys.executable, "-c", READER, str(seconds), *[str(p.out) for p in plans]],
                stdout=subprocess.PIPE,
                text=True,
            )
        cpu0, wall0 = _cpu(), time.monotonic()
        results = run_station(StationPlan(plans, speedup=speedup), keep_lateness=True)
        cpu, wall = _cpu() - cpu0, time.monotonic() - wall0
        reader_out = rd.communicate(timeout=60)[0].split() if rd else None
    finally:
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        sims.stdin.close()
        sims.wait(30)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sim_cpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    from cyclerflow.store import read_cycling

    expected = int(round(sim_seconds / 0.1)) + 1
    dev_ms, rows = [], []
    for p in plans:
        t = read_cycling(p.out, columns=["test_time_second"])["test_time_second"].values
        rows.append(len(t))
        # distance of each sample time from the 0.1 s grid started at the first sample (wall ms)
        k = np.round((t - t[0]) / 0.1)
        dev_ms.append(np.abs(t - t[0] - k * 0.1) / speedup * 1e3)
    dev = np.concatenate(dev_ms)
    late = np.concatenate([np.asarray(r.lateness_s) for r in results]) * 1e3
    return {
        "channels": n,
        "speedup": speedup,
        "statuses": sorted({r.status for r in results}),
        "expected_rows_per_channel": expected,
        "rows_min": min(rows),
        "rows_max": max(rows),
        "missed_polls": sum(r.missed_polls for r in results),
        "dev_ms_max": float(dev.max()),
        "dev_ms_p99": float(np.percentile(dev, 99)),
        "poll_lateness_ms_p99": float(np.percentile(late, 99)) if len(late) else float("nan"),
        "poll_lateness_ms_max": float(late.max()) if len(late) else float("nan"),
        "samples": sum(r.samples_read for r in results),
        "cpu_s": cpu,
        "sim_cpu_s": sim_cpu,
        "wall_s": wall,
        "reader": reader_out,
    }


def keeps_up(r: dict) -> bool:
    return (
        r["statuses"] == ["complete"]
        and r["missed_polls"] == 0
        and r["rows_min"] >= r["expected_rows_per_channel"] - 1
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0, help="wall seconds of the real-time run")
    ap.add_argument(
        "--sweep-seconds", type=float, default=6.0, help="wall seconds of each speed-up trial"
    )
    ap.add_argument("--max-speedup", type=float, default=64.0)
    ap.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval (s); default: as `cyclerflow acquire` sets it",
    )
    args = ap.parse_args()
    from cyclerflow.acquire.station import ENGINE_SWITCH_INTERVAL_S

    sys.setswitchinterval(args.switch_interval or ENGINE_SWITCH_INTERVAL_S)
    print(f"GIL switch interval {sys.getswitchinterval() * 1e3:g} ms")
    print(f"host: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        r = run_trial(args.channels, args.seconds, 1.0, folder, reader=True)
        print(
            f"\n1) {r['channels']} channels x 10 Hz, real time, {args.seconds:g} s, live reader open"
        )
        print(
            f"   statuses {r['statuses']}; rows per channel {r['rows_min']}..{r['rows_max']} (expected {r['expected_rows_per_channel']}); missed polls {r['missed_polls']}"
        )
        print(
            f"   sample time vs 10 Hz schedule: p99 {r['dev_ms_p99']:.2f} ms, max {r['dev_ms_max']:.2f} ms (target <= 10 ms)"
        )
        print(
            f"   poll start lateness: p99 {r['poll_lateness_ms_p99']:.2f} ms, max {r['poll_lateness_ms_max']:.2f} ms"
        )
        if r["reader"]:
            reads, rows, errors = r["reader"]
            print(f"   live reader: {reads} file reads ({rows} rows seen), {errors} errors")
        print(
            f"   host CPU: {r['cpu_s']:.2f} s for {r['samples']} samples = {1e6 * r['cpu_s'] / max(r['samples'], 1):.0f} us/sample ({100 * r['cpu_s'] / r['wall_s']:.0f} % of one core)"
        )
        ok = keeps_up(r) and r["dev_ms_max"] <= 10.0
        print(f"   -> {'PASS' if ok else 'FAIL'}: no sample dropped and timestamps within 10 ms")

        print(
            f"\n2) speed-up sweep, {args.channels} channels, 10 Hz simulated sampling, {args.sweep_seconds:g} s wall each"
        )
        best, per_sample = None, None
        x = 2.0
        while x <= args.max_speedup:
            t = run_trial(args.channels, args.sweep_seconds, x, folder, reader=False)
            up = keeps_up(t)
            us = 1e6 * t["cpu_s"] / max(t["samples"], 1)
            print(
                f"   {x:6g}x: simulator process CPU {100 * t['sim_cpu_s'] / t['wall_s']:.0f} % of a core, engine {100 * t['cpu_s'] / t['wall_s']:.0f} %"
            )
            print(
                f"   {x:6g}x: {'keeps up' if up else 'falls behind'} (missed polls {t['missed_polls']}, rows min {t['rows_min']}/{t['expected_rows_per_channel']}, lateness p99 {t['poll_lateness_ms_p99']:.1f} ms, {us:.0f} us CPU/sample)"
            )
            if not up:
                break
            best, per_sample = x, us
            x *= 2
        print(
            f"   -> highest speed-up keeping up: {best}x ({args.channels} x {10 * (best or 0):g} samples/s = {args.channels * 10 * (best or 0):g} samples/s)"
        )
        if per_sample is not None:
            print(f"\n3) host CPU time per sample at {best}x: {per_sample:.0f} us")


if __name__ == "__main__":
    main()
