"""Simulated source-measure units (Keithley 2450, Keysight B2900) over the cell model.

The SMU's own sign: positive current flows out of the HI terminal. With the cell's
positive electrode on HI (the usual wiring), positive current charges the cell, which
is the model's sign too.
"""

from __future__ import annotations

import math

from ..simclock import with_clock
from .scpi import ScpiError, ScpiProtocol, choice_arg, number_arg
from .trigger import apply_source, take_reading

SETTINGS_CONFLICT = (-221, "Settings conflict; trigger model or acquisition running")


class SmuSim(ScpiProtocol):
    """Source/measure state shared by the SMU simulators (kept on the server)."""

    current_max = 1.05
    voltage_max = 210.0

    def __init__(self, server):
        super().__init__(server)
        self.smu = server.state.setdefault(
            "smu",
            {
                "output": False,
                "source": "VOLT",
                "sense": "CURR",
                "curr": 0.0,
                "volt": 0.0,
                "vlim": 21.0,
                "ilim": 1.05e-4,
                "applied": None,
                "t0": 0.0,
                "last": None,  # newest reading in the buffer: (voltage, current, time)
            },
        )
        self.program = self.smu.get("program")
        if self.program is None:
            self.program = self.smu["program"] = self.make_program()
            server.instrument_program = self.program

    def make_program(self):
        """The instrument's own program (trigger model / acquisition), kept on the server."""
        raise NotImplementedError

    # model link ---------------------------------------------------------------------
    def apply(self) -> None:
        """Push the source state to the model (a new segment only when it changed)."""
        with self.server.lock:
            self.server.sync()
            apply_source(self.model, self.smu)

    def measure(self) -> tuple[float, float, float]:
        """(voltage V, current A, simulated time s) now: a new reading into the buffer."""
        if self.program_running():
            raise ScpiError(*SETTINGS_CONFLICT)
        with self.server.lock:
            t = self.server.sync()
            return take_reading(self.model, self.smu, t)

    def latest(self) -> tuple[float, float, float]:
        """The buffer's newest reading (``FETCh?``); a new one when the buffer is empty."""
        with self.server.lock:
            t = self.server.sync()
            if self.smu["last"] is None:
                return take_reading(self.model, self.smu, t)
            return self.smu["last"]

    def program_running(self) -> bool:
        raise NotImplementedError

    def now(self) -> float:
        with self.server.lock:
            return self.server.sync()

    # shared handlers ------------------------------------------------------------------
    def idn(self, args: str) -> str:
        return with_clock(self.IDN, self.server.clock.speedup)

    def cls(self, args: str) -> None:
        self.errors.clear()

    def rst(self, args: str) -> None:
        with self.server.lock:
            self.server.sync()
            self.program.abort()  # a reset stops the instrument's own program too
        self.smu.update(output=False, source="VOLT", sense="CURR", curr=0.0, volt=0.0)
        self.apply()

    def output(self, args: str) -> None:
        self.smu["output"] = choice_arg(args, "ON", "OFF", "1", "0") in ("ON", "1")
        self.apply()

    def output_q(self, args: str) -> str:
        self.now()  # the instrument's program may have switched it off meanwhile
        return "1" if self.smu["output"] else "0"

    def source_level_curr_q(self, args: str) -> str:
        return fmt(self.smu["curr"])

    def source_level_volt_q(self, args: str) -> str:
        return fmt(self.smu["volt"])

    def source_level_curr(self, args: str) -> None:
        self.smu["curr"] = number_arg(args, -self.current_max, self.current_max)
        self.apply()

    def source_level_volt(self, args: str) -> None:
        self.smu["volt"] = number_arg(args, -self.voltage_max, self.voltage_max)
        self.apply()

    def vlim(self, args: str) -> None:
        self.smu["vlim"] = number_arg(args, 0.02, self.voltage_max)
        self.apply()

    def ilim(self, args: str) -> None:
        self.smu["ilim"] = number_arg(args, 1e-9, self.current_max)
        self.apply()

    def accept(self, args: str) -> None:
        """Settings the model does not need (ranges, read-back, output-off mode)."""

    def syst_err(self, args: str) -> str:
        return self.next_error()

    def reset_time(self, args: str) -> None:
        with self.server.lock:
            self.smu["t0"] = self.server.sync()


def fmt(x: float) -> str:
    return "9.9E+37" if not math.isfinite(x) else f"{x:.6E}"
