"""Arbin exports: CSV (MITS Pro / SQL style) and DataPro/MITS Excel (.xlsx) workbooks.

Both exports hold one row per record with Arbin's column names, e.g. ``Data_Point,
Test_Time, DateTime, Step_Time, Step_Index, Cycle_Index, Current, Voltage,
Charge_Capacity, Discharge_Capacity, Charge_Energy, Discharge_Energy, ...`` (units
optional in parentheses: ``Test_Time(s)``, ``Current(A)``, ``Charge_Capacity(Ah)``).
Arbin's current is already positive when charging. Capacities and energies are kept
as Arbin prints them (they accumulate within a cycle and restart at the next one).
The XLSX reader needs ``openpyxl`` (MIT).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cyclerflow.errors import InputError
from cyclerflow.importers import xlsx
from cyclerflow.importers.common import Imported, check_time_increasing, vendor_counts
from cyclerflow.importers.guarded import check_clock, check_dates, parse_dates
from cyclerflow.importers.quoted import unquote
from cyclerflow.importers.textfmt import as_int, data_block, fail, head_lines, open_raw, parse_block
from cyclerflow.importers.textspan import first_line
from cyclerflow.units import unit_factor

FORMAT = "arbin"
EXTENSIONS = (".csv", ".xlsx", ".res")
#: what :func:`sniff` looks for (said when no reader fits)
SIGNATURE = "an Arbin CSV header (Test_Time, Current, Voltage, Cycle_Index, Step_Index), an .xlsx workbook or a .res Jet database"
_JET = b"Standard Jet DB"

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
    return _looks_arbin(first[0].split(",")) or _looks_arbin(first[0].split(";"))


def _finish(
    path: Path,
    cols: dict[str, np.ndarray],
    first_line: int,
    header: str,
    sheet: str = "",
    empty: Sequence[str] = (),
) -> Imported:
    """Checks, sign/units done; add our counters and vendor step as step_index."""
    where = f"sheet {sheet!r} " if sheet else ""
    counters = ("vendor_cycle_index", "vendor_step_index")
    needed = ("test_time_second", "voltage_volt", "current_ampere")
    for need in needed + (() if empty else counters):
        if need not in cols:
            raise fail(FORMAT, path, f"{where}missing the column for {need}", "line 1")
    n = len(cols["test_time_second"])
    if n == 0:
        raise fail(FORMAT, path, f"{where}no data rows after the header", f"line {first_line}")
    check_time_increasing(path, "Test_Time", cols["test_time_second"], first_line=first_line)
    if "unix_time_second" in cols:
        check_dates(path, FORMAT, f"{where}DateTime", cols["unix_time_second"], first_line)
        check_clock(path, FORMAT, f"{where}DateTime", cols["unix_time_second"], first_line)
    events = []
    if all(c in cols for c in counters):
        for k in counters:
            cols[k] = as_int(path, FORMAT, k, cols[k], first_line)
        cols["cycle_count"], cols["step_count"] = vendor_counts(
            cols["vendor_cycle_index"], cols["vendor_step_index"]
        )
        cols["step_index"] = cols["vendor_step_index"].copy()
    else:
        for k in counters:
            cols.pop(k, None)  # one counter without the other: steps come from the current
        events.append(
            {
                "kind": "note",
                "message": f"{', '.join(empty)} present but empty: steps and cycles are "
                "found from the current",
                "test_time_second": float(cols["test_time_second"][0]),
            }
        )
    return {"cycling": cols, "spectra": [], "header": header, "events": events}


def _read_csv(path: Path, text: str | None = None, *, ole_dates: bool = False) -> Imported:
    """Arbin CSV text (from the file, or from ``mdb-export`` of a .res table)."""
    if text is not None:
        return _csv_rows(path, memoryview(text.encode("utf-8")), ole_dates)
    with open_raw(path, FORMAT) as raw:  # a view of the file: the rows are not copied
        return _csv_rows(path, raw, ole_dates)


def _csv_rows(path: Path, raw: memoryview, ole_dates: bool) -> Imported:
    """The columns of Arbin CSV bytes ``raw`` (see :func:`_read_csv`)."""
    lines = head_lines(raw, 1)
    if not _looks_arbin(lines[0].split(",")) and _looks_arbin(lines[0].split(";")):
        raw = memoryview(_from_semicolons(path, bytes(raw)))
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
    data = unquote(data)
    date_idx = next((i for i, m in mapping.items() if m[0] == "unix_time_second"), None)
    # a DateTime printed as Unix seconds (first row tells) is parsed as a number
    epoch = ole_dates or (date_idx is not None and _is_number(data, date_idx))
    numeric = {m[3]: i for i, m in mapping.items() if i != date_idx or epoch}
    texts = {} if date_idx is None or epoch else {mapping[date_idx][3]: date_idx}
    empty = _empty_columns(path, data, labels, [i for i in mapping if i != date_idx])
    for i in empty:
        numeric.pop(mapping[i][3], None)
    by_label = parse_block(
        path, FORMAT, data, 2, numeric, sep=",", n_fields=len(labels), text_columns=texts
    )
    cols = {mapping[i][0]: by_label[label] for label, i in numeric.items()}
    for i, (bdf, scale, offset, _) in mapping.items():
        if i != date_idx and i not in empty and (scale != 1.0 or offset != 0.0):
            cols[bdf] = cols[bdf] * scale + offset
    if date_idx is not None and ole_dates:
        # OLE Automation date: days since 1899-12-30 (local time of the tester, taken as UTC)
        # (float days carry ~1e-6 s noise: rounded to the millisecond)
        cols["unix_time_second"] = np.round((cols["unix_time_second"] - 25569.0) * 86400.0, 3)
    elif date_idx is not None and not epoch:
        cols["unix_time_second"] = _parse_dates(path, by_label[mapping[date_idx][3]], 2)
    return _finish(path, cols, 2, lines[0], empty=[labels[i] for i in empty])


#: a whole field that is a number with a decimal point / a decimal comma (``;`` rows)
_POINT_FIELD = re.compile(rb"(?:^|;)[ \t]*-?\d+\.\d+(?:[eE][-+]?\d+)?[ \t]*(?=;|\r?$)", re.M)
_COMMA_FIELD = re.compile(rb"(?:^|;)[ \t]*-?\d+,\d+(?:[eE][-+]?\d+)?[ \t]*(?=;|\r?$)", re.M)


def _from_semicolons(path: Path, raw: bytes) -> bytes:
    """A semicolon-separated export (a spreadsheet on a decimal-comma locale) as the
    comma-separated one: decimal commas become points, semicolons commas. A file with
    numbers written both ways is refused naming the first line with a point."""
    if _COMMA_FIELD.search(raw):
        point = _POINT_FIELD.search(raw)
        if point:
            line = raw.count(b"\n", 0, point.start()) + 1
            raise fail(
                FORMAT,
                path,
                "semicolon-separated rows mix decimal commas and decimal points: refusing to guess",
                f"line {line}",
            )
        raw = raw.replace(b",", b".")
    return raw.replace(b";", b",")


def _is_number(data: bytes | memoryview, index: int) -> bool:
    """Is field ``index`` of the first data row a plain number?"""
    fields = first_line(data).split(b",")
    try:
        float(fields[index])
    except (IndexError, ValueError):
        return False
    return True


def _empty_columns(
    path: Path, data: bytes | memoryview, labels: list[str], candidates: list[int]
) -> list[int]:
    """Columns that are present but empty on every row (Arbin exports ``Cycle_Index``,
    ``Step_Index`` ... that way when the tester did not record them). A column empty on
    some rows only is refused, naming the first empty row."""
    first = first_line(data).split(b",")
    maybe = [i for i in candidates if i < len(first) and not first[i].strip()]
    if not maybe:
        return []
    try:
        df = pd.read_csv(
            io.BytesIO(data),
            header=None,
            usecols=maybe,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            engine="c",
            encoding="latin-1",  # any byte: a stray one must not stop the check
        )
    except pd.errors.ParserError as err:
        raise fail(FORMAT, path, f"unreadable table: {err}") from None
    for i in maybe:
        filled = np.flatnonzero(df[i].str.strip().to_numpy() != "")
        if len(filled):
            raise fail(
                FORMAT,
                path,
                f"column {labels[i]!r} is empty on the first row but not on this one: "
                "half-filled column",
                f"line {2 + int(filled[0])}",
            )
    return maybe


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
    if not all(isinstance(v, dt.datetime) for v in values):
        return parse_dates(path, FORMAT, "DateTime", values, first_line)
    try:
        t = pd.to_datetime(s.astype("datetime64[us]"))
    except (ValueError, TypeError, OverflowError) as err:
        raise fail(
            FORMAT, path, f"cannot read the date/time column ({err})", f"line {first_line}"
        ) from None
    if t.dt.tz is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    unix = t.to_numpy("datetime64[us]").astype("i8") / 1e6
    return check_dates(path, FORMAT, "DateTime", unix, first_line)


#: xlsx readers tried in this order (both MIT); tests may narrow it
XLSX_READERS: tuple[str, ...] = xlsx.READERS


def _open_xlsx(path: Path) -> tuple[xlsx.Sheets, Callable[[], None]]:
    """[(sheet title, row iterator)] and a close function (see :mod:`.xlsx`)."""
    return xlsx.open_workbook(path, FORMAT, XLSX_READERS)


def _sheet_columns(path: Path, title: str, first, rows) -> dict[str, np.ndarray]:
    """The Arbin columns of one sheet (header row ``first``), converted to SI."""
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
    return cols


def _xlsx_parts(path: Path) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """(cycling columns of every Arbin sheet, header lines), the workbook closed after."""
    sheets, close = _open_xlsx(path)
    header_lines: list[str] = []
    parts: list[dict[str, np.ndarray]] = []
    try:
        for title, rows in sheets:
            first = next(rows, None)
            if first is None:
                continue
            if not _looks_arbin(first):
                header_lines += xlsx.sheet_text(title, [first, *rows])
                continue
            cols = _sheet_columns(path, title, first, rows)
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
    return parts, header_lines


def _read_xlsx(path: Path) -> Imported:
    parts, header_lines = _xlsx_parts(path)
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
