"""`cyclerflow watch CELL.h5`: a live terminal view of a running acquisition (rich).

Each frame re-opens the file as a SWMR reader (so it never blocks the writer) and
shows: state, current step and what it is doing, the last readings, the charge passed
so far in the current cycle, the last cycle's capacities and the latest events.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from cyclerflow.report.curves import REST_FRACTION
from cyclerflow.store import LIVE_COLUMNS, open_cell_file, read_events, read_metadata
from cyclerflow.store.damage import members, read_rows
from cyclerflow.store.reader import summary

TAIL_ROWS = 8


def _tail(path: str | Path) -> dict[str, Any]:
    """Last rows and the current cycle's rows (time, V, I, T, cycle, step) of a live or closed file."""
    with open_cell_file(path) as f:
        cyc = f["cycling"]
        if f.swmr_mode:
            for d in members(cyc):
                d.refresh()
        n = min((d.shape[0] for d in members(cyc)), default=0)
        if n and "test_time_second" in cyc:  # rows written in only some columns yet read as NaN
            tail = read_rows(cyc["test_time_second"], max(0, n - 4096), n, path)
            bad = np.flatnonzero(np.isnan(tail))
            if len(bad):
                n = max(0, n - len(tail)) + int(bad[0])
        start = 0
        if n and "cycle_count" in cyc:
            cc = read_rows(cyc["cycle_count"], 0, n, path)
            last = cc[-1]
            diff = np.flatnonzero(cc != last)
            start = int(diff[-1]) + 1 if len(diff) else 0
        lo = min(start, max(0, n - TAIL_ROWS))
        cols = {c: read_rows(cyc[c], lo, n, path) for c in LIVE_COLUMNS if c in cyc}
    return {"rows": n, "first": lo, "cycle_start": start, "cols": cols}


def _fmt_si(v: float, unit: str, digits: int = 4) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    if v == 0:
        return f"0 {unit}"
    a = abs(v)
    for scale, prefix in ((1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if a >= scale or scale == 1e-12:
            return f"{v / scale:.{digits}g} {prefix}{unit}"
    return f"{v:g} {unit}"


def charge_so_far(t: np.ndarray, i: np.ndarray) -> tuple[float, float]:
    """(charge Ah, discharge Ah) passed in these rows: trapezoid of I>0 and I<0 parts."""
    ok = np.isfinite(t) & np.isfinite(i)
    t, i = t[ok], i[ok]
    if len(t) < 2:
        return 0.0, 0.0
    dt = np.diff(t)
    im = 0.5 * (i[1:] + i[:-1])
    return float(np.sum(np.clip(im, 0, None) * dt) / 3600), float(
        np.sum(np.clip(-im, 0, None) * dt) / 3600
    )


def render_frame(path: str | Path) -> Group:
    """One frame of the live view (a rich renderable)."""
    path = Path(path)
    info = summary(path)
    meta = read_metadata(path)
    tail = _tail(path)
    events = read_events(path)
    cols = tail["cols"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row(
        "cell", escape(meta.cell_id if meta else "(no metadata)") + f"  [dim]{escape(str(path))}[/]"
    )
    state = info["state"]
    head.add_row(
        "state", f"[green]{state}[/]" if state == "live" else f"[yellow]{escape(state)}[/]"
    )
    head.add_row("rows", f"{info['rows']:,}   spectra {info['spectra']}   events {info['events']}")
    parts: list[Any] = [head]
    if info["rows"]:
        i_all = cols.get("current_ampere", np.array([]))
        k = info["rows"] - 1 - tail["first"]
        cur_i = float(i_all[k]) if len(i_all) else np.nan
        cyc_i = i_all[tail["cycle_start"] - tail["first"] :]
        imax = float(np.nanmax(np.abs(cyc_i))) if len(cyc_i) else 0.0
        doing = (
            "rest"
            if not np.isfinite(cur_i) or abs(cur_i) <= REST_FRACTION * imax
            else ("charging" if cur_i > 0 else "discharging")
        )
        step = int(cols["step_count"][k]) if "step_count" in cols else -1
        cycle = int(cols["cycle_count"][k]) if "cycle_count" in cols else -1
        last_unix = float(cols["unix_time_second"][k]) if "unix_time_second" in cols else np.nan
        age = time.time() - last_unix if np.isfinite(last_unix) else np.nan
        head.add_row(
            "now",
            f"cycle {cycle if cycle >= 0 else '–'}, step {step if step >= 0 else '–'}: [bold]{doing}[/]"
            + (f"   last sample {age:.0f} s ago" if np.isfinite(age) and state == "live" else ""),
        )
        if "cycle_count" in cols:
            sl = slice(tail["cycle_start"] - tail["first"], None)
            qc, qd = charge_so_far(cols["test_time_second"][sl], cols["current_ampere"][sl])
            head.add_row(
                "this cycle",
                f"charge {_fmt_si(qc, 'Ah')}, discharge {_fmt_si(qd, 'Ah')}"
                + (
                    f" ({qd * 1e6 / meta.active_area_cm2:.4g} µAh/cm²)"
                    if meta and meta.active_area_cm2 and qd
                    else ""
                ),
            )
        t = Table(title="last readings", expand=False)
        for c in ("test time / s", "voltage", "current", "T / °C", "cycle", "step"):
            t.add_column(c, justify="right")
        n_show = min(TAIL_ROWS, len(cols["test_time_second"]))
        for r in range(len(cols["test_time_second"]) - n_show, len(cols["test_time_second"])):
            temp = cols.get("temperature_kelvin")
            t.add_row(
                f"{cols['test_time_second'][r]:.1f}",
                _fmt_si(float(cols["voltage_volt"][r]), "V", 5),
                _fmt_si(float(cols["current_ampere"][r]), "A"),
                "–" if temp is None or not np.isfinite(temp[r]) else f"{temp[r] - 273.15:.1f}",
                str(cols["cycle_count"][r]) if "cycle_count" in cols else "–",
                str(cols["step_count"][r]) if "step_count" in cols else "–",
            )
        parts.append(t)
    else:
        parts.append("[dim]no rows yet[/]")
    ev = Table(title="events (latest)", expand=False)
    for c in ("time (UTC)", "kind", "step", "message"):
        ev.add_column(c)
    for e in events[-8:]:
        u = e.get("unix_time_second")
        when = (
            datetime.fromtimestamp(u, UTC).strftime("%H:%M:%S")
            if u is not None and np.isfinite(u)
            else "–"
        )
        style = (
            "bold red"
            if e["kind"] == "safety_stop"
            else ("yellow" if e["kind"] in ("disconnect", "limit", "resume") else "")
        )
        kind = f"[{style}]{escape(e['kind'])}[/]" if style else escape(e["kind"])
        ev.add_row(
            when,
            kind,
            "" if e.get("step", -1) < 0 else str(e["step"]),
            escape(e.get("message", "")),
        )
    parts.append(ev if events else "[dim]no events[/]")
    return Group(
        Panel(
            Group(*parts), title=f"cyclerflow watch — {datetime.now(UTC).strftime('%H:%M:%S UTC')}"
        )
    )


def watch(
    path: str | Path,
    *,
    interval: float = 1.0,
    once: bool = False,
    console: Console | None = None,
    max_frames: int | None = None,
) -> int:
    """Show the live view until Ctrl-C or until the file is closed by its writer. Returns frames shown."""
    from rich.live import Live

    console = console or Console()
    if once:
        console.print(render_frame(path))
        return 1
    frames = 0
    with Live(render_frame(path), console=console, refresh_per_second=4, transient=False) as live:
        try:
            while True:
                frames += 1
                if max_frames is not None and frames >= max_frames:
                    break
                if summary(path)["state"] != "live":
                    live.update(render_frame(path))
                    break
                time.sleep(interval)
                live.update(render_frame(path))
        except KeyboardInterrupt:
            pass
    return frames
