"""Simulated Maccor MacNet server: JSON-RPC over TCP on simulated cycler channels.

``cyclerflow simulate maccor-macnet --port N --channels 8 --speedup X`` (or ``python -m
cyclerflow.drivers.sim.maccor_macnet ...``). Channels 1..channels x units (numbered on);
each runs a stored procedure on its own cell model. Stored procedures are recipe YAML
files ``NAME.yaml`` in the procedure folder (``--procdir``, default ``./Procedur``, the
simulator's ``C:\\Maccor\\Procedur``), compiled to the procedure's steps as the driver
maps them, C-rates against the channel's cell. Requests are read as bare JSON objects
(as the public client sends them), replies end with ``\\r\\n``; the general-information
reply carries ``SimClock`` (the speed-up, a field a real server never sends).

The status reply gives the channel's state at the moment of the request (live readings
while a test runs, the last record once it ended); ``LastRecNum`` counts the records the
channel stored. Faults (``--fault``): ``drop:after=N``, ``stall:delay=S[,every=K]``,
``garble:after=N``, ``alarm:channel=C,at=T``, ``refuse:channel=C`` (see :class:`~.cycler_channel.CyclerFaults`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
from pathlib import Path

from cyclerflow.errors import InputError

from ..maccor_macnet import CLOCK_FIELD, procedure_steps, record_interval
from .cycler_channel import CyclerFaults, Schedule, SimChannel, SimStep
from .neware_bts import channel_cells
from .server import SimClock, model_for

TERMINATOR = b"\r\n"
STAT_OF_STATE = {"working": 2, "finish": 4, "stop": 0, "protect": 5}


def schedule_for(recipe) -> Schedule:
    """A recipe (a stored procedure's description) -> the simulated channel's schedule."""
    steps = tuple(
        SimStep(
            p.number,
            p.kind,
            p.type_name,
            current_a=p.current_a,
            voltage_v=p.voltage_v,
            stop_voltage_v=p.stop_voltage_v,
            stop_current_a=p.stop_current_a,
            time_s=p.time_s,
            capacity_ah=p.capacity_ah,
            loop_start=p.loop_start,
            loop_count=p.loop_count,
        )
        for p in procedure_steps(recipe)
    )
    lim = recipe.limits
    return Schedule(steps, record_interval(recipe), lim.voltage_max, lim.voltage_min)


def reply(result: dict, msg_id) -> bytes:
    obj = {"jsonrpc": "2.0", "result": result, "id": msg_id}
    return json.dumps(obj, separators=(",", ":")).encode() + TERMINATOR


def error_reply(code: int, message: str, msg_id) -> bytes:
    obj = {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": msg_id}
    return json.dumps(obj, separators=(",", ":")).encode() + TERMINATOR


def split_requests(buf: bytes) -> tuple[list[bytes], bytes]:
    """Complete JSON objects at the start of ``buf`` (whitespace between them allowed)
    and the rest; a byte that cannot begin an object is one bad request of its own."""
    dec, out = json.JSONDecoder(), []
    text = buf.decode("utf-8", errors="replace")
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            return out, b""
        try:
            _, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError:
            if text[pos] != "{" or len(text) - pos > 1 << 20:
                out.append(text[pos:].encode())  # garbage: answered with an error
                return out, b""
            return out, text[pos:].encode()
        out.append(text[pos:end].encode())
        pos = end


class MacNetSim:
    """A running simulated MacNet server (``start()``/``stop()``; ``channel(n)``)."""

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
        procedures: dict | None = None,
        procdir: str | Path | None = None,
    ):
        if channels < 1 or units < 1:
            raise InputError("--channels and --units must be >= 1")
        self.clock = SimClock(speedup)
        self.faults = faults if isinstance(faults, CyclerFaults) else CyclerFaults.parse(faults)
        self.procedures = dict(procedures or {})
        self.procdir = Path(procdir or os.environ.get("CYCLERFLOW_MACCOR_PROCDIR", "Procedur"))
        self.channels: dict[int, SimChannel] = {}
        cells = channel_cells(cell)  # one cell file, or a rack file: cells per channel
        for n in range(1, channels * units + 1):
            model = model_for(cells.get(n, cells.get(0)), seed + n)
            ch = SimChannel(model, n, alarm_at_s=self.faults.alarms.get(n))
            ch.refuse = n in self.faults.refuse
            self.channels[n] = ch
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((host, port))
        except OSError as err:
            self._listener.close()
            raise InputError(f"cannot listen on {host}:{port}: {err.strerror}") from None
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.host, self.port = self._listener.getsockname()[:2]
        self._threads: list[threading.Thread] = []

    @property
    def resource(self) -> str:
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def channel(self, n: int) -> SimChannel:
        return self.channels[n]

    # serving -----------------------------------------------------------------------------
    def start(self) -> MacNetSim:
        t = threading.Thread(target=self._accept, name=f"macnet-sim-{self.port}", daemon=True)
        self._threads.append(t)
        t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(2.0)
        self._listener.close()

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stop.is_set():
                time.sleep(0.2)
        finally:
            self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.add(conn)
            t = threading.Thread(target=self._session, args=(conn,), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buf, n = b"", 0
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                reqs, buf = split_requests(buf + data)
                for req in reqs:
                    n += 1
                    if not self._answer(conn, req, n):
                        return
        except OSError:
            pass
        finally:
            self._conns.discard(conn)
            conn.close()

    def _answer(self, conn: socket.socket, req: bytes, n: int) -> bool:
        out = self.faults.deliver(n, self.handle(req))
        if out is None:
            return False
        conn.sendall(out)
        return True

    # messages ------------------------------------------------------------------------------
    def handle(self, req: bytes) -> bytes:
        """One request object -> one reply (``\\r\\n``-terminated)."""
        try:
            obj = json.loads(req)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_reply(-32700, "parse error", None)
        p = obj.get("params") if isinstance(obj, dict) else None
        msg_id = obj.get("id") if isinstance(obj, dict) else None
        if obj.get("method") != "MacNet" or not isinstance(p, dict):
            return error_reply(-32600, "invalid request", msg_id)
        what = (p.get("FClass"), p.get("FNum"))
        handler = {
            (1, 2): self._general,
            (4, 7): self._status,
            (6, 2): self._start,
            (6, 5): self._reset,
        }.get(what)
        if handler is None:
            return error_reply(-32601, f"FClass/FNum {what} not simulated", msg_id)
        chan = p.get("Chan")
        head = {"FClass": what[0], "FNum": what[1], "Chan": chan}
        if what != (1, 2) and not (isinstance(chan, int) and chan + 1 in self.channels):
            return reply(head | {"Result": f"no channel {chan}"}, msg_id)
        return reply(head | handler(p), msg_id)

    def _general(self, p: dict) -> dict:
        return {
            "TestChannels": len(self.channels),
            "SystemType": 0,
            CLOCK_FIELD: self.clock.speedup,
        }

    def _status(self, p: dict) -> dict:
        ch = self.channels[p["Chan"] + 1]
        with ch.lock:
            ch.advance_to(self.clock.now())
            return _readings(ch)

    def _start(self, p: dict) -> dict:
        ch = self.channels[p["Chan"] + 1]
        try:
            sched = self._procedure(str(p.get("ProcName", "")).strip(), ch)
        except (InputError, OSError) as err:
            return {"Result": f"procedure not found or unreadable: {err}"[:200]}
        ok = ch.start(sched, str(p.get("TestName", "")).strip(), self.clock.now())
        return {"Result": "OK" if ok else "channel not available"}

    def _reset(self, p: dict) -> dict:
        ch = self.channels[p["Chan"] + 1]
        with ch.lock:
            ch.stop(self.clock.now())
            if ch.state == "protect":
                ch.state = "stop"
        return {"Result": "OK"}

    def _procedure(self, name: str, ch: SimChannel) -> Schedule:
        from cyclerflow.acquire.recipe import load_recipe

        recipe = self.procedures.get(name)
        if recipe is None:
            recipe = load_recipe(
                self.procdir / f"{name}.yaml", nominal_capacity_ah=ch.model.params.capacity_ah
            )
        return schedule_for(recipe)


def _readings(ch: SimChannel) -> dict:
    """The (4, 7) fields of a channel (live while working, else its last record)."""
    stat = STAT_OF_STATE.get(ch.state, 0) if ch.test_id else 0
    if ch.state == "working":
        m = ch.model
        live = (
            ch.step.step_id,
            ch.cycle_id,
            m.time_s - ch._step_t0,
            ch.test_time,
            m.voltage_v,
            m.current_a,
            abs(m.true_charge_ah - ch._q0),
            ch.energy_wh,
        )
    elif ch.records:
        live = ch.records[-1][1:]
    else:
        live = (0, 0, 0.0, 0.0, ch.model.voltage_v, 0.0, 0.0, 0.0)
    step, cycle, st, tt, v, i, cap, eng = live
    return {
        "RF1": 0, "RF2": 0, "Stat": stat, "LastRecNum": len(ch.records), "Cycle": cycle,
        "Step": step, "TestTime": tt, "StepTime": st, "Capacity": cap, "Energy": eng,
        "Current": i, "Voltage": v,
        "TesterTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
    }  # fmt: skip


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
    procdir=None,
    out=None,
) -> None:
    """Blocking: run a simulated MacNet server until interrupted (prints where it listens)."""
    import sys

    sim = MacNetSim(
        host=host,
        port=port,
        channels=channels,
        units=units,
        speedup=speedup,
        cell=cell,
        faults=faults,
        seed=seed,
        procdir=procdir,
    )
    print(
        f"maccor-macnet simulator listening on {sim.host}:{sim.port} resource={sim.resource} "
        f"channels={len(sim.channels)} procedures={sim.procdir.resolve()}",
        file=out or sys.stdout,
        flush=True,
    )
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Simulated Maccor MacNet server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--units", type=int, default=1)
    ap.add_argument("--speedup", type=float, default=1.0)
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--procdir", default=None, help="folder of stored procedures NAME.yaml")
    a = ap.parse_args(argv)
    serve(
        host=a.host,
        port=a.port,
        channels=a.channels,
        units=a.units,
        speedup=a.speedup,
        faults=tuple(a.fault),
        procdir=a.procdir,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
