"""Real public files of the variants of issue 12 (fixtures/vendor), against independent truth:
values asserted by the source project's own tests, the same vendor's point-locale twin,
or the file's rows parsed here with pandas (a parser independent of ours)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from refusal import assert_refused

from cyclerflow.cli import main
from cyclerflow.importers import detect, read_any


def test_gamry_decimal_comma_file(vendor_data):
    """gamry-parser's German-locale fixture: its tests assert these values."""
    path = vendor_data / "gamry/chronoa_de_data.dta"
    assert detect(path).FORMAT == "gamry-dta"
    c = read_any(path)["cycling"]
    t, v, i = c["test_time_second"], c["voltage_volt"], c["current_ampere"]
    assert len(t) == 10 and t[-1] == 270.0 and t[3] == 90.0001
    assert v[0] == -5e-4 and v[-1] == 0.4
    assert i[0] == -2e-8 and i[-1] == 3e-9  # CONVENTION 1: as printed


def test_gamry_decimal_comma_equals_its_point_twin(vendor_data):
    """Rows 1-9 are the same measurement as chronoa_data.dta (point locale): same bits."""
    comma = read_any(vendor_data / "gamry/chronoa_de_data.dta")["cycling"]
    point = read_any(vendor_data / "gamry/chronoa_data.dta")["cycling"]
    for k in ("test_time_second", "voltage_volt", "current_ampere", "unix_time_second"):
        np.testing.assert_array_equal(comma[k][1:], point[k][1:], err_msg=k)
    assert comma["voltage_volt"][0] == -5.0e-4 and point["voltage_volt"][0] == -5.4e-4


def _pandas_rows(path, skip: int, sep: str) -> pd.DataFrame:
    text = path.read_bytes().decode("latin-1").replace("\r", "")
    body = "\n".join(text.split("\n")[skip:])
    return pd.read_csv(io.StringIO(body), sep=sep, header=None, skipinitialspace=True)


def test_powersuite_text(vendor_data):
    """PAR PowerSuite: tab + space separated, CR CR LF line ends, Zimg signed as written."""
    path = vendor_data / "eis/exampleDataPowersuite.txt"
    assert path.read_bytes().count(b"\r\r\n") == 31
    assert detect(path).FORMAT == "eis-text"
    (sp,) = read_any(path)["spectra"]
    ref = _pandas_rows(path, 1, "\t")
    np.testing.assert_array_equal(sp["frequency_hertz"], ref[0])
    np.testing.assert_array_equal(sp["real_impedance_ohm"], ref[1])
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"], ref[2])
    assert len(sp["frequency_hertz"]) == 30
    assert sp["frequency_hertz"][0] == 0.1 and sp["imaginary_impedance_ohm"][0] == -49014.063


def test_zplotw_text_without_end_comments(vendor_data):
    """ZPlot for Windows text: quoted first and column lines, Date and Time on one line,
    no End Comments, comma + space rows; detected as ZPlot (not a generic table)."""
    path = vendor_data / "eis/exampleDataZPlot_noComments.z"
    assert detect(path).FORMAT == "zplot"
    (sp,) = read_any(path)["spectra"]
    ref = _pandas_rows(path, 10, ",")
    assert len(ref) == 31 == len(sp["frequency_hertz"])  # the header's '79' is not trusted
    np.testing.assert_array_equal(sp["frequency_hertz"], ref[0])
    np.testing.assert_array_equal(sp["real_impedance_ohm"], ref[4])
    np.testing.assert_array_equal(sp["imaginary_impedance_ohm"], ref[5])
    assert sp["technique"] == "PEIS"  # "Sweep Frequency: Control Voltage"
    assert sp["amplitude"] == 0.01 and sp["dc_level"] == 0.0
    # Date: 12-17-2019 Time: 16:24:35 (local, kept as UTC) + the first row's 2.58 s
    assert sp["unix_time_second"] == pytest.approx(1576599875.0 + 2.58, abs=1e-6)


@pytest.mark.parametrize(
    "rel",
    [
        "gamry/chronoa_de_data.dta",
        "eis/exampleDataPowersuite.txt",
        "eis/exampleDataZPlot_noComments.z",
        "gamry/eispot_data_curveaborted.dta",
    ],
)
def test_cli_imports_each_without_format(vendor_data, tmp_path, rel):
    out = tmp_path / "c.h5"
    assert main(["import", str(vendor_data / rel), "-o", str(out), "-q"]) == 0
    assert out.exists()


def test_gamry_aborted_sweep(vendor_data):
    """gamry-parser's aborted EIS fixture: one 5-point curve (its tests), the same points as
    the first five of the complete sweep eispot_data.dta, flagged and warned about."""
    data = read_any(vendor_data / "gamry/eispot_data_curveaborted.dta")
    (sp,) = data["spectra"]
    (full,) = read_any(vendor_data / "gamry/eispot_data.dta")["spectra"]
    assert len(sp["frequency_hertz"]) == 5
    for k in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm"):
        np.testing.assert_array_equal(sp[k], full[k][:5], err_msg=k)
    assert sp["experiment_aborted"] == 1 and "experiment_aborted" not in full
    assert any("aborted" in w for w in data["warnings"])


def test_biologic_header_with_a_name_missing_is_refused(vendor_data, tmp_path):
    """impedance.py's exampleDataBioLogic_MissingFreq.mpt: 17 names, 18 values per row.
    Read by position it would shift every column by one (Re(Z) taken as frequency ...):
    refused, naming the line, exit 2, no output file."""

    path = vendor_data / "biologic/exampleDataBioLogic_MissingFreq.mpt"
    assert detect(path).FORMAT == "biologic-mpt"
    assert_refused(path, r"line 6[12].*17 columns.*18 values", tmp_path)
