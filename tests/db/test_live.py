"""`acquire` keeps the files table current as it writes (live, last sample time), through
the cell writer's ``on_flush`` hook; a lab run still indexes the file afterwards."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from cyclerflow.db import schema as S
from cyclerflow.db.engine import make_engine, resolve
from cyclerflow.db.live import attach, find_database
from cyclerflow.db.rebuild import open_writer
from cyclerflow.store import create_cell, read_cycling

RECIPE = """
name: live-db
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
sample_interval: 5 s
record: {every: 10 s}
steps:
  - rest: {duration: 1 min}
  - loop:
      repeat: 2
      steps:
        - cc_charge: {current: 1C, until: {time: 2 min}}
        - rest: {duration: 30 s}
        - cc_discharge: {current: 1C, until: {time: 2 min}}
"""
CELL = "cell_id: LIVE-1\nwafer: W01\nactive_area_cm2: 0.25\nnominal_capacity_uah: 15\n"


def files_row(url: str, path: Path) -> dict | None:
    engine = make_engine(resolve(None, url), readonly=True)
    with engine.connect() as conn:
        row = conn.execute(sa.select(S.files).where(S.files.c.path == str(path.resolve()))).first()
    engine.dispose()
    return None if row is None else dict(row._mapping)


def wait_for(url: str, path: Path, cond, timeout: float = 30.0) -> dict:
    """Poll until the files row satisfies ``cond`` (a background thread writes it)."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        row = files_row(url, path)
        if row is not None and cond(row):
            return row
        time.sleep(0.05)
    raise AssertionError(f"files row never satisfied the condition: {files_row(url, path)}")


def test_writer_reports_live_and_last_sample_then_closed(tmp_path, db_url):
    open_writer(resolve(None, db_url)).dispose()
    out = tmp_path / "cell.h5"
    w = create_cell(out, None, flush_interval=0.0)
    obs = attach(w, cell_id="C9", db=db_url, interval_second=0.01)
    assert obs is not None
    t = np.array([1.7e9, 1.7e9 + 1.5])
    w.append_cycling({"unix_time_second": t, "test_time_second": t - t[0]})
    w.flush()
    row = wait_for(db_url, out, lambda r: r["last_sample_time_second"] == t[-1])
    assert row["live"] is True and row["closed"] is False and row["cell_id"] == "C9"
    w.close()  # the final state is written before close returns
    row = files_row(db_url, out)
    assert row["live"] is False and row["closed"] is True
    assert row["last_sample_time_second"] == t[-1]
    # size and mtime stay unknown: the next lab run sees the file as changed and indexes it
    assert row["size_bytes"] is None and row["mtime_ns"] is None


def test_no_lab_database_means_no_hook(tmp_path, monkeypatch):
    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    assert find_database(tmp_path / "x.h5") is None
    w = create_cell(tmp_path / "x.h5", None)
    assert attach(w) is None and w.on_flush is None
    w.close()
    assert not (tmp_path / ".cyclerflow").exists()  # nothing created


def test_acquire_through_a_simulator_updates_the_lab_database(tmp_path, monkeypatch):
    sim = pytest.importorskip("cyclerflow.drivers.sim")
    from cyclerflow.cli import main

    monkeypatch.delenv("CYCLERFLOW_DB_URL", raising=False)
    open_writer(resolve(tmp_path)).dispose()  # the lab root has a database
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    (tmp_path / "cell.yaml").write_text(CELL)
    (tmp_path / "data").mkdir()
    out = tmp_path / "data" / "live1.h5"
    speed = 1000.0
    server, _ = sim.start_simulator("keithley2450", speedup=speed)
    try:
        args = ["acquire", "--driver", "keithley2450", "--resource", server.resource]
        args += ["--protocol", str(tmp_path / "recipe.yaml"), "--cell", str(tmp_path / "cell.yaml")]
        args += ["-o", str(out), "--speedup", str(speed), "--quiet"]
        assert main(args) == 0
    finally:
        server.stop()
    url = resolve(tmp_path).url
    row = files_row(url, out)
    last = float(read_cycling(out)["unix_time_second"].values[-1])
    assert row["cell_id"] == "LIVE-1" and row["closed"] is True and row["live"] is False
    assert row["last_sample_time_second"] == pytest.approx(last, abs=1e-6)
