"""UTF-16 and lone-CR text files are read through a plain-text copy that names the
user's file everywhere (errors, warnings, source) and is gone after the import."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from refusal import assert_refused

from cyclerflow.cli import main
from cyclerflow.importers import read_any
from cyclerflow.store import read_spectra

VENDOR = Path(__file__).resolve().parents[2] / "fixtures" / "vendor"
SPECTRUM = VENDOR / "eis-series" / "s04147-140deg.txt"  # Latin-1 free, CR LF


@pytest.fixture(autouse=True)
def _own_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _utf16(src: Path, dst: Path) -> Path:
    dst.write_bytes(b"\xff\xfe" + src.read_bytes().decode("latin-1").encode("utf-16-le"))
    return dst


def test_utf16_spectrum_imports_with_its_name_and_a_warning(tmp_path, capsys, _own_tempdir):
    p = _utf16(SPECTRUM, tmp_path / SPECTRUM.name)
    data = read_any(p)
    assert data["source"] == str(p)
    assert data["warnings"][0] == "it is UTF-16-LE text: read as UTF-8"
    assert data["spectra"][0]["temperature_kelvin"] == pytest.approx(413.15)  # name kept
    ref = read_any(SPECTRUM)["spectra"][0]
    for key in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm"):
        np.testing.assert_array_equal(data["spectra"][0][key], ref[key])
    out = tmp_path / "c.h5"
    assert main(["import", str(p), "-o", str(out)]) == 0
    assert "UTF-16-LE text" in capsys.readouterr().err
    assert len(read_spectra(out)) == 1
    assert not list(_own_tempdir.iterdir())  # the copy is gone


def test_a_refusal_names_the_users_file_and_line(tmp_path, _own_tempdir):
    lines = SPECTRUM.read_bytes().split(b"\r\n")
    lines[6] = lines[6] + b"\t1.0"  # a value too many on line 7
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\r\n".join(lines))
    p = _utf16(bad, tmp_path / "bad16.txt")
    assert_refused(p, rf"{p}.*line 7", tmp_path)
    assert not list(_own_tempdir.iterdir())


def test_text_that_is_not_utf16_after_its_mark_is_refused(tmp_path):
    p = tmp_path / "odd.txt"
    p.write_bytes(b"\xff\xfe" + "f,Z',Z''\n".encode("utf-16-le") + b"\x00\xd8")  # lone surrogate
    assert_refused(p, rf"{p} \(byte \d+\): starts with a UTF-16 byte-order mark", tmp_path)


def test_lone_cr_maccor_parts_still_join(tmp_path):
    parts = [VENDOR / "maccor" / f"maccor_example.00{k}" for k in (1, 2)]
    ref = read_any(parts[0])
    copies = []
    for src in parts:
        dst = tmp_path / src.name
        dst.write_bytes(src.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r"))
        copies.append(dst)
    got = read_any(copies[0])
    for key, v in ref["cycling"].items():
        np.testing.assert_array_equal(got["cycling"][key], v, err_msg=key)
    out = tmp_path / "m.h5"
    assert main(["import", *map(str, copies), "-o", str(out), "-q"]) == 0
    assert main(["import", *map(str, parts), "-o", str(tmp_path / "ref.h5"), "-q"]) == 0
    import h5py

    with h5py.File(out) as a, h5py.File(tmp_path / "ref.h5") as b:
        for key in b["cycling"]:
            np.testing.assert_array_equal(a["cycling"][key][:], b["cycling"][key][:], err_msg=key)
