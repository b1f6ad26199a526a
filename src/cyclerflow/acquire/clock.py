"""The engine's clock: simulated seconds that may run faster than the wall clock.

With ``speedup = X`` one wall second is X simulated seconds, as in the instrument
simulators, so a 50-cycle recipe runs in seconds. Sleeping waits wall time
``dt / X`` and wakes early when the stop flag is set (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    """Monotonic simulated time since the clock was made (seconds)."""

    def __init__(self, speedup: float = 1.0, stop: threading.Event | None = None):
        if not speedup > 0:
            raise ValueError(f"speedup must be > 0, got {speedup!r}")
        self.speedup = float(speedup)
        self.stop = stop if stop is not None else threading.Event()
        self._m0 = time.monotonic()

    def now(self) -> float:
        """Simulated seconds since the clock started."""
        return (time.monotonic() - self._m0) * self.speedup

    def wall_time(self) -> float:
        """Unix time now (wall seconds): where a restarted run finds how long it was away."""
        return time.time()

    def wall_of(self, t: float) -> float:
        """The ``time.monotonic()`` value at which simulated time ``t`` is reached."""
        return self._m0 + t / self.speedup

    def sleep_until(self, t: float) -> bool:
        """Wait until simulated time ``t``; False if the stop flag was set meanwhile."""
        while True:
            delay = (t - self.now()) / self.speedup
            if delay <= 0:
                return not self.stop.is_set()
            if self.stop.wait(delay):
                return False

    def sleep(self, dt: float) -> bool:
        """Wait ``dt`` simulated seconds; False if stopped."""
        return self.sleep_until(self.now() + dt)

    def wall_sleep(self, seconds: float) -> bool:
        """Wait wall-clock seconds (reconnect back-off); False if stopped."""
        return not self.stop.wait(max(0.0, seconds))


class VirtualClock(Clock):
    """Simulated time that moves only when the engine sleeps: no wall-clock waiting.

    For dry runs of a recipe against a model and for deterministic tests: with an
    instrument model that reads the same clock, nothing happens between two sleeps,
    so results are exact and independent of machine load. ``stop_at`` (simulated
    seconds) sets the stop flag when reached, like a Ctrl-C at that moment.
    ``on_advance(dt)`` is called whenever time moves, e.g. a simulator's
    ``server.advance`` so that an instrument simulator run with speed-up 0 follows
    this clock exactly (end-to-end tests over real sockets without timing noise).
    ``wall0``: the Unix time it reports at simulated time 0 (its wall time moves with
    simulated time), so that tests can place a restart a known time later.
    """

    def __init__(
        self,
        stop: threading.Event | None = None,
        stop_at: float | None = None,
        on_advance: Callable[[float], None] | None = None,
        wall0: float | None = None,
    ):
        super().__init__(1.0, stop)
        self._t = 0.0
        self.wall0 = time.time() if wall0 is None else wall0
        self.stop_at = stop_at
        self.on_advance = on_advance

    def _move_to(self, t: float) -> None:
        dt = t - self._t
        if dt > 0:
            self._t = t
            if self.on_advance is not None:
                self.on_advance(dt)

    def now(self) -> float:
        return self._t

    def wall_time(self) -> float:
        return self.wall0 + self._t

    def wall_of(self, t: float) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> bool:
        if self.stop.is_set():
            return False
        if self.stop_at is not None and t >= self.stop_at:
            self._move_to(self.stop_at)
            self.stop.set()
            return False
        self._move_to(t)
        return True

    def wall_sleep(self, seconds: float) -> bool:
        return not self.stop.is_set()
