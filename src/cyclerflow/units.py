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


def parse_quantity(
    value: object, dimension: str, *, default_unit: str | None = None, where: str = ""
) -> float:
    """Parse ``value`` (number or ``"10 uA"``) into the SI value of ``dimension``.

    A bare number is taken in ``default_unit`` (error if there is none). Temperatures
    accept ``K`` and ``degC``/``°C`` and return kelvin.
    """
    label = where or "value"
    if isinstance(value, bool):
        raise InputError(f"{label}: expected a {dimension}, got {value!r}")
    if isinstance(value, (int, float)):
        if default_unit is None:
            raise InputError(
                f"{label}: {value!r} has no unit; expected a {dimension} such as '10 uA'"
            )
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
        raise InputError(
            f"{label}: unknown unit {unit!r} in {text!r} (expected a {dimension})"
        ) from None
    if dim != dimension:
        raise InputError(f"{label}: {text!r} is a {dim}, expected a {dimension}")
    return number * factor


_AREA = re.compile(r"^(p|n|u|µ|μ|m|c|k|)m(?:2|\^2|²)$")


def parse_lab_value(value: object, dimension: str, lab_unit: str, *, where: str) -> float:
    """A metadata value: a bare number in ``lab_unit``, or a string with any unit of
    ``dimension``, converted to ``lab_unit``. Areas accept ``cm2``, ``mm2``, ``um2``, ``m2``.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise InputError(f"expected a number in {lab_unit}, got {value!r}")
    if dimension == "area":
        m = _QUANTITY.match(value)
        unit = (m.group(2) or "").strip() if m else ""
        am = _AREA.match(unit)
        if not m or not am:
            raise InputError(f"cannot read {value!r} as an area (expected e.g. '0.25 cm2')")
        to_m2 = PREFIXES[am.group(1)] ** 2
        lab = _AREA.match(lab_unit)
        return float(m.group(1)) * to_m2 / (PREFIXES[lab.group(1)] ** 2)
    try:
        si = parse_quantity(value, dimension, where="value")
    except InputError as err:
        raise InputError(err.bare_message.removeprefix("value: ")) from None
    if dimension == "temperature" and lab_unit == "degC":
        return si - 273.15
    _, factor = unit_factor(lab_unit)
    return si / factor
