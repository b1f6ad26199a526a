"""Read cell files as xarray objects, also while a writer is appending (SWMR).

- :func:`read_cycling` -> ``xr.Dataset`` of the /cycling columns over ``sample``.
- :func:`read_spectra` -> list of ``xr.Dataset``, one per spectrum, over
  ``frequency_hertz`` with the spectrum's attributes.
- :func:`read_events`, :func:`read_metadata`, :func:`read_protocol`, :func:`summary`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import xarray as xr

from cyclerflow.errors import InputError
from cyclerflow.schema import CellMetadata
from cyclerflow.store import layout as L
from cyclerflow.store.damage import (
    DamagedFile,
    classified,
    members,
    named_members,
    read_rows,
    read_whole,
)
from cyclerflow.store.guard import check_legacy_text, legacy_text
from cyclerflow.store.recovery import needs_recovery
from cyclerflow.store.text import joined


def open_hdf5(path: str | Path) -> h5py.File:
    """Open an HDF5 file read-only (as a SWMR reader when marked open for writing).

    Raises :class:`InputError` for a missing file or one that is not HDF5, and
    :class:`DamagedFile` for one whose superblock or root metadata do not decode.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("cell file not found", path=path)
    try:
        live = needs_recovery(path)
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror or err})", path=path) from None
    with classified(path, "superblock", "superblock"):
        f = h5py.File(path, "r", libver="latest", swmr=True) if live else h5py.File(path, "r")
    try:
        with classified(path, "/ attributes"):
            legacy = legacy_text(f)
        if legacy:  # an older file: its text has no checksum and could hang a reader
            check_legacy_text(path)
    except BaseException:
        f.close()
        raise
    return f


@contextlib.contextmanager
def open_cell_file(path: str | Path) -> Iterator[h5py.File]:
    """Open a cell file read-only; as a SWMR reader if a writer has it open.

    Any h5py error inside the block (a damaged object, chunk or attribute) comes out as
    :class:`DamagedFile`.
    """
    f = open_hdf5(path)
    try:
        with classified(path, "/"):
            fmt = _decode(f.attrs.get("format"))
            if fmt != L.FORMAT:
                raise InputError(
                    f"not a cyclerflow cell file (format attribute {fmt!r})", path=path
                )
            yield f
    finally:
        f.close()


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def _consistent_rows(cyc: h5py.Group) -> int:
    """Rows present in every column (a live file may show one column ahead)."""
    if cyc.file.swmr_mode:
        for d in members(cyc):
            d.refresh()
    n = min((d.shape[0] for d in members(cyc)), default=0)
    if n and "test_time_second" in cyc:
        tail = read_rows(cyc["test_time_second"], max(0, n - 4096), n, cyc.file.filename)
        bad = np.flatnonzero(np.isnan(tail))
        if len(bad):
            n = max(0, n - len(tail)) + int(bad[0])
    return n


def read_cycling(path: str | Path, columns: Sequence[str] | None = None) -> xr.Dataset:
    """All (or the named) /cycling columns as an ``xr.Dataset`` over ``sample``."""
    with open_cell_file(path) as f, classified(path, "/" + L.CYCLING):
        cyc = f[L.CYCLING]
        n = _consistent_rows(cyc)
        names = list(cyc.keys()) if columns is None else list(columns)
        data_vars = {}
        for c in names:
            if c not in cyc:
                raise InputError(
                    f"column {c!r} not in /cycling (has {sorted(cyc.keys())})", path=path
                )
            d = cyc[c]
            arr = read_rows(d, 0, n, path)
            attrs = {k: _decode(v) for k, v in d.attrs.items()}  # units, sampling, ...
            attrs.setdefault("units", "1")
            data_vars[c] = xr.Variable(("sample",), arr, attrs=attrs)
        return xr.Dataset(
            data_vars,
            attrs={"cell_id": _decode(f[L.CELL].attrs.get("cell_id", "")), "source": str(path)},
        )


def _spectrum_dataset(fr, zr, zi, attrs: dict[str, Any]) -> xr.Dataset:
    ds = xr.Dataset(
        {
            "real_impedance_ohm": ("frequency_hertz", np.asarray(zr), {"units": "ohm"}),
            "imaginary_impedance_ohm": ("frequency_hertz", np.asarray(zi), {"units": "ohm"}),
        },
        coords={"frequency_hertz": ("frequency_hertz", np.asarray(fr), {"units": "Hz"})},
        attrs=attrs,
    )
    return ds


_SPECTRUM_COLUMNS = ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm")


def _group_points(g: h5py.Group, path: str | Path) -> list[np.ndarray]:
    """The three point arrays of a closed spectrum group (damage named by dataset)."""
    out = []
    for c in _SPECTRUM_COLUMNS:
        d = g[c]
        out.append(read_rows(d, 0, d.shape[0], path))
    return out


def read_spectra(path: str | Path) -> list[xr.Dataset]:
    """Every spectrum (closed groups and, in a live file, streamed ones), by id."""
    out: dict[int, xr.Dataset] = {}
    with open_cell_file(path) as f, classified(path, "/" + L.EIS):
        if L.EIS in f:
            for name, g in named_members(f[L.EIS]):
                if not name.isdigit():
                    continue
                attrs = {k: _decode(v) for k, v in joined(g.attrs).items()}
                attrs["spectrum_id"] = int(name)
                out[int(name)] = _spectrum_dataset(*_group_points(g, path), attrs)
        if L.EIS_STREAM in f:
            st = f[L.EIS_STREAM]
            for d in members(st):
                if f.swmr_mode:
                    d.refresh()
            meta = read_rows(st["spectra"], 0, st["spectra"].shape[0], path)
            n_pts = min(
                st[c].shape[0]
                for c in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm")
            )
            for row in meta:
                sid = int(row["spectrum_id"])
                lo, hi = int(row["start_row"]), int(row["start_row"]) + int(row["n_points"])
                if sid in out or hi > n_pts:
                    continue
                attrs = {
                    k: _decode(row[k])
                    for k in (
                        "unix_time_second",
                        "cycle_count",
                        "temperature_kelvin",
                        "amplitude",
                        "dc_level",
                        "technique",
                    )
                }
                attrs["spectrum_id"] = sid
                out[sid] = _spectrum_dataset(
                    *(read_rows(st[c], lo, hi, path) for c in _SPECTRUM_COLUMNS), attrs
                )
    return [out[k] for k in sorted(out)]


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Events as a list of dicts (unix_time_second, test_time_second, kind, step, message)."""
    with open_cell_file(path) as f, classified(path, "/" + L.EVENTS):
        if L.EVENTS not in f:
            return []
        d = f[L.EVENTS]
        if f.swmr_mode:
            d.refresh()
        rows = read_rows(d, 0, d.shape[0], path)
    return [{k: _decode(r[k]) for k in L.EVENT_DTYPE.names} for r in rows]


def read_metadata(path: str | Path) -> CellMetadata | None:
    """The cell metadata stored in /cell, or None if the file has none."""
    with open_cell_file(path) as f, classified(path, "/" + L.CELL):
        text = joined(f[L.CELL].attrs).get("metadata_json")
    if text is None:
        return None
    try:
        return CellMetadata.model_validate(json.loads(_decode(text)))
    except ValueError as err:  # JSONDecodeError, pydantic's ValidationError
        # the writer stored validated metadata: what no longer parses was damaged
        detail = str(err).splitlines()[0] + "; damaged, or written by another version"
        raise DamagedFile(path, "metadata", "/cell metadata_json", detail) from None


def read_cell_attrs(path: str | Path) -> dict[str, Any]:
    with open_cell_file(path) as f, classified(path, "/" + L.CELL):
        return {k: _decode(v) for k, v in joined(f[L.CELL].attrs).items()}


def read_protocol(path: str | Path) -> str | None:
    with open_cell_file(path) as f, classified(path, "/" + L.PROTOCOL):
        if L.PROTOCOL not in f:
            return None
        text = _decode(read_whole(f[L.PROTOCOL], path))
    return text or None


def summary(path: str | Path) -> dict[str, Any]:
    """What is in a cell file: metadata, rows, cycles, spectra, time span, state."""
    from cyclerflow.store.lock import live_writer_pid

    path = Path(path)
    with open_cell_file(path) as f, classified(path, "/" + L.CYCLING):
        root = {k: _decode(v) for k, v in f.attrs.items()}
        cyc = f[L.CYCLING]
        n = _consistent_rows(cyc)
        columns = {c: _decode(cyc[c].attrs.get("units", "1")) for c in cyc}
        span = (None, None)
        if n and "test_time_second" in cyc:
            t = cyc["test_time_second"]
            span = (float(read_rows(t, 0, 1, path)[0]), float(read_rows(t, n - 1, n, path)[0]))
        unix = None
        if n and "unix_time_second" in cyc:
            u = float(read_rows(cyc["unix_time_second"], n - 1, n, path)[0])
            unix = None if np.isnan(u) else u
        cycles = None
        if n and "cycle_count" in cyc:
            cc = read_rows(cyc["cycle_count"], 0, n, path)
            valid = cc[cc >= 0]
            cycles = int(len(np.unique(valid))) if len(valid) else None
        events = f[L.EVENTS].shape[0] if L.EVENTS in f else 0
    spectra = read_spectra(path)
    if needs_recovery(path):
        state = (
            "live"
            if live_writer_pid(path) is not None
            else "unclosed (writer gone: run `cyclerflow recover`)"
        )
    else:
        state = "closed"
    meta = read_metadata(path)
    return {
        "path": str(path),
        "format_version": root.get("format_version"),
        "software_version": root.get("software_version"),
        "created": root.get("created"),
        "metadata": None if meta is None else meta.model_dump(exclude_none=True),
        "rows": n,
        "columns": columns,
        "cycles": cycles,
        "test_time_span_second": span,
        "last_unix_time_second": unix,
        "spectra": len(spectra),
        "events": events,
        "state": state,
    }
