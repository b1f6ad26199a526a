"""Spectra streamed while a file is live: moved into ``/eis/<id>`` groups on close."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cyclerflow.schema import units_of
from cyclerflow.store import chunkcrc
from cyclerflow.store import layout as L
from cyclerflow.store.damage import read_rows
from cyclerflow.store.text import make_group, set_attrs


def write_spectrum_group(f: h5py.File, sid: int, fr, zr, zi, attrs: Mapping[str, Any]) -> None:
    g = make_group(f, L.spectrum_group_name(sid))
    for name, arr in (
        ("frequency_hertz", fr),
        ("real_impedance_ohm", zr),
        ("imaginary_impedance_ohm", zi),
    ):
        data = np.asarray(arr, dtype="f8")
        # chunked so that Fletcher-32 can checksum the points (it works per chunk)
        d = g.create_dataset(name, data=data, chunks=(max(1, len(data)),), fletcher32=True)
        set_attrs(d, {"units": units_of(name)})
        if chunkcrc.has_tables(f) and len(data):
            d.attrs[chunkcrc.ATTR] = chunkcrc.entries_of(data, len(data))
    set_attrs(
        g,
        {
            k: v if isinstance(v, (str, int, float, np.number)) else json.dumps(v)
            for k, v in attrs.items()
            if v is not None
        },
    )


def finalize_stream(path: str | Path) -> int:
    """Move spectra from the live stream table into /eis/<id> groups. Returns count."""
    with h5py.File(path, "a", libver="latest") as f:
        if L.EIS_STREAM not in f:
            return 0
        st = f[L.EIS_STREAM]
        # read through the chunk CRC check: a damaged stream is not moved into groups
        # with fresh checksums
        meta = read_rows(st["spectra"], 0, st["spectra"].shape[0], path)
        cols = {
            n: read_rows(st[n], 0, st[n].shape[0], path)
            for n in ("frequency_hertz", "real_impedance_ohm", "imaginary_impedance_ohm")
        }
        moved = 0
        for row in meta:
            sid = int(row["spectrum_id"])
            if L.spectrum_group_name(sid) in f:
                continue
            sl = slice(int(row["start_row"]), int(row["start_row"]) + int(row["n_points"]))
            if sl.stop > len(cols["frequency_hertz"]):
                continue  # torn spectrum from a killed writer: points never flushed
            attrs = {
                k: row[k].item()
                for k in (
                    "unix_time_second",
                    "cycle_count",
                    "temperature_kelvin",
                    "amplitude",
                    "dc_level",
                )
            }
            attrs["technique"] = row["technique"].decode()
            write_spectrum_group(
                f,
                sid,
                cols["frequency_hertz"][sl],
                cols["real_impedance_ohm"][sl],
                cols["imaginary_impedance_ohm"][sl],
                attrs,
            )
            moved += 1
        for name in list(st):
            table = chunkcrc.table_name(f"{st.name}/{name}")
            if table in f:
                del f[table]
        del f[L.EIS_STREAM]
    return moved
