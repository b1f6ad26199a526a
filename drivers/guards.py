"""Set-point checks against a :class:`~cyclerflow.acquire.instrument.StepGuard` that every
guarded driver makes before it programs a source (the SMUs and the PalmSens alike).

A set point the guard forbids is refused with one ``InputError`` naming the channel
(``label``) before anything is sent; the instrument never starts a step it would have
to stop at once.
"""

from __future__ import annotations

from cyclerflow.acquire.instrument import StepGuard
from cyclerflow.errors import InputError


def check_current(label: str, current_a: float, guard: StepGuard | None) -> None:
    """Refuse a constant current (A, signed) beyond the guard's ``current_max_a``."""
    if guard is not None and guard.current_max_a is not None:
        if abs(current_a) > guard.current_max_a:
            raise InputError(
                f"{label}: current {current_a:g} A exceeds the guard's "
                f"current_max {guard.current_max_a:g} A"
            )


def cv_compliance(
    label: str, voltage_v: float, current_limit_a: float, guard: StepGuard | None
) -> float:
    """The current compliance (A) of a constant voltage ``voltage_v`` (V) under ``guard``.

    Refuses a set point outside the guard's voltage window; with a ``current_max_a`` the
    compliance is ``min(|current_limit_a|, current_max_a)``, else ``current_limit_a``.
    """
    if guard is None:
        return current_limit_a
    lo, hi = guard.voltage_min_v, guard.voltage_max_v
    if (lo is not None and voltage_v < lo) or (hi is not None and voltage_v > hi):
        raise InputError(
            f"{label}: set point {voltage_v:g} V is outside the guard's window {lo} .. {hi} V"
        )
    if guard.current_max_a is not None:
        return min(abs(current_limit_a), guard.current_max_a)
    return current_limit_a
