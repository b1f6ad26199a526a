"""Conformance of every registered driver (entry points ``cyclerflow.drivers``).

Each SMU/potentiostat/temperature driver: accepts a transport, returns a channel that
satisfies the protocol(s) it claims, declares units for every numeric command, and has a
byte-level test module whose coverage (recorded per module by ``conftest.byte_coverage``)
spans its command table.

Each cycler driver (``RUNS_OWN_SCHEDULE = True``): accepts a resource without any I/O
before ``connect``, returns a channel that satisfies the cycler protocol(s) its class
claims (method signatures included), declares every message (``MESSAGES``: request
builder, reply parser) and a unit for every numeric field its builders take and its
parsers return (``FIELD_UNITS``), and has a byte-level test module
``tests/cyclers/test_<vendor>_protocol.py`` whose last test checks, from the exchanges
recorded while that module ran (``cycler_helpers.message_coverage``), that every message
was exercised and every numeric field seen on the wire has a unit.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import socket
import typing
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.acquire.cycler import CyclerChannel, PolledCyclerChannel
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
from cyclerflow.errors import InputError

HERE = Path(__file__).parent
KNOWN_CAPABILITIES = {"cc", "cv", "ocv", "eis", "temperature", "read_around_switch"}
SOURCE_METHODS = ("source_current", "source_voltage", "open_circuit")
ALL_NAMES = driver_names()
CYCLERS = [n for n in ALL_NAMES if getattr(load_driver(n), "RUNS_OWN_SCHEDULE", False)]
NAMES = [n for n in ALL_NAMES if n not in CYCLERS]
CYCLER_PROTOCOLS = {"CyclerChannel": CyclerChannel, "PolledCyclerChannel": PolledCyclerChannel}
#: options a cycler driver requires besides its resource
CYCLER_OPTIONS = {"arbin-cti": {"schedule": "cyclerflow"}}
#: units a cycler field may declare ("1": counts, indices, codes, flags, ratios)
KNOWN_UNITS = {"1", "s", "ms", "min", "V", "A", "Ah", "mAh", "Wh", "mWh", "ohm", "g"}
CYCLER_TESTS = HERE.parent / "cyclers"


def test_the_four_drivers_are_registered():
    assert {"keithley2450", "b2900", "palmsens", "lakeshore335"} <= set(NAMES)


def test_the_three_cycler_drivers_are_registered():
    assert {"neware-bts", "arbin-cti", "maccor-macnet"} <= set(CYCLERS)


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


# --- cycler drivers ------------------------------------------------------------------------


def make_cycler(name: str, monkeypatch):
    """The driver's channel on an unroutable address; any socket use fails the test."""

    def no_io(*args, **kwargs):
        raise AssertionError(f"{name}: network I/O before connect ({args!r})")

    monkeypatch.setattr(socket, "create_connection", no_io)
    monkeypatch.setattr(socket.socket, "connect", no_io)
    opts = CYCLER_OPTIONS.get(name, {})
    return load_driver(name).open_channel("TCPIP0::192.0.2.1::5025::SOCKET", **opts)


@pytest.mark.parametrize("name", CYCLERS)
def test_cycler_accepts_a_resource_and_does_no_io_before_connect(name, monkeypatch):
    module = load_driver(name)
    assert callable(module.open_channel) and callable(module.serve_cycler_simulator)
    assert callable(module.check_recipe)
    ch = make_cycler(name, monkeypatch)
    assert ch.link._sock is None
    with pytest.raises(InputError, match=name):
        module.open_channel("GPIB0::5::INSTR", **CYCLER_OPTIONS.get(name, {}))
    with pytest.raises(InputError, match="bogus"):
        module.open_channel("TCPIP0::192.0.2.1::5025::SOCKET", bogus=1)


def claimed_protocols(cls) -> set[str]:
    """Protocol names the class docstring says it implements."""
    doc = (cls.__doc__ or "").split("implements", 1)
    return set(re.findall(r"\b(\w*CyclerChannel)\b", doc[1])) if len(doc) == 2 else set()


def protocol_methods(proto) -> list[str]:
    return [n for n, v in vars(proto).items() if inspect.isfunction(v) and not n.startswith("_")]


@pytest.mark.parametrize("name", CYCLERS)
def test_cycler_channel_satisfies_the_protocols_it_claims(name, monkeypatch):
    ch = make_cycler(name, monkeypatch)
    claims = claimed_protocols(type(ch))
    assert "CyclerChannel" in claims and claims <= set(CYCLER_PROTOCOLS), claims
    for pname, proto in CYCLER_PROTOCOLS.items():
        # the engine routes on isinstance: an unclaimed match is as wrong as a missing one
        assert isinstance(ch, proto) == (pname in claims), pname
        if pname not in claims:
            continue
        for m in protocol_methods(proto):
            want = list(inspect.signature(getattr(proto, m)).parameters)[1:]
            got = list(inspect.signature(getattr(ch, m)).parameters)
            assert got[: len(want)] == want, f"{name}.{m}{got} vs {pname}.{m}{want}"
    assert isinstance(ch, ReportsClock) and isinstance(ch.name, str)
    assert getattr(ch, "capabilities", frozenset()) <= KNOWN_CAPABILITIES


def numeric_names(fn) -> set[str]:
    """Numeric parameters of a builder and numeric fields of the dataclass(es) a parser
    returns, read from the annotations."""
    hints = typing.get_type_hints(fn)
    out = {k for k, t in hints.items() if k != "return" and t in (int, float)}
    ret = hints.get("return")
    for cls in (ret, *typing.get_args(ret)):
        if dataclasses.is_dataclass(cls):
            types = typing.get_type_hints(cls)
            out |= {f.name for f in dataclasses.fields(cls)
                    if types[f.name] in (int, float, np.ndarray)}  # fmt: skip
    return out


@pytest.mark.parametrize("name", CYCLERS)
def test_every_cycler_message_is_declared_and_its_numbers_have_units(name):
    module = load_driver(name)
    assert isinstance(module.MESSAGES, dict) and module.MESSAGES, name
    units = module.FIELD_UNITS
    bad = {k: u for k, u in units.items() if u not in KNOWN_UNITS}
    assert bad == {}, f"{name}: unknown units {bad}"
    builders = {n for n in dir(module) if n.endswith("_request") and n != "request"}
    declared = {b for b, _ in module.MESSAGES.values()}
    assert builders <= declared, f"{name}: request builders not in MESSAGES: {builders - declared}"
    missing = {}
    for msg, funcs in module.MESSAGES.items():
        for fn_name in funcs:
            fn = getattr(module, fn_name)
            assert callable(fn), f"{name}: {msg}: {fn_name}"
            lack = sorted(numeric_names(fn) - set(units))
            if lack:
                missing[f"{msg}:{fn_name}"] = lack
    assert missing == {}, f"{name}: numeric fields without units: {missing}"


@pytest.mark.parametrize("name", CYCLERS)
def test_every_cycler_has_a_byte_level_test_module_with_coverage(name):
    path = CYCLER_TESTS / f"test_{name.split('-')[0]}_protocol.py"
    assert path.is_file(), f"no byte-level test module {path.name} for driver {name}"
    text = path.read_text(encoding="utf-8")
    assert re.search(rf'^DRIVER = "{re.escape(name)}"', text, re.M), path.name
    assert re.search(r"^_cycler_exchanges = cycler_helpers\._cycler_exchanges$", text, re.M)
    last = re.findall(r"^def (test_\w+)\((.*)\):", text, re.M)[-1]
    assert last == ("test_every_message_is_covered_and_its_numbers_have_units",
                    "message_coverage"), f"{path.name}: the coverage test must run last"  # fmt: skip
