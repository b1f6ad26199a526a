"""The lab database on SQLite and PostgreSQL: index, query, rebuild, concurrency, bad input."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from labmaker import CELLS

from cyclerflow.cli import main
from cyclerflow.db import schema as S
from cyclerflow.db.engine import make_engine, resolve
from cyclerflow.db.query import cells, query, table
from cyclerflow.db.rebuild import rebuild
from cyclerflow.errors import InputError
from cyclerflow.lab import run_lab

#: columns that record when something was written, not what
_VOLATILE = {"updated_unix_time_second", "indexed_unix_time_second", "analysed_unix_time_second"}


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every table except analysis_runs (a history), sorted, without time stamps."""
    engine = make_engine(resolve(None, url), readonly=True)
    out = {}
    with engine.connect() as conn:
        for t in S.metadata.sorted_tables:
            if t.name == "analysis_runs":
                continue
            cols = [c for c in t.columns if c.name not in _VOLATILE]
            rows = conn.execute(sa.select(*cols)).fetchall()
            out[t.name] = sorted((tuple(_norm(v) for v in r) for r in rows), key=repr)
    engine.dispose()
    return out


def _norm(v):
    if isinstance(v, float):
        return float(f"{v:.12g}")
    if isinstance(v, dict | list):
        return repr(_sorted_json(v))
    return v


def _sorted_json(v):
    if isinstance(v, dict):
        return {k: _sorted_json(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [_sorted_json(x) for x in v]
    return float(f"{v:.12g}") if isinstance(v, float) else v


def test_lab_run_indexes_every_record(lab, db_url):
    run = run_lab(lab, report=False, database=db_url)
    assert run.count("ok") == len(CELLS)
    counts = query("SELECT count(*) AS n FROM cycles", db=db_url)
    assert int(counts.n[0]) == 6 * len(CELLS)
    spectra = table("spectra", db=db_url)
    assert len(spectra) == 3 * len(CELLS)
    assert set(spectra.temperature_kelvin.round(2)) == {273.15, 298.15, 323.15}
    frame = cells(db=db_url).set_index("cell_id")
    for cell_id, _w, _d, fade, sigma, _p, _n in CELLS:
        # synthetic truth: fade per cycle and sigma(25 C) the cells were made with
        assert frame.loc[cell_id, "fade_rate_per_cycle"] == pytest.approx(fade, rel=0.02)
        assert frame.loc[cell_id, "conductivity_25c_s_per_cm"] == pytest.approx(sigma, rel=0.01)
        assert frame.loc[cell_id, "activation_energy_ev"] == pytest.approx(0.55, abs=0.005)
    layers = table("layers", db=db_url)
    lipon = layers[layers.role == "electrolyte"]
    assert set(lipon.material) == {"LiPON"} and len(lipon) == len(CELLS)


def test_where_grammar_answers_the_lab_question(lab, db_url):
    rebuild(resolve(None, db_url), lab)
    where = [
        "electrolyte.material=LiPON",
        "wafer=W07",
        "electrolyte.power_w>150",
        "fade_per_cycle<1e-3",
    ]
    got = list(cells(db=db_url, where=where, sort="fade_rate_per_cycle").cell_id)
    truth = [c[0] for c in sorted(CELLS, key=lambda c: c[3])]
    truth = [
        c
        for c in truth
        if any(s[0] == c and s[1] == "W07" and s[5] > 150 and s[3] < 1e-3 for s in CELLS)
    ]
    assert got == truth == ["W07-D03-C1", "W07-D02-C1"]
    # an unknown metadata key (kept as JSON) and a summary alias both filter
    assert len(cells(db=db_url, where=["operator=ab"])) == len(CELLS)
    assert len(cells(db=db_url, where=["operator!=ab"])) == 0
    # values are bound parameters: SQL in a value is only text that matches nothing
    assert len(cells(db=db_url, where=["wafer=W07' OR '1'='1"])) == 0


def test_same_answers_from_sqlite_and_postgres(lab, tmp_path, postgres_server):
    lite = f"sqlite:///{tmp_path / 'x.db'}"
    pg = postgres_server.new_database()
    for url in (lite, pg):
        rebuild(resolve(None, url), lab)
    assert snapshot(lite) == snapshot(pg)
    where = ["electrolyte.n2_flow_sccm>=25"]
    a = cells(db=lite, where=where, sort="-conductivity_25c_s_per_cm")
    b = cells(db=pg, where=where, sort="-conductivity_25c_s_per_cm")
    assert list(a.cell_id) == list(b.cell_id) and len(a) == 3


def test_rebuild_equals_incremental_index_and_is_idempotent(lab, db_url):
    run_lab(lab, report=False, database=db_url)
    incremental = snapshot(db_url)
    rep = rebuild(resolve(None, db_url), lab)
    assert rep.indexed == len(CELLS)
    assert snapshot(db_url) == incremental
    engine = make_engine(resolve(None, db_url), readonly=True)
    with engine.connect() as conn:  # a bulk load into the emptied table built its key again
        key = sa.inspect(conn).get_pk_constraint("cycles")["constrained_columns"]
    engine.dispose()
    assert key == ["cell_id", "cycle"]
    again = run_lab(lab, report=False, database=db_url)  # nothing changed: nothing indexed
    assert again.count("cached") == len(CELLS)
    assert snapshot(db_url) == incremental


_CONCURRENT = """
import sys
from cyclerflow.lab import run_lab
run_lab(sys.argv[1], out=sys.argv[2], report=False, database=sys.argv[3])
"""


def test_two_concurrent_lab_runs_lose_and_duplicate_nothing(lab, db_url, tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT, str(lab), str(tmp_path / f"out{i}"), db_url],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    n = query(
        "SELECT (SELECT count(*) FROM cells) AS cells, (SELECT count(*) FROM cycles) AS cycles,"
        " (SELECT count(*) FROM summaries) AS summaries, (SELECT count(*) FROM spectra) AS spectra",
        db=db_url,
    ).iloc[0]
    assert (int(n.cells), int(n.cycles), int(n.summaries), int(n.spectra)) == (4, 24, 4, 12)
    runs = table("analysis_runs", db=db_url)
    assert len(runs) == 2 * len(CELLS)  # each run recorded, none lost


def test_query_is_read_only(lab, db_url):
    rebuild(resolve(None, db_url), lab)
    with pytest.raises(InputError, match="query failed"):
        query("DELETE FROM cells", db=db_url)
    assert len(cells(db=db_url)) == len(CELLS)


def test_unknown_where_key_names_the_known_ones(lab, db_url, capsys):
    rebuild(resolve(None, db_url), lab)
    rc = main(["cells", "--db", db_url, "--where", "electrolyte.powr_w>100"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown key 'electrolyte.powr_w'" in err
    assert "electrolyte.power_w" in err and "fade_per_cycle" in err and "operator" in err
    assert len(err.strip().splitlines()) == 1


def test_newer_schema_is_refused(lab, db_url, capsys):
    rebuild(resolve(None, db_url), lab)
    engine = make_engine(resolve(None, db_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    for argv in (["db", "upgrade"], ["cells"], ["query", "SELECT 1"]):
        assert main([*argv, "--db", db_url]) == 2
        err = capsys.readouterr().err
        assert "schema revision '9999', newer than this cyclerflow" in err, argv


def test_cli_json_and_csv(lab, tmp_path, capsys):
    import json

    assert main(["db", "rebuild", "--root", str(lab), "-q"]) == 0
    assert (lab / ".cyclerflow" / "lab.db").exists()
    assert main(["cells", "--root", str(lab), "--where", "wafer=W08", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["cell_id"] for r in rows] == ["W08-D01-C1"]
    assert math.isclose(rows[0]["fade_rate_per_cycle"], 1e-3, rel_tol=0.02)
    assert main(["cells", "--root", str(lab), "--csv", "--sort", "-fade_per_cycle"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cell_id,") and lines[1].startswith("W07-D01-C1,")
    argv = ["cells", "--root", str(lab), "--csv", "--columns", "electrolyte.power_w,wafer"]
    assert main([*argv, "--sort", "-electrolyte.power_w"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "cell_id,electrolyte.power_w,wafer",
        *(f"{c[0]},{c[5]},{c[1]}" for c in sorted(CELLS, key=lambda c: -c[5])),
    ]


def test_lab_root_without_write_access(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["db", "upgrade", "--root", str(blocker / "lab")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the lab database here" in err and "--db" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a subprocess as nobody")
def test_lab_root_read_only_for_an_unprivileged_user(tmp_path):
    try:
        subprocess.run([sys.executable, "-c", "pass"], user="nobody", check=True, cwd="/")
    except (PermissionError, subprocess.CalledProcessError):
        pytest.skip("this Python cannot be run by the unprivileged user 'nobody'")
    root = tmp_path / "ro-lab"
    root.mkdir()
    os.chmod(tmp_path, 0o755)
    r = subprocess.run(
        [sys.executable, "-m", "cyclerflow.cli", "db", "upgrade", "--root", str(root)],
        user="nobody",
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
        cwd="/",
    )
    assert r.returncode == 2, r.stderr
    assert "cannot write the lab database here" in r.stderr and "Traceback" not in r.stderr


def test_missing_db_extra_is_one_line(tmp_path):
    code = (
        "import sys; sys.modules['alembic'] = None\n"
        "from cyclerflow.cli import main\n"
        f"sys.exit(main(['cells', '--root', {str(tmp_path)!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "'db' extra" in r.stderr


def test_migrations_create_exactly_the_schema(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from cyclerflow.db.migrate import head, upgrade

    engine = make_engine(resolve(None, db_url.replace("/lab.db", "/m.db")))
    if engine.dialect.name == "sqlite":
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    assert upgrade(engine, "test") == (None, head())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), S.metadata)
    engine.dispose()
    assert diff == []


def _schema_0001() -> sa.MetaData:
    """The tables as revision 0001 created them: cycles with a foreign key to cells."""
    old = sa.MetaData()
    for t in S.metadata.sorted_tables:
        t.to_metadata(old)
    fk = sa.ForeignKeyConstraint(["cell_id"], ["cells.cell_id"], ondelete="CASCADE")
    old.tables["cycles"].append_constraint(fk)
    return old


def test_upgrade_from_0001_keeps_the_cycles_and_drops_their_key(db_url):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from cyclerflow.db.migrate import _config, head, upgrade

    engine = make_engine(resolve(None, db_url))
    if engine.dialect.name == "sqlite":
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    with engine.begin() as conn:
        _schema_0001().create_all(conn)
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.stamp(cfg, "0001")
        conn.execute(S.cells.insert(), [{"cell_id": "A", "path": "/a.h5"}])
        conn.execute(S.cycles.insert(), [{"cell_id": "A", "cycle": n} for n in (1, 2, 3)])
    with engine.connect() as conn:
        assert sa.inspect(conn).get_foreign_keys("cycles")  # the old schema has the key
    assert upgrade(engine, "test") == ("0001", head())
    with engine.connect() as conn:
        assert sa.inspect(conn).get_foreign_keys("cycles") == []
        rows = conn.execute(sa.select(S.cycles.c.cell_id, S.cycles.c.cycle)).fetchall()
        diff = compare_metadata(MigrationContext.configure(conn), S.metadata)
    engine.dispose()
    assert sorted(rows) == [("A", 1), ("A", 2), ("A", 3)]
    assert diff == []


@pytest.mark.postgres
def test_rebuild_restores_a_key_an_interrupted_bulk_load_left_dropped(lab, postgres_server):
    url = postgres_server.new_database()
    rebuild(resolve(None, url), lab)
    before = snapshot(url)
    engine = make_engine(resolve(None, url))
    with engine.begin() as conn:  # as a rebuild killed between its load and its key build
        conn.exec_driver_sql("ALTER TABLE cycles DROP CONSTRAINT cycles_pkey")
    rebuild(resolve(None, url), lab)
    with engine.connect() as conn:
        key = sa.inspect(conn).get_pk_constraint("cycles")["constrained_columns"]
    engine.dispose()
    assert key == ["cell_id", "cycle"]
    assert snapshot(url) == before


def test_first_writer_waits_for_a_lock_held_at_connect_time(tmp_path):
    """A second first writer of a new SQLite database meets the lock while switching it to
    WAL (at connect time, before any transaction could retry): it waits, not fails."""
    import sqlite3
    import threading

    from cyclerflow.db.rebuild import open_writer

    path = tmp_path / "lab.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE other_writer (x INTEGER)")
    release = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        engine = open_writer(resolve(tmp_path, f"sqlite:///{path}"))
        with engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            names = set(sa.inspect(conn).get_table_names())
        engine.dispose()
    finally:
        release.join()
        holder.close()
    assert str(mode).lower() == "wal"
    assert {"cells", "cycles", "other_writer"} <= names
