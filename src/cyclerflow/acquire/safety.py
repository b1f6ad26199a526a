"""Host-side safety limits: pure checks run on every sample, independent of the instrument.

The engine calls :func:`check_sample` for each reading; a non-empty answer means a
breach: the engine switches the output off, records a ``safety_stop`` event with
the message and stops that channel.
"""

from __future__ import annotations

import math

from cyclerflow.acquire.instrument import Sample
from cyclerflow.acquire.recipe import Limits

#: relative tolerance on current_max (instrument noise and range rounding)
CURRENT_TOLERANCE = 0.02


def check_sample(limits: Limits, sample: Sample) -> str | None:
    """The first limit the sample breaks, as a message, or None if it is within limits.

    Voltage outside [voltage_min, voltage_max], |current| above current_max (plus
    :data:`CURRENT_TOLERANCE`), temperature outside its window (when measured), or a
    NaN voltage/current (a reading that cannot be trusted is a breach).
    """
    v, i = sample.voltage_v, sample.current_a
    if not (math.isfinite(v) and math.isfinite(i)):
        return f"invalid reading (voltage {v!r} V, current {i!r} A)"
    if v > limits.voltage_max:
        return f"voltage {v:.4f} V > voltage_max {limits.voltage_max:.4f} V"
    if v < limits.voltage_min:
        return f"voltage {v:.4f} V < voltage_min {limits.voltage_min:.4f} V"
    if abs(i) > limits.current_max * (1 + CURRENT_TOLERANCE):
        return f"current {i:.4g} A exceeds current_max {limits.current_max:.4g} A"
    t = sample.temperature_k
    if math.isfinite(t):
        if limits.temperature_max is not None and t > limits.temperature_max:
            return f"temperature {t - 273.15:.2f} degC > temperature_max {limits.temperature_max - 273.15:.2f} degC"
        if limits.temperature_min is not None and t < limits.temperature_min:
            return f"temperature {t - 273.15:.2f} degC < temperature_min {limits.temperature_min - 273.15:.2f} degC"
    return None


def check_step_time(limits: Limits, step_time_s: float) -> str | None:
    """A breach message when a step has run longer than ``step_time_max``."""
    if limits.step_time_max is not None and step_time_s > limits.step_time_max:
        return f"step time {step_time_s:.1f} s > step_time_max {limits.step_time_max:.1f} s"
    return None


def check_charge_voltage_drop(
    limits: Limits, voltage_v: float, step_max_voltage_v: float
) -> str | None:
    """Soft-short detector for charge steps: the voltage fell ``charge_voltage_drop``
    below the highest voltage seen in the step (a charging cell's voltage only rises)."""
    drop = limits.charge_voltage_drop
    if drop is not None and step_max_voltage_v - voltage_v > drop:
        return (
            f"voltage fell {1e3 * (step_max_voltage_v - voltage_v):.1f} mV during charge "
            f"(> charge_voltage_drop {1e3 * drop:.1f} mV): soft short?"
        )
    return None


def check_temperature(limits: Limits, kelvin: float) -> str | None:
    """A breach message for a controller temperature outside the window."""
    if not math.isfinite(kelvin):
        return None
    return check_sample(
        limits, Sample(0.0, (limits.voltage_min + limits.voltage_max) / 2, 0.0, kelvin)
    )
