"""`cyclerflow acquire ... --watchdog`: restart the engine at once when it dies.

The supervisor runs the same ``acquire`` command as a child process. When the child
ends by a crash (killed by a signal, or an exit code other than 0, 1, 2 and 130) it
starts it again at once; the child resumes the file (gap event, resume policy). When
the time since the last stored sample exceeds ``max_gap_s`` (wall seconds) it first
switches the outputs off through the drivers, so the instrument does not go on
sourcing unwatched while the engine cannot start. After ``max_restarts`` crashes in a
row (each within ``quick_s`` of its start) it switches the outputs off and gives up.
SIGINT/SIGTERM are passed on to the child (which stops safely, exit 130).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("cyclerflow.acquire")

#: exit codes of a child that ended on purpose (see :mod:`cyclerflow.acquire.cli`)
FINAL_CODES = frozenset({0, 1, 2, 130})

#: environment variable telling a restarted engine when the watchdog switched the
#: output off (Unix wall seconds), for the gap's charge estimate
OFF_AT_ENV = "CYCLERFLOW_WATCHDOG_OUTPUT_OFF_AT"


def supervise(
    argv: Sequence[str],
    *,
    outputs_off: Callable[[], None],
    last_sample_wall: Callable[[], float],
    max_gap_s: float = 10.0,
    max_restarts: int = 10,
    quick_s: float = 5.0,
    say: Callable[[str], None] = lambda line: None,
) -> int:
    """Run ``argv`` (an engine command) until it ends on purpose; returns its exit code.

    ``outputs_off()`` switches every channel's output off through its driver;
    ``last_sample_wall()`` is the Unix time of the newest stored sample (NaN: none).
    """
    crashes = 0
    off_at: float | None = None
    while True:
        started = time.monotonic()
        env = dict(os.environ)
        if off_at is not None:  # this child resumes a gap the watchdog cut short
            env[OFF_AT_ENV] = f"{off_at:.6f}"
        child = subprocess.Popen(list(argv), env=env)
        off_at = None
        say(f"watchdog: engine running (pid {child.pid})")
        code = _wait(child)
        if code in FINAL_CODES:
            return code
        crashes = crashes + 1 if time.monotonic() - started < quick_s else 1
        gap = time.time() - last_sample_wall()
        say(f"watchdog: engine died ({_describe(code)}); {gap:.3g} s since the last sample")
        if crashes > max_restarts:
            _off(outputs_off, say)
            say(f"watchdog: {crashes} quick crashes in a row; outputs off, giving up")
            return 1
        if gap > max_gap_s and _off(outputs_off, say):
            off_at = time.time()


def _off(outputs_off: Callable[[], None], say: Callable[[str], None]) -> bool:
    try:
        outputs_off()
    except Exception as err:  # the restart goes ahead: the engine switches off first too
        say(f"watchdog: could not switch the outputs off: {type(err).__name__}: {err}")
        return False
    say("watchdog: outputs switched off before the restart")
    return True


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _wait(child: subprocess.Popen) -> int:
    """Wait for the child, passing SIGINT/SIGTERM on to it (main thread only)."""

    def forward(signum, frame):  # noqa: ARG001
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    old = {}
    if _in_main_thread():
        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def engine_argv(argv: Sequence[str]) -> list[str]:
    """The child command: this interpreter running ``cyclerflow acquire`` with ``argv``
    (the command-line arguments after ``acquire``, without the watchdog options)."""
    return [sys.executable, "-m", "cyclerflow.acquire.cli", "acquire", *argv]
