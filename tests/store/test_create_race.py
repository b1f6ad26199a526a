"""A live cell file appears under its name only once it is in SWMR mode: a reader in the
same process (HDF5 shares one handle per file within a process) that opens it while it
is being built can no longer keep SWMR from starting (seen as a rare failure of the
two-channel station test: 'Unable to start swmr writing')."""

from __future__ import annotations

import h5py
import numpy as np

from cyclerflow.store import create_cell, read_cycling
from cyclerflow.store import writer as writer_mod


def test_a_reader_during_creation_cannot_block_swmr(tmp_path, monkeypatch):
    path = tmp_path / "ch1.h5"
    seen: list[str] = []
    held: list[h5py.File] = []
    build = writer_mod._ensure_stream

    def build_then_peek(f):
        build(f)
        try:  # what a watcher thread does between the creation and the SWMR start
            r = h5py.File(path, "r")
            _ = dict(r.attrs)
            held.append(r)
            seen.append("opened")
        except OSError:
            seen.append("not there yet")

    monkeypatch.setattr(writer_mod, "_ensure_stream", build_then_peek)
    w = create_cell(path, None)
    try:
        assert seen == ["not there yet"]
        assert w._f.swmr_mode
        w.append_cycling(
            {
                "test_time_second": np.arange(3.0),
                "voltage_volt": np.full(3, 3.7),
                "current_ampere": np.full(3, 1e-6),
            }
        )
        w.flush()
    finally:
        w.close()
        for r in held:
            r.close()
    assert list(read_cycling(path)["test_time_second"].values) == [0.0, 1.0, 2.0]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["ch1.h5"]


def test_a_failed_creation_leaves_nothing(tmp_path, monkeypatch):
    def broken(f):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer_mod, "_ensure_stream", broken)
    try:
        create_cell(tmp_path / "ch2.h5", None)
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []
