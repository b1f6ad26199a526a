"""Synthetic cycling records with exact, independently known per-cycle answers.

Within every step the current and voltage are chosen so that the true integrals are
known in closed form and a trapezoid over any sampling of the step is exact:
CC steps have constant current and voltage linear in time (∫I dt = I T,
∫I V dt = I (V0 + V1) T / 2); CV holds have constant voltage and current decaying
linearly in time (∫I dt = (I0 + I1) T / 2, ∫I V dt = V ∫I dt). Rests have zero
current (plus optional noise). Sample times are jittered but every step keeps its
first and last sample at its exact start and end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr


@dataclass
class Truth:
    cycle: np.ndarray
    charge_ah: np.ndarray
    discharge_ah: np.ndarray
    charge_wh: np.ndarray
    discharge_wh: np.ndarray


class _Record:
    """Steps appended in time order: CC/CV half-cycles with exact integrals, rests."""

    def __init__(self, rng, jitter: float):
        self.rng, self.jitter = rng, jitter
        self.t, self.i, self.v, self.c, self.s = [], [], [], [], []
        self.t_now = 0.0
        self.step = 0

    def times(self, t0: float, dur: float, n: int) -> np.ndarray:
        tt = np.linspace(t0, t0 + dur, n)
        if self.jitter and n > 2:
            dt = dur / (n - 1)
            tt[1:-1] += self.rng.uniform(-self.jitter, self.jitter, n - 2) * dt
        return tt

    def add(self, tt, ii, vv, cyc) -> None:
        self.step += 1
        self.t.append(tt)
        self.i.append(ii)
        self.v.append(vv)
        self.c.append(np.full(len(tt), cyc))
        self.s.append(np.full(len(tt), self.step))

    def rest(self, cyc, v_level) -> None:
        self.t_now += 1.0
        tt = self.times(self.t_now, 600.0, 30)
        self.add(tt, np.zeros(len(tt)), np.full(len(tt), v_level), cyc)
        self.t_now = tt[-1] + 1.0

    def half(self, h, q, frac, current_a, cccv, points, k) -> tuple[float, float, float]:
        """One half-cycle of charge ``q`` (Ah) stopped after ``frac``: (Ah, Wh, end V)."""
        sgn = 1.0 if h == "charge" else -1.0
        v0, v1 = (3.6, 4.2) if h == "charge" else (4.1, 3.0)
        q_cv = 0.2 * q if (cccv and h == "charge" and frac == 1.0) else 0.0
        q_cc = q * frac - q_cv
        dur = q_cc * 3600.0 / current_a
        v_end = v0 + (v1 - v0) * (q_cc / (q - q_cv))
        tt = self.times(self.t_now, dur, points)
        self.add(tt, np.full(points, sgn * current_a), v0 + (v_end - v0) * (tt - tt[0]) / dur, k)
        self.t_now = tt[-1]
        q_tot, e_tot = q_cc, current_a * (v0 + v_end) / 2 * dur / 3600.0
        if q_cv > 0:
            i0, i1 = current_a, current_a / 20
            dur_cv = q_cv * 3600.0 / ((i0 + i1) / 2)
            tt = self.times(self.t_now, dur_cv, points // 2)
            tt[0] = self.t_now  # CV starts where CC ended (same instant, new step)
            self.add(tt, i0 + (i1 - i0) * (tt - tt[0]) / dur_cv, np.full(len(tt), v1), k)
            q_tot += q_cv
            e_tot += v1 * q_cv
            self.t_now = tt[-1]
        return q_tot, e_tot, v_end


def make_cell(
    *,
    current_a: float = 7e-9,
    n_cycles: int = 5,
    capacity_ah: float | None = None,
    cccv: bool = True,
    start: str = "charge",
    fade_per_cycle: float = 0.0,
    ce: float = 0.999,
    points: int = 120,
    jitter: float = 0.0,
    noise_rel: float = 0.0,
    drop_fraction: float = 0.0,
    with_cycle_count: bool = True,
    with_steps: bool = False,
    cut_short: dict | None = None,
    seed: int = 0,
) -> tuple[xr.Dataset, Truth, dict]:
    """Record of ``n_cycles`` cycles (charge first or discharge first).

    Charge of cycle k = capacity x (1 - fade x (k-1)) (linear fade of the charge),
    discharge = charge x ce. With ``cccv`` 20 % of the charge is passed in a CV hold
    whose current falls linearly from I to I/20. ``cut_short={"cycle": k,
    "fraction": f}`` stops the out-half of cycle k after a fraction f of its charge.
    Returns (dataset, truth, info) where info holds the noise bound inputs.
    """
    rng = np.random.default_rng(seed)
    cap = capacity_ah if capacity_ah is not None else current_a * 2.0  # 2 h at the CC current
    rec = _Record(rng, jitter)
    truth = {k: [] for k in ("charge_ah", "discharge_ah", "charge_wh", "discharge_wh")}
    halves = ("charge", "discharge") if start == "charge" else ("discharge", "charge")
    for k in range(1, n_cycles + 1):
        q_chg = cap * (1 - fade_per_cycle * (k - 1))
        for h in halves:
            frac = 1.0
            if cut_short and cut_short["cycle"] == k and h == halves[1]:
                frac = cut_short["fraction"]
            q = q_chg if h == "charge" else q_chg * ce
            q_tot, e_tot, v_end = rec.half(h, q, frac, current_a, cccv, points, k)
            truth[f"{h}_ah"].append(q_tot)
            truth[f"{h}_wh"].append(e_tot)
            rec.rest(k, v_end - 0.05 * (1.0 if h == "charge" else -1.0))
    t_chunks, i_chunks, v_chunks = rec.t, rec.i, rec.v
    c_chunks, s_chunks = rec.c, rec.s
    t = np.concatenate(t_chunks)
    i = np.concatenate(i_chunks)
    v = np.concatenate(v_chunks)
    c = np.concatenate(c_chunks)
    s = np.concatenate(s_chunks)
    sigma = noise_rel * current_a
    if noise_rel:
        i = i + rng.normal(0.0, sigma, len(i))
    if drop_fraction:
        # drop interior samples of steps (never a step's first or last sample)
        first = np.r_[True, s[1:] != s[:-1]]
        last = np.r_[s[1:] != s[:-1], True]
        cand = np.flatnonzero(~first & ~last)
        drop = rng.choice(cand, int(drop_fraction * len(cand)), replace=False)
        i = i.copy()
        i[drop] = np.nan  # a dropped reading
    data = {
        "test_time_second": ("sample", t, {"units": "s"}),
        "voltage_volt": ("sample", v, {"units": "V"}),
        "current_ampere": ("sample", i, {"units": "A"}),
    }
    if with_cycle_count:
        data["cycle_count"] = ("sample", c.astype("i8"), {"units": "1"})
    if with_steps:
        data["step_count"] = ("sample", s.astype("i8"), {"units": "1"})
    ds = xr.Dataset(data, attrs={"source": "synthetic"})
    tr = Truth(
        cycle=np.arange(1, n_cycles + 1),
        charge_ah=np.asarray(truth["charge_ah"]),
        discharge_ah=np.asarray(truth["discharge_ah"]),
        charge_wh=np.asarray(truth["charge_wh"]),
        discharge_wh=np.asarray(truth["discharge_wh"]),
    )
    return ds, tr, {"sigma_a": sigma, "t": t, "step": s}
