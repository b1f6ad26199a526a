"""The simulators' film diffusion against Fick's law for a slab (closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cyclerflow.drivers.sim.cell_model import CellModel, CellParams, ocv_licoo2
from cyclerflow.drivers.sim.film_diffusion import FilmDiffusion

D = 1e-15  # m2/s (1e-11 cm2/s)
L = 1e-6  # m: L^2/D = 1000 s


@pytest.mark.parametrize("t", [2.0, 10.0, 40.0, 100.0])
def test_surface_follows_the_semi_infinite_solution_at_short_times(t):
    f = FilmDiffusion.build(D, L)
    rate = 1e-3  # 1/s
    rise = f.surface_deviation(f.step(f.zero(), rate, t), rate) + rate * t
    # constant flux into a half space: du_s = 2 s sqrt(tau t / pi) (images < 1e-9 here)
    assert rise == pytest.approx(2 * rate * math.sqrt(f.tau_s * t / math.pi), rel=5e-3)


def test_long_times_reach_the_parabolic_profile_and_relax():
    f = FilmDiffusion.build(D, L)
    rate = 1e-4
    modes = f.step(f.zero(), rate, 20 * f.tau_s)
    # steady flux: the surface leads the mean by s tau / 3
    assert f.surface_deviation(modes, rate) == pytest.approx(rate * f.tau_s / 3, rel=5e-3)
    # the slowest mode decays at pi^2 / tau
    assert f.rates[0] * f.tau_s == pytest.approx(math.pi**2, rel=1e-2)
    relaxed = f.step(modes, 0.0, 2 * f.tau_s)
    assert abs(f.surface_deviation(relaxed, 0.0)) < 1e-8 * rate * f.tau_s


def test_invalid_film_is_refused():
    with pytest.raises(ValueError, match="D > 0"):
        FilmDiffusion.build(0.0, L)


def test_cell_reads_its_ocv_at_the_film_surface():
    p = CellParams(diffusion_m2_per_s=D, cathode_thickness_m=L, initial_soc=0.4)
    m = CellModel(p)
    amp = 5e-6
    m.set_current(amp, 4.4)
    m.advance(40.0)
    s = amp * p.charge_efficiency / (p.capacity_ah * 3600)  # 1/s
    surface = 0.4 + s * 40 + (2 * s * math.sqrt(1000 * 40 / math.pi) - s * 40)
    expected = ocv_licoo2(surface) + amp * m.r_ohmic() + m.eta_ct
    # OCV curvature over the surface step is the only approximation here
    assert m.voltage_v == pytest.approx(expected, abs=2e-4)
    m.set_open_circuit()
    m.advance(3000.0)  # 3 tau: relaxed to the OCV of the mean
    assert m.voltage_v == pytest.approx(ocv_licoo2(m.soc), abs=1e-6)
    assert m.soc == pytest.approx(0.4 + s * 40, rel=1e-9)


def test_without_diffusion_the_lumped_relaxation_is_unchanged():
    a, b = CellModel(), CellModel(CellParams(diffusion_m2_per_s=0.0))
    for m in (a, b):
        m.set_current(10e-6, 4.4)
        m.advance(100.0)
    assert a.voltage_v == b.voltage_v and a.eta_d != 0.0
    assert np.isfinite(a.voltage_v)
