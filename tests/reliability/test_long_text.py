"""Text attributes above 64 kB are stored in checksummed parts, read back whole."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from cyclerflow.schema import parse_metadata
from cyclerflow.store import read_cell_attrs, read_metadata, write_cell
from cyclerflow.store.damage import DamagedFile
from cyclerflow.store.text import PART_MARK, TEXT_PART_BYTES
from cyclerflow.store.verify import verify_file


def _long_header() -> str:
    # 2- and 3-byte UTF-8 characters, so that part borders fall inside a character
    line = "Température de cellule (°C) : 25 ; Spannung ≤ 4,2 V\n"
    return "".join(f"{i:06d} {line}" for i in range(3000))


def _cell(path: Path, header: str) -> Path:
    t = np.arange(100, dtype="f8")
    return write_cell(
        path,
        parse_metadata({"cell_id": "L1", "active_area_cm2": 0.25}),
        cycling={"test_time_second": t, "voltage_volt": 3 + t / 100},
        source_header=header,
    )


def test_a_long_text_reads_back_whole_and_is_stored_in_parts(tmp_path):
    header = _long_header()
    assert len(header.encode()) > 2 * TEXT_PART_BYTES
    p = _cell(tmp_path / "c.h5", header)
    assert read_cell_attrs(p)["source_header"] == header
    assert read_metadata(p).cell_id == "L1"
    with h5py.File(p) as f:
        names = list(f["cell"].attrs)
        assert f"source_header{PART_MARK}2" in names
        assert max(f["cell"].attrs[k].nbytes for k in names) <= TEXT_PART_BYTES
    assert verify_file(p).state == "intact"


def test_a_changed_byte_in_any_part_is_a_checksum_error(tmp_path):
    p = _cell(tmp_path / "c.h5", _long_header())
    raw = bytearray(p.read_bytes())
    # the last line of the header lives in the last part
    off = raw.index(b"002999 Temp")
    raw[off + 3] ^= 0x01
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DamagedFile, match="metadata of /cell do not decode"):
        read_cell_attrs(bad)
    assert verify_file(bad).state == "damaged"
