"""`cyclerflow import / inspect / export / recover`: happy path and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from cyclerflow.cli import main
from cyclerflow.store import read_cycling, read_spectra
from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum

HEADER = "test_time_second,voltage_volt,current_ampere,cycle_count\n"


@pytest.fixture
def meta_file(tmp_path, lipon_metadata):
    p = tmp_path / "cell.yaml"
    p.write_text(yaml.safe_dump(lipon_metadata))
    return p


@pytest.fixture
def cycling_csv(tmp_path):
    p = tmp_path / "cyc.csv"
    pd.DataFrame(galvanostatic_cycles(n_cycles=3, points_per_half=20)).to_csv(
        p, index=False, float_format="%.17g"
    )
    return p


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_inspect_export_roundtrip(tmp_path, capsys, meta_file, cycling_csv):
    f = np.logspace(6, -1, 40)
    z = rc_spectrum(f)
    eis = tmp_path / "eis.csv"
    pd.DataFrame(
        {
            "frequency_hertz": f,
            "real_impedance_ohm": z.real,
            "imaginary_impedance_ohm": z.imag,
            "temperature_kelvin": 298.15,
        }
    ).to_csv(eis, index=False, float_format="%.17g")
    out = tmp_path / "cell.h5"
    code, _, err = _run(capsys, "import", cycling_csv, eis, "--cell", meta_file, "-o", out)
    assert code == 0, err
    code, text, _ = _run(capsys, "inspect", out)
    assert code == 0
    for words in ("W07-D12-C3", "0.0035 cm²", "closed", "LiPON", "spectra"):
        assert words in text
    code, js, _ = _run(capsys, "inspect", out, "--json")
    info = json.loads(js)
    assert info["cycles"] == 3 and info["spectra"] == 1 and info["rows"] == 3 * 2 * 30
    # export -> import gives identical data
    csv2 = tmp_path / "back.csv"
    assert _run(capsys, "export", out, "-o", csv2)[0] == 0
    out2 = tmp_path / "cell2.h5"
    assert _run(capsys, "import", csv2, "-o", out2)[0] == 0
    a, b = read_cycling(out), read_cycling(out2)
    for c in (
        "test_time_second",
        "voltage_volt",
        "current_ampere",
        "cycle_count",
        "step_count",
        "unix_time_second",
    ):
        np.testing.assert_array_equal(a[c].values, b[c].values)
    eis2 = tmp_path / "back_eis.csv"
    assert _run(capsys, "export", out, "--eis", "-o", eis2)[0] == 0
    out3 = tmp_path / "cell3.h5"
    assert _run(capsys, "import", eis2, "-o", out3)[0] == 0
    (s1,), (s3,) = read_spectra(out), read_spectra(out3)
    np.testing.assert_array_equal(
        s1["imaginary_impedance_ohm"].values, s3["imaginary_impedance_ohm"].values
    )
    assert s3.attrs["temperature_kelvin"] == 298.15


def test_bdf_labels_and_optional_cycle_count(tmp_path, capsys):
    p = tmp_path / "labels.csv"
    p.write_text("Test Time / s;Voltage / V;Current / A\n0;3.0;1e-6\n1;3.1;1e-6\n2;3.2;-1e-6\n")
    out = tmp_path / "l.h5"
    assert _run(capsys, "import", p, "-o", out)[0] == 0
    ds = read_cycling(out)
    np.testing.assert_array_equal(ds["current_ampere"].values, [1e-6, 1e-6, -1e-6])
    assert "cycle_count" not in ds  # optional: found later from the current


def test_refuses_overwrite_without_force(tmp_path, capsys, cycling_csv):
    out = tmp_path / "o.h5"
    assert _run(capsys, "import", cycling_csv, "-o", out)[0] == 0
    before = out.read_bytes()
    code, _, err = _run(capsys, "import", cycling_csv, "-o", out)
    assert code == 2 and "--force" in err
    assert out.read_bytes() == before
    assert _run(capsys, "import", cycling_csv, "-o", out, "--force")[0] == 0


BAD_CSV = {
    "missing_column": (
        "test_time_second,voltage_volt\n0,3\n1,3\n",
        ["missing column", "current_ampere", "line 1"],
    ),
    "renamed_column": (
        "time,voltage_volt,current_ampere\n0,3,1\n1,3,1\n",
        ["missing column", "test_time_second"],
    ),
    "non_numeric": (
        HEADER + "0,3.0,1e-6,1\n1,3.1,abc,1\n",
        ["non-numeric", "'abc'", "line 3", "current_ampere"],
    ),
    "nan": (
        HEADER + "0,3.0,1e-6,1\n1,,1e-6,1\n",
        ["missing or non-finite", "line 3", "voltage_volt"],
    ),
    "nan_literal": (HEADER + "0,3.0,1e-6,1\n1,nan,1e-6,1\n", ["non-finite", "line 3"]),
    "time_backwards": (HEADER + "0,3,1e-6,1\n2,3,1e-6,1\n1,3,1e-6,1\n", ["backwards", "line 4"]),
    "empty": ("", ["empty"]),
    "header_only": (HEADER, ["no data rows"]),
    "wrong_delimiter": (
        "test_time_second|voltage_volt|current_ampere\n0|3|1\n",
        ["missing column", "header line reads", "separated"],
    ),
    "ragged": (HEADER + "0,3,1e-6,1\n1,3,1e-6,1,9,9\n", ["line 3"]),
    "fractional_cycle": (HEADER + "0,3,1e-6,1\n1,3,1e-6,1.5\n", ["whole numbers", "line 3"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_is_one_clear_error_and_no_output(tmp_path, capsys, case):
    text, words = BAD_CSV[case]
    src = tmp_path / f"{case}.csv"
    src.write_text(text)
    out = tmp_path / "out.h5"
    code, _, err = _run(capsys, "import", src, "-o", out)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(src) in err
    for w in words:
        assert w in err, (w, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


def test_bad_metadata_and_paths(tmp_path, capsys, cycling_csv, lipon_metadata):
    lipon_metadata["layers"][2]["thickness_um"] = -1
    meta = tmp_path / "bad.yaml"
    meta.write_text(yaml.safe_dump(lipon_metadata))
    out = tmp_path / "o.h5"
    code, _, err = _run(capsys, "import", cycling_csv, "--cell", meta, "-o", out)
    assert code == 2 and "layers.2.thickness_um" in err and not out.exists()
    code, _, err = _run(capsys, "import", cycling_csv, "-o", tmp_path / "missing" / "o.h5")
    assert code == 2 and "does not exist" in err
    code, _, err = _run(capsys, "import", tmp_path / "nope.csv", "-o", out)
    assert code == 2 and "not found" in err and not out.exists()


def test_missing_area_is_warned_not_invented(tmp_path, capsys, cycling_csv, lipon_metadata):
    lipon_metadata.pop("active_area_cm2")
    meta = tmp_path / "noarea.yaml"
    meta.write_text(yaml.safe_dump(lipon_metadata))
    out = tmp_path / "o.h5"
    code, _, err = _run(capsys, "import", cycling_csv, "--cell", meta, "-o", out)
    assert code == 0
    assert "active_area_cm2" in err and "null" in err


def test_inspect_a_live_file(tmp_path, capsys):
    from cyclerflow.store import create_cell

    p = tmp_path / "live.h5"
    w = create_cell(p, None, flush_interval=0)
    try:
        w.append_cycling(
            {
                "test_time_second": np.arange(10.0),
                "voltage_volt": np.ones(10),
                "current_ampere": np.ones(10),
            }
        )
        w.flush()
        code, out, _ = _run(capsys, "inspect", p)
        assert code == 0 and "live" in out and "10" in out
        code, _, err = _run(capsys, "recover", p)
        assert code == 2 and "live process" in err
    finally:
        w.close()


def test_truncated_hdf5_is_a_clear_error(tmp_path, capsys):
    src = tmp_path / "ok.h5"
    from cyclerflow.store import write_cell

    write_cell(
        src,
        None,
        cycling={
            "test_time_second": np.arange(1000.0),
            "voltage_volt": np.ones(1000),
            "current_ampere": np.ones(1000),
        },
    )
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(src.read_bytes()[:1500])
    code, _, err = _run(capsys, "inspect", bad)
    assert code == 2 and "trunc.h5" in err and "Traceback" not in err


def test_split_maccor_files_join_in_order_only(tmp_path, capsys, shared_data):
    a, b = (
        shared_data / "maccor" / "maccor_example.001",
        shared_data / "maccor" / "maccor_example.002",
    )
    out = tmp_path / "m.h5"
    assert _run(capsys, "import", a, b, "-o", out)[0] == 0
    assert read_cycling(out).sizes["sample"] == 16
    bad = tmp_path / "rev.h5"
    code, _, err = _run(capsys, "import", b, a, "-o", bad)
    assert code == 2 and "maccor_example" in err and not bad.exists()


def test_every_command_group_loads():
    """A broken plugin is left out of the CLI quietly; here none may be broken."""
    from cyclerflow.cli import build_app, command_modules

    cli = build_app()
    assert cli.errors == {}
    app = cli.app
    assert set(command_modules()) >= {"core", "analysis", "eis", "report", "acquire", "flows"}
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    for cmd in ("import", "inspect", "export", "analyze", "fit-eis", "report", "acquire", "demo"):
        assert cmd in names, cmd
