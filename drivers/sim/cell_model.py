"""Physical model of a thin-film cell, stepped in simulated time (SI units inside).

``V = OCV(soc) + I (R_lead + R_el(T) + R_int(n)) + eta_ct + eta_d`` with an Arrhenius
electrolyte, an interfacial resistance that grows with cycling, a Butler-Volmer
(asinh) charge-transfer overpotential, a slow diffusion relaxation, geometric capacity
fade, a charge efficiency and an optional soft short. With ``diffusion_m2_per_s`` > 0
the OCV is read at the surface of the cathode film, whose lithium diffuses through its
thickness (:mod:`film_diffusion`), instead of the lumped relaxation ``eta_d``.
See docs/simulators.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .film_diffusion import FilmDiffusion

K_B_EV = 8.617333262e-5  # eV/K
F_OVER_R = 96485.33212 / 8.314462618  # K/V
T25 = 298.15


@dataclass(frozen=True)
class CellParams:
    """Parameters of the cell (SI). Defaults: LiCoO2 | LiPON | Li, 0.25 cm², 15 µAh."""

    area_m2: float = 0.25e-4
    capacity_ah: float = 15e-6
    cathode_thickness_m: float = 1e-6
    electrolyte_thickness_m: float = 1e-6
    sigma25_s_per_m: float = 2.5e-4  # 2.5 µS/cm
    activation_energy_ev: float = 0.52
    eps_r: float = 15.0  # electrolyte relative permittivity (bulk arc capacitance)
    r_lead_ohm: float = 5.0
    r_int0_ohm_m2: float = 100e-4  # 100 Ohm cm² at cycle 0
    r_int_growth_per_cycle: float = 2e-3  # relative growth of R_int per equivalent cycle
    i0_a_per_m2: float = 1.0  # exchange current density (0.1 mA/cm²)
    c_dl_f_per_m2: float = 0.1  # 10 µF/cm²
    r_diff_ohm_m2: float = 100e-4  # slow relaxation branch, Ohm m²
    tau_diff_s: float = 30.0
    q_electrode_f_per_m2: float = 1.0  # CPE of the blocking/diffusion tail, per area
    n_electrode: float = 0.8
    n_cpe: float = 0.9
    fade_per_cycle: float = 5e-5
    charge_efficiency: float = 0.9995
    initial_soc: float = 0.02
    temperature_k: float = T25
    #: solid-state diffusion coefficient of the cathode film (m²/s); 0: the lumped
    #: relaxation branch (r_diff, tau_diff) instead
    diffusion_m2_per_s: float = 0.0
    voltage_noise_v: float = 0.0
    current_noise_rel: float = 0.0


@dataclass
class Segment:
    """One source command: mode ``cc``/``cv``/``ocv``; charge in Ah (signed)."""

    mode: str
    setpoint: float
    start_s: float
    end_s: float
    charge_ah: float = 0.0


@dataclass
class HalfCycle:
    """A maximal run of terminal current of one sign (rests inside do not end it)."""

    index: int
    sign: int
    start_s: float
    end_s: float
    charge_ah: float  # magnitude


def ocv_licoo2(soc: float | np.ndarray) -> float | np.ndarray:
    """LiCoO2-like open-circuit voltage (V) vs state of charge 0..1, steep at both ends."""
    if isinstance(soc, float):  # the model's hot path (one value per step): no numpy
        x = min(max(soc, 1e-9), 1 - 1e-9)
        return (
            3.88
            + 0.15 * (x - 0.5)
            + 0.08 * math.log(x / (1 - x))
            - 0.8 * math.exp(-x / 0.02)
            + 0.5 * math.exp(-(1 - x) / 0.02)
        )
    s = np.clip(soc, 1e-9, 1 - 1e-9)
    v = (
        3.88
        + 0.15 * (s - 0.5)
        + 0.08 * np.log(s / (1 - s))
        - 0.8 * np.exp(-s / 0.02)
        + 0.5 * np.exp(-(1 - s) / 0.02)
    )
    return float(v) if np.ndim(v) == 0 else v


@dataclass
class CellModel:
    """State and stepping of one cell. Time in simulated seconds, charge in Ah."""

    params: CellParams = field(default_factory=CellParams)
    seed: int = 0

    def __post_init__(self) -> None:
        p = self.params
        self.time_s = 0.0
        self.temperature_k = p.temperature_k
        self.q_ah = p.initial_soc * p.capacity_ah  # stored charge
        self.eta_ct = 0.0
        self.eta_d = 0.0
        self.discharge_throughput_ah = 0.0
        self.true_charge_ah = 0.0
        self.mode = "ocv"
        self.setpoint = 0.0
        self.limit = math.inf
        self.current_a = 0.0
        self._film = (
            FilmDiffusion.build(p.diffusion_m2_per_s, p.cathode_thickness_m)
            if p.diffusion_m2_per_s > 0
            else None
        )
        self._modes = self._film.zero() if self._film else None
        self.short_ohm = math.inf
        self.voltage_v = self._terminal(0.0, self.eta_ct, self.eta_d)
        self.short_ohm = math.inf
        self.short_from_s = 0.0
        self.segments: list[Segment] = [Segment("ocv", 0.0, 0.0, 0.0)]
        self._halves: list[HalfCycle] = []
        self._log_t: list[float] = [0.0]  # step boundaries (s) and charge through the
        self._log_q: list[float] = [0.0]  # terminals up to them (Ah): exact between steps
        self._log_v: list[float] = [self.voltage_v]  # terminal voltage at them (V)
        self._rng = np.random.default_rng(self.seed)

    # construction ---------------------------------------------------------------
    @classmethod
    def from_metadata(cls, meta, *, seed: int = 0, **overrides) -> CellModel:
        """Model of the cell described by a :class:`cyclerflow.schema.CellMetadata`."""
        p = CellParams()
        kw: dict = {}
        if meta.active_area_m2:
            kw["area_m2"] = meta.active_area_m2
        if meta.cathode_thickness_m:
            kw["cathode_thickness_m"] = meta.cathode_thickness_m
        if meta.electrolyte_thickness_m:
            kw["electrolyte_thickness_m"] = meta.electrolyte_thickness_m
        if meta.nominal_capacity_ah:
            kw["capacity_ah"] = meta.nominal_capacity_ah
        else:  # 62 µAh/(cm² µm)
            area_cm2 = kw.get("area_m2", p.area_m2) * 1e4
            um = kw.get("cathode_thickness_m", p.cathode_thickness_m) * 1e6
            kw["capacity_ah"] = 62e-6 * area_cm2 * um
        kw.update(overrides)
        return cls(replace(p, **kw), seed=seed)

    # derived quantities -----------------------------------------------------------
    @property
    def equivalent_cycles(self) -> float:
        return self.discharge_throughput_ah / self.params.capacity_ah

    @property
    def capacity_ah(self) -> float:
        """Present capacity after fade (Ah)."""
        return self.params.capacity_ah * (1 - self.params.fade_per_cycle) ** self.equivalent_cycles

    @property
    def soc(self) -> float:
        return self.q_ah / self.capacity_ah

    def sigma_s_per_m(self, temperature_k: float | None = None) -> float:
        """Electrolyte conductivity (S/m): sigma T = A exp(-Ea / kT)."""
        p = self.params
        t = self.temperature_k if temperature_k is None else temperature_k
        return (
            p.sigma25_s_per_m
            * (T25 / t)
            * math.exp(-p.activation_energy_ev / K_B_EV * (1 / t - 1 / T25))
        )

    def r_electrolyte_ohm(self) -> float:
        p = self.params
        return p.electrolyte_thickness_m / (self.sigma_s_per_m() * p.area_m2)

    def r_interface_ohm(self) -> float:
        p = self.params
        return p.r_int0_ohm_m2 / p.area_m2 * (1 + p.r_int_growth_per_cycle * self.equivalent_cycles)

    def r_ohmic(self) -> float:
        return self.params.r_lead_ohm + self.r_electrolyte_ohm() + self.r_interface_ohm()

    def _eta_ct_ss(self, i: float) -> float:
        p = self.params
        i0 = p.i0_a_per_m2 * p.area_m2
        return 2.0 * self.temperature_k / F_OVER_R * math.asinh(i / (2 * i0))

    def _tau_ct(self) -> float:
        p = self.params
        r_ct = self.temperature_k / F_OVER_R / (p.i0_a_per_m2 * p.area_m2)
        return r_ct * p.c_dl_f_per_m2 * p.area_m2

    def _r_diff_ohm(self) -> float:
        p = self.params
        return 0.0 if self._film else p.r_diff_ohm_m2 / p.area_m2

    def _stored_rate(self, i: float) -> float:
        """Rate of change of the stored state of charge (1/s) at terminal current ``i`` (A)."""
        i_in = i * (self.params.charge_efficiency if i > 0 else 1.0)
        if math.isfinite(self.short_ohm) and self.time_s >= self.short_from_s:
            i_in -= max(self.voltage_v, 0.0) / self.short_ohm
        return i_in / (self.capacity_ah * 3600.0)

    def surface_soc(self, modes: np.ndarray | None = None, rate: float = 0.0) -> float:
        """State of charge at the film's surface (the mean without film diffusion)."""
        if self._film is None:
            return self.soc
        m = self._modes if modes is None else modes
        return self.soc + self._film.surface_deviation(m, rate)

    def _terminal(self, i: float, eta_ct: float, eta_d: float, soc: float | None = None) -> float:
        s = self.surface_soc(rate=self._stored_rate(i)) if soc is None else soc
        return float(ocv_licoo2(s)) + i * self.r_ohmic() + eta_ct + eta_d

    # commands -----------------------------------------------------------------------
    def set_current(self, current_a: float, voltage_limit_v: float) -> None:
        """Constant current (A, > 0 charges) with a voltage compliance (V, magnitude)."""
        self._new_segment("cc", current_a, abs(voltage_limit_v))

    def set_voltage(self, voltage_v: float, current_limit_a: float) -> None:
        """Constant voltage (V) with a current compliance (A, magnitude)."""
        self._new_segment("cv", voltage_v, abs(current_limit_a))

    def set_open_circuit(self) -> None:
        self._new_segment("ocv", 0.0, math.inf)

    def set_short(self, resistance_ohm: float, from_s: float | None = None) -> None:
        """Soft short: leakage resistance across the cell (Ohm) from simulated time ``from_s``."""
        self.short_ohm = resistance_ohm
        self.short_from_s = self.time_s if from_s is None else from_s

    def _new_segment(self, mode: str, setpoint: float, limit: float) -> None:
        self.mode, self.setpoint, self.limit = mode, setpoint, limit
        self.segments[-1].end_s = self.time_s
        self.segments.append(Segment(mode, setpoint, self.time_s, self.time_s))
        self.current_a = self._solve_current(1e-9)
        self.voltage_v = self._terminal_after(self.current_a, 1e-9)

    # stepping -----------------------------------------------------------------------
    def _decays(self, dt: float) -> tuple[float, float]:
        return math.exp(-dt / self._tau_ct()), math.exp(-dt / self.params.tau_diff_s)

    def _terminal_after(self, i: float, dt: float) -> float:
        a_ct, a_d = self._decays(dt)
        eta_ct = self._eta_ct_ss(i) * (1 - a_ct) + self.eta_ct * a_ct
        eta_d = i * self._r_diff_ohm() * (1 - a_d) + self.eta_d * a_d
        soc = None
        if self._film is not None:
            rate = self._stored_rate(i)
            soc = self.surface_soc(self._film.step(self._modes, rate, dt), rate) + rate * dt
        return self._terminal(i, eta_ct, eta_d, soc)

    def _solve_voltage(self, v_target: float, dt: float, i_max: float) -> float:
        """Current (A) that gives terminal voltage ``v_target`` after ``dt``, clamped to ±i_max."""
        lo, hi = -i_max, i_max
        if self._terminal_after(hi, dt) <= v_target:
            return hi
        if self._terminal_after(lo, dt) >= v_target:
            return lo
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if self._terminal_after(mid, dt) < v_target:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-12 * max(i_max, 1e-15):
                break
        return 0.5 * (lo + hi)

    def _solve_current(self, dt: float) -> float:
        if self.mode == "ocv":
            return 0.0
        if self.mode == "cv":
            return self._solve_voltage(self.setpoint, dt, self.limit)
        i = self.setpoint
        v = self._terminal_after(i, dt)
        if i > 0 and v > self.limit:
            return self._solve_voltage(self.limit, dt, abs(i))
        if i < 0 and v < 0.0:
            # an exhausted cell: the source cannot drive it below 0 V (floor of the model)
            return self._solve_voltage(0.0, dt, abs(i))
        return i

    def advance_to(self, t_s: float) -> None:
        """Step the model to simulated time ``t_s`` (s)."""
        while self.time_s < t_s - 1e-12:
            dt = t_s - self.time_s
            i_scale = max(abs(self.current_a), abs(self.setpoint) if self.mode == "cc" else 0.0)
            if math.isfinite(self.short_ohm):
                i_scale = max(i_scale, abs(self.voltage_v) / self.short_ohm)
            if i_scale > 0:
                dt = min(dt, 0.002 * self.params.capacity_ah * 3600.0 / i_scale)
            if self.mode == "cv" or (self.mode == "cc" and self.current_a != self.setpoint):
                dt = min(dt, 10.0)
            self._step(dt)

    def advance(self, dt_s: float) -> None:
        self.advance_to(self.time_s + dt_s)

    def _step(self, dt: float) -> None:
        p = self.params
        i_old = self.current_a
        i_new = self._solve_current(dt)
        # charge through the terminals: exact for constant current, trapezoid otherwise
        dq = (0.5 * (i_old + i_new) if i_new != i_old else i_new) * dt / 3600.0
        self.true_charge_ah += dq
        self.segments[-1].charge_ah += dq
        self._log_half(dq, dt)
        stored = dq * (p.charge_efficiency if dq > 0 else 1.0)
        if dq < 0:
            self.discharge_throughput_ah += -dq
        if self.time_s + dt > self.short_from_s and math.isfinite(self.short_ohm):
            stored -= max(self.voltage_v, 0.0) / self.short_ohm * dt / 3600.0
        cap = self.capacity_ah
        self.q_ah = min(max(self.q_ah + stored, 0.0), cap)
        a_ct, a_d = self._decays(dt)
        self.eta_ct = self._eta_ct_ss(i_new) * (1 - a_ct) + self.eta_ct * a_ct
        self.eta_d = i_new * self._r_diff_ohm() * (1 - a_d) + self.eta_d * a_d
        if self._film is not None:
            self._modes = self._film.step(self._modes, stored / cap / dt, dt)
        self.current_a = i_new
        self.time_s += dt
        self._log_t.append(self.time_s)
        self._log_q.append(self.true_charge_ah)
        self.segments[-1].end_s = self.time_s
        self.voltage_v = self._terminal(i_new, self.eta_ct, self.eta_d)
        self._log_v.append(self.voltage_v)

    def _log_half(self, dq: float, dt: float) -> None:
        if dq == 0.0:  # rests neither end nor extend a half-cycle
            return
        sign = 1 if dq > 0 else -1
        if not self._halves or self._halves[-1].sign != sign:
            self._halves.append(
                HalfCycle(len(self._halves) + 1, sign, self.time_s, self.time_s, 0.0)
            )
        h = self._halves[-1]
        h.charge_ah += abs(dq)
        h.end_s = self.time_s + dt

    # readings -----------------------------------------------------------------------
    def measure(self) -> tuple[float, float]:
        """(voltage V, current A) with the configured noise."""
        p = self.params
        v, i = self.voltage_v, self.current_a
        if p.voltage_noise_v:
            v += float(self._rng.normal(0.0, p.voltage_noise_v))
        if p.current_noise_rel and i:
            i *= 1 + float(self._rng.normal(0.0, p.current_noise_rel))
        return v, i

    def charge_between(self, t0_s: float, t1_s: float) -> float:
        """Signed charge (Ah) through the terminals between simulated times t0 and t1.

        Exact for constant current (the current is constant within a model step, so the
        cumulative charge is linear between step boundaries); use it to compare a file
        integrated from its first to its last sample of a step with the truth."""
        t, q = np.asarray(self._log_t), np.asarray(self._log_q)
        return float(np.interp(t1_s, t, q) - np.interp(t0_s, t, q))

    def excursion(
        self, v_min: float, v_max: float, t0_s: float = 0.0, t1_s: float = math.inf
    ) -> tuple[float, float, float]:
        """(lowest V, highest V, charge Ah) of the terminal voltage between simulated times
        ``t0_s`` and ``t1_s``: its extremes at the model's steps, and the charge (magnitude)
        that passed in steps ending outside ``v_min`` .. ``v_max`` (how far past a limit
        a cell was driven, e.g. while no host watched it)."""
        t, q, v = (np.asarray(x) for x in (self._log_t, self._log_q, self._log_v))
        k = np.flatnonzero((t >= t0_s) & (t <= t1_s))
        if k.size == 0:
            return math.nan, math.nan, 0.0
        out = k[((v[k] < v_min) | (v[k] > v_max)) & (k > 0)]
        dq = np.abs(q[out] - q[out - 1])
        return float(v[k].min()), float(v[k].max()), float(dq.sum())

    def half_cycles(self) -> list[HalfCycle]:
        """Half-cycles so far (copies); see docs/simulators.md."""
        return [replace(h) for h in self._halves]

    def impedance(self, frequency_hertz: np.ndarray) -> np.ndarray:
        """Complex impedance (Ohm, Im < 0 capacitive) at the present state and temperature."""
        p = self.params
        w = 2 * np.pi * np.asarray(frequency_hertz, dtype="f8")
        c_geo = 8.8541878128e-12 * p.eps_r * p.area_m2 / p.electrolyte_thickness_m
        q_bulk = c_geo  # CPE with n close to 1: Q ~ C
        z_bulk = 1.0 / (1.0 / self.r_electrolyte_ohm() + q_bulk * (1j * w) ** p.n_cpe)
        r_ct = self.temperature_k / F_OVER_R / (p.i0_a_per_m2 * p.area_m2)
        r_if = self.r_interface_ohm() + r_ct
        z_if = 1.0 / (1.0 / r_if + p.c_dl_f_per_m2 * p.area_m2 * (1j * w) ** p.n_cpe)
        z_el = 1.0 / (p.q_electrode_f_per_m2 * p.area_m2 * (1j * w) ** p.n_electrode)
        return p.r_lead_ohm + z_bulk + z_if + z_el
