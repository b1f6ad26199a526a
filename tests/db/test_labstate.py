"""`watch --lab` reads the lab database where it is current and the file where it is not:
a current database answers without a single HDF5 open; a stale entry falls back to the file."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest
from labmaker import CELLS

from cyclerflow.cli import main
from cyclerflow.db.engine import make_engine, resolve, write_transaction
from cyclerflow.db.labstate import lab_files, lab_state
from cyclerflow.db.live import write_progress
from cyclerflow.db.rebuild import rebuild
from cyclerflow.store.writer import FileProgress


@pytest.fixture
def opens(monkeypatch) -> list[str]:
    """Paths of every h5py.File opened while the test runs."""
    seen: list[str] = []

    class Counting(h5py.File):
        def __init__(self, name, *args, **kwargs):
            seen.append(str(name))
            super().__init__(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", Counting)
    return seen


def test_current_database_answers_without_opening_files(lab, opens, monkeypatch):
    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    rebuild(resolve(lab), lab)
    opens.clear()
    states = lab_state(lab)
    assert opens == []
    assert {s.source for s in states} == {"database"}
    assert sorted(s.cell_id for s in states) == sorted(c[0] for c in CELLS)
    fades = {c[0]: c[3] for c in CELLS}
    for s in states:
        assert s.state == "closed" and s.status == "ok" and s.n_cycles == 6
        assert s.fade_rate_per_cycle == pytest.approx(fades[s.cell_id], rel=0.02)


def test_a_stale_entry_falls_back_to_its_file(lab, opens, monkeypatch):
    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    rebuild(resolve(lab), lab)
    changed = lab_files(lab)[0]
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # written since indexed
    opens.clear()
    states = {Path(s.path): s for s in lab_state(lab)}
    assert {Path(p).resolve() for p in opens} == {changed.resolve()}
    assert states[changed].source == "file" and states[changed].status == "stale"
    assert states[changed].n_cycles == 6 and states[changed].cell_id is not None
    assert {s.source for p, s in states.items() if p != changed} == {"database"}


def test_a_recent_acquisition_row_is_trusted_for_a_live_file(lab, opens, monkeypatch):
    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    rebuild(resolve(lab), lab)
    live = lab_files(lab)[1]
    live.touch()  # the file grew since it was indexed ...
    engine = make_engine(resolve(lab))
    with write_transaction(engine) as conn:  # ... and its acquisition said so just now
        write_progress(conn, FileProgress(live, 10, 1.75e9, closed=False), None)
    engine.dispose()
    opens.clear()
    state = {Path(s.path): s for s in lab_state(lab)}[live]
    assert opens == []
    assert state.source == "database (live)" and state.state == "live"
    assert state.last_sample_time_second == 1.75e9


def test_without_a_database_every_file_is_read(lab, opens, monkeypatch):
    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    states = lab_state(lab)
    assert {s.source for s in states} == {"file"} and len(states) == len(CELLS)
    assert all(s.status is None for s in states)
    assert not (lab / ".cyclerflow" / "lab.db").exists()  # a reader creates nothing


def test_watch_lab_once_prints_every_cell(lab, capsys, monkeypatch):
    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    rebuild(resolve(lab), lab)
    assert main(["watch", "--lab", str(lab), "--once"]) == 0
    out = capsys.readouterr().out
    for c in CELLS:
        assert c[0] in out
    assert "database" in out
    assert main(["watch", "--once"]) == 2  # neither a cell nor --lab


def test_incremental_lab_run_opens_no_unchanged_file(lab, opens, monkeypatch):
    from cyclerflow.lab import run_lab

    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    first = run_lab(lab, report=False)  # indexes into the lab root's database
    assert first.count("ok") == len(CELLS)
    opens.clear()
    again = run_lab(lab, report=False)
    assert opens == []  # discovery, cache and index all answered from the database
    assert again.count("cached") == len(CELLS)
    keys = ("cell_id", "wafer", "die", "fade_rate_per_cycle", "n_cycles")
    assert [[r[k] for k in keys] for r in again.rows] == [[r[k] for k in keys] for r in first.rows]
    changed = lab_files(lab)[2]
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    opens.clear()
    run_lab(lab, report=False)
    assert changed.resolve() in {Path(p).resolve() for p in opens}  # probed, analysed again
    others = {p.resolve() for p in lab_files(lab)} - {changed.resolve()}
    assert not others & {Path(p).resolve() for p in opens}
