"""Prefect's test harness, started once per session for the flow tests.

PREFECT_HOME goes to a temporary folder, analytics are off, PREFECT_API_URL is unset
(not empty) and the ephemeral server gets a long start-up timeout (first start on a
busy 2-core machine can take 20-40 s). The harness server is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    home = tempfile.mkdtemp(prefix="cyclerflow-prefect-home-")
    saved = {
        k: os.environ.get(k)
        for k in (
            "PREFECT_HOME",
            "PREFECT_API_URL",
            "PREFECT_SERVER_ANALYTICS_ENABLED",
            "DO_NOT_TRACK",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
            "PREFECT_LOGGING_LEVEL",
        )
    }
    os.environ["PREFECT_HOME"] = home
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    import cyclerflow.flows  # noqa: F401  (sets the embedded defaults before Prefect loads)

    try:
        with prefect_test_harness(server_startup_timeout=None):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(home, ignore_errors=True)


# -- cells for the flow tests ------------------------------------------------------------

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

K_B_EV = 8.617333262e-5


def cell_metadata(cell_id: str, wafer: str, die: str, area_cm2: float = 0.0035) -> dict:
    return {
        "cell_id": cell_id,
        "wafer": wafer,
        "die": die,
        "active_area_cm2": area_cm2,
        "nominal_capacity_uah": 15.0,
        "layers": [
            {"role": "cathode", "material": "LiCoO2", "thickness_um": 1.0, "density_g_cm3": 4.8},
            {"role": "electrolyte", "material": "LiPON", "thickness_um": 1.0},
            {"role": "anode", "material": "Li", "thickness_um": 3.0},
        ],
    }


def cell_data(
    n_cycles: int = 4,
    *,
    capacity_ah: float = 15e-6,
    fade: float = 1e-3,
    sigma_25c: float = 2.4e-6,
    area_cm2: float = 0.0035,
    temps_c=(0, 25, 50),
):
    """Cycling columns and spectra of a LiPON cell with known answers (Ea = 0.55 eV, sigma*T law)."""
    from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum

    cyc = galvanostatic_cycles(
        n_cycles=n_cycles,
        capacity_ah=capacity_ah,
        current_a=capacity_ah / 2,
        fade_per_cycle=fade,
        points_per_half=30,
    )
    f = np.logspace(6, -1, 50)
    spectra = []
    for temp_c in temps_c:
        t_k = temp_c + 273.15
        factor = (298.15 / t_k) * np.exp(-0.55 / K_B_EV * (1 / t_k - 1 / 298.15))
        r_b = 1e-4 / (sigma_25c * factor * area_cm2)
        z = rc_spectrum(
            f,
            r_lead_ohm=5.0,
            r_bulk_ohm=r_b,
            q_bulk=5e-10,
            q_electrode=5e-6 * area_cm2 / 0.25,
        )
        spectra.append(
            {
                "frequency_hertz": f,
                "real_impedance_ohm": z.real,
                "imaginary_impedance_ohm": z.imag,
                "temperature_kelvin": t_k,
            }
        )
    return cyc, spectra


def make_cell(path: Path, cell_id: str, wafer: str = "W01", die: str = "D01", **kw) -> Path:
    from cyclerflow.schema import parse_metadata
    from cyclerflow.store import write_cell

    cyc, spectra = cell_data(**kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_cell(
        path,
        parse_metadata(cell_metadata(cell_id, wafer, die, kw.get("area_cm2", 0.0035))),
        cycling=cyc,
        spectra=spectra,
        force=True,
    )


_LIVE_WRITER = r"""
import sys, json
sys.path[:0] = [sys.argv[2]]
from flows_support import cell_data, cell_metadata
from cyclerflow.schema import parse_metadata
from cyclerflow.store import create_cell
cyc, spectra = cell_data(n_cycles=3)
w = create_cell(sys.argv[1], parse_metadata(cell_metadata("W09-D01-LIVE", "W09", "D01")))
w.append_cycling({k: v for k, v in cyc.items()})
for s in spectra:
    s = dict(s)
    w.append_spectrum(s.pop("frequency_hertz"), s.pop("real_impedance_ohm"), s.pop("imaginary_impedance_ohm"), **s)
w.flush()
print("ready", flush=True)
sys.stdin.readline()
w.close()
"""


class LiveWriter:
    """A cell file held open (SWMR, flushed) by another process until :meth:`close`."""

    def __init__(self, path: Path):
        self.path = path
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LIVE_WRITER, str(path), str(Path(__file__).parent)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"live writer did not start: {line!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def live_writer():
    made: list[LiveWriter] = []

    def start(path: Path) -> LiveWriter:
        w = LiveWriter(path)
        made.append(w)
        return w

    yield start
    for w in made:
        w.close()
