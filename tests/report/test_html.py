"""The HTML report: self-contained, every section, missing data said in words, overview table."""

from __future__ import annotations

import re

import pytest

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.report.html import build_report, cell_context, render_html

from . import synth


def _figures(html: str) -> list[str]:
    return re.findall(r'data-figure="([\w-]+)"', html)


def _self_contained(html: str) -> None:
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=\"(?!data:|#)", html)
    assert "<link" not in html and "@import" not in html and "url(http" not in html
    assert not re.search(r"https?://(?!www\.w3\.org)", html)


def test_single_cell_report_has_every_section():
    html = render_html([cell_context(synth.cell_data(), 0)])
    _self_contained(html)
    figs = _figures(html)
    assert figs == synth.ALL_FIGURES
    for text in (
        "layer stack",
        "LiPON",
        "RF sputtering in N2",
        "0.550 ± 0.004 eV",
        "2.300e-06 S/cm",
        "59.97 µAh/cm²",
        "Provenance",
        "input SHA-256",
        "0" * 64,
        "safety_stop",
        "voltage 4.31 V &gt; 4.30 V",
        "resume",
    ):
        assert text in html, text
    assert 'class="missing"' not in html.replace(
        'p class="missing">No safety', ""
    )  # nothing reported missing
    assert 'id="overview-table"' not in html  # one cell: no overview


def test_no_eis_and_no_metadata_say_what_is_missing():
    html = render_html(
        [cell_context(synth.cell_data(with_eis=False, with_meta=False, events=[]), 0)]
    )
    figs = _figures(html)
    assert "nyquist" not in figs and "bode" not in figs and "arrhenius" not in figs
    assert "capacity" in figs
    assert "No impedance spectra in this file" in html
    assert "No cell metadata in this file" in html
    assert "µAh/cm² not shown" in html
    assert "the file has no events at all" in html


def test_single_temperature_and_no_analysis():
    cell = synth.cell_data()
    for s in cell.spectra:
        s["temperature_kelvin"] = 298.15
    for s in cell.summary["eis"]["spectra"]:
        s["temperature_kelvin"] = 298.15
    html = render_html([cell_context(cell, 0)])
    assert "Spectra at a single temperature: no Arrhenius plot." in html
    assert "arrhenius" not in _figures(html)
    cell = synth.cell_data()
    cell.summary = None
    html = render_html([cell_context(cell, 0)])
    assert "No analysis results" in html
    assert "capacity" not in _figures(html) and "nyquist" in _figures(html)


def test_many_cells_overview_grouped_sorted_and_outlier_flagged():
    cells = []
    for k in range(7):
        wafer = "W01" if k < 4 else "W02"
        fade = 5e-4 if k == 5 else 5e-5 + 1e-6 * k  # cell 5 fades 10x faster
        cells.append(
            synth.cell_data(
                cell_id=f"{wafer}-D0{k % 2}-C{k}",
                wafer=wafer,
                die=f"D0{k % 2}",
                fade=fade,
                with_eis=k != 6,
                n_cycles=20,
            )
        )
    ctx = [cell_context(c, k, compact=True) for k, c in enumerate(cells)]
    html = render_html(ctx)
    _self_contained(html)
    table = html[
        html.index('id="overview-table"') : html.index(
            "</table>", html.index('id="overview-table"')
        )
    ]
    assert table.count('class="cell-row"') == 7
    assert table.count('class="group"') == 2
    assert (
        table.index("wafer W01")
        < table.index("W01-D00-C0")
        < table.index("wafer W02")
        < table.index("W02-D01-C5")
    )
    flagged = re.findall(
        r'<tr class="cell-row"><td data-v="([^"]+)">(?:(?!</tr>).)*class="num outlier"',
        table,
        flags=re.S,
    )
    assert "W02-D01-C5" in flagged
    assert "W01-D00-C0" not in flagged
    for c in ctx:  # every row links to its section
        assert f'href="#{c["anchor"]}"' in table and f'id="{c["anchor"]}"' in html
    assert html.count('<section class="cell"') == 7
    assert "No impedance spectra" in html  # the cell without EIS


def test_build_report_errors_leave_no_output(tmp_path):
    out = tmp_path / "r.html"
    with pytest.raises(InputError, match="missing.h5"):
        build_report([tmp_path / "missing.h5"], out)
    assert not out.exists()
    cell = synth.write_cell_file(tmp_path / "c.h5", n_cycles=3, with_eis=False)
    out.write_text("old")
    with pytest.raises(InputError, match="exists"):
        build_report([cell], out, force=False)
    assert out.read_text() == "old"
    with pytest.raises(InputError, match="no cell files"):
        build_report([], tmp_path / "x.html")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="bad.h5"):
        build_report([bad], tmp_path / "y.html")
    assert not (tmp_path / "y.html").exists()
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []


def test_pdf_without_chromium_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLERFLOW_CHROMIUM", str(tmp_path / "no-such-browser"))
    monkeypatch.setenv("PATH", str(tmp_path))
    cell = synth.write_cell_file(tmp_path / "c.h5", n_cycles=3, with_eis=False)
    with pytest.raises(InputError, match="needs Chromium"):
        build_report([cell], tmp_path / "r.html", pdf=True)
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.pdf").exists()


def test_cli_report_bad_input_exit_2(tmp_path, capsys):
    rc = main(["report", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "r.html")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nope.h5" in err and "not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_compact_many_cell_sections_have_one_summary_figure():
    cells = [synth.cell_data(cell_id=f"C{k}", with_eis=k != 1, n_cycles=12) for k in range(3)]
    html = render_html([cell_context(c, k, compact=True) for k, c in enumerate(cells)])
    assert _figures(html) == ["card", "card", "card"]
    assert "No impedance spectra in this file" in html  # still said in words
    assert html.count("0.550 ± 0.004 eV") == 2  # headline numbers stay


def test_cli_report_json(tmp_path, capsys):
    import json

    cell = synth.write_cell_file(tmp_path / "c.h5", n_cycles=3, with_eis=False)
    rc = main(["report", str(cell), "-o", str(tmp_path / "r.html"), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"] == str(tmp_path / "r.html") and out["cells"] == 1 and out["pdf"] is None
    html = (tmp_path / "r.html").read_text()
    assert "capacity" in _figures(html) and "No impedance spectra" in html
    assert (tmp_path / "c.results.nc").exists()  # analysis results written beside the cell
    assert "computed now" in html
    assert main(["report", str(cell), "-o", str(tmp_path / "r.html"), "--quiet", "--force"]) == 0
    assert "reused (input hash matches)" in (tmp_path / "r.html").read_text()


def test_outlier_flags_ignore_rounding_noise():
    from cyclerflow.report.html import _flag_outliers

    rows = [
        {
            "cell_id": f"c{k}",
            "ce_median": 0.9995 + (1e-12 if k == 3 else 0.0),
            "fade_pct_per_cycle": 0.005,
        }
        for k in range(8)
    ]
    rows[5]["fade_pct_per_cycle"] = 0.02
    _flag_outliers(rows)
    assert [r["cell_id"] for r in rows if r.get("outliers")] == ["c5"]
    assert list(rows[5]["outliers"]) == ["fade_pct_per_cycle"]
