"""The chunk CRC-32 table: a chunk zeroed together with its Fletcher-32 checksum (which
Fletcher-32 cannot see: the checksum of zeros is 0) is damage with its rows."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from cyclerflow.cli import main as cli_main
from cyclerflow.store import chunkcrc, read_cycling, read_events, read_spectra, resume_cell
from cyclerflow.store.damage import DamagedFile
from cyclerflow.store.salvage import salvage
from cyclerflow.store.verify import verify_file

WRITER = Path(__file__).parents[1] / "store" / "writer_proc.py"


def _zero_chunk(kit, src: Path, out: Path, dataset: str, index: int) -> Path:
    """A copy of ``src`` whose chunk ``index`` of ``dataset`` (data and its 4-byte
    Fletcher-32 trailer) is all zeros."""
    off, size, _ = kit.chunk_offset(src, dataset, index)
    return kit.edit(src, out, kit.zero(off, size))


def test_a_zeroed_chunk_passes_fletcher_but_not_the_crc(kit, good, tmp_path, capsys):
    bad = _zero_chunk(kit, good, tmp_path / "z.h5", "cycling/voltage_volt", 2)
    with pytest.raises(DamagedFile) as err:
        read_cycling(bad)
    assert err.value.kind == "checksum"
    assert err.value.location == "/cycling/voltage_volt rows 2048..3071"
    v = verify_file(bad)
    assert v.state == "damaged" and v.checks == "Fletcher-32 + chunk CRC-32"
    assert [(d.kind, d.location, d.rows) for d in v.damage] == [
        ("checksum", "/cycling/voltage_volt", (2048, 3071))
    ]
    assert cli_main(["verify", str(bad)]) == 2
    assert "/cycling/voltage_volt rows 2048..3071" in capsys.readouterr().out
    assert cli_main(["analyze", str(bad), "--json"]) == 2
    assert "rows 2048..3071" in capsys.readouterr().err
    # the same damage in a file without the table (as written before it) reads zeros
    # without a word: exactly what the table is for
    legacy = tmp_path / "legacy.h5"
    legacy.write_bytes(good.read_bytes())
    with h5py.File(legacy, "a") as f:
        del f[chunkcrc.GROUP]
    assert verify_file(legacy).checks == "Fletcher-32"
    _zero_chunk(kit, legacy, legacy, "cycling/voltage_volt", 2)
    v = read_cycling(legacy).voltage_volt.values
    assert np.all(v[2048:3072] == 0) and np.all(v[:2048] != 0)


def test_a_zeroed_crc_table_is_damage(kit, good, tmp_path):
    table = chunkcrc.table_name("/cycling/current_ampere")
    bad = _zero_chunk(kit, good, tmp_path / "t.h5", table, 0)
    with pytest.raises(DamagedFile) as err:
        read_cycling(bad)
    assert err.value.location.startswith("/cycling/current_ampere rows 0..")
    assert "entry 0 is damaged" in err.value.detail
    v = verify_file(bad)
    assert v.state == "damaged"
    assert {d.location for d in v.damage} == {"/cycling/current_ampere"}
    # a flipped table byte: the table's own Fletcher-32
    off, size, _ = kit.chunk_offset(good, table, 0)
    flipped = kit.edit(good, tmp_path / "f.h5", kit.flip(off + 5))
    with pytest.raises(DamagedFile, match="CRC-32 table /chunk_crc/cycling.current_ampere"):
        read_cycling(flipped)


def test_a_chunk_copied_over_another_is_damage(kit, good, tmp_path):
    """A whole, self-consistent chunk (Fletcher-32 passes) at the wrong place."""
    off1, size1, _ = kit.chunk_offset(good, "cycling/test_time_second", 1)
    off3, size3, _ = kit.chunk_offset(good, "cycling/test_time_second", 3)
    assert size1 == size3

    def move(b: bytearray) -> bytearray:
        b[off3 : off3 + size3] = b[off1 : off1 + size1]
        return b

    bad = kit.edit(good, tmp_path / "m.h5", move)
    with pytest.raises(DamagedFile, match=r"test_time_second rows 3072\.\.4095"):
        read_cycling(bad)


def test_zeroed_event_and_spectrum_chunks_are_damage(kit, good, tmp_path):
    ev = _zero_chunk(kit, good, tmp_path / "e.h5", "events", 1)
    with pytest.raises(DamagedFile, match=r"/events rows 256\.\.299"):
        read_events(ev)
    sp = _zero_chunk(kit, good, tmp_path / "s.h5", "eis/00000002/real_impedance_ohm", 0)
    with pytest.raises(DamagedFile, match="real_impedance_ohm rows 0..29"):
        read_spectra(sp)
    assert verify_file(sp).state == "damaged"


def test_recover_keeps_every_intact_chunk(kit, good, tmp_path):
    bad = _zero_chunk(kit, good, tmp_path / "z.h5", "cycling/voltage_volt", 2)
    out = salvage(bad, tmp_path / "saved.h5")
    assert [(x.rows, x.columns) for x in out.losses] == [((2048, 3071), ("voltage_volt",))]
    orig = read_cycling(good)
    saved = read_cycling(tmp_path / "saved.h5")
    keep = np.ones(orig.sizes["sample"], dtype=bool)
    keep[2048:3072] = False
    assert saved.sizes["sample"] == keep.sum() == out.rows_kept
    for c in orig.data_vars:
        np.testing.assert_array_equal(saved[c].values, orig[c].values[keep])
    assert verify_file(tmp_path / "saved.h5").state == "intact"


def test_resumed_file_continues_its_table(tmp_path):
    path = tmp_path / "r.h5"
    t = np.arange(6000, dtype="f8")
    from cyclerflow.store import create_cell

    with create_cell(path, None) as w:
        w.append_cycling({"test_time_second": t[:5000], "voltage_volt": 3 + t[:5000]})
    with resume_cell(path) as w:
        w.append_cycling({"test_time_second": t[5000:], "voltage_volt": 3 + t[5000:]})
    np.testing.assert_array_equal(read_cycling(path).test_time_second.values, t)
    v = verify_file(path)
    assert v.state == "intact" and v.checks == "Fletcher-32 + chunk CRC-32"
    with h5py.File(path) as f:
        entries = f[chunkcrc.table_name("/cycling/voltage_volt")][:]
    assert entries["rows"].tolist() == [4096, 6000 - 4096]


def test_live_file_reads_and_verifies_while_written(tmp_path):
    """A SWMR reader meets the table one flush behind or ahead of the data: never damage."""
    path = tmp_path / "live.h5"
    args = [sys.executable, str(WRITER), str(path), "300", "3.0", "0.05", "0.002"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    states, rows = [], []
    try:
        t_end = time.monotonic() + 2.5
        while time.monotonic() < t_end:
            ds = read_cycling(path)
            t = ds.test_time_second.values
            np.testing.assert_array_equal(t, np.arange(len(t), dtype="f8"))
            rows.append(len(t))
            states.append(verify_file(path).state)
    finally:
        out, _ = proc.communicate(timeout=30)
    assert "closed" in out
    assert rows[-1] > rows[0] and len(rows) > 5
    assert set(states) <= {"live", "unclosed"}, states
    assert verify_file(path).state == "intact"


def test_verify_json_says_which_checks(good, capsys):
    assert cli_main(["verify", str(good), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out if isinstance(out, list) else out.get("files", [out])
    assert rows[0]["checks"] == "Fletcher-32 + chunk CRC-32"


def test_the_crc_is_zlibs_crc32_from_a_nonzero_start():
    """The format is CRC-32 as zlib computes it (isal is only faster), started from the
    CRC-32 of "cyclerflow chunk K": zeros never give 0, the same bytes at another chunk
    index give another value."""
    import zlib

    data = np.linspace(0.0, 1.0, 5000)
    for k in (0, 7):
        start = zlib.crc32(b"cyclerflow chunk %d" % k)
        assert chunkcrc.crc_of(data, k) == zlib.crc32(data.tobytes(), start)
        # a running CRC continued over the next rows equals the CRC of all of them
        part = chunkcrc.crc_of(data[:1234], k)
        assert chunkcrc.crc_of(data[1234:], k, part) == chunkcrc.crc_of(data, k)
    zeros = np.zeros(4096)
    assert chunkcrc.crc_of(zeros, 0) != 0
    assert chunkcrc.crc_of(zeros, 0) != chunkcrc.crc_of(zeros, 1)


def test_a_zeroed_results_variable_is_damage(kit, good, tmp_path):
    from cyclerflow.analysis import analyze_cell, load_results, results_path

    analyze_cell(good)
    rp = results_path(good)
    with h5py.File(rp, "r") as f:
        name = next(
            f"cycling/{k}"
            for k, d in f["cycling"].items()
            if d.chunks is not None and d.dtype.kind == "f" and d.size > 4
        )
    before = load_results(rp)[1]["cycling"]
    bad = _zero_chunk(kit, rp, tmp_path / "r.nc", name, 0)
    with pytest.raises(DamagedFile, match=f"damaged results file: checksum mismatch in /{name}"):
        load_results(bad)
    # Fletcher-32 alone reads the zeros: what the CRC-32 is for
    with h5py.File(bad, "r") as f:
        assert not np.any(f[name][()]) and np.any(before[name.split("/")[1]].values)


def test_recover_keeps_sound_chunks_under_a_damaged_table_but_not_zeroed_ones(kit, good, tmp_path):
    """A zeroed table chunk costs no data: every chunk it covers that Fletcher-32 passes
    and that is not all zero bytes is kept (and listed); a zeroed data chunk is lost."""
    table = chunkcrc.table_name("/cycling/current_ampere")
    bad = _zero_chunk(kit, good, tmp_path / "t.h5", table, 0)
    bad = _zero_chunk(kit, bad, bad, "cycling/current_ampere", 1)
    out = salvage(bad, tmp_path / "saved.h5")
    assert [(x.rows, x.columns) for x in out.losses] == [((1024, 2047), ("current_ampere",))]
    n = read_cycling(good).sizes["sample"]
    kept = {x.rows for x in out.unchecked}
    assert (0, 1023) in kept and (1024, 2047) not in kept and (2048, 3071) in kept
    assert len(kept) == -(-n // 1024) - 1
    assert out.rows_kept == n - 1024
    orig = read_cycling(good).current_ampere.values
    saved = read_cycling(tmp_path / "saved.h5").current_ampere.values
    np.testing.assert_array_equal(saved, np.r_[orig[:1024], orig[2048:]])
    assert any(
        "kept on Fletcher-32 alone" in e["message"] for e in read_events(tmp_path / "saved.h5")
    )


def test_a_changed_protocol_byte_is_damage(tmp_path):
    """/protocol is contiguous (HDF5 checksums no contiguous data): its CRC-32 attribute."""
    from cyclerflow.store import create_cell, read_protocol

    text = "steps:\n  - charge: {current: 1 mA, until: 4.2 V}\n  - rest: 10 min\n"
    p = tmp_path / "p.h5"
    with create_cell(p, None, protocol=text, swmr=False) as w:
        w.append_cycling({"test_time_second": np.arange(10.0)})
    assert read_protocol(p) == text
    raw = bytearray(p.read_bytes())
    raw[raw.index(b"4.2 V")] = ord("3")  # "3.2 V": still a valid recipe
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DamagedFile, match="checksum mismatch in /protocol"):
        read_protocol(bad)
    v = verify_file(bad)
    assert [(d.kind, d.location) for d in v.damage] == [("checksum", "/protocol")]
