"""BTSDA's three-level ("regular") export, turned into the flat record export.

Layout (three header lines, then rows of three kinds, comma-separated)::

    Cycle Index,Chg. Cap.(Ah),DChg. Cap.(Ah),...            cycle rows: first field set
    ,Step Index,Step Number,Step Type,Step Time,...         step rows: second field set
    ,,DataPoint,Time,Total Time,Current(A),Voltage(V),...   record rows: from the third

A cycle row comes before its steps, a step row before its records; the first step row
of a cycle may follow the cycle's fields on the cycle's own line (as in cellpy's
``nw_regular_export_ife_example.csv`` as stored), or after a lone CR. Each record row
becomes one row of a flat export with the header ``DataPoint, Cycle Index, Step Index,
Step Type`` and the record layer's other columns, the cycle and step numbers and the
step type taken from the rows above it; :mod:`neware_csv` then reads that with every
check of the flat export. :func:`flatten` also returns, for each flat line, its line in
the file, so that every error names the line of the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.importers.neware_clock import Doubt

#: a line end: CR LF, LF or a lone CR
LINE_END = re.compile(r"\r\n|\r|\n")
#: error factory: (path, message, line) -> InputError
Fail = Callable[[Path, str, int], InputError]


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.rstrip("\r").lstrip("\ufeff").split(",")]


def is_three_level(head: bytes) -> bool:
    """Do the first lines of ``head`` have the three-level layout's header?"""
    lines = LINE_END.split(head.decode("latin-1"), 3)
    if len(lines) < 3:
        return False
    first, second, third = (_fields(x) for x in lines[:3])
    return (
        first[:1] == ["Cycle Index"]
        and second[:2] == ["", "Step Index"]
        and third[:3] == ["", "", "DataPoint"]
    )


def _whole(path: Path, fail: Fail, what: str, text: str, line: int) -> str:
    """``text`` if it is a whole number (as the flat reader's counters must be)."""
    if not text.isdigit():
        raise fail(path, f"{what} {text!r} is not a whole number", line)
    return text


def _step(path: Path, fail: Fail, f: list[str], at_type: int, no: int) -> tuple[str, str]:
    """(step number, step type) of a step row's fields (``f[0]`` the empty one)."""
    if len(f) <= at_type:
        raise fail(path, f"a step row with {len(f)} fields (no step type)", no)
    return _whole(path, fail, "step number", f[1].strip(), no), f[at_type].strip()


def flatten(path: Path, text: str, fail: Fail) -> tuple[bytes, list[int]]:
    """The record rows of a three-level export as a flat BTSDA CSV (Latin-1 bytes) and
    the file's line number of each flat line (the header: line 3)."""
    lines = LINE_END.split(text)
    width = len(_fields(lines[0]))  # fields of a cycle row
    steps, records = _fields(lines[1]), _fields(lines[2])
    if "Step Type" not in steps:
        raise fail(path, f"the step header line lacks 'Step Type' (found {steps[:8]})", 2)
    at_type = steps.index("Step Type")
    out = [",".join(["DataPoint", "Cycle Index", "Step Index", "Step Type", *records[3:]])]
    where = [3]
    cycle = step = kind = None
    for no, line in enumerate(lines[3:], start=4):
        line = line.rstrip("\r")
        if line.startswith(",,"):
            if step is None:
                raise fail(path, "a record row before the step row it belongs to", no)
            point, _, rest = line[2:].partition(",")
            out.append(f"{point},{cycle},{step},{kind},{rest}")
            where.append(no)
        elif line.startswith(","):
            if cycle is None:
                raise fail(path, "a step row before the cycle row it belongs to", no)
            step, kind = _step(path, fail, line.split(","), at_type, no)
        elif line.strip():
            f = line.split(",")
            cycle = _whole(path, fail, "cycle number", f[0].strip(), no)
            step = None
            if len(f) > width and f[width].strip():  # the cycle's first step on its line
                step, kind = _step(path, fail, [""] + f[width:], at_type, no)
    return ("\n".join(out) + "\n").encode("latin-1"), where


def remapped(path: Path, err: InputError, where: list[int]) -> InputError:
    """``err`` (naming a line of the flat text) naming the same row's line in the file."""
    if err.where and err.where.startswith("line "):
        n = int(err.where[5:])
        line = where[n - 1] if 0 < n <= len(where) else where[-1]
        return InputError(err.bare_message, path=path, where=f"line {line}")
    return InputError(err.bare_message, path=path, where=err.where)


@dataclass
class Records:
    """The record rows of a three-level export, for the pyarrow path: their bytes after
    a header line (``head``), and the cycle number, step number and step type (an index
    into ``types``) of each."""

    body: bytearray  # the header line, then the record rows as in the file
    cycle: np.ndarray  # int64
    step: np.ndarray  # int64
    type_index: np.ndarray  # int64
    types: list[str]
    names: list[str]  # the record header's names (the two leading ones: "_1", "_2")


def _line_bounds(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end (without CR LF / LF) and next start of every line; Doubt for a lone CR."""
    cr = np.flatnonzero(b == 13)
    if len(cr) and (cr[-1] + 1 >= len(b) or (b[cr + 1] != 10).any()):
        raise Doubt("a lone CR")
    nl = np.flatnonzero(b == 10)
    starts = np.r_[0, nl + 1]
    nxt = np.r_[nl + 1, len(b)]
    keep = starts < len(b)
    starts, nxt = starts[keep], nxt[keep]
    ends = np.minimum(nxt, len(b)) - (b[np.minimum(nxt, len(b)) - 1] == 10)
    ends = ends - ((ends > starts) & (b[np.maximum(ends - 1, 0)] == 13))
    return starts, ends, nxt


def _states(texts: list[str], width: int, at_type: int) -> list[tuple[int, int | None, str]]:
    """(cycle, step, step type) after each cycle or step line; Doubt for anything the
    careful path would refuse or read otherwise."""
    out: list[tuple[int, int | None, str]] = []
    cycle: int | None = None
    step: int | None = None
    kind = ""
    for line in texts:
        f = line.split(",")
        if line.startswith(","):
            part = f
        else:
            if not f[0].strip().isdigit():
                raise Doubt("cycle number")
            cycle, step = int(f[0].strip()), None
            part = [""] + f[width:] if len(f) > width and f[width].strip() else None
        if part is not None:
            if cycle is None or len(part) <= at_type or not part[1].strip().isdigit():
                raise Doubt("step row")
            step, kind = int(part[1].strip()), part[at_type].strip()
        out.append((cycle, step, kind))
    return out


def records(raw: memoryview) -> Records:
    """The record rows of a three-level export (see :class:`Records`); Doubt for
    anything unusual (the caller then reads the file with :func:`flatten`)."""
    b = np.frombuffer(raw, np.uint8)
    starts, ends, nxt = _line_bounds(b)
    if len(starts) < 4:
        raise Doubt("no rows")
    heads = [bytes(b[starts[k] : ends[k]]).decode("latin-1") for k in range(3)]
    width, steps, recs = (len(_fields(heads[0])), _fields(heads[1]), _fields(heads[2]))
    if "Step Type" not in steps:
        raise Doubt("step header")
    s, e = starts[3:], ends[3:]
    length = e - s
    first = np.where(length >= 1, b[np.minimum(s, len(b) - 1)], 0)
    second = np.where(length >= 2, b[np.minimum(s + 1, len(b) - 1)], 0)
    rec = (first == 44) & (second == 44)
    other = np.flatnonzero(~rec & (length > 0))
    texts = [bytes(b[s[k] : e[k]]).decode("latin-1") for k in other.tolist()]
    if any(not t.strip() for t in texts):
        raise Doubt("blank line")
    states = _states(texts, width, steps.index("Step Type"))
    rows = np.flatnonzero(rec)
    last = np.searchsorted(other, rows) - 1  # the cycle or step line above each record
    if not len(rows) or (last < 0).any():
        raise Doubt("records before any step")
    st = np.array([(c, -1 if t is None else t) for c, t, _ in states], dtype=np.int64)
    if (st[last, 1] < 0).any():
        raise Doubt("a record before its step row")
    types = sorted({k for _, _, k in states})
    where = {k: i for i, k in enumerate(types)}
    tix = np.array([where[k] for _, _, k in states], dtype=np.int64)
    names = ["_1", "_2", *recs[2:]]
    head = (",".join(names) + "\n").encode("latin-1")
    # runs of record lines, copied as they are (a bytearray: searchable in place)
    edge = np.flatnonzero(np.diff(np.r_[0, rec.astype(np.int8), 0]))
    first_line, past_line = edge[0::2] + 3, edge[1::2] + 3
    spans = zip(starts[first_line].tolist(), nxt[past_line - 1].tolist(), strict=True)
    body = bytearray().join([head, *(raw[a:z] for a, z in spans)])
    return Records(body, st[last, 0], st[last, 1], tix[last], types, names)
