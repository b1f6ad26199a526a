"""Text files in an encoding or line-end style no reader expects, read as plain text.

Two re-saves turn a vendor text export into bytes that none of the readers take, though
the text is the same:

- **UTF-16** ("Unicode text" from a spreadsheet, Notepad's "Unicode"): two bytes per
  character after a byte-order mark ``FF FE`` (little-endian) or ``FE FF`` (big-endian);
- **lone CR line ends** (classic Mac OS, some instrument software): no LF anywhere.

Such a file is copied, once, to a temporary file of the same name as UTF-8 with LF line
ends; the readers read the copy, and errors, warnings and the ``source`` name the
original. Line numbers are the same in both. Everything else is read in place.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cyclerflow.errors import InputError

UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}


@dataclass(frozen=True)
class Copy:
    """A file read through a plain-text copy: ``original`` and ``copy`` paths and what
    was changed (``why``, for the warning)."""

    original: Path
    copy: Path
    why: str


def _kind(path: Path) -> str | None:
    """``utf-16-le``/``utf-16-be``, ``cr`` or None (read in place) from the first 4 KiB."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None  # the reader names the problem
    for bom, codec in UTF16_BOMS.items():
        if head.startswith(bom):
            return codec
    if b"\n" not in head and head.count(b"\r") >= 2 and b"\0" not in head:
        return "cr"
    return None


def _plain(path: Path, kind: str) -> tuple[bytes, str]:
    """(UTF-8 bytes with LF line ends, what was changed) of a file of ``kind``."""
    raw = path.read_bytes()
    if kind == "cr":
        return raw.replace(b"\r", b"\n"), "its line ends are lone CRs: read with LF line ends"
    try:
        text = raw[2:].decode(kind)
    except UnicodeDecodeError as err:
        raise InputError(
            f"starts with a UTF-16 byte-order mark but is not UTF-16 text ({err.reason})",
            path=path,
            where=f"byte {err.start + 2}",
        ) from None
    if "\n" not in text:  # lone CRs as well
        text = text.replace("\r", "\n")
    return text.encode("utf-8"), f"it is {kind.upper()} text: read as UTF-8"


@contextmanager
def plain_text(paths: Sequence[str | Path]) -> Iterator[tuple[list[Path], list[Copy]]]:
    """(paths to read, the copies made) for ``paths``; the copies are removed on exit,
    and an :class:`InputError` raised inside names the original file."""
    with tempfile.TemporaryDirectory(prefix="cyclerflow-text-") as tmp:
        read: list[Path] = []
        copies: list[Copy] = []
        for p in map(Path, paths):
            kind = _kind(p) if p.is_file() else None
            if kind is None:
                read.append(p)
                continue
            data, why = _plain(p, kind)
            dest = Path(tmp) / str(len(copies)) / p.name  # the name kept (temperatures, parts)
            dest.parent.mkdir()
            dest.write_bytes(data)
            read.append(dest)
            copies.append(Copy(p, dest, why))
        try:
            yield read, copies
        except InputError as err:
            raise renamed(err, copies) from None


def renamed(err: InputError, copies: Sequence[Copy]) -> InputError:
    """``err`` with every copy's path replaced by its original's."""
    if not copies:
        return err
    message, path = err.bare_message, err.path
    for c in copies:
        message = message.replace(str(c.copy), str(c.original))
        if path == str(c.copy):
            path = str(c.original)
    return InputError(message, path=path, where=err.where)


def original_of(path: Path, copies: Sequence[Copy]) -> Path:
    """The file the user named for ``path`` (a copy's original, or ``path`` itself)."""
    return next((c.original for c in copies if c.copy == path), path)
