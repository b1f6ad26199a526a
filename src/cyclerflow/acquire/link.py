"""The link to one instrument channel: calls with reconnect, and a safe switch-off.

Errors are told apart by their type, never by their message: a lost link is a
:class:`~cyclerflow.acquire.instrument.ConnectionLost` (what the drivers' transports
raise), a built-in ``ConnectionError``/``TimeoutError``/``EOFError``/``OSError``, or
an I/O error type of the serial/VISA libraries; it is retried with back-off. Any other
:class:`~cyclerflow.errors.InstrumentError` (garbled reply, error queue) is a fault:
the engine switches the output off and stops the channel.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cyclerflow.acquire.clock import Clock
from cyclerflow.acquire.instrument import ConnectionLost, SourceMeterChannel
from cyclerflow.errors import InstrumentError, SafetyStop

log = logging.getLogger("cyclerflow.acquire")

#: I/O error types of the serial and VISA libraries (matched by class name so that the
#: core does not import them): a port or session that went away
_LINK_ERROR_TYPES = frozenset({"SerialException", "PortNotOpenError", "VisaIOError"})


class Stopped(Exception):
    """The stop flag was set (Ctrl-C / SIGTERM)."""


class InstrumentFault(InstrumentError):
    """The instrument reported errors in its queue, or sent a reply that makes no sense."""


def is_connection_error(err: BaseException) -> bool:
    """Errors that mean the link dropped (retry with back-off) rather than a bad reply.

    By type only: :class:`ConnectionLost`, ``ConnectionError``, ``EOFError``,
    ``TimeoutError``, the serial/VISA libraries' I/O errors and other ``OSError`` (not
    ``FileNotFoundError``). Any other :class:`InstrumentError` is a fault.
    """
    if isinstance(err, (ConnectionLost, ConnectionError, EOFError, TimeoutError)):
        return True
    if isinstance(err, InstrumentError):
        return False
    if {c.__name__ for c in type(err).__mro__} & _LINK_ERROR_TYPES:
        return True
    return isinstance(err, OSError) and not isinstance(err, FileNotFoundError)


@dataclass(frozen=True)
class ReconnectPolicy:
    """Reconnect attempts after a lost link: wall-clock delays ``backoff * 2**k``, capped."""

    attempts: int = 5
    backoff_s: float = 0.5
    max_delay_s: float = 10.0

    def delays(self) -> list[float]:
        return [min(self.max_delay_s, self.backoff_s * 2**k) for k in range(self.attempts)]


#: ``note(kind, message)``: write an event into the cell file (rows pushed first)
Note = Callable[[str, str], None]


class Link:
    """Instrument calls for one channel: :meth:`io` reconnects on a lost link and
    re-applies the last source command (:attr:`source`); :meth:`safe_off` switches the
    output off whatever state the link is in."""

    def __init__(
        self,
        channel: SourceMeterChannel,
        clock: Clock,
        policy: ReconnectPolicy,
        note: Note,
        name: str,
    ):
        self.ch = channel
        self.clock = clock
        self.policy = policy
        self.note = note
        self.name = name
        #: the source command in force (re-sent after a reconnect); None: output off
        self.source: Callable[[], object] | None = None

    def io(self, fn: Callable[[], object]) -> object:
        """Call ``fn``; on a lost link, reconnect with back-off, re-apply the source, retry once."""
        try:
            return fn()
        except (InstrumentError, SafetyStop, Stopped) as err:
            if not is_connection_error(err):
                raise
            self.reconnect(err)
        except Exception as err:
            if not is_connection_error(err):
                raise InstrumentFault(f"{type(err).__name__}: {err}") from err
            self.reconnect(err)
        try:
            return fn()
        except Exception as err:
            if is_connection_error(err):
                raise ConnectionLost(f"link lost again right after reconnecting: {err}") from err
            if isinstance(err, InstrumentError):
                raise
            raise InstrumentFault(f"{type(err).__name__}: {err}") from err

    def reconnect(self, err: BaseException) -> None:
        """Close, connect and re-apply the source with back-off; :class:`ConnectionLost`
        when every attempt failed."""
        self.note("disconnect", f"link lost: {type(err).__name__}: {err}")
        log.warning("%s: link lost (%s); reconnecting", self.name, err)
        last: BaseException = err
        for k, delay in enumerate(self.policy.delays(), start=1):
            if not self.clock.wall_sleep(delay):
                raise Stopped()
            try:
                self._reopen()
                if self.source is not None:
                    self.source()
                else:
                    self.ch.output_off()
            except Exception as e:  # keep trying
                last = e
                continue
            self.note("note", f"reconnected after {k} attempt(s)")
            return
        raise ConnectionLost(
            f"link lost ({type(err).__name__}: {err}); not restored after "
            f"{self.policy.attempts} attempts (last: {last})"
        )

    def _reopen(self) -> None:
        with contextlib.suppress(Exception):
            self.ch.close()
        self.ch.connect()

    def safe_off(self) -> None:
        """Output off, whatever state the link is in (one reconnect attempt if needed)."""
        self.source = None
        try:
            self.ch.output_off()
            return
        except Exception as err:
            first = err
        try:
            self._reopen()
            self.ch.output_off()
        except Exception as err:
            log.error("%s: could not switch the output off (%s; %s)", self.name, first, err)
            with contextlib.suppress(Exception):
                self.note("note", f"could not confirm output off: {first}")
