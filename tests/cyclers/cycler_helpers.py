"""Constants and helpers of the cycler tests (a module name of its own: other test
folders import their own ``conftest``)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from cyclerflow.acquire.cycler import CyclerRunner, create_cycler_cell
from cyclerflow.acquire.instrument import load_driver
from cyclerflow.acquire.link import ReconnectPolicy
from cyclerflow.acquire.recipe import Recipe, loads_recipe
from cyclerflow.schema import load_metadata

ROOT = Path(__file__).resolve().parents[2]
CELL = ROOT / "fixtures" / "recipes" / "cell-lipon.yaml"
BIN = Path(sys.executable).parent / "cyclerflow"

#: 2C cycling of the 15 uAh default cell: 5 cycles take ~5 h simulated (~18 s at 1000x)
RECIPE = """
name: neware-e2e
limits: {{voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}}
record: {{every: 10 s}}
steps:
  - rest: {{duration: 1 min}}
  - loop:
      repeat: {cycles}
      steps:
        - cc_charge: {{current: 2C, until: {{voltage: 4.2 V}}}}
        - rest: {{duration: 2 min}}
        - cc_discharge: {{current: 2C, until: {{voltage: 3.0 V}}}}
        - rest: {{duration: 2 min}}
"""


def write_station(tmp: Path, resource: str, n: int, recipe_text: str, **extra) -> Path:
    (tmp / "recipe.yaml").write_text(recipe_text)
    (tmp / "cell.yaml").write_text(CELL.read_text())
    lines = [f"{k}: {v}" for k, v in extra.items()]
    lines.append("channels:")
    for c in range(1, n + 1):
        lines.append(
            f'  - {{name: ch{c}, driver: neware-bts, resource: "{resource}", cell: cell.yaml, '
            f"recipe: recipe.yaml, out: ch{c}.h5, options: {{unit: 1, channel: {c}}}}}"
        )
    path = tmp / "station.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- message coverage of the byte-level protocol tests ----------------------------------
#
# A cycler driver declares ``MESSAGES`` (name -> (request builder, reply parser), names of
# module functions) and ``FIELD_UNITS`` (numeric field -> unit). While a protocol test
# module runs, every call of those functions is recorded for that module only: a message
# is covered when its builder and its parser both ran; every numeric field seen on the
# way (in the request/reply bytes, XML elements, JSON objects, dataclass arguments and
# results, numeric arguments of builders) must have a declared unit.


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _numeric_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "infinity")


def _xml_fields(root: ET.Element) -> set[str]:
    out = set()
    for el in root.iter():
        out |= {k for k, v in el.attrib.items() if _numeric_text(v)}
        if len(el) == 0 and el.text and _numeric_text(el.text.strip()):
            out.add(el.tag)
    return out


def _json_fields(obj) -> set[str]:
    if isinstance(obj, dict):
        out = {k for k, v in obj.items() if _is_number(v)}
        for v in obj.values():
            out |= _json_fields(v)
        return out
    if isinstance(obj, list):
        return set().union(*map(_json_fields, obj)) if obj else set()
    return set()


def _bytes_fields(data: bytes) -> set[str]:
    """Numeric fields named in a text message (XML or JSON); binary frames name none."""
    text = data.split(b"\n\n#\r\n")[0].strip().decode("utf-8", errors="replace")
    try:
        return _json_fields(json.loads(text))
    except ValueError:
        pass
    try:
        return _xml_fields(ET.fromstring(text))
    except ET.ParseError:
        return set()


def numeric_fields(value) -> set[str]:
    """Names of the numeric fields ``value`` (an argument or result) carries."""
    if isinstance(value, (bytes, bytearray)):
        return _bytes_fields(bytes(value))
    if isinstance(value, ET.Element):
        return _xml_fields(value)
    if isinstance(value, (dict, list)) and not (
        isinstance(value, list) and value and not isinstance(value[0], (dict, list))
    ):
        return _json_fields(value)
    if isinstance(value, (list, tuple)):
        return set().union(*map(numeric_fields, value)) if value else set()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = set()
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if _is_number(v) or (isinstance(v, np.ndarray) and v.dtype.kind in "iuf"):
                out.add(f.name)
        return out
    return set()


@dataclasses.dataclass(frozen=True)
class Exchanges:
    """What one protocol test module exercised: functions called, numeric fields seen."""

    called: set
    fields: set


def _recorder(fn, name: str, log: Exchanges):
    sig = inspect.signature(fn)

    def recording(*args, **kwargs):
        result = fn(*args, **kwargs)
        log.called.add(name)
        for pname, v in sig.bind(*args, **kwargs).arguments.items():
            log.fields.update({pname} if _is_number(v) else numeric_fields(v))
        log.fields.update(numeric_fields(result))
        return result

    return recording


@pytest.fixture(scope="module", autouse=True)
def _cycler_exchanges(request):
    """Records, for this test module only, the calls of its ``DRIVER``'s message code."""
    log = Exchanges(set(), set())
    driver = getattr(request.module, "DRIVER", None)
    if driver is None:
        yield log
        return
    module = load_driver(driver)
    names = {n for pair in module.MESSAGES.values() for n in pair if n}
    with pytest.MonkeyPatch.context() as mp:
        for n in sorted(names):
            mp.setattr(module, n, _recorder(getattr(module, n), n, log))
        yield log


@pytest.fixture
def message_coverage(request, _cycler_exchanges):
    """``() -> (uncovered messages, numeric fields without units)`` of the module so far."""
    driver = getattr(request.module, "DRIVER", None)
    if driver is None:
        pytest.fail(f"{request.module.__name__} declares no DRIVER")
    module = load_driver(driver)

    def missing() -> tuple[list[str], list[str]]:
        log = _cycler_exchanges
        uncovered = [
            m for m, pair in module.MESSAGES.items() if not all(n in log.called for n in pair if n)
        ]
        units = module.FIELD_UNITS
        no_units = sorted(f for f in log.fields if not str(units.get(f, "")).strip())
        return uncovered, no_units

    return missing


def with_eis_step(recipe_text: str) -> str:
    """:data:`RECIPE` text with an EIS step after its first 2-min rest (no cycler maps it)."""
    return recipe_text.replace(
        "        - rest: {duration: 2 min}\n",
        "        - rest: {duration: 2 min}\n        - eis: {f_start: 1 MHz, f_stop: 1 Hz}\n",
        1,
    )


def cell_recipe(text: str) -> Recipe:
    """``text`` as a recipe for the test cell (C-rates against its nominal capacity)."""
    meta, _ = load_metadata(CELL)
    return loads_recipe(text, source="recipe.yaml", nominal_capacity_ah=meta.nominal_capacity_ah)


def run_channel(ch, out: Path, recipe: Recipe, poll_interval_s: float):
    """Follow the test on the connected channel ``ch`` into a new cell file ``out`` (4
    reconnect attempts, 50 ms apart); closes channel and file. Returns the result."""
    meta, meta_text = load_metadata(CELL)
    w = create_cycler_cell(out, meta, metadata_text=meta_text, protocol=recipe.text)
    runner = CyclerRunner(
        ch,
        w,
        recipe,
        poll_interval_s=poll_interval_s,
        reconnect=ReconnectPolicy(attempts=4, backoff_s=0.05),
    )
    try:
        return runner.run()
    finally:
        ch.close()
        w.close()


class SimProcesses:
    """``cyclerflow simulate KIND --port 0 ...`` as child processes, stopped by :meth:`stop_all`."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, kind: str, *args: str) -> tuple[str, str]:
        """Start one simulator; (its resource string, the line it printed on start)."""
        p = subprocess.Popen(
            [str(BIN), "simulate", kind, "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(p)
        line = p.stdout.readline()
        m = re.search(r"resource=(\S+)", line)
        assert m, line
        return m.group(1), line

    def stop_all(self) -> None:
        """Interrupt every simulator (SIGINT, as Ctrl-C); kill one that does not end in 10 s."""
        for p in self.procs:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
