"""EIS text tables beyond Re/Im with decimal points: modulus + phase columns (Zahner,
Nova's extra columns), decimal commas between semicolons or tabs (German/French locales),
and the refusals (a table mixing decimal commas and points). Files are built byte by byte
from a circuit whose impedance is known exactly: R0 + R1 / (1 + j w R1 C)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cyclerflow.importers import detect, read_any
from cyclerflow.importers.common import InputError

F = np.logspace(5, -1, 25)
Z = 100.0 + 1000.0 / (1 + 1j * 2 * np.pi * F * 1000.0 * 1e-6)


def _write(path: Path, header: str, rows: list[str], enc: str = "utf-8", nl: str = "\n") -> Path:
    path.write_bytes((nl.join([header, *rows]) + nl).encode(enc))
    return path


def _check(path: Path, rtol: float = 1e-6) -> None:
    assert detect(path).FORMAT == "eis-text"
    (sp,) = read_any(path)["spectra"]
    np.testing.assert_allclose(sp["frequency_hertz"], F, rtol=rtol)
    np.testing.assert_allclose(sp["real_impedance_ohm"], Z.real, rtol=rtol)
    np.testing.assert_allclose(sp["imaginary_impedance_ohm"], Z.imag, rtol=rtol)
    assert np.all(sp["imaginary_impedance_ohm"] < 0)  # capacitive: negative


def test_modulus_and_phase_in_degrees(tmp_path: Path) -> None:
    rows = [
        f"{f:.8e}\t{abs(z):.8e}\t{np.angle(z, deg=True):.8e}" for f, z in zip(F, Z, strict=True)
    ]
    _check(_write(tmp_path / "zahner.txt", "Frequency/Hz\tImpedance/Ohm\tPhase/deg", rows))


def test_minus_phase_and_kilo_ohm_modulus(tmp_path: Path) -> None:
    rows = [
        f"{f:.8e};{abs(z) / 1e3:.8e};{-np.angle(z, deg=True):.8e}"
        for f, z in zip(F, Z, strict=True)
    ]
    _check(_write(tmp_path / "minus.csv", "Frequency (Hz);|Z| (kOhm);-Phase (°)", rows))


def test_phase_in_radians(tmp_path: Path) -> None:
    rows = [f"{f:.9e},{abs(z):.9e},{np.angle(z):.9e}" for f, z in zip(F, Z, strict=True)]
    _check(_write(tmp_path / "rad.csv", "Freq (Hz),Zmod (ohm),Phase (rad)", rows))


def test_nova_semicolons_with_ohm_signs_uses_re_and_im(tmp_path: Path) -> None:
    head = "Index;Frequency (Hz);Z' (Ω);-Z'' (Ω);Z (Ω);-Phase (°);Time (s)"
    rows = [
        f"{i + 1};{f:.8E};{z.real:.8E};{-z.imag:.8E};{abs(z):.8E};{-np.angle(z, deg=True):.8E};{1.5 * i:.3f}"
        for i, (f, z) in enumerate(zip(F, Z, strict=True))
    ]
    _check(_write(tmp_path / "nova.txt", head, rows))


@pytest.mark.parametrize("sep", [";", "\t"])
def test_decimal_commas(tmp_path: Path, sep: str) -> None:
    rows = [
        sep.join(f"{v:.8e}".replace(".", ",") for v in (f, z.real, z.imag))
        for f, z in zip(F, Z, strict=True)
    ]
    head = sep.join(["Frequency [Hz]", "Z' [Ohm]", "Z'' [Ohm]"])
    _check(_write(tmp_path / "komma.txt", head, rows, enc="latin-1", nl="\r\n"))


def test_decimal_commas_mixed_with_points_are_refused(tmp_path: Path) -> None:
    rows = [
        f"{f:.6e};{z.real:.6e};{z.imag:.6e}".replace(".", ",") for f, z in zip(F, Z, strict=True)
    ]
    rows[7] = rows[7].replace(",", ".", 1)
    path = _write(tmp_path / "mixed.txt", "Frequency [Hz];Z' [Ohm];Z'' [Ohm]", rows)
    with pytest.raises(InputError, match="mixes decimal commas and decimal points") as err:
        read_any(path)
    assert "line 9" in str(err.value)


def test_commas_in_a_comma_separated_table_stay_separators(tmp_path: Path) -> None:
    rows = [f"{f:.8e},{z.real:.8e},{z.imag:.8e}" for f, z in zip(F, Z, strict=True)]
    _check(_write(tmp_path / "plain.csv", "Frequency (Hz),Z' (Ohm),Z'' (Ohm)", rows))


@pytest.mark.parametrize(
    ("label", "values", "enc", "kelvin"),
    [
        ("Temp.[°C]", [140.0] * 25, "latin-1", 413.15),  # Novocontrol, Latin-1 degree sign
        ("Temp.[°C]", [140.0] * 25, "utf-8", 413.15),
        ("Temperature (K)", [298.0] * 25, "latin-1", 298.0),
        ("Temperature/degC", list(np.linspace(24.0, 26.0, 25)), "latin-1", 298.15),
    ],
)
def test_temperature_column_gives_the_spectrum_temperature(tmp_path, label, values, enc, kelvin):
    rows = [
        f"{f:.8e}\t{z.real:.8e}\t{z.imag:.8e}\t{t:.6e}"
        for f, z, t in zip(F, Z, values, strict=True)
    ]
    # the name says 25 C: the column is what was measured, and wins
    p = _write(tmp_path / "pellet_25C.txt", f"Freq.[Hz]\tZs'[ohm]\tZs''[ohm]\t{label}", rows, enc)
    _check(p)
    data = read_any(p)
    (sp,) = data["spectra"]
    assert sp["temperature_kelvin"] == pytest.approx(kelvin)
    assert sp["temperature_source"] == "column"
    assert not any("file name" in w for w in data["warnings"])


def test_a_temperature_drifting_during_the_sweep_is_named(tmp_path):
    rows = [
        f"{f:.8e}\t{z.real:.8e}\t{z.imag:.8e}\t{t:.4f}"
        for f, z, t in zip(F, Z, np.linspace(100.0, 110.0, 25), strict=True)
    ]
    p = _write(tmp_path / "drift.txt", "Freq.[Hz]\tZs'[ohm]\tZs''[ohm]\tTemp.[°C]", rows)
    data = read_any(p)
    assert data["spectra"][0]["temperature_kelvin"] == pytest.approx(105.0 + 273.15)
    assert "spans 10 K in its temperature column" in data["warnings"][0]
