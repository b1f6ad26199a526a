"""Format detection picks the right reader for every real file without --format, and
says what it tried (and why each reader said no) when nothing fits."""

from __future__ import annotations

import pytest

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.importers import available_importers, detect

EXPECTED = {
    "arbin/arbin_example.csv": "arbin",
    "arbin/bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx": "arbin",
    "cellpy/20160805_test001_45_cc_01.res": "arbin",
    "cellpy/maccor_002.txt": "maccor",
    "maccor/maccor_example.001": "maccor",
    "maccor/maccor_example.002": "maccor",
    "gamry/eispot_data.dta": "gamry-dta",
    "gamry/cv_data.dta": "gamry-dta",
    "gamry/chronoa_data.dta": "gamry-dta",
    "gamry/ocvcurve_data.dta": "gamry-dta",
    "eis/exampleDataGamry.DTA": "gamry-dta",
    "eis/exampleDataZPlot.z": "zplot",
    "eis/Circuit1_EIS_1.z": "zplot",
    "eis/exampleData.csv": "eis-text",
    "eis/exampleDataAutolab.txt": "eis-text",
    "eis/exampleDataParstat.txt": "eis-text",
    "eis/exampleDataVersaStudio.par": "eis-text",
    "eis/exampleDataCHInstruments.txt": "eis-text",
    "eis/exampleDataBioLogic.mpt": "biologic-mpt",
}


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_every_vendor_file_is_detected(vendor_data, rel):
    assert detect(vendor_data / rel).FORMAT == EXPECTED[rel]


def test_nothing_fits_names_every_reader_and_why(tmp_path, capsys):
    p = tmp_path / "mystery.bin"
    p.write_bytes(b"\x00\x01\x02 not any vendor's file\n" * 10)
    with pytest.raises(InputError) as err:
        detect(p)
    msg = str(err.value)
    for mod in available_importers():
        assert f"{mod.FORMAT}: " in msg
    assert "expected 'EXPLAIN' on line 1" in msg and "expected 'ZPLOT'" in msg
    assert main(["import", str(p), "-o", str(tmp_path / "m.h5"), "-q"]) == 2
    assert "tried" in capsys.readouterr().err
    assert not (tmp_path / "m.h5").exists()


def test_bdf_csv_header_with_a_name_missing_is_refused(tmp_path):
    p = tmp_path / "shifted.csv"
    p.write_text("test_time_second,voltage_volt,current_ampere\n0,3.5,0.001,1\n1,3.6,0.001,1\n")
    with pytest.raises(InputError, match=r"line 2\).*row has 4 fields but the column line names 3"):
        detect(p).read(p)
