"""Numbers as text for tables, reports and flow artifacts: one formatter for all of them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

#: what a table shows for a value that was not measured (None, NaN, inf)
MISSING = "–"


def fmt_number(v: Any, spec: str = ".4g", *, scale: float = 1.0, missing: str = MISSING) -> str:
    """``format(v * scale, spec)``; ``missing`` for None and non-finite floats; ``str(v)``
    for values the spec does not fit (a string in a numeric column)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return missing
    try:
        return format(v * scale if scale != 1.0 else v, spec)
    except (TypeError, ValueError):
        return str(v)


def fmt_unix_time(unix: float | None, missing: str = "-") -> str:
    """A Unix time (s) as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if unix is None:
        return missing
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: float) -> str:
    """A duration (s) in the largest unit that keeps it readable: s, min, h or d."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 86400:.2f} d"
