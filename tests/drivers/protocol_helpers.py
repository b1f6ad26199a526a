"""Shared helper for the byte-level protocol tests (not a test module)."""

from __future__ import annotations

import re


def template_regex(template: str) -> re.Pattern:
    """A regex matching any text a command template can produce."""
    parts = re.split(r"\{[a-z_]+\}", template)
    return re.compile("^" + ".+?".join(re.escape(p) for p in parts) + "$")


def uncovered(commands, written: list[str]) -> list[str]:
    """Names of commands whose template matched none of the ``written`` lines."""
    out = []
    for cmd in commands:
        rx = template_regex(cmd.template)
        if not any(rx.match(w.strip()) for w in written):
            out.append(cmd.name)
    return out
