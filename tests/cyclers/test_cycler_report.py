"""The lab report names a cycler cell's channel and the vendor steps it ran."""

from __future__ import annotations

from cyclerflow.report.data import CellData
from cyclerflow.report.html import _methods
from cyclerflow.schema import CellMetadata


def _cell(extra: dict, steps: list[str]) -> CellData:
    meta = CellMetadata.model_validate({"cell_id": "A1", **extra})
    events = [
        {"kind": "step_start", "message": f"pos=1 kind=x cycle=1 step_count={k} step_type={t}"}
        for k, t in enumerate(steps, start=1)
    ]
    events.append({"kind": "note", "message": "recipe complete"})
    return CellData("A1.h5", meta, None, events=events)


def test_methods_name_the_cycler_channel_and_count_vendor_steps():
    cell = _cell(
        {"cycler_driver": "neware-bts", "cycler_channel": "Neware BTS h:502 channel 27-1-2-3"},
        ["rest", "cc", "rest", "dc", "cc", "dc"],
    )
    line = _methods(cell)[0]
    assert "neware-bts, Neware BTS h:502 channel 27-1-2-3" in line
    assert "rest × 2, cc × 2, dc × 2" in line


def test_methods_of_other_cells_say_nothing_of_cyclers():
    assert not any("cycler" in m for m in _methods(_cell({}, ["rest"])))
