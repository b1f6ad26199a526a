"""EIS text variants: PAR PowerSuite text (CR CR LF), ZPlot with trailing commas and
no ``End Comments``, spectrometer ``Freq.[Hz] Zs'[ohm] Zs''[ohm]`` exports, and the
temperature written in a file name.

No public file of these layouts with a permissive licence was found, so each is built
here from a real spectrum in fixtures/vendor (impedance.py's exampleData.csv, the ZPlot
example) in the vendor's layout, and must import to the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.importers import detect, eis_text, read_any, zplot
from cyclerflow.importers.common import temperature_from_name
from cyclerflow.store import read_spectra


def _reference(shared_data):
    a = np.loadtxt(shared_data / "eis/exampleData.csv", delimiter=",")
    return a[:, 0], a[:, 1], a[:, 2]


def _check(sp, f, re_, im):
    np.testing.assert_array_equal(sp["frequency_hertz"], f)
    np.testing.assert_array_equal(sp["real_impedance_ohm"], re_)
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"], im)


def test_powersuite_text_cr_cr_lf(shared_data, tmp_path):
    f, re_, im = _reference(shared_data)
    body = "".join(
        f"{float(a)!r}\t {float(b)!r}\t {float(c)!r}\r\r\n"
        for a, b, c in zip(f, re_, im, strict=True)
    )
    p = tmp_path / "powersuite.txt"
    p.write_bytes(("Frequency\t Zre\t Zimg\r\r\n" + body).encode())
    assert detect(p) is eis_text
    (sp,) = read_any(p)["spectra"]
    _check(sp, f, re_, im)


def test_zplot_trailing_commas_without_end_comments(shared_data, tmp_path):
    src = shared_data / "eis/exampleDataZPlot.z"
    ref = zplot.read(src)["spectra"][0]
    lines = src.read_text(encoding="latin-1").splitlines()
    end = lines.index("End Comments")
    rows = [",".join(ln.split()) + "," for ln in lines[end + 1 :] if ln.strip()]
    p = tmp_path / "commas.z"
    p.write_text("\n".join(lines[:end] + rows) + "\n", encoding="latin-1")
    assert detect(p) is zplot
    sp = zplot.read(p)["spectra"][0]
    _check(sp, ref["frequency_hertz"], ref["real_impedance_ohm"], ref["imaginary_impedance_ohm"])
    assert sp["amplitude"] == ref["amplitude"]
    rows[4] += "7,"  # one value too many on line end + 5
    p.write_text("\n".join(lines[:end] + rows) + "\n", encoding="latin-1")
    with pytest.raises(InputError, match=rf"line {end + 5}\).*row has 10 fields"):
        zplot.read(p)


def _spectrometer(f, re_, im) -> str:
    head = "Impedance spectrometer export\nSample: pellet, d = 0.8 cm, 2.1 mm\nT-control on\n"
    rows = "".join(f"{a:.6e}  {b:.6e}  {c:.6e}\n" for a, b, c in zip(f, re_, im, strict=True))
    return head + "Freq.[Hz]  Zs'[ohm]  Zs''[ohm]\n" + rows


def test_spectrometer_export_and_temperature_from_the_name(shared_data, tmp_path, capsys):
    f, re_, im = _reference(shared_data)
    p = tmp_path / "LLZO_pellet-140deg.txt"
    p.write_text(_spectrometer(f, re_, im))
    assert detect(p) is eis_text
    data = read_any(p)
    (sp,) = data["spectra"]
    want = [float(f"{x:.6e}") for x in (f, re_, im)[0]]
    np.testing.assert_array_equal(sp["frequency_hertz"], want)
    # the sign as written: negative Zs'' = capacitive, kept
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"], [float(f"{x:.6e}") for x in im])
    assert sp["temperature_kelvin"] == pytest.approx(413.15)
    assert "file name" in data["warnings"][0] and "140deg" in data["warnings"][0]
    out = tmp_path / "c.h5"
    assert main(["import", str(p), "-o", str(out)]) == 0
    assert "taken from the file name" in capsys.readouterr().err
    (stored,) = read_spectra(out)
    assert stored.attrs["temperature_kelvin"] == pytest.approx(413.15)


@pytest.mark.parametrize(
    ("name", "kelvin"),
    [
        ("LLZO-140deg.txt", 413.15),
        ("cell_25C.txt", 298.15),
        ("cell_-20C.txt", 253.15),
        ("run_298K.z", 298.0),
        ("spectrum_12.txt", None),
        ("C12_sample.txt", None),
        ("a_25C_to_60C.txt", None),
        ("EIS_after_cycling_1C.txt", None),  # a C-rate, not 1 degC
        ("cell_0.5C_25C.txt", 298.15),
        ("cell_5degC.txt", 278.15),
        ("cell_5°C.txt", 278.15),
        ("cell_-5C.txt", 268.15),
    ],
)
def test_temperature_from_name(name, kelvin):
    got, warning = temperature_from_name(name)
    assert got == (None if kelvin is None else pytest.approx(kelvin))
    if name.startswith("a_25C"):
        assert "several temperatures" in warning
    if name.startswith("EIS_after"):
        assert "'1C' may be a C-rate" in warning


def test_headerless_row_with_a_value_too_many_is_refused(shared_data, tmp_path):
    lines = (shared_data / "eis/exampleData.csv").read_text().splitlines()
    lines[9] += ",1.0"
    p = tmp_path / "extra.csv"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 10\).*row has 4 fields"):
        eis_text.read(p)
    assert main(["import", str(p), "-o", str(tmp_path / "x.h5"), "-q"]) == 2
    assert not (tmp_path / "x.h5").exists()
