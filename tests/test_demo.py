"""`cyclerflow demo` end to end: synthetic files and simulated instruments -> HDF5 ->
analysis -> HTML report, checked against the answers the demo built in."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from cyclerflow.flows.demo import DEMO_CELLS, RACK_CELLS, run_demo
from cyclerflow.store import read_cycling, read_events, read_metadata, read_spectra, summary


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, console=Console(quiet=True))


def test_demo_recovers_the_synthetic_answers(demo):
    _, made = demo
    by_id = {r["cell_id"]: r for r in made["results"].values()}
    for cell_id, _area, cap_uah, fade, sigma in DEMO_CELLS:
        res = by_id[cell_id]
        cyc = res["cycling"]
        assert cyc["fade_rate_per_cycle"] == pytest.approx(fade, rel=0.02)
        assert cyc["cycles"][0]["discharge_capacity_ah"] * 1e6 == pytest.approx(cap_uah, rel=0.01)
        arr = res["eis"]["arrhenius"]
        assert arr["activation_energy_ev"] == pytest.approx(0.55, abs=0.01)
        assert arr["conductivity_25c_s_per_cm"] == pytest.approx(sigma, rel=0.05)


def test_demo_acquires_from_the_simulators(demo):
    out, made = demo
    acquired = sorted((out / "acquire").glob("*.h5"))
    rack = [cell_id for cell_id, _ in RACK_CELLS]
    assert [p.stem for p in acquired] == ["W02-D01-C1", "W02-D01-C2", *sorted(rack)]
    for p in acquired:
        info = summary(p)
        assert info["state"] == "closed"
        assert read_events(p)[-1]["message"] == "recipe complete"
    cycling = made["results"][out / "acquire" / "W02-D01-C1.h5"]["cycling"]
    assert cycling["n_complete_cycles"] == 6
    assert 0.99 < cycling["ce_mean"] < 1.01  # real-time clock at 2000x: run-to-run jitter
    # the simulated LiPON: sigma(25 °C) = 2.5 µS/cm, Ea = 0.52 eV (drivers/sim/cell_model.py)
    spectra = read_spectra(out / "acquire" / "W02-D01-C2.h5")
    assert [round(s.attrs["temperature_kelvin"] - 273.15) for s in spectra] == [-20, -5, 10, 25, 40]
    eis = made["results"][out / "acquire" / "W02-D01-C2.h5"]["eis"]
    assert eis["arrhenius"]["activation_energy_ev"] == pytest.approx(0.52, abs=0.01)
    assert eis["arrhenius"]["conductivity_25c_s_per_cm"] == pytest.approx(2.5e-6, rel=0.05)
    # arc above 1 MHz: R_bulk with the bulk capacitance fixed from the colder spectra
    assert [s["method"] for s in eis["spectra"]][-1] == "fixed_capacitance"


def test_demo_runs_a_neware_rack(demo):
    """Four channels of a simulated Neware BTS ran the cycling recipe as a step file;
    every record the cycler stored is in its cell file once, with the vendor's step
    types, and the channel address is in the cell's metadata."""
    out, made = demo
    assert len(list((out / "acquire" / "neware-steps").glob("*.xml"))) == len(RACK_CELLS)
    q1s = []
    for c, (cell_id, cap_uah) in enumerate(RACK_CELLS, start=1):
        path = out / "acquire" / f"{cell_id}.h5"
        ds = read_cycling(path)
        seq = ds["vendor_record_id"].values
        assert len(seq) > 100 and np.array_equal(seq, np.arange(1, len(seq) + 1))
        assert set(np.unique(ds["vendor_step_type"].values)) == {0, 1, 2}  # rest, cc, dc
        meta = read_metadata(path)
        assert meta.extra["cycler_driver"] == "neware-bts"
        assert meta.extra["cycler_channel"].endswith(f"channel 27-1-1-{c}")
        assert read_events(path)[-1]["message"] == "recipe complete"
        cycling = made["results"][path]["cycling"]
        assert cycling["n_complete_cycles"] == 6
        # each simulated channel runs on the model of its own cell (2C to 4.15/3.6 V:
        # most of the nominal capacity)
        q1 = cycling["cycles"][0]["discharge_capacity_ah"] * 1e6
        assert 0.5 * cap_uah < q1 < cap_uah
        q1s.append(q1)
    assert q1s == sorted(q1s, reverse=True)  # as their nominal capacities


def test_demo_writes_a_report_naming_every_cell(demo):
    out, made = demo
    html = made["report"].read_text()
    assert made["report"] == out / "report.html"
    for p in made["cells"]:
        assert p.stem in html
    assert "<script src=" not in html  # self-contained
    # a cycler cell's channel address, from its metadata
    assert "Neware BTS 127.0.0.1:" in html and "channel 27-1-1-4" in html
    assert "vendor steps run: rest × 13, cc × 6, dc × 6" in html  # 1 + 6 x 2 rests


def test_core_never_imports_drivers_or_flows():
    """The demo is the flows' (it drives simulators); the core package stays free of both."""
    import re
    from pathlib import Path

    import cyclerflow

    src = Path(cyclerflow.__file__).parent
    bad = [
        f"{p.relative_to(src)}:{n}"
        for p in sorted(src.rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.match(r"\s*(from|import)\s+cyclerflow\.(drivers|flows)\b", line)
    ]
    assert bad == []


def test_demo_command_is_registered():
    from cyclerflow.cli import build_app

    app = build_app().app
    assert "demo" in {c.name for c in app.registered_commands}
