"""Shared test fixtures. Unit tests never need Prefect, a server or hardware."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclerflow.synthetic import lipon_stack

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
        "layers": lipon_stack(),
        "notes": "free text",
    }
