"""Quantities with units at the edges (recipes, metadata, CLI) -> SI floats inside.

A small parser of SI prefixes, enough for lab files: ``"10 uA"``, ``"4.2 V"``,
``"1 h"``, ``"80 degC"``, ``"1 MHz"``, ``"0.35 µAh"``. Charge is returned in
ampere-hours (``Ah``), temperature in kelvin, time in seconds; everything else in
its SI base unit.
"""

from __future__ import annotations

import re

from cyclerflow.errors import InputError

PREFIXES: dict[str, float] = {
    "p": 1e-12,
    "n": 1e-9,
    "u": 1e-6,
    "µ": 1e-6,
    "μ": 1e-6,
    "m": 1e-3,
    "c": 1e-2,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
}

# unit symbol -> (dimension name, factor to the SI / stored unit)
BASE_UNITS: dict[str, tuple[str, float]] = {
    "A": ("current", 1.0),
    "V": ("voltage", 1.0),
    "Ohm": ("resistance", 1.0),
    "ohm": ("resistance", 1.0),
    "Ω": ("resistance", 1.0),
    "S": ("conductance", 1.0),
    "Hz": ("frequency", 1.0),
    "s": ("time", 1.0),
    "Ah": ("charge", 1.0),
    "C": ("charge", 1.0 / 3600.0),
    "Wh": ("energy", 1.0),
    "W": ("power", 1.0),
    "F": ("capacitance", 1.0),
    "m": ("length", 1.0),
    "g": ("mass", 1e-3),  # stored in kg
}
# units that take no prefix
PLAIN_UNITS: dict[str, tuple[str, float]] = {
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
    "hr": ("time", 3600.0),
    "d": ("time", 86400.0),
    "K": ("temperature", 1.0),
    "%": ("fraction", 0.01),
}
TEMPERATURE_OFFSETS = {"degC": 273.15, "°C": 273.15, "C_temp": 273.15}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([^\s\d].*?)?\s*$")


def unit_factor(unit: str) -> tuple[str, float]:
    """Return (dimension, factor) for a unit symbol such as ``uA`` or ``min``."""
    unit = unit.strip()
    if unit in PLAIN_UNITS:
        return PLAIN_UNITS[unit]
    if unit in BASE_UNITS:
        return BASE_UNITS[unit]
    for prefix, factor in PREFIXES.items():
        if prefix and unit.startswith(prefix) and unit[len(prefix) :] in BASE_UNITS:
            dim, base = BASE_UNITS[unit[len(prefix) :]]
            return dim, factor * base
    raise ValueError(f"unknown unit {unit!r}")


def parse_quantity(value: object, dimension: str, *, default_unit: str | None = None, where: str = "") -> float:
    """Parse ``value`` (number or ``"10 uA"``) into the SI value of ``dimension``.

    A bare number is taken in ``default_unit`` (error if there is none). Temperatures
    accept ``K`` and ``degC``/``°C`` and return kelvin.
    """
    label = where or "value"
    if isinstance(value, bool):
        raise InputError(f"{label}: expected a {dimension}, got {value!r}")
    if isinstance(value, (int, float)):
        if default_unit is None:
            raise InputError(f"{label}: {value!r} has no unit; expected a {dimension} such as '10 uA'")
        text = f"{value!r} {default_unit}"
    elif isinstance(value, str):
        text = value
    else:
        raise InputError(f"{label}: expected a {dimension}, got {value!r}")
    m = _QUANTITY.match(text)
    if not m:
        raise InputError(f"{label}: cannot read {text!r} as a {dimension} (expected e.g. '10 uA')")
    number = float(m.group(1))
    unit = (m.group(2) or default_unit or "").strip()
    if not unit:
        raise InputError(f"{label}: {text!r} has no unit; expected a {dimension}")
    if dimension == "temperature" and unit in TEMPERATURE_OFFSETS:
        return number + TEMPERATURE_OFFSETS[unit]
    try:
        dim, factor = unit_factor(unit)
    except ValueError:
        raise InputError(f"{label}: unknown unit {unit!r} in {text!r} (expected a {dimension})") from None
    if dim != dimension:
        raise InputError(f"{label}: {text!r} is a {dim}, expected a {dimension}")
    return number * factor
