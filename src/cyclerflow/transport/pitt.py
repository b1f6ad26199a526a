"""PITT: diffusion coefficient from the current decay after a potential step.

A potential step is a constant-voltage step that follows a rest or another
constant-voltage step (a CV hold after a CC charge is not a PITT step). For a film of
diffusion length L blocked at its back, the long-time current after a small step is

    I(t) ~ exp(-pi^2 D t / (4 L^2))

so the slope s of ln|I| vs t over the tail gives D = -4 L^2 s / pi^2. The tail: samples
with |I| above 10 x the record's current noise, first the later half of them in time,
then (once D is known) those after ``long_time`` x 4 L^2 / (pi^2 D), where the higher
terms of the series have died out. Samples after the step whose |I| fell below the
rest threshold while the voltage stays held are part of the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cyclerflow.transport.fitting import finite, fit_line
from cyclerflow.transport.geometry import DiffusionLength
from cyclerflow.transport.steps import CV, REST, Record, held_end

METHOD = "PITT long-time: ln|I| vs t straight line over the tail, D = -4 L^2 slope / pi^2"


@dataclass(frozen=True)
class PittOptions:
    """long_time: the fit starts at long_time x the slowest time constant 4 L^2/(pi^2 D)."""

    long_time: float = 0.5
    min_samples: int = 5
    held_voltage: float = 2e-3


def step_indices(rec: Record) -> np.ndarray:
    """Indices of constant-voltage steps that follow a rest or another CV step."""
    st = rec.steps
    k = np.arange(1, len(st))
    ok = (st.kind[k] == CV) & np.isin(st.kind[k - 1], (REST, CV))
    return k[ok]


def _fit_tail(t, amp, floor, l_cm, opt: PittOptions):
    usable = np.flatnonzero(amp > floor)
    if len(usable) < opt.min_samples:
        return None, None
    tail = usable[t[usable] >= t[usable[0]] + 0.5 * (t[usable[-1]] - t[usable[0]])]
    line = fit_line(t[tail], np.log(amp[tail]))
    if line is None or line.slope >= 0 or not l_cm:
        return line, None
    d = -4.0 * l_cm**2 * line.slope / math.pi**2
    late = usable[t[usable] >= opt.long_time * 4.0 * l_cm**2 / (math.pi**2 * d)]
    if len(late) >= opt.min_samples:
        refit = fit_line(t[late], np.log(amp[late]))
        if refit is not None and refit.slope < 0:
            line, d = refit, -4.0 * l_cm**2 * refit.slope / math.pi**2
    return line, d


def _step(rec: Record, k: int, length: DiffusionLength, opt: PittOptions) -> dict:
    st, t, v, i = rec.steps, rec.t, rec.v, rec.i
    a = int(st.start[k])
    b = held_end(rec, k, opt.held_voltage)
    amp = np.abs(i[a:b])
    line, d = _fit_tail(t[a:b] - t[a - 1], amp, 10.0 * rec.noise, length.length_cm, opt)
    return {
        "step": int(k),
        "start_time_s": float(t[a - 1]),
        "duration_s": float(t[b - 1] - t[a - 1]),
        "voltage_v": float(np.median(v[a:b])),
        "step_v": float(np.median(v[a:b]) - v[a - 1]),
        "charge_ah": (rec.q_at(b - 1) - rec.q_at(a - 1)) / 3600.0,
        "direction": "charge" if i[a] > 0 else "discharge",
        "soc": finite(rec.soc(b - 1)),
        "tail_points": 0 if line is None else line.n,
        "log_fit_r2": None if line is None else finite(line.r2),
        "diffusion_coefficient_cm2_per_s": finite(d),
        "diffusion_length_route": length.route,
    }


def pitt(rec: Record, length: DiffusionLength, opt: PittOptions = PittOptions()) -> list[dict]:
    """One entry per potential step: D (cm²/s), step height (V), charge (Ah), SOC."""
    return [_step(rec, int(k), length, opt) for k in step_indices(rec)]
