"""Constants and helpers of the cycler tests (a module name of its own: other test
folders import their own ``conftest``)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from cyclerflow.acquire.cycler import CyclerRunner, create_cycler_cell
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
