"""A recipe -> a Neware BTS 8.x step file (XML), or one clear error before anything starts.

The step-file layout follows what public open-source tools write and BTS 8.0 accepts
(docs/cyclers.md lists them): ``<root><config type="Step File" version="17" ...>`` with
``Head_Info``, ``Whole_Prt`` (``Protect`` window, ``Record`` interval), ``Step_Info``
(``Step1`` ... ``StepN`` with ``Step_ID`` and ``Step_Type``) and ``SMBUS``.

Units inside the file: current mA, voltage 0.1 mV (V x 10,000), time ms, capacity mA s
(mAh x 3,600). Step types used: 1 CC charge, 2 CC discharge, 3 CCCV charge,
19 CCCV discharge, 4 rest, 5 cycle (loop back to ``Start_Step``, ``Cycle_Count``
times), 6 end.

What a step file cannot express (an ``eis`` step, GITT, temperature set points, a rest
that ends on a voltage, a loop that ends on retention) is an :class:`InputError`
naming the recipe step, e.g. ``steps[1].loop.steps[5].eis``.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cyclerflow.acquire.recipe import Cccv, ConstantCurrent, CvHold, Loop, Recipe, Rest
from cyclerflow.errors import InputError

#: Neware step type codes (Step_Type) written by this module
CC_CHARGE, CC_DISCHARGE, CCCV_CHARGE, REST, CYCLE, END, CCCV_DISCHARGE = 1, 2, 3, 4, 5, 6, 19

STEP_TYPE_NAMES = {
    CC_CHARGE: "cc",
    CC_DISCHARGE: "dc",
    CCCV_CHARGE: "cccv",
    CCCV_DISCHARGE: "cccv_dc",
    REST: "rest",
    CYCLE: "cycle",
    END: "end",
}


def ma(amp: float) -> str:
    """A current (A) as the step file's mA value."""
    return f"{abs(amp) * 1e3:.12g}"


def tenth_mv(volt: float) -> str:
    """A voltage (V) as the step file's 0.1 mV value."""
    return f"{volt * 1e4:.12g}"


def ms(seconds: float) -> str:
    """A duration (s) as the step file's ms value."""
    return f"{seconds * 1e3:.12g}"


def mas(ah: float) -> str:
    """A charge (Ah) as the step file's mA s value."""
    return f"{ah * 3.6e6:.12g}"


@dataclass(frozen=True)
class NewareSchedule:
    """A translated recipe: the step file text and, per Neware step id, the recipe leaf
    index (1-based, as in the recipe's ``leaves()``) and the recipe step kind."""

    xml: str
    leaf_of_step: dict[int, int]
    kind_of_step: dict[int, str]
    record_interval_s: float


class _Builder:
    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.steps: list[ET.Element] = []
        self.leaf_of_step: dict[int, int] = {}
        self.kind_of_step: dict[int, str] = {}
        self.prev_kind = ""

    def fail(self, where: str, message: str) -> InputError:
        return InputError(f"{where}: {message}", path=self.recipe.source)

    def new_step(self, step_type: int) -> tuple[int, ET.Element]:
        sid = len(self.steps) + 1
        el = ET.Element(f"Step{sid}", Step_ID=str(sid), Step_Type=str(step_type))
        self.steps.append(el)
        return sid, el

    def walk(self, steps: tuple[Any, ...], where: str) -> None:
        for k, s in enumerate(steps):
            here = f"{where}[{k}]"
            if isinstance(s, Loop):
                self.loop(s, f"{here}.loop")
            else:
                self.leaf(s, f"{here}.{s.kind}")

    def loop(self, s: Loop, here: str) -> None:
        if s.repeat is None or not s.until.empty() or not s.counts_cycles:
            raise self.fail(
                here, "a Neware step file repeats a loop a fixed number of times only (repeat: N)"
            )
        first = len(self.steps) + 1
        self.walk(s.steps, f"{here}.steps")
        if len(self.steps) < first:
            raise self.fail(here, "an empty loop cannot be written to a step file")
        _, el = self.new_step(CYCLE)
        other = ET.SubElement(ET.SubElement(el, "Limit"), "Other")
        ET.SubElement(other, "Start_Step", Value=str(first))
        ET.SubElement(other, "Cycle_Count", Value=str(s.repeat))

    def leaf(self, s: Any, here: str) -> None:
        if isinstance(s, Rest):
            sid, main = self.rest(s, here)
        elif isinstance(s, ConstantCurrent):
            sid, main = self.cc(s, here)
        elif isinstance(s, (CvHold, Cccv)):
            sid, main = self.cccv(s, here)
        else:
            raise self.fail(here, f"a Neware BTS step file has no {s.kind!r} step")
        self.leaf_of_step[sid] = s.index
        self.kind_of_step[sid] = s.kind
        self.prev_kind = s.kind
        if s.until.time is not None and not isinstance(s, Rest):
            ET.SubElement(main, "Time", Value=ms(s.until.time))
        if getattr(s.until, "capacity", None) is not None:
            ET.SubElement(main, "Cap", Value=mas(s.until.capacity))

    def rest(self, s: Rest, here: str) -> tuple[int, ET.Element]:
        if s.until.voltage is not None or s.until.capacity is not None:
            raise self.fail(here, "a Neware rest step ends on time only (use duration)")
        if s.duration is None and s.until.time is None:
            raise self.fail(here, "a Neware rest step needs a duration")
        sid, el = self.new_step(REST)
        main = ET.SubElement(ET.SubElement(el, "Limit"), "Main")
        times = [t for t in (s.duration, s.until.time) if t is not None]
        ET.SubElement(main, "Time", Value=ms(min(times)))  # the shorter one ends the rest
        return sid, main

    def cc(self, s: ConstantCurrent, here: str) -> tuple[int, ET.Element]:
        charge = s.kind == "cc_charge"
        sid, el = self.new_step(CC_CHARGE if charge else CC_DISCHARGE)
        main = ET.SubElement(ET.SubElement(el, "Limit"), "Main")
        ET.SubElement(main, "Curr", Value=ma(s.current))
        if s.until.voltage is not None:
            ET.SubElement(main, "Stop_Volt", Value=tenth_mv(s.until.voltage))
        return sid, main

    def cccv(self, s: CvHold | Cccv, here: str) -> tuple[int, ET.Element]:
        if isinstance(s, Cccv):
            current, charge = s.current, s.direction == "charge"
        else:
            current = s.current_limit or self.recipe.limits.current_max
            charge = self.prev_kind not in ("cc_discharge",)
        sid, el = self.new_step(CCCV_CHARGE if charge else CCCV_DISCHARGE)
        main = ET.SubElement(ET.SubElement(el, "Limit"), "Main")
        ET.SubElement(main, "Curr", Value=ma(current))
        ET.SubElement(main, "Volt", Value=tenth_mv(s.voltage))
        if s.until.current is not None:
            ET.SubElement(main, "Stop_Curr", Value=ma(s.until.current))
        return sid, main


def _record_interval(recipe: Recipe) -> float:
    """One record interval for the whole file: the shortest any step asks for (s)."""
    every = [recipe.record.every]
    every += [s.record.every for s in recipe.leaves() if getattr(s, "record", None) is not None]
    return min(every)


def _whole_protect(recipe: Recipe, config: ET.Element, record_s: float) -> None:
    lim = recipe.limits
    whole = ET.SubElement(config, "Whole_Prt")
    main = ET.SubElement(ET.SubElement(whole, "Protect"), "Main")
    volt = ET.SubElement(main, "Volt")
    ET.SubElement(volt, "Upper", Value=tenth_mv(lim.voltage_max))
    ET.SubElement(volt, "Lower", Value=tenth_mv(lim.voltage_min))
    ET.SubElement(ET.SubElement(main, "Curr"), "Upper", Value=ma(lim.current_max))
    rec = ET.SubElement(ET.SubElement(whole, "Record"), "Main")
    ET.SubElement(rec, "Time", Value=ms(record_s))
    dv = recipe.record.dv
    if dv is not None:
        ET.SubElement(rec, "Volt", Value=tenth_mv(dv))


def check_recipe(recipe: Recipe) -> None:
    """Raise :class:`InputError` naming the first step a Neware step file cannot hold."""
    to_step_file(recipe)


def to_step_file(recipe: Recipe, *, remark: str = "") -> NewareSchedule:
    """Translate ``recipe`` (currents already in A, C-rates resolved) to a step file."""
    b = _Builder(recipe)
    b.walk(recipe.steps, "steps")
    b.new_step(END)
    root = ET.Element("root")
    config = ET.SubElement(
        root,
        "config",
        type="Step File",
        version="17",
        client_version="cyclerflow",
        date=datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
        Guid=str(uuid.uuid4()),
    )
    head = ET.SubElement(config, "Head_Info")
    ET.SubElement(head, "Operate", Value="66")
    ET.SubElement(head, "Scale", Value="1")
    ET.SubElement(head, "Start_Step", Value="1", Hide_Ctrl_Step="0")
    ET.SubElement(head, "Creator", Value="cyclerflow")
    ET.SubElement(head, "Remark", Value=remark or recipe.name)
    ET.SubElement(head, "RateType", Value="103")
    if recipe.nominal_capacity_ah:
        ET.SubElement(head, "MultCap", Value=mas(recipe.nominal_capacity_ah))
    record_s = _record_interval(recipe)
    _whole_protect(recipe, config, record_s)
    info = ET.SubElement(config, "Step_Info", Num=str(len(b.steps)))
    info.extend(b.steps)
    ET.SubElement(ET.SubElement(config, "SMBUS"), "SMBUS_Info", Num="0", AdjacentInterval="0")
    ET.indent(root)
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
    return NewareSchedule(text + "\n", b.leaf_of_step, b.kind_of_step, record_s)
