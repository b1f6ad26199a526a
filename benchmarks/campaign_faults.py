"""Instrument-fault campaign: faults injected into the instrument simulators while 16
channels run at once, each on its own simulator over loopback TCP (the instrument's
protocol), each with a virtual clock linked to its simulator (so a fault lands at a
chosen simulated moment and the result does not depend on machine load).

Per round, 16 channels (Keithley 2450, Keysight B2900, PalmSens; some with a Lake Shore
335 temperature controller and a temperature-series recipe): all but ``--clean`` of them
get one fault at a random simulated time:

- ``drop``: the link closes once (the engine reconnects and resumes);
- ``link lost``: every reply on every connection is dropped from then on;
- ``garble``: one reply replaced by junk;
- ``slow``: one reply delayed, within the driver's time-out;
- ``timeout``: one reply delayed beyond the driver's time-out;
- ``error queue``: the next command puts an error in the instrument's error queue;
- ``leak``: a soft short across the cell (the recipe's charge-voltage-drop limit);
- ``compliance``: the lead resistance jumps to 200 kOhm (the SMU reaches its voltage
  compliance);
- ``tc lost``: the temperature controller stops answering.

Outcome per channel: the run's status (complete = resumed or unaffected, error,
safety_stop, disconnected); ``output on at the end`` counts a channel whose simulated
cell still has a source on after its engine returned and ten more simulated hours
(a disconnected channel relies on the instrument's own guard); ``traceback`` counts an
exception out of the engine; ``others affected`` counts clean channels that did not
complete or whose file disagrees with the simulator's charge by more than 0.1 %.

    .venv/bin/python benchmarks/campaign_faults.py [--faults 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyclerflow.acquire.clock import Clock, VirtualClock
from cyclerflow.acquire.engine import ChannelRunner
from cyclerflow.acquire.instrument import load_driver
from cyclerflow.acquire.link import ReconnectPolicy
from cyclerflow.acquire.recipe import loads_recipe
from cyclerflow.drivers import sim
from cyclerflow.schema import parse_metadata
from cyclerflow.store import create_cell, read_cycling

CYCLES = """
name: faults
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA, charge_voltage_drop: 20 mV}
sample_interval: 20 s
steps:
  - rest: {duration: 1 min}
  - cc_charge: {current: 4C, until: {voltage: 4.15 V}}
  - rest: {duration: 2 min}
  - cc_discharge: {current: 4C, until: {voltage: 3.6 V}}
"""
SERIES = """
name: faults-ts
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA, temperature_max: 90 degC}
sample_interval: 20 s
steps:
  - temperature_series:
      setpoints: [30 degC, 35 degC]
      tolerance: 0.5 K
      stable_for: 5 min
      timeout: 3 h
      steps:
        - cc_charge: {current: 4C, until: {voltage: 4.15 V}}
        - cc_discharge: {current: 4C, until: {voltage: 3.6 V}}
"""
SMU_FAULTS = ("drop", "link lost", "garble", "slow", "timeout", "error queue", "leak",
              "compliance")  # fmt: skip
VOLTAGE_MIN, VOLTAGE_MAX = 2.9, 4.3  # the recipes' safety window (V)
DRIVERS = ("keithley2450", "b2900", "palmsens")
REAL_TIME_SPEEDUP = 200.0  # a loaded 2-core host keeps up with 16 channels at this rate
TIMEOUT_S = 2.0  # the drivers' reply time-out (wall s; their default)


@dataclass(frozen=True)
class Plan:
    """One channel of a round: driver, fault (None: a clean channel), when (simulated s)."""

    driver: str
    fault: str | None
    at_s: float
    series: bool = False


@dataclass
class Outcome:
    plan: Plan
    status: str = "traceback"
    message: str = ""
    output_on: bool = False  # a source still on at the end, outside the safety window
    held: bool = False  # a source still on at the end, held inside the window (CV at a limit)
    matches: bool | None = None  # clean channels: file charge vs simulator


def _inject(kind: str, smu, tc) -> None:
    """Arm fault ``kind`` on the simulators (called at the chosen simulated time)."""
    f = smu.faults
    if kind == "drop":
        f.arm("drop", count=1)
    elif kind == "link lost":
        f.arm("drop", count=10**6)
    elif kind == "garble":
        f.arm("garble", count=1)
    elif kind == "slow":
        f.arm("slow", count=1, delay=TIMEOUT_S / 4)
    elif kind == "timeout":
        f.arm("slow", count=1, delay=TIMEOUT_S * 2)
    elif kind == "error queue":
        f.arm("error", code=-222)
    elif kind == "leak":
        f.arm("short", r=2e3)
    elif kind == "compliance":
        with smu.lock:
            smu.model.params = dataclasses.replace(smu.model.params, r_lead_ohm=2e5)
    elif kind == "tc lost":
        tc.faults.arm("drop", count=10**6)


def _charges_match(out: Path, smu, rel: float) -> bool:
    """The file's charge through the run equals the simulator's within ``rel``."""
    ds = read_cycling(out)
    t = ds["test_time_second"].values
    i = ds["current_ampere"].values
    q_file = float(np.sum(np.abs(0.5 * (i[1:] + i[:-1]) * np.diff(t)))) / 3600
    with smu.lock:
        q_true = sum(h.charge_ah for h in smu.model.half_cycles())
    return q_true > 0 and abs(q_file / q_true - 1) < rel


def _watch(fire, fired: list[bool], limit_s: float = 60.0) -> None:
    t_end = time.monotonic() + limit_s
    while not fired and time.monotonic() < t_end:
        fire()
        time.sleep(0.005)


class _Rig:
    """The simulators of one channel and its clock. MethodSCRIPT streams packets on the
    simulator's own clock, so the PalmSens runs in real time (its fault armed by a
    watcher thread); the SMUs run on clocks linked to the engine's virtual clock."""

    def __init__(self, plan: Plan, seed: int):
        self.plan = plan
        self.speedup = REAL_TIME_SPEEDUP if plan.driver == "palmsens" else 0.0
        self.smu = sim.start_simulator(plan.driver, speedup=self.speedup, seed=seed)[0]
        self.tc = None
        if plan.series:
            self.tc = sim.start_simulator("lakeshore335", speedup=self.speedup,
                                          cell=self.smu.model)[0]  # fmt: skip
        self.fired: list[bool] = []
        self.at_s = plan.at_s

    def fire_when_due(self) -> None:
        if self.plan.fault and not self.fired and self.smu.clock.now() >= self.at_s:
            self.fired.append(True)
            _inject(self.plan.fault, self.smu, self.tc)

    def _advance(self, dt: float) -> None:
        self.smu.advance(dt)
        if self.tc is not None:
            self.tc.advance(dt)
        self.fire_when_due()

    def clock(self):
        if not self.speedup:
            return VirtualClock(on_advance=self._advance)
        self.at_s += self.smu.clock.now()  # from the start of the run (connecting is slow)
        threading.Thread(target=_watch, args=(self.fire_when_due, self.fired), daemon=True).start()
        return Clock(self.speedup)

    def channels(self) -> tuple[Any, Any]:
        ch = load_driver(self.plan.driver).open_channel(self.smu.resource, timeout_s=TIMEOUT_S)
        tcc = None
        if self.tc is not None:
            tcc = load_driver("lakeshore335").open_channel(self.tc.resource, timeout_s=TIMEOUT_S)
            tcc.connect()
        ch.connect()
        return ch, tcc

    def final_state(self, res: Outcome) -> None:
        """Ten simulated hours without a host (the guard's business), then the source."""
        self.smu.advance(36000.0)
        with self.smu.lock:
            m = self.smu.model
            on = m.mode != "ocv" and abs(m.current_a) > 0
            inside = VOLTAGE_MIN - 1e-3 <= m.voltage_v <= VOLTAGE_MAX + 1e-3
        res.output_on, res.held = on and not inside, on and inside

    def stop(self) -> None:
        self.smu.stop()
        if self.tc is not None:
            self.tc.stop()


def _close(*channels: Any) -> None:
    for c in channels:
        if c is not None:
            with contextlib.suppress(OSError):
                c.close()


def _run_engine(rig: _Rig, out: Path, k: int) -> Any:
    text = SERIES if rig.plan.series else CYCLES
    ch, tcc = rig.channels()
    meta = parse_metadata({"cell_id": f"F{k}", "nominal_capacity_uah": 15})
    w = create_cell(out, meta, protocol=text)
    try:
        return ChannelRunner(ch, w, loads_recipe(text, nominal_capacity_ah=15e-6),
                             clock=rig.clock(), temperature=tcc,
                             reconnect=ReconnectPolicy(attempts=3, backoff_s=0.02)).run()  # fmt: skip
    finally:
        w.close()
        _close(ch, tcc)


def run_channel(plan: Plan, folder: Path, k: int, seed: int) -> Outcome:
    """One channel from start to end, with its fault; the outcome."""
    rig = _Rig(plan, seed)
    out = folder / f"ch{k:02d}.h5"
    res = Outcome(plan)
    try:
        r = _run_engine(rig, out, k)
        res.status, res.message = r.status, r.message
        rig.final_state(res)
        if plan.fault is None and res.status == "complete":
            # the PalmSens misses ~1e-3 of a half-cycle between packets (docs/simulators.md)
            res.matches = _charges_match(out, rig.smu, 5e-3 if rig.speedup else 1e-3)
    except Exception as err:  # noqa: BLE001 - counting what escapes the engine is the point
        res.status, res.message = "traceback", f"{type(err).__name__}: {err}"
    finally:
        rig.stop()
    return res


@dataclass
class FaultTally:
    by_fault: dict[str, Counter] = field(default_factory=dict)
    output_on: Counter = field(default_factory=Counter)
    held: Counter = field(default_factory=Counter)
    others_affected: int = 0
    clean: int = 0
    faults: int = 0
    errors: Counter = field(default_factory=Counter)
    surprises: Counter = field(default_factory=Counter)
    clock_refused: int = 0
    realtime_charge_off: int = 0

    def add(self, o: Outcome) -> None:
        name = o.plan.fault or "none (clean)"
        self.by_fault.setdefault(name, Counter())[o.status] += 1
        self.output_on[name] += int(o.output_on)
        self.held[name] += int(o.held)
        if o.plan.fault is None:
            self.clean += 1
            if CLOCK_CHECK in o.message:  # the real-time PalmSens starved of CPU
                self.clock_refused += 1
            elif o.status != "complete":
                self.others_affected += 1
            elif not o.matches:  # real time: the charge depends on the host's load
                realtime = o.plan.driver == "palmsens"
                self.realtime_charge_off += int(realtime)
                self.others_affected += int(not realtime)
        else:
            self.faults += 1
        want = EXPECTED.get(o.plan.fault)
        if o.plan.driver != "palmsens" and want and o.status not in want:
            self.surprises[f"{name} on {o.plan.driver}: {o.status}: {o.message[:100]}"] += 1
        if o.status in ("traceback", "failed") or (o.plan.fault is None and not o.matches):
            self.errors[f"{name} on {o.plan.driver}: {o.status}: {o.message[:120]}"] += 1

    def unexpected(self) -> int:
        """Linked-clock (SMU) channels whose status is not the one their fault calls for."""
        return sum(self.surprises.values())

    def total(self, status: str) -> int:
        return sum(c[status] for c in self.by_fault.values())


def plan_round(rng: np.random.Generator, channels: int, clean: int) -> list[Plan]:
    """``channels`` channels: ``clean`` without a fault, every fourth faulted one a
    temperature series with a controller."""
    plans = []
    for k in range(channels):
        driver = DRIVERS[k % len(DRIVERS)]
        if k < clean:
            plans.append(Plan(driver, None, 0.0))
            continue
        series = k % 4 == 3
        kinds = (*SMU_FAULTS, "tc lost") if series else SMU_FAULTS
        plans.append(Plan("palmsens" if series else driver, str(rng.choice(kinds)),
                          float(rng.uniform(120, 900)), series))  # fmt: skip
    return plans


def run_round(plans: list[Plan], folder: Path, seed: int) -> list[Outcome]:
    """Every channel of a round at once, one thread each."""
    out: list[Outcome | None] = [None] * len(plans)

    def one(k: int) -> None:
        out[k] = run_channel(plans[k], folder, k, seed + k)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(plans))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [o or Outcome(p) for o, p in zip(out, plans, strict=True)]


def run_campaign(n_faults: int, *, seed: int = 1, channels: int = 16, clean: int = 4,
                 progress: bool = False, checkpoint: int = 0) -> FaultTally:  # fmt: skip
    """Rounds of ``channels`` channels until ``n_faults`` faults were injected
    (``checkpoint``: print the tally every that many rounds)."""
    t0 = time.perf_counter()
    logging.disable(logging.CRITICAL)  # the engine logs every fault it handles
    t = FaultTally()
    rng = np.random.default_rng(seed)
    r = 0
    while t.faults < n_faults:
        with tempfile.TemporaryDirectory() as d:
            plans = plan_round(rng, channels, clean)
            extra = t.faults + sum(p.fault is not None for p in plans) - n_faults
            for k in range(len(plans) - 1, -1, -1):  # the last round: only what is left
                if extra > 0 and plans[k].fault is not None:
                    plans[k] = Plan(plans[k].driver, None, 0.0)
                    extra -= 1
            for o in run_round(plans, Path(d), seed * 1000 + r * channels):
                t.add(o)
        r += 1
        if progress:
            print(f"\rround {r}: {t.faults} faults", end="", flush=True)
        if checkpoint and r % checkpoint == 0:
            print_tally(t, time.perf_counter() - t0)
    logging.disable(logging.NOTSET)
    return t


#: the engine's refusal of an instrument whose timestamps run slower than its clock says
CLOCK_CHECK = "the instrument's timestamps run at"
#: what each fault should end in on the SMUs (linked clocks: exact, load-independent)
EXPECTED = {
    None: ("complete",),
    "drop": ("complete",),
    "slow": ("complete",),
    "timeout": ("complete",),
    "link lost": ("disconnected",),
    "garble": ("error",),
    "error queue": ("error",),
    "leak": ("safety_stop",),
    "compliance": ("safety_stop",),
}
STATUSES = ("complete", "error", "safety_stop", "disconnected", "failed", "traceback")


def print_tally(t: FaultTally, seconds: float) -> None:
    print(f"\ninstrument faults: {t.faults:,} faults and {t.clean:,} clean channels in "
          f"{seconds:.0f} s (16 channels at once)")  # fmt: skip
    print(f"{'fault':16s}" + "".join(f"{s:>14s}" for s in STATUSES)
          + f"{'held in window':>16s}{'on outside':>12s}")  # fmt: skip
    for name in sorted(t.by_fault):
        c = t.by_fault[name]
        print(f"{name:16s}" + "".join(f"{c[s]:14,d}" for s in STATUSES)
              + f"{t.held[name]:16,d}{t.output_on[name]:12,d}")  # fmt: skip
    print(f"clean channels affected by the others' faults: {t.others_affected} of {t.clean}; "
          f"refused by the engine's clock-rate check (a real-time PalmSens simulator starved "
          f"of CPU on this host): {t.clock_refused}; real-time PalmSens clean channels "
          f"whose charge is off by more than 0.5 %: {t.realtime_charge_off}")  # fmt: skip
    print(f"SMU channels (linked clocks) not ending as their fault calls for: {t.unexpected()}")
    for msg, k in t.surprises.most_common(10):
        print(f"  x{k}: {msg}")
    for msg, k in t.errors.most_common(10):
        print(f"  x{k}: {msg}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faults", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--clean", type=int, default=4, help="channels per round without a fault")
    ap.add_argument("--checkpoint", type=int, default=0, help="print the tally every N rounds")
    args = ap.parse_args()
    t0 = time.perf_counter()
    t = run_campaign(args.faults, seed=args.seed, channels=args.channels, clean=args.clean,
                     progress=True, checkpoint=args.checkpoint)  # fmt: skip
    print_tally(t, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
