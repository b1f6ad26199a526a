"""Cell-store throughput (with and without the Fletcher-32 checksums) against battdat's HDF5 writer and pandas/PyTables, same table, same run.

Targets (issue 3): bulk append of 10M rows x 6 float64 columns >= 1M rows/s and >= 20x
battdat; streaming 1,000-row chunks with a flush every second >= 200k rows/s; reading the
10M rows back into xarray < 1 s.

    .venv/bin/python benchmarks/store.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cyclerflow.store import create_cell, read_cycling

COLUMNS = (
    "test_time_second",
    "unix_time_second",
    "voltage_volt",
    "current_ampere",
    "temperature_kelvin",
    "step_index_f",
)


def table(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(n, dtype="f8") * 0.1
    return {
        "test_time_second": t,
        "unix_time_second": 1.79e9 + t,
        "voltage_volt": 3.7 + 0.1 * rng.standard_normal(n),
        "current_ampere": 1e-6 * rng.standard_normal(n),
        "temperature_kelvin": 298.15 + rng.standard_normal(n),
        "step_index_f": np.floor(t / 1000.0),
    }


def bench_bulk(
    path: Path, data: dict, checksums: bool = True, chunk_crc: bool | None = None
) -> float:
    return bench_bulk_cpu(path, data, checksums, chunk_crc)[0]


def bench_bulk_cpu(
    path: Path, data: dict, checksums: bool = True, chunk_crc: bool | None = None
) -> tuple[float, float]:
    """(wall s, CPU s of this process) of one bulk append of ``data``."""
    t0, c0 = time.perf_counter(), time.process_time()
    w = create_cell(
        path,
        None,
        columns=list(data),
        units={"step_index_f": "1"},
        swmr=False,
        checksums=checksums,
        chunk_crc=chunk_crc,
    )
    w.append_cycling(data)
    w.close()
    return time.perf_counter() - t0, time.process_time() - c0


def bulk_variants(n: int, repeat: int) -> None:
    """Bulk append with Fletcher-32 + chunk CRC-32, Fletcher-32 alone and no checksums,
    interleaved ``repeat`` times; prints best and median of wall and CPU time."""
    data = table(n)
    variants = {
        "Fletcher-32 + chunk CRC-32": (True, True),
        "Fletcher-32 only": (True, False),
        "no checksums": (False, False),
    }
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as d:
        for i in range(repeat):
            for name, (fl, crc) in variants.items():
                p = Path(d) / f"{i}-{fl}-{crc}.h5"
                got[name].append(bench_bulk_cpu(p, data, fl, crc))
                p.unlink()
    print(f"bulk append of {n:,} rows x {len(data)} float64 columns, {repeat} runs each:")
    for name, runs in got.items():
        wall = sorted(w for w, _ in runs)
        cpu = sorted(c for _, c in runs)
        print(
            f"  {name:28s} wall best {n / wall[0] / 1e6:6.2f} M rows/s (median "
            f"{n / wall[len(wall) // 2] / 1e6:6.2f}); CPU best {n / cpu[0] / 1e6:6.2f} M rows/s "
            f"(median {n / cpu[len(cpu) // 2] / 1e6:6.2f})"
        )


def bench_stream(
    path: Path, seconds: float, chunk: int = 1000, checksums: bool = True
) -> tuple[float, int, int]:
    """Append 1,000-row chunks for ``seconds`` (SWMR, flush every 1 s). Returns (s, rows, flushes)."""
    data = table(chunk)
    w = create_cell(
        path,
        None,
        columns=list(data),
        units={"step_index_f": "1"},
        flush_interval=1.0,
        checksums=checksums,
    )
    rows = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        w.append_cycling(data)
        rows += chunk
    flushes = w.flush_count
    w.close()
    return time.perf_counter() - t0, rows, flushes


def bench_read(path: Path) -> float:
    t0 = time.perf_counter()
    ds = read_cycling(path)
    assert ds.sizes["sample"] > 0
    return time.perf_counter() - t0


def bench_read_fresh_process(path: Path) -> float:
    """read_cycling timed inside a new Python process (imports excluded), after os.sync():
    how a later job (analysis, report) meets a file written earlier."""
    os.sync()
    code = (
        "import sys, time; from cyclerflow.store import read_cycling; "
        "t = time.perf_counter(); ds = read_cycling(sys.argv[1]); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def bench_battdat(path: Path, data: dict) -> float | None:
    try:
        from battdat.data import BatteryDataset
    except ImportError:
        return None
    df = pd.DataFrame(
        {
            "test_time": data["test_time_second"],
            "time": data["unix_time_second"],
            "voltage": data["voltage_volt"],
            "current": data["current_ampere"],
            "temperature": data["temperature_kelvin"],
            "step_index": data["step_index_f"],
        }
    )
    t0 = time.perf_counter()
    BatteryDataset.make_cell_dataset(raw_data=df).to_hdf(path)
    return time.perf_counter() - t0


def bench_hdfstore(path: Path, data: dict) -> float | None:
    try:
        import tables  # noqa: F401
    except ImportError:
        return None
    df = pd.DataFrame(data)
    t0 = time.perf_counter()
    df.to_hdf(path, key="cycling", mode="w", format="table")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--stream-seconds", type=float, default=5.0)
    ap.add_argument(
        "--bulk-only",
        type=int,
        default=0,
        metavar="REPEAT",
        help="only bulk append with/without each checksum, REPEAT runs each (wall and CPU)",
    )
    ap.add_argument(
        "--peer-rows", type=int, default=1_000_000, help="rows for the slow peers (battdat)"
    )
    args = ap.parse_args()
    n = args.rows
    if args.bulk_only:
        bulk_variants(n, args.bulk_only)
        return
    data = table(n)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ours = bench_bulk(d / "ours.h5", data)
        plain = bench_bulk(d / "plain.h5", data, checksums=False)
        ours = min(ours, bench_bulk(d / "ours.h5.2", data))
        plain = min(plain, bench_bulk(d / "plain.h5.2", data, checksums=False))
        read_right_after = bench_read(d / "ours.h5")
        read = min(bench_read_fresh_process(d / "ours.h5") for _ in range(3))
        read_warm = bench_read(d / "ours.h5")
        stream, srows, flushes = bench_stream(d / "stream.h5", args.stream_seconds)
        p_stream, p_srows, _ = bench_stream(
            d / "stream_plain.h5", args.stream_seconds, checksums=False
        )
        hs = bench_hdfstore(d / "hdfstore.h5", data)
        m = min(args.peer_rows, n)
        sub = {k: v[:m] for k, v in data.items()}
        ours_sub = min(bench_bulk(d / f"ours_sub{i}.h5", sub) for i in range(3))
        bd = bench_battdat(d / "battdat.h5", sub)
    print(f"rows: {n:,} x {len(data)} float64 columns ({n * len(data) * 8 / 1e6:.0f} MB)")
    print(
        f"bulk append (cyclerflow):   {ours:7.3f} s  {n / ours / 1e6:7.2f} M rows/s   (target >= 1 M rows/s)"
    )
    print(
        f"  same without Fletcher-32 checksums: {plain:7.3f} s  {n / plain / 1e6:7.2f} M rows/s"
        f"   (checksum cost {100 * (ours / plain - 1):+.0f} %; target >= 10 M rows/s with them)"
    )
    if hs is not None:
        print(
            f"bulk write (pandas HDFStore, PyTables table format), same {n:,} rows: {hs:7.3f} s  ratio = {hs / ours:.1f}x"
        )
    if bd is not None:
        print(
            f"battdat BatteryDataset.to_hdf on the first {m:,} rows: {bd:7.3f} s ({m / bd / 1e6:.3f} M rows/s) vs "
            f"cyclerflow {ours_sub:.3f} s on the same rows: ratio = {bd / ours_sub:.0f}x (target >= 20x)"
        )
    else:
        print("battdat not installed (pip install battery-data-toolkit): ratio not measured")
    print(
        f"streaming 1,000-row chunks, flush every 1 s (SWMR): {srows / stream / 1e3:8.0f} k rows/s "
        f"over {stream:.1f} s ({flushes} flushes; target >= 200 k rows/s); "
        f"without checksums {p_srows / p_stream / 1e3:8.0f} k rows/s"
    )
    print(
        f"read {n:,} rows into xarray (target < 1 s): in a fresh process {read:6.3f} s (best of 3); "
        f"in the writing process right after the write {read_right_after:6.3f} s (dirty pages still "
        f"being written back), again {read_warm:6.3f} s"
    )


if __name__ == "__main__":
    main()
