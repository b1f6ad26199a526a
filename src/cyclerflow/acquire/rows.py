"""Rows waiting for the cell file: buffered per reading, pushed every flush interval."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cyclerflow.acquire.instrument import Sample
from cyclerflow.store import LIVE_COLUMNS, CellWriter


@dataclass(frozen=True, slots=True)
class RowContext:
    """The counters a row is filed under."""

    cycle: int
    step_count: int
    step_index: int


class RowBuffer:
    """Rows of one channel on their way to ``writer``.

    Channels of a station push at staggered moments (``flush_phase`` in [0, 1) of the
    writer's flush interval) so their HDF5 writes do not all land at once.
    """

    def __init__(self, writer: CellWriter, flush_phase: float = 0.0):
        self.w = writer
        self._rows: dict[str, list[float]] = {c: [] for c in LIVE_COLUMNS}
        self._last_push = time.monotonic() - (flush_phase % 1.0) * writer.flush_interval

    def record(self, t: float, s: Sample, ctx: RowContext, unix0: float) -> None:
        """Buffer one row at test time ``t`` (s); ``unix0``: Unix time at test time 0."""
        r = self._rows
        r["test_time_second"].append(t)
        r["unix_time_second"].append(unix0 + t)
        r["voltage_volt"].append(s.voltage_v)
        r["current_ampere"].append(s.current_a)
        r["cycle_count"].append(ctx.cycle)
        r["step_count"].append(ctx.step_count)
        r["step_index"].append(ctx.step_index)
        r["temperature_kelvin"].append(s.temperature_k)

    def push(self, flush: bool = True) -> None:
        """Hand the buffered rows to the writer (and flush the file unless ``flush`` is False)."""
        self._last_push = time.monotonic()
        if self._rows["test_time_second"]:
            rows = {c: np.asarray(v) for c, v in self._rows.items()}
            self._rows = {c: [] for c in LIVE_COLUMNS}
            self.w.append_cycling(rows)
        if flush:
            self.w.flush()

    def push_if_due(self) -> None:
        """Push when a flush interval (wall seconds) has passed since the last push."""
        if time.monotonic() - self._last_push >= self.w.flush_interval:
            self.push()
