"""Shared test fixtures. Unit tests never need Prefect, a server or hardware."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real vendor files); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def lipon_metadata() -> dict:
    """A LiCoO2 | LiPON | Li thin-film cell on a 0.0035 cm² pad."""
    return {
        "cell_id": "W07-D12-C3",
        "wafer": "W07",
        "die": "D12",
        "active_area_cm2": 0.0035,
        "nominal_capacity_uah": 0.35,
        "layers": [
            {"role": "current_collector", "material": "Pt", "thickness_um": 0.2},
            {
                "role": "cathode",
                "material": "LiCoO2",
                "thickness_um": 1.0,
                "density_g_cm3": 4.8,
                "deposition": "RF sputtering",
                "anneal_c": 700,
            },
            {
                "role": "electrolyte",
                "material": "LiPON",
                "thickness_um": 1.0,
                "deposition": "RF sputtering in N2",
            },
            {
                "role": "anode",
                "material": "Li",
                "thickness_um": 3.0,
                "deposition": "thermal evaporation",
            },
        ],
        "notes": "free text",
    }
