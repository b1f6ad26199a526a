"""Copy what is intact in a damaged cell file into a new one, and say what was lost.

:func:`salvage` opens the source read-only (never modifies it), reads every /cycling
column chunk by chunk, every event chunk and every spectrum, and writes a new closed
cell file (with checksums) through a temporary name. Rows in which any column's chunk
is damaged are left out of every column (a gap in test time, not a row with a hole);
each loss is listed (rows a..b, which columns, HDF5's reason) and recorded in the new
file as a ``salvaged`` event.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.store import chunkcrc
from cyclerflow.store import layout as L
from cyclerflow.store.atomic import atomic_output
from cyclerflow.store.damage import (
    HDF5_ERRORS,
    DamagedFile,
    bad_chunks,
    hdf5_detail,
    members,
    read_rows,
    read_whole,
)
from cyclerflow.store.reader import _decode, open_hdf5
from cyclerflow.store.text import set_attrs
from cyclerflow.store.writer import CellWriter, create_cell


@dataclass(frozen=True)
class Loss:
    """What could not be copied: ``what`` (``/cycling``, ``/events``, ``spectrum 3``,
    ``/cell attributes`` ...), the ``columns`` concerned, the ``rows`` [first, last] (None
    for a whole object) and HDF5's ``detail``."""

    what: str
    detail: str
    columns: tuple[str, ...] = ()
    rows: tuple[int, int] | None = None

    def describe(self) -> str:
        rows = f" rows {self.rows[0]}..{self.rows[1]}" if self.rows else ""
        cols = f" of {', '.join(self.columns)}" if self.columns else ""
        return f"{self.what}{rows}{cols} ({self.detail})"


@dataclass(frozen=True)
class Salvage:
    """Outcome of :func:`salvage`: counts kept and every :class:`Loss`."""

    source: str
    output: str
    rows_kept: int
    rows_lost: int
    events_kept: int
    spectra_kept: int
    losses: tuple[Loss, ...]
    #: chunks kept although their CRC-32 entry was unusable (a damaged CRC table):
    #: Fletcher-32 passed and their bytes are not all zero
    unchecked: tuple[Loss, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "output": self.output,
            "rows_kept": self.rows_kept,
            "rows_lost": self.rows_lost,
            "events_kept": self.events_kept,
            "spectra_kept": self.spectra_kept,
            "lost": [l.describe() for l in self.losses],  # noqa: E741
            "kept_unchecked": [u.describe() for u in self.unchecked],
        }


@dataclass(frozen=True)
class _Column:
    name: str
    data: np.ndarray
    attrs: dict[str, Any]


def _attrs(obj: h5py.HLObject, what: str, losses: list[Loss]) -> dict[str, Any]:
    try:
        return {k: v for k, v in obj.attrs.items()}  # noqa: C416 - reads every value
    except HDF5_ERRORS as err:
        losses.append(Loss(f"{what} attributes", hdf5_detail(err)))
        return {}


def _unchecked_but_sound(ds: h5py.Dataset, lo: int, hi: int, detail: str) -> bool:
    """A chunk whose CRC-32 entry is unusable (a damaged table) but which Fletcher-32
    passes and which is not all zero bytes (the one damage Fletcher-32 cannot see)."""
    if not detail.startswith(chunkcrc.NO_ENTRY):
        return False
    try:
        data = ds[lo:hi]
    except HDF5_ERRORS:
        return False
    return bool(np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8).any())


def _read_good(
    ds: h5py.Dataset, n: int, unchecked: list[Loss] | None = None
) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """Rows [0, n) with damaged chunks left at the fill value, and the damaged ranges.
    ``unchecked``: where to list chunks kept on Fletcher-32 alone (a damaged CRC table);
    without it they count as damaged."""
    bad = bad_chunks(ds, 0, n)
    if unchecked is not None:
        sound = [r for r in bad if _unchecked_but_sound(ds, *r)]
        unchecked += [Loss(ds.name, d, rows=(a, b - 1)) for a, b, d in sound]
        bad = [r for r in bad if r not in sound]
    out = np.empty(n, dtype=ds.dtype)
    a = 0
    for lo, hi, _ in [*bad, (n, n, "")]:
        if lo > a:
            ds.read_direct(out, np.s_[a:lo], np.s_[a:lo])
        a = hi
    return out, bad


def _cycling(
    f: h5py.File, losses: list[Loss], unchecked: list[Loss]
) -> tuple[list[_Column], np.ndarray]:
    """Readable /cycling columns and the mask of rows to keep."""
    cyc = f[L.CYCLING]
    dsets: dict[str, h5py.Dataset] = {}
    for name in list(cyc.keys()):
        try:
            dsets[name] = cyc[name]
            if f.swmr_mode:
                dsets[name].refresh()
        except HDF5_ERRORS as err:
            losses.append(Loss("/cycling", hdf5_detail(err), (name,)))
    n = min((d.shape[0] for d in dsets.values()), default=0)
    keep = np.ones(n, dtype=bool)
    columns = []
    for name, d in dsets.items():
        data, bad = _read_good(d, n, unchecked)
        for lo, hi, detail in bad:
            keep[lo:hi] = False
            losses.append(Loss("/cycling", detail, (name,), (lo, hi - 1)))
        columns.append(_Column(name, data, _attrs(d, f"/cycling/{name}", losses)))
    _drop_torn_tail(columns, keep)
    return columns, keep


def _drop_torn_tail(columns: list[_Column], keep: np.ndarray) -> None:
    """Rows after the first unwritten time stamp of a killed writer are not rows."""
    t = next((c.data for c in columns if c.name == "test_time_second"), None)
    if t is not None:
        nan = np.flatnonzero(np.isnan(t) & keep)
        if len(nan):
            keep[nan[0] :] = False


def _events(f: h5py.File, losses: list[Loss], unchecked: list[Loss]) -> np.ndarray:
    if L.EVENTS not in f:
        return np.zeros(0, dtype=L.EVENT_DTYPE)
    d = f[L.EVENTS]
    if f.swmr_mode:
        d.refresh()
    data, bad = _read_good(d, d.shape[0], unchecked)
    keep = np.ones(len(data), dtype=bool)
    for lo, hi, detail in bad:
        keep[lo:hi] = False
        losses.append(Loss("/events", detail, rows=(lo, hi - 1)))
    return data[keep]


def _closed_spectra(f: h5py.File, losses: list[Loss]) -> Iterator[tuple[int, list, dict]]:
    for name in list(f[L.EIS].keys()) if L.EIS in f else []:
        if not name.isdigit():
            continue
        try:
            g = f[L.EIS][name]
            pts = [
                read_rows(g[c], 0, g[c].shape[0], f.filename)
                for c in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm")
            ]
            attrs = {k: _decode(v) for k, v in g.attrs.items()}
        except HDF5_ERRORS as err:
            losses.append(Loss(f"spectrum {int(name)}", hdf5_detail(err)))
            continue
        yield int(name), pts, attrs


def _streamed_spectra(f: h5py.File, losses: list[Loss]) -> Iterator[tuple[int, list, dict]]:
    """Spectra still in the live stream table of an unclosed file."""
    if L.EIS_STREAM not in f:
        return
    st = f[L.EIS_STREAM]
    names = ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm")
    for d in members(st):
        d.refresh() if f.swmr_mode else None
    meta = _read_good(st["spectra"], st["spectra"].shape[0])[0]
    n = min(st[c].shape[0] for c in names)
    for row in meta:
        sid, lo = int(row["spectrum_id"]), int(row["start_row"])
        hi = lo + int(row["n_points"])
        try:
            pts = [read_rows(st[c], lo, hi, f.filename) for c in names] if hi <= n else None
        except HDF5_ERRORS as err:
            losses.append(Loss(f"spectrum {sid}", hdf5_detail(err)))
            continue
        if pts is not None:
            attrs = {k: _decode(row[k]) for k in L.SPECTRUM_ATTR_DEFAULTS}
            yield sid, pts, attrs


def _protocol(f: h5py.File, losses: list[Loss]) -> str | None:
    try:
        return _decode(read_whole(f[L.PROTOCOL], f.filename)) if L.PROTOCOL in f else None
    except HDF5_ERRORS as err:
        losses.append(Loss("/protocol", hdf5_detail(err)))
        return None


def _write(
    w: CellWriter, f: h5py.File, columns: list[_Column], keep: np.ndarray, losses: list[Loss]
) -> int:
    """Rows and spectra into the new file; returns the spectra written."""
    if columns:
        w.append_cycling({c.name: c.data[keep] for c in columns})
    spectra = 0
    seen: set[int] = set()
    for sid, pts, attrs in [*_closed_spectra(f, losses), *_streamed_spectra(f, losses)]:
        if sid in seen:
            continue
        seen.add(sid)
        extra = {k: v for k, v in attrs.items() if k in L.SPECTRUM_ATTR_DEFAULTS}
        w.append_spectrum(*pts, spectrum_id=sid, **extra)
        spectra += 1
    return spectra


def _write_events(w: CellWriter, events: np.ndarray) -> None:
    for ev in events:
        w.add_event(
            _decode(ev["kind"]),
            _decode(ev["message"]),
            step=int(ev["step"]),
            unix_time_second=float(ev["unix_time_second"]),
            test_time_second=float(ev["test_time_second"]),
            flush=False,
        )


def _record_losses(w: CellWriter, losses: list[Loss]) -> None:
    for loss in losses:
        w.add_event("salvaged", "lost " + loss.describe(), flush=False)


def salvage(source: str | Path, output: str | Path, *, force: bool = False) -> Salvage:
    """Copy every intact chunk, event and spectrum of ``source`` into a new cell file
    ``output``; ``source`` is only read. Raises :class:`DamagedFile` when not even the
    superblock, root or /cycling group reads (nothing to salvage)."""
    source, output = Path(source), Path(output)
    if source.resolve() == output.resolve():
        raise InputError("the salvaged copy must be a new file, not the original", path=output)
    f = open_hdf5(source)
    losses: list[Loss] = []
    unchecked: list[Loss] = []
    try:
        try:
            columns, keep = _cycling(f, losses, unchecked)
            cell_attrs = _attrs(f[L.CELL], "/cell", losses) if L.CELL in f else {}
            root_attrs = _attrs(f, "/", losses)
        except HDF5_ERRORS as err:
            raise DamagedFile(
                source, "metadata", "/cycling", f"nothing to salvage: {hdf5_detail(err)}"
            ) from None
        units = {c.name: str(_decode(c.attrs.get("units", "1"))) for c in columns}
        extra = {
            c.name: {k: _decode(v) for k, v in c.attrs.items() if k != "units"} for c in columns
        }
        with atomic_output(output, force=force) as tmp:
            w = create_cell(
                tmp,
                None,
                protocol=_protocol(f, losses),
                overwrite=True,
                columns=[c.name for c in columns] or ["test_time_second"],
                units=units,
                swmr=False,
                column_attrs=extra,
                chunk_rows=L.chunk_rows_for(int(keep.sum())),
            )
            try:
                set_attrs(w._f[L.CELL], cell_attrs)
                set_attrs(w._f, {"source_" + k: root_attrs[k] for k in ("created",
                          "software_version") if k in root_attrs})  # fmt: skip
                spectra = _write(w, f, columns, keep, losses)
                events = _events(f, losses, unchecked)
                _write_events(w, events)
                _record_losses(w, losses)
                for u in unchecked:
                    w.add_event(
                        "salvaged", "kept on Fletcher-32 alone " + u.describe(), flush=False
                    )
            finally:
                w.close()
    finally:
        f.close()
    kept = int(keep.sum())
    return Salvage(
        str(source),
        str(output),
        kept,
        len(keep) - kept,
        len(events),
        spectra,
        tuple(losses),
        tuple(unchecked),
    )
