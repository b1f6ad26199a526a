"""End to end: GITT, ICI and float recipes acquired through a real driver from the
instrument simulator (its own protocol over a socket), analysed by ``analyze``: the
simulated film's D and the soft short's leakage come back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cyclerflow.analysis import analyze_cell

sim = pytest.importorskip(
    "cyclerflow.drivers.sim", reason="the simulators are part of this project"
)
from cyclerflow.acquire.recipe import loads_recipe  # noqa: E402
from cyclerflow.flows.demo_transport import (  # noqa: E402
    SHORT_OHM,
    acquire_experiments,
    acquire_linked,
    film_cell,
)

# film_cell(): D = 1e-11 cm2/s over a 1 um film (L^2 / D = 1000 s)
META = {
    "cell_id": "SIM-GITT",
    "nominal_capacity_uah": 15,
    "active_area_cm2": 0.25,
    "layers": [{"role": "cathode", "material": "LiCoO2", "thickness_um": 1.0}],
}

GITT = """
name: gitt
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 10 s
record: {every: 60 s}
steps:
  - rest: {duration: 10 min}
  - loop:
      repeat: 3
      steps:
        - cc_charge: {current: 7.5 uA, until: {capacity: 25 %}}
        - rest: {duration: 1 h}
        - gitt: {current: 2 uA, direction: charge, pulse: 40 s, rest: 1000 s, max_pulses: 2,
                 until: {voltage: 4.25 V}, record: {every: 1 s}}
"""

ICI = """
name: ici
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 0.5 s
record: {every: 5 s}
steps:
  - rest: {duration: 10 min}
  - cc_charge: {current: 5 uA, until: {capacity: 60 %}, ici: {every: 300 s, duration: 5 s}}
"""

FLOAT = """
name: float
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 10 s
record: {every: 60 s}
steps:
  - cccv: {current: 7.5 uA, voltage: 4.0 V, until: {current: 0.5 uA, time: 1 h}}
  - float: {voltage: 4.0 V, duration: 3 h}
  - rest: {duration: 4 h}
"""


def acquire(tmp_path: Path, text: str, cell, name: str) -> Path:
    """Run ``text`` on the Keithley 2450 simulator around ``cell`` (linked virtual clock)."""
    return acquire_linked(tmp_path / f"{name}.h5", text, cell, {**META, "cell_id": name})


def test_gitt_on_the_simulator_recovers_the_film_diffusion_coefficient(tmp_path):
    out = acquire(tmp_path, GITT, film_cell(), "gitt")
    block = analyze_cell(out, write_results=False)["transport"]
    assert block["diffusion_length_route"] == "film_thickness"
    rows = block["gitt"]
    assert len(rows) == 6
    valid = [r for r in rows if r["weppner_huggins_valid"]]
    assert len(valid) == 6  # 40-s pulses on a 1000-s film: tau << L^2/D everywhere
    d = np.array([r["diffusion_coefficient_cm2_per_s"] for r in valid])
    assert np.all(np.abs(d / 1e-11 - 1) < 0.10), d / 1e-11
    socs = [r["soc"] for r in valid]
    assert max(socs) - min(socs) > 0.4  # over the state-of-charge range


def test_ici_on_the_simulator_agrees_with_the_model(tmp_path):
    out = acquire(tmp_path, ICI, film_cell(), "ici")
    rows = analyze_cell(out, write_results=False)["transport"]["ici"]
    steady = [r for r in rows if r["quasi_steady"]]
    assert len(steady) >= 10
    d = np.array([r["diffusion_coefficient_cm2_per_s"] for r in steady])
    assert np.all(np.abs(d / 1e-11 - 1) < 0.20), d / 1e-11


@pytest.mark.parametrize("short_ohm", [4e6, None])
def test_float_recovers_the_soft_short_leakage(tmp_path, short_ohm):
    cell = sim.CellModel(sim.CellParams(initial_soc=0.3))
    if short_ohm is not None:
        cell.set_short(short_ohm, 0.0)
    out = acquire(tmp_path, FLOAT, cell, "short" if short_ohm else "good")
    block = analyze_cell(out, write_results=False)["transport"]
    floats = [e for e in block["self_discharge"] if e["method"] == "float"]
    assert len(floats) == 1
    leak = floats[0]["leakage_a"]
    if short_ohm is None:
        assert not block["soft_short"]["flagged"]
        assert abs(leak) < 0.05 * block["soft_short"]["leakage_bound_a"]
        return
    assert leak == pytest.approx(4.0 / short_ohm, rel=0.05)
    assert block["soft_short"]["flagged"]
    # the open-circuit rest after the float reads the same leakage from dV/dt
    (rest,) = [e for e in block["self_discharge"] if e["method"] == "ocv_rest"]
    assert rest["leakage_a"] == pytest.approx(4.0 / short_ohm, rel=0.05)
    assert rest["flagged"]


def test_float_and_ici_recipe_options_parse_and_refuse_bad_input():
    r = loads_recipe(FLOAT)
    hold = r.leaves()[1]
    assert (hold.kind, hold.voltage, hold.until.time) == ("float", 4.0, 3 * 3600.0)
    assert "cv" in r.needs()
    cc = loads_recipe(ICI, nominal_capacity_ah=15e-6).leaves()[1]
    assert (cc.ici.every, cc.ici.duration) == (300.0, 5.0)
    from cyclerflow.errors import InputError

    bad = ICI.replace("duration: 5 s}", "duration: 300 s}")
    with pytest.raises(InputError, match=r"steps\[1\]\.cc_charge\.ici: duration .* shorter"):
        loads_recipe(bad, source="r.yaml", nominal_capacity_ah=15e-6)
    with pytest.raises(InputError, match=r"steps\[1\]\.float\.duration: is required"):
        loads_recipe(FLOAT.replace(", duration: 3 h", ""), source="r.yaml")


def test_demo_experiments_recover_d_and_flag_the_short(tmp_path):
    gitt_file, short_file = acquire_experiments(tmp_path)
    rows = analyze_cell(gitt_file, write_results=False)["transport"]["gitt"]
    assert len(rows) == 3 and all(r["weppner_huggins_valid"] for r in rows)
    d = np.array([r["diffusion_coefficient_cm2_per_s"] for r in rows])
    assert np.all(np.abs(d / 1e-11 - 1) < 0.10), d / 1e-11
    block = analyze_cell(short_file, write_results=False)["transport"]
    assert block["soft_short"]["flagged"]
    (fl,) = [e for e in block["self_discharge"] if e["method"] == "float"]
    assert fl["leakage_a"] == pytest.approx(4.0 / SHORT_OHM, rel=0.05)
