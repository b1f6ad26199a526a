"""The .mpr record table's one-pass materialize gives the same values as reading each
column on its own (blocks of any size, flag columns unpacked)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.importers import biologic_mpr

VENDOR = Path(__file__).resolve().parents[2] / "fixtures" / "vendor" / "biologic"


@pytest.mark.parametrize("block", [7, 1000, 8192])
@pytest.mark.parametrize("name", sorted(p.name for p in VENDOR.glob("*.mpr")))
def test_materialize_equals_column_reads(
    monkeypatch: pytest.MonkeyPatch, block: int, name: str
) -> None:
    monkeypatch.setattr(biologic_mpr, "BLOCK_RECORDS", block)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = biologic_mpr.parse_mpr(VENDOR / name).columns
    got = table.materialize(list(table))
    assert list(got) == list(table)
    for col, v in got.items():
        src = np.asarray(table[col])
        assert v.dtype == ("f8" if src.dtype.kind == "f" else "i8"), col
        assert v.flags.c_contiguous
        np.testing.assert_array_equal(v, src.astype(v.dtype), err_msg=col)
