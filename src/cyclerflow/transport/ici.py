"""ICI: intermittent current interruption (Lacey; Chien et al., Nat. Commun. 2023).

An interruption is a rest step between two constant-current steps of the same sign
and nearly the same current, at most ``max_rest_ratio`` x as long as the shorter of
them. During the interruption (t measured from the last loaded sample)

    E(t) = E_load - I R - I k sqrt(t)

so a straight line of E vs sqrt(t) gives R (Ω, from the intercept) and the diffusion
resistance coefficient k (Ω s^-1/2, from the slope). By superposition, the response the
cell was following under load carries on during the interruption: the voltage drift
dE/dt of the end of the preceding constant-current step (last quarter, straight line) is
subtracted before the fit, E(t) - (dE/dt)_load t (without it, k is biased low by the
parabolic concentration profile relaxing and D comes out ~20 % high on a film).
For one dominant diffusion process in a film of diffusion length L (semi-infinite
over the interruption; samples in the first 5 % of the interruption, such as a
reading right at the switch that still holds the fast charge-transfer relaxation,
are left out of the fit):

    D = 4/pi * (L * (dE/dQ) / k)^2

with dE/dQ = (dE/dt)_load / I (V/C) from that same drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cyclerflow.transport.fitting import finite, fit_line
from cyclerflow.transport.geometry import DiffusionLength
from cyclerflow.transport.steps import CC, REST, Record

METHOD = (
    "ICI: straight line of E - (dE/dt)_load t vs sqrt(t) in each interruption -> "
    "R = (E_load - intercept)/I, k = -slope/I; D = 4/pi (L dE/dQ / k)^2, "
    "dE/dQ = (dE/dt)_load / I from the end of the preceding CC step"
)


@dataclass(frozen=True)
class IciOptions:
    """max_rest_ratio: interruption / shorter neighbouring CC step; current_match:
    relative difference allowed between the currents before and after; quasi_steady:
    see :func:`ici`."""

    max_rest_ratio: float = 0.25
    current_match: float = 0.1
    min_samples: int = 3
    quasi_steady: float = 0.5
    #: samples of the first ``fit_from`` x the interruption are left out of the fit
    fit_from: float = 0.05


def interruption_indices(rec: Record, opt: IciOptions) -> np.ndarray:
    """Indices of rest steps that are current interruptions."""
    st = rec.steps
    if len(st) < 3:
        return np.zeros(0, "i8")
    dur = st.duration(rec.t)
    k = np.arange(1, len(st) - 1)
    before, after = st.current[k - 1], st.current[k + 1]
    ok = (st.kind[k] == REST) & (st.kind[k - 1] == CC) & (st.kind[k + 1] == CC)
    ok &= np.sign(before) == np.sign(after)
    ok &= np.abs(after - before) <= opt.current_match * np.abs(before)
    ok &= dur[k] <= opt.max_rest_ratio * np.minimum(dur[k - 1], dur[k + 1])
    ok &= st.n[k] >= opt.min_samples
    return k[ok]


def _drift(rec: Record, k: int) -> float | None:
    """dE/dt (V/s) over the last quarter of step k - 1 (straight line)."""
    a, b = int(rec.steps.start[k - 1]), int(rec.steps.end[k - 1])
    lo = max(a, b - max(3, (b - a) // 4))
    line = fit_line(rec.t[lo:b], rec.v[lo:b])
    return None if line is None else line.slope


def _time_under_current(rec: Record, k: int, interruptions: set[int]) -> float:
    """Seconds since the current sequence (CC steps and interruptions) before step k began."""
    st = rec.steps
    j = k - 1
    while j > 0 and (st.kind[j - 1] == CC or (j - 1) in interruptions):
        j -= 1
    return float(rec.t[st.start[k] - 1] - rec.t[max(st.start[j] - 1, 0)])


def _interruption(rec: Record, k: int, length: DiffusionLength, opt: IciOptions) -> dict:
    st, t, v = rec.steps, rec.t, rec.v
    a, b = int(st.start[k]), int(st.end[k])
    current = float(st.current[k - 1])
    e_load = float(v[a - 1])
    drift = _drift(rec, k)
    dt = t[a:b] - t[a - 1]
    # a reading right at the switch still holds fast (charge-transfer, ms) relaxation
    use = dt >= opt.fit_from * dt[-1]
    line = fit_line(np.sqrt(dt[use]), v[a:b][use] - (drift or 0.0) * dt[use])
    r = k_coef = d = None
    de_dq = None if drift is None else drift / current
    if line is not None:
        r = (e_load - line.intercept) / current
        k_coef = -line.slope / current
    if length.length_cm and de_dq is not None and k_coef:
        d = 4.0 / math.pi * (length.length_cm * de_dq / k_coef) ** 2
    return {
        "step": int(k),
        "time_s": float(t[a - 1]),
        "interruption_s": float(t[b - 1] - t[a - 1]),
        "current_a": current,
        "direction": "charge" if current > 0 else "discharge",
        "soc": finite(rec.soc(a - 1)),
        "voltage_v": e_load,
        "resistance_ohm": finite(r),
        "k_ohm_per_sqrt_s": finite(k_coef),
        "de_dq_v_per_c": finite(de_dq),
        "sqrt_t_fit_r2": None if line is None else finite(line.r2),
        "diffusion_coefficient_cm2_per_s": finite(d),
        "diffusion_length_route": length.route,
    }


def ici(rec: Record, length: DiffusionLength, opt: IciOptions = IciOptions()) -> list[dict]:
    """One entry per current interruption: R (Ω), k (Ω/√s), D (cm²/s), SOC, voltage.

    ``quasi_steady`` is true when the current had flowed for at least
    ``opt.quasi_steady`` x L^2/D before the interruption (the concentration profile had
    settled, as the drift correction assumes)."""
    idx = [int(k) for k in interruption_indices(rec, opt)]
    found = set(idx)
    out = []
    for k in idx:
        row = _interruption(rec, k, length, opt)
        d = row["diffusion_coefficient_cm2_per_s"]
        on = _time_under_current(rec, k, found)
        row["time_under_current_s"] = on
        row["quasi_steady"] = bool(d and on >= opt.quasi_steady * length.length_cm**2 / d)
        out.append(row)
    return out
