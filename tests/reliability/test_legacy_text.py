"""Cell files of older versions keep text as variable-length strings in HDF5's global
heap (no checksum): damage there must neither hang a reader nor go unnoticed by verify."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import pytest

from cyclerflow.lab import probe_cell
from cyclerflow.store import guard, summary
from cyclerflow.store.damage import DamagedFile
from cyclerflow.store.verify import verify_file


def as_older_version(good: Path, out: Path) -> Path:
    """A copy of ``good`` whose text attributes are variable-length, as older versions
    wrote them."""
    out.write_bytes(good.read_bytes())
    with h5py.File(out, "r+") as f:
        for obj in (f, f["cell"]):
            for name in list(obj.attrs):
                value = obj.attrs[name]
                if isinstance(value, bytes):
                    obj.attrs[name] = value.decode("utf-8")
    return out


def heap_object_size(path: Path, text: bytes) -> int:
    """File offset of the size field of the global-heap object holding ``text``."""
    raw = path.read_bytes()
    at = raw.index(text)
    assert raw[at - 8] == len(text)  # the object's 8-byte size field precedes its data
    return at - 8


def test_new_files_keep_no_text_in_the_global_heap(good):
    with h5py.File(good, "r") as f:
        assert not guard.legacy_text(f)
        for obj in (f, f["cell"], f["cycling/voltage_volt"]):
            assert not any(guard.is_vlen_text(obj, n) for n in obj.attrs)
    assert verify_file(good).state == "intact"


def test_older_file_reads_and_verify_says_no_checksums(good, tmp_path):
    old = as_older_version(good, tmp_path / "old.h5")
    assert summary(old)["metadata"] == summary(good)["metadata"]
    v = verify_file(old)
    assert v.state == "no checksums" and "/ text attributes" in v.unchecked


def test_a_heap_that_makes_hdf5_loop_is_damage_not_a_hang(good, tmp_path, monkeypatch):
    old = as_older_version(good, tmp_path / "old.h5")
    raw = bytearray(old.read_bytes())
    raw[heap_object_size(old, b"cyclerflow.cell")] ^= 0xFF  # HDF5 2.0 loops on this
    old.write_bytes(bytes(raw))
    monkeypatch.setattr(guard, "TIME_LIMIT_S", 3.0)
    t0 = time.monotonic()
    with pytest.raises(DamagedFile, match=r"reading / attribute \w+ does not return"):
        summary(old)
    v = verify_file(old)
    assert v.state == "damaged" and v.damage[0].kind == "hang"
    entry = probe_cell(old)
    assert entry is not None and "does not return" in entry.error
    assert time.monotonic() - t0 < 60  # three guarded reads, not a hang


def _summary_error(path: str, limit_s: float, q) -> None:
    guard.TIME_LIMIT_S = limit_s
    try:
        summary(path)
        q.put("read")
    except DamagedFile as err:
        q.put(str(err))


def test_the_guard_works_in_a_daemonic_worker(good, tmp_path):
    """A worker of a process pool is daemonic (multiprocessing lets it have no
    children): the guard then starts a new interpreter."""
    import multiprocessing as mp

    old = as_older_version(good, tmp_path / "old.h5")
    raw = bytearray(old.read_bytes())
    raw[heap_object_size(old, b"cyclerflow.cell")] ^= 0xFF
    old.write_bytes(bytes(raw))
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_summary_error, args=(str(old), 3.0, q), daemon=True)
    p.start()
    msg = q.get(timeout=300)
    p.join(60)
    assert "does not return" in msg
