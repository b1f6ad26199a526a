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
from cyclerflow.errors import InstrumentError

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


#: instrument timestamps may run this much faster or slower than the host clock
#: (x the instrument's reported rate) before the run stops
RATE_TOLERANCE = 0.01

#: wall seconds a reading may be older than the request that fetched it (a queued
#: packet, a slow reply) before it counts as evidence of a clock-rate mismatch
READING_AGE_S = 0.25


class ClockMismatch(InstrumentError):
    """The instrument's timestamps run at a different rate than the host expects."""


class RateCheck:
    """Compares the instrument's timestamps with the host clock over a growing span.

    Each reading is taken somewhere inside its request (host test times ``h0`` ..
    ``h1``), up to ``slack_s`` (test seconds) earlier. Against the first reading since
    the timestamps last went backwards this bounds the instrument's rate relative to the
    host clock; when the whole bound lies outside 1 +- :data:`RATE_TOLERANCE` the run
    stops with :class:`ClockMismatch` naming both rates (instrument, host; both as
    multiples of real time).
    """

    def __init__(self, clock: Clock, slack_s: float, source: str = "the host clock"):
        self.clock = clock
        self.slack_s = slack_s
        self.source = source
        self._first: tuple[float, float, float] | None = None  # (instrument t, h0, h1)
        self._last_i = -math.inf

    def check(self, instrument_t: float, h0: float, h1: float) -> None:
        """Take one reading's timestamp (s) and its request window (test seconds)."""
        if not math.isfinite(instrument_t):
            return
        if self._first is None or instrument_t < self._last_i:
            self._first = (instrument_t, h0, h1)
            self._last_i = instrument_t
            return
        self._last_i = instrument_t
        i0, a0, a1 = self._first
        di = instrument_t - i0
        longest = h1 - a0 + self.slack_s
        shortest = h0 - a1 - self.slack_s
        too_fast = di > longest * (1 + RATE_TOLERANCE)
        too_slow = shortest > 0 and di < shortest / (1 + RATE_TOLERANCE)
        if too_fast or too_slow:
            host = self.clock.speedup
            seen = di / max(0.5 * (h0 + h1) - 0.5 * (a0 + a1), 1e-12) * host
            raise ClockMismatch(
                f"the instrument's timestamps run at {seen:.4g}x real time but the host "
                f"clock runs at {host:.4g}x ({self.source}): they differ by more than "
                f"{100 * RATE_TOLERANCE:g} % over {di:.4g} s of instrument time; the time "
                "axis would be wrong (give the simulator's speed-up with --speedup, or use a "
                "driver that reports it)"
            )


def rates_agree(a: float, b: float) -> bool:
    """Two clock rates within :data:`RATE_TOLERANCE` of each other."""
    return abs(a / b - 1.0) <= RATE_TOLERANCE


def resolve_rate(reported: float | None, override: float | None) -> float:
    """The clock rate to run at: the instrument's ``reported`` rate, or ``override``
    (--speedup) checked against it; :class:`ClockMismatch` when they disagree."""
    if reported is None:
        return 1.0 if override is None else override
    if not (math.isfinite(reported) and reported > 0):
        raise ClockMismatch(f"the instrument reported a clock rate of {reported!r}")
    if override is not None and not rates_agree(override, reported):
        raise ClockMismatch(
            f"--speedup {override:g} disagrees with the instrument's clock, which runs at "
            f"{reported:g}x real time (it says so itself); leave --speedup out or make it "
            f"{reported:g}"
        )
    return reported if override is None else override
