"""The simulators' cell model against closed-form answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cyclerflow.drivers.sim.cell_model import K_B_EV, CellModel, CellParams, ocv_licoo2
from cyclerflow.schema import parse_metadata


def test_defaults_are_the_design_cell():
    m = CellModel()
    p = m.params
    assert p.area_m2 == pytest.approx(0.25e-4) and p.capacity_ah == pytest.approx(15e-6)
    # 1 µm LiPON at 2.5 µS/cm over 0.25 cm²: L / (sigma A) = 1e-4 cm / (2.5e-6 S/cm * 0.25 cm²) = 160 Ohm
    assert m.r_electrolyte_ohm() == pytest.approx(160.0)


def test_ocv_is_monotonic_with_steep_ends():
    soc = np.linspace(0.001, 0.999, 999)
    v = ocv_licoo2(soc)
    assert np.all(np.diff(v) > 0)
    assert v[0] < 3.0 and v[-1] > 4.2


def test_constant_current_charge_is_exact():
    m = CellModel(CellParams(initial_soc=0.1))
    m.set_current(7.5e-6, 4.4)
    m.advance(1234.5)
    assert m.true_charge_ah == pytest.approx(7.5e-6 * 1234.5 / 3600, rel=1e-12)
    (h,) = m.half_cycles()
    assert (h.sign, h.start_s, h.end_s) == (1, 0.0, pytest.approx(1234.5))
    assert h.charge_ah == pytest.approx(7.5e-6 * 1234.5 / 3600, rel=1e-12)
    assert m.segments[-1].mode == "cc"


def test_half_cycles_ignore_rests_and_split_on_sign():
    m = CellModel(CellParams(initial_soc=0.5))
    m.set_current(1e-6, 4.4)
    m.advance(100)
    m.set_open_circuit()
    m.advance(50)
    m.set_current(2e-6, 4.4)
    m.advance(100)
    m.set_current(-3e-6, 4.4)
    m.advance(60)
    hs = m.half_cycles()
    assert [h.sign for h in hs] == [1, -1]
    assert hs[0].charge_ah == pytest.approx((1e-6 * 100 + 2e-6 * 100) / 3600, rel=1e-12)
    assert hs[1].charge_ah == pytest.approx(3e-6 * 60 / 3600, rel=1e-12)
    assert m.true_charge_ah == pytest.approx((100e-6 + 200e-6 - 180e-6) / 3600, rel=1e-12)


def test_compliance_holds_the_voltage_limit_and_current_decays():
    m = CellModel()
    m.set_current(15e-6, 4.2)
    for _ in range(600):
        m.advance(10.0)
    assert m.voltage_v == pytest.approx(4.2, abs=2e-3)
    assert 0 < m.current_a < 15e-6 * 0.2
    # a full charge stores about the capacity (minus the initial 2 %)
    assert 0.85 * 15e-6 < m.true_charge_ah < 15e-6


def test_constant_voltage_limits_current():
    m = CellModel(CellParams(initial_soc=0.5))
    m.set_voltage(4.3, 1e-6)
    m.advance(1.0)
    assert m.current_a == pytest.approx(1e-6)


def test_arrhenius_electrolyte():
    m = CellModel()
    r25 = m.r_electrolyte_ohm()
    m.temperature_k = 353.15
    r80 = m.r_electrolyte_ohm()
    ea = m.params.activation_energy_ev
    expected = (298.15 / 353.15) * math.exp(
        -ea / K_B_EV * (1 / 353.15 - 1 / 298.15)
    )  # sigma ratio / (T ratio)
    # sigma T = A exp(-Ea/kT): sigma80/sigma25 = (298.15/353.15) exp(-Ea/k (1/353.15 - 1/298.15))
    assert r25 / r80 == pytest.approx(expected, rel=1e-12)


def test_fade_and_interfacial_growth_with_cycling():
    m = CellModel(CellParams(fade_per_cycle=1e-3, initial_soc=0.5))
    r0, c0 = m.r_interface_ohm(), m.capacity_ah
    m.discharge_throughput_ah = 10 * m.params.capacity_ah  # ten equivalent cycles
    assert m.capacity_ah == pytest.approx(c0 * (1 - 1e-3) ** 10)
    assert m.r_interface_ohm() == pytest.approx(r0 * (1 + 10 * m.params.r_int_growth_per_cycle))


def test_soft_short_discharges_at_rest():
    a, b = CellModel(CellParams(initial_soc=0.8)), CellModel(CellParams(initial_soc=0.8))
    b.set_short(1e8)
    for m in (a, b):
        m.set_open_circuit()
        m.advance(3600)
    lost = (a.q_ah - b.q_ah) * 3600  # coulombs
    assert lost == pytest.approx(a.voltage_v / 1e8 * 3600, rel=0.02)
    assert b.true_charge_ah == 0.0  # nothing flowed through the terminals


def test_impedance_limits():
    m = CellModel()
    z = m.impedance(np.array([1e9, 1e5, 1e-3]))
    assert z[0].real == pytest.approx(m.params.r_lead_ohm, rel=0.05)
    assert np.all(z.imag < 0)
    assert z[2].real > m.params.r_lead_ohm + m.r_electrolyte_ohm()


def test_from_metadata(lipon_metadata):
    meta = parse_metadata(lipon_metadata)
    m = CellModel.from_metadata(meta)
    assert m.params.area_m2 == pytest.approx(0.0035e-4)
    assert m.params.capacity_ah == pytest.approx(0.35e-6)
    del lipon_metadata["nominal_capacity_uah"]
    m = CellModel.from_metadata(parse_metadata(lipon_metadata))
    assert m.params.capacity_ah == pytest.approx(62e-6 * 0.0035 * 1.0)
