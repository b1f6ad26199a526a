"""One simulated cycler channel: runs a vendor-neutral schedule on its own cell model.

Used by the Neware BTS simulator (and meant for the other cycler simulators). The
channel steps its :class:`CellModel` in simulated time, ends steps on their limits
(time, voltage, current, capacity), loops, and stores records (every record interval,
plus the first and last point of every step) with a running sequence id, the step's
own time, capacity and energy counters, as a cycler does. Units: SI inside (s, V, A,
Ah, Wh); each protocol converts on the wire.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from cyclerflow.errors import InputError

from .cell_model import CellModel
from .server import model_for

#: model sub-step while a step runs (simulated s): resolution of voltage/current end conditions
SUBSTEP_S = 1.0
#: voltage compliance of a constant-current step beyond its own stop voltage (V)
COMPLIANCE_MARGIN_V = 1.0


@dataclass(frozen=True)
class SimStep:
    """One schedule step. ``kind``: cc, cccv, rest, loop, end. ``current_a`` signed
    (> 0 charges); ``None`` limits are absent. ``loop_start``: the step id a loop goes
    back to; ``loop_count``: how many times the body runs."""

    step_id: int
    kind: str
    type_name: str
    current_a: float = 0.0
    voltage_v: float | None = None
    stop_voltage_v: float | None = None
    stop_current_a: float | None = None
    time_s: float | None = None
    capacity_ah: float | None = None
    loop_start: int = 0
    loop_count: int = 0


@dataclass(frozen=True)
class Schedule:
    steps: tuple[SimStep, ...]
    record_s: float
    voltage_max: float | None = None
    voltage_min: float | None = None


RECORD_FIELDS = (
    "seq",
    "step_id",
    "cycle_id",
    "step_time_s",
    "test_time_s",
    "voltage_v",
    "current_a",
    "capacity_ah",
    "energy_wh",
)


def cycler_arguments(description: str) -> argparse.ArgumentParser:
    """The command line every cycler simulator takes (``--port``, ``--host``, ``--channels``
    per unit, ``--units``, ``--speedup``, ``--fault`` repeated); add the simulator's own."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--units", type=int, default=1)
    ap.add_argument("--speedup", type=float, default=1.0)
    ap.add_argument("--fault", action="append", default=[])
    return ap


@dataclass
class CyclerFaults:
    """Fault injection of a cycler simulator (parsed from ``--fault`` specs).

    ``drop:after=N``: close the connection after its N-th reply; ``stall:delay=S,every=K``:
    hold every K-th reply S wall seconds; ``garble:after=N``: corrupt bytes in the middle of
    the N-th reply of each connection (its length and end kept: the framing holds, the
    content does not); ``alarm:channel=C,at=T``: channel C (1-based, over all units) trips
    its protection at simulated test time T s; ``refuse:channel=C``: channel C refuses to
    start.
    """

    drop_after: int = 0
    stall_delay_s: float = 0.0
    stall_every: int = 0
    garble_after: int = 0
    alarms: dict[int, float] = field(default_factory=dict)
    refuse: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, faults) -> CyclerFaults:
        """``faults`` itself when it is a :class:`CyclerFaults`, else parsed as specs."""
        return faults if isinstance(faults, CyclerFaults) else cls.parse(faults)

    @classmethod
    def parse(cls, specs: tuple[str, ...] | list[str]) -> CyclerFaults:
        f = cls()
        for spec in specs:
            kind, _, rest = spec.partition(":")
            params = {}
            for item in filter(None, rest.split(",")):
                key, eq, value = item.partition("=")
                try:
                    params[key.strip()] = float(value)
                except ValueError:
                    raise InputError(f"fault {spec!r}: {key} must be a number") from None
                if not eq:
                    raise InputError(f"fault {spec!r}: expected key=value, got {item!r}")
            f._add(kind.strip(), params, spec)
        return f

    def _add(self, kind: str, p: dict[str, float], spec: str) -> None:
        need = {"drop": {"after"}, "stall": {"delay"}, "alarm": {"channel", "at"}}
        need |= {"refuse": {"channel"}, "garble": {"after"}}
        if kind not in need:
            raise InputError(
                f"unknown fault {kind!r} in {spec!r} (expected drop, stall, garble, alarm or refuse)"
            )
        missing = need[kind] - set(p)
        if missing:
            raise InputError(f"fault {spec!r}: needs {', '.join(sorted(missing))}")
        if kind == "drop":
            self.drop_after = int(p["after"])
        elif kind == "stall":
            self.stall_delay_s, self.stall_every = p["delay"], int(p.get("every", 1))
        elif kind == "garble":
            self.garble_after = int(p["after"])
        elif kind == "alarm":
            self.alarms[int(p["channel"])] = p["at"]
        else:
            self.refuse.add(int(p["channel"]))

    def drops_reply(self, n_reply: int) -> bool:
        """Apply the faults before the ``n_reply``-th reply (1-based) of a connection.

        Sleeps the stall (``stall_delay_s`` wall seconds) when due, then says whether the
        connection is dropped instead of sending this reply (``drop:after=N``).
        """
        if self.stall_every and n_reply % self.stall_every == 0:
            time.sleep(self.stall_delay_s)
        return bool(self.drop_after and n_reply >= self.drop_after)

    def deliver(self, n_reply: int, out: bytes) -> bytes | None:
        """The bytes to send as the ``n_reply``-th reply (1-based) of a connection, ``out``
        with the faults applied (stall, garble); None: drop the connection instead."""
        if self.drops_reply(n_reply):
            return None
        if self.garble_after and n_reply == self.garble_after:
            return garbled(out)
        return out


def garbled(out: bytes) -> bytes:
    """``out`` with a quarter of its bytes from the middle on replaced by junk (length,
    first and last bytes kept: a framed reply stays framed)."""
    k = len(out) // 4
    if k == 0:
        return out
    mid = len(out) // 2
    junk = (b"\xff#\x00garbled\x00#" * (k // 12 + 1))[:k]
    return out[:mid] + junk + out[mid + k :]


class SimChannel:
    """A cycler channel: state ``finish`` (idle), ``working``, ``stop``, ``protect``."""

    def __init__(self, model: CellModel, number: int, *, alarm_at_s: float | None = None):
        self.model = model
        self.number = number
        self.lock = threading.RLock()
        self.state = "finish"
        self.test_id = 0
        self.barcode = ""
        self.alarm_at_s = alarm_at_s
        self.refuse = False
        self.records: list[tuple] = []
        self.log: list[tuple[int, int, float]] = []  # (seq, code, test time)
        self._schedule: Schedule | None = None
        self._t0 = 0.0  # model time at test start
        self._pc = 0
        self._loops: dict[int, int] = {}

    # control ------------------------------------------------------------------------
    def start(self, schedule: Schedule, barcode: str, now_s: float) -> bool:
        """Start a test at simulated time ``now_s``; False when the channel refuses."""
        with self.lock:
            self.advance_to(now_s)
            if self.refuse or self.state == "working":
                return False
            self._schedule, self.barcode = schedule, barcode
            self.test_id += 1
            self.records, self.log = [], [(0, 100000, 0.0)]
            self._t0 = self.model.time_s
            self.cycle_id, self._loops = 1, {}
            self.state = "working"
            self._enter(0)
            return True

    def stop(self, now_s: float) -> bool:
        with self.lock:
            self.advance_to(now_s)
            if self.state != "working":
                return False
            self._record()
            self.state = "stop"
            self.model.set_open_circuit()
            self.log.append((len(self.records), 100001, self.test_time))
            return True

    @property
    def test_time(self) -> float:
        return self.model.time_s - self._t0

    # running -------------------------------------------------------------------------
    def _enter(self, pc: int) -> None:
        steps = self._schedule.steps
        while True:
            step = steps[pc]
            if step.kind == "end":
                self.state = "finish"
                self.model.set_open_circuit()
                self.log.append((len(self.records), 100001, self.test_time))
                return
            if step.kind != "loop":
                break
            done = self._loops.get(pc, 0) + 1
            self.cycle_id += 1
            if done < step.loop_count:
                self._loops[pc] = done
                pc = next(k for k, s in enumerate(steps) if s.step_id == step.loop_start)
            else:
                self._loops.pop(pc, None)
                pc += 1
        self._pc, self.step = pc, step
        self._step_t0 = self.model.time_s
        self._q0 = self.model.true_charge_ah
        self.energy_wh = 0.0
        self._in_cv = False
        self._apply(step)
        self._record()

    def _apply(self, step: SimStep) -> None:
        m = self.model
        if step.kind == "rest":
            m.set_open_circuit()
        elif step.kind == "cc":
            stop = step.stop_voltage_v
            m.set_current(step.current_a, (stop if stop is not None else 4.5) + COMPLIANCE_MARGIN_V)
        else:  # cccv: constant current until voltage_v, then held there (see _ended)
            m.set_current(step.current_a, step.voltage_v + COMPLIANCE_MARGIN_V)

    def _record(self) -> None:
        m = self.model
        cap = abs(m.true_charge_ah - self._q0)
        self.records.append(
            (
                len(self.records) + 1,
                self.step.step_id,
                self.cycle_id,
                m.time_s - self._step_t0,
                self.test_time,
                m.voltage_v,
                m.current_a,
                cap,
                self.energy_wh,
            )
        )
        self._last_record = m.time_s

    def _ended(self) -> bool:
        s, m = self.step, self.model
        t = m.time_s - self._step_t0
        if s.time_s is not None and t >= s.time_s - 1e-9:
            return True
        if s.capacity_ah is not None and abs(m.true_charge_ah - self._q0) >= s.capacity_ah:
            return True
        if s.kind == "cc" and s.stop_voltage_v is not None:
            v = m.voltage_v
            return v >= s.stop_voltage_v if s.current_a > 0 else v <= s.stop_voltage_v
        if s.kind == "cccv":
            if not self._in_cv:
                up = s.current_a > 0
                if (m.voltage_v >= s.voltage_v) if up else (m.voltage_v <= s.voltage_v):
                    self._in_cv = True
                    m.set_voltage(s.voltage_v, abs(s.current_a))
                return False
            return s.stop_current_a is not None and abs(m.current_a) <= s.stop_current_a
        return False

    def advance_to(self, now_s: float) -> None:
        """Run the schedule up to the model time ``now_s`` (simulated s)."""
        with self.lock:
            while self.state == "working" and self.model.time_s < now_s - 1e-9:
                self._substep(now_s)
            if self.model.time_s < now_s:
                self.model.advance_to(now_s)

    def _substep(self, now_s: float) -> None:
        m, s = self.model, self.step
        dt = min(
            SUBSTEP_S, now_s - m.time_s, self._last_record + self._schedule.record_s - m.time_s
        )
        if s.time_s is not None:
            dt = min(dt, self._step_t0 + s.time_s - m.time_s)
        dt = max(dt, 1e-6)
        v0, i0 = m.voltage_v, m.current_a
        m.advance(dt)
        self.energy_wh += abs(0.5 * (v0 * i0 + m.voltage_v * m.current_a)) * dt / 3600.0
        if self.alarm_at_s is not None and self.test_time >= self.alarm_at_s:
            self._alarm()
            return
        if self._ended():
            self._record()
            self._enter(self._pc + 1)
        elif m.time_s - self._last_record >= self._schedule.record_s - 1e-9:
            self._record()

    def _alarm(self) -> None:
        self._record()
        self.alarm_at_s = None
        self.state = "protect"
        self.model.set_open_circuit()
        self.log.append((len(self.records), 100215, self.test_time))

    def preload(self, n: int, record_s: float, current_a: float) -> None:
        """Fill the record store with ``n`` synthetic records (a channel that ran offline):
        alternating charge/discharge steps of 3,600 records at +-``current_a``."""
        k = np.arange(n)
        half = k // 3600
        sign = np.where(half % 2 == 0, 1.0, -1.0)
        step_t = (k % 3600) * record_s
        v = 3.7 + 0.3 * sign * (k % 3600) / 3600.0
        cap = abs(current_a) * step_t / 3600.0
        cols = (
            k + 1,
            half % 2 + 1,
            half // 2 + 1,
            step_t,
            k * record_s,
            v,
            sign * current_a,
            cap,
            cap * 3.7,
        )
        steps = (SimStep(1, "cc", "cc"), SimStep(2, "cc", "dc"), SimStep(3, "end", "end"))
        with self.lock:
            self._schedule = Schedule(steps, record_s)
            self.records = ArrayRecords(cols)
            self.state = "finish"
            self.test_id += 1


class ArrayRecords:
    """Records kept as columns (a preloaded backlog): ``len``, slices and ``[-1]`` give
    tuples like the list a running channel keeps."""

    def __init__(self, cols: tuple[np.ndarray, ...]):
        self.cols = cols

    def __len__(self) -> int:
        return len(self.cols[0])

    def __getitem__(self, key):
        if isinstance(key, slice):
            return list(zip(*(c[key].tolist() for c in self.cols), strict=True))
        return tuple(c[key].item() for c in self.cols)


def simulated_channels(count: int, cell_of, seed: int, faults: CyclerFaults) -> list[SimChannel]:
    """Channels 1..``count`` (numbered over all units): channel n runs its own cell model
    (``model_for(cell_of(n), seed + n)``) and gets its ``alarm``/``refuse`` faults."""
    out = []
    for n in range(1, count + 1):
        ch = SimChannel(model_for(cell_of(n), seed + n), n, alarm_at_s=faults.alarms.get(n))
        ch.refuse = n in faults.refuse
        out.append(ch)
    return out
