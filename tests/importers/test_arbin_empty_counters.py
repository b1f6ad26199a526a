"""Arbin CSV with Cycle_Index / Step_Index / Step_Time present but empty on every row."""

from __future__ import annotations

import numpy as np
import pytest

from cyclerflow.cycling import analyze_cycling
from cyclerflow.errors import InputError
from cyclerflow.importers import arbin, detect, import_files
from cyclerflow.store import read_cycling

EMPTIED = ("Step_Time", "Step_Index", "Cycle_Index")


def _blank(raw: bytes, names=EMPTIED, rows=None) -> bytes:
    lines = raw.decode("latin-1").split("\n")
    head = lines[0].rstrip("\r").split(",")
    idx = [head.index(n) for n in names]
    out = [lines[0]]
    for k, ln in enumerate(lines[1:]):
        if ln.strip() and (rows is None or k in rows):
            f = ln.rstrip("\r").split(",")
            for i in idx:
                f[i] = ""
            ln = ",".join(f) + ("\r" if ln.endswith("\r") else "")
        out.append(ln)
    return "\n".join(out).encode("latin-1")


def test_empty_counters_import_and_cycles_come_from_the_current(shared_data, tmp_path):
    src = shared_data / "arbin/arbin_example.csv"
    p = tmp_path / "empty_counters.csv"
    p.write_bytes(_blank(src.read_bytes()))
    assert detect(p) is arbin
    full, empty = arbin.read(src), arbin.read(p)
    c = empty["cycling"]
    assert "cycle_count" not in c and "vendor_step_index" not in c
    for k in ("test_time_second", "voltage_volt", "current_ampere"):
        np.testing.assert_array_equal(c[k], full["cycling"][k])
    assert empty["events"][0]["kind"] == "note" and "Cycle_Index" in empty["events"][0]["message"]
    # the analysis finds the same charge/discharge halves from the current alone
    a = import_files([src], tmp_path / "a.h5")
    b = import_files([p], tmp_path / "b.h5")
    _, pa = analyze_cycling(read_cycling(a))
    _, pb = analyze_cycling(read_cycling(b))
    qa = np.sort(np.concatenate([pa["charge_capacity_ah"], pa["discharge_capacity_ah"]]))
    qb = np.sort(np.concatenate([pb["charge_capacity_ah"], pb["discharge_capacity_ah"]]))
    qa, qb = qa[np.isfinite(qa)], qb[np.isfinite(qb)]
    assert len(qb) >= 2
    np.testing.assert_allclose(qb[-2:], qa[-2:], rtol=1e-3)


def test_half_filled_counter_column_is_refused(shared_data, tmp_path):
    src = shared_data / "arbin/arbin_example.csv"
    p = tmp_path / "half.csv"
    p.write_bytes(_blank(src.read_bytes(), ("Cycle_Index",), rows=set(range(10))))
    with pytest.raises(InputError, match=r"line 12\).*'Cycle_Index' is empty on the first row"):
        arbin.read(p)


def test_stray_non_utf8_byte_in_an_empty_counter_is_refused_cleanly(shared_data, tmp_path):
    """Found by fuzzing: a Latin-1 byte in an otherwise empty counter column stopped the
    import with a UnicodeDecodeError traceback; it is a half-filled column (exit 2)."""
    from cyclerflow.cli import main

    raw = _blank((shared_data / "arbin/arbin_example.csv").read_bytes())
    lines = raw.split(b"\n")
    head = lines[0].rstrip(b"\r").split(b",")
    row = lines[5].split(b",")
    row[head.index(b"Cycle_Index")] = b"\xac"
    lines[5] = b",".join(row)
    p = tmp_path / "stray.csv"
    p.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError, match="Cycle_Index.*half-filled"):
        arbin.read(p)
    out = tmp_path / "x.h5"
    assert main(["import", str(p), "-o", str(out), "-q"]) == 2
    assert not out.exists()
