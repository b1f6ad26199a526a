"""`cyclerflow drt SPECTRUM [--json]`: distribution of relaxation times (docs/eis-drt.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from cyclerflow.commands.eis import _datasets_from_file
from cyclerflow.errors import InputError


def _spectrum_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(ds["frequency_hertz"].values, dtype="f8")
    z = np.asarray(ds["real_impedance_ohm"].values, "f8") + 1j * np.asarray(
        ds["imaginary_impedance_ohm"].values, "f8"
    )
    return f, z


def _print_result(res, sid: int, console: Console) -> None:
    extra = ""
    if res.series_cpe_q is not None:
        extra = f", series CPE Q = {res.series_cpe_q:.4g}, n = {res.series_cpe_n:.3f}"
    console.print(
        f"spectrum {sid}: lambda = {res.lambda_:.3g} ({res.method}), R_inf = "
        f"{res.r_inf_ohm:.4g} Ω, R_pol = {res.r_polarisation_ohm:.4g} Ω{extra}, "
        f"residual {100 * res.residual_rms_relative:.2f} %"
    )
    t = Table()
    for name in ("tau/s", "f/Hz", "R/Ω", "share", "FWHM/dec", "arc"):
        t.add_column(name, justify="right")
    for p in res.peaks:
        fwhm = "-" if not math.isfinite(p.fwhm_decades) else f"{p.fwhm_decades:.2f}"
        arc = "yes" if p.significant and p.in_window else ("edge" if p.significant else "ripple")
        t.add_row(
            f"{p.tau_second:.4g}",
            f"{p.f_peak_hertz:.4g}",
            f"{p.r_ohm:.4g}",
            f"{p.share:.3f}",
            fwhm,
            arc,
        )
    console.print(t)
    for note in res.notes:
        console.print(f"[yellow]note: {note}")


def register(app: typer.Typer) -> None:
    @app.command("drt")
    def drt_cmd(
        spectrum: Path = typer.Argument(
            ..., help="Long-format EIS CSV, any supported EIS file, or a cell .h5."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        lam: float = typer.Option(
            None, "--lambda", help="Fixed regularisation parameter (default: chosen by GCV)."
        ),
        curve: bool = typer.Option(False, "--curve", help="JSON: include gamma(tau)."),
    ) -> None:
        """Distribution of relaxation times: Tikhonov on Gaussian RBFs, lambda by GCV."""
        from cyclerflow.eis.drt import compute_drt

        spectra, _ = _datasets_from_file(spectrum)
        if not spectra:
            raise InputError("no impedance spectra in the file", path=spectrum)
        results = []
        for i, ds in enumerate(spectra):
            sid = int(ds.attrs.get("spectrum_id", i + 1))
            f, z = _spectrum_arrays(ds)
            res = compute_drt(f, z, lam=lam, path=spectrum, where=f"spectrum {sid}")
            results.append((sid, res))
        if as_json:
            items = [{"spectrum_id": sid, **r.to_dict(curve=curve)} for sid, r in results]
            doc = items[0] if len(items) == 1 else {"spectra": items}
            typer.echo(json.dumps(doc, allow_nan=False))
            return
        console = Console()
        for sid, res in results:
            _print_result(res, sid, console)
