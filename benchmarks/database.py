"""Lab database benchmark: bulk indexing rate, typical query times, incremental check.

    .venv/bin/python benchmarks/database.py [--cells 5000] [--cycles 2000]
        [--backend sqlite|postgres|both] [--pg-url URL]

Synthetic per-cell records (cell, 4 layers, summary, N cycles) are generated directly and
written through the same per-cell transaction as a lab run (``upsert.write_record``: COPY
on PostgreSQL, executemany on SQLite). Targets (issue 17): SQLite >= 200k cycle rows/s,
PostgreSQL >= 500k rows/s, typical queries < 50 ms, incremental check of 5,000 unchanged
cells < 5 s. Without --pg-url a throw-away PostgreSQL cluster is started from Debian's
packages (as in tests/db/conftest.py). Prints each figure and its ratio to the target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from cyclerflow.db import schema as S
from cyclerflow.db.bulk import bulk_load
from cyclerflow.db.engine import resolve, write_transaction
from cyclerflow.db.rebuild import (
    indexed_stamps,
    needs_index,
    open_writer,
    refresh_statistics,
)
from cyclerflow.db.records import CellRecord, metadata_rows
from cyclerflow.db.streams import BULK_STREAMS, BatchWriter

#: batches generated before each timed stretch (parallel streams write while nothing
#: else runs in this process; ~0.6 GB of records at 50 x 2000 cycles)
CHUNK_BATCHES = 10

#: settings of the benchmark's own PostgreSQL server (docs/database.md says why)
BULK_SERVER_SETTINGS: tuple[str, ...] = ()


def synthetic_record(k: int, n_cycles: int, rng: np.random.Generator) -> CellRecord:
    """One cell with known fade and sigma: wafer W00..W49, power 100..250 W."""
    cell_id = f"W{k % 50:02d}-D{k // 50:03d}-C1"
    fade = float(10 ** rng.uniform(-5, -3))
    power = float(100 + 150 * rng.random())
    meta = {
        "cell_id": cell_id,
        "wafer": f"W{k % 50:02d}",
        "die": f"D{k // 50:03d}",
        "active_area_cm2": 0.0035,
        "nominal_capacity_uah": 15.0,
        "layers": [
            {"role": "current_collector", "material": "Pt", "thickness_um": 0.2},
            {"role": "cathode", "material": "LiCoO2", "thickness_um": 1.0},
            {"role": "electrolyte", "material": "LiPON", "thickness_um": 1.0, "power_w": power},
            {"role": "anode", "material": "Li", "thickness_um": 3.0},
        ],
    }
    cell, layers, keys = metadata_rows(cell_id, meta, f"/lab/{cell_id}.h5")
    n = np.arange(1, n_cycles + 1)
    ret = 1.0 - fade * (n - 1)
    qd = 15e-6 * ret
    qc = qd / 0.9995
    nan = [None] * n_cycles
    cols = [qc, qd, qd / qc, ret, qc * 3.9, qd * 3.85, qd * 1e6 / 0.0035, nan, nan]
    cols += [0.987 * np.ones(n_cycles), 3.9 * np.ones(n_cycles), 3.85 * np.ones(n_cycles)]
    cols += [0.05 * np.ones(n_cycles), [True] * n_cycles, nan, nan, nan, ["cycle"] * n_cycles]
    lists = [c.tolist() if isinstance(c, np.ndarray) else c for c in cols]
    cycles = list(zip([cell_id] * n_cycles, n.tolist(), *lists, nan, strict=True))
    summary = dict.fromkeys(S.summary_columns())
    summary.update(
        cell_id=cell_id,
        status="ok",
        live=False,
        n_cycles=n_cycles,
        fade_rate_per_cycle=fade,
        conductivity_25c_s_per_cm=2e-6 * (power / 150),
        activation_energy_ev=0.55,
        summary_json=None,
    )
    return CellRecord(cell_id, cell, layers, cycles=cycles, summary=summary, keys=tuple(keys))


def server_cpu_second(data_dir: Path | None) -> float:
    """CPU seconds the PostgreSQL cluster of ``data_dir`` used so far (the postmaster, its
    live children and the exited ones it reaped, from /proc); 0 without a local server."""
    if data_dir is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pm = int((data_dir / "postmaster.pid").read_text().split()[0])

    def fields(pid: int) -> list[str]:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text[text.rindex(")") + 2 :].split()

    total = sum(int(x) for x in fields(pm)[11:15])  # utime stime cutime cstime
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and d.name != str(pm):
            try:
                f = fields(int(d.name))
            except OSError:
                continue
            if int(f[1]) == pm:
                total += int(f[11]) + int(f[12])
    return total / tick


def bench_index(url: str, n_cells: int, n_cycles: int, batch: int, first: int = 0, **kw) -> float:
    """Cycle rows per second writing ``n_cells`` cells, ``batch`` cells per transaction
    (1 = a lab run's writes; 50 = ``db rebuild``'s, inside its bulk load, through its
    BatchWriter: on PostgreSQL into an empty table over parallel COPY streams, the key
    built at the end, and that time counted). ``server``: data folder of a local
    PostgreSQL whose CPU time is reported too."""
    engine = open_writer(resolve(None, url))
    rng = np.random.default_rng(1 + first)
    server = kw.get("server")
    spent = cpu = 0.0
    s0 = server_cpu_second(server)
    with ExitStack() as stack:
        t0, c0 = time.perf_counter(), time.process_time()
        fresh = stack.enter_context(bulk_load(engine)) if batch > 1 else False
        writer = stack.enter_context(BatchWriter(engine, fresh, kw.get("streams", BULK_STREAMS)))
        spent += time.perf_counter() - t0
        cpu += time.process_time() - c0
        chunk = batch * CHUNK_BATCHES  # records made first, then written and committed
        for k in range(first, first + n_cells, chunk):
            end = min(k + chunk, first + n_cells)
            parts = [
                [synthetic_record(j, n_cycles, rng) for j in range(b, min(b + batch, end))]
                for b in range(k, end, batch)
            ]
            t0, c0 = time.perf_counter(), time.process_time()
            for recs in parts:
                writer.write(recs)
            writer.flush()  # every batch committed before the clock stops
            spent += time.perf_counter() - t0
            cpu += time.process_time() - c0
            done = end - first
            if done % 1000 < chunk:
                print(f"  {done} cells, {done * n_cycles / spent:,.0f} rows/s so far", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
    spent += time.perf_counter() - t0  # the key built again at the end of a bulk load
    cpu += time.process_time() - c0
    if fresh:
        print(f"  cycles key built after the load in {time.perf_counter() - t0:.1f} s")
    n = n_cells * n_cycles
    line = f"  this process's CPU: {cpu:.1f} s, {n / cpu:,.0f} rows per CPU-second"
    if server is not None:
        srv = server_cpu_second(server) - s0
        line += f"; server CPU {srv:.1f} s; both: {n / (cpu + srv):,.0f} rows per CPU-second"
    print(line + f"; wall {spent:.1f} s")
    engine.dispose()
    return n / spent


def _timed(fn, repeat: int = 5) -> tuple[float, float]:
    """Median (wall, this process's CPU) seconds of ``fn()`` after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def peer_rate(url: str, n_cells: int, n_cycles: int) -> float:
    """The raw driver's ceiling on this machine now, same rows: sqlite3 executemany into an
    in-memory table / psycopg binary COPY into a (logged) table, no key, one transaction."""
    from cyclerflow.db.records import cycle_columns

    rng = np.random.default_rng(2)
    rows = [r for k in range(n_cells) for r in synthetic_record(k, n_cycles, rng).cycles]
    cols = cycle_columns()
    types = [S.cycles.c[c].type for c in cols]
    if url.startswith("sqlite"):
        import sqlite3

        con = sqlite3.connect(":memory:")
        con.execute(f"CREATE TABLE peer ({', '.join(f'c{i}' for i in range(len(cols)))})")
        t0 = time.perf_counter()
        con.executemany(f"INSERT INTO peer VALUES ({', '.join('?' * len(cols))})", rows)
        con.commit()
        return len(rows) / (time.perf_counter() - t0)
    import psycopg

    from cyclerflow.db.upsert import _PG_TYPES

    pg_types = [_PG_TYPES[type(t)] for t in types]
    with psycopg.connect(url.replace("+psycopg", "")) as con, con.cursor() as cur:
        cur.execute(
            "CREATE TABLE peer (" + ", ".join(f"c{i} {t}" for i, t in enumerate(pg_types)) + ")"
        )
        t0 = time.perf_counter()
        with cur.copy("COPY peer FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(pg_types)
            for r in rows:
                cp.write_row(r)
        con.commit()
        return len(rows) / (time.perf_counter() - t0)


def bench_queries(url: str) -> None:
    from cyclerflow.db.query import cells, open_reader, query, table

    t0 = time.perf_counter()
    cells(db=url, where=["wafer=W07"])
    print(f"  first query with a fresh connection: {(time.perf_counter() - t0) * 1e3:.1f} ms")
    reader = open_reader(db=url)
    url = reader  # the queries below reuse one read-only engine

    cases = {
        "wafer W07 cells with fade < 1e-4 (cells --where)": lambda: cells(
            db=url, where=["wafer=W07", "fade_per_cycle<1e-4"]
        ),
        "sigma25 vs electrolyte power_w, all cells (cells --where/--sort/--columns)": lambda: cells(
            db=url,
            where=["electrolyte.material=LiPON"],
            sort="electrolyte.power_w",
            columns=["electrolyte.power_w", "conductivity_25c_s_per_cm"],
        ),
        "all summary fields of all cells (cells)": lambda: cells(db=url),
        "one cell's 2000 cycles (table)": lambda: table("cycles", db=url, cell_id="W07-D010-C1"),
        "mean fade per wafer (query SQL)": lambda: query(
            "SELECT c.wafer, avg(s.fade_rate_per_cycle) AS fade FROM cells c "
            "JOIN summaries s ON s.cell_id = c.cell_id GROUP BY c.wafer",
            db=url,
        ),
    }
    for name, fn in cases.items():
        wall, cpu = _timed(fn)
        ms = wall * 1e3
        print(
            f"  query {name}: {ms:.1f} ms (target < 50 ms, {'OK' if ms < 50 else 'SLOW'}; "
            f"this process's CPU {cpu * 1e3:.1f} ms)"
        )
    reader.close()


def _lab_of_copies(folder: Path, n_cells: int) -> list[Path]:
    """``n_cells`` real (small) cell files: one written with the store, then copied."""
    from cyclerflow.schema import parse_metadata
    from cyclerflow.store import create_cell

    first = folder / "c0.h5"
    meta = parse_metadata({"cell_id": "C0", "wafer": "W00", "active_area_cm2": 0.0035})
    with create_cell(first, meta, swmr=False) as w:
        t = np.arange(100.0)
        w.append_cycling({"test_time_second": t, "unix_time_second": 1.7e9 + t})
    paths = [first]
    for k in range(1, n_cells):
        paths.append(folder / f"c{k}.h5")
        shutil.copy2(first, paths[-1])
    return paths


def _index_rows(paths: list[Path]) -> tuple[list[dict], list[dict]]:
    """files and cells rows as a lab run leaves them for unchanged, analysed cells."""
    files, cells = [], []
    for k, p in enumerate(paths):
        st = p.stat()
        cid = f"c{k}"
        files.append({"path": str(p.resolve()), "cell_id": cid, "kind": "cell", "live": False,
                      "size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns})  # fmt: skip
        meta = {"cell_id": "C0", "wafer": "W00", "active_area_cm2": 0.0035}
        cells.append({"cell_id": cid, "path": str(p.resolve()), "metadata_json": meta})
    return files, cells


def bench_incremental(url: str, n_cells: int) -> tuple[float, float]:
    """Seconds to find what changed in a lab of ``n_cells`` unchanged real cell files:
    (with the database: its entries + one stat per file, without: every file opened as
    discovery does)."""
    from cyclerflow.db.hook import known_entries
    from cyclerflow.lab import discover_cells

    tmp = Path(tempfile.mkdtemp(prefix="cfdb-inc-"))
    engine = open_writer(resolve(None, url))
    files, cells_rows = _index_rows(_lab_of_copies(tmp, n_cells))
    with write_transaction(engine) as conn:
        conn.execute(S.files.insert(), files)
        conn.execute(S.cells.insert(), cells_rows)
    t0 = time.perf_counter()
    entries = discover_cells(tmp, known=known_entries(tmp, url))
    with engine.connect() as conn:
        stamps = indexed_stamps(conn)
    todo = [e for e in entries if needs_index(e, stamps)]
    dt = time.perf_counter() - t0
    assert len(entries) == n_cells and not todo, f"{len(todo)} unchanged cells re-indexed"
    t0 = time.perf_counter()
    probed = discover_cells(tmp)
    peer = time.perf_counter() - t0
    assert [e.wafer for e in probed] == [e.wafer for e in entries]
    engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    return dt, peer


def run(name: str, url: str, args) -> None:
    target = {"sqlite": 200e3, "postgres": 500e3}[name]
    print(f"{name}: indexing {args.cells} cells x {args.cycles} cycles", flush=True)
    srv = getattr(args, "server_dir", None)
    rate = bench_index(url, args.cells, args.cycles, batch=50, server=srv, streams=args.streams)
    print(
        f"{name}: rebuild path (50 cells/transaction): {rate:,.0f} cycle rows/s "
        f"(target {target:,.0f}; ratio {rate / target:.2f})"
    )
    engine = open_writer(resolve(None, url))
    refresh_statistics(engine)  # what `db rebuild` does at its end
    engine.dispose()
    n_lab = min(args.cells, 200)
    lab_rate = bench_index(url, n_lab, args.cycles, batch=1, first=args.cells, server=srv)
    print(f"{name}: lab-run path (1 cell/transaction, {n_lab} cells): {lab_rate:,.0f} rows/s")
    peer = peer_rate(url, min(args.cells, 100), args.cycles)
    print(
        f"{name}: raw driver ceiling now (no index, one transaction): {peer:,.0f} rows/s; "
        f"cyclerflow / ceiling = {rate / peer:.2f}; load average {os.getloadavg()[0]:.1f}"
    )
    bench_queries(url)
    dt, peer_dt = bench_incremental(url, args.cells)
    print(
        f"{name}: what changed in {args.cells} unchanged cell files: {dt:.2f} s with the "
        f"database (target < 5 s), {peer_dt:.2f} s opening every file; ratio {peer_dt / dt:.1f}x"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--pg-url", default=None)
    ap.add_argument("--streams", type=int, default=BULK_STREAMS, help="COPY streams (PostgreSQL)")
    ap.add_argument(
        "--pg-setting",
        action="append",
        default=None,
        help=f"NAME=VALUE for the benchmark's own server (repeatable; default: {' '.join(BULK_SERVER_SETTINGS)})",
    )
    args = ap.parse_args()
    if args.pg_setting is None:
        args.pg_setting = list(BULK_SERVER_SETTINGS)
    if args.backend in ("sqlite", "both"):
        tmp = Path(tempfile.mkdtemp(prefix="cfdb-bench-"))
        try:
            run("sqlite", f"sqlite:///{tmp / 'lab.db'}", args)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.backend in ("postgres", "both"):
        server = None
        url = args.pg_url
        if url is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "db"))
            from conftest import PostgresServer, _pg_bin

            server = PostgresServer(_pg_bin(), settings=args.pg_setting)
            server.start()
            url = server.new_database()
            args.server_dir = server.data
        try:
            run("postgres", url, args)
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
