"""Recovery of a file left open by a killed writer.

HDF5 marks a file opened for (SWMR) writing in its superblock. A killed writer
leaves the mark, and plain opens then fail. Such a file still opens as a SWMR
*reader*, so recovery copies every object through a SWMR read into a temporary
file, moves streamed spectra into their groups, and renames it over the original.
Everything flushed before the kill is kept.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.store import chunkcrc
from cyclerflow.store import layout as L
from cyclerflow.store.damage import DamagedFile, classified, crc_bad
from cyclerflow.store.lock import live_writer_pid
from cyclerflow.store.stream import finalize_stream
from cyclerflow.store.text import make_group, set_attrs

_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def superblock_flags(path: str | Path) -> int:
    """File-consistency flags of a v2/v3 superblock (0 for older superblocks).

    Bit 0: open for write; bit 2: open for SWMR write.
    """
    with open(path, "rb") as fh:
        offset = 0
        while True:
            fh.seek(offset)
            head = fh.read(12)
            if len(head) < 12:
                raise InputError("not an HDF5 file (no superblock signature)", path=path)
            if head[:8] == _SIGNATURE:
                return head[11] if head[8] >= 2 else 0
            offset = 512 if offset == 0 else offset * 2


def needs_recovery(path: str | Path) -> bool:
    """True when the file is marked open-for-write (writer alive or killed)."""
    return bool(superblock_flags(path) & 0x05)


def _copy_dataset(
    src: h5py.Dataset, dst_group: h5py.Group, name: str, n: int | None = None
) -> None:
    kwargs = {}
    if src.chunks is not None:
        kwargs.update(chunks=src.chunks, maxshape=src.maxshape, fletcher32=src.fletcher32)
    data = src[...] if n is None else src[:n]
    if src.dtype.kind == "O" or h5py.check_string_dtype(src.dtype):
        d = dst_group.create_dataset(name, data=src[()], dtype=src.dtype)
    else:
        d = dst_group.create_dataset(
            name, data=data, dtype=src.dtype, fillvalue=src.fillvalue, **kwargs
        )
    set_attrs(d, dict(src.attrs.items()))
    if chunkcrc.has_tables(src.file) and src.chunks is not None and d.ndim == 1:
        _copy_crc(src, d, data)


def _copy_crc(src: h5py.Dataset, dst: h5py.Dataset, data) -> None:
    """Check the copied rows against the source's chunk CRC-32 entries (a killed
    writer's last rows, flushed after its last table update, have Fletcher-32 alone),
    then give the copy a table covering every row."""
    bad = crc_bad(src, 0, len(data), data)
    if bad:
        a, b, detail = bad[0]
        raise DamagedFile(src.file.filename, "checksum", f"{src.name} rows {a}..{b - 1}", detail)
    entries = chunkcrc.entries_of(data, dst.chunks[0])
    if chunkcrc.ATTR in src.attrs:
        dst.attrs[chunkcrc.ATTR] = entries
        return
    table = chunkcrc.create_table(dst.file, dst.name)
    table.resize((len(entries),))
    table[:] = entries


def _copy_tree(src: h5py.Group, dst: h5py.Group, cycling_rows: int) -> None:
    # text (variable-length in files of older versions) is rewritten fixed-length
    set_attrs(dst, dict(src.attrs.items()))
    if src.name == "/" and chunkcrc.has_tables(src.file):
        dst.file.require_group(chunkcrc.GROUP)  # tables are rebuilt, not copied
    for name, obj in src.items():
        if src.name == "/" and name == chunkcrc.GROUP:
            continue
        if isinstance(obj, h5py.Group):
            _copy_tree(obj, make_group(dst, name), cycling_rows)
        else:
            n = cycling_rows if src.name == "/" + L.CYCLING else None
            _copy_dataset(obj, dst, name, n)


def recover(path: str | Path, *, _locked: bool = False) -> dict:
    """Make a file left by a killed writer a normal closed file, in place.

    Returns ``{"rows": n, "spectra": m}``. Raises :class:`InputError` if a live writer
    holds the file or the file cannot be read at all.
    """
    path = Path(path)
    if not _locked and live_writer_pid(path) is not None:
        raise InputError("file is being written by a live process; not recovering", path=path)
    if not needs_recovery(path):
        return {"rows": None, "spectra": 0}
    tmp = path.with_name(f".{path.name}.recover-{os.getpid()}")
    with classified(path, "superblock", "superblock"):
        src = h5py.File(path, "r", libver="latest", swmr=True)
    try:
        with (
            src,
            h5py.File(tmp, "w", libver="latest") as dst,
            classified(path, "the flushed data", "chunk"),
        ):
            rows = 0
            if L.CYCLING in src and len(src[L.CYCLING]):
                cyc = src[L.CYCLING]
                rows = min(cyc[c].shape[0] for c in cyc)
                # a row is complete only if its time stamp was written
                if "test_time_second" in cyc and rows:
                    t = cyc["test_time_second"][:rows]
                    bad = np.flatnonzero(np.isnan(t))
                    if len(bad):
                        rows = int(bad[0])
            _copy_tree(src, dst, rows)
            dst.attrs[L.RECOVERED_ATTR] = time.time()
        spectra = finalize_stream(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"rows": rows, "spectra": spectra}
