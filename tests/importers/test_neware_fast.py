"""The pyarrow fast path of the Neware BTSDA CSV reader agrees with the careful pandas
path, and hands every doubtful file to it (which then names the problem)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_neware_csv import _truth, write_A, write_uA

from cyclerflow.importers import neware_csv, neware_fast


def _both(path: Path):
    with neware_csv._opened(path) as raw:
        fast = neware_csv._assemble(path, neware_csv._ArrowSource(path, raw))
        slow = neware_csv._assemble(path, neware_csv._PandasSource(path, raw))
    return fast, slow


@pytest.mark.parametrize("variant", ["A", "uA", "uA-whole-seconds"])
def test_fast_path_taken_and_same_as_pandas_path(tmp_path: Path, variant: str) -> None:
    p = tmp_path / "x.csv"
    if variant == "A":
        write_A(p, _truth(3))
    else:
        write_uA(p, _truth(3), frac=variant == "uA")
    fast, slow = _both(p)
    assert fast["header"] == slow["header"]
    assert list(fast["cycling"]) == list(slow["cycling"])
    for name, v in fast["cycling"].items():
        assert v.dtype == slow["cycling"][name].dtype, name
        np.testing.assert_array_equal(v, slow["cycling"][name], err_msg=name)


def test_durations_are_the_decimal_values() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 400 * 3600, 5000))  # hours pass 99: widths change
    texts = [f"{int(x // 3600):02d}:{int(x // 60 % 60):02d}:{x % 60:06.3f}" for x in t]
    texts = [s for s in texts if ":60." not in s]
    want = [
        float(h) * 3600.0 + float(m) * 60.0 + float(s) for h, m, s in (x.split(":") for x in texts)
    ]
    np.testing.assert_array_equal(neware_fast.durations(pa.array(texts)), want)
    np.testing.assert_array_equal(
        neware_fast.durations(pa.array(["5", "12.25", "7"])), [5, 12.25, 7]
    )


@pytest.mark.parametrize(
    "bad",
    ["1:2", ":1:2", "1::2", "1:2:", ".5", "1.5:00:00", "1:2.5:3", " 1", "1e3", "-1", "1:2:3:4"],
)
def test_doubtful_durations_go_to_the_careful_path(bad: str) -> None:
    with pytest.raises(neware_fast.Doubt):
        neware_fast.durations(pa.array(["00:00:01", bad]))


def test_dates_as_pandas_reads_them_and_impossible_ones_doubted() -> None:
    secs = np.sort(np.random.default_rng(4).integers(-2_000_000_000, 7_000_000_000, 2000))
    texts = list(pd.to_datetime(secs, unit="s").strftime("%Y-%m-%d %H:%M:%S"))
    got = neware_fast.unix_seconds(pa.array(texts))
    np.testing.assert_array_equal(got, secs.astype("f8"))
    for bad in [
        "2023-02-29 10:00:00",
        "2024-13-01 10:00:00",
        "2024-01-01 24:00:00",
        "2024/01/01 10:00:00",
    ]:
        with pytest.raises(neware_fast.Doubt):
            neware_fast.unix_seconds(pa.array(["2024-01-01 10:00:00", bad]))


def test_short_row_and_bad_value_still_named_by_the_careful_path(tmp_path: Path) -> None:
    from cyclerflow.errors import InputError

    p = tmp_path / "x.csv"
    write_A(p, _truth(1))
    lines = p.read_text().split("\n")
    lines[6] = lines[6].replace(",", ",x", 1)
    p.write_text("\n".join(lines))
    with pytest.raises(InputError, match=r"line 7\).*'Cycle Index': 'x1' is not a number"):
        neware_csv.read(p)


def _decimal_seconds(text: str) -> float:
    """Seconds of ``[h]h:mm:ss[.f]`` the way the careful path computes them."""
    *hm, s = text.split(":")
    h, m = (float(v) for v in hm) if hm else (0.0, 0.0)
    return h * 3600.0 + m * 60.0 + float(s)


def test_durations_of_every_layout_and_across_chunks() -> None:
    texts = ["00:00:01", "99:59:59", "100:00:00.5", "1234:05:06.789", "12:34:56.1234"]
    texts += ["1:02:03", "7", "12.25", "0:00:00.00", "123456789012:00:00"]
    chunked = pa.chunked_array(
        [pa.array(texts[:3]), pa.array([], pa.string()), pa.array(texts[3:])]
    )
    want = [_decimal_seconds(t) for t in texts]
    np.testing.assert_array_equal(neware_fast.durations(chunked), want)
    np.testing.assert_array_equal(neware_fast.durations(pa.array(texts)), want)


@pytest.mark.parametrize("layout", ["12:34:56", "123:45:07.25"])
def test_any_wrong_byte_of_a_clock_text_is_doubted(layout: str) -> None:
    # '/' and ':' are the bytes just below and above the digits
    for i, c in enumerate(layout):
        for bad in {"/", ":", "a", " ", "5", "."} - {c}:
            if c.isdigit() and bad.isdigit():
                continue  # another digit: still the same layout
            text = layout[:i] + bad + layout[i + 1 :]
            with pytest.raises(neware_fast.Doubt):
                neware_fast.durations(pa.array([layout] * 9 + [text]))


def test_dates_across_chunks_and_every_wrong_byte_doubted() -> None:
    secs = np.sort(np.random.default_rng(5).integers(0, 4_000_000_000, 300))
    texts = list(pd.to_datetime(secs, unit="s").strftime("%Y-%m-%d %H:%M:%S"))
    chunked = pa.chunked_array([pa.array(texts[:100]), pa.array(texts[100:])])
    np.testing.assert_array_equal(neware_fast.unix_seconds(chunked), secs.astype("f8"))
    good = "2024-03-01 10:20:30"
    for i in range(len(good)):
        for bad in {"/", ":", "-", " ", "a"} - {good[i]}:
            text = good[:i] + bad + good[i + 1 :]
            with pytest.raises(neware_fast.Doubt):
                neware_fast.unix_seconds(pa.array([good] * 5 + [text] + [good] * 5))
