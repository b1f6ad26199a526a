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

import h5py
import numpy as np
import xarray as xr

from cyclerflow import __version__
from cyclerflow.errors import InputError
from cyclerflow.store import chunkcrc, read_cycling, read_events, read_metadata, read_spectra
from cyclerflow.store.atomic import atomic_output
from cyclerflow.store.damage import HDF5_ERRORS, DamagedFile, classify, named_members


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
    count_gap_estimates: bool = False,
) -> tuple[dict, dict[str, xr.Dataset], list[str]]:
    """Run the cycling and EIS analyses on loaded data. Returns (json parts, datasets, warnings)."""
    from cyclerflow.cycling import analyze_cycling
    from cyclerflow.eis import analyze_spectra
    from cyclerflow.transport import hook as transport_hook

    warnings: list[str] = []
    out: dict[str, Any] = {"cycling": None, "eis": None, "transport": None}
    datasets: dict[str, xr.Dataset] = {}
    if cycling is not None and cycling.sizes.get("sample", 0) > 1:
        shared: dict[str, Any] = {}  # the transport analyses reuse the segmentation
        try:
            summary, per_cycle = analyze_cycling(
                cycling,
                meta,
                reference_cycle=reference_cycle,
                first_half=first_half,
                events=events,
                count_gap_estimates=count_gap_estimates,
                keep=shared,
            )
            out["cycling"] = summary
            datasets["cycling"] = per_cycle
        except InputError as err:
            # a GITT-only run or a storage test: no cycles, transport still analysed
            out["cycling"], out["transport"] = transport_hook.without_cycles(
                err, cycling, meta, has_spectra=bool(spectra)
            )
            warnings.append(f"cycling: {err.bare_message}")
        else:
            out["transport"] = transport_hook.transport_block(cycling, meta, per_cycle, shared)
            transport_hook.add_cycle_views(summary, per_cycle, shared, meta)
    elif reference_cycle is not None:
        raise InputError("--reference-cycle given but the file has no cycling data")
    transport_ds = transport_hook.results_dataset(out["transport"])
    if transport_ds is not None:
        datasets["transport"] = transport_ds
    if spectra:
        summary, per_spec = analyze_spectra(
            spectra, meta, circuit=circuit, arrhenius_convention=arrhenius_convention
        )
        out["eis"] = summary
        datasets["eis"] = per_spec
        from cyclerflow.eis.drt import drt_for_spectra  # DESIGN "eis.drt" list

        summary["drt"] = drt_for_spectra(spectra)
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
    count_gap_estimates: bool = False,
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
        count_gap_estimates=count_gap_estimates,
    )
    settings = {
        "reference_cycle": reference_cycle,
        "first_half": first_half,
        "circuit": circuit,
        "arrhenius_convention": arrhenius_convention,
        "count_gap_estimates": count_gap_estimates,
    }
    result = _clean(
        {
            "cell_id": None if meta is None else meta.cell_id,
            "software_version": __version__,
            "cycling": parts["cycling"],
            "eis": parts["eis"],
            "transport": parts.get("transport"),
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
    summary_json = json.dumps(result)
    root = xr.Dataset(
        attrs={
            # at most 8 root attributes (with netCDF's _NCProperties): HDF5 keeps them in
            # the checksummed object header; a 9th moves them to dense storage, where
            # damage can hang the reader (docs/reliability.md)
            "software_version": __version__,
            "input_file": str(input_path),
            "input_sha256": input_sha256,
            "settings_json": json.dumps(settings),
            "summary_json": summary_json,
            # netCDF attributes carry no checksum: this one guards the summary
            "summary_sha256": hashlib.sha256(summary_json.encode()).hexdigest(),
            "groups": ",".join(sorted(datasets)),
        }
    )
    import h5netcdf

    with atomic_output(out, force=force) as tmp:
        # libver="latest": object headers with checksums (damaged metadata is an error,
        # not a misread or a hang); Fletcher-32 on the data
        with h5netcdf.File(tmp, "w", libver="latest") as nc:
            root.dump_to_store(xr.backends.H5NetCDFStore(nc))
            for name, ds in datasets.items():
                store = xr.backends.H5NetCDFStore(nc, group=name)
                ds.dump_to_store(store, encoding=_checksummed(ds))
        _fixed_length_root_attrs(tmp)
    return Path(out)


def _fixed_length_root_attrs(path: Path) -> None:
    """Rewrite every text attribute as a fixed-length string: variable-length ones live in
    HDF5's global heap, which has no checksum (damage there can hang a reader);
    fixed-length ones live in the checksummed object header."""

    def fix(obj: h5py.HLObject) -> None:
        for key in list(obj.attrs):
            if key in _NETCDF_INTERNAL:
                continue
            value = obj.attrs[key]
            if isinstance(value, str):
                obj.attrs[key] = np.bytes_(value.encode("utf-8"))

    with h5py.File(path, "r+", libver="latest") as f:
        fix(f)
        f.visititems(lambda _, obj: fix(obj))
        f.visititems(_add_crc)


#: attribute of every chunked results-file variable: CRC-32 of its data as stored (Fletcher-32
#: cannot see a chunk zeroed together with its checksum)
RESULTS_CRC_ATTR = "cyclerflow_crc32"


def _add_crc(_: str, obj: h5py.HLObject) -> None:
    if isinstance(obj, h5py.Dataset) and obj.chunks is not None and obj.size:
        obj.attrs[RESULTS_CRC_ATTR] = np.uint32(chunkcrc.crc_of(obj[()], 0))


def _check_crc(d: h5py.Dataset, data: np.ndarray) -> None:
    """Raise :class:`DamagedFile` when ``data`` (read from ``d``) fails the variable's
    CRC-32 (files of older versions have none)."""
    want = d.attrs.get(RESULTS_CRC_ATTR)
    if want is not None and chunkcrc.crc_of(np.asarray(data), 0) != int(want):
        raise DamagedFile(
            d.file.filename, "checksum", d.name, "CRC-32 mismatch", what="results file"
        )


def _checksummed(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Encoding with the Fletcher-32 checksum on every non-empty variable; text variables
    as fixed-length character arrays (netCDF ``char``): a variable-length string lives in
    HDF5's global heap, which has no checksum (damage there can hang the reader)."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in ds.variables.items():
        if not (v.size and v.ndim):
            continue
        if v.dtype.kind in "fiucb":
            out[k] = {"fletcher32": True}
        elif v.dtype.kind in "OUS":
            out[k] = {"fletcher32": True, "dtype": "S1"}
    return out


def load_results(path: str | Path) -> tuple[dict, dict[str, xr.Dataset]]:
    """Read a results file: (summary JSON object, {"cycling": ds, "eis": ds}).

    Read with h5py and decoded with ``xr.decode_cf``: the same Datasets as
    ``xr.load_dataset(path, engine="h5netcdf", group=...)`` (a test checks), ~20x faster,
    which matters when a lab report loads hundreds of them.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("results file not found", path=path)
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _attr_value(f.attrs[k]) for k in f.attrs if k not in _NETCDF_INTERNAL}
            groups = [g for g in str(attrs.get("groups", "")).split(",") if g]
            datasets = {g: _read_netcdf_group(f, g) for g in groups}
        text = attrs["summary_json"]
        digest = attrs.get("summary_sha256")  # absent in files of older versions
        if digest is not None and hashlib.sha256(text.encode()).hexdigest() != digest:
            raise DamagedFile(
                path, "checksum", "summary_json", "SHA-256 mismatch", what="results file"
            )
        return json.loads(text), datasets
    except InputError:
        raise
    except HDF5_ERRORS as err:
        raise classify(err, path, "results", "metadata", what="results file") from None


def load_results_group(path: str | Path, group: str) -> xr.Dataset | None:
    """One group of a results file (e.g. ``"eis"``: the fit curves), None when it has
    none; without reading or checking the summary (see :func:`load_results`)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            return _read_netcdf_group(f, group) if group in f else None
    except HDF5_ERRORS as err:
        raise classify(err, path, "results", group, what="results file") from None


#: netCDF-4 bookkeeping attributes that are not the variable's own
_NETCDF_INTERNAL = {
    "_Netcdf4Coordinates",
    "_Netcdf4Dimid",
    "DIMENSION_LIST",
    "CLASS",
    "NAME",
    "REFERENCE_LIST",
    "_NCProperties",
}
_PHONY_DIMENSION = "This is a netCDF dimension but not a netCDF variable"


def _attr_value(v: Any) -> Any:
    """An HDF5 attribute as netCDF readers show it: text as str, one-element arrays as
    scalars."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.shape == (1,):
        return _attr_value(v[0])
    if isinstance(v, np.ndarray) and v.dtype.kind == "O":
        return np.array([_attr_value(x) for x in v.ravel()], dtype=object).reshape(v.shape)
    return v


def _dimension_name(f: h5py.File, ref: h5py.Reference) -> str:
    name = f[ref].name
    if name is None:  # KeyError: classified as damaged metadata by load_results
        raise KeyError("a dimension reference does not resolve")
    return name.rsplit("/", 1)[-1]


def _dim_names(g: h5py.Group) -> dict[int, str]:
    """Dimension id -> name of the dimension scales in ``g``."""
    out = {}
    for key in g:
        d = g[key]
        if isinstance(d, h5py.Dataset) and d.attrs.get("CLASS") == b"DIMENSION_SCALE":
            out[int(d.attrs["_Netcdf4Dimid"])] = key
    return out


def _read_netcdf_group(f: h5py.File, name: str) -> xr.Dataset:
    """One group of a netCDF-4 file written by xarray (h5netcdf), as a decoded Dataset."""
    g = f[name]
    variables: dict[str, xr.Variable] = {}
    dim_names = _dim_names(g)
    for key, d in named_members(g):
        if not isinstance(d, h5py.Dataset):
            continue
        if d.attrs.get("CLASS") == b"DIMENSION_SCALE":
            if _attr_value(d.attrs.get("NAME", b"")).startswith(_PHONY_DIMENSION):
                continue  # a dimension without a coordinate variable
            dims: tuple[str, ...] = (key,)
        elif "_Netcdf4Coordinates" in d.attrs and dim_names:
            # dimension ids (in the checksummed object header), not DIMENSION_LIST: its
            # references live in the global heap, which carries no checksum
            dims = tuple(dim_names[int(i)] for i in d.attrs["_Netcdf4Coordinates"])
        else:
            dims = tuple(_dimension_name(f, ref[0]) for ref in d.attrs["DIMENSION_LIST"])
        text = h5py.check_string_dtype(d.dtype)
        # variable-length text (older files) as str; fixed-length chars stay bytes for
        # decode_cf, which joins them and decodes _Encoding
        vlen = text is not None and text.length is None
        data = np.asarray(d.asstr()[()], dtype=object) if vlen else d[()]
        if not vlen:
            _check_crc(d, data)
        # internal attributes are not read: DIMENSION_LIST / REFERENCE_LIST are references
        # kept in the global heap, which has no checksum
        attrs = {a: _attr_value(d.attrs[a]) for a in d.attrs if a not in _NETCDF_INTERNAL}
        variables[key] = xr.Variable(dims, data, attrs)
    coords = {k: v for k, v in variables.items() if v.dims == (k,)}
    ds = xr.Dataset(
        {k: v for k, v in variables.items() if k not in coords},
        coords=coords,
        attrs={a: _attr_value(g.attrs[a]) for a in g.attrs if a not in _NETCDF_INTERNAL},
    )
    return xr.decode_cf(ds)
