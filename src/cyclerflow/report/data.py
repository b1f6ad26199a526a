"""Gather what a report shows about one cell: metadata, analysis, spectra, events, provenance.

The analysis comes from ``<cell>.results.nc`` when that file's ``input_sha256``
matches the cell file (reused), otherwise :func:`cyclerflow.analysis.analyze_cell`
runs and writes it (or, when the folder is read-only, runs without writing).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cyclerflow.errors import InputError
from cyclerflow.schema import CellMetadata
from cyclerflow.store import open_cell_file, read_events, read_metadata, read_spectra
from cyclerflow.store.damage import HDF5_ERRORS, members


@dataclass
class CellData:
    """Everything the report needs about one cell (plain data; build it yourself in tests)."""

    path: str
    metadata: CellMetadata | None
    summary: dict[str, Any] | None  # the `analyze --json` object (or None: analysis not available)
    spectra: list[dict[str, Any]] = field(default_factory=list)  # frequency_hertz, z, attrs
    events: list[dict[str, Any]] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(
        default_factory=list
    )  # voltage-capacity of selected cycles
    dqdv: list[dict[str, Any]] | None = (
        None  # dQ/dV of selected cycles (None: computed from curves)
    )
    timeline: dict[str, np.ndarray] | None = (
        None  # decimated test_time_second / voltage_volt / current_ampere
    )
    fits: dict[int, np.ndarray] = field(default_factory=dict)  # spectrum_id -> z_fit (complex, Ohm)
    provenance: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def cell_id(self) -> str:
        if self.metadata is not None:
            return self.metadata.cell_id
        if self.summary and self.summary.get("cell_id"):
            return str(self.summary["cell_id"])
        return Path(self.path).stem


def spectrum_dict(ds) -> dict[str, Any]:
    """A spectrum from :func:`cyclerflow.store.read_spectra` as plain arrays."""
    f = np.asarray(ds["frequency_hertz"].values, dtype="f8")
    z = np.asarray(ds["real_impedance_ohm"].values, dtype="f8") + 1j * np.asarray(
        ds["imaginary_impedance_ohm"].values, dtype="f8"
    )
    attrs = dict(ds.attrs)
    t = attrs.get("temperature_kelvin")
    c = attrs.get("cycle_count")
    return {
        "spectrum_id": int(attrs.get("spectrum_id", -1)),
        "frequency_hertz": f,
        "z": z,
        "temperature_kelvin": None if t is None or not np.isfinite(t) else float(t),
        "cycle": None if c is None or int(c) < 0 else int(c),
        "technique": attrs.get("technique"),
    }


def _results_attrs(path: Path) -> dict[str, Any]:
    """Root attributes of a results file; {} when it does not read (damaged, half
    written): the cell is then analysed again."""
    try:
        with h5py.File(path, "r") as f:
            return {
                k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                for k, v in f.attrs.items()
            }
    except HDF5_ERRORS:
        return {}


def cell_file_attrs(path: str | Path) -> dict[str, Any]:
    with open_cell_file(path) as f:
        return {
            k: (v.decode() if isinstance(v, bytes) else v)
            for k, v in f.attrs.items()
            if k != "format"
        }


def load_analysis(
    path: str | Path,
) -> tuple[dict | None, dict[str, Any], dict[str, Any], list[str]]:
    """(summary, datasets, provenance, warnings) for a cell: reuse an up-to-date results file or analyse."""
    from cyclerflow.analysis import file_sha256, load_results, results_path

    path = Path(path)
    digest = file_sha256(path)
    rp = results_path(path)
    prov: dict[str, Any] = {"input_file": str(path), "input_sha256": digest}
    attrs = _results_attrs(rp) if rp.exists() else {}
    if attrs.get("input_sha256") == digest and "summary_json" in attrs:
        prov.update(
            results_file=str(rp),
            results="reused (input hash matches)",
            settings=attrs.get("settings_json"),
            analysis_version=attrs.get("software_version"),
        )
        try:
            summary, datasets = load_results(rp)
            return summary, datasets, prov, list(summary.get("warnings", []))
        except InputError as err:  # a damaged results file: analyse the cell again
            prov.update(results_damaged=err.bare_message)
    try:
        from cyclerflow.analysis import analyze_cell
    except ImportError as err:  # pragma: no cover - analysis packages absent in this build
        return None, {}, prov, [f"analysis not available in this build ({err})"]
    datasets: dict[str, Any] = {}
    try:
        summary = analyze_cell(path, write_results=True, force=True)
        prov.update(results_file=str(rp), results="computed now")
        attrs = _results_attrs(rp)
        if attrs.get("input_sha256") == digest:
            _, datasets = load_results(rp)
    except ImportError as err:
        return None, {}, prov, [f"analysis not available in this build ({err})"]
    except InputError as err:  # data the analysis cannot use: report the raw data, say why
        return None, {}, prov, [f"analysis failed: {err.bare_message}"]
    except PermissionError:
        summary = analyze_cell(path, write_results=False)
        prov.update(results="computed now (folder not writable: results file not written)")
        attrs = {}
    prov.update(
        settings=attrs.get("settings_json"), analysis_version=summary.get("software_version")
    )
    return summary, datasets, prov, list(summary.get("warnings", []))


def fits_from_results(eis_ds, shown: list[dict[str, Any]]) -> dict[int, np.ndarray]:
    """Fit curves (complex Ohm) of the shown spectra from the results file's ``eis`` group."""
    if eis_ds is None or "fit_real_impedance_ohm" not in eis_ds or "spectrum" not in eis_ds.coords:
        return {}
    ids = [int(i) for i in eis_ds["spectrum"].values]
    out = {}
    for s in shown:
        if s["spectrum_id"] not in ids:
            continue
        k = ids.index(s["spectrum_id"])
        n = len(s["z"])
        zr = np.asarray(eis_ds["fit_real_impedance_ohm"].values[k], dtype="f8")[:n]
        zi = np.asarray(eis_ds["fit_imaginary_impedance_ohm"].values[k], dtype="f8")[:n]
        if len(zr) == n and np.isfinite(zr).any():
            out[s["spectrum_id"]] = zr + 1j * zi
    return out


def _fits(
    spectra: list[dict[str, Any]], per_spec: dict[int, dict]
) -> tuple[dict[int, np.ndarray], list[str]]:
    """Fit curves of the shown spectra (the circuit the analysis chose), when the fitter is present."""
    try:
        from cyclerflow.eis import fit_spectrum
    except ImportError:
        return {}, ["fit overlays not available (cyclerflow.eis.fit_spectrum missing)"]
    out: dict[int, np.ndarray] = {}
    notes: list[str] = []
    for s in spectra:
        info = per_spec.get(s["spectrum_id"], {})
        circuit = info.get("circuit")
        try:
            res = (
                fit_spectrum(s["frequency_hertz"], s["z"], circuit)
                if circuit
                else fit_spectrum(s["frequency_hertz"], s["z"])
            )
        except Exception as err:  # a fit failure must not stop the report
            notes.append(f"spectrum {s['spectrum_id']}: fit overlay failed ({err})")
            continue
        zf = getattr(res, "z_fit", None)
        if zf is not None and len(zf) == len(s["z"]):
            out[s["spectrum_id"]] = np.asarray(zf, dtype=complex)
    return out, notes


def select_spectra(spectra: list[dict[str, Any]], n: int = 6) -> list[dict[str, Any]]:
    """Up to ``n`` spectra to draw: one per temperature for a temperature series,
    otherwise spread evenly over the record (first and last included)."""
    if len(spectra) <= n:
        return list(spectra)
    temps = sorted(
        {round(s["temperature_kelvin"], 1) for s in spectra if s["temperature_kelvin"] is not None}
    )
    if len(temps) >= 2:
        wanted = [temps[int(round(k))] for k in np.linspace(0, len(temps) - 1, min(n, len(temps)))]
        picked = []
        for t in dict.fromkeys(wanted):
            picked.append(
                next(
                    s
                    for s in spectra
                    if s["temperature_kelvin"] is not None
                    and round(s["temperature_kelvin"], 1) == t
                )
            )
        return picked
    idx = np.unique(np.linspace(0, len(spectra) - 1, n).round().astype(int))
    return [spectra[i] for i in idx]


def read_timeline(path: str | Path, max_points: int = 3000) -> dict[str, np.ndarray] | None:
    """Voltage and current vs test time of the whole record, decimated (min/max per bucket)."""
    from cyclerflow.report.figures import decimate

    with open_cell_file(path) as f:
        cyc = f["cycling"]
        if any(c not in cyc for c in ("test_time_second", "voltage_volt", "current_ampere")):
            return None
        if f.swmr_mode:
            for d in members(cyc):
                d.refresh()
        n = min(cyc[c].shape[0] for c in ("test_time_second", "voltage_volt", "current_ampere"))
        if n < 2:
            return None
        t = cyc["test_time_second"][:n]
        v = cyc["voltage_volt"][:n]
        i = cyc["current_ampere"][:n]
    tv, vv = decimate(t, v, max_points)
    ti, ii = decimate(t, i, max_points)
    return {"t_v": tv, "voltage_volt": vv, "t_i": ti, "current_ampere": ii}


def _raw_parts(
    path: Path,
    summary: dict | None,
    eis_fits: Callable[[], Any],
    *,
    n_curves: int,
    n_spectra: int,
) -> tuple[list, list, list, dict[int, np.ndarray], list[str], str | None]:
    """What only the files hold: (spectra, voltage curves, dQ/dV, fit curves of the shown
    spectra, notes, curves method). ``eis_fits()`` gives the results file's ``eis``
    Dataset (fit curves) or None."""
    from cyclerflow.report.curves import curves_and_dqdv, select_cycles

    spectra = [spectrum_dict(ds) for ds in read_spectra(path)]
    curves: list[dict[str, Any]] = []
    dq: list[dict[str, Any]] = []
    method = None
    cyc = (summary or {}).get("cycling") or {}
    cycle_list = [
        r["cycle"] for r in cyc.get("cycles", []) if r.get("discharge_capacity_ah") is not None
    ]
    if cycle_list:
        curves, dq, method = curves_and_dqdv(
            path,
            select_cycles(cycle_list, n_curves, reference=cyc.get("reference_cycle")),
            first_half=cyc.get("first_half"),
        )
    shown = select_spectra(spectra, n_spectra)
    eis = (summary or {}).get("eis") or {}
    per_spec = {s["spectrum_id"]: s for s in eis.get("spectra", [])}
    fits = fits_from_results(eis_fits() if shown else None, shown)
    notes: list[str] = []
    missing = [s for s in shown if s["spectrum_id"] not in fits]
    if missing and eis:
        more, notes = _fits(missing, per_spec)
        fits.update(more)
    return spectra, curves, dq, fits, notes, method


def load_cell(
    path: str | Path, *, n_curves: int = 8, n_spectra: int = 6, timeline: bool = True
) -> CellData:
    """Read a cell file, analyse (or reuse results), and pick the cycles and spectra to draw."""
    path = Path(path)
    meta = read_metadata(path)
    summary, datasets, prov, warnings = load_analysis(path)
    prov["cell_file"] = cell_file_attrs(path)
    events = read_events(path)
    spectra, curves, dq, fits, notes, method = _raw_parts(
        path, summary, lambda: datasets.get("eis"), n_curves=n_curves, n_spectra=n_spectra
    )
    if method is not None:
        prov["curves_method"] = method
    return CellData(
        str(path),
        meta,
        summary,
        spectra=spectra,
        events=events,
        curves=curves,
        dqdv=dq,
        fits=fits,
        provenance=prov,
        warnings=warnings + notes,
        timeline=read_timeline(path) if timeline else None,
    )


def _indexed_provenance(cell: Any) -> dict[str, Any]:
    prov: dict[str, Any] = {"input_file": cell.path, "input_sha256": cell.sha256}
    prov.update(
        results_file=cell.results_path,
        results="from the lab database (cell and results files unchanged since indexed)",
        settings=None if cell.settings is None else json.dumps(cell.settings),
        analysis_version=cell.software_version,
    )
    return prov


def load_indexed_cell(
    cell: Any, *, n_curves: int = 8, n_spectra: int = 6, timeline: bool = True
) -> CellData:
    """A cell whose analysis the lab database holds (a current
    :class:`~cyclerflow.db.cellview.IndexedCell`): metadata, analysis, events and
    provenance from the database; only raw data (spectra, voltage curves, timeline), the
    cell file's own attributes and the fit curves (results file) are read from files."""
    from cyclerflow.analysis import load_results_group

    path = Path(cell.path)
    meta = CellMetadata.model_validate(cell.metadata) if cell.metadata else None
    prov = _indexed_provenance(cell)
    prov["cell_file"] = cell_file_attrs(path)
    rp = cell.results_path
    spectra, curves, dq, fits, notes, method = _raw_parts(
        path,
        cell.summary,
        lambda: None if rp is None else load_results_group(rp, "eis"),
        n_curves=n_curves,
        n_spectra=n_spectra,
    )
    if method is not None:
        prov["curves_method"] = method
    return CellData(
        str(path),
        meta,
        cell.summary,
        spectra=spectra,
        events=list(cell.events),
        curves=curves,
        dqdv=dq,
        fits=fits,
        provenance=prov,
        warnings=list(cell.summary.get("warnings", [])) + notes,
        timeline=read_timeline(path) if timeline else None,
    )
