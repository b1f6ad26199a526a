"""One check used by many importer tests: a file is refused the way the issue asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclerflow.cli import main
from cyclerflow.errors import InputError
from cyclerflow.importers import read_any


def assert_refused(path: Path, match: str, tmp_path: Path) -> None:
    """``read_any`` raises an InputError matching ``match`` (the line and what is wrong),
    and ``cyclerflow import`` exits 2 without writing its output file."""
    with pytest.raises(InputError, match=match):
        read_any(path)
    out = tmp_path / "refused.h5"
    assert main(["import", str(path), "-o", str(out), "-q"]) == 2
    assert not out.exists()
    assert not list(tmp_path.glob("*.part"))
