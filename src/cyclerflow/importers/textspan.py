"""A file's bytes as a zero-copy view, for the text readers.

Files under :data:`MAP_FROM` bytes are read (one copy is cheaper than setting up a map);
larger ones are memory-mapped read-only, so the text readers hand pyarrow slices of the
file itself instead of a ``bytes`` copy of the whole file and another of its data rows.
The map is closed when the ``with`` block ends: a reader must not keep a view past it
(every array it returns is parsed into fresh memory).

The views are :class:`memoryview` objects (``memoryview`` has no ``find``): the helpers
below search them in place.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

MAP_FROM = 1 << 20  # bytes: files this large or larger are memory-mapped


@contextmanager
def file_view(path: str | Path) -> Iterator[memoryview]:
    """The whole file as a read-only ``memoryview`` (``view.obj`` is ``bytes`` or the map).

    The map (if any) is closed on leaving the block. Should a view of it still be alive
    then (an exception's traceback holding a reader's locals), closing is left to the
    garbage collector: the file handle itself is closed as soon as the map exists.
    Raises ``OSError`` as ``open`` does.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        mapped: mmap.mmap | None = None
        if size >= MAP_FROM:
            try:
                mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # a file system without mmap
                mapped = None
        base: bytes | mmap.mmap = mapped if mapped is not None else fh.read()
    view = memoryview(base)
    try:
        yield view
    finally:
        view.release()
        if mapped is not None:
            try:
                mapped.close()
            except BufferError:  # a slice still alive: unmapped when it is collected
                pass


def find(view: memoryview | bytes, sub: bytes, start: int = 0, end: int | None = None) -> int:
    """Offset of ``sub`` in ``view[start:end]`` (-1 if absent), like ``bytes.find``.

    A view of ``bytes`` or of a map (from :func:`file_view`, or a slice of one) is
    searched in place, at memchr speed: no copy.
    """
    n = len(view)
    end = n if end is None else min(end, n)
    if isinstance(view, bytes):
        return view.find(sub, start, end)
    base, off = _base(view)
    hit = base.find(sub, off + start, off + end)
    return hit if hit < 0 else hit - off


def _base(view: memoryview) -> tuple[bytes | mmap.mmap, int]:
    """(the object ``view`` is a slice of, the offset of the slice in it)."""
    base = view.obj
    if len(view) == len(base):
        return base, 0
    whole = np.frombuffer(base, np.uint8)
    return base, np.frombuffer(view, np.uint8).ctypes.data - whole.ctypes.data


def first_line(view: memoryview | bytes) -> bytes:
    """The first line of ``view`` as bytes, without its LF or CR (the rest not copied)."""
    nl = find(view, b"\n")
    return bytes(view if nl < 0 else view[:nl]).rstrip(b"\r")


def tail(view: memoryview | bytes, n: int = 256) -> bytes:
    """The last ``n`` bytes of ``view`` (a copy of those only)."""
    return bytes(view[max(len(view) - n, 0) :])


def is_ascii(view: memoryview | bytes) -> bool:
    """Are all bytes below 0x80? (``bytes.isascii`` without a copy.)"""
    if isinstance(view, bytes):
        return view.isascii()
    base = view.obj
    if isinstance(base, bytes) and len(base) == len(view):
        return base.isascii()
    a = np.frombuffer(view, np.uint8)
    return not len(a) or int(a.max()) < 0x80
