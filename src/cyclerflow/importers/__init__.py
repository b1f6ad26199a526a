"""Vendor and neutral files -> cell store. One module per format.

Every importer module defines:

- ``FORMAT``: short name (``"bdf-csv"``, ``"biologic-mpr"`` ...)
- ``EXTENSIONS``: lower-case suffixes it usually has (a hint, not a rule)
- ``sniff(path, head: bytes) -> bool``: cheap content check on the first 4 KiB
- ``read(path) -> Imported``: the data, in BDF names and SI units, current > 0 when
  charging, imaginary impedance signed (negative = capacitive)

:func:`detect` picks the module by content; :func:`import_files` merges several files
(in the order given) into one cell file, atomically.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from cyclerflow.errors import InputError
from cyclerflow.importers.common import Imported, merge_imports
from cyclerflow.importers.guarded import check_imported
from cyclerflow.importers.textfmt import BOM
from cyclerflow.importers.transcode import Copy, original_of, plain_text

#: modules tried in this order by :func:`detect` (more specific formats first)
IMPORTER_MODULES: list[str] = [
    "cyclerflow.importers.biologic_mpr",
    "cyclerflow.importers.biologic_mpt",
    "cyclerflow.importers.gamry_dta",
    "cyclerflow.importers.neware_ndax",
    "cyclerflow.importers.neware_csv",
    "cyclerflow.importers.neware_xlsx",
    "cyclerflow.importers.arbin",
    "cyclerflow.importers.maccor",
    "cyclerflow.importers.zplot",
    "cyclerflow.importers.eis_text",
    "cyclerflow.importers.eis_csv",
    "cyclerflow.importers.bdf_csv",
    "cyclerflow.importers.bdf_parquet",
]


def available_importers() -> list[ModuleType]:
    """Importer modules present in this build, in detection order."""
    mods = []
    for name in IMPORTER_MODULES:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
    return mods


def _sniff(mod: ModuleType, path: Path, head: bytes) -> tuple[bool, str]:
    """(accepted, why not) of one module's content check."""
    try:
        ok = bool(mod.sniff(path, head))
    except InputError as err:
        return False, err.bare_message
    if ok:
        return True, ""
    sig = getattr(mod, "SIGNATURE", None)
    if sig is None:
        doc = (mod.sniff.__doc__ or "").strip().split("\n")[0].rstrip(".")
        return False, f"its content check ({doc}) did not match"
    return False, f"expected {sig}"


def detect(path: str | Path) -> ModuleType:
    """The importer module for ``path``, chosen by content (extension as a tie-break).

    When nothing fits, the error names every reader tried and why each rejected the file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("input file not found", path=path)
    if path.stat().st_size == 0:
        raise InputError("file is empty", path=path)
    with open(path, "rb") as fh:
        head = fh.read(4096 + len(BOM))  # 4 KiB after an editor's byte-order mark
    head = head[len(BOM) :] if head.startswith(BOM) else head[:4096]
    mods = available_importers()
    verdicts = [(m, *_sniff(m, path, head)) for m in mods]
    hits = [m for m, ok, _ in verdicts if ok]
    if not hits and path.suffix.lower() in (".csv", ".txt", ".tsv"):
        # a table nobody recognises: read it as the neutral BDF CSV, whose errors
        # say which column is missing and what the header reads
        hits = [m for m in mods if m.FORMAT == "bdf-csv"]
    if not hits:
        why = "; ".join(f"{m.FORMAT}: {reason}" for m, _, reason in verdicts)
        raise InputError(f"unknown file format (tried {len(mods)} readers: {why})", path=path)
    by_ext = [m for m in hits if path.suffix.lower() in getattr(m, "EXTENSIONS", ())]
    return (by_ext or hits)[0]


def _unrecognised(path: Path, err: InputError) -> InputError:
    """The BDF CSV reader's error on a table it was given because no reader recognised
    it (see :func:`detect`), followed by what each of the other readers expected."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    others = [m for m in available_importers() if m.FORMAT != "bdf-csv"]
    why = "; ".join(
        f"{m.FORMAT}: {reason}" for m in others for ok, reason in [_sniff(m, path, head)] if not ok
    )
    return InputError(
        f"{err.bare_message} (no other reader recognised the file either: {why})",
        path=err.path or path,
        where=err.where,
    )


def _module_for(path: str | Path, fmt: str | None) -> ModuleType:
    if fmt is None:
        return detect(path)
    mods = {m.FORMAT: m for m in available_importers()}
    if fmt not in mods:
        raise InputError(f"unknown format {fmt!r} (known: {', '.join(sorted(mods))})")
    if not Path(path).exists():
        raise InputError("input file not found", path=path)
    return mods[fmt]


def read_any(path: str | Path, fmt: str | None = None) -> Imported:
    """Read one file with the named format, or the detected one (UTF-16 text and lone-CR
    line ends through a plain-text copy, see :mod:`~cyclerflow.importers.transcode`)."""
    with plain_text([path]) as ((readable,), copies):
        return _read_with(_module_for(readable, fmt), readable, fmt, copies)


def _read_with(
    mod: ModuleType, path: Path, fmt: str | None, copies: Sequence[Copy] = ()
) -> Imported:
    """``mod.read(path)`` with its format and source noted and the result checked
    (``copies``: plain-text copies read in place of the user's files)."""
    try:
        data = mod.read(path)
    except InputError as err:
        if fmt is None and mod.FORMAT == "bdf-csv":
            raise _unrecognised(path, err) from err
        raise
    data.setdefault("format", mod.FORMAT)
    data["source"] = str(original_of(Path(data.get("source", path)), copies))
    for c in copies:
        if c.copy == path:
            data.setdefault("warnings", []).insert(0, c.why)
    check_imported(data, path)
    return data


def _printable(text: str | None) -> str | None:
    """Header text as HDF5 can store it (a NUL byte in a vendor header is shown as ``\\0``)."""
    return None if text is None else text.replace("\x00", "\\0")


def import_files(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    metadata_path: str | Path | None = None,
    fmt: str | None = None,
    force: bool = False,
    progress=None,
    warn=None,
) -> Path:
    """Import one or more files into one cell file (temporary name, renamed at the end)."""
    from cyclerflow.schema import load_metadata, metadata_warnings
    from cyclerflow.store import write_cell
    from cyclerflow.store.atomic import check_output_path

    check_output_path(out, force=force)
    meta, meta_text = (None, None)
    if metadata_path is not None:
        meta, meta_text = load_metadata(metadata_path)
        if warn is not None:
            for w in metadata_warnings(meta):
                warn(f"{metadata_path}: {w}")
    if not sources:
        raise InputError("no input files given")
    with plain_text(sources) as (readable, copies):
        merged = _read_all(readable, fmt, copies, progress)
    if warn is not None:
        for w in merged.get("warnings", []):
            warn(w)
    return write_cell(
        out,
        meta,
        cycling=merged["cycling"],
        spectra=merged["spectra"],
        events=merged.get("events", []),
        metadata_text=meta_text,
        units=merged.get("units"),
        source_header=_printable(merged.get("header")),
        column_attrs=merged.get("column_attrs"),
        force=force,
    )


def _read_all(
    sources: Sequence[Path], fmt: str | None, copies: Sequence[Copy], progress
) -> Imported:
    """The files of one cell, read and merged in the order given."""
    mods = [_module_for(src, fmt) for src in sources]
    if len(sources) > 1 and all(m is mods[0] for m in mods) and hasattr(mods[0], "read_many"):
        # formats that split one test over several files (Maccor .001/.002) join themselves
        merged = mods[0].read_many([Path(s) for s in sources])
        merged.setdefault("warnings", [])[:0] = [f"{c.original}: {c.why}" for c in copies]
        check_imported(merged, sources[0])
        if progress is not None:
            for _ in sources:
                progress()
    else:
        parts = []
        for src, mod in zip(sources, mods, strict=True):
            parts.append(_read_with(mod, Path(src), fmt, copies))
            if progress is not None:
                progress()
        merged = merge_imports(parts)
    return merged
