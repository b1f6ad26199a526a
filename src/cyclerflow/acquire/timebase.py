"""The test-time axis of one channel: host clock, instrument timestamps, resume offset.

Test time (simulated seconds since the file's first step) is the engine's
:class:`~cyclerflow.acquire.clock.Clock` plus an offset. A reading's test time is the
instrument's own timestamp where it runs in step with the host clock (anchored to
it), else the midpoint of the request that fetched it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from cyclerflow.acquire.clock import Clock

#: instrument timestamps are used while they stay this close (wall seconds) to the host clock
TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where the instrument's clock was tied to test time.

    ``instrument_t``: the instrument timestamp (s) at the tie; ``test_t``: the test
    time (s) it was given; ``last_instrument_t``: the latest timestamp mapped through it.
    """

    instrument_t: float
    test_t: float
    last_instrument_t: float

    def map(self, instrument_t: float) -> float:
        """Test time (s) of an instrument timestamp through this anchor."""
        return self.test_t + (instrument_t - self.instrument_t)


class Timebase:
    """Test time of one channel (seconds; see the module docstring).

    ``offset_s``: test time at clock time 0 is set by :meth:`start_at`;
    ``unix0``: the Unix time (s) at test time 0 (for the ``unix_time_second`` column).
    """

    def __init__(self, clock: Clock):
        self.clock = clock
        self.unix0 = time.time()
        self._offset = -clock.now()
        self._anchor: Anchor | None = None
        self._last_t = -math.inf

    def start_at(self, test_time_s: float) -> None:
        """Make test time read ``test_time_s`` now."""
        self._offset = test_time_s - self.clock.now()

    def now(self) -> float:
        """Test time now (s)."""
        return self._offset + self.clock.now()

    def of_clock(self, clock_t: float) -> float:
        """Test time (s) of engine clock time ``clock_t``."""
        return self._offset + clock_t

    def to_clock(self, test_t: float) -> float:
        """Engine clock time of test time ``test_t`` (s)."""
        return test_t - self._offset

    def sample_time(self, instrument_t: float, host_t0: float, host_t1: float) -> float:
        """Test time of a reading taken between host test times ``host_t0`` (request
        sent) and ``host_t1`` (reply received): the instrument's own timestamp where it
        runs in step with the host clock (anchored to it), else the request's midpoint.

        Instrument timestamps are immune to host scheduling hiccups: a reading is taken
        inside its request, so a mapped timestamp is accepted anywhere in that window
        (however long a stall made it) plus :data:`TIME_TOLERANCE_S` (x speed-up) of
        drift; one that goes backwards (new buffer, reconnect, restarted script) or
        falls outside re-anchors.
        """
        t = 0.5 * (host_t0 + host_t1)
        if math.isfinite(instrument_t):
            a = self._anchor
            tol = TIME_TOLERANCE_S * self.clock.speedup
            if a is not None and instrument_t >= a.last_instrument_t:
                mapped = a.map(instrument_t)
                if host_t0 - tol <= mapped <= host_t1 + tol:
                    t = mapped
                    self._anchor = Anchor(a.instrument_t, a.test_t, instrument_t)
                else:
                    self._anchor = Anchor(instrument_t, t, instrument_t)
            else:
                self._anchor = Anchor(instrument_t, t, instrument_t)
        if t <= self._last_t:
            t = self._last_t + 1e-6
        self._last_t = t
        return t
