"""Streaming writer for the HDF5 cell file (one writer at a time, SWMR for live files).

Typical live use (acquisition)::

    with create_cell("W07.h5", metadata, metadata_text=text, protocol=recipe_text) as w:
        w.append_cycling({"test_time_second": t, "voltage_volt": v, "current_ampere": i})
        w.append_spectrum(f, z_re, z_im, temperature_kelvin=298.15)
        w.add_event("safety_stop", "voltage 4.31 V > 4.30 V", step=3)

All objects are created first, then SWMR mode is switched on; rows are buffered in
memory and written + flushed when a chunk is full or ``flush_interval`` seconds
(default 1 s) have passed, so a killed writer loses at most that interval. Spectra
go to a flat stream table while live and are moved into ``/eis/<id>`` groups when
the file is closed (or recovered).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cyclerflow import __version__
from cyclerflow.errors import InputError
from cyclerflow.schema import CYCLING_COLUMNS, CellMetadata, metadata_to_attrs, units_of
from cyclerflow.store import chunkcrc
from cyclerflow.store import layout as L
from cyclerflow.store.lock import live_writer_pid, lock_path, take_lock
from cyclerflow.store.recovery import needs_recovery, recover
from cyclerflow.store.stream import finalize_stream, write_spectrum_group
from cyclerflow.store.text import make_group, set_attrs

log = logging.getLogger(__name__)

#: re-exported for callers that import them from here (acquire.station)
__all__ = [
    "LIVE_COLUMNS",
    "CellWriter",
    "create_cell",
    "finalize_stream",
    "live_writer_pid",
    "lock_path",
    "resume_cell",
]

LIVE_COLUMNS = (
    "test_time_second",
    "unix_time_second",
    "voltage_volt",
    "current_ampere",
    "cycle_count",
    "step_count",
    "step_index",
    "temperature_kelvin",
)


def _dtype_of(column: str) -> np.dtype:
    return np.dtype(CYCLING_COLUMNS[column][1]) if column in CYCLING_COLUMNS else np.dtype("f8")


def _fill_of(dtype: np.dtype) -> Any:
    return np.nan if dtype.kind == "f" else -1


def _make_column(
    group: h5py.Group,
    name: str,
    dtype: np.dtype,
    units: str,
    chunk_rows: int,
    checksums: bool = True,
) -> h5py.Dataset:
    ds = group.create_dataset(
        name,
        shape=(0,),
        maxshape=(None,),
        dtype=dtype,
        chunks=(chunk_rows,),
        fillvalue=_fill_of(dtype),
        fletcher32=checksums,
    )
    set_attrs(ds, {"units": units})
    return ds


def _append(
    ds: h5py.Dataset,
    values: np.ndarray,
    n0: int | None = None,
    crc: chunkcrc.RunningCrc | None = None,
) -> int:
    """Append ``values`` to the 1-D dataset ``ds`` (which holds ``n0`` rows, read from the
    file when not given); returns the new row count. ``crc``: the dataset's chunk CRC
    table, updated for the chunks written.

    Uses h5py's low-level calls: the high-level ``resize`` + slice assignment costs ~3x
    the CPU, and every HDF5 call holds the interpreter lock (other channels wait).
    """
    n0 = ds.shape[0] if n0 is None else n0
    arr = np.ascontiguousarray(values, dtype=ds.dtype)
    n = len(arr)
    if n == 0:
        return n0
    ds.id.set_extent((n0 + n,))
    file_space = ds.id.get_space()
    file_space.select_hyperslab((n0,), (n,))
    ds.id.write(h5py.h5s.create_simple((n,)), file_space, arr)
    if crc is not None:
        crc.extend(arr)
    return n0 + n


@dataclass(frozen=True)
class FileProgress:
    """What a writer has put on disk so far (given to :attr:`CellWriter.on_flush`)."""

    path: Path
    rows: int
    #: Unix time of the last sample on disk (s); None before the first one
    last_unix_time_second: float | None
    closed: bool


class CellWriter:
    """Append-only writer of one cell file. Use :func:`create_cell` / :func:`resume_cell`."""

    def __init__(
        self, file: h5py.File, path: Path, *, swmr: bool, flush_interval: float, lock: Path | None
    ):
        self.path = path
        self._f = file
        self._swmr = swmr
        self.flush_interval = float(flush_interval)
        self._lock = lock
        cyc = file[L.CYCLING]
        self.columns: tuple[str, ...] = tuple(cyc.keys())
        self._ds = {c: cyc[c] for c in self.columns}
        self._buf: dict[str, list[np.ndarray]] = {c: [] for c in self.columns}
        self._buffered = 0
        # rows on disk per column, kept here: asking HDF5 for a SWMR dataset's shape costs
        # a metadata lookup each time
        self._rows_on_disk = {c: int(d.shape[0]) for c, d in self._ds.items()}
        self.rows_flushed = min(self._rows_on_disk.values(), default=0)
        self._n_events = int(file[L.EVENTS].shape[0]) if L.EVENTS in file else 0
        # chunk CRC-32 tables (store/chunkcrc.py); None in files of older versions
        self._crc = {c: chunkcrc.running(d, self._rows_on_disk[c]) for c, d in self._ds.items()}
        self._crc["/" + L.EVENTS] = (
            chunkcrc.running(file[L.EVENTS], self._n_events) if L.EVENTS in file else None
        )
        # something may have been written to the file since its last flush
        self._dirty = True
        self._last_flush = time.monotonic()
        self._events: list[tuple] = []
        self._next_spectrum = _next_spectrum_id(file)
        self.closed = False
        self.flush_count = 0
        self._last_time: float | None = None
        #: called after each flush that wrote something and once at close, with a
        #: :class:`FileProgress` (an acquisition uses it to keep the lab database's files
        #: table current); its errors are logged, never raised into the writer
        self.on_flush: Callable[[FileProgress], None] | None = None

    # -- cycling rows -----------------------------------------------------------
    def append_cycling(self, rows: Mapping[str, Any]) -> None:
        """Append rows given as column -> array (equal lengths). Missing columns get NaN/-1."""
        unknown = set(rows) - set(self.columns)
        if unknown:
            raise InputError(
                f"columns {sorted(unknown)} are not in this file's /cycling", path=self.path
            )
        arrays = {c: np.atleast_1d(np.asarray(v)) for c, v in rows.items()}
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            raise InputError(f"columns have different lengths {sorted(lengths)}", path=self.path)
        n = lengths.pop()
        if n == 0:
            return
        for c in self.columns:
            dt = self._ds[c].dtype
            a = arrays.get(c)
            self._buf[c].append(
                np.full(n, _fill_of(dt), dtype=dt) if a is None else a.astype(dt, copy=False)
            )
        self._buffered += n
        if "unix_time_second" in arrays:
            self._last_time = float(arrays["unix_time_second"][-1])
        if self._buffered >= L.CHUNK_ROWS:
            self._write_buffer()
        self.maybe_flush()

    def _write_buffer(self) -> None:
        if not self._buffered:
            return
        for c in self.columns:
            parts = self._buf[c]
            self._rows_on_disk[c] = _append(
                self._ds[c],
                parts[0] if len(parts) == 1 else np.concatenate(parts),
                self._rows_on_disk[c],
                self._crc[c],
            )
            self._buf[c] = []
        self._buffered = 0
        self._dirty = True

    # -- spectra ----------------------------------------------------------------
    def append_spectrum(
        self,
        frequency_hertz: Any,
        real_impedance_ohm: Any,
        imaginary_impedance_ohm: Any,
        **attrs: Any,
    ) -> int:
        """Store one spectrum (signed imaginary part); returns its spectrum id (1-based)."""
        f = np.asarray(frequency_hertz, dtype="f8").ravel()
        zr = np.asarray(real_impedance_ohm, dtype="f8").ravel()
        zi = np.asarray(imaginary_impedance_ohm, dtype="f8").ravel()
        if not (len(f) == len(zr) == len(zi)):
            raise InputError("spectrum columns have different lengths", path=self.path)
        unknown = set(attrs) - set(L.SPECTRUM_ATTR_DEFAULTS) - {"spectrum_id"}
        extra = {k: attrs.pop(k) for k in unknown}
        sid = int(attrs.pop("spectrum_id", self._next_spectrum))
        self._next_spectrum = max(self._next_spectrum, sid + 1)
        full = {**L.SPECTRUM_ATTR_DEFAULTS, **{k: v for k, v in attrs.items() if v is not None}}
        if self._swmr:
            st = self._f[L.EIS_STREAM]
            start = st["frequency_hertz"].shape[0]
            for name, arr in (
                ("frequency_hertz", f),
                ("real_impedance_ohm", zr),
                ("imaginary_impedance_ohm", zi),
            ):
                _append(st[name], arr, crc=self._stream_crc(st[name]))
            row = np.zeros(1, dtype=L.SPECTRUM_META_DTYPE)
            row["spectrum_id"], row["start_row"], row["n_points"] = sid, start, len(f)
            for k in (
                "unix_time_second",
                "cycle_count",
                "temperature_kelvin",
                "amplitude",
                "dc_level",
            ):
                row[k] = full[k]
            row["technique"] = str(full["technique"]).encode()[:8]
            _append(st["spectra"], row, crc=self._stream_crc(st["spectra"]))
            self._dirty = True
            self.flush()
        else:
            write_spectrum_group(self._f, sid, f, zr, zi, {**full, **extra})
            self._dirty = True
        return sid

    def _stream_crc(self, ds: h5py.Dataset) -> chunkcrc.RunningCrc | None:
        """The running CRC of a stream-table dataset (made at its first append)."""
        if ds.name not in self._crc:
            self._crc[ds.name] = chunkcrc.running(ds, int(ds.shape[0]))
        return self._crc[ds.name]

    # -- events -----------------------------------------------------------------
    def add_event(
        self,
        kind: str,
        message: str = "",
        *,
        step: int = -1,
        unix_time_second: float | None = None,
        test_time_second: float = np.nan,
        flush: bool = True,
    ) -> None:
        """Record an event (step_start, step_end, limit, safety_stop, resume, disconnect, note)."""
        t = time.time() if unix_time_second is None else unix_time_second
        self._events.append(
            (t, test_time_second, kind.encode()[:16], step, message.encode("utf-8")[:240])
        )
        if flush:
            self.flush()

    # -- flushing ---------------------------------------------------------------
    def maybe_flush(self) -> bool:
        """Flush if ``flush_interval`` seconds have passed since the last flush."""
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()
            return True
        return False

    def flush(self) -> int:
        """Write buffered rows and events and flush to disk; returns rows on disk.

        A flush with nothing new since the last one skips the file flush (the file on
        disk is already up to date).
        """
        self._write_buffer()
        if self._events:
            self._n_events = _append(
                self._f[L.EVENTS],
                np.array(self._events, dtype=L.EVENT_DTYPE),
                self._n_events,
                self._crc["/" + L.EVENTS],
            )
            self._events = []
            self._dirty = True
        wrote = self._dirty
        if self._dirty:
            self._f.flush()
            self._dirty = False
            self.flush_count += 1
        self.rows_flushed = min(self._rows_on_disk.values(), default=0)
        self._last_flush = time.monotonic()
        if wrote:
            self._tell(closed=False)
        return self.rows_flushed

    def _tell(self, *, closed: bool) -> None:
        if self.on_flush is None:
            return
        info = FileProgress(self.path, self.rows_flushed, self._last_time, closed)
        try:
            self.on_flush(info)
        except Exception as err:  # an observer never stops the acquisition
            log.warning("%s: on_flush observer failed: %s", self.path, err)

    def close(self) -> None:
        """Flush, close, and move streamed spectra into /eis/<id> groups."""
        if self.closed:
            return
        try:
            try:
                self.flush()
            finally:
                self._f.close()
                self.closed = True
            if self._swmr:
                _finalize_when_unlocked(self.path)
        finally:
            if self._lock is not None:
                self._lock.unlink(missing_ok=True)
            self._tell(closed=True)

    def __enter__(self) -> CellWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _next_spectrum_id(f: h5py.File) -> int:
    ids = [int(k) for k in f[L.EIS].keys() if k.isdigit()] if L.EIS in f else []
    if L.EIS_STREAM in f and f[L.EIS_STREAM]["spectra"].shape[0]:
        ids.append(int(f[L.EIS_STREAM]["spectra"]["spectrum_id"].max()))
    return max(ids, default=0) + 1


def _finalize_when_unlocked(path: Path, attempts: int = 10, wait_s: float = 0.2) -> None:
    """Move streamed spectra into groups; a reader holding the file (HDF5's file lock)
    makes that impossible for now: retry for ~2 s, then leave the stream table, which
    every reader reads like groups and the next resume/recover finalizes."""
    for i in range(attempts):
        try:
            finalize_stream(path)
            return
        except OSError:
            if i == attempts - 1:
                return
            time.sleep(wait_s)


def _create_objects(
    f: h5py.File,
    metadata: CellMetadata | None,
    metadata_text: str | None,
    protocol: str | None,
    columns: Sequence[str],
    units: Mapping[str, str],
    chunk_rows: int,
    column_attrs: Mapping[str, Mapping[str, str]],
    checksums: bool = True,
    chunk_crc: bool = True,
) -> None:
    # text as fixed-length strings in checksummed object headers (store/text.py)
    path = f.filename
    set_attrs(f, {"format": L.FORMAT, "format_version": L.FORMAT_VERSION,
                  "software_version": __version__,
                  "created": datetime.now(UTC).isoformat()}, path)  # fmt: skip
    cell = make_group(f, L.CELL)
    if metadata is not None:
        set_attrs(cell, metadata_to_attrs(metadata), path)
    if metadata_text is not None:
        set_attrs(cell, {"original_text": metadata_text}, path)
    cyc = f.create_group(L.CYCLING)
    for c in columns:
        d = _make_column(cyc, c, _dtype_of(c), units.get(c, units_of(c)), chunk_rows, checksums)
        set_attrs(d, column_attrs.get(c, {}), path)
    f.create_group(L.EIS)
    ev = f.create_dataset(
        L.EVENTS,
        shape=(0,),
        maxshape=(None,),
        dtype=L.EVENT_DTYPE,
        chunks=(256,),
        fletcher32=checksums,
    )
    set_attrs(ev, {"units": "unix_time_second: s; test_time_second: s"})
    if checksums and chunk_crc:
        f.create_group(chunkcrc.GROUP)
        _ensure_tables(f)
    # fixed-length text: a variable-length string would live in the global heap, which
    # has no checksum
    text = (protocol or "").encode("utf-8")
    d = f.create_dataset(L.PROTOCOL, data=np.array(text, dtype=f"S{max(1, len(text))}"))
    if chunkcrc.has_tables(f):  # contiguous data: HDF5 keeps no checksum of it
        d.attrs[chunkcrc.ATTR] = chunkcrc.whole_entry(d[()])


def _ensure_tables(f: h5py.File) -> None:
    """A chunk CRC table for every growing dataset (before SWMR mode, which cannot
    create datasets); nothing in a file without tables."""
    if not chunkcrc.has_tables(f):
        return
    growing = [f[L.CYCLING][c] for c in f[L.CYCLING]] if L.CYCLING in f else []
    growing += [f[L.EVENTS]] if L.EVENTS in f else []
    growing += [f[L.EIS_STREAM][c] for c in f[L.EIS_STREAM]] if L.EIS_STREAM in f else []
    for ds in growing:
        if chunkcrc.table_name(ds.name) not in f:
            chunkcrc.create_table(f, ds.name)


def _ensure_stream(f: h5py.File) -> None:
    if L.EIS_STREAM in f:
        _ensure_tables(f)
        return
    st = f.create_group(L.EIS_STREAM)
    for name in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm"):
        _make_column(st, name, np.dtype("f8"), units_of(name), L.LIVE_CHUNK_ROWS)
    st.create_dataset(
        "spectra",
        shape=(0,),
        maxshape=(None,),
        dtype=L.SPECTRUM_META_DTYPE,
        chunks=(64,),
        fletcher32=True,
    )
    _ensure_tables(f)


def create_cell(
    path: str | Path,
    metadata: CellMetadata | None,
    *,
    metadata_text: str | None = None,
    protocol: str | None = None,
    columns: Sequence[str] = LIVE_COLUMNS,
    units: Mapping[str, str] | None = None,
    swmr: bool = True,
    flush_interval: float = 1.0,
    overwrite: bool = False,
    chunk_rows: int | None = None,
    column_attrs: Mapping[str, Mapping[str, str]] | None = None,
    checksums: bool = True,
    chunk_crc: bool | None = None,
) -> CellWriter:
    """Create a new cell file and return its writer (SWMR on by default).

    ``chunk_rows``: HDF5 chunk length of the /cycling columns (default: 4096 rows for
    live files, 65,536 otherwise). ``column_attrs``: extra attributes per column, e.g.
    ``{"current_ampere": {"sampling": "interval_mean"}}``. ``checksums``: Fletcher-32
    on every chunked dataset and the chunk CRC-32 tables (on by default; off only to
    measure their cost); ``chunk_crc=False`` leaves out the tables alone (same use).
    """
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"output folder {str(path.parent)!r} does not exist", path=path)
    if path.exists() and not overwrite:
        raise InputError("file exists (resume it, or remove it first)", path=path)
    lock = take_lock(path) if swmr else None
    # a live file is built under a hidden name and appears under its own only once it is
    # in SWMR mode: a reader in this process opening it earlier (HDF5 shares one handle
    # per file within a process) would keep SWMR from starting
    made = path.with_name(f".{path.name}.creating") if swmr else path
    f = h5py.File(made, "w", libver="latest")
    try:
        rows = chunk_rows or (L.LIVE_CHUNK_ROWS if swmr else L.CHUNK_ROWS)
        _create_objects(
            f,
            metadata,
            metadata_text,
            protocol,
            columns,
            units or {},
            rows,
            column_attrs or {},
            checksums,
            checksums if chunk_crc is None else chunk_crc,
        )
        if swmr:
            _ensure_stream(f)
            f = _swmr_under_its_name(f, made, path)
    except BaseException:
        f.close()
        made.unlink(missing_ok=True)
        if lock:
            lock.unlink(missing_ok=True)
        raise
    return CellWriter(f, path, swmr=swmr, flush_interval=flush_interval, lock=lock)


def _swmr_under_its_name(f: h5py.File, made: Path, path: Path) -> h5py.File:
    """Start SWMR on ``f`` (open as ``made``), then give the file its name ``path``.

    Where an open file cannot be renamed (Windows), it is closed, renamed and opened
    again in SWMR mode."""
    f.swmr_mode = True
    try:
        os.replace(made, path)
        return f
    except OSError:
        f.close()
        os.replace(made, path)
        f = h5py.File(path, "a", libver="latest")
        f.swmr_mode = True
        return f


def resume_cell(path: str | Path, *, flush_interval: float = 1.0) -> CellWriter:
    """Open an existing cell file for more appends (recovering it first if needed)."""
    path = Path(path)
    if not path.exists():
        raise InputError("cell file not found", path=path)
    lock = take_lock(path)
    try:
        if needs_recovery(path):
            recover(path, _locked=True)
        f = h5py.File(path, "a", libver="latest")
        fmt = f.attrs.get("format")
        if (fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt) != L.FORMAT:
            f.close()
            raise InputError("not a cyclerflow cell file", path=path)
        _ensure_stream(f)
        f.swmr_mode = True
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
    return CellWriter(f, path, swmr=True, flush_interval=flush_interval, lock=lock)
