"""Independent truth for DCIR and self-discharge: an equivalent circuit, solved exactly.

OCV U = u0 + slope * Q_cell / capacity (linear); series ohmic R0; one RC element
(R1, tau1) in series (driven by the external current); a soft short R_s across the OCV
(it drains U / R_s from the cell at all times). Per step the ODEs are linear with
constant coefficients and are solved in closed form at every sample:

    CC / rest (current I):  dU/dt = (slope / C) (I - U / R_s)
    CV hold (terminal V):   I = (V - U) / R0, dU/dt = (slope / C) (I - U / R_s)  (R1 = 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import dataset


@dataclass
class Cell:
    capacity_as: float = 3600.0
    u0: float = 3.6
    slope: float = 0.6
    r0: float = 0.05
    r1: float = 0.0
    tau1: float = 1.0
    r_short: float = np.inf
    soc: float = 0.0
    v_rc: float = 0.0

    @property
    def u(self) -> float:
        return self.u0 + self.slope * self.soc

    def _u_cc(self, amp: float, t: np.ndarray) -> np.ndarray:
        k = self.slope / self.capacity_as
        if np.isinf(self.r_short):
            return self.u + k * amp * t
        beta = k / self.r_short
        u_inf = amp * self.r_short
        return u_inf + (self.u - u_inf) * np.exp(-beta * t)

    def cc(self, amp: float, dur: float, dt: float, v_cut: float | None = None):
        """Constant current for ``dur`` s (or until the terminal voltage crosses v_cut)."""
        t = np.arange(dt, dur + dt / 2, dt)
        u = self._u_cc(amp, t)
        vrc = amp * self.r1 + (self.v_rc - amp * self.r1) * np.exp(-t / self.tau1)
        v = u + self.r0 * amp + vrc
        if v_cut is not None:
            past = np.flatnonzero((v - v_cut) * np.sign(amp) >= 0)
            if len(past):
                n = past[0] + 1
                if n >= 2:  # last sample at the crossing (exact when V is linear in t)
                    t = t.copy()
                    frac = (v_cut - v[n - 2]) / (v[n - 1] - v[n - 2])
                    t[n - 1] = t[n - 2] + frac * (t[n - 1] - t[n - 2])
                    u = self._u_cc(amp, t)
                    vrc = amp * self.r1 + (self.v_rc - amp * self.r1) * np.exp(-t / self.tau1)
                    v = u + self.r0 * amp + vrc
                t, u, vrc, v = t[:n], u[:n], vrc[:n], v[:n]
        self.soc = (u[-1] - self.u0) / self.slope
        self.v_rc = vrc[-1]
        return t, np.full(len(t), amp), v

    def cv(self, volt: float, dur: float, dt: float):
        assert self.r1 == 0
        t = np.arange(dt, dur + dt / 2, dt)
        k = self.slope / self.capacity_as
        # dU/dt = k((V - U)/R0 - U/R_s): linear, fixed point U* = V R_s/(R0 + R_s)
        g = 1 / self.r0 + (0 if np.isinf(self.r_short) else 1 / self.r_short)
        u_star = volt / self.r0 / g
        u = u_star + (self.u - u_star) * np.exp(-k * g * t)
        i = (volt - u) / self.r0  # R0 carries the external current
        self.soc = (u[-1] - self.u0) / self.slope
        return t, i, np.full(len(t), volt)


def run(cell: Cell, program) -> object:
    """program: list of ("cc", I, dur, dt, v_cut) / ("cv", V, dur, dt) / ("rest", dur, dt)."""
    ts, cs, vs, t0 = [], [], [], 0.0
    for step in program:
        if step[0] == "cc":
            t, i, v = cell.cc(step[1], step[2], step[3], step[4] if len(step) > 4 else None)
        elif step[0] == "cv":
            t, i, v = cell.cv(step[1], step[2], step[3])
        else:
            t, i, v = cell.cc(0.0, step[1], step[2])
        ts.append(t0 + t)
        cs.append(i)
        vs.append(v)
        t0 += t[-1]
    return dataset(np.concatenate(ts), np.concatenate(cs), np.concatenate(vs))
