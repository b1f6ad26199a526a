"""Recipe -> Neware step file: values and units, checked by reading the file back."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from cyclerflow.acquire.recipe import loads_recipe
from cyclerflow.acquire.schedule_neware import check_recipe, to_step_file
from cyclerflow.drivers.sim.neware_bts import parse_step_file
from cyclerflow.errors import InputError

TEXT = """
name: mapping
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
record: {every: 30 s}
steps:
  - rest: {duration: 10 min, record: {every: 5 s}}
  - loop:
      repeat: 7
      steps:
        - cccv: {current: C/2, voltage: 4.2 V, until: {current: 1.5 uA, time: 2 h}}
        - cc_discharge: {current: 15 uA, until: {voltage: 3.0 V, capacity: 50 %}}
        - cv_hold: {voltage: 3.0 V, until: {current: 1 uA}}
  - cc_charge: {current: 2C, until: {time: 10 min}}
"""


def _recipe(text=TEXT):
    return loads_recipe(text, source="r.yaml", nominal_capacity_ah=15e-6)


def test_values_units_and_layout():
    sched = to_step_file(_recipe())
    root = ET.fromstring(sched.xml.encode())
    cfg = root.find("config")
    assert cfg.get("type") == "Step File" and cfg.get("version") == "17"
    assert cfg.find("Head_Info/MultCap").get("Value") == "54"  # 15 uAh = 0.015 mAh = 54 mA s
    assert cfg.find("Whole_Prt/Protect/Main/Volt/Upper").get("Value") == "43000"
    assert cfg.find("Whole_Prt/Protect/Main/Curr/Upper").get("Value") == "0.1"
    assert cfg.find("Whole_Prt/Record/Main/Time").get("Value") == "5000"  # shortest record
    types = [int(el.get("Step_Type")) for el in cfg.find("Step_Info")]
    assert types == [4, 3, 2, 19, 5, 1, 6]
    assert cfg.find("Step_Info").get("Num") == "7"
    s = parse_step_file(sched.xml)
    rest, cccv, dc, cv, loop, cc, end = s.steps
    assert rest.kind == "rest" and rest.time_s == pytest.approx(600)
    assert cccv.current_a == pytest.approx(7.5e-6) and cccv.voltage_v == pytest.approx(4.2)
    assert cccv.stop_current_a == pytest.approx(1.5e-6) and cccv.time_s == pytest.approx(7200)
    assert dc.current_a == pytest.approx(-15e-6) and dc.stop_voltage_v == pytest.approx(3.0)
    assert dc.capacity_ah == pytest.approx(7.5e-6)
    assert cv.kind == "cccv" and cv.current_a == pytest.approx(-100e-6)  # after a discharge
    assert (loop.loop_start, loop.loop_count) == (2, 7)
    assert cc.current_a == pytest.approx(30e-6) and cc.time_s == pytest.approx(600)
    assert end.kind == "end" and s.record_s == pytest.approx(5)
    assert sched.leaf_of_step == {1: 1, 2: 2, 3: 3, 4: 4, 6: 5}
    assert sched.kind_of_step[3] == "cc_discharge"


@pytest.mark.parametrize(
    ("step", "where", "why"),
    [
        ("- eis: {f_start: 1 MHz, f_stop: 1 Hz}", r"steps\[1\]\.eis", "no 'eis' step"),
        (
            "- gitt: {current: 5 uA, pulse: 10 min, rest: 1 h, until: {voltage: 3.0 V}}",
            r"steps\[1\]\.gitt",
            "no 'gitt' step",
        ),
        ("- rest: {until: {voltage: 3.5 V}}", r"steps\[1\]\.rest", "ends on time only"),
        (
            "- loop: {until: {retention: 80 %}, steps: [{rest: {duration: 1 min}}]}",
            r"steps\[1\]\.loop",
            "fixed number",
        ),
    ],
)
def test_untranslatable_steps_are_named(step, where, why):
    text = (
        "name: x\nlimits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}\n"
        f"steps:\n  - rest: {{duration: 1 min}}\n  {step}\n"
    )
    with pytest.raises(InputError, match=where) as err:
        check_recipe(_recipe(text))
    assert why in str(err.value) and "r.yaml" in str(err.value)
