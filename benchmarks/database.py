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
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cyclerflow.db import schema as S
from cyclerflow.db.engine import resolve, write_transaction
from cyclerflow.db.rebuild import indexed_stamps, needs_index, open_writer
from cyclerflow.db.records import CellRecord, metadata_rows
from cyclerflow.db.upsert import write_record
from cyclerflow.lab import CellEntry


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


def bench_index(url: str, n_cells: int, n_cycles: int) -> float:
    """Cycle rows per second over ``n_cells`` one-transaction-per-cell writes."""
    engine = open_writer(resolve(None, url))
    rng = np.random.default_rng(1)
    spent = 0.0
    for k in range(n_cells):
        rec = synthetic_record(k, n_cycles, rng)
        t0 = time.perf_counter()
        with write_transaction(engine) as conn:
            write_record(conn, rec)
        spent += time.perf_counter() - t0
        if k and k % 500 == 0:
            print(f"  {k} cells, {k * n_cycles / spent:,.0f} rows/s so far", flush=True)
    engine.dispose()
    return n_cells * n_cycles / spent


def _timed(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_queries(url: str) -> None:
    from cyclerflow.db.query import cells, query, table

    cases = {
        "wafer W07 cells with fade < 1e-4 (cells --where)": lambda: cells(
            db=url, where=["wafer=W07", "fade_per_cycle<1e-4"]
        ),
        "sigma25 vs electrolyte power_w, all cells (cells --where/--sort)": lambda: cells(
            db=url, where=["electrolyte.material=LiPON"], sort="electrolyte.power_w"
        )[["cell_id", "conductivity_25c_s_per_cm"]],
        "one cell's 2000 cycles (table)": lambda: table("cycles", db=url, cell_id="W07-D010-C1"),
        "mean fade per wafer (query SQL)": lambda: query(
            "SELECT c.wafer, avg(s.fade_rate_per_cycle) AS fade FROM cells c "
            "JOIN summaries s ON s.cell_id = c.cell_id GROUP BY c.wafer",
            db=url,
        ),
    }
    for name, fn in cases.items():
        ms = _timed(fn) * 1e3
        print(f"  query {name}: {ms:.1f} ms (target < 50 ms, {'OK' if ms < 50 else 'SLOW'})")


def bench_incremental(url: str, n_cells: int) -> float:
    """Seconds to decide that ``n_cells`` unchanged cells need nothing (stat + one query)."""
    tmp = Path(tempfile.mkdtemp(prefix="cfdb-inc-"))
    engine = open_writer(resolve(None, url))
    rows = []
    for k in range(n_cells):
        p = tmp / f"c{k}.h5"
        p.write_bytes(b"x" * 64)
        st = p.stat()
        rows.append(
            {
                "path": str(p.resolve()),
                "cell_id": f"c{k}",
                "kind": "cell",
                "size_bytes": st.st_size,
                "mtime_ns": st.st_mtime_ns,
            }  # fmt: skip
        )
    with write_transaction(engine) as conn:
        conn.execute(S.files.insert(), rows)
    t0 = time.perf_counter()
    entries = []
    for k in range(n_cells):
        st = os.stat(tmp / f"c{k}.h5")
        entries.append(
            CellEntry(str(tmp / f"c{k}.h5"), size_bytes=st.st_size, mtime_ns=st.st_mtime_ns)
        )
    with engine.connect() as conn:
        stamps = indexed_stamps(conn)
    todo = [e for e in entries if needs_index(e, stamps)]
    dt = time.perf_counter() - t0
    assert not todo, f"{len(todo)} unchanged cells would be re-indexed"
    engine.dispose()
    return dt


def run(name: str, url: str, args) -> None:
    target = {"sqlite": 200e3, "postgres": 500e3}[name]
    print(f"{name}: indexing {args.cells} cells x {args.cycles} cycles", flush=True)
    rate = bench_index(url, args.cells, args.cycles)
    print(f"{name}: {rate:,.0f} cycle rows/s (target {target:,.0f}; ratio {rate / target:.2f})")
    bench_queries(url)
    dt = bench_incremental(url, args.cells)
    print(f"{name}: incremental check of {args.cells} unchanged cells: {dt:.3f} s (target < 5 s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--pg-url", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cfdb-bench-"))
    if args.backend in ("sqlite", "both"):
        run("sqlite", f"sqlite:///{tmp / 'lab.db'}", args)
    if args.backend in ("postgres", "both"):
        server = None
        url = args.pg_url
        if url is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "db"))
            from conftest import PostgresServer, _pg_bin

            server = PostgresServer(_pg_bin())
            server.start()
            url = server.new_database()
        try:
            run("postgres", url, args)
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
