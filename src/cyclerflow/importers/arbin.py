"""Arbin exports: CSV (MITS Pro / SQL style) and DataPro/MITS Excel (.xlsx) workbooks.

Both exports hold one row per record with Arbin's column names, e.g. ``Data_Point,
Test_Time, DateTime, Step_Time, Step_Index, Cycle_Index, Current, Voltage,
Charge_Capacity, Discharge_Capacity, Charge_Energy, Discharge_Energy, ...`` (units
optional in parentheses: ``Test_Time(s)``, ``Current(A)``, ``Charge_Capacity(Ah)``).
Arbin's current is already positive when charging. Capacities and energies are kept
as Arbin prints them (they accumulate within a cycle and restart at the next one).
The XLSX reader needs ``openpyxl`` (MIT).

This module also holds small helpers shared by the text importers of this package
(vendor cycle/step counters, naive timestamps, numeric text blocks).
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
from cyclerflow.importers.common import Imported, check_time_increasing
from cyclerflow.units import unit_factor

FORMAT = "arbin"
EXTENSIONS = (".csv", ".xlsx", ".res")
_JET = b"Standard Jet DB"

# --- helpers shared by the vendor text importers ------------------------------------


def fail(fmt: str, path: str | Path, message: str, where: str | None = None) -> InputError:
    """An :class:`InputError` naming the format, the file and the place."""
    return InputError(f"{fmt}: {message}", path=path, where=where)


def read_raw(path: str | Path, fmt: str, *, allow_nul: bool = False) -> bytes:
    """Whole file as bytes; an empty (or all-blank) file is an error.

    A NUL byte in the first 4 KiB means a binary file given to a text reader (error),
    unless ``allow_nul``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("input file not found", path=path)
    raw = path.read_bytes()
    if not raw or raw.isspace():
        raise fail(fmt, path, "file is empty", "byte 0")
    if not allow_nul and b"\x00" in raw[:4096]:
        off = raw.index(b"\x00")
        raise fail(
            fmt, path, "binary content (NUL byte) in what should be a text export", f"byte {off}"
        )
    return raw


def decode(raw: bytes) -> str:
    """UTF-8 (BOM stripped) when valid, else Latin-1."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_text(path: str | Path, fmt: str, *, allow_nul: bool = False) -> str:
    """Whole file as text (see :func:`read_raw` and :func:`decode`)."""
    return decode(read_raw(path, fmt, allow_nul=allow_nul))


def head_lines(raw: bytes, n: int) -> list[str]:
    """The first ``n`` lines (split at LF, CR stripped), each decoded on its own."""
    pieces = raw.split(b"\n", n)[:n]
    if pieces and pieces[0].startswith(b"\xef\xbb\xbf"):
        pieces[0] = pieces[0][3:]
    return [decode(p.rstrip(b"\r")) for p in pieces]


def data_block(raw: bytes, start_line: int) -> bytes:
    """Bytes from 0-based line ``start_line`` to the end, trailing blank lines dropped."""
    off = 0
    for _ in range(start_line):
        nl = raw.find(b"\n", off)
        if nl < 0:
            return b""
        off = nl + 1
    end = len(raw)
    while end > off and raw[end - 1 : end] in (b" ", b"\t", b"\r", b"\n"):
        end -= 1
    return raw[off:end]


def vendor_counts(
    vendor_cycle: np.ndarray, vendor_step: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Our ``cycle_count`` and ``step_count`` (both from 1) from the vendor's numbers.

    ``cycle_count`` goes up by one whenever the vendor's cycle number changes;
    ``step_count`` whenever the vendor's step or cycle number changes.
    """
    c = np.asarray(vendor_cycle)
    s = np.asarray(vendor_step)
    if len(c) == 0:
        return np.zeros(0, "i8"), np.zeros(0, "i8")
    cyc_change = np.concatenate([[False], c[1:] != c[:-1]])
    step_change = cyc_change | np.concatenate([[False], s[1:] != s[:-1]])
    return 1 + np.cumsum(cyc_change, dtype="i8"), 1 + np.cumsum(step_change, dtype="i8")


def naive_to_unix(t: dt.datetime) -> float:
    """Seconds since 1970 UTC of a timestamp; a naive one (no time zone) is taken as UTC."""
    if t.tzinfo is not None:
        return t.timestamp()
    return calendar.timegm(t.timetuple()) + t.microsecond * 1e-6


def parse_block(
    path: str | Path,
    fmt: str,
    lines: Sequence[str] | bytes,
    first_line: int,
    columns: dict[str, int],
    *,
    sep: str | None = None,
    n_fields: int | None = None,
    text_columns: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Parse numeric columns (name -> field index) from data lines of a text table.

    ``sep=None`` splits on any run of whitespace. ``first_line`` is the 1-based line
    number of ``lines[0]`` in the file (used in errors); ``lines`` may also be the raw
    bytes of the data rows (faster: no decoding round trip). ``text_columns`` (name ->
    field index) are returned as arrays of stripped strings. Raises naming the line for
    a short or long row, a non-numeric or a missing value.
    """
    text_columns = text_columns or {}
    if not lines:
        raise fail(fmt, path, "table has no data rows", f"line {first_line}")
    if isinstance(lines, bytes):
        body = lines
        n_lines = body.count(b"\n") + 1
        last = body[body.rfind(b"\n") + 1 :].decode("latin-1")
    else:
        body = "\n".join(lines).encode("utf-8")
        n_lines = len(lines)
        last = lines[-1]
    wanted = {**columns, **text_columns}
    width = max(wanted.values()) + 1 if n_fields is None else n_fields
    try:
        df = pd.read_csv(
            io.BytesIO(body),
            encoding="utf-8",
            encoding_errors="replace",
            sep=r"\s+" if sep is None else sep,
            header=None,
            usecols=sorted(set(wanted.values())),
            dtype={i: str for i in text_columns.values()},
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            engine="c",
            low_memory=False,
        )
    except pd.errors.ParserError as err:
        m = re.search(r"line (\d+), saw (\d+)", str(err))
        if m:
            i = int(m.group(1)) - 1
            raise fail(
                fmt,
                path,
                f"row has {m.group(2)} fields, more than the table's",
                f"line {first_line + i}",
            ) from None
        raise fail(fmt, path, f"cannot parse the table: {err}", f"line {first_line}") from None
    except ValueError as err:  # usecols out of range: every row is short
        raise fail(
            fmt, path, f"rows have fewer than {width} fields ({err})", f"line {first_line}"
        ) from None
    if len(df) != n_lines:
        raise fail(
            fmt, path, "blank or unreadable line inside the table", f"line {first_line + len(df)}"
        )
    out: dict[str, np.ndarray] = {}
    for name, idx in columns.items():
        col = df[idx]
        if not pd.api.types.is_numeric_dtype(col):
            num = pd.to_numeric(col.astype(str).str.strip(), errors="coerce")
            bad = np.flatnonzero(num.isna().to_numpy() & col.notna().to_numpy())
            if len(bad):
                i = int(bad[0])
                raise fail(
                    fmt,
                    path,
                    f"column {name!r} has a non-numeric value {col.iloc[i]!r}",
                    f"line {first_line + i}",
                )
            col = num
        values = col.to_numpy(dtype="f8")
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            i = int(bad[0])
            raise fail(
                fmt,
                path,
                f"column {name!r} is missing (short or truncated row)",
                f"line {first_line + i}",
            )
        out[name] = values
    for name, idx in text_columns.items():
        col = df[idx]
        miss = np.flatnonzero(col.isna().to_numpy())
        if len(miss):
            i = int(miss[0])
            raise fail(
                fmt,
                path,
                f"column {name!r} is missing (short or truncated row)",
                f"line {first_line + i}",
            )
        out[name] = col.str.strip().to_numpy(dtype=object)
    if n_fields is not None and sep is not None:
        # a cut-off file ends in a short row (short rows elsewhere show up as missing values)
        got = last.count(sep) + 1
        if got < n_fields:
            raise fail(
                fmt,
                path,
                f"row has {got} fields, expected {n_fields} (truncated?)",
                f"line {first_line + n_lines - 1}",
            )
    return out


def as_int(
    path: str | Path, fmt: str, name: str, values: np.ndarray, first_line: int
) -> np.ndarray:
    """Whole-number column as int64, error naming the line of the first fraction."""
    frac = np.flatnonzero(values != np.round(values))
    if len(frac):
        i = int(frac[0])
        raise fail(
            fmt,
            path,
            f"column {name!r} must hold whole numbers (got {values[i]!r})",
            f"line {first_line + i}",
        )
    return values.astype("i8")


# --- Arbin columns -------------------------------------------------------------------

#: normalised Arbin name -> (BDF column, dimension, default unit)
_COLUMNS: dict[str, tuple[str, str, str]] = {
    "test_time": ("test_time_second", "time", "s"),
    "current": ("current_ampere", "current", "A"),
    "voltage": ("voltage_volt", "voltage", "V"),
    "charge_capacity": ("charge_capacity_ampere_hour", "charge", "Ah"),
    "discharge_capacity": ("discharge_capacity_ampere_hour", "charge", "Ah"),
    "charge_energy": ("charge_energy_watt_hour", "energy", "Wh"),
    "discharge_energy": ("discharge_energy_watt_hour", "energy", "Wh"),
    "cycle_index": ("vendor_cycle_index", "", ""),
    "step_index": ("vendor_step_index", "", ""),
    "datetime": ("unix_time_second", "", ""),
    "date_time": ("unix_time_second", "", ""),
    "temperature": ("temperature_kelvin", "temperature", "C"),
    "aux_temperature_1": ("temperature_kelvin", "temperature", "C"),
}
_LABEL = re.compile(r"^\s*([^(\[]+?)\s*(?:[(\[]\s*([^)\]]*?)\s*[)\]])?\s*$")


def _split_label(label: str) -> tuple[str, str]:
    """('charge_capacity', 'Ah') from 'Charge_Capacity(Ah)' / 'Charge Capacity (Ah)'."""
    m = _LABEL.match(str(label))
    if not m:
        return str(label).strip().lower(), ""
    name = re.sub(r"[\s_]+", "_", m.group(1).strip().lower())
    return name, (m.group(2) or "").strip()


def _factor(path: Path, label: str, dim: str, unit: str) -> tuple[float, float]:
    """(scale, offset) taking a column in ``unit`` to SI (temperature: degC -> K)."""
    if dim == "temperature":
        u = unit.replace("°", "").replace("deg", "").strip() or "C"
        if u in ("C", "c"):
            return 1.0, 273.15
        if u == "K":
            return 1.0, 0.0
        raise fail(FORMAT, path, f"unknown temperature unit {unit!r} in column {label!r}", "line 1")
    try:
        got, factor = unit_factor(unit.replace("Ω", "Ohm"))
    except ValueError:
        raise fail(FORMAT, path, f"unknown unit {unit!r} in column {label!r}", "line 1") from None
    if got != dim:
        raise fail(FORMAT, path, f"column {label!r} is in {unit!r}, expected a {dim}", "line 1")
    return factor, 0.0


def _map_labels(path: Path, labels: Sequence[object]) -> dict[int, tuple[str, float, float, str]]:
    """Field index -> (BDF name, scale, offset, label) for the Arbin columns we keep."""
    found: dict[int, tuple[str, float, float, str]] = {}
    used: set[str] = set()
    for i, label in enumerate(labels):
        if label is None:
            continue
        name, unit = _split_label(str(label))
        if name not in _COLUMNS:
            continue
        bdf, dim, default = _COLUMNS[name]
        if bdf in used:
            continue
        scale, offset = (1.0, 0.0) if not dim else _factor(path, str(label), dim, unit or default)
        found[i] = (bdf, scale, offset, str(label))
        used.add(bdf)
    return found


def _looks_arbin(labels: Sequence[object]) -> bool:
    names = {_split_label(str(x))[0] for x in labels if x is not None}
    return {"test_time", "current", "voltage", "cycle_index", "step_index"} <= names


def sniff(path: Path, head: bytes) -> bool:
    """Arbin CSV header line, an .xlsx workbook or a .res Jet database (checked when read)."""
    if head[4:19] == _JET:
        return Path(path).suffix.lower() == ".res"
    if head.startswith(b"PK"):
        if Path(path).suffix.lower() not in (".xlsx", ".xlsm"):
            return False
        try:
            with zipfile.ZipFile(path) as z:
                return "xl/workbook.xml" in z.namelist()
        except Exception:  # any unreadable zip: not ours
            return False
    first = head.decode("latin-1").lstrip("\ufeff\xef\xbb\xbf").splitlines()[:1]
    if not first:
        return False
    return _looks_arbin(first[0].split(","))


def _finish(
    path: Path, cols: dict[str, np.ndarray], first_line: int, header: str, sheet: str = ""
) -> Imported:
    """Checks, sign/units done; add our counters and vendor step as step_index."""
    where = f"sheet {sheet!r} " if sheet else ""
    for need in (
        "test_time_second",
        "voltage_volt",
        "current_ampere",
        "vendor_cycle_index",
        "vendor_step_index",
    ):
        if need not in cols:
            raise fail(FORMAT, path, f"{where}missing the column for {need}", "line 1")
    n = len(cols["test_time_second"])
    if n == 0:
        raise fail(FORMAT, path, f"{where}no data rows after the header", f"line {first_line}")
    for k in ("vendor_cycle_index", "vendor_step_index"):
        cols[k] = as_int(path, FORMAT, k, cols[k], first_line)
    check_time_increasing(path, "Test_Time", cols["test_time_second"], first_line=first_line)
    cols["cycle_count"], cols["step_count"] = vendor_counts(
        cols["vendor_cycle_index"], cols["vendor_step_index"]
    )
    cols["step_index"] = cols["vendor_step_index"].copy()
    return {"cycling": cols, "spectra": [], "header": header}


def _read_csv(path: Path, text: str | None = None, *, ole_dates: bool = False) -> Imported:
    """Arbin CSV text (from the file, or from ``mdb-export`` of a .res table)."""
    raw = read_raw(path, FORMAT) if text is None else text.encode("utf-8")
    lines = head_lines(raw, 1)
    labels = [x.strip().strip('"') for x in lines[0].split(",")]
    if not _looks_arbin(labels):
        raise fail(
            FORMAT,
            path,
            f"not an Arbin CSV export: header line reads {lines[0][:100]!r} "
            "(expected Test_Time, Current, Voltage, Cycle_Index, Step_Index columns)",
            "line 1",
        )
    mapping = _map_labels(path, labels)
    data = data_block(raw, 1)
    if not data:
        raise fail(FORMAT, path, "no data rows after the header", "line 2")
    date_idx = next((i for i, m in mapping.items() if m[0] == "unix_time_second"), None)
    numeric = {m[3]: i for i, m in mapping.items() if i != date_idx or ole_dates}
    texts = {} if date_idx is None or ole_dates else {mapping[date_idx][3]: date_idx}
    by_label = parse_block(
        path, FORMAT, data, 2, numeric, sep=",", n_fields=len(labels), text_columns=texts
    )
    cols = {mapping[i][0]: by_label[label] for label, i in numeric.items()}
    for i, (bdf, scale, offset, _) in mapping.items():
        if i != date_idx and (scale != 1.0 or offset != 0.0):
            cols[bdf] = cols[bdf] * scale + offset
    if date_idx is not None and ole_dates:
        # OLE Automation date: days since 1899-12-30 (local time of the tester, taken as UTC)
        # (float days carry ~1e-6 s noise: rounded to the millisecond)
        cols["unix_time_second"] = np.round((cols["unix_time_second"] - 25569.0) * 86400.0, 3)
    elif date_idx is not None:
        cols["unix_time_second"] = _parse_dates(path, by_label[mapping[date_idx][3]], 2)
    return _finish(path, cols, 2, lines[0])


def _mdb_export(path: Path, table: str) -> str:
    """CSV text of one table of a Jet/Access database, by running mdbtools' ``mdb-export``.

    mdbtools is GPL: it is run as a separate program (never linked or copied) and is
    optional; without it .res files give a clear error.
    """
    exe = shutil.which("mdb-export")
    if exe is None:
        raise fail(
            FORMAT,
            path,
            "reading Arbin .res (Access/Jet database) needs the 'mdb-export' program of mdbtools "
            "(e.g. apt install mdbtools), or export the data to CSV/XLSX with Arbin's software",
            "byte 0",
        )
    try:
        res = subprocess.run([exe, str(path), table], capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise fail(FORMAT, path, f"mdb-export failed ({err})", "byte 0") from None
    if res.returncode != 0 or not res.stdout.strip():
        msg = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise fail(
            FORMAT,
            path,
            f"mdb-export cannot read table {table!r} ({msg[-1] if msg else 'no output'}): corrupt or truncated database?",
            "byte 0",
        )
    return res.stdout.decode("utf-8", "replace")


def _access_parser_table(path: Path, table: str) -> str:
    """CSV text of one table read with access-parser (Apache-2.0, pure Python, slow)."""
    try:
        import logging

        from access_parser import AccessParser

        logging.getLogger("access_parser").setLevel(logging.ERROR)
    except ModuleNotFoundError:
        raise fail(
            FORMAT,
            path,
            "reading Arbin .res (Access/Jet database) needs mdbtools' 'mdb-export' program "
            "(e.g. apt install mdbtools) or the access-parser package (pip install access-parser), "
            "or export the data to CSV/XLSX with Arbin's software",
            "byte 0",
        ) from None
    try:
        db = AccessParser(str(path))
        cols = db.parse_table(table)
    except (KeyboardInterrupt, SystemExit):  # pragma: no cover
        raise
    except BaseException as err:
        raise fail(
            FORMAT,
            path,
            f"access-parser cannot read table {table!r} ({type(err).__name__}: {str(err)[:80]}): "
            "corrupt or truncated database?",
            "byte 0",
        ) from None
    if not cols:
        raise fail(FORMAT, path, f"table {table!r} not found or empty", "byte 0")
    df = pd.DataFrame({k: list(v) for k, v in cols.items()})
    return df.to_csv(index=False, float_format="%.17g")


RES_BACKENDS = ("mdb-export", "access-parser")


def read_res(path: str | Path, backend: str | None = None) -> Imported:
    """Read an Arbin MITS Pro ``.res`` (Access/Jet database): ``Channel_Normal_Table``.

    ``backend``: ``"mdb-export"`` (mdbtools, GPL, run as a separate program; fast) or
    ``"access-parser"`` (Apache-2.0 pure-Python library; ~50x slower). Default: the
    first one available. The two agree to the digits mdb-export prints (it prints
    single-precision columns with 8 significant digits).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(0x15)
    if head[4:19] != _JET:
        raise fail(
            FORMAT,
            path,
            "not an Arbin .res file (no 'Standard Jet DB' signature at byte 4)",
            "byte 4",
        )
    page = 2048 if len(head) > 0x14 and head[0x14] == 0 else 4096  # Jet3 / Jet4+ page size
    size = path.stat().st_size
    if size % page:
        raise fail(
            FORMAT,
            path,
            f"truncated Jet database: {size} bytes is not a whole number of {page}-byte pages",
            f"byte {size - size % page}",
        )
    if backend is None:
        backend = "mdb-export" if shutil.which("mdb-export") else "access-parser"
    if backend not in RES_BACKENDS:
        raise InputError(f"unknown .res backend {backend!r} (known: {', '.join(RES_BACKENDS)})")
    table = _mdb_export if backend == "mdb-export" else _access_parser_table
    data = _read_csv(path, table(path, "Channel_Normal_Table"), ole_dates=True)
    try:
        data["header"] = "[Global_Table]\n" + table(path, "Global_Table")
    except InputError:
        data["header"] = ""
    data["header"] += f"\n# read with {backend}"
    return data


def _parse_dates(path: Path, values: Sequence[object], first_line: int) -> np.ndarray:
    """Epoch seconds, or date strings / datetimes (naive = UTC) -> unix seconds."""
    s = pd.Series(list(values), dtype=object)
    if not any(isinstance(v, (dt.datetime, dt.date)) for v in values[:1]):
        num = pd.to_numeric(s, errors="coerce")
        if num.notna().all():
            return num.to_numpy("f8")
    try:
        if all(isinstance(v, dt.datetime) for v in values):
            t = pd.to_datetime(s.astype("datetime64[us]"))
        else:
            t = pd.to_datetime(s.astype(str).str.strip(), format="mixed")
    except (ValueError, TypeError) as err:
        raise fail(
            FORMAT, path, f"cannot read the date/time column ({err})", f"line {first_line}"
        ) from None
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise fail(FORMAT, path, f"date/time {values[i]!r} is not a date", f"line {first_line + i}")
    if t.dt.tz is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return (t - pd.Timestamp(0)).dt.total_seconds().to_numpy("f8")


#: xlsx readers tried in this order (both MIT); tests may narrow it
XLSX_READERS: tuple[str, ...] = ("python-calamine", "openpyxl")


def _open_xlsx(
    path: Path,
) -> tuple[list[tuple[str, Iterator[Sequence[object]]]], Callable[[], None]]:
    """[(sheet title, row iterator)] and a close function.

    Uses python-calamine (MIT, Rust reader, ~20x faster) when installed, else openpyxl
    (MIT). Empty cells come back as None or "" depending on the reader.
    """
    CalamineWorkbook = None
    if "python-calamine" in XLSX_READERS:
        try:
            from python_calamine import CalamineWorkbook
        except ModuleNotFoundError:
            CalamineWorkbook = None
    try:
        if CalamineWorkbook is not None:
            cwb = CalamineWorkbook.from_path(str(path))
            sheets = [
                (name, iter(cwb.get_sheet_by_name(name).to_python())) for name in cwb.sheet_names
            ]
            return sheets, lambda: None
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        return [(ws.title, ws.iter_rows(values_only=True)) for ws in wb.worksheets], wb.close
    except ModuleNotFoundError:  # pragma: no cover - a reader is installed in the venv
        raise fail(FORMAT, path, "reading .xlsx needs openpyxl or python-calamine") from None
    except (KeyboardInterrupt, SystemExit):  # pragma: no cover
        raise
    except BaseException as err:  # corrupt zips/XML: many types, incl. a Rust panic
        raise fail(
            FORMAT,
            path,
            f"not a readable .xlsx workbook ({type(err).__name__}: {str(err)[:80]})",
            "byte 0",
        ) from None


def _read_xlsx(path: Path) -> Imported:
    sheets, close = _open_xlsx(path)
    try:
        header_lines: list[str] = []
        parts: list[dict[str, np.ndarray]] = []
        for title, rows in sheets:
            try:
                first = next(rows)
            except StopIteration:
                continue
            if not _looks_arbin(first):
                header_lines.append(f"[{title}]")
                for r in [first, *rows]:
                    vals = ["" if v is None else str(v) for v in r]
                    if any(vals):
                        header_lines.append("\t".join(vals).rstrip())
                continue
            mapping = _map_labels(path, first)
            body = [r for r in rows if any(v is not None and v != "" for v in r)]
            cols: dict[str, np.ndarray] = {}
            for i, (bdf, scale, offset, label) in mapping.items():
                vals = [r[i] if i < len(r) else None for r in body]
                if bdf == "unix_time_second":
                    cols[bdf] = _parse_dates(path, vals, 2)
                    continue
                arr = pd.to_numeric(pd.Series(vals, dtype=object), errors="coerce").to_numpy("f8")
                bad = np.flatnonzero(~np.isfinite(arr))
                if len(bad):
                    j = int(bad[0])
                    raise fail(
                        FORMAT,
                        path,
                        f"sheet {title!r} column {label!r} has a missing or non-numeric value {vals[j]!r}",
                        f"row {j + 2}",
                    )
                cols[bdf] = arr * scale + offset
            header_lines.append(
                f"[{title}] " + "\t".join("" if v is None else str(v) for v in first)
            )
            parts.append(_finish(path, cols, 2, "", title)["cycling"])
    except InputError:
        raise
    except Exception as err:
        raise fail(
            FORMAT, path, f"corrupt .xlsx workbook ({type(err).__name__}: {str(err)[:80]})"
        ) from None
    finally:
        close()
    if not parts:
        raise fail(
            FORMAT,
            path,
            "no sheet with Arbin data columns (Test_Time, Current, Voltage, Cycle_Index, Step_Index)",
        )
    cols = {
        k: np.concatenate([p[k] for p in parts]) for k in parts[0] if all(k in p for p in parts)
    }
    for k in ("cycle_count", "step_count"):
        cols.pop(k)
    check_time_increasing(path, "Test_Time", cols["test_time_second"], first_line=2)
    cols["cycle_count"], cols["step_count"] = vendor_counts(
        cols["vendor_cycle_index"], cols["vendor_step_index"]
    )
    return {"cycling": cols, "spectra": [], "header": "\n".join(header_lines)}


def read(path: str | Path) -> Imported:
    """Read an Arbin CSV or XLSX export (SI units, BDF names, current > 0 charging)."""
    path = Path(path)
    if not path.exists():
        raise InputError("input file not found", path=path)
    if path.stat().st_size == 0:
        raise fail(FORMAT, path, "file is empty", "byte 0")
    with open(path, "rb") as fh:
        magic = fh.read(4)
        jet = fh.read(15)
    if magic.startswith(b"PK"):
        return _read_xlsx(path)
    if jet == _JET or path.suffix.lower() == ".res":
        return read_res(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        raise fail(
            FORMAT,
            path,
            f"not an .xlsx workbook (starts with {magic!r}, expected a zip 'PK')",
            "byte 0",
        )
    return _read_csv(path)
