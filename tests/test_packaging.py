"""The built wheel holds core, drivers and flows, and imports them from the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_and_imports_all_three(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (whl,) = wheels.glob("cyclerflow-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for must in (
        "cyclerflow/__init__.py",
        "cyclerflow/store/writer.py",
        "cyclerflow/cli.py",
        "cyclerflow/drivers/__init__.py",
        "cyclerflow/drivers/sim/__init__.py",
        "cyclerflow/flows/__init__.py",
        "cyclerflow/py.typed",
    ):
        assert must in names, must
    assert not any(n.startswith(("drivers/", "flows/", "src/", "tests/")) for n in names)
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    eps = zipfile.ZipFile(whl).read(ep).decode()
    assert (
        "[cyclerflow.commands]" in eps
        and "[cyclerflow.drivers]" in eps
        and "cyclerflow = cyclerflow.cli:main" in eps
    )
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(whl),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import cyclerflow, cyclerflow.drivers, cyclerflow.flows, cyclerflow.store;"
        "print(cyclerflow.__file__); print(cyclerflow.drivers.__file__); print(cyclerflow.flows.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    files = out.stdout.split()
    assert len(files) == 3 and all(f.startswith(str(target)) for f in files), files


def test_editable_install_imports_all_three():
    import cyclerflow.drivers
    import cyclerflow.flows

    assert Path(cyclerflow.drivers.__file__).parent == ROOT / "drivers"
    assert Path(cyclerflow.flows.__file__).parent == ROOT / "flows"
