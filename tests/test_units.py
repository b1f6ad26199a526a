from __future__ import annotations

import pytest

from cyclerflow.errors import InputError
from cyclerflow.units import parse_quantity


@pytest.mark.parametrize(
    ("text", "dim", "expected"),
    [
        ("10 uA", "current", 10e-6),
        ("7 nA", "current", 7e-9),
        ("15 µA", "current", 15e-6),
        ("4.2 V", "voltage", 4.2),
        ("5 mV", "voltage", 5e-3),
        ("1 h", "time", 3600.0),
        ("10 min", "time", 600.0),
        ("1 MHz", "frequency", 1e6),
        ("0.1 Hz", "frequency", 0.1),
        ("0.35 uAh", "charge", 0.35e-6),
        ("80 degC", "temperature", 353.15),
        ("300 K", "temperature", 300.0),
        ("2e-6 S", "conductance", 2e-6),
        ("50 kOhm", "resistance", 5e4),
    ],
)
def test_parse(text, dim, expected):
    assert parse_quantity(text, dim) == pytest.approx(expected, rel=1e-12)


def test_bare_number_needs_default_unit():
    assert parse_quantity(2, "current", default_unit="mA") == pytest.approx(2e-3)
    with pytest.raises(InputError, match="no unit"):
        parse_quantity(2, "current", where="steps[0].current")


@pytest.mark.parametrize("text", ["10 uV", "abc", "10 furlongs", ""])
def test_errors(text):
    with pytest.raises(InputError):
        parse_quantity(text, "current", where="x")
