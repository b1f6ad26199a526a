"""Loopback TCP server that serves one instrument protocol over a :class:`CellModel`.

One thread accepts connections, one thread per connection reads lines, hands them to
a protocol object (``handle(line) -> list[str]`` replies, ``tick() -> list[str]``
unsolicited output such as streamed data packets) and writes the replies through the
fault plan. See docs/simulators.md for the public API.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cyclerflow.errors import InputError

from .cell_model import CellModel
from .tcpserve import TcpService

GARBLE = "#@!\x7f%&?~;:,,E+E-"


class SimClock:
    """Simulated seconds = speedup x wall seconds since start + explicit advances.

    :meth:`hold` stops the clock while one program message is processed: a real
    instrument parses a line in microseconds, which at a speed-up of 1000 would
    otherwise become the simulator's fraction of a millisecond of Python = fractions of
    a simulated second between commands sent together (the wall time is caught up
    afterwards).
    """

    def __init__(self, speedup: float = 1.0):
        if speedup < 0:
            raise InputError(f"speed-up must be >= 0, got {speedup:g}")
        self.speedup = float(speedup)
        self._t0 = time.monotonic()
        self._offset = 0.0
        self._held: float | None = None
        self._holds = 0
        self._hold_lock = threading.Lock()

    def now(self) -> float:
        held = self._held
        if held is not None:
            return held
        return self.speedup * (time.monotonic() - self._t0) + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += float(seconds)
        if self._held is not None:
            self._held += float(seconds)

    @contextmanager
    def hold(self):
        """The simulated time stands still inside the block (re-entrant)."""
        with self._hold_lock:
            if self._holds == 0:
                self._held = self.now()
            self._holds += 1
        try:
            yield
        finally:
            with self._hold_lock:
                self._holds -= 1
                if self._holds == 0:
                    self._held = None

    def wall_seconds(self, simulated_s: float) -> float:
        """Wall time that ``simulated_s`` takes (0 when the clock only moves by advance)."""
        return simulated_s / self.speedup if self.speedup > 0 else 0.0


FAULT_KINDS = ("drop", "garble", "slow", "short", "error")


@dataclass
class Fault:
    kind: str
    params: dict = field(default_factory=dict)
    remaining: int | None = None  # None = permanent (spec); n = one-shot count


def parse_fault(spec: str) -> Fault:
    """``KIND[:key=value,...]`` -> :class:`Fault` (InputError naming the spec when malformed)."""
    kind, _, rest = spec.strip().partition(":")
    if kind not in FAULT_KINDS:
        raise InputError(
            f"unknown fault {kind!r} in {spec!r} (expected one of {', '.join(FAULT_KINDS)})"
        )
    params: dict = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise InputError(f"fault {spec!r}: expected key=value, got {item!r}")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            raise InputError(f"fault {spec!r}: {key} must be a number, got {value!r}") from None
    allowed = {
        "drop": {"after"},
        "garble": {"every", "p"},
        "slow": {"delay", "every"},
        "short": {"r", "at"},
        "error": set(),
    }[kind]
    unknown = set(params) - allowed
    if unknown:
        raise InputError(
            f"fault {spec!r}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})"
        )
    return Fault(kind, params)


class FaultPlan:
    """Faults from specs (permanent) and armed at run time (one-shot)."""

    def __init__(self, specs=(), seed: int = 0):
        self.faults = [parse_fault(s) if isinstance(s, str) else s for s in specs]
        for f in self.faults:
            if f.kind == "error":  # an error spec fires once, on the first command
                f.remaining = 1
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def arm(self, kind: str, count: int = 1, **params) -> None:
        """Arm a fault for the next ``count`` replies (``short``/``error`` act at once)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self.faults.append(Fault(kind, dict(params), remaining=count))

    def of_kind(self, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind]

    def take(self, kind: str) -> Fault | None:
        """Pop one armed one-shot fault of ``kind`` (for short/error)."""
        with self._lock:
            for f in self.faults:
                if f.kind == kind and f.remaining:
                    f.remaining -= 1
                    if f.remaining == 0:
                        self.faults.remove(f)
                    return f
        return None

    def decide(self, n_reply: int) -> tuple[str | None, float]:
        """Action for the ``n_reply``-th reply (1-based) of a connection: (None|drop|garble, delay)."""
        action, delay = None, 0.0
        with self._lock:
            for f in list(self.faults):
                p = f.params
                if f.remaining is not None:
                    if f.kind in ("short", "error"):
                        continue
                    hit = True
                    f.remaining -= 1
                    if f.remaining <= 0:
                        self.faults.remove(f)
                elif f.kind == "drop":
                    hit = n_reply == int(p.get("after", 1))
                elif f.kind == "garble":
                    every = int(p.get("every", 0))
                    hit = (every > 0 and n_reply % every == 0) or (
                        "p" in p and self._rng.random() < p["p"]
                    )
                elif f.kind == "slow":
                    every = int(p.get("every", 1))
                    hit = every > 0 and n_reply % every == 0
                else:
                    hit = False
                if not hit:
                    continue
                if f.kind == "slow":
                    delay += float(p.get("delay", 1.0))
                elif f.kind in ("drop", "garble") and action != "drop":
                    action = f.kind
        return action, delay


class SimServer(TcpService):
    """A running simulator. Create with :func:`cyclerflow.drivers.sim.start_simulator`."""

    def __init__(
        self,
        protocol_cls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: CellModel,
        speedup: float = 1.0,
        faults=(),
        seed: int = 0,
        resource_template: str = "TCPIP0::{host}::{port}::SOCKET",
    ):
        self.protocol_cls = protocol_cls
        self.model = model
        self.clock = SimClock(speedup)
        self.faults = faults if isinstance(faults, FaultPlan) else FaultPlan(faults, seed)
        self.lock = threading.RLock()
        self.resource_template = resource_template
        super().__init__(host, port, backlog=8, name="sim")
        for f in self.faults.of_kind("short"):
            self.model.set_short(f.params.get("r", 1e6), f.params.get("at", 0.0))
        self.state: dict = {}  # instrument state shared by connections (protocols keep it here)
        # the instrument's own program (a trigger model, a running script): called with the
        # simulated time by :meth:`sync` before the model is stepped, with or without a
        # connected host, so what the instrument does on its own happens in simulated time
        self.instrument_program = None

    # public -------------------------------------------------------------------------
    @property
    def resource(self) -> str:
        return self.resource_template.format(host=self.host, port=self.port)

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward by ``seconds`` (and step the model)."""
        self.clock.advance(seconds)
        self.sync()

    def sync(self) -> float:
        """Step the model to the simulated clock; returns the simulated time (s)."""
        with self.lock:
            short = self.faults.take("short")
            if short is not None:
                self.model.set_short(short.params.get("r", 1e6), short.params.get("at"))
            now = self.clock.now()
            program = self.instrument_program
            if program is not None:
                program(now)  # steps the model up to now through the instrument's program
            self.model.advance_to(now)
            return self.model.time_s

    # internals -------------------------------------------------------------------
    def _send(self, conn: socket.socket, proto, lines: list[str], counter: list[int]) -> bool:
        """Send reply lines through the fault plan; False when the connection is gone."""
        for line in lines:
            counter[0] += 1
            action, delay = self.faults.decide(counter[0])
            if delay:
                time.sleep(delay)
            if action == "drop":
                return False
            data = (GARBLE if action == "garble" else line) + proto.terminator
            try:
                conn.sendall(data.encode("latin-1"))
            except OSError:
                return False
        return True

    def _handle_lines(self, conn, proto, buf: bytes, counter: list[int]) -> tuple[bytes, bool]:
        """Handle every complete line in ``buf``; (rest of the buffer, connection ok)."""
        while b"\n" in buf:
            raw, _, buf = buf.partition(b"\n")
            line = raw.decode("latin-1").rstrip("\r")
            if self.faults.take("error") is not None:
                proto.inject_error()
            with self.clock.hold():  # one line = one simulated instant
                replies = proto.handle(line)
            if not self._send(conn, proto, replies, counter):
                return buf, False
        return buf, True

    def _session(self, conn: socket.socket) -> None:
        proto = self.protocol_cls(self)
        conn.settimeout(0.005)
        buf = b""
        counter = [0]  # replies sent on this connection (faults count per connection)
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data
                except TimeoutError:
                    pass
                buf, ok = self._handle_lines(conn, proto, buf, counter)
                if not (ok and self._send(conn, proto, proto.tick(), counter)):
                    break
        finally:
            proto.close()


class Protocol:
    """Base of a simulated instrument protocol (one instance per connection)."""

    terminator = "\n"

    def __init__(self, server: SimServer):
        self.server = server
        self.model = server.model

    def handle(self, line: str) -> list[str]:
        raise NotImplementedError

    def tick(self) -> list[str]:
        return []

    def inject_error(self) -> None:
        """Put an error in the instrument's error queue (fault ``error``)."""

    def close(self) -> None:
        """The connection ended."""


def model_for(cell, seed: int = 0) -> CellModel:
    """A CellModel from None (default cell), a metadata path, a CellMetadata or a CellModel."""
    if cell is None:
        return CellModel(seed=seed)
    if isinstance(cell, CellModel):
        return cell
    if isinstance(cell, (str, Path)):
        from cyclerflow.schema import load_metadata

        meta, _ = load_metadata(cell)
        return CellModel.from_metadata(meta, seed=seed)
    return CellModel.from_metadata(cell, seed=seed)
