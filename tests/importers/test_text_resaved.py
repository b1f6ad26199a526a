"""A vendor text file that went through an editor or another operating system reads the
same: with a UTF-8 byte-order mark added, LF and CRLF line ends swapped, the final line
end removed, blank lines added at the end, saved as UTF-16 (either byte order) or with
lone-CR line ends, every real text file in fixtures/vendor
gives the same columns and spectra, to the bit, as the file itself (or, for a file that
is refused, is refused as well)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.importers import read_any
from cyclerflow.importers.common import InputError

VENDOR = Path(__file__).resolve().parents[2] / "fixtures" / "vendor"
BINARY = {".mpr", ".res", ".xlsx", ".ndax", ".nda", ".zip"}
TEXT_FILES = sorted(
    p.relative_to(VENDOR).as_posix()
    for p in VENDOR.rglob("*")
    if p.is_file()
    and p.suffix.lower() not in BINARY
    and "LICENSES" not in p.parts
    and p.name not in ("manifest.csv", ".gitattributes")
)


def _swap_line_ends(raw: bytes) -> bytes:
    if b"\r\n" in raw:
        return raw.replace(b"\r\n", b"\n")
    return raw.replace(b"\n", b"\r\n")


def _text(raw: bytes) -> str:
    """The characters of a vendor file (UTF-8 where it is valid UTF-8, else Latin-1)."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _lone_cr(raw: bytes) -> bytes:
    # (PowerSuite's CR CR LF would become two line ends: that file is left as it is)
    return raw if b"\r\r" in raw else raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r")


VARIANTS = {
    "bom": lambda raw: b"\xef\xbb\xbf" + raw,
    "line_ends": _swap_line_ends,
    "no_final_eol": lambda raw: raw.rstrip(b"\r\n"),
    "blank_tail": lambda raw: raw + (b"\r\n\r\n" if b"\r\n" in raw else b"\n\n"),
    # "Unicode text" from a spreadsheet or Notepad, and classic Mac line ends
    "utf16le": lambda raw: b"\xff\xfe" + _text(raw).encode("utf-16-le"),
    "utf16be": lambda raw: b"\xfe\xff" + _text(raw).encode("utf-16-be"),
    "lone_cr": _lone_cr,
}


def _read(path: Path) -> dict | str:
    """The arrays of an import, or the refusal's message without the path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data = read_any(path)
        except InputError as err:
            return err.bare_message
    arrays = {f"cycling/{k}": np.asarray(v) for k, v in data["cycling"].items()}
    for i, sp in enumerate(data["spectra"]):
        arrays.update({f"eis{i}/{k}": v for k, v in sp.items() if isinstance(v, np.ndarray)})
    return arrays


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name", TEXT_FILES)
def test_resaved_text_file_reads_the_same(name: str, variant: str, tmp_path: Path) -> None:
    src = VENDOR / name
    ref = _read(src)
    copy = tmp_path / src.name
    copy.write_bytes(VARIANTS[variant](src.read_bytes()))
    got = _read(copy)
    if isinstance(ref, str):
        assert isinstance(got, str), f"{name} is refused, its {variant} copy is not"
        return
    assert not isinstance(got, str), f"{name} {variant}: {got}"
    assert got.keys() == ref.keys()
    for key, v in ref.items():
        np.testing.assert_array_equal(got[key], v, err_msg=f"{name} {variant} {key}")
