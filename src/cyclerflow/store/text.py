"""Text in cell files kept where HDF5 checksums it.

h5py stores a Python ``str`` attribute as a variable-length string: the value lives in
HDF5's global heap, which has no checksum, and a damaged heap can change the text
without an error or make HDF5 loop while reading it. Here text is stored as a
fixed-length UTF-8 string (its bytes inside the attribute message), and groups keep
their attributes in the object header (compact storage, checksummed in every
``libver="latest"`` file) instead of the dense storage HDF5 moves them to beyond eight
attributes, whose values above 4 kB are kept unchecksummed.

One attribute message cannot exceed 64 kB, and a longer one sends every attribute of
its object to dense storage (measured: a flipped byte in a 70 kB text read back changed
without an error). A text above :data:`TEXT_PART_BYTES` is therefore split into parts:
``key`` holds the first, ``key~part1``, ``key~part2`` ... the rest, each in the
checksummed object header; :func:`joined` puts them back together.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cyclerflow.errors import InputError

#: attributes an object header keeps before moving them to dense storage (HDF5's maximum)
MAX_COMPACT_ATTRIBUTES = 65535
#: longest text stored in one attribute (bytes of UTF-8); an attribute message above 64 kB
#: cannot live in the object header
TEXT_PART_BYTES = 60_000
#: name of part N (N >= 1) of a long text attribute ``key``: ``key~partN``
PART_MARK = "~part"


def fixed_text(value: str, *, path: str | Path | None = None, key: str = "") -> np.ndarray:
    """``value`` as a fixed-length UTF-8 HDF5 string (a NUL byte is refused: HDF5
    strings end there)."""
    data = value.encode("utf-8")
    if b"\x00" in data:
        raise InputError(f"{key or 'text'} holds a NUL byte (a damaged or binary file?)", path=path)
    return np.array(data, dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def attr_value(value: Any, *, path: str | Path | None = None, key: str = "") -> Any:
    """What to store for an attribute: text (``str`` or a variable-length string read
    from an older file) as fixed-length, everything else as given."""
    if isinstance(value, str):
        return fixed_text(value, path=path, key=key)
    return value


def _fixed_bytes(data: bytes) -> np.ndarray:
    return np.array(data, dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def set_attrs(obj: h5py.HLObject, items: Mapping[str, Any], path: str | Path | None = None) -> None:
    """Set every attribute of ``items`` on ``obj`` (text as fixed-length strings; a text
    longer than :data:`TEXT_PART_BYTES` as parts, see :func:`joined`)."""
    for key, value in items.items():
        stored = attr_value(value, path=path, key=key)
        data = (
            stored.item() if isinstance(stored, np.ndarray) and stored.dtype.kind == "S" else None
        )
        if data is None or len(data) <= TEXT_PART_BYTES:
            obj.attrs[key] = stored
            continue
        parts = [data[i : i + TEXT_PART_BYTES] for i in range(0, len(data), TEXT_PART_BYTES)]
        obj.attrs[key] = _fixed_bytes(parts[0])
        for n, part in enumerate(parts[1:], 1):
            obj.attrs[f"{key}{PART_MARK}{n}"] = _fixed_bytes(part)


def joined(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as read (``obj.attrs``) with every long text's parts joined into one
    ``bytes`` value under its own key (see :func:`set_attrs`). A part without its text
    or a missing part raises ``KeyError`` (readers classify it as damaged metadata)."""
    out: dict[str, Any] = {}
    parts: dict[str, dict[int, bytes]] = {}
    for key, value in attrs.items():
        base, mark, n = key.rpartition(PART_MARK)
        if mark and n.isdigit():
            parts.setdefault(base, {})[int(n)] = bytes(value)
        else:
            out[key] = value
    for base, got in parts.items():
        if base not in out or sorted(got) != list(range(1, len(got) + 1)):
            raise KeyError(f"parts of the text attribute {base!r} are missing")
        out[base] = bytes(out[base]) + b"".join(got[n] for n in sorted(got))
    return out


def make_group(parent: h5py.Group, name: str) -> h5py.Group:
    """A new group of ``parent`` that keeps every attribute in its (checksummed) object
    header."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_attr_phase_change(MAX_COMPACT_ATTRIBUTES, MAX_COMPACT_ATTRIBUTES)
    gid = h5py.h5g.create(parent.id, name.encode("utf-8"), gcpl=gcpl)
    return h5py.Group(gid)
