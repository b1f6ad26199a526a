"""Simulated Arbin CTI server: the binary CTI frames over simulated cycler channels.

``cyclerflow simulate arbin-cti --port N --channels 8 --speedup X --schedule NAME=recipe.yaml``
(or ``python -m cyclerflow.drivers.sim.arbin_cti ...``). Channels 0..channels*units-1 on
the wire; each runs the stored schedule assigned to it on its own cell model
(:class:`~.cycler_channel.SimChannel`). A real MITS PC stores schedules made in its
Schedule Editor; here a stored schedule is given as a cyclerflow recipe, translated to
the shared simulated schedule (the same numbering as ``arbin_cti.schedule_steps``).

Same framing and checksum as the driver. A frame with a wrong header or checksum is not
answered: the server drops it and closes the connection (the framing cannot be trusted
after it), and counts it in ``rejected``. The login reply carries, after its documented
fields, ``SIMCLOCK`` + the speed-up (float64), which a real server never sends.

Faults (``--fault``): ``drop:after=N``, ``stall:delay=S[,every=K]``, ``garble:after=N``, ``alarm:channel=C,at=T``,
``refuse:channel=C`` (C 1-based; see :class:`~.cycler_channel.CyclerFaults`).
"""

from __future__ import annotations

import socket
import struct

from cyclerflow.errors import InputError

from .. import arbin_cti as cti
from .cycler_channel import (
    CyclerFaults,
    Schedule,
    SimChannel,
    cycler_arguments,
    simulated_channels,
)
from .neware_bts import parse_step_file
from .server import SimClock, model_for
from .tcpserve import TcpService

SERIAL = "SIM-ARBIN-0001"
VERSION = 8


def schedule_from_recipe(recipe) -> Schedule:
    """A recipe (C-rates resolved) -> the simulated schedule a stored schedule stands for."""
    from cyclerflow.acquire.schedule_neware import to_step_file

    return parse_step_file(to_step_file(recipe).xml)


def load_schedules(specs, nominal_capacity_ah: float) -> dict[str, Schedule]:
    """``NAME=recipe.yaml`` specs -> stored schedules."""
    from cyclerflow.acquire.recipe import load_recipe

    out = {}
    for spec in specs:
        name, eq, path = spec.partition("=")
        if not eq or not name or not path:
            raise InputError(f"--schedule {spec!r}: expected NAME=recipe.yaml")
        out[name] = schedule_from_recipe(load_recipe(path, nominal_capacity_ah=nominal_capacity_ah))
    return out


class ArbinSim(TcpService):
    """A running simulated CTI server (``start()``/``stop()``; ``channel(c)``, c 1-based)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        channels: int = 8,
        units: int = 1,
        speedup: float = 1.0,
        cell=None,
        faults=(),
        seed: int = 0,
        schedules: dict[str, Schedule] | None = None,
    ):
        if channels < 1 or units < 1:
            raise InputError("--channels and --units must be >= 1")
        self.clock = SimClock(speedup)
        self.faults = CyclerFaults.of(faults)
        self.schedules = dict(schedules or {})
        self.channels = simulated_channels(channels * units, lambda n: cell, seed, self.faults)
        self.assigned: dict[int, str] = {}
        self.test_names: dict[int, str] = {}
        self.rejected = 0
        super().__init__(host, port, backlog=16, name="arbin-sim")

    def channel(self, number: int) -> SimChannel:
        """Channel ``number`` (1-based, as in station files)."""
        return self.channels[number - 1]

    # serving -----------------------------------------------------------------------------
    def _next_frame(self, conn: socket.socket, buf: bytes) -> tuple[int, bytes, bytes] | None:
        """The next request (None: connection over, or a bad frame was refused)."""
        while not self._stop.is_set():
            try:
                got = cti.split_frame(buf)
            except cti.ChecksumError:
                self.rejected += 1
                return None
            if got is not None:
                return got
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return None
            buf += data
        return None

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buf, n = b"", 0
        while True:
            got = self._next_frame(conn, buf)
            if got is None:
                return
            command, payload, buf = got
            n += 1
            out = self.faults.deliver(n, self.handle(command, payload))
            if out is None:
                return
            if out:
                conn.sendall(out)

    # commands ------------------------------------------------------------------------------
    def handle(self, command: int, payload: bytes) -> bytes:
        """One request -> one framed reply (empty: unknown command, not answered)."""
        handler = {
            cti.LOGIN: self._login,
            cti.CHANNEL_INFO: self._channel_info,
            cti.ASSIGN_SCHEDULE: self._assign,
            cti.START_SCHEDULE: self._start,
            cti.STOP_SCHEDULE: self._stop_schedule,
        }.get(command)
        return b"" if handler is None else handler(payload)

    def _login(self, payload: bytes) -> bytes:
        user, _ = cti.LOGIN_REQ.unpack_from(payload)
        result = 1 if user.rstrip(b"\0") else 2
        body = cti.LOGIN_REP.pack(
            result, bytes([127, 0, 0, 1]), SERIAL.encode("ascii"), b"cyclerflow simulator",
            "simulated MITS".encode("utf-16-le"), b"", b"", b"", b"", b"",
            0, VERSION, 1, len(self.channels), 1, 0,
        )  # fmt: skip
        clock = cti.SIM_CLOCK_TAG + struct.pack("<d", self.clock.speedup)
        return cti.frame(cti.LOGIN_REPLY, body + clock)

    def _channel_info(self, payload: bytes) -> bytes:
        chan, selection, _, _ = cti.INFO_REQ.unpack_from(payload)
        if selection == 1:
            wanted = [chan] if 0 <= chan < len(self.channels) else []
        else:
            wanted = list(range(len(self.channels)))
        blocks = b"".join(self._channel_block(k) for k in wanted)
        return cti.frame(cti.CHANNEL_INFO_REPLY, struct.pack("<I", len(wanted)) + blocks)

    def _values(
        self, ch: SimChannel
    ) -> tuple[int, int, int, float, float, float, float, float, float]:
        """(status, step, cycle, test time, step time, V, I, step Ah, step Wh) now."""
        if ch.state == "working":
            m, s = ch.model, ch.step
            code = 4 if s.kind == "rest" else (2 if s.current_a > 0 else 3)
            cap = abs(m.true_charge_ah - ch._q0)
            st = m.time_s - ch._step_t0
            return (
                code,
                s.step_id,
                ch.cycle_id,
                ch.test_time,
                st,
                m.voltage_v,
                m.current_a,
                cap,
                ch.energy_wh,
            )
        code = {"finish": 15 if ch.test_id else 0, "stop": 0, "protect": 8}.get(ch.state, 0)
        if not ch.records:
            return code, 0, 0, 0.0, 0.0, ch.model.voltage_v, 0.0, 0.0, 0.0
        _, step, cyc, st, tt, v, i, cap, eng = ch.records[-1]
        return code, step, cyc, tt, st, v, i, cap, eng

    def _channel_block(self, k: int) -> bytes:
        ch = self.channels[k]
        with ch.lock:
            ch.advance_to(self.clock.now())
            code, step, cyc, tt, st, v, i, cap, eng = self._values(ch)
            charging = ch.test_id and ch.step.current_a > 0 if ch.records else False
            name = self.test_names.get(k, "")
        qc, qd = (cap, 0.0) if charging else (0.0, cap)
        ec, ed = (eng, 0.0) if charging else (0.0, eng)
        fmt = f"Step {step} Cycle {cyc}".encode("ascii") if name else b""
        return cti.INFO_CHANNEL.pack(
            k, code, 0, self.assigned.get(k, "").encode("utf-16-le"),
            name.encode("utf-16-le"), b"", fmt, ch.barcode.encode("utf-16-le"), b"", b"", 0,
            tt, st, v, i, v * i, qc, qd, ec, ed, *([0.0] * 5), *([0] * 14),
        )  # fmt: skip

    def _result(self, reply: int, chan: int, code: int) -> bytes:
        return cti.frame(reply, cti.RESULT_REP.pack(chan & 0xFFFFFFFF, code, b""))

    def _assign(self, payload: bytes) -> bytes:
        f = cti.ASSIGN_REQ.unpack_from(payload)
        chan, name, barcode = f[0], cti._text(f[2]), cti._text(f[4])
        if not 0 <= chan < len(self.channels):
            code = 16
        elif not name:
            code = 18
        elif name not in self.schedules:
            code = 19
        elif self.channels[chan].state == "working":
            code = 20
        else:
            code = 0
            self.assigned[chan] = name
            self.channels[chan].barcode = barcode
        return self._result(cti.ASSIGN_SCHEDULE_REPLY, chan, code)

    def _start(self, payload: bytes) -> bytes:
        raw, count, chan = cti.START_REQ.unpack_from(payload)
        name = cti._text(raw)
        if count < 1:
            code = 31
        elif not 0 <= chan < len(self.channels):
            code = 16
        elif not name:
            code = 35
        elif chan not in self.assigned:
            code = 21
        else:
            ch = self.channels[chan]
            sched = self.schedules[self.assigned[chan]]
            code = 0 if ch.start(sched, ch.barcode, self.clock.now()) else 18
            if not code:
                self.test_names[chan] = name
        return self._result(cti.START_SCHEDULE_REPLY, chan, code)

    def _stop_schedule(self, payload: bytes) -> bytes:
        chan, _, _ = cti.STOP_REQ.unpack_from(payload)
        if not 0 <= chan < len(self.channels):
            return self._result(cti.STOP_SCHEDULE_REPLY, chan, 16)
        self.channels[chan].stop(self.clock.now())  # stopping an idle channel is no error
        return self._result(cti.STOP_SCHEDULE_REPLY, chan, 0)


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    channels: int = 8,
    units: int = 1,
    speedup: float = 1.0,
    cell=None,
    faults=(),
    seed: int = 0,
    schedules=(),
    out=None,
) -> None:
    """Blocking: run a simulated CTI server until interrupted (prints where it listens)."""
    nominal = model_for(cell, seed).params.capacity_ah
    sim = ArbinSim(
        host=host, port=port, channels=channels, units=units, speedup=speedup, cell=cell,
        faults=faults, seed=seed, schedules=load_schedules(schedules, nominal),
    )  # fmt: skip
    sim.serve_announced(
        f"arbin-cti simulator listening on {sim.host}:{sim.port} resource={sim.resource} "
        f"channels={len(sim.channels)} schedules={','.join(sim.schedules) or '-'}",
        out,
    )


def main(argv: list[str] | None = None) -> int:
    ap = cycler_arguments("Simulated Arbin CTI server")
    ap.add_argument("--schedule", action="append", default=[], help="NAME=recipe.yaml")
    a = ap.parse_args(argv)
    serve(
        host=a.host, port=a.port, channels=a.channels, units=a.units, speedup=a.speedup,
        faults=tuple(a.fault), schedules=tuple(a.schedule),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
