"""The .mpt reader's pyarrow path against its line-by-line path, on table variants.

The fast path (``_fast_columns``) must give the same arrays, bit for bit, as the
line-by-line path whenever it takes a table, and must refuse (None) every table it
cannot vouch for, so that the line-by-line path names the line and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cyclerflow.errors import InputError
from cyclerflow.importers import biologic_mpt

NAMES = ["freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm", "time/s", "cycle number"]
#: values with 8 to 17 significant digits (the fast path rounds them exactly too)
ROWS = [
    ["1.0000000E+005", "1.0512296E+001", "7.3047662E-001", "1.234567890123456E+002", "1"],
    ["6.3095734E+004", "1.0612296E+001", "5.3047662E-001", "1.244567890123456E+002", "1"],
    ["3.9810717E+004", "1.0712296E+001", "3.3047662E-001", "0.1", "2"],
    ["2.5118864E+004", "1.0812296E+001", "-1.3047662E-001", "1e3", "2"],
]


def _write(
    tmp_path: Path,
    rows: list[list[str]],
    *,
    comma: bool = False,
    trailing: bool = False,
    eol: str = "\n",
    tail: str = "",
) -> Path:
    """A header-less .mpt export (first line = column names) with the given rows."""
    end = "\t" if trailing else ""
    lines = ["\t".join(NAMES) + "\t"]
    for r in rows:
        vals = [v.replace(".", ",") if comma else v for v in r]
        lines.append("\t".join(vals) + end)
    p = tmp_path / "t.mpt"
    p.write_bytes((eol.join(lines) + eol + tail).encode("latin-1"))
    return p


def _both(path: Path) -> tuple[dict | None, dict]:
    """(fast path columns or None, line-by-line path columns) of one file."""
    raw = path.read_bytes()
    start = biologic_mpt._data_start(path, raw, 1)
    end = biologic_mpt._data_end(raw, start)
    fast = biologic_mpt._fast_columns(raw, start, end, NAMES)
    arr = biologic_mpt._slow_arrays(path, NAMES, raw[start:end], 1)
    return fast, {n: arr[:, j] for j, n in enumerate(NAMES)}


@pytest.mark.parametrize("comma", [False, True])
@pytest.mark.parametrize("trailing", [False, True])
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("tail", ["", "\n\n", " \r\n\t\n"])
def test_fast_path_equals_line_path(
    tmp_path: Path, comma: bool, trailing: bool, eol: str, tail: str
) -> None:
    path = _write(tmp_path, ROWS, comma=comma, trailing=trailing, eol=eol, tail=tail)
    fast, slow = _both(path)
    assert fast is not None, "a clean table must take the fast path"
    assert list(fast) == NAMES
    for n in NAMES:
        assert fast[n].dtype == slow[n].dtype == np.float64
        assert np.array_equal(fast[n].view("u8"), slow[n].view("u8")), n
    # and the exact decimal values (independent of both parsers)
    want = np.array([float(r[3]) for r in ROWS])
    assert np.array_equal(fast["time/s"], want)
    cols, _, first = biologic_mpt.parse_mpt(path)
    assert first == 2
    assert cols["cycle number"].tolist() == [1, 1, 2, 2]


@pytest.mark.parametrize(
    ("mutate", "line", "words"),
    [
        (lambda r: r[:2] + [["1", "2", "3", "4"]] + r[2:], 4, "expected 5"),  # short row
        (lambda r: r[:1] + [[]] + r[1:], 3, "blank line inside"),
        (lambda r: [r[0], [*r[1][:4], "x"], *r[2:]], 3, "not a number"),  # text value
        (lambda r: [r[0], [*r[1][:4], "nan"], *r[2:]], 3, "not a finite number"),
        (lambda r: [r[0], [*r[1][:3], "", r[1][4]], *r[2:]], 3, "not a number"),  # empty
    ],
)
def test_doubtful_tables_go_to_the_line_path(tmp_path: Path, mutate, line: int, words: str) -> None:
    path = _write(tmp_path, mutate([list(r) for r in ROWS]))
    raw = path.read_bytes()
    start = biologic_mpt._data_start(path, raw, 1)
    end = biologic_mpt._data_end(raw, start)
    assert biologic_mpt._fast_columns(raw, start, end, NAMES) is None
    with pytest.raises(InputError) as err:
        biologic_mpt.parse_mpt(path)
    assert f"line {line}" in str(err.value)
    assert words in str(err.value)


def test_value_after_the_trailing_tab_is_refused(tmp_path: Path) -> None:
    """Rows end with a tab; one row has a sixth value there: refused, naming its line,
    by both paths (before, the line path dropped that value unseen)."""
    path = _write(tmp_path, ROWS, trailing=True)
    text = path.read_text("latin-1").split("\n")
    text[2] = text[2] + "99"
    path.write_text("\n".join(text), "latin-1")
    raw = path.read_bytes()
    start = biologic_mpt._data_start(path, raw, 1)
    end = biologic_mpt._data_end(raw, start)
    assert biologic_mpt._fast_columns(raw, start, end, NAMES) is None
    with pytest.raises(InputError, match=r"line 3\).*a value after the last tab"):
        biologic_mpt.parse_mpt(path)
