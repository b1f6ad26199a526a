"""Damaged files: one error class, and the translation of HDF5's failures into it.

h5py reports damage with the exception types of the call that met it (``OSError`` from
opens and reads, ``RuntimeError`` from an undecodable superblock, ``KeyError`` from an
object that does not open, ``ValueError`` from a bad shape or type). :func:`classify`
turns each into a :class:`DamagedFile` (an :class:`~cyclerflow.errors.InputError`, so the
command line prints one line and exits 2) that names the file, the kind of damage and
where: the superblock, an object's metadata, or a dataset's chunk at rows a..b.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.store import chunkcrc

#: the exception types h5py raises on a damaged file (InputError, a ValueError, passes)
HDF5_ERRORS: tuple[type[BaseException], ...] = (OSError, RuntimeError, KeyError, ValueError)

#: reads of a live file's chunk before a checksum failure counts as damage
_LIVE_RETRIES = 4

#: kinds of damage, from the outside in
KINDS = ("not_hdf5", "truncated", "superblock", "metadata", "chunk", "checksum", "hang")


class DamagedFile(InputError):
    """A file whose bytes are damaged: ``kind`` (one of :data:`KINDS`), ``location``
    (``superblock``, an object path, or ``/group/dataset rows a..b``) and ``detail``
    (HDF5's own words)."""

    def __init__(
        self, path: str | Path, kind: str, location: str, detail: str, *, what: str = "file"
    ):
        self.kind = kind
        self.location = location
        self.detail = detail
        what_file = what
        what = _WHAT.get(kind, "{loc} is damaged").format(loc=location)
        super().__init__(f"damaged {what_file}: {what} ({detail})", path=path)


_WHAT = {
    "not_hdf5": "not HDF5 any more",
    "truncated": "cannot open, cut short",
    "superblock": "cannot open, superblock does not decode",
    "metadata": "metadata of {loc} do not decode",
    "chunk": "chunk of {loc} does not read",
    "checksum": "checksum mismatch in {loc}",
    "hang": "reading {loc} does not return",
}


def hdf5_detail(err: BaseException) -> str:
    """HDF5's reason from an h5py message: the words in its last parentheses, else all."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    text = str(text)
    inner = re.findall(r"\(([^()]*)\)", text)
    return (inner[-1] if inner else text).strip() or type(err).__name__


_KIND_WORDS = (
    ("metadata", ("metadata checksum",)),
    ("truncated", ("truncated file", "eof")),
    ("superblock", ("superblock", "file signature", "signature")),
    ("checksum", ("filter returned failure", "fletcher", "checksum")),
)


def kind_of(err: BaseException, default: str = "metadata") -> str:
    """The damage kind an h5py exception reports (``default`` when its words do not say)."""
    text = str(err).lower()
    for kind, words in _KIND_WORDS:
        if any(w in text for w in words):
            return kind
    return default


def classify(
    err: BaseException,
    path: str | Path,
    location: str,
    default: str = "metadata",
    *,
    what: str = "file",
) -> InputError:
    """The error to raise for ``err`` met at ``location`` of ``path``: InputErrors pass
    unchanged, h5py's errors become :class:`DamagedFile`."""
    if isinstance(err, InputError):
        return err
    kind = kind_of(err, default)
    if kind in ("superblock", "truncated"):
        location = "superblock" if kind == "superblock" else "end of file"
    return DamagedFile(path, kind, location, hdf5_detail(err), what=what)


@contextlib.contextmanager
def classified(path: str | Path, location: str, default: str = "metadata") -> Iterator[None]:
    """Re-raise h5py's errors inside the block as :class:`DamagedFile` at ``location``."""
    try:
        yield
    except InputError:
        raise
    except HDF5_ERRORS as err:
        raise classify(err, path, location, default) from None


def named_members(group: h5py.Group) -> list[tuple[str, h5py.HLObject]]:
    """(name, object) of every member; a member that does not resolve raises KeyError
    (h5py's ``items()`` would give None for it)."""
    return [(name, group[name]) for name in group]


def members(group: h5py.Group) -> list[h5py.HLObject]:
    """Every member object of ``group`` (see :func:`named_members`)."""
    return [obj for _, obj in named_members(group)]


def chunk_ranges(ds: h5py.Dataset, lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """Row ranges [a, b) of ``ds`` between ``lo`` and ``hi`` cut at its chunk borders."""
    step = _rows_per_chunk(ds, lo, hi)
    a = lo
    while a < hi:
        b = min(hi, (a // step + 1) * step)
        yield a, b
        a = b


def _rows_per_chunk(ds: h5py.Dataset, lo: int, hi: int) -> int:
    """Rows per chunk of the 1-D ``ds``; a contiguous one counts as one chunk of [lo, hi)."""
    return ds.chunks[0] if ds.chunks else max(1, hi - lo)


def _fletcher_bad(ds: h5py.Dataset, lo: int, hi: int) -> list[tuple[int, int, str]]:
    """Chunks of rows [lo, hi) that HDF5 does not read (Fletcher-32 or decoding)."""
    bad = []
    tries = _LIVE_RETRIES if ds.file.swmr_mode else 1
    for a, b in chunk_ranges(ds, lo, hi):
        for attempt in range(tries):
            try:
                ds[a:b]
                break
            except HDF5_ERRORS as err:
                if isinstance(err, InputError):
                    raise
                if attempt == tries - 1:
                    bad.append((a, b, hdf5_detail(err)))
                else:
                    time.sleep(0.02 * (attempt + 1))
    return bad


def crc_bad(
    ds: h5py.Dataset,
    lo: int,
    hi: int,
    data: np.ndarray | None = None,
    skip: frozenset = frozenset(),
) -> list[tuple[int, int, str]]:
    """Chunks of rows [lo, hi) failing their chunk CRC-32 entry (store/chunkcrc.py), as
    (first row, last row + 1, why); a CRC table that does not read fails the whole
    range. ``skip``: first rows of chunks already known bad."""
    if ds.name.startswith("/" + chunkcrc.GROUP + "/"):
        return []
    try:
        found = chunkcrc.mismatches(ds, lo, hi, data, skip)
    except HDF5_ERRORS as err:
        if isinstance(err, InputError):
            raise
        table = "/" + chunkcrc.table_name(ds.name)
        why = f"{chunkcrc.NO_ENTRY}: CRC-32 table {table} does not read: {hdf5_detail(err)}"
        c = _rows_per_chunk(ds, lo, hi)
        return [(a, b, why) for a, b in chunk_ranges(ds, lo, hi) if a // c not in skip]
    return [(m.first, m.last + 1, m.detail) for m in found]


def bad_chunks(ds: h5py.Dataset, lo: int, hi: int) -> list[tuple[int, int, str]]:
    """Every chunk of rows [lo, hi) of ``ds`` that does not read or fails its CRC-32
    entry: (first row, last row + 1, the reason)."""
    bad = _fletcher_bad(ds, lo, hi)
    c = _rows_per_chunk(ds, lo, hi)
    skip = frozenset(a // c for a, _, _ in bad)
    crc = crc_bad(ds, lo, hi, skip=skip)
    # a live file: the writer may be between writing a chunk and its entry; look again
    for attempt in range(_LIVE_RETRIES - 1 if ds.file.swmr_mode else 0):
        if not crc:
            break
        time.sleep(0.02 * (attempt + 1))
        crc = [m for a, b, _ in crc for m in crc_bad(ds, a, b, skip=skip)]
    return sorted(bad + crc)


def _crc_checked(
    ds: h5py.Dataset, lo: int, hi: int, out: np.ndarray, path: str | Path
) -> np.ndarray:
    """``out`` (rows [lo, hi) just read) once every chunk it touches matches its CRC-32
    entry; a live file's mismatch is read again a few times (the writer may be mid-flush)."""
    for attempt in range(_LIVE_RETRIES if ds.file.swmr_mode else 1):
        bad = crc_bad(ds, lo, hi, out)
        if not bad:
            return out
        time.sleep(0.02 * (attempt + 1))
        ds.read_direct(out, np.s_[lo:hi])
    a, b, detail = bad[0]
    raise DamagedFile(path, "checksum", f"{ds.name} rows {a}..{b - 1}", detail)


def read_whole(ds: h5py.Dataset, path: str | Path) -> np.ndarray:
    """All of a contiguous dataset (e.g. /protocol), checked against its CRC-32 attribute
    (HDF5 keeps no checksum of contiguous data)."""
    data = ds[()]
    if not chunkcrc.whole_ok(ds, data):
        raise DamagedFile(path, "checksum", ds.name, "CRC-32 of the data does not match")
    return data


def read_rows(ds: h5py.Dataset, lo: int, hi: int, path: str | Path) -> np.ndarray:
    """Rows [lo, hi) of a 1-D dataset; a chunk that does not read (checksum mismatch,
    undecodable) raises :class:`DamagedFile` naming the dataset and its rows."""
    out = np.empty(max(0, hi - lo), dtype=ds.dtype)
    if hi <= lo:
        return out
    first = None
    # a live (SWMR) file: a chunk read while its writer rewrites it can fail its checksum
    # once; damage fails every time
    for attempt in range(_LIVE_RETRIES if ds.file.swmr_mode else 1):
        try:
            ds.read_direct(out, np.s_[lo:hi])
        except HDF5_ERRORS as err:
            if isinstance(err, InputError):
                raise
            first = err
            time.sleep(0.02 * (attempt + 1))
        else:
            with classified(path, ds.name, "chunk"):
                return _crc_checked(ds, lo, hi, out, path)
    with classified(path, ds.name, "chunk"):
        bad = bad_chunks(ds, lo, hi)
    if not bad:  # the whole read failed but every chunk reads: not a chunk's fault
        raise classify(first, path, ds.name, "chunk")
    a, b, detail = bad[0]
    kind = kind_of(first, "chunk")
    kind = "checksum" if kind == "checksum" else "chunk"
    raise DamagedFile(path, kind, f"{ds.name} rows {a}..{b - 1}", detail)
