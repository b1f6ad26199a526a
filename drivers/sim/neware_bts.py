"""Simulated Neware BTS 8.x server: the TCP/XML API over simulated cycler channels.

``cyclerflow simulate neware-bts --port N --channels 8 [--units 2] --speedup X`` (or
``python -m cyclerflow.drivers.sim.neware_bts ...``). Device type 27, device id 1,
sub-devices (units) 1..units with channels 1..channels each; every channel runs the step
file named in ``start`` on its own cell model and keeps its records for ``download``.
Replies are laid out as recorded from a real BTS 8.0 server (``\\r\\n`` line ends, the
misspelt ``donwload_resp``/``donwloadlog_resp``), and the connect reply carries a
``<sim-clock>`` element with the speed-up (a real server sends none).

Faults (``--fault``): ``drop:after=N``, ``stall:delay=S[,every=K]``, ``garble:after=N``, ``alarm:channel=C,at=T``,
``refuse:channel=C`` (see :class:`~.cycler_channel.CyclerFaults`).
"""

from __future__ import annotations

import socket
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError

from .cycler_channel import (
    CyclerFaults,
    Schedule,
    SimChannel,
    SimStep,
    cycler_arguments,
    simulated_channels,
)
from .server import SimClock
from .tcpserve import TcpService

TERMINATOR = b"\n\n#\r\n"
REPLY_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n'
DEVTYPE, DEVID = 27, 1
TYPE_NAMES = {1: "cc", 2: "dc", 3: "cccv", 19: "cccv_dc", 4: "rest"}


# --- step files ---------------------------------------------------------------------------


def _value(main: ET.Element | None, tag: str, scale: float) -> float | None:
    el = None if main is None else main.find(tag)
    return None if el is None else float(el.get("Value")) * scale


def _sim_step(el: ET.Element) -> SimStep:
    sid, kind_code = int(el.get("Step_ID")), int(el.get("Step_Type"))
    main = el.find("Limit/Main")
    common = {
        "time_s": _value(main, "Time", 1e-3),
        "capacity_ah": _value(main, "Cap", 1 / 3.6e6),
    }
    if kind_code == 4:
        return SimStep(sid, "rest", "rest", **common)
    if kind_code in (1, 2):
        sign = 1.0 if kind_code == 1 else -1.0
        return SimStep(
            sid,
            "cc",
            TYPE_NAMES[kind_code],
            current_a=sign * _value(main, "Curr", 1e-3),
            stop_voltage_v=_value(main, "Stop_Volt", 1e-4),
            **common,
        )
    if kind_code in (3, 19):
        sign = 1.0 if kind_code == 3 else -1.0
        return SimStep(
            sid,
            "cccv",
            TYPE_NAMES[kind_code],
            current_a=sign * _value(main, "Curr", 1e-3),
            voltage_v=_value(main, "Volt", 1e-4),
            stop_current_a=_value(main, "Stop_Curr", 1e-3),
            **common,
        )
    if kind_code == 5:
        other = el.find("Limit/Other")
        return SimStep(
            sid,
            "loop",
            "cycle",
            loop_start=int(_value(other, "Start_Step", 1)),
            loop_count=int(_value(other, "Cycle_Count", 1)),
        )
    if kind_code == 6:
        return SimStep(sid, "end", "end")
    raise ValueError(f"step {sid}: step type {kind_code} is not simulated")


def parse_step_file(text: str) -> Schedule:
    """A Neware step file -> the simulator's schedule (ValueError when unreadable)."""
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as err:
        raise ValueError(f"not a step file: {err}") from None
    info = root.find("config/Step_Info")
    if info is None:
        raise ValueError("no config/Step_Info")
    steps = tuple(_sim_step(el) for el in info)
    if not steps or steps[-1].kind != "end":
        raise ValueError("a step file ends with an end step")
    rec = root.find("config/Whole_Prt/Record/Main")
    record_s = _value(rec, "Time", 1e-3) or 10.0
    prot = root.find("config/Whole_Prt/Protect/Main/Volt")
    return Schedule(steps, record_s, _value(prot, "Upper", 1e-4), _value(prot, "Lower", 1e-4))


def channel_cells(cell) -> dict[int, object]:
    """``--cell``: None (default cell), one metadata file (every channel), or a YAML file
    ``{channels: {1: a.yaml, 5: b.yaml}, default: c.yaml}`` giving channels (numbered over
    all units, paths relative to it) their own cells. Key 0 holds the default."""
    if cell is None or not isinstance(cell, (str, Path)):
        return {0: cell}
    import yaml

    path = Path(cell)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read cell file: {err}", path=path) from None
    if not (isinstance(data, dict) and "channels" in data):
        return {0: path}
    chans = data["channels"]
    if not isinstance(chans, dict) or not all(isinstance(k, int) and k > 0 for k in chans):
        raise InputError("channels: expected a mapping channel number -> cell file", path=path)
    out = {k: path.parent / v for k, v in chans.items()}
    out[0] = path.parent / data["default"] if data.get("default") else None
    return out


# --- replies ---------------------------------------------------------------------------


def reply(cmd: str, body: str) -> bytes:
    return (REPLY_HEAD + f"  <cmd>{cmd}</cmd>\r\n" + body + "</bts>").encode() + TERMINATOR


def _listing(cmd: str, lines: list[str]) -> bytes:
    inner = "".join(f"    {x}\r\n" for x in lines)
    return reply(cmd, f'  <list count="{len(lines)}">\r\n{inner}  </list>\r\n')


def _addr(unit: int, chl: int, ip: bool = True) -> str:
    pre = 'ip="127.0.0.1" ' if ip else ""
    return f'{pre}devtype="{DEVTYPE}" devid="{DEVID}" subdevid="{unit}" chlid="{chl}"'


class NewareSim(TcpService):
    """A running simulated BTS server (``start()``/``stop()``; ``channels[(unit, chl)]``)."""

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
        start_unix: float | None = None,
    ):
        if channels < 1 or units < 1:
            raise InputError("--channels and --units must be >= 1")
        self.clock = SimClock(speedup)
        self.faults = CyclerFaults.of(faults)
        self.start_unix = time.time() if start_unix is None else start_unix
        cells = channel_cells(cell)
        chans = simulated_channels(
            channels * units, lambda n: cells.get(n, cells.get(0)), seed, self.faults
        )
        self.channels: dict[tuple[int, int], SimChannel] = {
            (u, c): chans[(u - 1) * channels + c - 1]
            for u in range(1, units + 1)
            for c in range(1, channels + 1)
        }
        super().__init__(host, port, backlog=16, name="neware-sim")

    def channel(self, unit: int, chl: int) -> SimChannel:
        return self.channels[(unit, chl)]

    def synced(self, unit: int, chl: int) -> SimChannel:
        ch = self.channels[(unit, chl)]
        ch.advance_to(self.clock.now())
        return ch

    # serving -----------------------------------------------------------------------------
    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buf, n = b"", 0
        while not self._stop.is_set():
            end = buf.find(TERMINATOR)
            if end < 0:
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                buf += data
                continue
            req, buf = buf[:end], buf[end + len(TERMINATOR) :]
            n += 1
            out = self.faults.deliver(n, self.handle(req))
            if out is None:
                return
            conn.sendall(out)

    # commands ------------------------------------------------------------------------------
    def handle(self, req: bytes) -> bytes:
        """One request (terminator stripped) -> one framed reply."""
        try:
            root = ET.fromstring(req)
        except ET.ParseError:
            return reply("error_resp", "  <result>unreadable request</result>\r\n")
        cmd = (root.findtext("cmd") or "").strip()
        handler = getattr(self, f"_cmd_{cmd}", None)
        if handler is None:
            return reply(f"{cmd}_resp", "  <result>unknown command</result>\r\n")
        return handler(root)

    def _targets(self, root: ET.Element) -> list[tuple[ET.Element, tuple[int, int]]]:
        lst = root.find("list")
        items = [] if lst is None else [el for el in lst if el.tag != "backup"]
        return [(el, (int(el.get("subdevid", 0)), int(el.get("chlid", 0)))) for el in items]

    def _cmd_connect(self, root: ET.Element) -> bytes:
        ok = root.findtext("username") is not None
        rate = f"  <sim-clock>{self.clock.speedup:g}</sim-clock>\r\n"
        return reply("connect_resp", f"  <result>{'ok' if ok else 'false'}</result>\r\n" + rate)

    def _cmd_getdevinfo(self, root: ET.Element) -> bytes:
        lines = "".join(
            f'    <channel ip="127.0.0.1" devtype="{DEVTYPE}" devid="{DEVID}" subdevid="{u}" '
            f'Channelid="{c}">true</channel>\r\n'
            for u, c in self.channels
        )
        body = (
            '  <serverip count="1">\r\n    <server ip="127.0.0.1" port="3306" />\r\n'
            f'  </serverip>\r\n  <middle count="{len(self.channels)}">\r\n{lines}</middle>\r\n'
        )
        return reply("getdevinfo_resp", body)

    def _known(self, key: tuple[int, int]) -> bool:
        return key in self.channels

    def _cmd_getchlstatus(self, root: ET.Element) -> bytes:
        lines = []
        for _, (u, c) in self._targets(root):
            state = self.synced(u, c).state if self._known((u, c)) else "false"
            lines.append(f'<status {_addr(u, c)} reservepause="0" >{state}</status>')
        return _listing("getchlstatus_resp", lines)

    def _cmd_inquire(self, root: ET.Element) -> bytes:
        lines = []
        for _, (u, c) in self._targets(root):
            ch = self.synced(u, c)
            last = ch.records[-1] if ch.records else None
            step = f' step_id="{last[1]}"' if last else ""
            lines.append(
                f'<inquire dev="{DEVTYPE}-{DEVID}-{u}-{c}-0" cycle_id="{last[2] if last else 1}"'
                f'{step} step_type="{ch.step.type_name if last else "--"}" '
                f'workstatus="{ch.state}" barcode="{ch.barcode}" '
                f'current="{ch.model.current_a * 1e3:.4f}" voltage="{ch.model.voltage_v:.4f}" '
                f'capacity="{(last[7] if last else 0) * 1e3:.4f}" '
                f'energy="{(last[8] if last else 0) * 1e3:.4f}" totaltime="{ch.test_time:.1f}" '
                f'relativetime="{(last[3] if last else 0):.1f}" open_or_close="0" log_code="0" />'
            )
        return _listing("inquire_resp", lines)

    def _cmd_inquiredf(self, root: ET.Element) -> bytes:
        lines = []
        for _, (u, c) in self._targets(root):
            ch = self.synced(u, c)
            done = "false" if ch.state == "working" else "true"
            lines.append(
                f'<chl {_addr(u, c, ip=False)} testid="{ch.test_id}" '
                f'count="{len(ch.records)}">{done}</chl>'
            )
        return _listing("inquiredf_resp", lines)

    def _result(self, cmd: str, root: ET.Element, act) -> bytes:
        lines = []
        for el, (u, c) in self._targets(root):
            ok = self._known((u, c)) and act(el, self.channels[(u, c)])
            lines.append(f"<{cmd} {_addr(u, c)}>{'ok' if ok else 'false'}</{cmd}>")
        return _listing(f"{cmd}_resp", lines)

    def _cmd_start(self, root: ET.Element) -> bytes:
        def act(el: ET.Element, ch: SimChannel) -> bool:
            try:
                sched = parse_step_file(Path((el.text or "").strip()).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return False
            return ch.start(sched, el.get("barcode", ""), self.clock.now())

        return self._result("start", root, act)

    def _cmd_stop(self, root: ET.Element) -> bytes:
        return self._result("stop", root, lambda el, ch: ch.stop(self.clock.now()))

    def _cmd_light(self, root: ET.Element) -> bytes:
        return self._result("light", root, lambda el, ch: True)

    def _cmd_clearflag(self, root: ET.Element) -> bytes:
        def act(el: ET.Element, ch: SimChannel) -> bool:
            with ch.lock:
                if ch.state != "protect":
                    return False
                ch.state = "stop"
                return True

        return self._result("clearflag", root, act)

    def _download_target(self, root: ET.Element) -> tuple[int, int, SimChannel | None]:
        d = root.find("download")
        u, c = int(d.get("subdevid", 0)), int(d.get("chlid", 0))
        return u, c, (self.synced(u, c) if self._known((u, c)) else None)

    def _cmd_download(self, root: ET.Element) -> bytes:
        u, c, ch = self._download_target(root)
        d = root.find("download")
        start, count = int(d.get("startpos", 0)), int(d.get("count", 0))
        with ch.lock if ch else threading.Lock():
            recs = ch.records[max(start, 1) - 1 : max(start, 1) - 1 + count] if ch and start else []
            names = {s.step_id: s.type_name for s in ch._schedule.steps} if recs else {}
        t0 = self.start_unix + (ch._t0 if ch else 0.0)
        lines = _data_lines(recs, names, t0)
        head = (
            f'  <download {_addr(u, c, ip=False)} testid="{ch.test_id if ch else 0}" '
            f'startpos="{start}" count="{count}" auxid="0" />\r\n'
        )
        inner = "".join(f"    {x}\r\n" for x in lines)
        return reply(
            "donwload_resp", head + f'  <list count="{len(lines)}">\r\n{inner}  </list>\r\n'
        )

    def _cmd_downloadlog(self, root: ET.Element) -> bytes:
        u, c, ch = self._download_target(root)
        entries = list(ch.log) if ch else []
        t0 = self.start_unix + (ch._t0 if ch else 0.0)
        head = f'  <download {_addr(u, c, ip=False)} testid="{ch.test_id if ch else 0}" log_lever="0" />\r\n'
        inner = "".join(
            f'    <data seqid="{s}" log_code="{code}" atime="{_atime(t0 + t)}" />\r\n'
            for s, code, t in entries
        )
        return reply(
            "donwloadlog_resp", head + f'  <list count="{len(entries)}">\r\n{inner}  </list>\r\n'
        )


def _data_lines(recs: list[tuple], names: dict[int, str], t0_unix: float) -> list[str]:
    """download records as BTS 8.0 writes them (step time in ms, absolute time to 1 s)."""
    if not recs:
        return []
    seq, step, cyc, st, tt, v, i, cap, eng = zip(*recs, strict=True)
    unix = np.floor(t0_unix + np.asarray(tt)).astype("i8")
    days = {d: time.strftime("%Y-%m-%d", time.gmtime(d * 86400)) for d in np.unique(unix // 86400)}
    day = [days[d] for d in (unix // 86400).tolist()]
    hh, rest = np.divmod(unix % 86400, 3600)
    mm, ss = np.divmod(rest, 60)
    hms = zip(hh.tolist(), mm.tolist(), ss.tolist(), strict=True)
    at = [f"{d} {h:02d}:{m:02d}:{x:02d}" for d, (h, m, x) in zip(day, hms, strict=True)]
    return [
        f'<data seqid="{a}" stepid="{b}" cycleid="{c}" steptype="{names[b]}" '
        f'testtime="{d * 1e3:.3f}" atime="{e}" volt="{f!r}" curr="{g!r}" '
        f'cap="{h!r}" eng="{k!r}" />'
        for a, b, c, d, e, f, g, h, k in zip(seq, step, cyc, st, at, v, i, cap, eng, strict=True)
    ]


def _atime(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_s))


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
    backlog_s: float = 0.0,
    out=None,
) -> None:
    """Blocking: run a simulated BTS server until interrupted (prints where it listens)."""
    sim = NewareSim(
        host=host,
        port=port,
        channels=channels,
        units=units,
        speedup=speedup,
        cell=cell,
        faults=faults,
        seed=seed,
    )
    if backlog_s > 0:
        for ch in sim.channels.values():
            ch.preload(int(backlog_s), 1.0, 15e-6)
    sim.serve_announced(
        f"neware-bts simulator listening on {sim.host}:{sim.port} resource={sim.resource} "
        f"channels={len(sim.channels)}",
        out,
    )


def main(argv: list[str] | None = None) -> int:
    ap = cycler_arguments("Simulated Neware BTS 8.x server")
    ap.add_argument("--backlog", type=float, default=0.0, help="preloaded records per channel")
    a = ap.parse_args(argv)
    serve(
        host=a.host,
        port=a.port,
        channels=a.channels,
        units=a.units,
        speedup=a.speedup,
        faults=tuple(a.fault),
        backlog_s=a.backlog,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
