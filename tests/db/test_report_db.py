"""The lab report reads a cell's analysis, metadata and events from the lab database when
its entry is current, and opens the cell file only for raw data (spectra, voltage curves)
and the results file only for fit curves; a changed file falls back to its files."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from labmaker import CELLS

from cyclerflow.analysis import results_path
from cyclerflow.db.engine import resolve
from cyclerflow.db.labstate import lab_files
from cyclerflow.db.rebuild import rebuild
from cyclerflow.report import data as D
from cyclerflow.report import html as H
from cyclerflow.report.fromdb import lab_index


@pytest.fixture
def opens(monkeypatch) -> Counter:
    """Resolved path -> number of h5py.File opens while the test runs."""
    seen: Counter = Counter()

    class Counting(h5py.File):
        def __init__(self, name, *args, **kwargs):
            seen[Path(str(name)).resolve()] += 1
            super().__init__(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", Counting)
    return seen


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _numbers(ctx: dict) -> dict:
    """What a cell's report says in numbers and words (figures aside)."""
    row = {k: v for k, v in ctx["row"].items() if k not in ("anchor",)}
    return _plain(
        {
            "row": row,
            "headline": ctx["headline"],
            "meta": ctx["meta_rows"],
            "layers": ctx["layers"],
            "events": ctx["events"],
            "warnings": ctx["warnings"],
            "missing": (ctx["cycling_missing"], ctx["eis_missing"], ctx["meta_missing"]),
            "n_figures": (len(ctx["cycling_figures"]), len(ctx["eis_figures"])),
        }
    )


def _forbid_file_analysis(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("read from the files although the database is current")

    for name in ("load_analysis", "read_metadata", "read_events"):
        monkeypatch.setattr(D, name, refuse)


def test_report_of_a_current_database_reads_only_raw_data(lab, db_url, opens, monkeypatch):
    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    rebuild(resolve(lab, db_url), lab)
    paths = lab_files(lab)
    index = lab_index(lab, db_url)
    assert index is not None
    from_files = [_numbers(H._cell_job(str(p), k)) for k, p in enumerate(paths)]
    before = sum(opens.values())
    opens.clear()
    with monkeypatch.context() as m:
        _forbid_file_analysis(m)
        from_db = [_numbers(H._cell_job(str(p), k, index=index)) for k, p in enumerate(paths)]
    assert from_db[0]["row"]["cell_id"] in {c[0] for c in CELLS}
    for a, b in zip(from_files, from_db, strict=True):
        assert a == b
    for p in paths:
        # cell file: its own attributes, spectra, the drawn cycles' rows, the timeline
        assert opens[p.resolve()] <= 4, opens
        assert opens[results_path(p).resolve()] <= 1  # fit curves only
    assert sum(opens.values()) < before


def test_lab_report_falls_back_to_the_files_of_a_changed_cell(lab, opens, monkeypatch):
    from cyclerflow.lab import build_lab_report

    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    rebuild(resolve(lab), lab)
    paths = lab_files(lab)
    changed = paths[1]
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # written since indexed
    analysed: list[Path] = []
    real = D.load_analysis
    monkeypatch.setattr(D, "load_analysis", lambda p: analysed.append(Path(p)) or real(p))
    rows = [{"path": str(p), "status": "ok"} for p in paths]
    opens.clear()
    out = build_lab_report(rows, lab, root=lab)
    assert out is not None and out.exists()
    assert analysed == [changed]  # only the changed cell's analysis is read from files
    others = [p for p in paths if p != changed]
    assert max(opens[p.resolve()] for p in others) < opens[changed.resolve()]
    html = out.read_text()
    assert all(c[0] in html for c in CELLS)
    assert "from the lab database" in html


def test_no_database_no_index(lab, monkeypatch):
    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    assert lab_index(lab) is None  # a report never creates a database
    assert not (lab / ".cyclerflow" / "lab.db").exists()
    rebuild(resolve(lab), lab)
    assert lab_index(lab) is not None
    assert lab_index(lab, False) is None
