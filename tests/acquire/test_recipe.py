"""Recipe parsing: units, C-rates, signs, structure, and clear errors naming the step path."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclerflow.acquire.recipe import (
    Cccv,
    ConstantCurrent,
    CvHold,
    Eis,
    Gitt,
    Loop,
    Rest,
    SetTemperature,
    load_recipe,
    loads_recipe,
    parse_current,
)
from cyclerflow.errors import InputError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "recipes"

BASE = """
name: t
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA, temperature_max: 80 degC}
steps:
  - rest: {duration: 10 min, record: {every: 10 s}}
  - loop:
      repeat: 100
      steps:
        - cc_charge: {current: C/2, until: {voltage: 4.2 V}, record: {every: 1 s, dv: 5 mV}}
        - cv_hold: {voltage: 4.2 V, until: {current: 1.5 uA, time: 1 h}}
        - rest: {duration: 5 min}
        - cc_discharge: {current: 15 uA, until: {voltage: 3.0 V}}
        - eis: {every: 10, f_start: 1 MHz, f_stop: 0.1 Hz, points_per_decade: 10, amplitude: 10 mV}
"""


def test_design_example_parses_to_si():
    r = loads_recipe(BASE, source="r.yaml", nominal_capacity_ah=15e-6)
    rest, loop = r.steps
    assert isinstance(rest, Rest) and rest.duration == 600 and rest.record.every == 10
    assert isinstance(loop, Loop) and loop.repeat == 100
    cc, cv, rest2, dis, eis = loop.steps
    assert isinstance(cc, ConstantCurrent) and cc.current == pytest.approx(7.5e-6)
    assert cc.until.voltage == 4.2 and cc.record.dv == pytest.approx(5e-3)
    assert (
        isinstance(cv, CvHold)
        and cv.until.current == pytest.approx(1.5e-6)
        and cv.until.time == 3600
    )
    assert isinstance(dis, ConstantCurrent) and dis.current == pytest.approx(-15e-6)  # sign applied
    assert (
        isinstance(eis, Eis)
        and eis.f_start == 1e6
        and eis.f_stop == pytest.approx(0.1)
        and eis.every == 10
    )
    assert r.limits.temperature_max == pytest.approx(353.15)
    assert r.limits.current_max == pytest.approx(1e-4)
    assert [s.index for s in r.leaves()] == [1, 2, 3, 4, 5, 6]
    assert r.text == BASE  # kept verbatim for /protocol


@pytest.mark.parametrize(
    ("text", "amps"),
    [
        ("C/5", 3e-6),
        ("2C", 30e-6),
        ("0.5C", 7.5e-6),
        ("C", 15e-6),
        ("C / 10", 1.5e-6),
        ("7 nA", 7e-9),
        ("3 µA", 3e-6),
    ],
)
def test_currents_and_c_rates(text, amps):
    assert parse_current(text, 15e-6) == pytest.approx(amps)


def test_nanoamp_microcell():
    r = loads_recipe(
        BASE.replace("current_max: 100 uA", "current_max: 50 nA")
        .replace("current: C/2", "current: 7 nA")
        .replace("current: 15 uA", "current: 7 nA")
        .replace("current: 1.5 uA", "current: 0.7 nA"),
        source="r.yaml",
    )
    assert r.steps[1].steps[0].current == pytest.approx(7e-9)
    assert r.steps[1].steps[3].current == pytest.approx(-7e-9)


def test_recipe_nominal_capacity_key_enables_c_rates():
    r = loads_recipe(
        BASE.replace("name: t", "name: t\nnominal_capacity: 0.35 uAh"), source="r.yaml"
    )
    assert r.steps[1].steps[0].current == pytest.approx(0.175e-6)


def test_capacity_percent_and_gitt_cccv_fixtures():
    r = load_recipe(FIXTURES / "gitt.yaml", nominal_capacity_ah=15e-6)
    cccv, rest, gitt = r.steps
    assert (
        isinstance(cccv, Cccv)
        and cccv.current == pytest.approx(3e-6)
        and cccv.until.current == pytest.approx(3e-7)
    )
    assert (
        isinstance(gitt, Gitt)
        and gitt.current == pytest.approx(-0.75e-6)
        and gitt.pulse == 600
        and gitt.rest == 2400
    )
    r2 = loads_recipe(
        BASE.replace("until: {voltage: 4.2 V}, record", "until: {capacity: 50 %}, record"),
        nominal_capacity_ah=15e-6,
    )
    assert r2.steps[1].steps[0].until.capacity == pytest.approx(7.5e-6)


def test_temperature_series_fixture():
    r = load_recipe(FIXTURES / "temperature_series.yaml")
    loop = r.steps[1]
    assert isinstance(loop, Loop) and loop.label == "temperature_series" and not loop.counts_cycles
    assert (
        loop.repeat == 6
        and loop.setpoints[0] == pytest.approx(253.15)
        and loop.setpoints[-1] == pytest.approx(373.15)
    )
    assert isinstance(loop.steps[0], SetTemperature) and loop.steps[0].tolerance_k == pytest.approx(
        0.2
    )
    assert r.needs_temperature_controller()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "current: C/2",
            "current: 5 mV",
            "steps[1].loop.steps[0].cc_charge.current: '5 mV' is a voltage, expected a current",
        ),
        (
            "current: C/2",
            "current: -5 uA",
            "steps[1].loop.steps[0].cc_charge.current: must be a positive magnitude",
        ),
        (
            "current: 15 uA",
            "current: -15 uA",
            "steps[1].loop.steps[3].cc_discharge.current: must be a positive magnitude",
        ),
        (
            "current: C/2",
            "current: 2 mA",
            "steps[1].loop.steps[0].cc_charge.current: 0.002 A is above limits.current_max",
        ),
        ("current: C/2", "current: 10", "steps[1].loop.steps[0].cc_charge.current: 10 has no unit"),
        ("current: C/2", "current: C/0", "divides by zero"),
        (
            "{voltage: 3.0 V}",
            "{voltage: 2.0 V}",
            "steps[1].loop.steps[3].cc_discharge.until.voltage: 2 V is outside the limits",
        ),
        (
            "{voltage: 3.0 V}",
            "{}",
            "steps[1].loop.steps[3].cc_discharge: needs an 'until' condition",
        ),
        ("duration: 5 min", "duraton: 5 min", "steps[1].loop.steps[2].rest.duraton: unknown key"),
        (
            "repeat: 100",
            "repeat: 0",
            "steps[1].loop.repeat: Input should be greater than or equal to 1",
        ),
        ("repeat: 100", "repet: 100", "steps[1].loop.repet: unknown key"),
        (
            "- rest: {duration: 10 min, record: {every: 10 s}}",
            "- relax: {duration: 10 min}",
            "steps[0]: unknown step 'relax'",
        ),
        (
            "record: {every: 10 s}",
            "record: {every: 0 s}",
            "steps[0].rest.record: every must be > 0",
        ),
        (
            "points_per_decade: 10",
            "points_per_decade: many",
            "steps[1].loop.steps[4].eis.points_per_decade",
        ),
        (
            "f_stop: 0.1 Hz",
            "f_stop: 0.1 s",
            "steps[1].loop.steps[4].eis.f_stop: '0.1 s' is a time, expected a frequency",
        ),
        (
            "voltage_min: 2.9 V",
            "voltage_min: 4.4 V",
            "limits: voltage_min (4.4 V) must be below voltage_max",
        ),
        ("voltage_max: 4.3 V, ", "", "limits.voltage_max: is required"),
        (
            "temperature_max: 80 degC",
            "temperature_max: 80 degF",
            "limits.temperature_max: unknown unit 'degF'",
        ),
        (
            "until: {current: 1.5 uA, time: 1 h}",
            "until: {voltage: 4.1 V}",
            "steps[1].loop.steps[1].cv_hold: until.voltage makes no sense",
        ),
    ],
)
def test_bad_recipes_name_the_step_path(old, new, message):
    assert old in BASE
    with pytest.raises(InputError) as exc:
        loads_recipe(BASE.replace(old, new), source="r.yaml", nominal_capacity_ah=15e-6)
    text = str(exc.value)
    assert text.startswith("r.yaml: "), text
    assert message in text, text


def test_c_rate_without_capacity_is_a_clear_error():
    with pytest.raises(
        InputError,
        match=r"steps\[1\]\.loop\.steps\[0\]\.cc_charge\.current: C-rate 'C/2' needs the nominal capacity",
    ):
        loads_recipe(BASE, source="r.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "recipe is empty"),
        ("- a\n- b", "a recipe is a mapping"),
        ("name: t\nsteps: [{rest: {duration: 1 s}}]", "limits: is required"),
        (
            "name: t\nlimits: {voltage_max: 4 V, voltage_min: 3 V, current_max: 1 uA}",
            "steps: is required",
        ),
        (
            "name: t\nlimits: {voltage_max: 4 V, voltage_min: 3 V, current_max: 1 uA}\nsteps: []",
            "steps: expected a non-empty list",
        ),
        (
            "name: t\nlimits: {voltage_max: 4 V, voltage_min: 3 V, current_max: 1 uA}\nsteps: [{rest: {}}]",
            "steps[0].rest: needs 'duration'",
        ),
        (
            "name: t\nlimits: {voltage_max: 4 V, voltage_min: 3 V, current_max: 1 uA}\nsteps: [{rest: {duration: 1 s}, ocv: {duration: 1 s}}]",
            "steps[0]: a step is a mapping with exactly one key",
        ),
        (
            "name: t\nlimits: {voltage_max: 4 V, voltage_min: 3 V, current_max: 1 uA}\nsteps: [{loop: {steps: [{rest: {duration: 1 s}}]}}]",
            "steps[0].loop: needs 'repeat'",
        ),
        (
            "name: t\nlimits: {voltage_max: 4 V, voltage_min: 3 V, current_max: 1 uA}\nsteps: [{temperature_series: {setpoints: [], steps: []}}]",
            "steps[0].temperature_series.setpoints",
        ),
        (
            "name: t\nlimits: {voltage_max: 4 V, voltage_min: 3 V, current_max: 1 uA}\nsteps: [{gitt: {current: 1 uA, pulse: 1 s, rest: 1 s}}]",
            "steps[0].gitt: needs until.voltage",
        ),
        (
            "name: t\nlimits: {voltage_max: 4 V, voltage_min: 3 V, current_max: 1 uA}\nsteps: [{rest: {duration: 1 s}}]\nspeed: 3",
            "speed: unknown key",
        ),
        ("name: [unclosed", "cannot parse YAML"),
    ],
)
def test_bad_recipe_structure(text, message):
    with pytest.raises(InputError) as exc:
        loads_recipe(text, source="bad.yaml")
    assert message in str(exc.value) and str(exc.value).startswith("bad.yaml")


def test_temperature_setpoint_above_limit():
    text = (
        (FIXTURES / "temperature_series.yaml")
        .read_text()
        .replace("temperature_max: 130 degC", "temperature_max: 90 degC")
    )
    with pytest.raises(
        InputError,
        match=r"temperature_series\.setpoints\[5\]: 100 degC is above limits.temperature_max",
    ):
        loads_recipe(text, source="ts.yaml")


def test_missing_recipe_file(tmp_path):
    with pytest.raises(InputError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_every_fixture_recipe_is_valid():
    for path in FIXTURES.glob("*.yaml"):
        if path.name.startswith(("station", "cell")):
            continue
        r = load_recipe(path, nominal_capacity_ah=15e-6)
        assert r.leaves(), path
