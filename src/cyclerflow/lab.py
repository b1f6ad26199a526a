"""A lab of cell files: discovery, cache keys, one summary row per cell, the lab table.

Prefect-free: the flows in ``cyclerflow.flows`` only orchestrate these functions, and
:func:`run_lab` runs the same steps sequentially in one process.

- :func:`discover_cells` finds every ``*.h5`` file under a folder whose root attribute
  ``format`` is ``"cyclerflow.cell"`` (files that do not open are kept, marked failed);
  the wafer / die / cell hierarchy comes from the cell metadata.
- :func:`cache_key` hashes (path, size, mtime, software version, analysis settings);
  :class:`LabCache` remembers the key and summary row of every analysed cell so an
  unchanged cell is not analysed again.
- :func:`summary_row` turns one ``analyze`` JSON object into a flat row (capacity,
  retention at N cycles, mean CE, fade rate, sigma(25 °C), Ea, interfacial resistance
  and its growth, flags); :func:`analyze_one` analyses one cell and never raises.
- :func:`write_lab_summary` writes ``lab_summary.csv`` and ``lab_summary.json``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py

from cyclerflow import __version__
from cyclerflow.errors import InputError
from cyclerflow.store import layout as L
from cyclerflow.store.atomic import atomic_output
from cyclerflow.store.text import joined

log = logging.getLogger(__name__)

SUMMARY_CSV = "lab_summary.csv"
SUMMARY_JSON = "lab_summary.json"
CACHE_FILE = ".cyclerflow-lab-cache.json"
CACHE_VERSION = 1

#: columns of the lab summary table, in order (units in the names; ratios are fractions)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "cell_id",
    "wafer",
    "die",
    "path",
    "status",  # ok | cached | failed
    "live",
    "reason",
    "flags",
    "n_cycles",
    "reference_cycle",
    "discharge_capacity_ah",
    "discharge_capacity_uah_per_cm2",
    "last_discharge_capacity_ah",
    "retention_cycle",
    "capacity_retention_at_n",
    "last_capacity_retention",
    "mean_coulombic_efficiency",
    "fade_rate_per_cycle",
    "conductivity_25c_s_per_cm",
    "activation_energy_ev",
    "activation_energy_stderr_ev",
    "r_interface_temperature_kelvin",
    "r_interface_ohm",
    "r_interface_ohm_cm2",
    "r_interface_first_ohm_cm2",
    "r_interface_growth_fraction",
    "r_interface_growth_ohm_cm2_per_cycle",
    "results_path",
    "analysed_unix_time_second",
)


@dataclass(frozen=True)
class LabSettings:
    """Analysis settings and flag thresholds for a lab run (all part of the cache key).

    Thresholds are fractions (no cell-size assumption): ``low_ce`` flags a mean CE
    below it; ``soft_short_ce`` with ``soft_short_charge_keep`` flags a cycle whose CE
    falls below ``soft_short_ce`` while its charge capacity stays above
    ``soft_short_charge_keep`` x the reference cycle's charge (charge goes in but does
    not come out: a parasitic shunt); ``fast_fade`` flags a fade rate per cycle above
    it; ``interface_growth`` flags an interfacial resistance that grew by more than
    that fraction between the first and the last spectrum at the tracked temperature.
    """

    reference_cycle: int | None = None
    first_half: str | None = None
    circuit: str | None = None
    arrhenius_convention: str = "sigma_T"
    retention_cycle: int = 100
    low_ce: float = 0.99
    soft_short_ce: float = 0.95
    soft_short_charge_keep: float = 0.95
    fast_fade: float = 1e-3
    interface_growth: float = 0.5

    def analysis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`cyclerflow.analysis.analyze_cell`."""
        return {
            "reference_cycle": self.reference_cycle,
            "first_half": self.first_half,
            "circuit": self.circuit,
            "arrhenius_convention": self.arrhenius_convention,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LabSettings:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(
                f"unknown lab settings {sorted(unknown)} (known: {sorted(cls.__dataclass_fields__)})"
            )
        return cls(**data)


@dataclass
class CellEntry:
    """One cell file found under the lab root."""

    path: str
    cell_id: str | None = None
    wafer: str | None = None
    die: str | None = None
    size_bytes: int = 0
    mtime_ns: int = 0
    live: bool = False
    error: str | None = None  # set when the file cannot be opened / read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- discovery ---------------------------------------------------------------------


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def probe_cell(path: str | Path) -> CellEntry | None:
    """Describe one ``.h5`` file: a :class:`CellEntry`, or None when it is another HDF5 file.

    A file that does not open or whose cell metadata do not read (truncated, not HDF5,
    damaged superblock or metadata) gives an entry with ``error`` set to the reason.
    """
    from cyclerflow.store.damage import classified
    from cyclerflow.store.lock import live_writer_pid
    from cyclerflow.store.reader import open_hdf5
    from cyclerflow.store.recovery import needs_recovery

    path = Path(path)
    st = path.stat()
    entry = CellEntry(path=str(path), size_bytes=st.st_size, mtime_ns=st.st_mtime_ns)
    try:
        f = open_hdf5(path)
    except InputError as err:
        entry.error = err.bare_message
        return entry
    try:
        with classified(path, "/" + L.CELL):
            fmt = f.attrs.get("format")
            if (fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt) != L.FORMAT:
                return None
            _entry_metadata(entry, f)
    except InputError as err:
        entry.error = err.bare_message
    finally:
        f.close()
    entry.live = needs_recovery(path) and live_writer_pid(path) is not None
    return entry


def _entry_metadata(entry: CellEntry, f: h5py.File) -> None:
    """cell id, wafer and die from the ``/cell`` metadata JSON (left None when absent)."""
    text = joined(f[L.CELL].attrs).get("metadata_json") if L.CELL in f else None
    if text is None:
        return
    try:
        meta = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"cell metadata JSON does not parse ({err})", where="/cell") from None
    if not isinstance(meta, dict):
        raise InputError("cell metadata JSON is not an object", where="/cell")
    entry.cell_id = meta.get("cell_id")
    entry.wafer = meta.get("wafer")
    entry.die = meta.get("die")


def _known_entry(path: Path, known: dict[str, CellEntry] | None) -> CellEntry | None:
    """The entry the lab database has for ``path`` when the file is unchanged since (same
    size and mtime in ns), else None (the file is probed)."""
    hit = (known or {}).get(str(path.resolve()))
    if hit is None:
        return None
    st = path.stat()
    if (hit.size_bytes, hit.mtime_ns) != (st.st_size, st.st_mtime_ns):
        return None
    return CellEntry(**{**hit.to_dict(), "path": str(path)})


def discover_cells(
    root: str | Path, *, pattern: str = "*.h5", known: dict[str, CellEntry] | None = None
) -> list[CellEntry]:
    """Every cell file under ``root`` (recursive, hidden names skipped), sorted by
    wafer / die / cell id / path. ``known``: entries by absolute path from the lab
    database (``cyclerflow.db.hook.known_entries``); an unchanged file is not opened."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("lab root is not a folder", path=root)
    found = []
    for p in root.rglob(pattern):
        if not p.is_file() or _is_hidden(p, root):
            continue
        entry = _known_entry(p, known) or probe_cell(p)
        if entry is not None:
            found.append(entry)
    found.sort(key=lambda e: (e.wafer or "", e.die or "", e.cell_id or "", e.path))
    return found


# -- cache -------------------------------------------------------------------------


def cache_key(
    entry: CellEntry, settings: LabSettings, *, software_version: str = __version__
) -> str:
    """SHA-256 of (absolute path, size, mtime in ns, software version, analysis settings)."""
    payload = json.dumps(
        [
            str(Path(entry.path).resolve()),
            entry.size_bytes,
            entry.mtime_ns,
            software_version,
            settings.as_dict(),
        ],
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class LabCache:
    """Cache keys and summary rows of analysed cells, kept in ``<out>/.cyclerflow-lab-cache.json``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == CACHE_VERSION:
                    self.entries = dict(data.get("entries", {}))
            except (ValueError, OSError, AttributeError):
                log.warning("ignoring unreadable lab cache %s", self.path)

    @classmethod
    def for_output(cls, out_dir: str | Path) -> LabCache:
        return cls(Path(out_dir) / CACHE_FILE)

    def lookup(self, entry: CellEntry, key: str) -> dict[str, Any] | None:
        """The cached row when the cell is unchanged, its last analysis succeeded and its
        results file is still there; else None. Live cells are never cached."""
        if entry.live or entry.error:
            return None
        hit = self.entries.get(str(Path(entry.path).resolve()))
        if not hit or hit.get("key") != key:
            return None
        row = dict(hit.get("row") or {})
        if row.get("status") not in ("ok", "cached"):
            return None
        rp = row.get("results_path")
        if rp and not Path(rp).exists():
            return None
        row["status"] = "cached"
        return row

    def store(self, entry: CellEntry, key: str, row: dict[str, Any]) -> None:
        if row.get("status") in ("ok", "cached") and not row.get("live"):
            self.entries[str(Path(entry.path).resolve())] = {"key": key, "row": row}
        else:
            self.entries.pop(str(Path(entry.path).resolve()), None)

    def save(self) -> Path:
        with atomic_output(self.path, force=True) as tmp:
            tmp.write_text(
                json.dumps({"version": CACHE_VERSION, "entries": self.entries}, indent=1)
            )
        return self.path


# -- summary rows ------------------------------------------------------------------


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _interface_track(spectra: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Interfacial resistance at one temperature over cycles.

    Uses fitted spectra with an interfacial resistance; groups them by temperature
    (to 1 K) and keeps the group with the most distinct cycles (ties: nearest 25 °C).
    """
    out: dict[str, Any] = {
        "r_interface_temperature_kelvin": None,
        "r_interface_ohm": None,
        "r_interface_ohm_cm2": None,
        "r_interface_first_ohm_cm2": None,
        "r_interface_growth_fraction": None,
        "r_interface_growth_ohm_cm2_per_cycle": None,
    }
    pts = []
    for s in spectra:
        r = _num(s.get("r_interface_ohm"))
        if r is None or s.get("fit_ok") is False:
            continue
        t = _num(s.get("temperature_kelvin"))
        c = s.get("cycle")
        pts.append(
            (
                None if t is None else round(t),
                -1 if c is None else int(c),
                r,
                _num(s.get("r_interface_ohm_cm2")),
                t,
            )
        )
    if not pts:
        return out
    groups: dict[Any, list] = {}
    for p in pts:
        groups.setdefault(p[0], []).append(p)

    def rank(item):
        t, g = item
        return (-len({p[1] for p in g}), abs((t if t is not None else 298) - 298.15))

    _, group = min(groups.items(), key=rank)
    group.sort(key=lambda p: (p[1], p[2]))
    first, last = group[0], group[-1]
    temps = [p[4] for p in group if p[4] is not None]
    out["r_interface_temperature_kelvin"] = sum(temps) / len(temps) if temps else None
    out["r_interface_ohm"] = last[2]
    out["r_interface_ohm_cm2"] = last[3]
    out["r_interface_first_ohm_cm2"] = first[3]
    if len({p[1] for p in group}) >= 2 and first[2] > 0:
        out["r_interface_growth_fraction"] = last[2] / first[2] - 1.0
        if all(p[3] is not None for p in group) and all(p[1] >= 0 for p in group):
            xs = [float(p[1]) for p in group]
            ys = [p[3] for p in group]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            sxx = sum((x - mx) ** 2 for x in xs)
            if sxx > 0:
                out["r_interface_growth_ohm_cm2_per_cycle"] = (
                    sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
                )
    return out


def _cycling_fields(
    cyc: dict[str, Any] | None, settings: LabSettings
) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {
        "n_cycles": 0,
        "reference_cycle": None,
        "discharge_capacity_ah": None,
        "discharge_capacity_uah_per_cm2": None,
        "last_discharge_capacity_ah": None,
        "retention_cycle": settings.retention_cycle,
        "capacity_retention_at_n": None,
        "last_capacity_retention": None,
        "mean_coulombic_efficiency": None,
        "fade_rate_per_cycle": None,
    }
    flags: list[str] = []
    if not cyc:
        flags.append("no_cycling")
        return out, flags
    cycles = [c for c in cyc.get("cycles") or [] if c.get("cycle") is not None]
    cycles.sort(key=lambda c: c["cycle"])
    out["n_cycles"] = len(cycles)
    ref = cyc.get("reference_cycle")
    out["reference_cycle"] = ref
    out["fade_rate_per_cycle"] = _num(cyc.get("fade_rate_per_cycle"))
    by_n = {int(c["cycle"]): c for c in cycles}
    ref_row = by_n.get(int(ref)) if ref is not None else None
    if ref_row is not None:
        out["discharge_capacity_ah"] = _num(ref_row.get("discharge_capacity_ah"))
        out["discharge_capacity_uah_per_cm2"] = _num(ref_row.get("discharge_capacity_uah_per_cm2"))
    complete = [c for c in cycles if _num(c.get("discharge_capacity_ah")) is not None]
    if complete:
        out["last_discharge_capacity_ah"] = _num(complete[-1]["discharge_capacity_ah"])
        out["last_capacity_retention"] = _num(complete[-1].get("capacity_retention"))
    at_n = by_n.get(int(settings.retention_cycle))
    if at_n is not None:
        out["capacity_retention_at_n"] = _num(at_n.get("capacity_retention"))
    ces = [(int(c["cycle"]), _num(c.get("coulombic_efficiency"))) for c in cycles]
    ces = [(n, v) for n, v in ces if v is not None]
    if len(ces) > 1:
        ces = ces[1:]  # the first cycle carries the formation (irreversible) loss
    if ces:
        out["mean_coulombic_efficiency"] = sum(v for _, v in ces) / len(ces)
    flags += _cycling_flags(out, cycles, ref_row, settings)
    return out, flags


def _cycling_flags(
    out: dict[str, Any],
    cycles: list[dict[str, Any]],
    ref_row: dict[str, Any] | None,
    settings: LabSettings,
) -> list[str]:
    """low_ce, fast_fade and soft_short flags of one cell's cycling fields."""
    flags = []
    mce = out["mean_coulombic_efficiency"]
    if mce is not None and mce < settings.low_ce:
        flags.append("low_ce")
    fade = out["fade_rate_per_cycle"]
    if fade is not None and fade > settings.fast_fade:
        flags.append("fast_fade")
    ref_charge = _num(ref_row.get("charge_capacity_ah")) if ref_row is not None else None
    if ref_charge:
        first_n = cycles[0]["cycle"] if cycles else None
        for c in cycles:
            ce = _num(c.get("coulombic_efficiency"))
            q = _num(c.get("charge_capacity_ah"))
            if c["cycle"] == first_n or ce is None or q is None:
                continue
            if ce < settings.soft_short_ce and q >= settings.soft_short_charge_keep * ref_charge:
                flags.append("soft_short")
                break
    return flags


#: flags of cells that need a look first (the lab table lists them before the others)
ATTENTION_FLAGS = frozenset({"soft_short", "self_discharge"})


def transport_flags(block: dict[str, Any] | None) -> list[str]:
    """``soft_short`` when the transport analyses flagged leakage above the cell's bound
    or a charge stall; ``self_discharge`` when an open-circuit rest lost charge much
    faster than the cell's earlier rests (docs/transport.md, section 7)."""
    events = ((block or {}).get("soft_short") or {}).get("events") or []
    faster = [
        e.get("method") == "ocv_rest" and "earlier rests" in str(e.get("evidence")) for e in events
    ]
    flags = []
    if not all(faster):
        flags.append("soft_short")
    if any(faster):
        flags.append("self_discharge")
    return flags


def needs_attention(row: dict[str, Any]) -> bool:
    """The row carries a soft-short or self-discharge flag."""
    return bool(ATTENTION_FLAGS & set(str(row.get("flags") or "").split(";")))


def summary_row(
    result: dict[str, Any],
    entry: CellEntry,
    settings: LabSettings,
    *,
    results_path: str | None = None,
) -> dict[str, Any]:
    """One lab-table row from an ``analyze`` JSON object (fields absent -> None)."""
    row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(
        cell_id=result.get("cell_id") or entry.cell_id or Path(entry.path).stem,
        wafer=entry.wafer,
        die=entry.die,
        path=entry.path,
        status="ok",
        live=entry.live,
        results_path=results_path,
        analysed_unix_time_second=time.time(),
    )
    cyc_fields, flags = _cycling_fields(result.get("cycling"), settings)
    row.update(cyc_fields)
    flags += [f for f in transport_flags(result.get("transport")) if f not in flags]
    eis = result.get("eis") or {}
    spectra = eis.get("spectra") or []
    if not spectra:
        flags.append("no_eis")
    if any(s.get("fit_ok") is False for s in spectra):
        flags.append("eis_fit_failed")
    arr = eis.get("arrhenius") or {}
    row["conductivity_25c_s_per_cm"] = _num(arr.get("conductivity_25c_s_per_cm"))
    row["activation_energy_ev"] = _num(arr.get("activation_energy_ev"))
    row["activation_energy_stderr_ev"] = _num(arr.get("activation_energy_stderr_ev"))
    row.update(_interface_track(spectra))
    growth = row["r_interface_growth_fraction"]
    if growth is not None and growth > settings.interface_growth:
        flags.append("interface_growth")
    if result.get("warnings"):
        flags.append("analysis_warning")
    if entry.live:
        flags.insert(0, "live")
    row["flags"] = ";".join(flags)
    return row


def failed_row(entry: CellEntry, reason: str) -> dict[str, Any]:
    """The row of a cell that could not be analysed (``status="failed"``, ``reason``)."""
    row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(
        cell_id=entry.cell_id or Path(entry.path).stem,
        wafer=entry.wafer,
        die=entry.die,
        path=entry.path,
        status="failed",
        live=entry.live,
        reason=reason,
        flags="failed",
        n_cycles=None,
        analysed_unix_time_second=time.time(),
    )
    return row


_TRANSIENT_ERRNOS = {
    errno.EAGAIN,
    errno.EBUSY,
    errno.EINTR,
    errno.ETIMEDOUT,
    errno.EIO,
    errno.ESTALE,
}


def is_transient_io_error(err: BaseException) -> bool:
    """True for I/O errors worth retrying (locked file, busy/stale network share, timeouts)."""
    if isinstance(err, InputError):
        return False
    if isinstance(err, (TimeoutError, InterruptedError, BlockingIOError)):
        return True
    if isinstance(err, OSError):
        if err.errno in _TRANSIENT_ERRNOS:
            return True
        text = str(err).lower()
        return (
            "temporarily unavailable" in text or "unable to lock" in text or "resource busy" in text
        )
    return False


def analyze_one(
    entry: CellEntry,
    settings: LabSettings,
    *,
    retries: int = 2,
    backoff_s: float = 0.5,
    analyze: Callable[..., dict] | None = None,
) -> dict[str, Any]:
    """Analyse one cell; write ``<cell>.results.nc``; return its summary row. Never raises
    for a bad cell: the row has ``status="failed"`` and the ``reason``. Transient I/O
    errors are retried ``retries`` times with exponential backoff (``backoff_s``, x2)."""
    from cyclerflow.analysis import analyze_cell, results_path

    if entry.error:
        return failed_row(entry, entry.error)
    analyze = analyze or analyze_cell
    attempt = 0
    while True:
        try:
            result = analyze(entry.path, **settings.analysis_kwargs())
            return summary_row(result, entry, settings, results_path=str(results_path(entry.path)))
        except InputError as err:  # bad or damaged file (DamagedFile names what and where)
            reason = err.bare_message
        except OSError as err:  # the disk or share, not the file's bytes
            if is_transient_io_error(err) and attempt < retries:
                time.sleep(backoff_s * 2**attempt)
                attempt += 1
                continue
            reason = f"I/O error: {err}"
        except _PROGRAM_ERRORS as err:  # a fault of the analysis, reported per cell
            log.exception("analysis of %s raised", entry.path)
            reason = f"internal error {type(err).__name__}: {err}"
        log.warning("cell %s failed: %s", entry.path, reason)
        return failed_row(entry, reason)


#: errors of the analysis code itself (not of the file): the cell fails, the lab goes on
_PROGRAM_ERRORS = (
    ArithmeticError,
    LookupError,
    TypeError,
    AttributeError,
    ValueError,
    RuntimeError,
)


def analyze_batch(
    entries: Iterable[CellEntry | dict], settings: LabSettings | dict
) -> list[dict[str, Any]]:
    """:func:`analyze_one` over several cells (the unit of work a flow task runs)."""
    if isinstance(settings, dict):
        settings = LabSettings.from_dict(settings)
    return [
        analyze_one(e if isinstance(e, CellEntry) else CellEntry(**e), settings) for e in entries
    ]


def plan_lab(
    entries: Sequence[CellEntry], settings: LabSettings, cache: LabCache
) -> tuple[list[CellEntry], list[dict[str, Any]], dict[str, str]]:
    """Split cells into (to analyse, cached rows, keys by path)."""
    todo, cached, keys = [], [], {}
    for e in entries:
        key = cache_key(e, settings)
        keys[e.path] = key
        row = cache.lookup(e, key)
        if row is None:
            todo.append(e)
        else:
            row.update(wafer=e.wafer, die=e.die, live=e.live)
            cached.append(row)
    return todo, cached, keys


def order_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted by wafer / die / cell id / path, cells flagged for a soft short or
    fast self-discharge first."""
    return sorted(
        rows,
        key=lambda r: (
            not needs_attention(r),
            r.get("wafer") or "",
            r.get("die") or "",
            r.get("cell_id") or "",
            r.get("path") or "",
        ),
    )


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_lab_summary(
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    settings: LabSettings | None = None,
    stem: str = "lab_summary",
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (one row per cell) and ``<stem>.json`` (rows plus settings,
    software version and counts) into ``out_dir``, each atomically."""
    import csv
    import io

    out_dir = Path(out_dir)
    rows = order_rows(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SUMMARY_COLUMNS)
    for r in rows:
        w.writerow([_csv_value(r.get(c)) for c in SUMMARY_COLUMNS])
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    counts = {s: sum(1 for r in rows if r.get("status") == s) for s in ("ok", "cached", "failed")}
    doc = {
        "software_version": __version__,
        "created_unix_time_second": time.time(),
        "settings": None if settings is None else settings.as_dict(),
        "counts": counts,
        "columns": list(SUMMARY_COLUMNS),
        "cells": [{c: r.get(c) for c in SUMMARY_COLUMNS} for r in rows],
    }
    with atomic_output(csv_path, force=True) as tmp:
        tmp.write_text(buf.getvalue())
    with atomic_output(json_path, force=True) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False))
    return csv_path, json_path


def build_lab_report(
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    root: str | Path | None = None,
    database: str | bool | None = None,
) -> Path | None:
    """The lab report through ``cyclerflow.report.build_report`` when it is installed;
    otherwise None with a logged warning (the summary table is written regardless).
    ``root``/``database``: the lab database the report reads cells from where it is
    current (as in :func:`run_lab`; False = read every file)."""
    try:
        from cyclerflow.report import build_report  # type: ignore[attr-defined]
        from cyclerflow.report.fromdb import lab_index
    except ImportError:
        log.warning("cyclerflow.report.build_report is not available: lab report skipped")
        return None
    cells = [r["path"] for r in order_rows(rows) if r.get("status") in ("ok", "cached")]
    if not cells:
        log.warning("no analysed cells: lab report skipped")
        return None
    out = Path(out_dir) / "lab_report.html"
    result = build_report(cells, out, index=lab_index(root, database))
    return Path(result) if isinstance(result, (str, os.PathLike)) else out


@dataclass
class LabRun:
    """What a lab run did: all rows, and the files written."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    summary_csv: Path | None = None
    summary_json: Path | None = None
    report: Path | None = None

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.get("status") == status)


def run_lab(
    root: str | Path,
    *,
    out: str | Path | None = None,
    settings: LabSettings | None = None,
    report: bool = True,
    database: str | bool | None = None,
) -> LabRun:
    """Analyse a lab folder in this process, without Prefect (same steps as the flow).

    ``database``: the lab database the run is indexed into (``cyclerflow.db``): None =
    the default one when the ``[db]`` extra is installed, a URL or True = required,
    False = off."""
    settings = settings or LabSettings()
    out_dir = Path(out) if out is not None else Path(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    from cyclerflow.db.hook import index_if_installed, known_if_installed

    entries = discover_cells(root, known=known_if_installed(root, database))
    cache = LabCache.for_output(out_dir)
    todo, cached, keys = plan_lab(entries, settings, cache)
    by_path = {e.path: e for e in entries}
    fresh = analyze_batch(todo, settings)
    for r in fresh:
        cache.store(by_path[r["path"]], keys[r["path"]], r)
    rows = order_rows(cached + fresh)
    run = LabRun(rows=rows)
    run.summary_csv, run.summary_json = write_lab_summary(rows, out_dir, settings=settings)
    with contextlib.suppress(OSError):
        cache.save()
    index_if_installed(root, entries, rows, settings, database)
    if report:
        try:
            run.report = build_lab_report(rows, out_dir, root=root, database=database)
        except Exception as err:  # the report never fails the lab table
            log.warning("lab report failed: %s", err)
    return run
