"""Per-chunk CRC-32 of every chunked dataset: a check a zeroed chunk cannot pass.

HDF5's Fletcher-32 filter cannot see a chunk zeroed together with its checksum (the
Fletcher-32 of zeros is 0). Here every chunk ``k`` of a dataset gets an entry
``(crc32, rows)``: the CRC-32 (zlib's) of the chunk's first ``rows`` rows as stored,
started from the CRC-32 of the text ``"cyclerflow chunk k"``, never from 0. Zeros never
give 0 and a chunk moved to another index does not match.

Where the entries live (docs/file-format.md, "Chunk CRC table"):

- a growing dataset (/cycling columns, /events, the live stream table): the companion
  dataset ``/chunk_crc/<path with "/" as ".">`` (Fletcher-32 itself), appended by the
  writer as chunks complete; the last, partial chunk's entry is rewritten at each flush.
  Data are append-only, so an entry stays true for its first ``rows`` rows even when
  the chunk grows later (a live reader or a killed writer's file may lag one flush);
- a dataset written once (a spectrum's arrays): the attribute ``chunk_crc`` of the
  dataset, in its checksummed object header.

A zeroed table reads as entries of 0 rows, which no writer writes: reported as damage.
This module computes and compares; it never raises for damage (callers do).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

try:  # the same CRC-32 as zlib's (tested), ~7x faster (carry-less multiplication)
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib gives the same values
    from zlib import crc32 as _crc32

import h5py
import numpy as np

from cyclerflow.store.text import fixed_text

#: the group of companion tables, and the attribute of datasets written once
GROUP = "chunk_crc"
ATTR = "chunk_crc"
ENTRY_DTYPE = np.dtype([("crc32", "<u4"), ("rows", "<u4")])
#: entries per chunk of a companion table
TABLE_CHUNK = 256
#: how the reason for a chunk whose own entry is unusable (the table is damaged, not
#: necessarily the data) begins: ``recover -o`` keeps such a chunk when Fletcher-32
#: passes and its bytes are not all zero
NO_ENTRY = "no usable CRC-32 entry"


def table_name(dataset_name: str) -> str:
    """Companion table path of the dataset ``dataset_name`` (``/cycling/voltage_volt``
    -> ``chunk_crc/cycling.voltage_volt``)."""
    return f"{GROUP}/{dataset_name.strip('/').replace('/', '.')}"


def seed(index: int) -> int:
    """Starting value of chunk ``index``'s CRC (the CRC-32 of ``"cyclerflow chunk N"``)."""
    return zlib.crc32(b"cyclerflow chunk %d" % index)


def crc_of(data: np.ndarray, index: int, start: int | None = None) -> int:
    """CRC-32 of the rows ``data`` (stored byte order) as chunk ``index``; ``start``
    continues a running CRC of the chunk's earlier rows."""
    buf = memoryview(np.ascontiguousarray(data)).cast("B")
    return _crc32(buf, seed(index) if start is None else start)


def entries_of(data: np.ndarray, chunk_rows: int) -> np.ndarray:
    """Entries of every chunk of the whole 1-D array ``data`` (a dataset written once)."""
    n = len(data)
    out = np.zeros(-(-n // chunk_rows) if n else 0, dtype=ENTRY_DTYPE)
    for k in range(len(out)):
        part = data[k * chunk_rows : (k + 1) * chunk_rows]
        out[k] = (crc_of(part, k), len(part))
    return out


def whole_entry(data: np.ndarray) -> np.ndarray:
    """The ``chunk_crc`` attribute of a contiguous (unchunked) dataset written once, e.g.
    /protocol: one entry over all its bytes as chunk 0 (HDF5 checksums no contiguous data)."""
    return np.array([(crc_of(np.asarray(data), 0), 1)], dtype=ENTRY_DTYPE)


def whole_ok(ds: h5py.Dataset, data: np.ndarray) -> bool:
    """Whether ``data`` (all of the contiguous ``ds``) matches its ``chunk_crc``
    attribute; True when it has none (files of older versions)."""
    if ds.chunks is not None or ATTR not in ds.attrs:
        return True
    want = np.asarray(ds.attrs[ATTR], dtype=ENTRY_DTYPE).reshape(-1)
    return len(want) == 1 and int(want[0]["crc32"]) == crc_of(np.asarray(data), 0)


def has_tables(f: h5py.File) -> bool:
    """Whether the file was written with chunk CRC tables (a file of an older version
    has none and is checked by Fletcher-32 alone)."""
    return GROUP in f


@dataclass(frozen=True)
class Mismatch:
    """A chunk that fails its CRC entry: rows [first, last] of the dataset and why."""

    first: int
    last: int
    detail: str


def _append_entries(table: h5py.Dataset, index: int, entries: np.ndarray, n_table: int) -> int:
    """Write ``entries`` from table row ``index`` on (overwriting the last partial one);
    returns the table's new length."""
    n = max(n_table, index + len(entries))
    if n != n_table:
        table.id.set_extent((n,))
    space = table.id.get_space()
    space.select_hyperslab((index,), (len(entries),))
    table.id.write(h5py.h5s.create_simple((len(entries),)), space, entries)
    return n


class RunningCrc:
    """The writer's side for one growing dataset: keeps the CRC of its last, partial
    chunk in memory and writes the entries of every chunk an append touches."""

    def __init__(self, table: h5py.Dataset, chunk_rows: int, rows: int, tail_crc: int):
        self.table = table
        self.chunk_rows = chunk_rows
        self._rows = rows  # rows of the dataset covered so far
        self._tail_crc = tail_crc  # running CRC of the last chunk's rows (if partial)
        self._n_table = int(table.shape[0])

    def extend(self, values: np.ndarray) -> None:
        """Account for ``values`` just appended after the covered rows."""
        c, pos = self.chunk_rows, 0
        first = self._rows // c
        out = []
        while pos < len(values):
            k, inside = divmod(self._rows, c)
            take = min(c - inside, len(values) - pos)
            start = self._tail_crc if inside else None
            crc = crc_of(values[pos : pos + take], k, start)
            out.append((crc, inside + take))
            self._tail_crc, self._rows, pos = crc, self._rows + take, pos + take
        if out:
            entries = np.array(out, dtype=ENTRY_DTYPE)
            self._n_table = _append_entries(self.table, first, entries, self._n_table)


def create_table(f: h5py.File, dataset_name: str) -> h5py.Dataset:
    """The empty companion table of a new growing dataset."""
    table = f.create_dataset(
        table_name(dataset_name),
        shape=(0,),
        maxshape=(None,),
        dtype=ENTRY_DTYPE,
        chunks=(TABLE_CHUNK,),
        fletcher32=True,
    )
    table.attrs["units"] = fixed_text("1")
    return table


def running(ds: h5py.Dataset, rows: int) -> RunningCrc | None:
    """The :class:`RunningCrc` of ``ds`` holding ``rows`` rows (None in a file without
    tables). The last partial chunk's CRC is recomputed from the file; when it differs
    from the table's entry the table is left as it is and the caller's next read of
    the data reports it."""
    f = ds.file
    if not has_tables(f):
        return None
    name = table_name(ds.name)
    table = f[name] if name in f else create_table(f, ds.name)
    c = ds.chunks[0]
    k, inside = divmod(rows, c)
    tail = crc_of(ds[k * c : rows], k) if inside else 0
    return RunningCrc(table, c, rows, tail)


def entries_for(ds: h5py.Dataset) -> np.ndarray | None:
    """The CRC entries of ``ds``: its ``chunk_crc`` attribute or its companion table;
    None when the file has no tables. A file with tables but none for ``ds`` gives an
    empty array (every chunk then fails)."""
    f = ds.file
    if ATTR in ds.attrs:
        return np.asarray(ds.attrs[ATTR], dtype=ENTRY_DTYPE).reshape(-1)
    if not has_tables(f):
        return None
    name = table_name(ds.name)
    if name not in f:
        return np.zeros(0, dtype=ENTRY_DTYPE)
    table = f[name]
    if f.swmr_mode:
        table.refresh()
    out = np.empty(table.shape[0], dtype=ENTRY_DTYPE)
    if len(out):
        table.read_direct(out)
    return out


def _chunk_rows(ds: h5py.Dataset) -> int:
    return ds.chunks[0] if ds.chunks else max(1, ds.shape[0] if ds.shape else 1)


def _check_chunk(
    ds: h5py.Dataset, k: int, entries: np.ndarray, data: np.ndarray, lo: int
) -> Mismatch | None:
    """Compare chunk ``k`` with its entry; ``data`` holds rows from ``lo`` on."""
    c, n, live = _chunk_rows(ds), ds.shape[0], ds.file.swmr_mode
    a = k * c
    avail = min(c, n - a)
    where = (a, a + avail - 1)
    if k >= len(entries):
        return None if live else Mismatch(*where, "no CRC-32 entry for the chunk")
    crc, rows = int(entries[k]["crc32"]), int(entries[k]["rows"])
    if rows == 0 or rows > c:
        return Mismatch(*where, f"{NO_ENTRY}: entry {k} is damaged ({rows} rows)")
    if rows > avail or (rows < avail and not live):
        if live and rows > avail:
            return None  # the writer's next rows are not visible yet
        return Mismatch(*where, f"CRC-32 entry {k} covers {rows} of {avail} rows")
    if lo <= a and a + rows <= lo + len(data):
        part = data[a - lo : a - lo + rows]
    else:
        part = ds[a : a + rows]
    if crc_of(part, k) != crc:
        return Mismatch(a, a + rows - 1, f"CRC-32 of the chunk does not match entry {k}")
    return None


def mismatches(
    ds: h5py.Dataset,
    lo: int,
    hi: int,
    data: np.ndarray | None = None,
    skip: frozenset[int] = frozenset(),
) -> list[Mismatch]:
    """Every chunk touching rows [lo, hi) of the 1-D ``ds`` that fails its CRC entry
    (``data``: rows [lo, hi) already read; ``skip``: chunk indexes not to look at).
    Empty for a file without tables. h5py's errors (a chunk or table that does not
    read) pass to the caller."""
    if hi <= lo or ds.ndim != 1:
        return []
    entries = entries_for(ds)
    if entries is None:
        return []
    data = np.empty(0, dtype=ds.dtype) if data is None else data
    c = _chunk_rows(ds)
    found = []
    for k in range(lo // c, (hi - 1) // c + 1):
        if k in skip:
            continue
        bad = _check_chunk(ds, k, entries, data, lo)
        if bad is not None:
            found.append(bad)
    return found
