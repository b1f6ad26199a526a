"""What the simulated SMUs run on their own, without the host (in simulated time).

- :class:`TriggerModel2450`: the Keithley 2450 trigger model (blocks defined with
  ``:TRIGger:BLOCk:...``, started with ``:INITiate``, stopped with ``:ABORt``), the
  block kinds the driver uses: measure, branch on constant limits, constant delay,
  branch always, source output on/off.
- :class:`Acquisition2900`: the B2900 timer-triggered acquisition (``:TRIG:ACQ:SOUR
  TIM``, ``:TRIG:ACQ:TIM``, ``:TRIG:ACQ:COUN``, ``:ARM:ACQ:COUN``) with the limit test
  (``:CALC:LIM:...``, composite limit ``:CALC:CLIM:UPD IMM`` stops at the first failure)
  and automatic output off when the channel goes idle (``:OUTP:OFF:AUTO ON``).

Both step the cell model measurement by measurement when the server syncs (every
command, every 5 ms tick of a connection, and on a test's ``server.advance``), so a
limit is tested at each of the instrument's own measurement times, host or no host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LOOP_GUARD = 10_000  # blocks run without simulated time passing before a delay is forced
MEASURE_S = 0.02  # time one measurement takes when a loop has no delay block (1 PLC)


def apply_source(model, smu: dict) -> None:
    """Push the SMU's source state to the model (caller holds the lock; model is at now)."""
    if not smu["output"]:
        want = ("ocv",)
    elif smu["source"] == "CURR":
        want = ("cc", smu["curr"], smu["vlim"])
    else:
        want = ("cv", smu["volt"], smu["ilim"])
    if want == smu["applied"]:
        return
    if want[0] == "ocv":
        model.set_open_circuit()
    elif want[0] == "cc":
        model.set_current(want[1], want[2])
    else:
        model.set_voltage(want[1], want[2])
    smu["applied"] = want


def take_reading(model, smu: dict, t: float) -> tuple[float, float, float]:
    """Step the model to ``t`` and store (voltage, current, t) as the buffer's newest reading."""
    model.advance_to(t)
    v, i = model.measure()
    if not smu["output"]:
        i = 0.0
    smu["last"] = (v, i, t)
    return v, i, t


def outside(kind: str, value: float, low: float, high: float) -> bool:
    """The 2450 constant-limit test: ABOVe limitB, BELow limitA, INside, OUTside [A, B]."""
    lo, hi = min(low, high), max(low, high)
    return {
        "ABOV": value > high,
        "BEL": value < low,
        "IN": lo <= value <= hi,
        "OUT": value < lo or value > hi,
    }[kind]


@dataclass
class TriggerModel2450:
    """The 2450 trigger model (state lives on the server: survives the host)."""

    model: object
    smu: dict
    blocks: dict[int, tuple] = field(default_factory=dict)
    state: str = "EMPTY"
    pc: int = 1
    t: float = 0.0
    last_block: int = 0
    _spins: int = 0

    def load_empty(self) -> None:
        self.blocks.clear()
        self.state, self.last_block = "EMPTY", 0

    def define(self, number: int, block: tuple) -> None:
        self.blocks[number] = block
        if self.state == "EMPTY":
            self.state = "IDLE"

    def initiate(self, t: float) -> None:
        self.state, self.pc, self.t, self._spins = "RUNNING", 1, t, 0

    def abort(self) -> None:
        if self.state == "RUNNING":
            self.state = "ABORTED"

    def status(self) -> str:
        """``:TRIGger:STATe?``: state of the model, state of the present block, last block."""
        return f"{self.state};{self.state};{self.last_block}"

    def __call__(self, now: float) -> None:
        """Run blocks up to simulated time ``now`` (the server's instrument program)."""
        while self.state == "RUNNING":
            block = self.blocks.get(self.pc)
            if block is None:
                self.state = "IDLE"
                return
            kind = block[0]
            if kind in ("MEAS", "SOUR") and self.t > now + 1e-12:
                return  # waits for its time
            self._spins += 1
            if self._spins > LOOP_GUARD:
                self.t += MEASURE_S
                self._spins = 0
            self.last_block = self.pc
            self.pc = self._run(block, self.pc)

    def _run(self, block: tuple, pc: int) -> int:
        kind = block[0]
        if kind == "MEAS":
            v, i, _ = take_reading(self.model, self.smu, self.t)
            self.smu["reading"] = v if self.smu["sense"] == "VOLT" else i
        elif kind == "DEL":
            self.t += block[1]
            self._spins = 0
        elif kind == "LIM":
            _, limit_kind, low, high, target = block
            if outside(limit_kind, self.smu.get("reading", math.nan), low, high):
                return target
        elif kind == "ALW":
            return block[1]
        elif kind == "SOUR":
            self.model.advance_to(self.t)
            self.smu["output"] = block[1]
            apply_source(self.model, self.smu)
        return pc + 1


@dataclass
class Acquisition2900:
    """B2900 timer-triggered acquisition with limit test and automatic output off."""

    model: object
    smu: dict
    running: bool = False
    t_next: float = 0.0
    remaining: float = 0.0
    failed: bool = False

    def initiate(self, t: float) -> None:
        s = self.smu
        self.running, self.t_next, self.failed = True, t, False
        self.remaining = s["trig_count"] * s["arm_count"]

    def abort(self) -> None:
        self.running = False

    def __call__(self, now: float) -> None:
        s = self.smu
        while self.running and self.t_next <= now + 1e-12:
            v, i, t = take_reading(self.model, s, self.t_next)
            self.t_next += max(s["trig_timer"], 1e-5)
            self.remaining -= 1
            if s["lim_state"]:
                value = v if s["feed"] == "VOLT" else i
                fail = not (s["lim_low"] <= value <= s["lim_upp"])
                self.failed = self.failed or fail
                if fail and s["clim_update"] == "IMM":
                    self._idle(t)
                    return
            if self.remaining <= 0:
                self._idle(t)

    def _idle(self, t: float) -> None:
        self.running = False
        if self.smu["auto_off"]:
            self.model.advance_to(t)
            self.smu["output"] = False
            apply_source(self.model, self.smu)
