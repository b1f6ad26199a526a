"""Cycler fault campaign: faults injected into the Neware BTS, Maccor MacNet and Arbin CTI
simulators while 16 cycler channels are followed at once (issue 14, the cyclers' half;
benchmarks/campaign_faults.py covers the SMUs and the PalmSens).

Each simulated unit is its own simulator on loopback TCP at ``--speedup`` (1000x), which
reports its speed-up (the clock acquisition accepts). Per round, 16 channels, one thread
each, mixed vendors; ``--clean`` of them (4) without a fault, the others with one:

- link faults, each on a unit of its own (a link fault hits every channel of a unit):
  ``drop`` (the connection closes once), ``link lost`` (every reply dropped from then on),
  ``stall`` (one reply held a quarter of the driver's time-out), ``timeout`` (one reply
  held twice the time-out), ``garble`` (one reply's middle replaced by junk);
- channel faults, on one shared unit per vendor together with the clean channels (so
  "others unaffected" is tested on the same simulated unit): ``alarm`` (the channel's
  protection trips), ``refuse`` (the channel refuses to start), ``limit`` (a host-side
  ``step_time_max`` the cycler does not hold: the host must stop the channel).

A fault lands at a random simulated test time of its channel (the first reply after it).
Per channel: the run's status, whether the file's records continue from 1 without a gap or
duplicate (Neware: equal to the simulator's records by sequence id, capacities to 1e-6;
complete runs hold all of them), and for clean Maccor/Arbin channels whether each
half-cycle's capacity lies within the polling bound of the simulator's (the file's
capacity is never above it and short by at most |I| x the time its step went unseen:
docs/cyclers-maccor.md, docs/cyclers-arbin.md). ``unsafe`` counts a safety stop whose
channel is still running on the simulator, or an alarm whose channel is not in
protection. ``others affected``: clean channels that did not complete or whose file
disagrees with the simulator; ``traceback``: an exception out of the acquisition code.

    .venv/bin/python benchmarks/campaign_cycler_faults.py [--faults 300] [--seed 1] [--checkpoint 5]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyclerflow.acquire.cycler import CyclerRunner, create_cycler_cell
from cyclerflow.acquire.link import ReconnectPolicy
from cyclerflow.acquire.recipe import loads_recipe
from cyclerflow.drivers.arbin_cti import ArbinChannel
from cyclerflow.drivers.maccor_macnet import MaccorChannel
from cyclerflow.drivers.neware_bts import NewareChannel
from cyclerflow.drivers.sim.arbin_cti import ArbinSim, schedule_from_recipe
from cyclerflow.drivers.sim.cycler_channel import CyclerFaults, garbled
from cyclerflow.drivers.sim.maccor_macnet import MacNetSim
from cyclerflow.drivers.sim.neware_bts import NewareSim
from cyclerflow.schema import parse_metadata
from cyclerflow.store import read_cycling

#: one 2C cycle of the default 15 uAh simulated cell (~1 h simulated: ~4 s at 1000x)
RECIPE = """
name: cycler-faults
limits: {{voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA{extra}}}
record: {{every: 10 s}}
steps:
  - rest: {{duration: 1 min}}
  - cc_charge: {{current: 2C, until: {{voltage: 4.2 V}}}}
  - rest: {{duration: 2 min}}
  - cc_discharge: {{current: 2C, until: {{voltage: 3.0 V}}}}
  - rest: {{duration: 2 min}}
"""
NOMINAL_AH = 15e-6  # the simulators' default cell
PROC = "CYFAULTS"  # the stored Maccor procedure / Arbin schedule
VENDORS = ("neware", "maccor", "arbin")
LINK_FAULTS = ("drop", "link lost", "stall", "timeout", "garble")
CHANNEL_FAULTS = ("alarm", "refuse", "limit")
FAULTS = LINK_FAULTS + CHANNEL_FAULTS
TIMEOUT_S = 1.0  # the drivers' reply time-out (wall s)
FAULT_WINDOW_S = (60.0, 1500.0)  # simulated test time of a fault (within the charge step)
ROUND_LIMIT_S = 60.0  # wall s a round may take at 1000x (more: its channels count as hangs)


@dataclass(frozen=True)
class Plan:
    """One channel: vendor, fault (None: clean), when (simulated test s), where (unit
    index in the round, channel number on it)."""

    vendor: str
    fault: str | None
    at_s: float
    unit: int = 0
    number: int = 1


@dataclass
class Outcome:
    plan: Plan
    status: str = "traceback"
    message: str = ""
    fired: bool = True  # a link fault whose moment came before the run ended
    records_ok: bool | None = None  # ids 1..n without gap/duplicate (Neware: = simulator's)
    capacity_ok: bool | None = None  # clean channels: capacities vs the simulator's
    sim_state: str = ""  # the simulated channel's state after the run


class TimedFaults(CyclerFaults):
    """A link fault landing at the first reply after its channel's test time ``at_s``."""

    def __init__(self, kind: str | None = None, at_s: float = 0.0):
        super().__init__()
        self.kind, self.at_s, self.fired = kind, at_s, False
        self.channel = None  # the SimChannel whose test time is watched

    def _due(self) -> bool:
        ch = self.channel
        return ch is not None and ch.test_id > 0 and ch.test_time >= self.at_s

    def deliver(self, n_reply: int, out: bytes) -> bytes | None:
        if self.kind is None or not self._due():
            return super().deliver(n_reply, out)
        first, self.fired = not self.fired, True
        if self.kind == "link lost":
            return None
        if not first:
            return out
        if self.kind in ("stall", "timeout"):
            time.sleep(TIMEOUT_S * (0.25 if self.kind == "stall" else 2.0))
        return {"drop": None, "garble": garbled(out)}.get(self.kind, out)


@dataclass
class Unit:
    """One simulated unit (its own simulator) and the channels followed on it."""

    vendor: str
    plans: list[Plan]
    link: Plan | None = None  # the link-faulted channel (alone on its unit)
    sim: Any = None

    def start(self, speedup: float, seed: int) -> None:
        f = TimedFaults(self.link.fault, self.link.at_s) if self.link else TimedFaults()
        for p in self.plans:
            if p.fault == "alarm":
                f.alarms[p.number] = p.at_s
            elif p.fault == "refuse":
                f.refuse.add(p.number)
        kw = {"channels": len(self.plans), "speedup": speedup, "faults": f, "seed": seed}
        recipe = _recipe(None)
        if self.vendor == "neware":
            self.sim = NewareSim(**kw).start()
        elif self.vendor == "maccor":
            self.sim = MacNetSim(procedures={PROC: recipe}, **kw).start()
        else:
            self.sim = ArbinSim(schedules={PROC: schedule_from_recipe(recipe)}, **kw).start()
        f.channel = self.sim_channel(1)

    def sim_channel(self, number: int):
        return self.sim.channel(1, number) if self.vendor == "neware" else self.sim.channel(number)

    def open(self, plan: Plan, stepdir: Path):
        res, t = self.sim.resource, TIMEOUT_S
        if self.vendor == "neware":
            return NewareChannel(res, unit=1, channel=plan.number, stepdir=str(stepdir), timeout=t)
        if self.vendor == "maccor":
            return MaccorChannel(res, channel=plan.number, procedure=PROC, timeout=t)
        return ArbinChannel(res, channel=plan.number, schedule=PROC, timeout=t)


def _recipe(plan: Plan | None):
    extra = ""
    if plan is not None and plan.fault == "limit":
        extra = f", step_time_max: {plan.at_s:.0f} s"
    return loads_recipe(RECIPE.format(extra=extra), nominal_capacity_ah=NOMINAL_AH)


def _follow(unit: Unit, plan: Plan, out: Path, poll_s: float, watch: dict):
    ch = unit.open(plan, out.parent)
    meta = parse_metadata({"cell_id": out.stem, "nominal_capacity_uah": NOMINAL_AH * 1e6})
    recipe = _recipe(plan)
    w = create_cycler_cell(out, meta, protocol=recipe.text)
    try:
        ch.connect()
        runner = CyclerRunner(ch, w, recipe, name=out.stem, poll_interval_s=poll_s,
                              reconnect=ReconnectPolicy(attempts=4, backoff_s=0.05),
                              stop=watch["stop"])  # fmt: skip
        watch["runner"] = runner
        return runner.run()
    finally:
        ch.close()
        w.close()


def _step_caps(cols) -> tuple[np.ndarray, np.ndarray]:
    """Capacity of each step with current (its last row) and its polling bound (Ah)."""
    sc, t = cols["step_count"].values, cols["test_time_second"].values
    ends = np.append(np.flatnonzero(np.diff(sc) != 0), len(sc) - 1)
    q = (cols["charge_capacity_ampere_hour"] - cols["discharge_capacity_ampere_hour"]).values[ends]
    unseen = np.append(t[ends[:-1] + 1] - t[ends[:-1]], 0.0)
    i_max = np.abs(cols["current_ampere"].values).max()
    keep = q != 0
    return q[keep], (i_max * unseen / 3600.0)[keep]


def _check_file(res: Outcome, unit: Unit, out: Path) -> None:
    """Records and (clean channels) capacities of the file against the simulator's."""
    cols = read_cycling(out)
    seq = cols["vendor_record_id"].values
    sim_ch = unit.sim_channel(res.plan.number)
    with sim_ch.lock:
        recs = list(sim_ch.records[:])
        truth = np.array([h.sign * h.charge_ah for h in sim_ch.model.half_cycles()])
        res.sim_state = sim_ch.state
    res.records_ok = bool(np.array_equal(seq, np.arange(1, len(seq) + 1)))
    if unit.vendor == "neware":
        cap = (cols["charge_capacity_ampere_hour"] + cols["discharge_capacity_ampere_hour"]).values
        want = np.array([r[7] for r in recs[: len(seq)]])
        res.records_ok &= len(seq) <= len(recs) and np.allclose(cap, want, rtol=1e-6, atol=1e-15)
        if res.status == "complete":
            res.records_ok &= len(seq) == len(recs)
    if res.plan.fault is not None or res.status != "complete":
        return
    if unit.vendor == "neware":
        res.capacity_ok = res.records_ok
        return
    q, bound = _step_caps(cols)
    res.capacity_ok = len(q) == len(truth) and bool(
        np.all(np.abs(q) <= np.abs(truth) * (1 + 1e-9))
        and np.all(np.abs(truth) - np.abs(q) <= bound * (1 + 1e-6) + 1e-15)
    )
    if not res.capacity_ok:  # say why (uAh): file, simulator, polling bound
        res.message += f"; capacity off: file {q * 1e6} sim {truth * 1e6} bound {bound * 1e6}"


def _hang_message(unit: Unit, plan: Plan, watch: dict) -> str:
    ch = unit.sim_channel(plan.number)
    runner = watch.get("runner")
    seq = runner.carry.last_seq if runner is not None else None
    return (f"not ended in {watch['limit_s']:g} s: simulated channel {ch.state} with "
            f"{len(ch.records)} records, the file at record {seq}")  # fmt: skip


def run_channel(unit: Unit, plan: Plan, folder: Path, k: int, watch: dict) -> Outcome:
    """Follow one channel to its end; the outcome (never raises). ``watch``: the round's
    ``stop`` event (set when the round overruns: the channel counts as a hang)."""
    res = Outcome(plan)
    out = folder / f"ch{k:02d}.h5"
    poll_s = 0.01 if unit.vendor == "arbin" else 0.05  # Arbin records are its polls
    try:
        r = _follow(unit, plan, out, poll_s, watch)
        res.status, res.message = r.status, r.message
        if watch["stop"].is_set():
            res.status, res.message = "hang", watch.get("hang", res.message)
        _check_file(res, unit, out)
    except Exception as err:  # noqa: BLE001 - counting what escapes acquisition is the point
        res.status, res.message = "traceback", f"{type(err).__name__}: {err}"
    if unit.link is plan:
        res.fired = unit.sim.faults.fired
    return res


def plan_round(rng: np.random.Generator, channels: int, clean: int) -> list[Unit]:
    """``channels`` channels, vendors in turn: link-faulted ones on a unit each, the
    channel-faulted and clean ones on one shared unit per vendor."""
    shared = {v: Unit(v, []) for v in VENDORS}
    units: list[Unit] = []
    for k in range(channels):
        vendor = VENDORS[k % len(VENDORS)]
        fault = None if k < clean else str(rng.choice(FAULTS))
        at_s = float(rng.uniform(*FAULT_WINDOW_S)) if fault else 0.0
        if fault in LINK_FAULTS:
            p = Plan(vendor, fault, at_s, len(units))
            units.append(Unit(vendor, [p], link=p))
            continue
        u = shared[vendor]
        u.plans.append(Plan(vendor, fault, at_s, -1, len(u.plans) + 1))
    return units + [u for u in shared.values() if u.plans]


def run_round(units: list[Unit], folder: Path, speedup: float, seed: int) -> list[Outcome]:
    """Every channel of a round at once, one thread each."""
    jobs = [(u, p) for u in units for p in u.plans]
    out: list[Outcome | None] = [None] * len(jobs)
    limit_s = ROUND_LIMIT_S * 1000.0 / speedup
    watches = [{"stop": threading.Event(), "limit_s": limit_s} for _ in jobs]

    def one(k: int) -> None:
        out[k] = run_channel(*jobs[k], folder, k, watches[k])

    try:
        for j, u in enumerate(units):
            u.start(speedup, seed + 10 * j)
        threads = [threading.Thread(target=one, args=(k,)) for k in range(len(jobs))]
        for t in threads:
            t.start()
        t_end = time.monotonic() + limit_s
        for k, t in enumerate(threads):
            t.join(max(0.0, t_end - time.monotonic()))
            if t.is_alive():  # a hang: say where it stood, then stop following
                watches[k]["hang"] = _hang_message(*jobs[k], watches[k])
                watches[k]["stop"].set()
                t.join(30.0)
    finally:
        for u in units:
            if u.sim is not None:
                u.sim.stop()
    return [o or Outcome(p) for o, (_, p) in zip(out, jobs, strict=True)]


#: what each fault should end in (a link fault that came after the run ended: complete)
EXPECTED = {
    None: ("complete",),
    "drop": ("complete",),
    "stall": ("complete",),
    "timeout": ("complete",),
    "link lost": ("disconnected",),
    "garble": ("error",),
    "alarm": ("alarm",),
    "refuse": ("error",),
    "limit": ("safety_stop",),
}
STATUSES = ("complete", "error", "safety_stop", "alarm", "disconnected", "stopped", "hang",
            "traceback")  # fmt: skip
SAFE_STATE = {"safety_stop": ("stop",), "alarm": ("protect",)}


@dataclass
class CyclerTally:
    by_fault: dict[str, Counter] = field(default_factory=dict)
    faults: int = 0
    clean: int = 0
    not_fired: int = 0
    others_affected: int = 0
    record_breaks: Counter = field(default_factory=Counter)
    unsafe: Counter = field(default_factory=Counter)
    surprises: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)

    def add(self, o: Outcome) -> None:
        p = o.plan
        name = p.fault or "none (clean)"
        self.by_fault.setdefault(name, Counter())[f"{o.status}"] += 1
        self.by_fault.setdefault(f"  on {p.vendor}", Counter())[o.status] += 1
        where = f"{name} on {p.vendor}"
        if p.fault is None:
            self.clean += 1
            self.others_affected += int(o.status != "complete" or not o.capacity_ok)
        else:
            self.faults += 1
            self.not_fired += int(not o.fired)
        if o.records_ok is False:
            self.record_breaks[where] += 1
        if o.status in SAFE_STATE and o.sim_state not in SAFE_STATE[o.status]:
            self.unsafe[f"{where}: {o.status}, channel {o.sim_state}"] += 1
        want = EXPECTED[p.fault] if o.fired else ("complete",)
        if o.status not in want:
            self.surprises[f"{where}: {o.status}: {o.message[:110]}"] += 1
        if o.status in ("traceback", "hang") or (p.fault is None and o.status == "complete"
                                       and not o.capacity_ok):  # fmt: skip
            self.errors[f"{where}: {o.status}: {o.message[:400]}"] += 1

    def total(self, status: str) -> int:
        return sum(c[status] for k, c in self.by_fault.items() if not k.startswith(" "))

    def unexpected(self) -> int:
        return sum(self.surprises.values())


def run_campaign(n_faults: int, *, seed: int = 1, channels: int = 16, clean: int = 4,
                 speedup: float = 1000.0, checkpoint: int = 0, progress: bool = False,
                 ) -> CyclerTally:  # fmt: skip
    """Rounds of ``channels`` channels until ``n_faults`` faults were injected
    (``checkpoint``: print the tally every that many rounds)."""
    t0 = time.perf_counter()
    logging.disable(logging.CRITICAL)
    t = CyclerTally()
    rng = np.random.default_rng(seed)
    r = 0
    try:
        while t.faults < n_faults:
            units = plan_round(
                rng, channels, clean + max(0, t.faults + channels - clean - n_faults)
            )
            with tempfile.TemporaryDirectory() as d:
                for o in run_round(units, Path(d), speedup, seed * 100_000 + r * 100):
                    t.add(o)
            r += 1
            if progress:
                print(f"round {r}: {t.faults} faults, {time.perf_counter() - t0:.0f} s", flush=True)
            if checkpoint and r % checkpoint == 0:
                print_tally(t, time.perf_counter() - t0)
    finally:
        logging.disable(logging.NOTSET)
    return t


def print_tally(t: CyclerTally, seconds: float) -> None:
    print(f"\ncycler faults: {t.faults:,} faults and {t.clean:,} clean channels in "
          f"{seconds:.0f} s (16 channels at once; Neware, Maccor, Arbin simulators)")  # fmt: skip
    print(f"{'fault':16s}" + "".join(f"{s:>13s}" for s in STATUSES))
    for name in sorted(t.by_fault, key=lambda k: (k.startswith(" "), k)):
        c = t.by_fault[name]
        print(f"{name:16s}" + "".join(f"{c[s]:13,d}" for s in STATUSES))
    print(f"link faults whose moment came after the run ended: {t.not_fired}")
    print(f"clean channels affected by the others' faults: {t.others_affected} of {t.clean}")
    print(f"files with lost/duplicated/mismatched records: {sum(t.record_breaks.values())}")
    print(f"unsafe ends (safety stop/alarm with the channel not stopped): {sum(t.unsafe.values())}")
    print(f"tracebacks: {t.total('traceback')}; hangs: {t.total('hang')}; surprises (not the expected status): "
          f"{t.unexpected()}")  # fmt: skip
    for c in (t.surprises, t.record_breaks, t.unsafe, t.errors):
        for msg, k in c.most_common(10):
            print(f"  x{k}: {msg}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faults", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--clean", type=int, default=4, help="channels per round without a fault")
    ap.add_argument("--speedup", type=float, default=1000.0)
    ap.add_argument("--checkpoint", type=int, default=0, help="print the tally every N rounds")
    args = ap.parse_args()
    t0 = time.perf_counter()
    t = run_campaign(args.faults, seed=args.seed, channels=args.channels, clean=args.clean,
                     speedup=args.speedup, checkpoint=args.checkpoint, progress=True)  # fmt: skip
    print_tally(t, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
