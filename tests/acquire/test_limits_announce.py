"""`acquire` says at start, per channel, which limits the instrument holds by itself and
which only the host checks: for every installed source driver and every cycler."""

from __future__ import annotations

import pytest

from cyclerflow.acquire.guards import describe_cycler_limits, describe_limits
from cyclerflow.acquire.instrument import driver_names, load_driver
from cyclerflow.acquire.recipe import loads_recipe

RECIPE = """
name: lim
limits: {voltage_max: 4.2 V, voltage_min: 3 V, current_max: 50 uA, temperature_max: 60 degC}
steps:
  - rest: {duration: 1 min}
  - cc_charge: {current: 10 uA, until: {voltage: 4.1 V}}
  - cv_hold: {voltage: 4.1 V, until: {time: 10 min}}
  - cc_discharge: {current: 10 uA, until: {voltage: 3.2 V}}
"""
WINDOW = "voltage 3..4.2 V, |current| <= 5e-05 A"
RESOURCES = {"palmsens": "socket://127.0.0.1:9"}
SOURCES = {"keithley2450", "b2900", "palmsens"}
CYCLERS = {"neware-bts": True, "maccor-macnet": False, "arbin-cti": False}


def _recipe():
    return loads_recipe(RECIPE, source="lim.yaml", nominal_capacity_ah=15e-6)


def _installed(names: set[str]) -> list[str]:
    have = set(driver_names())
    return sorted(n for n in names if n in have)


@pytest.mark.parametrize("name", _installed(SOURCES))
def test_source_drivers_hold_every_step_of_the_recipe(name):
    module = load_driver(name)
    ch = module.open_channel(RESOURCES.get(name, "TCPIP0::127.0.0.1::9::SOCKET"))
    text = describe_limits(ch, _recipe())
    assert text == (
        f"limits held by the instrument: cc, cv, ocv steps ({WINDOW}); host-only: temperature"
    )


@pytest.mark.parametrize("name", _installed(set(CYCLERS)))
def test_cyclers_hold_the_schedule_and_say_where_the_window_is_held(name):
    module = load_driver(name)
    assert module.RUNS_OWN_SCHEDULE
    text = describe_cycler_limits(module, _recipe())
    assert text.startswith("limits held by the instrument: every step's end conditions")
    if CYCLERS[name]:  # written into the schedule from the recipe
        assert f"the safety window ({WINDOW}, written into the schedule)" in text
        assert text.endswith("host-only: temperature")
    else:  # the stored procedure's own limits: the host sees breaches only afterwards
        assert text.endswith(
            f"host-only: the safety window ({WINDOW}: checked on downloaded records only), "
            "temperature"
        )


def test_every_installed_driver_is_covered():
    """A new source driver or cycler gets a line too (add it to the lists above)."""
    for name in driver_names():
        module = load_driver(name)
        if getattr(module, "RUNS_OWN_SCHEDULE", False):
            assert name in CYCLERS, name
        elif hasattr(module, "open_channel") and name != "lakeshore335":
            assert name in SOURCES, name
