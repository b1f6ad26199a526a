"""A lab run with one broken file of each kind; verify; recover -o on a damaged file."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from cyclerflow.cli import main as cli_main
from cyclerflow.lab import discover_cells, run_lab
from cyclerflow.store import read_cycling, read_events, read_spectra
from cyclerflow.store.salvage import salvage
from cyclerflow.store.verify import verify_file

BROKEN = ("superblock", "truncated", "metadata", "chunk", "events", "spectrum")


@pytest.fixture
def lab(tmp_path, damaged, kit):
    root = tmp_path / "lab"
    for i in range(3):
        kit.good_cell(root / "W01" / f"good{i}.h5", f"W01-D01-C{i}")
    for kind in BROKEN:
        shutil.copy(damaged(kind), root / "W01" / f"broken_{kind}.h5")
    (root / "W01" / "notes.h5").write_text("not a cell file at all")
    return root


def test_lab_run_analyses_every_good_cell_and_lists_each_broken_one(lab, tmp_path):
    entries = discover_cells(lab)  # the bad superblock no longer stops discovery
    assert len(entries) == 3 + len(BROKEN) + 1
    run = run_lab(lab, out=tmp_path / "out", report=False)
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in run.rows}
    for i in range(3):
        assert rows[f"good{i}.h5"]["status"] == "ok"
        assert rows[f"good{i}.h5"]["discharge_capacity_ah"] > 0
    expect = {
        "superblock": "superblock does not decode",
        "truncated": "cut short",
        "metadata": "/cycling",
        "chunk": "checksum mismatch in /cycling/voltage_volt rows 2048..3071",
        "events": "checksum mismatch in /events rows 256..299",
        "spectrum": "checksum mismatch in /eis/00000002/real_impedance_ohm",
    }
    for kind, words in expect.items():
        row = rows[f"broken_{kind}.h5"]
        assert row["status"] == "failed" and words in row["reason"], (kind, row["reason"])
        assert "Error:" not in row["reason"]  # a classified reason, not an exception's repr
    assert rows["notes.h5"]["status"] == "failed" and "not an HDF5" in rows["notes.h5"]["reason"]
    doc = json.loads(run.summary_json.read_text())
    assert doc["counts"] == {"ok": 3, "cached": 0, "failed": len(BROKEN) + 1}


def test_verify_states_and_exit_codes(lab, damaged, good, capsys):
    assert verify_file(good).state == "intact"
    for kind in BROKEN:
        v = verify_file(damaged(kind))
        assert v.state == "damaged" and v.damage, kind
    assert cli_main(["verify", str(good)]) == 0
    assert "intact" in capsys.readouterr().out
    assert cli_main(["verify", str(good), str(damaged("chunk"))]) == 2
    out = capsys.readouterr().out
    assert "/cycling/voltage_volt rows 2048..3071" in out and "1 damaged" in out
    assert cli_main(["verify", "--lab", str(lab), "--json"]) == 2
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    states = [x["state"] for x in lines]
    assert states.count("intact") == 3 and states.count("damaged") == len(BROKEN) + 1


def test_recover_copies_every_intact_chunk_and_lists_the_loss(good, damaged, tmp_path, capsys):
    src = damaged("chunk")
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "salvaged.h5"
    assert cli_main(["recover", str(src), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lost /cycling rows 2048..3071 of voltage_volt" in text
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before  # original untouched
    assert verify_file(out).state == "intact"
    full, got = read_cycling(good), read_cycling(out)
    keep = np.r_[0:2048, 3072 : full.sizes["sample"]]
    for c in full.data_vars:
        np.testing.assert_array_equal(got[c].values, full[c].values[keep])
    assert len(read_spectra(out)) == 2
    events = read_events(out)
    assert sum(e["kind"] == "note" for e in events) == 300
    assert any(e["kind"] == "salvaged" and "2048..3071" in e["message"] for e in events)
    # a second salvage onto the same name refuses without --force
    assert cli_main(["recover", str(src), "-o", str(out)]) == 2


def test_salvage_of_damaged_events_and_spectrum_keeps_the_rest(damaged, tmp_path):
    res = salvage(damaged("events"), tmp_path / "e.h5")
    assert res.rows_lost == 0 and res.events_kept == 256 and res.spectra_kept == 2
    assert [l.rows for l in res.losses] == [(256, 299)]  # noqa: E741
    res = salvage(damaged("spectrum"), tmp_path / "s.h5")
    assert res.spectra_kept == 1 and res.losses[0].what == "spectrum 2"
    assert [int(s.attrs["spectrum_id"]) for s in read_spectra(tmp_path / "s.h5")] == [1]


def test_salvage_of_an_unopenable_file_is_one_clear_error(damaged, tmp_path, capsys):
    out = tmp_path / "x.h5"
    assert cli_main(["recover", str(damaged("superblock")), "-o", str(out)]) == 2
    assert "superblock" in capsys.readouterr().err and not out.exists()
    assert not list(tmp_path.glob(".x.h5*"))


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path, kit):
    import os

    dead = tmp_path / ".c.h5.part-999999999"  # no such process
    alive = tmp_path / f".c.h5.part-{os.getppid()}"  # another live writer's: kept
    dead.write_bytes(b"half")
    alive.write_bytes(b"half")
    kit.good_cell(tmp_path / "src.h5")
    assert cli_main(["recover", str(tmp_path / "src.h5"), "-o", str(tmp_path / "c.h5")]) == 0
    assert not dead.exists() and alive.exists()
