"""Rows per second of the BioLogic .mpr/.mpt and Neware .ndax importers, against peers.

Run by hand: ``python benchmarks/importers_biologic_neware.py``. Peers (not dependencies
of cyclerflow, run here only): galvani (GPL, ``pip install galvani``) for .mpr,
fastnda (BSD-3) for .ndax, pandas.read_csv for the BTSDA CSV. Files come from
fixtures/vendor (and mb.mpr from ../shared/data when present); each .mpr is also grown
to >= 1M records by repeating its records (the format allows any count), the .ndax is
read repeatedly until >= 1M rows have been read (a bigger .ndax cannot be made without
rewriting its binary pages). Ratios > 1 mean we are faster.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CYCLERFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))
VENDOR = ROOT / "fixtures" / "vendor"
TARGET_ROWS = 1_000_000


def best_rate(fn, rows: int, repeat: int = 3) -> float:
    """Best rows/s over ``repeat`` runs of ``fn`` (which reads ``rows`` rows)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return rows / best


#: CPU-time ratios (peer CPU s / our CPU s) of the last paired_rates call, per label
CPU_RATIO: dict[str, float] = {}


def paired_rates(ours, peer, rows: int, repeat: int = 3) -> tuple[float, float]:
    """Best rows/s (wall) of ``ours`` and ``peer``, runs alternating (the machine's load
    then weighs on both alike). The best CPU seconds (process-wide, all threads) of each
    are kept too: ``CPU_RATIO["last"]`` is peer CPU / our CPU."""
    best = [float("inf"), float("inf")]
    cpu = [float("inf"), float("inf")]
    for _ in range(repeat):
        for k, fn in enumerate((ours, peer)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            c1, t1 = time.process_time(), time.perf_counter()
            best[k] = min(best[k], t1 - t0)
            cpu[k] = min(cpu[k], c1 - c0)
    CPU_RATIO["last"] = cpu[1] / cpu[0] if cpu[0] > 0 else float("nan")
    return rows / best[0], rows / best[1]


def grow_mpr(src: Path, dst: Path, min_rows: int) -> int:
    """Copy an .mpr (older module layout) with its data records repeated to >= min_rows."""
    buf = src.read_bytes()
    at = buf.index(b"MODULEVMP data")
    names_end = at + 6 + 35
    length, version = struct.unpack_from("<II", buf, names_end)
    start = names_end + 16
    data = buf[start : start + length]
    n = struct.unpack_from("<I", data, 0)[0]
    off = {2: 0x195, 3: 0x196}[version]
    records = data[off:]
    k = -(-min_rows // n)
    new = bytearray(data[:off]) + records * k
    struct.pack_into("<I", new, 0, n * k)
    out = (
        bytearray(buf[:names_end])
        + struct.pack("<II", len(new), version)
        + buf[names_end + 8 : start]
    )
    out += new + buf[start + length :]
    dst.write_bytes(bytes(out))
    return n * k


def _mpr_rows(biologic_mpr, path: Path, nbig: int | None, label: str, peer) -> None:
    n = nbig or len(next(iter(biologic_mpr.parse_mpr(path).columns.values())))
    reps = 7 if n > 100_000 else 20
    ours_raw = best_rate(lambda: biologic_mpr.parse_mpr(path), n, reps)
    if peer:
        ours_full, other = paired_rates(
            lambda: biologic_mpr.read(path), lambda: peer(str(path)), n, reps
        )
    else:
        ours_full, other = best_rate(lambda: biologic_mpr.read(path), n, reps), float("nan")
    for what, rate in (("parse, lazy", ours_raw), ("BDF import", ours_full)):
        print(
            f"{'.mpr':<8} {label + f' [{what}]':<40} {n:>9} {rate:>12.3g} {other:>12.3g} {rate / other:>9.2f}"
            + (f" {CPU_RATIO['last']:>6.2f}" if peer and what == "BDF import" else "")
        )


def bench_mpr() -> None:
    """.mpr whole import (parse + BDF columns) against galvani's parse, same files."""
    import warnings

    from cyclerflow.importers import biologic_mpr

    try:
        from galvani.BioLogic import MPRfile  # GPL peer, benchmark only
    except ImportError:
        MPRfile = None
    sources = [VENDOR / "biologic" / "jdb11-1_e1_s3_squidTest_data_C15.mpr"]
    if DATA.is_dir():
        sources.append(DATA / "biologic" / "mb.mpr")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for src in sources:
            _mpr_rows(biologic_mpr, src, None, src.name[:24], MPRfile)
            big = Path(tmp) / "big.mpr"
            nbig = grow_mpr(src, big, TARGET_ROWS)
            _mpr_rows(biologic_mpr, big, nbig, f"{src.name[:16]} grown", MPRfile)


def bench_ndax() -> None:
    """.ndax import against fastnda's own read of the same file."""
    import logging

    import fastnda

    from cyclerflow.importers import neware_ndax

    logging.getLogger("fastnda").setLevel(logging.ERROR)  # its per-read clock-jump warning
    path = VENDOR / "neware" / "20260302_IFE_BTS85_2_9_8_1.ndax"
    n = len(neware_ndax.read(path)["cycling"]["test_time_second"])
    reps = -(-TARGET_ROWS // n)

    def ours_loop() -> None:
        for _ in range(reps):
            neware_ndax.read(path)

    def peer_loop() -> None:
        for _ in range(reps):
            fastnda.read(path)

    ours, peer = paired_rates(ours_loop, peer_loop, n * reps, 5)
    label = path.name[:22] + f" x{reps}"
    print(
        f"{'.ndax':<8} {label:<40} {n * reps:>9} {ours:>12.3g} {peer:>12.3g} {ours / peer:>9.2f} {CPU_RATIO['last']:>6.2f}"
    )


def bench_neware_csv() -> None:
    """BTSDA CSV import against pandas.read_csv of the same file (text only, no conversion)."""
    import pandas as pd

    from cyclerflow.importers import neware_csv

    rows = 200_000
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "btsda.csv"
        lines = [
            "DataPoint,Cycle Index,Step Index,Step Type,Time,Total Time,Current(A),Voltage(V),Capacity(Ah),Energy(Wh),Date,Power(W)"
        ]
        for i in range(rows):
            step = i // 1000
            chg = step % 2 == 0
            s, t = (i % 1000) * 10, i * 10
            lines.append(
                f"{i + 1},{step // 2 + 1},{step + 1},{'CC Chg' if chg else 'CC DChg'},"
                f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d},{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d},"
                f"{0.5 if chg else -0.5:.5f},3.{i % 9000:04d},{s * 0.5 / 3600:.6f},{s * 1.8 / 3600:.6f},"
                f"2024-03-01 10:00:00,{1.8 if chg else -1.8:.5f}"
            )
        p.write_text("\n".join(lines) + "\n")
        ours, peer = paired_rates(
            lambda: neware_csv.read(p), lambda: pd.read_csv(p, encoding="latin-1"), rows, 5
        )
    print(
        f"{'csv':<8} {'BTSDA A/V/Ah (synthetic)':<40} {rows:>9} {ours:>12.3g} {peer:>12.3g} {ours / peer:>9.2f} {CPU_RATIO['last']:>6.2f}"
    )


def _levels_file(path: Path, rows: int) -> None:
    """A synthetic BTSDA three-level export: cycles of rest/charge/rest/discharge steps of
    100/800/100/1000 records (10 s apart), a cycle row, step rows and record rows."""
    out = [
        "Cycle Index,Chg. Cap.(Ah),DChg. Cap.(Ah),Chg.-DChg. Eff(%)",
        ",Step Index,Step Number,Step Type,Step Time,Capacity(Ah),Energy(Wh)",
        ",,DataPoint,Time,Total Time,Current(A),Voltage(V),Capacity(Ah),Energy(Wh),Date,Power(W)",
    ]
    n = step = 0
    cycle = 0
    while n < rows:
        cycle += 1
        out.append(f"{cycle},0.1,0.1,100.0")
        for name, cur, count in (
            ("Rest", 0.0, 100),
            ("CC Chg", 0.5, 800),
            ("Rest", 0.0, 100),
            ("CC DChg", -0.5, 1000),
        ):
            step += 1
            out.append(f",{step},{step},{name},00:10:00,0.1,0.4")
            for k in range(count):
                n += 1
                s, t = k * 10, n * 10
                out.append(
                    f",,{n},{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d},"
                    f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d},{cur:.5f},3.{n % 9000:04d},"
                    f"{s * abs(cur) / 3600:.6f},{s * abs(cur) * 3.6 / 3600:.6f},"
                    f"2024-03-01 10:00:00,{cur * 3.6:.5f}"
                )
    path.write_text("\n".join(out) + "\n")


def bench_neware_levels() -> None:
    """BTSDA three-level export against pandas.read_csv of the same file as a plain table."""
    import pandas as pd

    from cyclerflow.importers import neware_csv

    rows = 200_000
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "btsda_levels.csv"
        _levels_file(p, rows)
        ours, peer = paired_rates(
            lambda: neware_csv.read(p),
            lambda: pd.read_csv(p, encoding="latin-1", header=None, skiprows=3, names=range(11)),
            rows,
            5,
        )
    print(
        f"{'csv':<8} {'BTSDA three-level (synthetic)':<40} {rows:>9} {ours:>12.3g} {peer:>12.3g} {ours / peer:>9.2f} {CPU_RATIO['last']:>6.2f}"
    )


def main() -> int:
    print(
        f"{'format':<8} {'file':<40} {'rows':>9} {'ours rows/s':>12} {'peer rows/s':>12} {'ours/peer':>9} {'cpu':>6}"
    )
    bench_mpr()
    bench_ndax()
    bench_neware_csv()
    bench_neware_levels()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
