"""Rows per second of every importer on the files in fixtures/vendor (run by hand).

For the text formats the vendor file is grown to at least 1M rows (data rows repeated
with their time columns shifted so time keeps increasing) and read once; the figure
is compared with ``pandas.read_csv`` parsing the same data rows (the floor cost of
turning text into numbers), printed as a ratio. XLSX is grown to 1M rows too (one sheet
holds up to 1,048,576; writing it takes a minute or two) and read with python-calamine
when installed, else openpyxl (``--xlsx-rows`` to change). Formats
that cannot be grown by text edits (.res, .mpr, .ndax and the other helper's files)
are read as they are, repeatedly for at least a second.

    python benchmarks/importers.py [--rows N] [--repeat R] [--data DIR] [--only LABEL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import io
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "fixtures" / "vendor"
SHARED = Path(os.environ.get("CYCLERFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _rows(data: dict) -> int:
    n = 0
    c = data.get("cycling") or {}
    if c:
        n += len(next(iter(c.values())))
    n += sum(len(s["frequency_hertz"]) for s in data.get("spectra", []))
    return n


def _grow_text(
    src: Path,
    dst: Path,
    *,
    header_lines: int,
    sep: str,
    time_fields: tuple[int, ...],
    target: int,
    footer_lines: int = 0,
    encoding: str = "latin-1",
    date_field: int | None = None,
    date_style: str = "",
    time_unit: float = 1.0,
) -> int:
    """Repeat the data rows of ``src`` until ``target`` rows, shifting the time fields.

    Each repetition starts one span of the first time field after the previous one
    (its last step added); every time field (the others are epoch seconds in the same
    unit) and the date field (``date_style``, see :data:`_DATES`) move by that same
    span (``time_unit``: seconds per unit of the first time field), so dates keep
    increasing in step with the time column.
    """
    lines = src.read_bytes().decode(encoding).splitlines()
    head = lines[:header_lines]
    body = [ln for ln in lines[header_lines : len(lines) - footer_lines] if ln.strip()]
    foot = lines[len(lines) - footer_lines :] if footer_lines else []
    if sep != " " and body[0].endswith(sep):
        # rows end with a separator in this export (its last row may lack it): every
        # repeated row keeps it, as in a longer export of the same test
        body = [ln if ln.endswith(sep) else ln + sep for ln in body]
    split = [ln.split(sep) if sep != " " else ln.split() for ln in body]
    span = 0.0
    if time_fields:
        t = np.array([float(r[time_fields[0]]) for r in split])
        span = (t[-1] - t[0]) + (t[1] - t[0] if len(t) > 1 else 1.0)
    dates = None
    if date_field is not None:
        fmt = _DATES[date_style][0]
        dates = [dt.datetime.strptime(r[date_field].strip(), fmt) for r in split]
    reps = -(-target // len(body))
    out = io.StringIO()
    out.write("\n".join(head) + "\n")
    joiner = sep if sep != " " else "\t"
    for k in range(reps):
        if k == 0 or not time_fields:
            out.write("\n".join(body) + "\n")
            continue
        shift = dt.timedelta(seconds=k * span * time_unit)
        for i, r in enumerate(split):
            rr = list(r)
            for f in time_fields:
                rr[f] = repr(float(float(r[f]) + k * span))
            if dates is not None:
                rr[date_field] = _DATES[date_style][1](dates[i] + shift)
            out.write(joiner.join(rr) + "\n")
    if foot:
        out.write("\n".join(foot) + "\n")
    dst.write_bytes(out.getvalue().encode(encoding))
    return reps * len(body)


def _us12(d: dt.datetime) -> str:
    """``5/11/2021 3:40:24 PM`` (Maccor, no zero padding, 12-hour clock)."""
    h = d.hour % 12 or 12
    ampm = "AM" if d.hour < 12 else "PM"
    return f"{d.month}/{d.day}/{d.year} {h}:{d.minute:02d}:{d.second:02d} {ampm}"


#: date style -> (strptime format, writer)
_DATES = {
    "us12": ("%m/%d/%Y %I:%M:%S %p", _us12),
    "us24": ("%m/%d/%Y %H:%M:%S", lambda d: d.strftime("%m/%d/%Y %H:%M:%S")),
}


def _grow_xlsx(src: Path, dst: Path, target: int) -> int:
    import openpyxl

    wb = openpyxl.load_workbook(src, read_only=True, data_only=True)
    ws = wb["Channel_11_1"]
    rows = list(ws.iter_rows(values_only=True))
    wb.close()
    head, body = rows[0], rows[1:]
    out = openpyxl.Workbook(write_only=True)
    sheet = out.create_sheet("Channel_11_1")
    sheet.append(head)
    span = body[-1][1] - body[0][1] + 1.0
    n = 0
    k = 0
    while n < target:
        for r in body:
            rr = list(r)
            rr[1] = r[1] + k * span
            if isinstance(r[0], dt.datetime):  # Date_Time moves with the test time
                rr[0] = r[0] + dt.timedelta(seconds=k * span)
            sheet.append(rr)
            n += 1
            if n >= target:
                break
        k += 1
    out.save(dst)
    return n


def _time(fn: Callable[[], dict], min_seconds: float = 1.0) -> tuple[float, int]:
    """(seconds per call, rows) — best of repeated calls taking at least min_seconds."""
    best = float("inf")
    rows = 0
    total = 0.0
    while total < min_seconds or best == float("inf"):
        t0 = time.perf_counter()
        data = fn()
        dt = time.perf_counter() - t0
        rows = _rows(data)
        best = min(best, dt)
        total += dt
    return best, rows


class Clock:
    """Best wall and best CPU seconds (process-wide, all threads) of repeated calls."""

    def __init__(self) -> None:
        self.wall = float("inf")
        self.cpu = float("inf")

    def run(self, fn: Callable[[], object]) -> object:
        """Call ``fn`` once, keep the best wall and CPU time; return its result."""
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        c1, w1 = time.process_time(), time.perf_counter()
        self.wall = min(self.wall, w1 - w0)
        self.cpu = min(self.cpu, c1 - c0)
        return out


def _pandas_floor(path: Path, header_lines: int, sep: str, encoding: str = "latin-1") -> None:
    pd.read_csv(
        path,
        sep=r"\s+" if sep == " " else sep,
        skiprows=header_lines,
        header=None,
        encoding=encoding,
        engine="c",
        low_memory=False,
    )


def _bdf_sources(d: Path, tmpd: Path) -> list:
    """A BDF CSV written by ``cyclerflow export --format bdf-csv`` of the Arbin file."""
    from cyclerflow.export import export_bdf
    from cyclerflow.importers import bdf_csv, import_files

    src = d / "arbin/arbin_example.csv"
    if not src.exists():
        return []
    cell = import_files([src], tmpd / "bdf-src.h5")
    out = export_bdf(cell, tmpd / "bdf-src.bdf.csv", fmt="bdf-csv")
    labels = out.read_text().split("\n", 1)[0].replace('"', "").split(",")
    times = tuple(labels.index(x) for x in ("Test Time / s", "Unix Time / s") if x in labels)
    return [("bdf csv (exported)", bdf_csv, out, dict(header_lines=1, sep=",", time_fields=times))]


def xlsx_label() -> str:
    """Which xlsx reader arbin.py will use."""
    try:
        import python_calamine  # noqa: F401
    except ModuleNotFoundError:
        return "arbin xlsx (openpyxl)"
    return "arbin xlsx (python-calamine)"


def _grown_cases(d: Path) -> list:
    """(label, module, source, grow kwargs) of the text formats grown to N rows."""
    from cyclerflow.importers import arbin, biologic_mpt, eis_text, gamry_dta, maccor, zplot

    grown = [
        (
            "arbin csv",
            arbin,
            d / "arbin/arbin_example.csv",
            dict(header_lines=1, sep=",", time_fields=(1, 2)),
        ),
        (
            "maccor (key/value header)",
            maccor,
            d / "cellpy/maccor_002.txt",
            dict(
                header_lines=15,
                sep="\t",
                time_fields=(4,),
                date_field=12,
                date_style="us12",
                time_unit=60.0,
            ),
        ),
        (
            "maccor (Today's Date)",
            maccor,
            d / "maccor/maccor_example.001",
            dict(
                header_lines=2,
                sep="\t",
                time_fields=(3,),
                date_field=11,
                date_style="us24",
                time_unit=60.0,
            ),
        ),
        (
            "gamry dta (CHRONOA)",
            gamry_dta,
            d / "gamry/chronoa_data.dta",
            dict(header_lines=66, sep="\t", time_fields=(2,)),
        ),
        (
            "gamry dta (ZCURVE)",
            gamry_dta,
            d / "eis/exampleDataGamry.DTA",
            dict(header_lines=448, sep="\t", time_fields=()),
        ),
        (
            "zplot .z",
            zplot,
            d / "eis/exampleDataZPlot.z",
            dict(header_lines=123, sep="\t", time_fields=()),
        ),
        (
            "biologic .mpt (PEIS)",
            biologic_mpt,
            d / "biologic/exampleDataBioLogic.mpt",
            dict(header_lines=61, sep="\t", time_fields=(5,)),
        ),
        (
            "eis text: headerless csv",
            eis_text,
            d / "eis/exampleData.csv",
            dict(header_lines=0, sep=",", time_fields=()),
        ),
        (
            "eis text: ZView/Autolab",
            eis_text,
            d / "eis/exampleDataAutolab.txt",
            dict(header_lines=11, sep=",", time_fields=(), encoding="utf-8"),
        ),
        (
            "eis text: CH Instruments",
            eis_text,
            d / "eis/exampleDataCHInstruments.txt",
            dict(header_lines=18, sep=",", time_fields=()),
        ),
        (
            "eis text: Parstat (AC rows)",
            eis_text,
            d / "eis/exampleDataParstat.txt",
            dict(header_lines=782, sep="\t", time_fields=()),
        ),
    ]
    return grown


def _as_is_cases() -> list:
    """(label, module, function, file, extra args) of the files read as they are."""
    res = "cellpy/20160805_test001_45_cc_01.res"
    as_is = [
        ("arbin .res (mdb-export)", "cyclerflow.importers.arbin", "read_res", res, ("mdb-export",)),
        (
            "arbin .res (access-parser)",
            "cyclerflow.importers.arbin",
            "read_res",
            res,
            ("access-parser",),
        ),
        (
            "biologic .mpr GCPL",
            "cyclerflow.importers.biologic_mpr",
            "read",
            "biologic/gcpl.issue_149.mpr",
            (),
        ),
        (
            "biologic .mpr Modulo Bat",
            "cyclerflow.importers.biologic_mpr",
            "read",
            "biologic/mb.mpr",
            (),
        ),
        (
            "biologic .mpt Modulo Bat",
            "cyclerflow.importers.biologic_mpt",
            "read",
            "biologic/mb.mpt",
            (),
        ),
        (
            "biologic .mpt PEIS",
            "cyclerflow.importers.biologic_mpt",
            "read",
            "eis/exampleDataBioLogic.mpt",
            (),
        ),
        (
            "neware .ndax",
            "cyclerflow.importers.neware_ndax",
            "read",
            "cellpy/20260302_IFE_BTS85_2_9_8_1.ndax",
            (),
        ),
        (
            "eis text: VersaStudio .par",
            "cyclerflow.importers.eis_text",
            "read",
            "eis/exampleDataVersaStudio.par",
            (),
        ),
        (
            "arbin xlsx (vendor file)",
            "cyclerflow.importers.arbin",
            "read",
            "arbin/bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx",
            (),
        ),
    ]
    return as_is


def _run_grown(cases: list, tmpd: Path, rows: int, repeat: int = 1) -> None:
    """Grow, read once, read the same rows with pandas; print both and the ratio."""
    for label, mod, src, kw in cases:
        if not src.exists():
            print(f"{label:32s} (missing {src})")
            continue
        dst = tmpd / ("big" + src.suffix)
        n = _grow_text(src, dst, target=rows, **kw)
        enc = kw.get("encoding", "latin-1")
        ours, peer = Clock(), Clock()
        for _ in range(repeat):  # best of `repeat`, ours and pandas' alternating
            data = ours.run(partial(mod.read, dst))
            peer.run(partial(_pandas_floor, dst, kw["header_lines"], kw["sep"], enc))
        got = _rows(data)
        assert got >= n * 0.99, (label, got, n)
        print(
            f"{label:32s} {got:10d} {ours.wall:8.2f} {got / ours.wall:12,.0f} "
            f"{got / peer.wall:20,.0f} {peer.wall / ours.wall:6.2f} {peer.cpu / ours.cpu:6.2f}"
        )


def _run_xlsx(d: Path, tmpd: Path, rows: int) -> None:
    from cyclerflow.importers import arbin

    src = d / "arbin/bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx"
    if not src.exists():
        return
    dst = tmpd / "big.xlsx"
    _grow_xlsx(src, dst, rows)
    t0 = time.perf_counter()
    data = arbin.read(dst)
    dt = time.perf_counter() - t0
    print(
        f"{xlsx_label():32s} {_rows(data):10d} {dt:8.2f} {_rows(data) / dt:12,.0f} {'-':>20s} {'-':>6s}"
    )


def _run_as_is(d: Path) -> None:
    print()
    print("as-is files (best of repeated reads):")
    for label, modname, func, rel, extra in _as_is_cases():
        try:
            fn = getattr(importlib.import_module(modname), func)
        except ModuleNotFoundError:
            print(f"{label:32s} (module {modname} not present)")
            continue
        path = next(
            (p for p in (d / rel, SHARED / rel, d / "neware" / Path(rel).name) if p.exists()),
            d / rel,
        )
        if not path.exists():
            print(f"{label:32s} (missing {path})")
            continue
        try:
            dt, rows = _time(lambda fn=fn, path=path, extra=extra: fn(path, *extra))
        except Exception as err:  # report, keep going
            print(f"{label:32s} failed: {err}")
            continue
        print(f"{label:32s} {rows:10d} {dt:8.3f} {rows / dt:12,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--xlsx-rows", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--as-is-only", action="store_true", help="skip the grown files")
    ap.add_argument("--repeat", type=int, default=1, help="best of N reads (ours and pandas')")
    ap.add_argument("--only", default="", help="run only the formats whose label contains this")
    args = ap.parse_args()
    d = args.data
    print(
        f"{'format':32s} {'rows':>10s} {'seconds':>8s} {'rows/s':>12s} {'pandas floor rows/s':>20s} {'ratio':>6s} {'cpu':>6s}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        if not args.as_is_only:
            cases = _grown_cases(d) + _bdf_sources(d, tmpd)
            cases = [c for c in cases if args.only in c[0]]
            _run_grown(cases, tmpd, args.rows, args.repeat)
            if args.only in xlsx_label():
                _run_xlsx(d, tmpd, args.xlsx_rows)
    if not args.only:
        _run_as_is(d)


if __name__ == "__main__":
    main()
