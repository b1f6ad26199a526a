"""What the TCP cycler drivers share: the socket resource string and the request/reply link.

The Arbin CTI and Neware BTS servers (and, later, Maccor MacNet) are plain TCP servers on
the lab network. A driver names one as ``TCPIP0::HOST::PORT::SOCKET`` and talks to it
through one :class:`TcpLink`: send a request, read until the buffer holds one complete
reply (how a reply ends is the vendor's framing, passed in as ``split``), keep what
follows for the next exchange. Every socket failure becomes one ``ConnectionLost``
naming the vendor, so the acquisition engine can reconnect and resume.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from cyclerflow.acquire.instrument import ConnectionLost

# buffer -> (reply, rest of the buffer), or None while the reply is incomplete
Splitter = Callable[[bytes], "tuple[Any, bytes] | None"]


def socket_address(resource: str, default_port: int | None = None) -> tuple[str, int] | None:
    """``TCPIP0::HOST::PORT::SOCKET`` -> (host, port); None when it is not that form.

    With ``default_port``, ``TCPIP0::HOST::SOCKET`` (no port) is accepted too.
    """
    parts = resource.split("::")
    if not parts[0].upper().startswith("TCPIP") or parts[-1].upper() != "SOCKET":
        return None
    if len(parts) == 4:
        try:
            return parts[1], int(parts[2])
        except ValueError:
            return None
    if len(parts) == 3 and default_port is not None:
        return parts[1], default_port
    return None


class TcpLink:
    """One TCP connection to a cycler server: framed request -> framed reply.

    ``vendor`` prefixes every error message; ``recv_bytes`` is the read size;
    ``timeout_s`` (seconds) bounds the connect and each wait for reply bytes.
    """

    def __init__(
        self, vendor: str, host: str, port: int, timeout_s: float = 10.0, recv_bytes: int = 1 << 16
    ):
        self.vendor, self.recv_bytes = vendor, recv_bytes
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._sock: socket.socket | None = None
        self._buf = b""

    def open(self) -> None:
        self.close()
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as err:
            raise ConnectionLost(
                f"{self.vendor}: cannot connect to {self.host}:{self.port}: {err}"
            ) from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def transact(self, request: bytes, split: Splitter) -> Any:
        """Send ``request``; read until ``split`` finds a whole reply in the buffer; return it."""
        if self._sock is None:
            raise ConnectionLost(f"{self.vendor}: not connected")
        try:
            self._sock.sendall(request)
            while True:
                got = split(self._buf)
                if got is not None:
                    reply, self._buf = got
                    return reply
                chunk = self._sock.recv(self.recv_bytes)
                if not chunk:
                    raise ConnectionLost(f"{self.vendor}: connection lost (closed by the server)")
                self._buf += chunk
        except TimeoutError:
            self.close()
            raise ConnectionLost(f"{self.vendor}: no reply within {self.timeout_s:g} s") from None
        except OSError as err:
            self.close()
            raise ConnectionLost(f"{self.vendor}: connection lost ({err})") from None
