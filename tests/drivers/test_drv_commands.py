"""The declarative command table: formatting, range checks, reply parsing."""

from __future__ import annotations

import pytest

from cyclerflow.drivers.commands import Command, CommandSet, format_number
from cyclerflow.drivers.transports import ScriptedTransport
from cyclerflow.errors import InputError, InstrumentError

CMDS = CommandSet(
    "demo",
    [
        Command("level", ":SOUR:CURR {value}", type="float", range=(-1.0, 1.0), units="A"),
        Command("func", ":SOUR:FUNC {value}", type="str", choices=("CURR", "VOLT")),
        Command("count", "COUN {value}", type="int", range=(1, 10)),
        Command("read", ":READ?", kind="query", type="floats", count=3),
        Command("err", ":SYST:ERR?", kind="query", type="error"),
        Command("on", ":OUTP?", kind="query", type="bool"),
        Command("si", "meas {value} {interval}", type="float", range=(0, 1), number_format="si"),
    ],
)


def test_format_number_is_short_and_exact():
    assert format_number(1.5e-5) == "1.5e-5"
    assert format_number(4.2) == "4.2"
    assert format_number(-0.000123456789) == "-0.0001234568"
    assert float(format_number(3.14159265e-9)) == pytest.approx(3.14159265e-9, rel=1e-6)


def test_format_and_validate():
    assert CMDS.format("level", 1e-5) == ":SOUR:CURR 1e-5"
    assert CMDS.format("func", "volt") == ":SOUR:FUNC volt"
    assert CMDS.format("count", 3.0) == "COUN 3"
    assert CMDS.format("si", 0.5, interval=0.1) == "meas 500m 100m"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("level", 2.0, ["demo", "level", "2 A", "-1 .. 1 A"]),
        ("level", "abc", ["demo", "level", "number"]),
        ("level", float("nan"), ["NaN"]),
        ("func", "RES", ["demo", "func", "CURR, VOLT"]),
        ("count", 11, ["count", "1 .. 10"]),
    ],
)
def test_bad_values_are_input_errors(name, value, words):
    with pytest.raises(InputError) as err:
        CMDS.format(name, value)
    for w in words:
        assert w in str(err.value)


def test_parse_replies():
    t = ScriptedTransport(
        [
            (":READ?", "4.1E+00,1.0E-05,1.25E+01"),
            (":SYST:ERR?", '-222,"Parameter data out of range"'),
            (":OUTP?", "1"),
        ]
    )
    assert CMDS.query(t, "read") == [4.1, 1e-5, 12.5]
    assert CMDS.query(t, "err") == (-222, "Parameter data out of range")
    assert CMDS.query(t, "on") is True
    t.assert_done()


@pytest.mark.parametrize("reply", ["#@!~", "4.1E+00,1.0E-05", "1,2,3,4", ""])
def test_garbled_reply_names_instrument_and_command(reply):
    t = ScriptedTransport([(":READ?", reply)])
    with pytest.raises(InstrumentError) as err:
        CMDS.query(t, "read")
    msg = str(err.value)
    assert "demo" in msg and ":READ?" in msg and "garbled reply" in msg


def test_write_vs_query_kind_is_enforced():
    t = ScriptedTransport([])
    with pytest.raises(TypeError):
        CMDS.query(t, "level", 1.0)
    with pytest.raises(TypeError):
        CMDS.write(t, "read")


def test_scripted_transport_rejects_unexpected_write():
    t = ScriptedTransport([("*IDN?", "x")])
    with pytest.raises(AssertionError, match=r"expected write '\*IDN\?', got '\*RST'"):
        t.write("*RST")


def test_scripted_transport_timeout_names_command():
    t = ScriptedTransport([(":READ?", None)], name="demo")
    t.write(":READ?")
    with pytest.raises(InstrumentError, match="demo.*':READ\\?'.*timeout"):
        t.read_line(":READ?")
