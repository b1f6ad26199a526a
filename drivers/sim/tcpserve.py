"""The TCP plumbing every simulator shares: listen, accept, one thread per connection, stop.

A simulator subclasses :class:`TcpService`, calls ``super().__init__(host, port, ...)``
once its own state is ready, and implements :meth:`TcpService._session` (serve one
connection until it ends; the base closes the socket afterwards). The base gives it
``host``/``port``/``resource``, ``start()`` (returns self), ``stop()``, ``serve_forever()``,
``serve_announced()`` (what ``cyclerflow simulate`` runs) and use as a context manager. It knows nothing about the instrument's bytes: line-based
SCPI (:class:`~.server.SimServer`), the Arbin CTI binary frames and the Neware BTS XML
messages all sit on top of it.

Sockets: the listener polls with a 0.1 s timeout so that ``stop()`` is seen promptly;
accepted sockets get ``TCP_NODELAY`` (replies are small and latency matters). ``stop()``
shuts every open connection down (a session blocked in ``recv`` wakes up with an empty
read or an ``OSError``), joins the threads (2 s each at most) and closes the listener.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

from cyclerflow.errors import InputError


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one); InputError when taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(backlog)
    sock.settimeout(0.1)
    return sock


class TcpService:
    """A loopback TCP server: one accept thread, one daemon thread per connection.

    Subclasses implement :meth:`_session`. ``name`` prefixes the accept thread's name
    (``name-port``), which helps when reading a thread dump of a test run.
    """

    def __init__(self, host: str, port: int, *, backlog: int = 16, name: str = "sim"):
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = listen(host, port, backlog)
        self.host, self.port = self._listener.getsockname()[:2]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{name}-{self.port}", daemon=True
        )

    @property
    def resource(self) -> str:
        """The VISA-style resource string a driver opens (``TCPIP0::host::port::SOCKET``)."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def start(self):
        """Start accepting connections (once; a stopped service stays stopped). Returns self."""
        if not self._accept_thread.is_alive() and not self._stop.is_set():
            self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and all connections; join the threads."""
        self._stop.set()
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._accept_thread.is_alive():
            self._accept_thread.join(2.0)
        for t in self._threads:
            t.join(2.0)
        self._listener.close()

    def serve_forever(self) -> None:
        """Block until interrupted (used by ``cyclerflow simulate``)."""
        self.start()
        try:
            while not self._stop.is_set():
                time.sleep(0.2)
        finally:
            self.stop()

    def serve_announced(self, text: str, out=None) -> None:
        """Print ``text`` (where it listens) to ``out`` (stdout), then serve until Ctrl-C."""
        print(text, file=out or sys.stdout, flush=True)
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # subclass hook -------------------------------------------------------------------
    def _session(self, conn: socket.socket) -> None:
        """Serve one connection until it ends or :attr:`_stop` is set."""
        raise NotImplementedError

    # internals -----------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.add(conn)
            t = threading.Thread(target=self._serve_conn, args=(conn,), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _serve_conn(self, conn: socket.socket) -> None:
        try:
            self._session(conn)
        except OSError:
            pass  # the peer went away (or stop() shut the socket down)
        finally:
            self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass
