"""One cell file -> the ``analyze`` JSON object and a ``<cell>.results.nc`` file.

Analysis results never go into the cell file (that would be a second writer); they
go to ``<cell>.results.nc`` (xarray, h5netcdf engine) with groups ``cycling`` and
``eis`` and provenance attributes on the root (software version, methods, settings,
SHA-256 of the input file). The JSON object is also stored there as ``summary_json``.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import xarray as xr

from cyclerflow import __version__
from cyclerflow.errors import InputError
from cyclerflow.store import read_cycling, read_events, read_metadata, read_spectra
from cyclerflow.store.atomic import atomic_output


def results_path(cell: str | Path) -> Path:
    """``W07.h5`` -> ``W07.results.nc`` beside it."""
    cell = Path(cell)
    return cell.with_name(cell.stem + ".results.nc")


def file_sha256(path: str | Path, *, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _clean(obj: Any) -> Any:
    """Make a structure JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            return obj
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def analyze_datasets(
    cycling: xr.Dataset | None,
    spectra: list[xr.Dataset],
    meta=None,
    *,
    reference_cycle: int | None = None,
    first_half: str | None = None,
    circuit: str | None = None,
    arrhenius_convention: str = "sigma_T",
    events: list[dict] | None = None,
) -> tuple[dict, dict[str, xr.Dataset], list[str]]:
    """Run the cycling and EIS analyses on loaded data. Returns (json parts, datasets, warnings)."""
    from cyclerflow.cycling import analyze_cycling
    from cyclerflow.eis import analyze_spectra

    warnings: list[str] = []
    out: dict[str, Any] = {"cycling": None, "eis": None}
    datasets: dict[str, xr.Dataset] = {}
    if cycling is not None and cycling.sizes.get("sample", 0) > 1:
        try:
            summary, per_cycle = analyze_cycling(
                cycling,
                meta,
                reference_cycle=reference_cycle,
                first_half=first_half,
                events=events,
            )
            out["cycling"] = summary
            datasets["cycling"] = per_cycle
        except InputError as err:
            if not spectra:
                raise
            warnings.append(f"cycling: {err.bare_message}")
    elif reference_cycle is not None:
        raise InputError("--reference-cycle given but the file has no cycling data")
    if spectra:
        summary, per_spec = analyze_spectra(
            spectra, meta, circuit=circuit, arrhenius_convention=arrhenius_convention
        )
        out["eis"] = summary
        datasets["eis"] = per_spec
    if out["cycling"] is None and out["eis"] is None and not warnings:
        warnings.append("no cycling rows and no spectra: nothing to analyse")
    return out, datasets, warnings


def analyze_cell(
    path: str | Path,
    *,
    out: str | Path | None = None,
    write_results: bool = True,
    reference_cycle: int | None = None,
    first_half: str | None = None,
    circuit: str | None = None,
    arrhenius_convention: str = "sigma_T",
    force: bool = True,
) -> dict:
    """Analyse one cell file; write ``<cell>.results.nc`` (or ``out``); return the JSON object."""
    path = Path(path)
    meta = read_metadata(path)
    cycling = read_cycling(path)
    spectra = read_spectra(path)
    parts, datasets, warnings = analyze_datasets(
        cycling,
        spectra,
        meta,
        reference_cycle=reference_cycle,
        first_half=first_half,
        circuit=circuit,
        arrhenius_convention=arrhenius_convention,
        events=read_events(path),
    )
    settings = {
        "reference_cycle": reference_cycle,
        "first_half": first_half,
        "circuit": circuit,
        "arrhenius_convention": arrhenius_convention,
    }
    result = _clean(
        {
            "cell_id": None if meta is None else meta.cell_id,
            "software_version": __version__,
            "cycling": parts["cycling"],
            "eis": parts["eis"],
        }
    )
    if warnings:
        result["warnings"] = warnings
    if write_results:
        digest = file_sha256(path)
        write_results_file(
            out or results_path(path),
            result,
            datasets,
            settings=settings,
            input_path=path,
            input_sha256=digest,
            force=force,
        )
    return result


def write_results_file(
    out: str | Path,
    result: dict,
    datasets: dict[str, xr.Dataset],
    *,
    settings: dict,
    input_path: str | Path,
    input_sha256: str,
    force: bool = True,
) -> Path:
    """Write the results file atomically: root attrs = provenance, one group per analysis."""
    root = xr.Dataset(
        attrs={
            "software": "cyclerflow",
            "software_version": __version__,
            "input_file": str(input_path),
            "input_sha256": input_sha256,
            "settings_json": json.dumps(settings),
            "summary_json": json.dumps(result),
            "groups": ",".join(sorted(datasets)),
        }
    )
    with atomic_output(out, force=force) as tmp:
        root.to_netcdf(tmp, engine="h5netcdf", mode="w")
        for name, ds in datasets.items():
            ds.to_netcdf(tmp, engine="h5netcdf", mode="a", group=name)
    return Path(out)


def load_results(path: str | Path) -> tuple[dict, dict[str, xr.Dataset]]:
    """Read a results file: (summary JSON object, {"cycling": ds, "eis": ds})."""
    path = Path(path)
    if not path.exists():
        raise InputError("results file not found", path=path)
    with xr.open_dataset(path, engine="h5netcdf") as root:
        attrs = dict(root.attrs)
    groups = [g for g in str(attrs.get("groups", "")).split(",") if g]
    datasets = {g: xr.load_dataset(path, engine="h5netcdf", group=g) for g in groups}
    return json.loads(attrs["summary_json"]), datasets
