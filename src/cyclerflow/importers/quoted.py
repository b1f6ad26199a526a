"""Double-quoted fields in comma-separated cycler exports, made plain before parsing.

Arbin MITS Pro 8 quotes its dates with a tab inside (``"<tab>09/20/2024 08:32:34.558"``);
exports that went through a spreadsheet quote numbers with thousands separators
(``"5,577,644.47"``, ``"1,499.8856"``). :func:`unquote` blanks the quotes to spaces and
treats a comma inside quotes in one of two ways:

- in a number grouped by thousands (``1,499.8856``, ``2,082``) it is dropped, but only when
  the file shows that style unambiguously: at least one quoted number grouped by threes
  *with* a decimal point, and no quoted number with a comma that cannot be a thousands
  separator (``3,5345``: a decimal comma). ``"2,082"`` alone could be 2082 or 2.082, so
  it is never read that way by itself;
- anywhere else (text such as ``"CC, charge"``, a decimal comma) it becomes a space, so
  it cannot split the row; a number written that way then fails as non-numeric, naming
  its line.

Line breaks are never touched, so errors still name the right line.
"""

from __future__ import annotations

import re

from cyclerflow.importers.textspan import find

_QUOTED = re.compile(rb'"([^"\n]*)"')
_QUOTED_COMMA = re.compile(rb'"[^"\n]*,[^"\n]*"')
#: grouped by thousands with a decimal point: this file writes thousands separators
_GROUPED_POINT = re.compile(rb"\s*[-+]?\d{1,3}(?:,\d{3})+\.\d*\s*")
#: grouped by thousands, with or without a decimal point
_GROUPED = re.compile(rb"\s*[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?\s*")
#: a number with a comma that cannot be a thousands separator (a decimal comma)
_COMMA_NUMBER = re.compile(rb"\s*[-+]?\d+,\d+(?:[eE][-+]?\d+)?\s*")


def thousands_style(raw: bytes) -> bool:
    """Do the quoted numbers of ``raw`` use commas as thousands separators (see the
    module docstring for the evidence needed)?"""
    seen = False
    for m in _QUOTED.finditer(raw):
        inner = m.group(1)
        if b"," not in inner:
            continue
        if _GROUPED_POINT.fullmatch(inner):
            seen = True
        elif _COMMA_NUMBER.fullmatch(inner) and not _GROUPED.fullmatch(inner):
            return False
    return seen


def unquote(data: bytes | memoryview) -> bytes | memoryview:
    """Rows with their double quotes blanked to spaces, thousands separators inside
    quotes dropped (when the file uses them), other commas inside quotes blanked."""
    if find(data, b'"') < 0:
        return data
    raw = bytes(data)
    if _QUOTED_COMMA.search(raw) is None:  # (quoted dates, names: one pass)
        return raw.replace(b'"', b" ")
    grouped = thousands_style(raw)

    def plain(m: re.Match) -> bytes:
        inner = m.group(1)
        if grouped and _GROUPED.fullmatch(inner):
            return b" " + inner.replace(b",", b"") + b" "
        return b" " + inner.replace(b",", b" ") + b" "

    return _QUOTED.sub(plain, raw).replace(b'"', b" ")
