"""The zero-copy file view of the text readers: read below 1 MiB, mapped above, the map
closed afterwards, and the same arrays either way."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.errors import InputError
from cyclerflow.importers import arbin, eis_text, maccor, textspan, zplot
from cyclerflow.importers.textfmt import data_block, open_raw

VENDOR = Path(__file__).resolve().parents[2] / "fixtures" / "vendor"
CASES = [
    (arbin, "arbin/arbin_example.csv"),
    (maccor, "cellpy/maccor_002.txt"),
    (maccor, "maccor/maccor_example.001"),
    (zplot, "eis/exampleDataZPlot.z"),
    (eis_text, "eis/exampleData.csv"),
    (eis_text, "eis/exampleDataAutolab.txt"),
    (eis_text, "eis/exampleDataCHInstruments.txt"),
    (eis_text, "eis/exampleDataParstat.txt"),
]


def _mapped(path: Path) -> bool:
    """Is ``path`` mapped into this process now? (Linux: /proc/self/maps.)"""
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


def _arrays(data: dict) -> dict[str, np.ndarray]:
    out = {f"cycling.{k}": np.asarray(v) for k, v in (data.get("cycling") or {}).items()}
    for i, sp in enumerate(data.get("spectra", [])):
        out.update({f"spectrum{i}.{k}": v for k, v in sp.items() if isinstance(v, np.ndarray)})
    return out


@pytest.mark.parametrize(("mod", "rel"), CASES, ids=[c[1] for c in CASES])
def test_read_and_mapped_paths_give_the_same_arrays(monkeypatch, mod, rel):
    path = VENDOR / rel
    read = _arrays(mod.read(path))
    monkeypatch.setattr(textspan, "MAP_FROM", 0)  # every file mapped
    mapped = _arrays(mod.read(path))
    assert read.keys() == mapped.keys()
    for k, v in read.items():
        assert v.dtype == mapped[k].dtype and v.tobytes() == mapped[k].tobytes(), k


def test_large_file_is_mapped_and_closed_afterwards(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"1,2,3\n" * (textspan.MAP_FROM // 6 + 10))
    with textspan.file_view(path) as view:
        assert isinstance(view.obj, textspan.mmap.mmap)
        base = view.obj
        if sys.platform == "linux":
            assert _mapped(path)
    assert base.closed
    if sys.platform == "linux":
        assert not _mapped(path)
    small = tmp_path / "small.txt"
    small.write_bytes(b"1,2,3\n")
    with textspan.file_view(small) as view:
        assert isinstance(view.obj, bytes) and bytes(view) == b"1,2,3\n"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")
def test_import_leaves_no_map(monkeypatch):
    monkeypatch.setattr(textspan, "MAP_FROM", 0)
    path = VENDOR / "cellpy/maccor_002.txt"
    maccor.read(path)
    assert not _mapped(path)


def test_error_inside_the_block_is_the_reader_error(monkeypatch, tmp_path):
    """A view still held by the error's traceback must not turn it into a BufferError."""
    monkeypatch.setattr(textspan, "MAP_FROM", 0)
    src = (VENDOR / "arbin/arbin_example.csv").read_bytes()
    bad = tmp_path / "cut.csv"
    bad.write_bytes(src[: len(src) // 2].rsplit(b",", 3)[0] + b"\n")  # last row cut short
    with pytest.raises(InputError, match="line"):
        arbin.read(bad)


def test_find_and_data_block_on_slices(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"head\nx y\n1\t2\n3\t4\n\n \n")
    with open_raw(path, "test") as raw:
        rows = data_block(raw, 2)
        assert isinstance(rows, memoryview) and bytes(rows) == b"1\t2\n3\t4"
        assert textspan.find(rows, b"\n") == 3
        assert textspan.find(rows, b"\n", 4) == -1
        assert textspan.find(raw[5:], b" ") == 1
        assert textspan.first_line(rows) == b"1\t2"
        assert textspan.is_ascii(rows)
