"""Cycler acquisition at rack scale, against the simulated Neware BTS server (a subprocess).

1. Rack: 256 channels (4 units x 64) recording 1 record/s (simulated), each downloaded
   every 10 s (simulated) into its own SWMR cell file: records lost (sequence-id gaps),
   host CPU (% of one core, and per record) and lag from a record's creation to the file
   (in download periods). Targets: 0 lost, < 25 % of a core, lag < 2 periods.
2. Backlog: one channel that ran offline for a month of 1 s records (2.59 M records):
   ingest rate into the cell file, end to end over the socket (the simulator renders the
   XML in its own process) and host-only (records per host CPU second). Target >= 200k/s.

    .venv/bin/python benchmarks/cyclers.py [--seconds 30] [--speedup 10] [--backlog-days 30]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cyclerflow.acquire.cycler import Carry, CyclerRunner, create_cycler_cell
from cyclerflow.acquire.recipe import loads_recipe
from cyclerflow.drivers.neware_bts import (
    TERMINATOR,
    NewareChannel,
    download_request,
    parse_download,
)
from cyclerflow.schema import load_metadata
from cyclerflow.store import read_cycling

ROOT = Path(__file__).resolve().parents[1]
CELL = ROOT / "fixtures" / "recipes" / "cell-lipon.yaml"
RECIPE = """
name: rack
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
record: {every: 1 s}
steps:
  - loop:
      repeat: 1000
      steps:
        - cc_charge: {current: C/2, until: {voltage: 4.2 V}}
        - cc_discharge: {current: C/2, until: {voltage: 3.0 V}}
"""


def start_sim(*args: str) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "cyclerflow.drivers.sim.neware_bts", "--port", "0", *args]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"resource=(\S+)", line)
    if not m:
        p.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return p, m.group(1)


class LagRunner(CyclerRunner):
    """Records, per download, the wall time between the oldest record's creation in the
    simulator and its arrival in the file."""

    speedup = 1.0
    started_wall = 0.0

    def _ingest(self, recs):
        # the oldest record of this batch came after the newest one already in the file
        before = self.carry.step_offset_s + self.carry.step_time_s
        stopped = super()._ingest(recs)
        self.lag_s.append(time.monotonic() - (self.started_wall + before / self.speedup))
        return stopped


def _open_rack(resource, units, per_unit, tmp: Path, recipe, stop, speedup) -> list:
    """One connected channel, cell file and runner per rack channel."""
    meta, meta_text = load_metadata(CELL)
    period_wall = 10.0 / speedup
    runners = []
    for u in range(1, units + 1):
        for c in range(1, per_unit + 1):
            ch = NewareChannel(resource, unit=u, channel=c, stepdir=str(tmp))
            ch.connect()
            w = create_cycler_cell(
                tmp / f"u{u}c{c}.h5",
                meta,
                metadata_text=meta_text,
                protocol=recipe.text,
                flush_interval=period_wall,
            )
            r = LagRunner(ch, w, recipe, poll_interval_s=period_wall, stop=stop)
            r.speedup = speedup
            runners.append((r, ch, w))
    return runners


def rack(seconds: float, speedup: float, units: int, per_unit: int) -> None:
    proc, resource = start_sim(
        "--channels", str(per_unit), "--units", str(units), "--speedup", str(speedup)
    )
    meta, meta_text = load_metadata(CELL)
    recipe = loads_recipe(RECIPE, source="rack.yaml", nominal_capacity_ah=meta.nominal_capacity_ah)
    stop = threading.Event()
    period_wall = 10.0 / speedup
    threads = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            runners = _open_rack(resource, units, per_unit, Path(tmp), recipe, stop, speedup)
            cpu0, wall0 = time.process_time(), time.monotonic()
            for r, _, _ in runners:
                r.started_wall = time.monotonic()
                t = threading.Thread(target=r.run, daemon=True)
                threads.append(t)
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join(60)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            for _, ch, w in runners:
                ch.close()
                w.close()
            lost = n_rec = 0
            for _, _, w in runners:
                seq = read_cycling(w.path, columns=["vendor_record_id"])["vendor_record_id"].values
                n_rec += len(seq)
                lost += int(seq[-1] - len(seq)) if len(seq) else 0
            lags = np.concatenate([np.asarray(r.lag_s[2:]) for r, _, _ in runners])
        finally:
            proc.terminate()
            proc.wait(10)
    n = len(runners)
    print(
        f"rack: {n} channels ({units} units x {per_unit}), speed-up {speedup:g}, {wall:.1f} s wall"
    )
    print(f"  records in files       {n_rec:,} ({n_rec / wall:,.0f} records/s ingested)")
    print(f"  records lost (gaps)    {lost}  (target 0)")
    print(f"  host CPU               {100 * cpu / wall:.1f} % of one core (target < 25 % at 1x:")
    print(f"                         {100 * cpu / wall / speedup:.2f} % scaled to real time)")
    print(f"  CPU per record         {1e6 * cpu / max(n_rec, 1):.1f} us")
    p = lags / period_wall if len(lags) else np.array([np.nan])
    print(
        f"  lag record->file       median {np.median(p):.2f}, max {np.max(p):.2f} "
        "download periods (target < 2)"
    )
    cpu_1x = 100 * cpu / wall / speedup
    met = lost == 0 and cpu_1x < 25 and np.max(p) < 2
    print(f"  targets                {'met' if met else 'MISSED'} (lag and CPU at {speedup:g}x)")


def backlog(days: float, chunk: int) -> None:
    n = int(days * 86400)
    proc, resource = start_sim("--channels", "1", "--backlog", str(n))
    meta, meta_text = load_metadata(CELL)
    recipe = loads_recipe(RECIPE, source="rack.yaml", nominal_capacity_ah=meta.nominal_capacity_ah)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ch = NewareChannel(resource, unit=1, channel=1, chunk=chunk, timeout=120)
            ch.connect()
            w = create_cycler_cell(
                Path(tmp) / "backlog.h5", meta, metadata_text=meta_text, protocol=recipe.text
            )
            r = CyclerRunner(
                ch, w, recipe, carry=Carry(unix0=time.time(), test_id=1), max_batch=10 * chunk
            )
            host = [0.0]
            ingest = r._ingest

            def timed(recs, _f=ingest):
                t = time.process_time()
                out = _f(recs)
                host[0] += time.process_time() - t
                return out

            r._ingest = timed
            cpu0, wall0 = time.process_time(), time.monotonic()
            res = r.run()
            w.close()
            wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
            seq = read_cycling(w.path, columns=["vendor_record_id"])["vendor_record_id"].values
            parsers(ch, min(n, chunk))
            ch.close()
        finally:
            proc.terminate()
            proc.wait(10)
    ok = np.array_equal(seq, np.arange(1, n + 1))
    print(f"backlog: {n:,} records ({days:g} days at 1 s), {res.status}, sequence complete: {ok}")
    print(
        f"  end to end (socket, simulator rendering XML)  {n / wall:,.0f} records/s ({wall:.1f} s)"
    )
    print(
        f"  host only (records per host CPU second)       {n / cpu:,.0f} records/s "
        f"(target >= 200,000: ratio {n / cpu / 2e5:.2f}, {'met' if n / cpu >= 2e5 else 'MISSED'})"
    )
    print(
        f"  of which file ingest (rows + events + HDF5)   {n / max(host[0], 1e-9):,.0f} records/s"
    )


_NUMERIC = ("seqid", "stepid", "cycleid", "testtime", "volt", "curr", "cap", "eng")


def _number(text: str) -> float | int | None:
    if text == "--":
        return None
    try:
        return float(text) if "." in text else int(text)
    except ValueError:  # 3e-07
        return float(text)


def _peer_records(reply: bytes) -> dict[str, np.ndarray]:
    """A download reply read as the public aurora-neware client reads it: parsed with
    defusedxml's ElementTree, one dict per record with every value converted, then
    columns (the same result as cyclerflow's parser)."""
    from defusedxml import ElementTree

    root = ElementTree.fromstring(reply.removesuffix(TERMINATOR))
    recs = [
        {k: (v if k in ("steptype", "atime") else _number(v)) for k, v in el.attrib.items()}
        for el in root.find("list")
    ]
    cols = {n: np.array([r[n] for r in recs], dtype="f8") for n in _NUMERIC}
    cols["steptype"] = np.array([r["steptype"] for r in recs])
    return cols


def _peer_xmltodict(reply: bytes) -> dict[str, np.ndarray]:
    """The same with xmltodict (the parser of neware_api, aurora-neware's predecessor)."""
    import xmltodict

    recs = xmltodict.parse(reply.removesuffix(TERMINATOR))["bts"]["list"]["data"]
    cols = {n: np.array([r["@" + n] for r in recs], dtype="f8") for n in _NUMERIC}
    cols["steptype"] = np.array([r["@steptype"] for r in recs])
    return cols


def parsers(ch: NewareChannel, count: int, repeat: int = 3) -> None:
    """Parse one download reply of ``count`` records (the same bytes) with cyclerflow's
    parser and with the peers; best of ``repeat``, records per CPU second and ratios."""
    reply = ch.link.exchange(download_request(ch.address, 1, count))
    ours = parse_download(reply)
    for peer in (_peer_records(reply), _peer_xmltodict(reply)):
        assert np.array_equal(ours.voltage_v, peer["volt"]) and len(ours) == count
    rates = {}
    for name, fn in (
        ("cyclerflow parse_download", parse_download),
        ("aurora-neware's way (defusedxml, dicts)", _peer_records),
        ("xmltodict (neware_api's parser)", _peer_xmltodict),
    ):
        best = min(_timed(fn, reply) for _ in range(repeat))
        rates[name] = count / best
    base = rates["cyclerflow parse_download"]
    print(f"download reply parse ({count:,} records, {len(reply) / 1e6:.1f} MB, same bytes):")
    for name, r in rates.items():
        print(f"  {name:40s} {r:12,.0f} records/CPU s  (cyclerflow / this: {base / r:.1f})")


def _timed(fn, arg) -> float:
    """CPU seconds of ``fn(arg)`` (this process: the simulator runs in its own)."""
    t = time.process_time()
    fn(arg)
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="rack run, wall seconds")
    ap.add_argument("--speedup", type=float, default=10.0)
    ap.add_argument("--units", type=int, default=4)
    ap.add_argument("--per-unit", type=int, default=64)
    ap.add_argument("--backlog-days", type=float, default=30.0)
    ap.add_argument("--chunk", type=int, default=20_000, help="records per download request")
    a = ap.parse_args()
    if a.seconds > 0:
        rack(a.seconds, a.speedup, a.units, a.per_unit)
    if a.backlog_days > 0:
        backlog(a.backlog_days, a.chunk)


if __name__ == "__main__":
    main()
