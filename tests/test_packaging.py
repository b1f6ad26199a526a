"""The built wheel holds core, drivers and flows, and imports them from the wheel; the
core install needs neither the instrument stack nor Prefect/Dask (those are extras)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: what the instrument and flows extras bring; the core install must not need any of them
EXTRA_MODULES = ("pyvisa", "pyvisa_py", "serial", "prefect", "prefect_dask", "dask", "distributed")
CORE_REQUIRES = {
    "numpy", "scipy", "h5py", "xarray", "h5netcdf", "pandas", "pydantic", "pyyaml", "typer",
    "click", "rich", "matplotlib", "jinja2", "impedance", "fastnda", "openpyxl",
    "python-calamine", "access-parser", "pyarrow", "isal",
}  # fmt: skip


def _requires(metadata: str) -> dict[str | None, set[str]]:
    """Requires-Dist of a wheel's METADATA: extra (None = core) -> distribution names."""
    import re

    out: dict[str | None, set[str]] = {}
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        spec = line.split(":", 1)[1].strip()
        name = re.match(r"[A-Za-z0-9_.\-]+", spec).group(0).lower().replace("_", "-")
        m = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", spec)
        out.setdefault(m.group(1) if m else None, set()).add(name)
    return out


def _block_extras_script(body: str) -> str:
    """Python code that makes every extra's module unimportable, then runs ``body``."""
    return (
        "import sys\n"
        f"for m in {EXTRA_MODULES!r}:\n"
        "    sys.modules[m] = None  # import of m now raises ModuleNotFoundError\n" + body
    )


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
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    req = _requires(zipfile.ZipFile(whl).read(meta).decode())
    assert req[None] == CORE_REQUIRES
    assert req["instruments"] == {"pyvisa", "pyvisa-py", "pyserial"}
    assert {"prefect", "prefect-dask", "dask", "distributed", "fastapi", "sqlalchemy"} == req[
        "flows"
    ]
    assert req["all"] == {"cyclerflow"}  # cyclerflow[instruments,flows]
    assert "pytest" in req["dev"]
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


def test_core_install_imports_analyses_exports_and_reports_without_extras(tmp_path):
    """With pyvisa, pyserial, Prefect and Dask unimportable, the core commands still work."""
    body = f"""
import pandas as pd
from cyclerflow.cli import main
from cyclerflow.synthetic import galvanostatic_cycles
tmp = {str(tmp_path)!r}
pd.DataFrame(galvanostatic_cycles(n_cycles=4)).to_csv(tmp + "/c.csv", index=False)
for argv in (["import", tmp + "/c.csv", "-o", tmp + "/c.h5", "-q"],
             ["analyze", tmp + "/c.h5", "--json"],
             ["export", tmp + "/c.h5", "-o", tmp + "/e.csv"],
             ["report", tmp + "/c.h5", "-o", tmp + "/r.html", "-q"]):
    assert main(argv) == 0, argv
assert not any(sys.modules.get(m) for m in {EXTRA_MODULES!r})
"""
    res = subprocess.run(
        [sys.executable, "-c", _block_extras_script(body)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "e.csv").stat().st_size > 0 and (tmp_path / "r.html").stat().st_size > 0
    assert '"n_complete_cycles": 4' in res.stdout


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["flows", "run", "analyze-cell", "CELL"], "flows"),
        (["flows", "run", "analyze-lab", "--root", "DIR"], "flows"),
        (["demo", "--out", "DIR", "-q"], "instruments"),
    ],
)
def test_a_command_needing_a_missing_extra_names_it(tmp_path, argv, extra):
    cell = tmp_path / "c.h5"
    cell.write_bytes(b"")
    argv = [str(cell) if a == "CELL" else str(tmp_path) if a == "DIR" else a for a in argv]
    body = f"from cyclerflow.cli import main\nsys.exit(main({argv!r}))\n"
    res = subprocess.run(
        [sys.executable, "-c", _block_extras_script(body)], capture_output=True, text=True
    )
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert f"pip install 'cyclerflow[{extra}]'" in lines[0]
    assert not list(tmp_path.glob("*/"))  # nothing written before the check


def test_missing_extra_maps_each_extra_module():
    from cyclerflow.cli import missing_extra

    assert missing_extra(ModuleNotFoundError("x", name="pyvisa")) == "instruments"
    assert missing_extra(ModuleNotFoundError("x", name="serial.tools")) == "instruments"
    assert missing_extra(ModuleNotFoundError("x", name="prefect.states")) == "flows"
    assert missing_extra(ModuleNotFoundError("x", name="dask")) == "flows"
    assert missing_extra(ModuleNotFoundError("x", name="numpy")) is None
