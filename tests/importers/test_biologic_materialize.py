"""The .mpr record table's one-pass materialize gives the same values as reading each
column on its own (blocks of any size, flag columns unpacked)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.importers import biologic_common, biologic_mpr

VENDOR = Path(__file__).resolve().parents[2] / "fixtures" / "vendor" / "biologic"


@pytest.mark.parametrize("block", [7, 1000, 65536])
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
    keep = np.arange(len(table[col])) % 3 != 1
    for col, v in biologic_common.subset_table(got, keep).items():
        np.testing.assert_array_equal(v, got[col][keep], err_msg=col)


def _restarts_reference(f: np.ndarray, a: int, b: int) -> list[tuple[int, int]]:
    """The rule, point by point: the first non-zero step sets the direction, a step
    against it starts a new spectrum whose next non-zero step sets its direction."""
    out, s, direction = [], a, 0.0
    for i in range(a + 1, b):
        step = np.sign(f[i] - f[i - 1])
        if step == 0 or not np.isfinite(step):
            continue
        if direction == 0:
            direction = step
        elif step != direction:
            out.append((s, i))
            s, direction = i, 0.0
    return [*out, (s, b)]


def test_split_restarts_follows_the_point_by_point_rule() -> None:
    from cyclerflow.importers.biologic_common import _split_restarts

    rng = np.random.default_rng(5)
    for trial in range(2000):
        if trial % 3 == 0:
            f = np.tile(np.linspace(10, 1, int(rng.integers(2, 6))), int(rng.integers(1, 5)))
        elif trial % 3 == 1:
            f = rng.choice([1.0, 2.0, 3.0, np.nan, 4.0], size=int(rng.integers(1, 40)))
        else:
            f = np.cumsum(rng.normal(size=int(rng.integers(1, 40))))
        a = int(rng.integers(0, len(f)))
        b = int(rng.integers(a + 1, len(f) + 1))
        idx = np.arange(len(f)) + 7
        got = [
            (int(g[0]) - 7, int(g[-1]) - 6) if len(g) else None
            for g in _split_restarts(idx, f, a, b)
        ]
        assert got == _restarts_reference(f, a, b), (f, a, b)
