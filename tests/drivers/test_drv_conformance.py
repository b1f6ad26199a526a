"""Conformance of every registered driver (entry points ``cyclerflow.drivers``).

Each driver: accepts a transport, returns a channel that satisfies the protocol(s) it
claims, declares units for every numeric command, and has a byte-level test module whose
coverage (recorded per module by ``conftest.byte_coverage``) spans its command table.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from cyclerflow.acquire.instrument import (
    GuardedSource,
    ReportsClock,
    SourceMeterChannel,
    TemperatureController,
    driver_names,
    load_driver,
)
from cyclerflow.drivers.commands import CommandSet
from cyclerflow.drivers.transports import ScriptedTransport

HERE = Path(__file__).parent
KNOWN_CAPABILITIES = {"cc", "cv", "ocv", "eis", "temperature", "read_around_switch"}
SOURCE_METHODS = ("source_current", "source_voltage", "open_circuit")
NAMES = driver_names()


def test_the_four_drivers_are_registered():
    assert {"keithley2450", "b2900", "palmsens", "lakeshore335"} <= set(NAMES)


def make_channel(name: str):
    t = ScriptedTransport([], name=name)
    ch = load_driver(name).open_channel("TCPIP0::192.0.2.1::5025::SOCKET", transport=t)
    return ch, t


@pytest.mark.parametrize("name", NAMES)
def test_accepts_a_transport_and_does_no_io_before_connect(name):
    module = load_driver(name)
    assert callable(module.open_channel) and isinstance(module.COMMANDS, CommandSet)
    assert callable(module.serve_simulator) and callable(module.simulator_protocol)
    ch, t = make_channel(name)
    assert ch.transport is t and t.written == [] and not t.is_open


@pytest.mark.parametrize("name", NAMES)
def test_channel_satisfies_the_protocols_it_claims(name):
    ch, _ = make_channel(name)
    assert isinstance(ch, (SourceMeterChannel, TemperatureController))
    assert isinstance(ch, ReportsClock)  # every driver says how fast its clock runs
    if not isinstance(ch, SourceMeterChannel):
        return
    assert ch.capabilities <= KNOWN_CAPABILITIES, ch.capabilities - KNOWN_CAPABILITIES
    params = {m: inspect.signature(getattr(ch, m)).parameters for m in SOURCE_METHODS}
    if "read_around_switch" in ch.capabilities:
        for m in SOURCE_METHODS:
            assert params[m]["read_around"].default is False, m
    if hasattr(ch, "guarded_modes"):
        assert isinstance(ch, GuardedSource)
        assert ch.guarded_modes <= {"cc", "cv", "ocv"} & ch.capabilities
        for m in SOURCE_METHODS:  # optional keyword: old callers keep working
            p = params[m]["guard"]
            assert p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None, m


def numeric(cmd) -> bool:
    """A command that carries or returns a number."""
    if cmd.kind == "write":
        return cmd.type in ("float", "int") or bool(cmd.fields)
    return cmd.type in ("float", "int", "floats")


@pytest.mark.parametrize("name", NAMES)
def test_every_numeric_command_declares_units(name):
    missing = [c.name for c in load_driver(name).COMMANDS if numeric(c) and not c.units.strip()]
    assert missing == [], f"{name}: numeric commands without units: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_every_driver_has_a_byte_level_test_module_with_coverage(name):
    path = HERE / f"test_drv_{name}.py"
    assert path.is_file(), f"no byte-level test module {path.name} for driver {name}"
    text = path.read_text(encoding="utf-8")
    assert re.search(rf'^DRIVER = "{re.escape(name)}"', text, re.M), path.name
    assert "def test_every_command_is_covered(byte_coverage):" in text, path.name
    assert "ScriptedTransport" in text, path.name
