"""Simulated Lake Shore 335 temperature controller (its serial command set) heating a cell.

Thermal model: the effective set point moves toward ``SETP`` at the ``RAMP`` rate (or
jumps when ramping is off); the sample relaxes to it with a 60 s time constant while
the heater range is not 0. The temperature is written to the shared cell model's
``temperature_k`` (so the SMU/potentiostat simulator sees an Arrhenius electrolyte).
Errors set bits of the standard event status register (``*ESR?``): 32 command error,
16 execution error (value out of range), 4 query error.
"""

from __future__ import annotations

import math
from types import MappingProxyType

from ..simclock import with_clock
from .server import Protocol

TAU_S = 60.0
OUTPUT_COMMANDS = ("SETP", "SETP?", "RAMP", "RAMP?", "RAMPST?", "RANGE", "RANGE?")
COMMAND_ERROR, EXECUTION_ERROR, QUERY_ERROR = 32, 16, 4


class LakeShore335Sim(Protocol):
    resource_template = "socket://{host}:{port}"
    terminator = "\r\n"
    IDN = "LSCI,MODEL335,LSA0001,2.5"

    def __init__(self, server):
        super().__init__(server)
        t0 = self.model.temperature_k
        self.ls = server.state.setdefault(
            "ls",
            {
                "T": t0,
                "setp": t0,
                "eff": t0,
                "ramp_on": 0,
                "rate": 0.0,
                "range": 0,
                "t": server.clock.now(),
                "esr": 0,
            },
        )

    def inject_error(self) -> None:
        self.ls["esr"] |= EXECUTION_ERROR

    def _update(self) -> None:
        s = self.ls
        now = self.server.clock.now()
        dt = max(0.0, now - s["t"])
        s["t"] = now
        if s["ramp_on"] and s["rate"] > 0:
            step = s["rate"] / 60.0 * dt
            diff = s["setp"] - s["eff"]
            s["eff"] += max(-step, min(step, diff))
        else:
            s["eff"] = s["setp"]
        if s["range"] > 0:
            s["T"] = s["eff"] + (s["T"] - s["eff"]) * math.exp(-dt / TAU_S)
        with self.server.lock:
            self.model.temperature_k = s["T"]

    def handle(self, line: str) -> list[str]:
        replies = []
        for cmd in filter(None, (c.strip() for c in line.split(";"))):
            self._update()
            head, _, args = cmd.partition(" ")
            head = head.upper()
            params = [a.strip() for a in args.split(",")] if args.strip() else []
            try:
                reply = self._dispatch(head, params)
            except (ValueError, IndexError):
                self.ls["esr"] |= EXECUTION_ERROR
                continue
            if reply is not None:
                replies.append(reply)
        return [";".join(replies)] if replies else []

    def _dispatch(self, head: str, p: list[str]) -> str | None:
        handler = self._HANDLERS.get(head)
        if handler is None:
            self.ls["esr"] |= QUERY_ERROR if head.endswith("?") else COMMAND_ERROR
            return None
        if head in OUTPUT_COMMANDS and int(p[0]) not in (1, 2):
            raise ValueError
        return handler(self, self.ls, p)

    def _idn(self, s, p):
        return with_clock(self.IDN, self.server.clock.speedup)

    def _cls(self, s, p):
        s["esr"] = 0

    def _esr(self, s, p):
        value, s["esr"] = s["esr"], 0
        return str(value)

    def _krdg(self, s, p):
        if p[0].upper() not in ("A", "B"):
            raise ValueError
        return f"{s['T']:+.3f}"

    def _setp(self, s, p):
        value = float(p[1])
        if not 0 <= value <= 1500:
            raise ValueError
        s["setp"] = value

    def _ramp(self, s, p):
        on, rate = int(p[1]), float(p[2])
        if on not in (0, 1) or not 0 <= rate <= 100:
            raise ValueError
        s["ramp_on"], s["rate"] = on, rate

    def _range(self, s, p):
        value = int(p[1])
        if value not in (0, 1, 2, 3):
            raise ValueError
        s["range"] = value

    _HANDLERS = MappingProxyType(
        {
            "*IDN?": _idn,
            "*CLS": _cls,
            "*ESR?": _esr,
            "KRDG?": _krdg,
            "SETP": _setp,
            "SETP?": lambda self, s, p: f"{s['setp']:+.4f}",
            "RAMP": _ramp,
            "RAMP?": lambda self, s, p: f"{s['ramp_on']},{s['rate']:+.1f}",
            "RAMPST?": lambda self, s, p: (
                "1" if s["ramp_on"] and abs(s["eff"] - s["setp"]) > 1e-9 else "0"
            ),
            "RANGE": _range,
            "RANGE?": lambda self, s, p: str(s["range"]),
        }
    )
