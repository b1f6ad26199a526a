"""Rich console views shared by commands and the demo (``inspect``'s cell summary)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cyclerflow.numfmt import fmt_duration, fmt_unix_time


def print_summary(info: dict, console: Console) -> None:
    """Print a cell file's summary (``cyclerflow.store.summary`` dict) and its layers."""
    meta = info.get("metadata") or {}
    title = f"{meta.get('cell_id', '(no metadata)')}  —  {info['path']}"
    t = Table(title=title, show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for key in ("wafer", "die"):
        if key in meta:
            t.add_row(key, str(meta[key]))
    if "active_area_cm2" in meta:
        t.add_row("active area", f"{meta['active_area_cm2']:g} cm²")
    if "nominal_capacity_uah" in meta:
        t.add_row("nominal capacity", f"{meta['nominal_capacity_uah']:g} µAh")
    t.add_row("state", info["state"])
    t.add_row("rows", f"{info['rows']:,}")
    t.add_row("cycles", "-" if info["cycles"] is None else str(info["cycles"]))
    span = info["test_time_span_second"]
    if span[0] is not None:
        t.add_row(
            "test time", f"{span[0]:g} s -> {span[1]:g} s ({fmt_duration(span[1] - span[0])})"
        )
    t.add_row("last sample", fmt_unix_time(info["last_unix_time_second"]))
    t.add_row("spectra", str(info["spectra"]))
    t.add_row("events", str(info["events"]))
    t.add_row("columns", escape(", ".join(f"{c} [{u}]" for c, u in info["columns"].items())))
    t.add_row(
        "written by",
        f"cyclerflow {info['software_version']} (format {info['format_version']}), {info['created']}",
    )
    console.print(t)
    layers = meta.get("layers") or []
    if layers:
        lt = Table(title="layer stack (bottom to top)")
        for c in ("role", "material", "thickness", "deposition"):
            lt.add_column(c)
        for lay in layers:
            th = f"{lay['thickness_um']:g} µm" if lay.get("thickness_um") else "-"
            lt.add_row(lay["role"], lay["material"], th, lay.get("deposition") or "-")
        console.print(lt)
