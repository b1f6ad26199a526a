"""Reports opened in headless Chromium: no console errors, every figure drawn, tables complete.

Set CYCLERFLOW_SHOTS=DIR to keep the full-page screenshots for a look.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclerflow.report.html import build_report, cell_context, find_chromium, render_html

from . import synth

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("chromium is not installed (make browser)")
    from .cdp import Browser

    with Browser(width=1400, height=1000) as b:
        yield b


def _keep(shot: bytes, name: str, tmp: Path) -> None:
    out = Path(os.environ.get("CYCLERFLOW_SHOTS", tmp))
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(shot)


def _check_page(b, html_path: Path, tmp: Path, *, name: str) -> dict:
    """Open a report; assert no console errors, only local resources, every figure non-blank."""
    b.open(html_path.resolve().as_uri())
    assert b.console_errors() == []
    assert all(u.startswith(("file:", "data:")) for u in b.requests()), b.requests()
    figs = b.eval(
        """Array.from(document.querySelectorAll('figure.cf-figure')).map(f => {
             const img = f.querySelector('img'); const r = img.getBoundingClientRect();
             return {id: f.id, kind: f.dataset.figure, ok: img.complete && img.naturalWidth > 0,
                     x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height}; })"""
    )
    shot = b.screenshot()  # the whole page, once; figures are cropped from it
    page = Image.open(io.BytesIO(shot)).convert("L")
    for f in figs:
        assert f["ok"], f"figure {f['id']} did not load"
        assert f["w"] > 300 and f["h"] > 100, f
        box = (int(f["x"]), int(f["y"]), int(f["x"] + f["w"]), int(f["y"] + f["h"]))
        px = np.asarray(page.crop(box), dtype=float)
        ink = (px < 200).mean()
        assert px.std() > 10 and ink > 0.01, (
            f"figure {f['id']} looks blank (std {px.std():.1f}, ink {ink:.3f})"
        )
    _keep(shot, name, tmp)
    return {"figures": figs}


def test_console_check_detects_errors(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><p>x</p><script>console.error('deliberate'); undefinedFunction();</script></body></html>"
    )
    browser.open(page.as_uri())
    errs = browser.console_errors()
    assert any("deliberate" in e for e in errs)
    assert any("undefinedFunction" in e for e in errs)


def test_synthetic_reports(browser, tmp_path):
    one = tmp_path / "one.html"
    one.write_text(render_html([cell_context(synth.cell_data(), 0)]), encoding="utf-8")
    res = _check_page(browser, one, tmp_path, name="synthetic-one.png")
    assert [f["kind"] for f in res["figures"]] == synth.ALL_FIGURES
    assert browser.eval("document.querySelectorAll('table.layers tbody tr').length") == 4
    assert browser.eval("document.querySelectorAll('table.events tbody tr').length") == 2

    cells = [
        synth.cell_data(
            cell_id=f"W0{k // 3}-D0{k % 2}-C{k}",
            wafer=f"W0{k // 3}",
            fade=(5e-4 if k == 4 else 5e-5 + 1e-6 * k),
            with_eis=k % 2 == 0,
            with_meta=k != 5,
            n_cycles=15,
        )
        for k in range(6)
    ]
    many = tmp_path / "many.html"
    many.write_text(
        render_html([cell_context(c, k) for k, c in enumerate(cells)]), encoding="utf-8"
    )
    _check_page(browser, many, tmp_path, name="synthetic-many.png")
    assert browser.eval("document.querySelectorAll('#overview-table tr.cell-row').length") == 6
    assert browser.eval("document.querySelectorAll('section.cell').length") == 6
    assert browser.eval("document.querySelectorAll('#overview-table td.outlier').length") >= 1
    assert browser.eval("document.querySelectorAll('p.missing').length") >= 3
    # sorting: click "fade" twice -> descending within each wafer group
    col = browser.eval(
        "Array.from(document.querySelectorAll('#overview-table thead th')).findIndex(th => th.textContent.startsWith('fade'))"
    )
    browser.eval(f"document.querySelectorAll('#overview-table thead th')[{col}].click()")
    asc = browser.eval(
        f"Array.from(document.querySelectorAll('#overview-table tbody')).map(tb => Array.from(tb.querySelectorAll('tr.cell-row')).map(r => parseFloat(r.cells[{col}].dataset.v)))"
    )
    browser.eval(f"document.querySelectorAll('#overview-table thead th')[{col}].click()")
    desc = browser.eval(
        f"Array.from(document.querySelectorAll('#overview-table tbody')).map(tb => Array.from(tb.querySelectorAll('tr.cell-row')).map(r => parseFloat(r.cells[{col}].dataset.v)))"
    )
    for a, d in zip(asc, desc, strict=True):
        assert a == sorted(a) and d == sorted(d, reverse=True)
    assert sorted(len(a) for a in asc) == [1, 2, 3]  # W00, W01 and the cell without metadata
    assert browser.console_errors() == []


def _real_cells(shared_data: Path, tmp: Path) -> list[Path]:
    """Real vendor files in cell files: an EIS spectrum (impedance.py's exampleData.csv, read
    here with numpy) and cycling files through the importers that exist in this build."""
    from cyclerflow.importers import import_files
    from cyclerflow.store import write_cell

    d = np.loadtxt(shared_data / "eis" / "exampleData.csv", delimiter=",")
    cells = [
        write_cell(
            tmp / "exampleData.h5",
            None,
            spectra=[
                {
                    "frequency_hertz": d[:, 0],
                    "real_impedance_ohm": d[:, 1],
                    "imaginary_impedance_ohm": d[:, 2],
                    "temperature_kelvin": 298.15,
                }
            ],
        )
    ]
    for src in (
        ["arbin/arbin_example.csv"],
        ["cellpy/maccor_002.txt"],
        ["eis/exampleDataGamry.DTA"],
    ):
        out = tmp / (Path(src[0]).stem + ".h5")
        import_files([shared_data / s for s in src], out)
        cells.append(out)
    return cells


@pytest.mark.slow
def test_real_files_report(browser, shared_data, tmp_path):
    cells = _real_cells(shared_data, tmp_path)
    out = build_report(cells, tmp_path / "real.html", workers=1)
    res = _check_page(browser, out, tmp_path, name="real-files.png")
    kinds = [f["kind"] for f in res["figures"]]
    assert kinds.count("nyquist") == 2  # exampleData + Gamry
    assert kinds.count("timeline") == 3  # the three files with cycling rows
    assert browser.eval("document.querySelectorAll('#overview-table tr.cell-row').length") == len(
        cells
    )
    assert browser.eval("document.body.innerText").count("No cell metadata in this file") == len(
        cells
    )


def test_pdf(tmp_path):
    if find_chromium() is None:
        pytest.skip("chromium is not installed (make browser)")
    cell = synth.write_cell_file(tmp_path / "c.h5", n_cycles=4, with_eis=False)
    html = build_report([cell], tmp_path / "r.html", pdf=True)
    pdf = html.with_suffix(".pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    assert data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 2 or b"/Count" in data
    shutil.rmtree(tmp_path / "c.h5", ignore_errors=True)
