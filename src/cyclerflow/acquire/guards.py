"""Which limits the instrument holds by itself, and the guard each step programs.

The host checks every reading against the recipe's safety limits while it lives; a
channel that is a :class:`~cyclerflow.acquire.instrument.GuardedSource` also holds a
:class:`~cyclerflow.acquire.instrument.StepGuard` per step, so the cell stays in its
window when the host dies. Modes outside ``guarded_modes`` are host-only.
"""

from __future__ import annotations

from cyclerflow.acquire.instrument import GuardedSource, StepGuard
from cyclerflow.acquire.recipe import Limits, Recipe

#: source modes a recipe can use, as the channel capabilities name them
SOURCE_MODES = ("cc", "cv", "ocv")


def step_guard(limits: Limits) -> StepGuard:
    """The guard the instrument holds during a step (SI): the recipe's safety window
    (``voltage_min`` .. ``voltage_max``, ``current_max``), the second line of defence.

    The step's own end voltage is not in it: the host detects that from its readings,
    and the switch to the next step reads right before and after it in one exchange
    (exact charge accounting). An instrument that tripped at the end voltage by
    itself, between host readings, would stop the current before the host's switch."""
    return StepGuard(limits.voltage_min, limits.voltage_max, limits.current_max)


def held_modes(channel: object) -> frozenset[str]:
    """Source modes whose guard ``channel`` holds without the host (empty: host-only)."""
    if isinstance(channel, GuardedSource):
        return frozenset(channel.guarded_modes) & frozenset(SOURCE_MODES)
    return frozenset()


def recipe_modes(recipe: Recipe) -> list[str]:
    """Source modes the recipe uses (rests and EIS at open circuit count as ``ocv``)."""
    need = recipe.needs()
    return [m for m in SOURCE_MODES if m in need or m == "ocv"]


def describe_limits(channel: object, recipe: Recipe) -> str:
    """One line: which of the recipe's limits the instrument holds and which only the host."""
    lim = recipe.limits
    held = held_modes(channel)
    used = recipe_modes(recipe)
    window = (
        f"voltage {lim.voltage_min:g}..{lim.voltage_max:g} V, |current| <= {lim.current_max:g} A"
    )
    on = [m for m in used if m in held]
    off = [m for m in used if m not in held]
    host_only = [f"{m} steps" for m in off]
    host_only += [
        name
        for name, value in (
            ("temperature", lim.temperature_max or lim.temperature_min),
            ("step_time_max", lim.step_time_max),
            ("charge_voltage_drop", lim.charge_voltage_drop),
        )
        if value is not None
    ]
    held_text = f"{', '.join(on)} steps ({window})" if on else "none"
    return (
        f"limits held by the instrument: {held_text}; host-only: "
        f"{', '.join(host_only) if host_only else 'none'}"
    )


def describe_cycler_limits(module: object, recipe: Recipe) -> str:
    """The same line for a cycler that runs the whole schedule itself (a driver module
    with ``RUNS_OWN_SCHEDULE``): every step's end conditions and transitions are the
    cycler's, host or no host. The recipe's safety window is the cycler's too when the
    driver writes it into the schedule (``SAFETY_LIMITS_IN_SCHEDULE``); otherwise the
    stored procedure holds whatever limits it was written with and the host only checks
    the records it downloads, after the fact."""
    lim = recipe.limits
    window = (
        f"voltage {lim.voltage_min:g}..{lim.voltage_max:g} V, |current| <= {lim.current_max:g} A"
    )
    in_schedule = bool(getattr(module, "SAFETY_LIMITS_IN_SCHEDULE", False))
    held = "every step's end conditions (the cycler runs the schedule)"
    host = []
    if in_schedule:
        held += f", the safety window ({window}, written into the schedule)"
    else:
        host.append(f"the safety window ({window}: checked on downloaded records only)")
    host += [
        name
        for name, value in (
            ("temperature", lim.temperature_max or lim.temperature_min),
            ("step_time_max", lim.step_time_max),
            ("charge_voltage_drop", lim.charge_voltage_drop),
        )
        if value is not None
    ]
    return (
        f"limits held by the instrument: {held}; host-only: {', '.join(host) if host else 'none'}"
    )
