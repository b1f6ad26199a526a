"""GITT: Weppner–Huggins diffusion coefficient, IR drop and pulse resistance per pulse.

A GITT pulse is a constant-current step with a rest before and after it, the rest after
at least ``min_rest_ratio`` x as long as the pulse, and the pulse's charge at most
``max_pulse_fraction`` of the record's charge range (so a full charge or discharge
between rests is not a pulse). Per pulse (docs/transport.md):

    D = 4 / (pi tau) * L^2 * (dEs / dEt)^2           (valid for tau << L^2 / D)

tau the pulse length (s), L the diffusion length (cm, :mod:`.geometry`), dEs the change
of the relaxed voltage across the pulse, dEt the transient voltage change during the
pulse without the IR drop, taken as the slope of E vs sqrt(t - t_on) times sqrt(tau).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cyclerflow.transport.fitting import finite, fit_line
from cyclerflow.transport.geometry import DiffusionLength
from cyclerflow.transport.steps import CC, REST, Record

METHOD = (
    "Weppner-Huggins: D = 4/(pi tau) L^2 (dEs/dEt)^2; dEt = slope of E vs sqrt(t) during "
    "the pulse x sqrt(tau); dEs = relaxed voltage after - before the pulse"
)


@dataclass(frozen=True)
class GittOptions:
    """min_rest_ratio: rest after / pulse length; max_pulse_fraction: pulse charge /
    record charge range; fit_from: the sqrt(t) fit uses t >= fit_from x tau;
    validity: Weppner–Huggins holds when tau <= validity x L^2 / D."""

    min_rest_ratio: float = 1.0
    max_pulse_fraction: float = 0.25
    fit_from: float = 0.05
    validity: float = 0.1
    min_samples: int = 4


def pulse_indices(rec: Record, opt: GittOptions) -> np.ndarray:
    """Indices of steps that are GITT pulses (see module docstring)."""
    st = rec.steps
    if len(st) < 3:
        return np.zeros(0, "i8")
    dur = st.duration(rec.t)
    dq = np.abs(rec.step_q)
    k = np.arange(1, len(st) - 1)
    ok = (st.kind[k] == CC) & (st.kind[k - 1] == REST) & (st.kind[k + 1] == REST)
    ok &= st.n[k] >= opt.min_samples
    ok &= dur[k + 1] >= opt.min_rest_ratio * dur[k]
    ok &= dq[k] <= opt.max_pulse_fraction * rec.charge_span_as
    return k[ok]


def _pulse(rec: Record, k: int, length: DiffusionLength, opt: GittOptions) -> dict:
    st, t, v = rec.steps, rec.t, rec.v
    a, b = int(st.start[k]), int(st.end[k])
    tau = float(t[b - 1] - t[a - 1])  # on after the last rest sample, off after the last
    current = float(st.current[k])
    e0 = float(v[a - 1])
    es = float(v[st.end[k + 1] - 1])
    trel = t[a:b] - t[a - 1]
    use = trel >= opt.fit_from * tau
    line = fit_line(np.sqrt(trel[use]), v[a:b][use])
    d_es = es - e0
    d_et = None if line is None else line.slope * math.sqrt(tau)
    d = None
    if length.length_cm and d_et and tau > 0:
        d = 4.0 / (math.pi * tau) * length.length_cm**2 * (d_es / d_et) ** 2
    valid = bool(
        d is not None
        and tau <= opt.validity * length.length_cm**2 / d
        and np.sign(d_es) == np.sign(d_et) == np.sign(current)
    )
    ir = float(v[b - 1] - v[b])
    return {
        "step": int(k),
        "start_time_s": float(t[a - 1]),
        "pulse_duration_s": tau,
        "current_a": current,
        "direction": "charge" if current > 0 else "discharge",
        "soc": finite(rec.soc((a + b - 1) // 2)),
        "voltage_before_v": e0,
        "voltage_relaxed_v": es,
        "delta_es_v": d_es,
        "delta_et_v": finite(d_et),
        "sqrt_t_fit_r2": None if line is None else finite(line.r2),
        "diffusion_coefficient_cm2_per_s": finite(d),
        "weppner_huggins_valid": valid,
        "ir_drop_v": ir,
        "resistance_ohm": finite(ir / current) if current else None,
        "pulse_resistance_ohm": None
        if line is None or not current
        else finite((line.intercept - e0) / current),
    }


def gitt(rec: Record, length: DiffusionLength, opt: GittOptions = GittOptions()) -> list[dict]:
    """One entry per GITT pulse, with D (cm²/s), IR drop (V) and resistances (Ω).

    ``resistance_ohm`` is the IR drop at switch-off / current; ``pulse_resistance_ohm``
    is (sqrt(t) fit intercept at t = 0 - voltage before) / current."""
    out = []
    for k in pulse_indices(rec, opt):
        row = _pulse(rec, int(k), length, opt)
        row["diffusion_length_route"] = length.route
        out.append(row)
    return out
