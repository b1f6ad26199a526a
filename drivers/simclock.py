"""The clock field a simulator adds to its identification reply (``sim-clock=<rate>``).

A simulated instrument runs its clock ``rate`` times faster than the wall clock. It says
so in the reply every driver already asks for at connect: the SCPI ``*IDN?`` reply (in
its last, firmware field: ``KEITHLEY INSTRUMENTS,MODEL 2450,04500001,1.7.12b
sim-clock=1000``), the Lake Shore ``*IDN?`` reply likewise, and the MethodSCRIPT ``t``
(firmware version) reply (``tespico R1.3.2#Jul  1 2024 sim-clock=1000``). No real
instrument writes ``sim-clock=`` there, and adding it changes neither the number of
comma-separated ``*IDN?`` fields nor a real instrument's behaviour: a driver talking to
real hardware finds no field and reports 1.0. ``0`` means a simulator whose clock moves
only when a test advances it.
"""

from __future__ import annotations

import math
import re

from cyclerflow.errors import InstrumentError

CLOCK_KEY = "sim-clock="
_FIELD = re.compile(r"(?:^|[\s,])sim-clock=(\S*)")


def with_clock(identification: str, rate: float) -> str:
    """``identification`` with the clock field appended (what a simulator answers)."""
    return f"{identification} {CLOCK_KEY}{float(rate):g}"


def clock_rate_from(identification: str, *, source: str = "") -> float:
    """The clock rate an identification reply declares: 1.0 when it has no clock field.

    A field that is present but not a finite number >= 0 is an :class:`InstrumentError`
    (naming ``source``): a simulator that says something unreadable about its clock must
    not be taken for real time.
    """
    m = _FIELD.search(identification)
    if m is None:
        return 1.0
    try:
        rate = float(m.group(1))
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and rate >= 0):
        raise InstrumentError(
            f"{source or 'instrument'}: identification {identification!r} has an unreadable "
            f"clock field {CLOCK_KEY}{m.group(1)!r} (expected a number >= 0)"
        )
    return rate
