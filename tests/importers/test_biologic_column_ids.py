""".mpr column ids of EC-Lab 11.50 and later: the 400s/800s of Modulo Bat with EIS, the
ids below 256 newer files use, and the ids >= 256 nobody documents (kept as
``vendor_col_<id>`` with a warning, or refused when their widths cannot be told).

Every file here is built byte by byte (tests/importers/biologic_mpr_writer.py) with known
values, so what the reader returns is compared with what was written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from biologic_mpr_writer import make_mpr

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.importers import biologic_columns, biologic_mpr


def _records(n: int, fields: list[tuple[str, str]]) -> np.ndarray:
    rec = np.zeros(n, dtype=fields)
    for k, (name, _) in enumerate(fields):
        rec[name] = (np.arange(n) + 1) * (k + 1) if name != "t" else np.arange(n) * 0.5
    return rec


def _write(tmp_path: Path, ids: list[int], rec: np.ndarray, name: str = "f.mpr") -> Path:
    p = tmp_path / name
    p.write_bytes(make_mpr(ids, rec, new=True, technique=0x7F))
    return p


def test_modulo_bat_eis_columns_are_named(tmp_path: Path) -> None:
    """368 Energy we (f8), 878 Energy ce (f8), 884 Energy ce discharge (f8), 893
    Capacitance charge (f8), 903 <E1> (f4), 981 z cycle (u4), as yadg documents them."""
    ids = [131, 4, 6, 8, 368, 878, 884, 893, 903, 981]
    fields = [("Ns", "<u2"), ("t", "<f8"), ("E", "<f4"), ("I", "<f4")]
    fields += [("a", "<f8"), ("b", "<f8"), ("c", "<f8"), ("d", "<f8"), ("e", "<f4")]
    fields += [("z", "<u4")]
    rec = _records(12, fields)
    raw = biologic_mpr.parse_mpr(_write(tmp_path, ids, rec))
    names = list(raw.columns)
    assert names[4:] == [
        "Energy we/W.h",
        "Energy ce/W.h",
        "Energy ce discharge/W.h",
        "Capacitance charge/µF",
        "<E1>/V",
        "z cycle",
    ]
    for name, (field, _) in zip(names, fields, strict=True):
        np.testing.assert_array_equal(np.asarray(raw.columns[name]), rec[field], err_msg=name)


@pytest.mark.parametrize(
    ("cid", "name", "dtype"),
    [
        (182, "step time/s", "<f8"),
        (217, "THD Ewe/%", "<f4"),
        (225, "NSR Ece/%", "<f4"),
        (235, "|Ewe h7|/V", "<f4"),
        (247, "|Ece h7|/V", "<f4"),
        (248, "Rac/Ohm", "<f4"),
        (253, "Acir/Dcir Control", "u1"),
        (352, "|Ece|/V", "<f4"),
        (391, "<E1>/V", "<f4"),
    ],
)
def test_newer_ids_below_and_above_256(tmp_path: Path, cid: int, name: str, dtype: str) -> None:
    fields = [("t", "<f8"), ("E", "<f4"), ("x", dtype)]
    rec = _records(7, fields)
    raw = biologic_mpr.parse_mpr(_write(tmp_path, [4, 6, cid], rec))
    assert list(raw.columns) == ["time/s", "Ewe/V", name]
    np.testing.assert_array_equal(np.asarray(raw.columns[name]), rec["x"])


def test_ids_whose_meaning_sources_disagree_on_are_kept_unnamed(tmp_path: Path) -> None:
    """241 (|I h7| or |E1|), 436 (Ece dc or Ewe), 441 (<Ecv> or <Ece>): width only."""
    fields = [("t", "<f8"), ("a", "<f4"), ("b", "<f4"), ("c", "<f4")]
    rec = _records(5, fields)
    raw = biologic_mpr.parse_mpr(_write(tmp_path, [4, 241, 436, 441], rec))
    assert list(raw.columns) == ["time/s", "vendor_col_241", "vendor_col_436", "vendor_col_441"]
    np.testing.assert_array_equal(np.asarray(raw.columns["vendor_col_436"]), rec["b"])


def test_two_undocumented_high_ids_take_their_low_byte_width(tmp_path: Path) -> None:
    """800 (low byte 32, freq f4) and 894 (low byte 126, f8): widths from the low byte,
    checked by the record size; kept as vendor_col_<id>, one warning each."""
    ids = [4, 6, 800, 894]
    fields = [("t", "<f8"), ("E", "<f4"), ("a", "<f4"), ("b", "<f8")]
    rec = _records(9, fields)
    path = _write(tmp_path, ids, rec)
    with pytest.warns(biologic_mpr.UnknownColumnWarning) as got:
        raw = biologic_mpr.parse_mpr(path)
    assert sorted(str(w.message).split("unknown column id ")[1][:3] for w in got) == ["800", "894"]
    np.testing.assert_array_equal(np.asarray(raw.columns["vendor_col_800"]), rec["a"])
    np.testing.assert_array_equal(np.asarray(raw.columns["vendor_col_894"]), rec["b"])
    np.testing.assert_array_equal(np.asarray(raw.columns["Ewe/V"]), rec["E"])


def test_low_byte_widths_that_do_not_fill_the_record_are_refused(tmp_path: Path) -> None:
    """800 stored as f8 where its low byte (32, freq) says f4: the record is 4 bytes
    longer than the low-byte widths give; refused (no guess), exit 2, no output."""
    ids = [4, 6, 800, 894]
    rec = _records(9, [("t", "<f8"), ("E", "<f4"), ("a", "<f8"), ("b", "<f8")])
    path = _write(tmp_path, ids, rec)
    with pytest.raises(InputError, match=r"unknown column id|layouts fit"):
        biologic_mpr.read(path)
    out = tmp_path / "c.h5"
    assert main(["import", str(path), "-o", str(out), "-q"]) == 2
    assert not out.exists()


def test_two_unknown_ids_without_low_byte_width_are_refused(tmp_path: Path) -> None:
    """180 (< 256, undocumented) and 700 (low byte 188, undocumented): no width for
    either; refused naming both ids."""
    rec = _records(4, [("t", "<f8"), ("a", "<f4"), ("b", "<f4")])
    path = _write(tmp_path, [4, 180, 700], rec)
    with pytest.raises(InputError, match=r"unknown column ids \[180, 700\]"):
        biologic_mpr.read(path)


def test_one_unknown_id_gets_the_width_the_record_leaves(tmp_path: Path) -> None:
    """One undocumented id (180) keeps the size rule, even when a high id is known."""
    rec = _records(6, [("t", "<f8"), ("E", "<f4"), ("a", "<u2"), ("z", "<u4")])
    path = _write(tmp_path, [4, 6, 180, 981], rec)
    with pytest.warns(biologic_mpr.UnknownColumnWarning, match="180"):
        raw = biologic_mpr.parse_mpr(path)
    assert raw.columns["vendor_col_180"].dtype == np.dtype("<u2")
    np.testing.assert_array_equal(np.asarray(raw.columns["z cycle"]), rec["z"])


def test_modulo_width_rule() -> None:
    w = biologic_columns.modulo_width
    assert w(438 + 512) == "<f8"  # low byte 182: step time
    assert w(256 + 1) is None  # a flag byte
    assert w(100) is None  # below 256: no rule
    assert w(256 + 188) is None  # low byte undocumented
