"""Text in cell files kept where HDF5 checksums it.

h5py stores a Python ``str`` attribute as a variable-length string: the value lives in
HDF5's global heap, which has no checksum, and a damaged heap can change the text
without an error or make HDF5 loop while reading it. Here text is stored as a
fixed-length UTF-8 string (its bytes inside the attribute message), and groups keep
their attributes in the object header (compact storage, checksummed in every
``libver="latest"`` file) instead of the dense storage HDF5 moves them to beyond eight
attributes, whose values above 4 kB are kept unchecksummed.
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


def set_attrs(obj: h5py.HLObject, items: Mapping[str, Any], path: str | Path | None = None) -> None:
    """Set every attribute of ``items`` on ``obj`` (text as fixed-length strings)."""
    for key, value in items.items():
        obj.attrs[key] = attr_value(value, path=path, key=key)


def make_group(parent: h5py.Group, name: str) -> h5py.Group:
    """A new group of ``parent`` that keeps every attribute in its (checksummed) object
    header."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_attr_phase_change(MAX_COMPACT_ATTRIBUTES, MAX_COMPACT_ATTRIBUTES)
    gid = h5py.h5g.create(parent.id, name.encode("utf-8"), gcpl=gcpl)
    return h5py.Group(gid)
