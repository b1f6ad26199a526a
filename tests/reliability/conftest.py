"""Cell files with one kind of damage each, built in the test from a good file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from cyclerflow.schema import parse_metadata
from cyclerflow.store import create_cell
from cyclerflow.synthetic import galvanostatic_cycles, rc_spectrum


def meta(cell_id: str) -> dict:
    return {
        "cell_id": cell_id,
        "wafer": "W01",
        "die": "D01",
        "active_area_cm2": 0.25,
        "nominal_capacity_uah": 15.0,
    }


def good_cell(path: Path, cell_id: str = "C1", n_cycles: int = 12) -> Path:
    """A closed cell file: cycling (several 1,024-row chunks), events, two spectra."""
    cyc = galvanostatic_cycles(
        n_cycles=n_cycles, capacity_ah=15e-6, current_a=7.5e-6, points_per_half=200
    )
    f = np.logspace(5, -1, 30)
    spectra = []
    for k in (1, 2):
        z = rc_spectrum(f, r_bulk_ohm=1e4 * k)
        spectra.append(
            {
                "frequency_hertz": f,
                "real_impedance_ohm": z.real,
                "imaginary_impedance_ohm": z.imag,
                "temperature_kelvin": 298.15,
            }
        )
    events = [{"kind": "note", "message": f"event {i}", "step": i} for i in range(300)]
    path.parent.mkdir(parents=True, exist_ok=True)
    # 1,024-row chunks (as a live file has 4,096): damage in one chunk spares the others
    w = create_cell(
        path,
        parse_metadata(meta(cell_id)),
        columns=list(cyc),
        swmr=False,
        chunk_rows=1024,
    )
    with w:
        w.append_cycling(cyc)
        for sp in spectra:
            sp = dict(sp)
            w.append_spectrum(
                sp.pop("frequency_hertz"),
                sp.pop("real_impedance_ohm"),
                sp.pop("imaginary_impedance_ohm"),
                **sp,
            )
        for ev in events:
            w.add_event(ev["kind"], ev["message"], step=ev["step"], flush=False)
    return path


def chunk_offset(path: Path, dataset: str, index: int) -> tuple[int, int, int]:
    """(byte offset, stored size, first row) of chunk ``index`` of ``dataset``."""
    with h5py.File(path, "r") as f:
        d = f[dataset]
        info = d.id.get_chunk_info(index)
        return info.byte_offset, info.size, info.chunk_offset[0]


def object_header(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return h5py.h5o.get_info(f[name].id).addr


def edit(path: Path, out: Path, fn: Callable[[bytearray], bytes | bytearray]) -> Path:
    out.write_bytes(bytes(fn(bytearray(path.read_bytes()))))
    return out


def flip(offset: int) -> Callable[[bytearray], bytearray]:
    def f(b: bytearray) -> bytearray:
        b[offset] ^= 0x5A
        return b

    return f


def zero(offset: int, n: int) -> Callable[[bytearray], bytearray]:
    def f(b: bytearray) -> bytearray:
        b[offset : offset + n] = bytes(n)
        return b

    return f


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for tests: chunk_offset, object_header, edit, flip, zero, good_cell."""
    return SimpleNamespace(
        chunk_offset=chunk_offset,
        object_header=object_header,
        edit=edit,
        flip=flip,
        zero=zero,
        good_cell=good_cell,
    )


@pytest.fixture
def good(tmp_path) -> Path:
    return good_cell(tmp_path / "good" / "C1.h5")


@pytest.fixture
def damaged(tmp_path, good) -> Callable[[str], Path]:
    """damaged(kind) -> a copy of the good file with that damage."""

    def make(kind: str) -> Path:
        out = tmp_path / f"{kind}.h5"
        if kind == "not_hdf5":
            out.write_text("time,voltage\n0,3.7\n")
            return out
        if kind == "superblock":  # the HDF5 signature followed by garbage
            rng = np.random.default_rng(1)
            return edit(good, out, lambda b: b[:8] + rng.bytes(4000))
        if kind == "truncated":
            return edit(good, out, lambda b: b[: len(b) // 2])
        if kind == "metadata":  # the /cycling group's object header zeroed
            return edit(good, out, zero(object_header(good, "cycling"), 64))
        if kind == "chunk":  # a data byte of the 3rd chunk of voltage flipped
            off, size, _ = chunk_offset(good, "cycling/voltage_volt", 2)
            return edit(good, out, flip(off + size // 2))
        if kind == "events":
            off, size, _ = chunk_offset(good, "events", 1)
            return edit(good, out, flip(off + 10))
        if kind == "spectrum":
            off, size, _ = chunk_offset(good, "eis/00000002/real_impedance_ohm", 0)
            return edit(good, out, flip(off + 3))
        raise ValueError(kind)

    return make
