"""`cyclerflow fit-eis SPECTRUM [--circuit STR] [--json] [--fix NAME=V] [--bounds NAME=LO:HI] [--global]`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cyclerflow.errors import InputError
from cyclerflow.numfmt import fmt_number


def _datasets_from_file(path: Path):
    """(spectra as xr.Datasets, CellMetadata or None) from a cell file or any EIS file."""
    import xarray as xr

    if not path.exists():
        raise InputError("input file not found", path=path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        from cyclerflow.store import read_metadata, read_spectra

        return read_spectra(path), read_metadata(path)
    from cyclerflow.importers import read_any

    data = read_any(path)
    out = []
    for i, sp in enumerate(data.get("spectra", [])):
        attrs = {
            "spectrum_id": int(sp.get("spectrum_id", i + 1)),
            "temperature_kelvin": float(sp.get("temperature_kelvin", np.nan)),
            "cycle_count": int(sp.get("cycle_count", -1)),
            "unix_time_second": float(sp.get("unix_time_second", np.nan)),
        }
        out.append(
            xr.Dataset(
                {
                    "real_impedance_ohm": (
                        "frequency_hertz",
                        np.asarray(sp["real_impedance_ohm"], "f8"),
                    ),
                    "imaginary_impedance_ohm": (
                        "frequency_hertz",
                        np.asarray(sp["imaginary_impedance_ohm"], "f8"),
                    ),
                },
                coords={"frequency_hertz": np.asarray(sp["frequency_hertz"], "f8")},
                attrs=attrs,
            )
        )
    return out, None


def print_eis(summary: dict, console: Console, title: str) -> None:
    rows = summary["spectra"]
    cols: list[tuple[str, object]] = [("id", lambda s: str(s["spectrum_id"]))]
    if any(s["temperature_kelvin"] is not None for s in rows):
        cols.append(("T/K", lambda s: fmt_number(s["temperature_kelvin"], ".1f")))
    if any(s["cycle"] is not None for s in rows):
        cols.append(("cycle", lambda s: "-" if s["cycle"] is None else str(s["cycle"])))
    cols += [
        ("model", lambda s: s.get("model") or "-"),
        ("roles", lambda s: _roles(s)),
        ("method", lambda s: s["method"] or "-"),
        ("R_bulk/Ω", lambda s: fmt_number(s["r_bulk_ohm"])),
    ]
    if any(s["r_interface_ohm"] is not None for s in rows):
        cols.append(("R_int/Ω", lambda s: fmt_number(s["r_interface_ohm"])))
    if any(s["conductivity_s_per_cm"] is not None for s in rows):
        cols.append(("σ/(S/cm)", lambda s: fmt_number(s["conductivity_s_per_cm"], ".3e")))
    cols += [
        ("χ²", lambda s: fmt_number(s["chi2"], ".2e")),
        ("KK", lambda s: fmt_number(s["kk_residual_max"], ".3f")),
        ("ok", lambda s: "yes" if s["fit_ok"] else "[red]no"),
    ]
    t = Table(title=title)
    for name, _ in cols:
        t.add_column(name, justify="right", no_wrap=True)
    for s in rows:
        t.add_row(*(fn(s) for _, fn in cols))
    console.print(t)
    for s in summary["spectra"]:
        head = f"spectrum {s['spectrum_id']}: "
        if s.get("circuit"):
            head += f"{s['circuit']} [{s['model_selection']}]"
        console.print(escape(head + ("" if s["message"] == "ok" else f" {s['message']}")))
    _print_results(summary, console)


def _print_results(summary: dict, console: Console) -> None:
    """Arrhenius, global fit, interface growth and the notes under the table."""
    arr = summary.get("arrhenius")
    if arr:
        console.print(
            f"Arrhenius ({arr['convention']}, {arr['n_points']} points): Ea = {arr['activation_energy_ev']:.4f} "
            f"± {fmt_number(arr['activation_energy_stderr_ev'], '.4f')} eV, σ(25 °C) = "
            f"{fmt_number(arr['conductivity_25c_s_per_cm'], '.3e')} S/cm"
        )
    _print_global(summary.get("global_fit"), console)
    g = summary.get("interface_growth")
    if g:
        console.print(
            f"interfacial resistance growth: {g['interface_growth_ohm_per_cycle']:.4g} Ω/cycle"
        )
    if summary.get("conductivity_note"):
        console.print(f"[yellow]{summary['conductivity_note']}")
    if summary.get("arrhenius_note"):
        console.print(f"[yellow]Arrhenius fit not done: {summary['arrhenius_note']}")


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a number") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise InputError(f"{what}: {text!r} is not a finite number")
    return v


def parse_fix(items: list[str]) -> dict[str, float]:
    """``["CPE1_1=0.9", ...]`` -> {name: value}; InputError naming the bad item."""
    out = {}
    for it in items:
        name, sep, val = it.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--fix {it!r}: expected NAME=VALUE (e.g. CPE1_1=0.9)")
        out[name.strip()] = _number(val.strip(), f"--fix {name.strip()}")
    return out


def parse_bounds(items: list[str]) -> dict[str, tuple[float, float]]:
    """``["R1=0:1e6", ...]`` -> {name: (lo, hi)}; InputError naming the bad item."""
    out = {}
    for it in items:
        name, sep, rng = it.partition("=")
        lo, colon, hi = rng.partition(":")
        if not sep or not colon or not name.strip():
            raise InputError(f"--bounds {it!r}: expected NAME=LO:HI (e.g. R1=0:1e6)")
        a = _number(lo.strip(), f"--bounds {name.strip()} lower")
        b = _number(hi.strip(), f"--bounds {name.strip()} upper")
        if not a < b:
            raise InputError(f"--bounds {name.strip()}: lower {a:g} is not below upper {b:g}")
        out[name.strip()] = (a, b)
    return out


def _roles(row: dict) -> str:
    ev = row.get("role_evidence")
    if not ev:
        return "-"
    short = {"bulk": "b", "grain_boundary": "gb", "interface": "int", "electrode": "el"}
    return "/".join(short.get(a["role"], a["role"] or "?") for a in ev["arcs"])


def _print_global(g: dict | None, console: Console) -> None:
    if not g:
        return
    if "note" in g:
        console.print(f"[yellow]global fit not done: {g['note']}")
        return
    shared = ", ".join(f"{k} = {v:.4g}" for k, v in g["shared"].items()) or "nothing shared"
    console.print(
        escape(
            f"global fit {g['circuit']} over {len(g['per_temperature'])} spectra: {shared}; "
            f"chi2 {g['chi2']:.3g}, {g['seconds']:.2f} s"
        )
    )
    arr = g.get("arrhenius")
    if arr:
        console.print(f"  global Arrhenius: Ea = {arr['activation_energy_ev']:.4f} eV")


def register(app: typer.Typer) -> None:
    @app.command("fit-eis")
    def fit_eis_cmd(
        spectrum: Path = typer.Argument(
            ..., help="Long-format EIS CSV, any supported EIS file, or a cell .h5."
        ),
        circuit: str = typer.Option(
            None,
            "--circuit",
            help="impedance.py circuit string or model name (blocking, cell, ...); default: auto.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the JSON 'eis' object."),
        cell: Path = typer.Option(
            None, "--cell", help="Cell metadata (YAML/JSON) for conductivity and Ω·cm²."
        ),
        convention: str = typer.Option(
            "sigma_T", "--arrhenius", help="sigma_T (default) or sigma."
        ),
        weighting: str = typer.Option(
            "modulus", "--weighting", help="modulus, proportional or unit."
        ),
        fix: list[str] = typer.Option(
            None, "--fix", help="Hold a parameter: NAME=VALUE (CPE1_1=0.9); repeatable."
        ),
        bounds: list[str] = typer.Option(
            None, "--bounds", help="Bound a parameter: NAME=LO:HI (R1=0:1e6); repeatable."
        ),
        global_: bool = typer.Option(
            False,
            "--global",
            help="Also fit the series globally (arc C and n shared where an F-test allows).",
        ),
        global_q: bool = typer.Option(
            False, "--global-share-q", help="With --global: share the CPE Q values too."
        ),
    ) -> None:
        """Fit equivalent circuits to impedance spectra; conductivity and Arrhenius if possible."""
        from cyclerflow.eis import analyze_spectra

        fixed, bnds = parse_fix(fix or []), parse_bounds(bounds or [])
        spectra, meta = _datasets_from_file(spectrum)
        if cell is not None:
            from cyclerflow.schema import load_metadata

            meta, _ = load_metadata(cell)
        if not spectra:
            raise InputError("no impedance spectra in the file", path=spectrum)
        try:
            summary, _ = analyze_spectra(
                spectra,
                meta,
                circuit=circuit,
                arrhenius_convention=convention,
                weighting=weighting,
                fixed=fixed,
                bounds=bnds,
                global_fit=("q" if global_q else True) if global_ else False,
            )
        except InputError as err:
            raise InputError(err.bare_message, path=spectrum) from None
        errors = [s for s in summary["spectra"] if "input_error" in (s.get("flags") or [])]
        if errors and len(errors) == len(summary["spectra"]):
            first = errors[0]
            raise InputError(
                first["message"], path=spectrum, where=f"spectrum {first['spectrum_id']}"
            )
        if as_json:
            typer.echo(json.dumps(summary, allow_nan=False))
        else:
            print_eis(summary, Console(), str(spectrum))
