"""Loss of lithium inventory and of active material from half-cell reference curves.

Each analysed discharge (constant-current samples of a complete cycle, charge q in Ah
from the start of the discharge) is fitted by the half-cell curves aligned to it::

    V(q) = U_pos(x_top + q / C_pos) - U_neg(y_top - q / C_neg) - eta

with x_top, y_top the lithiation of the positive / negative at the top of charge,
C_pos, C_neg the electrodes' capacities (Ah) and eta a constant overpotential (V) of
the discharge current. The cyclable lithium is Li = x_top C_pos + y_top C_neg (Ah).
Relative to the first fitted cycle::

    LLI = 1 - Li / Li_1,   LAM_pos = 1 - C_pos / C_pos_1,   LAM_neg = 1 - C_neg / C_neg_1

The fit: ``scipy.optimize.least_squares`` (bounded: lithiations 0..1, capacities at
least the discharge passed) on the discharge resampled to ``points`` evenly spaced
charges; the first cycle from a grid of starting points, each later one from the
previous cycle's result. A slow (reference) cycle is what this reads best: eta absorbs
a constant overpotential, not one that changes along the discharge.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from cyclerflow.cycling.halfcells import HalfCells

METHOD = (
    "discharge V(q) = U_pos(x_top + q/C_pos) - U_neg(y_top - q/C_neg) - eta, least squares; "
    "LLI = 1 - Li/Li_1 with Li = x_top C_pos + y_top C_neg; LAM = 1 - C/C_1 per electrode"
)


@dataclass(frozen=True)
class Alignment:
    """Half cells aligned to one discharge: lithiations at the top of charge, electrode
    capacities (Ah), overpotential (V) and the fit's RMS residual (V)."""

    x_top: float
    cap_pos_ah: float
    y_top: float
    cap_neg_ah: float
    eta_v: float
    rms_v: float

    @property
    def lithium_ah(self) -> float:
        """Cyclable lithium in both electrodes (Ah)."""
        return self.x_top * self.cap_pos_ah + self.y_top * self.cap_neg_ah


@dataclass(frozen=True)
class DegradationOptions:
    """points: resampled discharge points; max_cycles: at most this many cycles, evenly spaced."""

    points: int = 150
    max_cycles: int = 50
    min_samples: int = 20


def full_cell_voltage(q_ah: np.ndarray, a: Alignment, hc: HalfCells) -> np.ndarray:
    """Voltage (V) of the aligned half cells after discharging ``q_ah`` from the top."""
    return (
        hc.positive(a.x_top + q_ah / a.cap_pos_ah)
        - hc.negative(a.y_top - q_ah / a.cap_neg_ah)
        - a.eta_v
    )


def _alignment(p: np.ndarray, q_max: float, rms: float) -> Alignment:
    return Alignment(p[0], p[1] * q_max, p[2], p[3] * q_max, p[4], rms)


def _solve(q: np.ndarray, v: np.ndarray, hc: HalfCells, start: np.ndarray):
    q_max = float(q[-1])
    u = q / q_max

    def resid(p: np.ndarray) -> np.ndarray:
        return hc.positive(p[0] + u / p[1]) - hc.negative(p[2] - u / p[3]) - p[4] - v

    lo = [0.0, 1.0, 0.0, 1.0, -0.5]
    hi = [1.0, 20.0, 1.0, 20.0, 0.5]
    start = np.clip(start, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
    return least_squares(resid, start, bounds=(lo, hi), x_scale="jac")


def fit_alignment(
    q_ah: np.ndarray, v: np.ndarray, hc: HalfCells, previous: Alignment | None = None
) -> Alignment:
    """Best alignment of the half cells to one discharge (q from 0, Ah; V)."""
    q_max = float(q_ah[-1])
    if previous is not None:
        starts = [
            np.array(
                [
                    previous.x_top,
                    previous.cap_pos_ah / q_max,
                    previous.y_top,
                    previous.cap_neg_ah / q_max,
                    previous.eta_v,
                ]
            )
        ]
    else:
        starts = [
            np.array([1.0 - 1.0 / cp - m, cp, 1.0 / cn + m, cn, 0.0])
            for cp, cn, m in product((1.05, 1.3, 2.0), (1.05, 1.3, 2.0), (0.01, 0.1))
        ]
    best = min((_solve(q_ah, v, hc, s) for s in starts), key=lambda r: r.cost)
    rms = float(np.sqrt(np.mean(best.fun**2)))
    return _alignment(best.x, q_max, rms)


def resample(q: np.ndarray, v: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """(q, V) at ``points`` evenly spaced charges over the discharge (q sorted)."""
    order = np.argsort(q, kind="stable")
    qs, vs = q[order], v[order]
    grid = np.linspace(qs[0], qs[-1], points)
    return grid - qs[0], np.interp(grid, qs, vs)


def modes_table(fits: list[tuple[int, Alignment]]) -> list[dict[str, Any]]:
    """Per cycle: LLI and LAM (fractions, relative to the first fit) and the fit itself."""
    if not fits:
        return []
    ref = fits[0][1]
    return [
        {
            "cycle": cycle,
            "lli_fraction": 1.0 - a.lithium_ah / ref.lithium_ah,
            "lam_positive_fraction": 1.0 - a.cap_pos_ah / ref.cap_pos_ah,
            "lam_negative_fraction": 1.0 - a.cap_neg_ah / ref.cap_neg_ah,
            "lithium_ah": a.lithium_ah,
            "capacity_positive_ah": a.cap_pos_ah,
            "capacity_negative_ah": a.cap_neg_ah,
            "x_top": a.x_top,
            "y_top": a.y_top,
            "overpotential_v": a.eta_v,
            "fit_rms_v": a.rms_v,
        }
        for cycle, a in fits
    ]


def fit_cycles(
    curves: list[tuple[int, np.ndarray, np.ndarray]],
    hc: HalfCells,
    opt: DegradationOptions = DegradationOptions(),
) -> dict[str, Any]:
    """The ``degradation_modes`` object from discharge curves [(cycle, q Ah, V)]."""
    fits: list[tuple[int, Alignment]] = []
    previous = None
    for cycle, q, v in curves:
        if len(q) < opt.min_samples or np.ptp(q) <= 0:
            continue
        qs, vs = resample(q, v, opt.points)
        previous = fit_alignment(qs, vs, hc, previous)
        fits.append((cycle, previous))
    return {
        "half_cells": hc.source,
        "reference_cycle": fits[0][0] if fits else None,
        "method": METHOD,
        "cycles": modes_table(fits),
    }


def discharge_curves(
    rec: Any, cycles: np.ndarray, starts_s: np.ndarray, complete: np.ndarray, max_cycles: int
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """[(cycle, q Ah, V)] of the constant-current discharge of complete cycles (at most
    ``max_cycles``, evenly spaced, first and last included)."""
    from cyclerflow.cycling.dqdv_modes import cc_curve, cycle_steps

    by_pos = cycle_steps(rec, starts_s, -1)
    usable = [p for p in np.flatnonzero(complete).tolist() if p in by_pos]
    if len(usable) > max_cycles:
        usable = [usable[j] for j in np.linspace(0, len(usable) - 1, max_cycles).astype(int)]
    out = []
    for p in usable:
        v, q = cc_curve(rec, by_pos[p])
        out.append((int(cycles[p]), q, v))
    return out


def degradation_modes(
    rec: Any,
    cycles: np.ndarray,
    starts_s: np.ndarray,
    complete: np.ndarray,
    hc: HalfCells,
    opt: DegradationOptions = DegradationOptions(),
) -> dict[str, Any]:
    """The ``degradation_modes`` object of a record (``rec``: transport steps record)."""
    curves = discharge_curves(rec, cycles, starts_s, complete, opt.max_cycles)
    return fit_cycles(curves, hc, opt)
