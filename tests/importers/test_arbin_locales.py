"""An Arbin CSV saved by a spreadsheet on a decimal-comma locale (semicolons between
fields, ``3,2796359``) reads to the same arrays as the export itself; semicolons with
decimal points too; a file with numbers written both ways is refused naming its line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.importers import detect, read_any
from cyclerflow.importers.common import InputError

SRC = Path(__file__).resolve().parents[2] / "fixtures" / "vendor" / "arbin" / "arbin_example.csv"


def _german(raw: bytes) -> bytes:
    return re.sub(rb"(\d)\.(\d)", rb"\1,\2", raw.replace(b",", b";"))


@pytest.mark.parametrize("convert", [_german, lambda raw: raw.replace(b",", b";")])
def test_semicolon_exports_read_like_the_original(tmp_path: Path, convert) -> None:
    path = tmp_path / "arbin_de.csv"
    path.write_bytes(convert(SRC.read_bytes()))
    assert detect(path).FORMAT == "arbin"
    ref, got = read_any(SRC)["cycling"], read_any(path)["cycling"]
    assert got.keys() == ref.keys()
    for k, v in ref.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_semicolon_export_mixing_commas_and_points_is_refused(tmp_path: Path) -> None:
    lines = _german(SRC.read_bytes()).split(b"\n")
    lines[9] = lines[9].replace(b",", b".", 1)
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError, match="mix decimal commas and decimal points") as err:
        read_any(path)
    assert "line 10" in str(err.value)


def test_german_dates_with_decimal_comma_seconds(tmp_path: Path) -> None:
    """PyProBE's MITS Pro 8 export with German dates (``20.09.2024 08:32:34,558``,
    day first, a decimal comma in the seconds): the same instants as the original."""
    src = SRC.parent / "sample_data_arbin_unquoted.csv"
    out = []
    for line in src.read_bytes().split(b"\n"):
        line = re.sub(rb"(\d)\.(\d)", rb"\1,\2", line.replace(b",", b";"))
        out.append(re.sub(rb"(\d\d)/(\d\d)/(\d{4})", rb"\2.\1.\3", line))
    path = tmp_path / "arbin_de_dates.csv"
    path.write_bytes(b"\n".join(out))
    assert b"20.09.2024 08:32:34,558" in path.read_bytes()
    ref, got = read_any(src)["cycling"], read_any(path)["cycling"]
    for k, v in ref.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
