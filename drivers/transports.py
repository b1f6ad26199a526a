"""Byte transports to instruments: pyvisa (GPIB, USB-TMC, TCPIP INSTR/SOCKET via pyvisa-py)
and pyserial (serial ports, ``socket://host:port`` and ptys).

A transport moves lines of text. Every failure is an :class:`InstrumentError` whose
message names the instrument (``name`` and resource) and the command that was being
sent or answered, e.g. ``keithley2450 (TCPIP0::10.0.0.5::5025::SOCKET): no reply to
':READ? "defbuffer1", READ, SOUR, REL' within 2 s``.

:class:`ScriptedTransport` is the byte-level test double: it checks every write against
an expected list and plays the recorded replies (no mocks of the driver itself).
"""

from __future__ import annotations

import re
import socket
import time
from collections import deque
from typing import Protocol

from cyclerflow.errors import InstrumentError

try:  # a lost link is retried by the engine; other instrument errors stop the channel
    from cyclerflow.acquire.instrument import ConnectionLost
except ImportError:  # pragma: no cover - older core without the subclass
    ConnectionLost = InstrumentError  # type: ignore[misc,assignment]


class Transport(Protocol):
    """A line-oriented link to one instrument."""

    name: str
    resource: str
    timeout_s: float

    def open(self) -> None: ...
    def close(self) -> None: ...
    def write(self, command: str) -> None: ...
    def read_line(self, command: str = "", timeout_s: float | None = None) -> str: ...
    def query(self, command: str, timeout_s: float | None = None) -> str: ...
    def read_available(self) -> list[str]: ...


class _Base:
    name: str
    resource: str
    timeout_s: float

    def label(self) -> str:
        return f"{self.name} ({self.resource})"

    def fail(self, what: str, command: str = "") -> InstrumentError:
        """An error naming instrument, resource and command; a :class:`ConnectionLost`
        for a link that is gone (cannot open, not connected, connection lost, timeout)."""
        cmd = f" {command!r}:" if command else ""
        lost = what.startswith(
            ("cannot open", "not connected", "connection lost", "no reply within")
        )
        return (ConnectionLost if lost else InstrumentError)(f"{self.label()}:{cmd} {what}")

    def query(self, command: str, timeout_s: float | None = None) -> str:
        self.write(command)
        return self.read_line(command, timeout_s)  # type: ignore[attr-defined]


_SERIAL_PREFIXES = ("socket://", "loop://", "rfc2217://", "spy://", "/dev/", "COM", "hwgrep://")
_ASRL = re.compile(r"^ASRL(?P<dev>.+?)(::INSTR)?$", re.IGNORECASE)


def is_serial_resource(resource: str) -> bool:
    """True for pyserial URLs/devices and VISA ``ASRL<device>::INSTR`` names."""
    return resource.startswith(_SERIAL_PREFIXES) or bool(_ASRL.match(resource))


def serial_port_of(resource: str) -> str:
    """``ASRL/dev/ttyUSB0::INSTR`` -> ``/dev/ttyUSB0``; ``ASRL3::INSTR`` -> ``COM3``; URLs unchanged."""
    m = _ASRL.match(resource)
    if not m:
        return resource
    dev = m.group("dev")
    return f"COM{dev}" if dev.isdigit() else dev


class SerialTransport(_Base):
    """pyserial link (serial device, pty path, or URL such as ``socket://127.0.0.1:5100``)."""

    def __init__(
        self,
        resource: str,
        *,
        name: str,
        timeout_s: float = 2.0,
        baudrate: int = 230400,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        write_termination: str = "\n",
        read_termination: str = "\n",
        encoding: str = "ascii",
    ):
        self.resource, self.name, self.timeout_s = resource, name, timeout_s
        self.settings = dict(baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)
        self.write_termination = write_termination
        self.read_termination = read_termination.encode(encoding)
        self.encoding = encoding
        self._port = None
        self._buf = bytearray()

    def open(self) -> None:
        import serial

        try:
            self._port = serial.serial_for_url(
                serial_port_of(self.resource),
                timeout=0.05,
                write_timeout=self.timeout_s,
                **self.settings,
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise self.fail(f"cannot open: {err}") from None
        sock = getattr(self._port, "_socket", None)  # socket:// : no Nagle delay on short writes
        if isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._buf.clear()

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None

    def _require(self, command: str):
        if self._port is None:
            raise self.fail("not connected", command)
        return self._port

    def write(self, command: str) -> None:
        import serial

        port = self._require(command)
        try:
            port.write((command + self.write_termination).encode(self.encoding))
            port.flush()
        except (serial.SerialException, OSError) as err:
            raise self.fail(f"connection lost while sending ({err})", command) from None

    def _read_some(self, port, wait: float) -> bytes:
        """What is buffered now (one non-blocking read); else wait up to ``wait`` s for a byte.

        (pyserial's ``socket://`` cannot count waiting bytes, so for URLs a zero-timeout
        bulk read is used; real ports and ptys report ``in_waiting`` and keep their
        settings - reconfiguring a tty on every read is slow and some drivers refuse it.)"""
        if "://" in self.resource:
            port.timeout = 0
            data = port.read(65536)
            if not data and wait > 0:
                port.timeout = wait
                data = port.read(1)
            return data
        n = port.in_waiting
        if n:
            return port.read(n)
        return port.read(1) if wait > 0 else b""  # the port's own 50 ms timeout

    def _fill(self, command: str, deadline: float | None) -> bool:
        """Read until a full line is buffered or ``deadline`` (None: do not wait)."""
        import serial

        port = self._require(command)
        while self.read_termination not in self._buf:
            wait = 0.0 if deadline is None else min(0.05, max(0.0, deadline - time.monotonic()))
            try:
                chunk = self._read_some(port, wait)
            except (serial.SerialException, OSError) as err:
                raise self.fail(f"connection lost while reading ({err})", command) from None
            if chunk:
                self._buf += chunk
                continue
            if deadline is None or time.monotonic() >= deadline:
                return False
        return True

    def read_line(self, command: str = "", timeout_s: float | None = None) -> str:
        t = self.timeout_s if timeout_s is None else timeout_s
        if not self._fill(command, time.monotonic() + t):
            raise self.fail(f"no reply within {t:g} s (timeout)", command)
        line, _, rest = bytes(self._buf).partition(self.read_termination)
        self._buf[:] = rest
        return self._decode(line, command)

    def read_available(self) -> list[str]:
        """All complete lines received so far, without waiting."""
        import serial

        port = self._require("")
        try:
            while chunk := self._read_some(port, 0.0):
                self._buf += chunk
        except (serial.SerialException, OSError) as err:
            raise self.fail(f"connection lost while reading ({err})") from None
        *lines, rest = bytes(self._buf).split(self.read_termination)
        self._buf[:] = rest
        return [self._decode(x, "") for x in lines]

    def _decode(self, raw: bytes, command: str) -> str:
        try:
            return raw.decode(self.encoding).rstrip("\r")
        except UnicodeDecodeError:
            raise self.fail(
                f"garbled reply {raw[:40]!r} (not {self.encoding} text)", command
            ) from None


class VisaTransport(_Base):
    """pyvisa link; pyvisa-py (``@py``) handles TCPIP INSTR/SOCKET, USB-TMC, GPIB and ASRL."""

    def __init__(
        self,
        resource: str,
        *,
        name: str,
        timeout_s: float = 2.0,
        write_termination: str = "\n",
        read_termination: str = "\n",
        backend: str = "@py",
        encoding: str = "ascii",
    ):
        self.resource, self.name, self.timeout_s = resource, name, timeout_s
        self.write_termination, self.read_termination = write_termination, read_termination
        self.backend, self.encoding = backend, encoding
        self._inst = None
        self._nodelay_pending = resource.upper().endswith("::SOCKET")

    def open(self) -> None:
        import pyvisa

        try:
            self._inst = pyvisa.ResourceManager(self.backend).open_resource(
                self.resource,
                write_termination=self.write_termination,
                read_termination=self.read_termination,
                timeout=int(self.timeout_s * 1000),
                encoding=self.encoding,
            )
        except (pyvisa.Error, OSError, ValueError) as err:
            raise self.fail(f"cannot open: {err}") from None

    def close(self) -> None:
        # only the session: pyvisa shares one ResourceManager per backend, and closing it
        # would close every other channel's session too
        if self._inst is not None:
            try:
                self._inst.close()
            except Exception:  # noqa: BLE001 - closing a dead link must not raise
                pass
            self._inst = None

    def _require(self, command: str):
        if self._inst is None:
            raise self.fail("not connected", command)
        return self._inst

    def write(self, command: str) -> None:
        import pyvisa

        inst = self._require(command)
        try:
            inst.write(command)
        except (pyvisa.Error, OSError, TypeError, ValueError) as err:
            raise self.fail(f"connection lost while sending ({err})", command) from None
        if self._nodelay_pending:
            # raw sockets: no Nagle delay (two short writes in a row would otherwise wait
            # for the instrument's delayed ACK, ~40 ms). pyvisa-py connects on first use.
            self._nodelay_pending = False
            try:  # pyvisa-py does not route VI_ATTR_TCPIP_NODELAY: set it on its socket
                sock = getattr(inst.visalib.sessions[inst.session], "interface", None)
                if isinstance(sock, socket.socket):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except Exception:  # noqa: BLE001 - an optimisation only
                pass

    def read_line(self, command: str = "", timeout_s: float | None = None) -> str:
        import pyvisa

        inst = self._require(command)
        t = self.timeout_s if timeout_s is None else timeout_s
        try:
            if t != self.timeout_s:
                inst.timeout = int(t * 1000)
            raw = inst.read_raw()
        except pyvisa.errors.VisaIOError as err:
            if err.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise self.fail(f"no reply within {t:g} s (timeout)", command) from None
            raise self.fail(f"connection lost while reading ({err.description})", command) from None
        except (pyvisa.Error, OSError, TypeError, ValueError) as err:
            raise self.fail(f"connection lost while reading ({err})", command) from None
        finally:
            if t != self.timeout_s and self._inst is not None:
                try:
                    inst.timeout = int(self.timeout_s * 1000)
                except Exception:  # noqa: BLE001 - the session is gone; reported above
                    pass
        try:
            text = raw.decode(self.encoding)
        except UnicodeDecodeError:
            raise self.fail(
                f"garbled reply {raw[:40]!r} (not {self.encoding} text)", command
            ) from None
        return text.rstrip("\r\n")

    def read_available(self) -> list[str]:
        lines = []
        while True:
            try:
                lines.append(self.read_line("", 0.001))
            except InstrumentError:
                return lines


def open_transport(resource: str, *, name: str, **options) -> Transport:
    """A (not yet opened) transport for ``resource``: pyserial for serial devices and
    ``socket://``/``ASRL`` resources, pyvisa otherwise. ``options`` go to the transport."""
    if is_serial_resource(resource):
        return SerialTransport(resource, name=name, **options)
    for key in ("baudrate", "bytesize", "parity", "stopbits"):
        options.pop(key, None)
    return VisaTransport(resource, name=name, **options)


class ScriptedTransport(_Base):
    """Test double: expects exact writes, in order, and plays the recorded replies.

    ``exchanges`` is a list of ``(write, reply)`` pairs; ``reply`` is None for a command
    without reply, a string for one line, or a list of strings for several lines.
    A write that differs from the next expected one raises AssertionError naming both.
    """

    def __init__(self, exchanges, *, name: str = "scripted", timeout_s: float = 0.01):
        self.name, self.resource, self.timeout_s = name, "scripted", timeout_s
        self.expected = deque(exchanges)
        self.written: list[str] = []
        self.pending: deque[str] = deque()
        self.is_open = False

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def write(self, command: str) -> None:
        self.written.append(command)
        if not self.expected:
            raise AssertionError(f"unexpected write {command!r} (no more exchanges expected)")
        want, reply = self.expected.popleft()
        if command != want:
            raise AssertionError(f"expected write {want!r}, got {command!r}")
        if reply is not None:
            self.pending.extend([reply] if isinstance(reply, str) else reply)

    def read_line(self, command: str = "", timeout_s: float | None = None) -> str:
        if not self.pending:
            raise self.fail(
                f"no reply within {self.timeout_s if timeout_s is None else timeout_s:g} s (timeout)",
                command,
            )
        return self.pending.popleft()

    def read_available(self) -> list[str]:
        out = list(self.pending)
        self.pending.clear()
        return out

    def assert_done(self) -> None:
        """All expected exchanges happened and every reply was read."""
        if self.expected:
            raise AssertionError(f"expected writes not sent: {[w for w, _ in self.expected]}")
        if self.pending:
            raise AssertionError(f"replies not read: {list(self.pending)}")
