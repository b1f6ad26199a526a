"""Shared test fixtures. Unit tests never need Prefect, a server or hardware."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from cyclerflow.synthetic import lipon_stack

# The suite's property tests replay the same examples on every run (a CI run must not fail
# on a new random draw; timings never decide a test). `pytest --hypothesis-profile=explore`
# draws new examples for hunting.
settings.register_profile("repeatable", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("CYCLERFLOW_HYPOTHESIS_PROFILE", "repeatable"))

ROOT = Path(__file__).resolve().parents[1]
#: real vendor files that may be redistributed (MIT/BSD/Apache), inside the repository
VENDOR_DATA = ROOT / "fixtures" / "vendor"
#: ../shared/data: the source they were copied from; also holds GPL files that stay outside
#: (CYCLERFLOW_SHARED_DATA=/nonexistent simulates a fresh clone without it)
SHARED_DATA = Path(os.environ.get("CYCLERFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _shipped() -> set[str]:
    """Paths listed in fixtures/vendor/manifest.csv."""
    import csv

    with open(VENDOR_DATA / "manifest.csv", newline="", encoding="utf-8") as fh:
        return {row["path"] for row in csv.DictReader(fh)}


class VendorData:
    """``vendor / "arbin/x.csv"`` -> the file in fixtures/vendor.

    A path not in the repository (the GPL BioLogic pairs) falls back to ../shared/data
    when that is present, else the test skips naming the file: only files that may not
    be redistributed can be missing, never the permissively licensed ones.
    """

    def __init__(self, root: Path = VENDOR_DATA) -> None:
        self.root = root

    def __truediv__(self, rel: str | os.PathLike) -> Path | VendorData:
        here = self.root / rel
        if here.is_dir():
            return VendorData(here)  # so that ``vendor / "biologic" / "x.mpt"`` resolves too
        if here.exists():
            return here
        rel_path = here.relative_to(VENDOR_DATA)
        outside = SHARED_DATA / rel_path
        if outside.exists():
            return outside
        if rel_path.as_posix() in _shipped():
            return here  # a file we ship is missing: let the test fail loudly
        pytest.skip(f"{rel_path} is not redistributable (GPL) and ../shared/data is absent")

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)


#: settings that send a later test's servers elsewhere if one test leaves them behind
_ISOLATED_ENV = (
    "PREFECT_API_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_HOME",
    "CYCLERFLOW_DB_URL",
)


@pytest.fixture(autouse=True)
def _no_leaked_server_settings(request):
    """Fail the test that leaves a server setting changed in os.environ (and put it back):
    a leaked PREFECT_API_DATABASE_CONNECTION_URL once made the README tour's Prefect
    server wait two minutes for a database host that does not exist."""
    before = {k: os.environ.get(k) for k in _ISOLATED_ENV}
    yield
    after = {k: os.environ.get(k) for k in _ISOLATED_ENV}
    leaked = sorted(k for k in _ISOLATED_ENV if before[k] != after[k])
    for k in leaked:
        if before[k] is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = before[k]
    if leaked:
        pytest.fail(f"{request.node.nodeid} left {', '.join(leaked)} changed in os.environ")


@pytest.fixture(scope="session")
def vendor_data() -> VendorData:
    """Real vendor files in fixtures/vendor (see fixtures/vendor/manifest.csv)."""
    return VendorData()


@pytest.fixture(scope="session")
def shared_data(vendor_data: VendorData) -> VendorData:
    """Old name of :func:`vendor_data` (the files used to live in ../shared/data)."""
    return vendor_data


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
