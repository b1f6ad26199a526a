"""Shared helper for the byte-level protocol tests (not a test module)."""

from __future__ import annotations

import re

import pytest

from cyclerflow.acquire.instrument import StepGuard
from cyclerflow.errors import InputError


def template_regex(template: str) -> re.Pattern:
    """A regex matching any text a command template can produce."""
    parts = re.split(r"\{[a-z_]+\}", template)
    return re.compile("^" + ".+?".join(re.escape(p) for p in parts) + "$")


def split_message(message: str) -> list[str]:
    """The commands of one program message (SCPI ``;`` outside quotes)."""
    parts, cur, quote = [], "", ""
    for ch in message:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == ";":
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    return [*parts, cur]


def uncovered(commands, written: list[str]) -> list[str]:
    """Names of commands whose template matched none of the ``written`` messages' commands."""
    sent = [part.strip() for w in written for part in split_message(w)]
    out = []
    for cmd in commands:
        rx = template_regex(cmd.template)
        if not any(rx.match(w) for w in sent):
            out.append(cmd.name)
    return out


def assert_guard_refusals(ch) -> None:
    """A guarded channel refuses a current beyond current_max and a CV set point outside
    the voltage window (the caller checks that nothing was sent)."""
    with pytest.raises(InputError, match="exceeds the guard's current_max"):
        ch.source_current(-2e-4, 4.2, guard=StepGuard(3.0, 4.2, current_max_a=1e-4))
    with pytest.raises(InputError, match="outside the guard's window"):
        ch.source_voltage(4.4, 1e-5, guard=StepGuard(3.0, 4.2))
