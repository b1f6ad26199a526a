"""A .csv/.txt table no reader recognises goes to the BDF CSV reader (whose error names
the missing columns); the error then also says what every other reader expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclerflow.cli import main
from cyclerflow.importers import available_importers, read_any
from cyclerflow.importers.common import InputError


def test_unrecognised_table_names_every_reader_tried(tmp_path: Path) -> None:
    path = tmp_path / "mystery.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6\n")
    with pytest.raises(InputError) as err:
        read_any(path)
    msg = str(err.value)
    assert "missing column(s)" in msg and "header line reads 'a,b,c'" in msg
    for mod in available_importers():
        if mod.FORMAT != "bdf-csv":
            assert f"{mod.FORMAT}: " in msg, mod.FORMAT


def test_forced_bdf_csv_keeps_its_own_message(tmp_path: Path) -> None:
    path = tmp_path / "mystery.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError) as err:
        read_any(path, "bdf-csv")
    assert "no other reader" not in str(err.value)


def test_cli_exit_2_and_no_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "mystery.txt"
    path.write_text("x\ty\n1\t2\n")
    out = tmp_path / "cell.h5"
    assert main(["import", str(path), "-o", str(out)]) == 2
    assert "no other reader recognised the file either" in capsys.readouterr().err
    assert not out.exists()
    assert not list(tmp_path.glob("*.part"))
