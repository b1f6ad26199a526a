"""Constants and helpers of the cycler tests (a module name of its own: other test
folders import their own ``conftest``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CELL = ROOT / "fixtures" / "recipes" / "cell-lipon.yaml"

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
