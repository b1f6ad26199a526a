"""Read every byte a cell file holds and say what state it is in.

:func:`verify_file` walks every group and dataset (attributes, and each dataset chunk
by chunk, so a checksum mismatch is located to rows a..b) and returns a
:class:`Verdict`: ``intact``, ``no checksums`` (an older file: everything reads but
nothing would notice a flipped data bit), ``recovered-from-kill`` (closed by
``cyclerflow recover`` after its writer was killed), ``unclosed`` (its writer was killed
and it was not recovered yet; everything flushed reads), ``live`` or ``damaged``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from cyclerflow.errors import InputError
from cyclerflow.store import chunkcrc
from cyclerflow.store import layout as L
from cyclerflow.store.damage import (
    HDF5_ERRORS,
    DamagedFile,
    bad_chunks,
    hdf5_detail,
    kind_of,
    read_whole,
)
from cyclerflow.store.guard import is_vlen_text
from cyclerflow.store.lock import live_writer_pid
from cyclerflow.store.reader import open_hdf5
from cyclerflow.store.recovery import needs_recovery


@dataclass(frozen=True)
class Damage:
    """One damaged place: ``kind`` (see :data:`cyclerflow.store.damage.KINDS`), the
    object ``location``, HDF5's ``detail`` and, for a chunk, its ``rows`` [first, last]."""

    kind: str
    location: str
    detail: str
    rows: tuple[int, int] | None = None

    def describe(self) -> str:
        where = self.location + (f" rows {self.rows[0]}..{self.rows[1]}" if self.rows else "")
        return f"{self.kind} at {where} ({self.detail})"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "location": self.location,
            "detail": self.detail,
            "rows": None if self.rows is None else list(self.rows),
        }


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify_file` found in one file."""

    path: str
    state: str  # intact | no checksums | recovered-from-kill | unclosed | live | damaged
    damage: tuple[Damage, ...] = ()
    datasets: int = 0
    unchecked: tuple[str, ...] = field(default=())  # chunked datasets without Fletcher-32
    #: the data checks the file carries: "Fletcher-32 + chunk CRC-32" (this version),
    #: "Fletcher-32" (issue 14's first files: a zeroed chunk with its checksum goes
    #: unseen) or "none"
    checks: str = "none"

    @property
    def ok(self) -> bool:
        return self.state != "damaged"

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "state": self.state,
            "damage": [d.to_dict() for d in self.damage],
            "datasets": self.datasets,
            "unchecked": list(self.unchecked),
            "checks": self.checks,
        }


@dataclass
class _Walk:
    """What the walk has met so far (mutable only during one :func:`verify_file`)."""

    damage: list[Damage] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    datasets: int = 0

    def add(self, err: BaseException, location: str, default: str = "metadata") -> None:
        self.damage.append(Damage(kind_of(err, default), location, hdf5_detail(err)))


def _members(group: h5py.Group, walk: _Walk) -> Iterator[tuple[str, h5py.HLObject]]:
    """(name, object) of each member; a link or object header that does not read is
    recorded and skipped."""
    try:
        names = list(group.keys())
    except HDF5_ERRORS as err:
        walk.add(err, group.name)
        return
    for name in names:
        location = f"{group.name.rstrip('/')}/{name}"
        try:
            yield name, group[name]
        except HDF5_ERRORS as err:
            walk.add(err, location)


def _check_attrs(obj: h5py.HLObject, walk: _Walk) -> None:
    try:
        for _ in obj.attrs.values():
            pass
        if any(is_vlen_text(obj, name) for name in obj.attrs):
            walk.unchecked.append(f"{obj.name} text attributes")
    except HDF5_ERRORS as err:
        walk.add(err, f"{obj.name} attributes")


def _check_dataset(ds: h5py.Dataset, walk: _Walk) -> None:
    walk.datasets += 1
    _check_attrs(ds, walk)
    try:
        chunked = ds.chunks is not None and ds.ndim == 1
        if ds.chunks is not None and not ds.fletcher32:
            walk.unchecked.append(ds.name)
        if not chunked:
            read_whole(ds, ds.file.filename)
            return
        if ds.file.swmr_mode:
            ds.refresh()
        n = ds.shape[0]
    except HDF5_ERRORS as err:
        walk.add(err, ds.name, "chunk")
        return
    for a, b, detail in bad_chunks(ds, 0, n):
        words = ("filter", "checksum", "crc-32")
        kind = "checksum" if any(w in detail.lower() for w in words) else "chunk"
        walk.damage.append(Damage(kind, ds.name, detail, (a, b - 1)))


def _walk(group: h5py.Group, walk: _Walk) -> None:
    _check_attrs(group, walk)
    for _, obj in _members(group, walk):
        if isinstance(obj, h5py.Group):
            _walk(obj, walk)
        elif isinstance(obj, h5py.Dataset):
            _check_dataset(obj, walk)


def _state(path: Path, f: h5py.File, walk: _Walk) -> str:
    if walk.damage:
        return "damaged"
    if needs_recovery(path):
        return "live" if live_writer_pid(path) is not None else "unclosed"
    if L.RECOVERED_ATTR in f.attrs:
        return "recovered-from-kill"
    return "no checksums" if walk.unchecked else "intact"


def _checks(f: h5py.File, walk: _Walk) -> str:
    if walk.unchecked:
        return "none"
    return "Fletcher-32 + chunk CRC-32" if chunkcrc.has_tables(f) else "Fletcher-32"


def verify_file(path: str | Path) -> Verdict:
    """Read everything in ``path``; never raises for a damaged file (see :class:`Verdict`).

    Raises :class:`InputError` only for a missing file or one that is no HDF5 at all
    (no signature).
    """
    path = Path(path)
    try:
        f = open_hdf5(path)
    except DamagedFile as err:
        return Verdict(str(path), "damaged", (Damage(err.kind, err.location, err.detail),))
    walk = _Walk()
    try:
        try:
            fmt = f.attrs.get("format")
        except HDF5_ERRORS as err:
            walk.add(err, "/ attributes")
            fmt = L.FORMAT
        if (fmt.decode() if isinstance(fmt, bytes) else fmt) != L.FORMAT:
            raise InputError(f"not a cyclerflow cell file (format {fmt!r})", path=path)
        _walk(f, walk)
        state = _state(path, f, walk)
        checks = _checks(f, walk)
    finally:
        f.close()
    damage = tuple(dict.fromkeys(walk.damage))  # one line per place
    return Verdict(str(path), state, damage, walk.datasets, tuple(walk.unchecked), checks)


def cell_files(root: str | Path) -> list[Path]:
    """Every ``*.h5`` file under ``root`` (recursive; hidden names skipped), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("lab root is not a folder", path=root)
    return sorted(
        p
        for p in root.rglob("*.h5")
        if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)
    )
