"""Cell store: layout, units, round trip, resume, events, spectra."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from cyclerflow.errors import InputError
from cyclerflow.schema import parse_metadata
from cyclerflow.store import (
    create_cell,
    read_cycling,
    read_events,
    read_metadata,
    read_protocol,
    read_spectra,
    resume_cell,
    summary,
    write_cell,
)


def _rows(n, start=0):
    t = np.arange(start, start + n, dtype="f8")
    return {
        "test_time_second": t,
        "unix_time_second": 1.7e9 + t,
        "voltage_volt": 3.0 + 1e-4 * t,
        "current_ampere": np.where((t // 100) % 2 == 0, 7e-9, -7e-9),
        "cycle_count": (t // 200).astype("i8") + 1,
    }


def test_layout_units_and_roundtrip(tmp_path, lipon_metadata):
    meta = parse_metadata(lipon_metadata)
    p = tmp_path / "c.h5"
    with create_cell(p, meta, metadata_text="cell_id: W07-D12-C3\n", protocol="name: x\n") as w:
        for k in range(10):
            w.append_cycling(_rows(1000, 1000 * k))
        sid = w.append_spectrum(
            [1e6, 1e3, 1.0],
            [10.0, 500.0, 900.0],
            [-1.0, -200.0, -5e3],
            temperature_kelvin=298.15,
            cycle_count=3,
        )
        w.add_event("safety_stop", "voltage 4.31 V > 4.30 V", step=4, test_time_second=12.5)
    assert sid == 1
    with h5py.File(p, "r") as f:
        # text is fixed-length (bytes in h5py): kept in the checksummed object header
        assert f.attrs["format"] == b"cyclerflow.cell"
        assert h5py.check_string_dtype(f.attrs.get_id("format").dtype).length is not None
        for name in ("format_version", "software_version", "created"):
            assert name in f.attrs
        assert f["cell"].attrs["cell_id"] == b"W07-D12-C3"
        assert f["cell"].attrs["active_area_m2"] == pytest.approx(0.0035e-4)
        assert "original_text" in f["cell"].attrs

        def check_units(name, obj):
            if isinstance(obj, h5py.Dataset) and name not in ("protocol",):
                assert "units" in obj.attrs, name

        f.visititems(check_units)
        assert f["cycling/voltage_volt"].chunks is not None
        assert f["cycling/voltage_volt"].maxshape == (None,)
        assert "eis/00000001" in f and "eis/_stream" not in f
    ds = read_cycling(p)
    ref = _rows(10_000)
    for c, v in ref.items():
        np.testing.assert_array_equal(ds[c].values, v)
    assert ds["voltage_volt"].attrs["units"] == "V"
    assert np.isnan(ds["temperature_kelvin"].values).all()  # not given -> NaN, not 0
    (sp,) = read_spectra(p)
    assert sp.attrs["temperature_kelvin"] == 298.15 and sp.attrs["cycle_count"] == 3
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"].values, [-1.0, -200.0, -5e3])
    (ev,) = read_events(p)
    assert ev["kind"] == "safety_stop" and ev["step"] == 4 and "4.31" in ev["message"]
    assert read_metadata(p).cell_id == "W07-D12-C3"
    assert read_protocol(p) == "name: x\n"
    info = summary(p)
    assert (
        info["rows"] == 10_000
        and info["cycles"] == 50
        and info["spectra"] == 1
        and info["state"] == "closed"
    )


def test_resume_appends_and_numbers_spectra(tmp_path):
    p = tmp_path / "r.h5"
    with create_cell(p, None) as w:
        w.append_cycling(_rows(500))
        w.append_spectrum([1, 2], [1, 2], [-1, -2])
    with resume_cell(p) as w:
        assert w.rows_flushed == 500
        w.append_cycling(_rows(500, 500))
        assert w.append_spectrum([1, 2], [3, 4], [-3, -4]) == 2
        w.add_event("resume", "continued")
    ds = read_cycling(p)
    np.testing.assert_array_equal(ds["test_time_second"].values, np.arange(1000.0))
    assert [s.attrs["spectrum_id"] for s in read_spectra(p)] == [1, 2]


def test_refuses_existing_and_missing_folder(tmp_path):
    p = tmp_path / "x.h5"
    create_cell(p, None).close()
    with pytest.raises(InputError, match="exists"):
        create_cell(p, None)
    with pytest.raises(InputError, match="does not exist"):
        create_cell(tmp_path / "nope" / "x.h5", None)


def test_second_writer_is_refused(tmp_path):
    p = tmp_path / "w.h5"
    w = create_cell(p, None)
    try:
        with pytest.raises(InputError, match="being written"):
            resume_cell(p)
    finally:
        w.close()


def test_write_cell_is_atomic_on_error(tmp_path):
    out = tmp_path / "a.h5"
    with pytest.raises(InputError):
        write_cell(out, None, cycling={"test_time_second": [0, 1], "voltage_volt": [1, 2, 3]})
    assert list(tmp_path.iterdir()) == []


def test_reading_a_non_cell_file_is_a_clear_error(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = 1
    with pytest.raises(InputError, match="not a cyclerflow cell file"):
        read_cycling(p)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"hello")
    with pytest.raises(InputError, match=r"junk\.h5"):
        read_cycling(junk)


def test_small_cells_stay_small_and_live_files_use_small_chunks(tmp_path):
    """Chunks follow the data: a 50-row import is kB, not one 512 KiB chunk per column."""
    small = write_cell(tmp_path / "small.h5", None, cycling=_rows(50))
    assert small.stat().st_size < 100_000
    with h5py.File(small) as f:
        assert f["cycling/voltage_volt"].chunks[0] < 65536
    big = write_cell(tmp_path / "big.h5", None, cycling=_rows(200_000))
    with h5py.File(big) as f:
        assert f["cycling/voltage_volt"].chunks == (65536,)
    np.testing.assert_array_equal(read_cycling(big).voltage_volt, _rows(200_000)["voltage_volt"])
    w = create_cell(tmp_path / "live.h5", None)
    w.append_cycling(_rows(10))
    w.close()
    assert (tmp_path / "live.h5").stat().st_size < 300_000


def test_close_while_a_reader_holds_the_file(tmp_path):
    """A live reader keeps HDF5's file lock: close() still succeeds, releases our lock,
    and the streamed spectrum stays readable (moved into /eis/<id> on the next resume)."""
    from cyclerflow.store.writer import live_writer_pid

    path = tmp_path / "live.h5"
    w = create_cell(path, None)
    w.append_cycling(_rows(10))
    w.append_spectrum([1e3, 1e2], [10.0, 12.0], [-1.0, -3.0], temperature_kelvin=298.15)
    w.flush()
    hold = (
        "import h5py, sys, time\n"
        "f = h5py.File(sys.argv[1], 'r', libver='latest', swmr=True)\n"
        "print('open', flush=True)\n"
        "time.sleep(30)\n"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        w.close()
    finally:
        reader.kill()
        reader.wait()
    assert live_writer_pid(path) is None
    (sp,) = read_spectra(path)
    np.testing.assert_array_equal(sp.real_impedance_ohm, [10.0, 12.0])
    resume_cell(path).close()
    with h5py.File(path) as f:
        assert list(f["eis"]) == ["00000001"]
    assert len(read_spectra(path)) == 1


def test_live_appends_keep_their_positions_and_idle_flushes_skip_the_file(tmp_path):
    p = tmp_path / "live.h5"
    with create_cell(p, None) as w:
        w.add_event("note", "first")
        w.append_cycling(_rows(3))
        assert w.flush() == 3
        n = w.flush_count
        assert w.flush() == 3  # nothing new: the file is not flushed again
        assert w.flush_count == n
        w.append_cycling({"test_time_second": [3.0, 4.0]})  # other columns: NaN / -1
        w.add_event("note", "second", flush=False)
        assert w.flush() == 5
        assert w.flush_count == n + 1
    with resume_cell(p) as w:  # row and event counts come back from the file
        assert w.rows_flushed == 5
        w.append_cycling(_rows(2, 5))
        w.add_event("note", "third")
    ds = read_cycling(p)
    np.testing.assert_array_equal(ds["test_time_second"].values, np.arange(7.0))
    np.testing.assert_array_equal(ds["cycle_count"].values, [1, 1, 1, -1, -1, 1, 1])
    assert np.isnan(ds["voltage_volt"].values[3:5]).all()
    assert [e["message"] for e in read_events(p)] == ["first", "second", "third"]
