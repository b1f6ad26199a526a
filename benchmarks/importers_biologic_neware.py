"""Rows per second of the BioLogic .mpr/.mpt and Neware .ndax importers, against peers.

Run by hand: ``python benchmarks/importers_biologic_neware.py``. Peers (not dependencies
of cyclerflow, run here only): galvani (GPL, ``pip install galvani``) for .mpr and
fastnda (BSD-3) for .ndax. Files come from ../shared/data; the .mpr is also grown to
>= 1M records by repeating mb.mpr's records (the format allows any count), the .ndax is
read repeatedly until >= 1M rows have been read (a bigger .ndax cannot be made without
rewriting its binary pages).
"""

from __future__ import annotations

import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TARGET_ROWS = 1_000_000


def best_rate(fn, rows: int, repeat: int = 3) -> float:
    """Best rows/s over ``repeat`` runs of ``fn`` (which reads ``rows`` rows)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return rows / best


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


def main() -> int:
    from cyclerflow.importers import biologic_mpr, biologic_mpt, neware_ndax

    if not DATA.is_dir():
        print("../shared/data not found", file=sys.stderr)
        return 1
    print(
        f"{'format':<8} {'file':<34} {'rows':>9} {'ours rows/s':>12} {'peer rows/s':>12} {'ours/peer':>9}"
    )

    try:
        from galvani.BioLogic import MPRfile  # GPL peer, benchmark only
    except ImportError:
        MPRfile = None

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "mb_big.mpr"
        nbig = grow_mpr(DATA / "biologic" / "mb.mpr", big, TARGET_ROWS)
        files = [
            (DATA / "biologic" / f, None) for f in ("gcpl.issue_149.mpr", "peis.mpr", "mb.mpr")
        ]
        files.append((big, nbig))
        for path, n in files:
            n = n or len(next(iter(biologic_mpr.parse_mpr(path).columns.values())))
            reps = 3 if n > 100_000 else 20
            ours_raw = best_rate(lambda p=path: biologic_mpr.parse_mpr(p), n, reps)
            ours_full = best_rate(lambda p=path: biologic_mpr.read(p), n, reps)
            peer = best_rate(lambda p=path: MPRfile(str(p)), n, reps) if MPRfile else float("nan")
            name = path.name if path != big else f"mb.mpr x{nbig // 1588} (grown)"
            print(
                f"{'.mpr':<8} {name + ' [columns]':<34} {n:>9} {ours_raw:>12.3g} {peer:>12.3g} {ours_raw / peer:>9.2f}"
            )
            print(
                f"{'.mpr':<8} {name + ' [BDF import]':<34} {n:>9} {ours_full:>12.3g} {peer:>12.3g} {ours_full / peer:>9.2f}"
            )

    for f in ("gcpl.issue_149.mpt", "peis.mpt", "mb.mpt"):
        path = DATA / "biologic" / f
        n = len(biologic_mpt.parse_mpt(path)[0]["time/s"])
        rate = best_rate(lambda p=path: biologic_mpt.read(p), n, 5)
        print(f"{'.mpt':<8} {f:<34} {n:>9} {rate:>12.3g} {'-':>12} {'-':>9}")

    import logging

    import fastnda

    logging.getLogger("fastnda").setLevel(logging.ERROR)  # its per-read clock-jump warning
    path = DATA / "cellpy" / "20260302_IFE_BTS85_2_9_8_1.ndax"
    n = len(neware_ndax.read(path)["cycling"]["test_time_second"])
    reps = -(-TARGET_ROWS // n)

    def ours_loop() -> None:
        for _ in range(reps):
            neware_ndax.read(path)

    def peer_loop() -> None:
        for _ in range(reps):
            fastnda.read(path)

    ours = best_rate(ours_loop, n * reps, 3)
    peer = best_rate(peer_loop, n * reps, 3)
    print(
        f"{'.ndax':<8} {path.name[:22] + f' x{reps}':<34} {n * reps:>9} {ours:>12.3g} {peer:>12.3g} {ours / peer:>9.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
