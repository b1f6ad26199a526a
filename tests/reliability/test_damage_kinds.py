"""Every kind of damage is one classified error (exit 2, file and place named) on every
reader path; a flipped data byte is caught by the checksum, never read as data."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from cyclerflow.analysis import analyze_cell, load_results, results_path
from cyclerflow.cli import main as cli_main
from cyclerflow.errors import InputError
from cyclerflow.export import export_cycling_csv
from cyclerflow.report.watch import render_frame
from cyclerflow.store import create_cell, read_cycling, read_events, read_spectra, summary
from cyclerflow.store.damage import DamagedFile
from cyclerflow.store.verify import verify_file

READERS = {
    "summary": summary,
    "read_cycling": read_cycling,
    "read_events": read_events,
    "read_spectra": read_spectra,
    "analyze": lambda p: analyze_cell(p, write_results=False),
    "watch": render_frame,
}

#: kind of damage -> (DamagedFile.kind, words the message must hold, readers that meet it)
CASES = {
    "superblock": ("superblock", "superblock does not decode", list(READERS)),
    "truncated": ("truncated", "cut short", list(READERS)),
    "metadata": ("metadata", "/cycling", ["summary", "read_cycling", "analyze", "watch"]),
    "chunk": ("checksum", "/cycling/voltage_volt rows 2048..3071", ["read_cycling", "analyze"]),
    "events": ("checksum", "/events rows 256..299", ["read_events", "analyze", "watch"]),
    "spectrum": (
        "checksum",
        "/eis/00000002/real_impedance_ohm",
        ["read_spectra", "summary", "analyze", "watch"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_damage_kind_is_a_damaged_file_error_on_every_reader(damaged, case):
    kind, words, readers = CASES[case]
    path = damaged(case)
    for name in readers:
        with pytest.raises(DamagedFile) as info:
            READERS[name](path)
        err = info.value
        assert err.kind == kind, (name, err)
        assert str(path) in str(err) and words in str(err), (name, str(err))


def test_the_intact_parts_of_a_file_with_a_damaged_chunk_still_read(damaged):
    path = damaged("chunk")
    assert len(read_events(path)) == 300 and len(read_spectra(path)) == 2
    ds = read_cycling(path, columns=["current_ampere"])  # another column: intact
    assert ds.sizes["sample"] > 3072


def test_a_file_that_is_no_hdf5_is_an_input_error_not_damage(damaged):
    path = damaged("not_hdf5")
    with pytest.raises(InputError, match="not an HDF5 file") as info:
        summary(path)
    assert not isinstance(info.value, DamagedFile)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["analyze", "inspect", "export"])
def test_cli_exit_2_one_line_no_traceback(damaged, case, command, capsys, tmp_path):
    path = damaged(case)
    argv = {
        "analyze": ["analyze", str(path), "--json"],
        "inspect": ["inspect", str(path)],
        "export": ["export", str(path), "-o", str(tmp_path / "out.csv")],
    }[command]
    rc = cli_main(argv)
    err = capsys.readouterr().err
    if command == "export" and case in ("events", "spectrum"):
        assert rc == 0  # export of /cycling does not touch the damaged object
        return
    if command == "inspect" and case in ("chunk", "events"):
        assert rc == 0  # inspect reads a chunk's first/last rows and counts, not every row
        return
    assert rc == 2, err
    assert "Traceback" not in err and err.startswith("error: ") and str(path) in err
    assert "damaged file" in err
    assert not (tmp_path / "out.csv").exists()


def test_export_refuses_a_damaged_chunk(damaged, tmp_path):
    with pytest.raises(DamagedFile, match="rows 2048..3071"):
        export_cycling_csv(damaged("chunk"), tmp_path / "out.csv")
    assert not list(tmp_path.glob("*out.csv*"))


def test_flipped_data_byte_is_caught_by_the_checksum_not_read_as_data(kit, tmp_path):
    """The same flip in a file without checksums is read as data without a word (what
    the old files risk); with checksums it is an error naming the rows."""
    data = {"test_time_second": np.arange(5000.0), "voltage_volt": np.full(5000, 3.7)}
    for checksums in (False, True):
        path = tmp_path / f"c{checksums}.h5"
        w = create_cell(path, None, columns=list(data), swmr=False, checksums=checksums,
                        chunk_rows=1024)  # fmt: skip
        w.append_cycling(data)
        w.close()
        off, size, first = kit.chunk_offset(path, "cycling/voltage_volt", 1)
        kit.edit(path, path, kit.flip(off + 8 * 7 + 7))  # the sign/exponent byte of row 1031
        if not checksums:
            v = read_cycling(path)["voltage_volt"].values
            assert first == 1024 and v[1031] != 3.7 and np.sum(v != 3.7) == 1
            assert verify_file(path).state == "no checksums"
        else:
            with pytest.raises(DamagedFile, match=r"voltage_volt rows 1024\.\.2047") as info:
                read_cycling(path)
            assert info.value.kind == "checksum"
            v = verify_file(path)
            assert v.state == "damaged" and v.damage[0].rows == (1024, 2047)


def test_damaged_results_file_is_classified_and_the_report_analyses_again(good, kit):
    analyze_cell(good)
    rp = results_path(good)
    with h5py.File(rp, "r") as f:
        attrs = dict(f.attrs)
    # change one digit of the summary inside the file (same length: HDF5 does not notice)
    raw = bytearray(rp.read_bytes())
    text = attrs["summary_json"]
    text = text.decode() if isinstance(text, bytes) else text
    key = text.index('"discharge_capacity_ah": ') + len('"discharge_capacity_ah": ')
    needle = text[: key + 6].encode()
    pos = raw.find(needle)
    assert pos > 0
    while pos >= 0:  # every copy (a rewritten attribute can leave its old bytes behind)
        digit = pos + key + 3
        raw[digit] = ord("1") if raw[digit] != ord("1") else ord("2")
        pos = raw.find(needle, pos + 1)
    rp.write_bytes(bytes(raw))
    with pytest.raises(DamagedFile, match="damaged results file"):
        load_results(rp)
    from cyclerflow.report.data import load_analysis

    summary_, _, prov, _ = load_analysis(good)
    assert prov["results"] == "computed now"  # not reused: analysed again
    assert json.loads(json.dumps(summary_)) == load_results(rp)[0]  # rewritten, intact


def test_changed_metadata_text_is_a_checksum_error(good, tmp_path, capsys):
    raw = good.read_bytes()
    needle = b'"cell_id":"C1"'
    assert needle in raw  # fixed-length text, inside the checksummed object header of /cell
    bad = tmp_path / "meta.h5"
    bad.write_bytes(raw.replace(needle, b'"cell_id":"C7"'))  # same length, still valid JSON
    with pytest.raises(DamagedFile, match="metadata of /cell do not decode"):
        summary(bad)
    assert cli_main(["analyze", str(bad), "--json"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_metadata_text_that_no_longer_parses_is_damage_not_a_validation_traceback(
    good, tmp_path, capsys
):
    bad = tmp_path / "meta.h5"
    bad.write_bytes(good.read_bytes())
    with h5py.File(bad, "r+") as f:  # as an older version wrote it: variable-length text
        f["cell"].attrs["metadata_json"] = '{"cell_id": [12]}'
    with pytest.raises(DamagedFile, match="metadata_json"):
        summary(bad)
    assert cli_main(["analyze", str(bad), "--json"]) == 2
    assert "Traceback" not in capsys.readouterr().err
