"""Excel ``.xlsx`` workbooks for the readers of vendor exports saved as spreadsheets.

python-calamine (MIT, a Rust reader, ~20x faster) when installed, else openpyxl (MIT).
Cells come back as Python values: ``None`` or ``""`` for empty cells (by reader),
``float``/``int``, ``str``, and ``datetime``/``date``/``time``/``timedelta`` for cells
formatted as dates or durations.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from cyclerflow.importers.textfmt import fail

#: readers tried in this order (both MIT); tests may narrow it
READERS: tuple[str, ...] = ("python-calamine", "openpyxl")

Sheets = list[tuple[str, Iterator[Sequence[object]]]]


def open_workbook(
    path: Path, fmt: str, readers: Sequence[str] = READERS
) -> tuple[Sheets, Callable[[], None]]:
    """[(sheet title, row iterator)] and a close function; an unreadable workbook is an
    :class:`InputError` of format ``fmt``."""
    CalamineWorkbook = None
    if "python-calamine" in readers:
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
        raise fail(fmt, path, "reading .xlsx needs openpyxl or python-calamine") from None
    except (KeyboardInterrupt, SystemExit):  # pragma: no cover
        raise
    except BaseException as err:  # corrupt zips/XML: many types, incl. a Rust panic
        raise fail(
            fmt,
            path,
            f"not a readable .xlsx workbook ({type(err).__name__}: {str(err)[:80]})",
            "byte 0",
        ) from None


_SHEET_NAME = re.compile(rb'<sheet\b[^>]*?\bname="([^"]*)"')


def sheet_names(path: Path) -> list[str]:
    """The sheet names listed in an .xlsx file's ``xl/workbook.xml`` (cheap: no cells
    are read); [] for anything that is not such a file."""
    try:
        with zipfile.ZipFile(path) as z:
            xml = z.read("xl/workbook.xml")
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError, ValueError):
        return []
    return [m.decode("utf-8", "replace") for m in _SHEET_NAME.findall(xml)]


def sheet_text(title: str, rows: Iterable[Sequence[object]]) -> list[str]:
    """A sheet kept as header text: ``[title]``, then each non-empty row tab-joined."""
    out = [f"[{title}]"]
    for r in rows:
        vals = ["" if v is None else str(v) for v in r]
        if any(vals):
            out.append("\t".join(vals).rstrip())
    return out
