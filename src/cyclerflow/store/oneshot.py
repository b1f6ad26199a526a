"""Write a whole cell file at once (importers, demo), atomically."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.schema import CellMetadata
from cyclerflow.store import layout as L
from cyclerflow.store.atomic import atomic_output
from cyclerflow.store.text import set_attrs
from cyclerflow.store.writer import create_cell


def _refuse_nul(path: str | Path, **texts: str | None) -> None:
    """HDF5 strings end at a NUL byte: text holding one comes from a damaged file."""
    for key, text in texts.items():
        if text is not None and "\x00" in text:
            raise InputError(f"{key} text holds a NUL byte (a damaged or binary file?)", path=path)


def write_cell(
    path: str | Path,
    metadata: CellMetadata | None,
    *,
    cycling: Mapping[str, Any] | None = None,
    spectra: Iterable[Mapping[str, Any]] = (),
    events: Iterable[Mapping[str, Any]] = (),
    metadata_text: str | None = None,
    protocol: str | None = None,
    units: Mapping[str, str] | None = None,
    source_header: str | None = None,
    force: bool = False,
    column_attrs: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write a closed cell file in one go, to a temporary name renamed at the end.

    ``cycling``: column -> array (BDF names; unknown columns need ``units``).
    ``spectra``: dicts with ``frequency_hertz``, ``real_impedance_ohm``,
    ``imaginary_impedance_ohm`` and optional attributes.
    ``source_header``: vendor header text kept as ``/cell`` attribute ``source_header``.
    ``column_attrs``: extra attributes per cycling column (e.g. ``sampling``).
    """
    _refuse_nul(path, source_header=source_header, metadata_text=metadata_text, protocol=protocol)
    cycling = dict(cycling or {})
    columns = list(cycling) or ["test_time_second", "voltage_volt", "current_ampere"]
    n_rows = max((len(np.atleast_1d(v)) for v in cycling.values()), default=0)
    with atomic_output(path, force=force) as tmp:
        w = create_cell(
            tmp,
            metadata,
            metadata_text=metadata_text,
            protocol=protocol,
            columns=columns,
            units=units,
            swmr=False,
            chunk_rows=L.chunk_rows_for(n_rows),
            column_attrs=column_attrs,
        )
        try:
            if source_header is not None:
                set_attrs(w._f["cell"], {"source_header": source_header}, path)
            if cycling:
                w.append_cycling({k: np.asarray(v) for k, v in cycling.items()})
            for sp in spectra:
                sp = dict(sp)
                w.append_spectrum(
                    sp.pop("frequency_hertz"),
                    sp.pop("real_impedance_ohm"),
                    sp.pop("imaginary_impedance_ohm"),
                    **sp,
                )
            for ev in events:
                ev = dict(ev)
                w.add_event(ev.pop("kind"), ev.pop("message", ""), flush=False, **ev)
        finally:
            w.close()
    return Path(path)
