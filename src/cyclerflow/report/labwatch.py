"""``cyclerflow watch --lab ROOT``: every cell of a lab in one terminal table, refreshed.

Which cells are running and when each last wrote, cycles, retention and fade, read
from the lab database where it is current and from the files otherwise
(:mod:`cyclerflow.db.labstate`); the last column says which.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cyclerflow.db.labstate import CellState, lab_state


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    dt = max(0.0, now - t)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if dt >= size:
            return f"{dt / size:.1f} {unit} ago"
    return f"{dt:.0f} s ago"


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def lab_table(states: Sequence[CellState], now: float | None = None) -> Table:
    """The table of a lab's cells (live ones first)."""
    now = time.time() if now is None else now
    title = f"cyclerflow watch --lab — {datetime.now(UTC).strftime('%H:%M:%S UTC')}"
    table = Table(title=title)
    for col in ("cell", "wafer", "state", "last sample", "cycles", "retention", "fade /cycle"):
        table.add_column(col)
    table.add_column("analysis")
    table.add_column("read from")
    for s in sorted(states, key=lambda s: (s.state != "live", s.wafer or "", s.cell_id or "")):
        table.add_row(
            s.cell_id or Path(s.path).name,
            s.wafer or "-",
            s.state,
            _ago(s.last_sample_time_second, now),
            _num(s.n_cycles, "d"),
            _num(s.last_capacity_retention, ".4f"),
            _num(s.fade_rate_per_cycle, ".2e"),
            s.status or "-",
            s.source,
        )
    return table


def watch_lab(
    root: str | Path,
    *,
    db: str | None = None,
    interval: float = 5.0,
    once: bool = False,
    console: Console | None = None,
    max_frames: int | None = None,
) -> int:
    """Show the lab table until Ctrl-C (``interval`` seconds between refreshes). Returns
    the frames shown."""
    from rich.live import Live

    console = console or Console()
    if once:
        console.print(lab_table(lab_state(root, db)))
        return 1
    frames = 0
    with Live(lab_table(lab_state(root, db)), console=console, refresh_per_second=1) as live:
        try:
            while max_frames is None or frames < max_frames:
                frames += 1
                time.sleep(interval)
                live.update(lab_table(lab_state(root, db)))
        except KeyboardInterrupt:
            pass
    return frames
