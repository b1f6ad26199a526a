"""`cyclerflow analyze CELL.h5 [--reference-cycle N] [--json] [-o RESULTS.nc]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cyclerflow.numfmt import fmt_number


def _cycling_table(cyc: dict) -> Table:
    """Per-cycle table (first 10 and last 9 cycles of long records); incomplete cycles
    say why in the last column."""
    t = Table(
        title=f"cycling (reference cycle {cyc.get('reference_cycle')}, "
        f"fade {fmt_number(cyc.get('fade_rate_per_cycle'), '.3e')}/cycle)"
    )
    for c in ("cycle", "charge µAh", "discharge µAh", "CE", "retention", "µAh/cm²"):
        t.add_column(c, justify="right")
    t.add_column("incomplete", min_width=13, no_wrap=True)
    rows = cyc.get("cycles", [])
    shown = rows if len(rows) <= 20 else rows[:10] + [None] + rows[-9:]
    for r in shown:
        if r is None:
            t.add_row("…", "", "", "", "", "", "")
            continue
        note = "" if r.get("complete", True) else str(r.get("incomplete_reason"))
        if r.get("estimated_charge_ah"):
            note = "(gap estimated)"
        t.add_row(
            str(r["cycle"]),
            fmt_number(r["charge_capacity_ah"], ".5g", scale=1e6),
            fmt_number(r["discharge_capacity_ah"], ".5g", scale=1e6),
            fmt_number(r["coulombic_efficiency"], ".5f"),
            fmt_number(r["capacity_retention"], ".5f"),
            fmt_number(r["discharge_capacity_uah_per_cm2"], ".4g"),
            note,
        )
    return t


def _eis_table(eis: dict) -> Table:
    t = Table(title="impedance")
    for c in ("spectrum", "T / K", "cycle", "method", "R bulk / Ω", "R int / Ω·cm²"):
        t.add_column(c, justify="right")
    t.add_column("σ / S cm⁻¹", justify="right")
    t.add_column("fit ok", justify="right")
    for s in eis.get("spectra", []):
        t.add_row(
            str(s["spectrum_id"]),
            fmt_number(s.get("temperature_kelvin"), ".2f"),
            fmt_number(s.get("cycle"), "d"),
            str(s.get("method")),
            fmt_number(s.get("r_bulk_ohm")),
            fmt_number(s.get("r_interface_ohm_cm2")),
            fmt_number(s.get("conductivity_s_per_cm"), ".3e"),
            "yes" if s.get("fit_ok") else "[red]no",
        )
    return t


def print_analysis(res: dict, console: Console) -> None:
    """The analysis as rich tables: per-cycle numbers, spectra, Arrhenius, warnings."""
    console.rule(f"[bold]{res.get('cell_id') or '(no cell id)'}")
    cyc = res.get("cycling")
    if cyc:
        console.print(_cycling_table(cyc))
    eis = res.get("eis")
    if eis:
        console.print(_eis_table(eis))
        arr = eis.get("arrhenius")
        if arr and arr.get("activation_energy_ev") is not None:
            console.print(
                f"Arrhenius ({arr.get('convention')}, {arr.get('n_points')} points): "
                f"Ea = {arr['activation_energy_ev']:.3f} ± {fmt_number(arr.get('activation_energy_stderr_ev'), '.3f')} eV, "
                f"σ(25 °C) = {fmt_number(arr.get('conductivity_25c_s_per_cm'), '.3e')} S/cm"
            )
    for w in res.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    def analyze_cmd(
        cell: Path = typer.Argument(..., help="Cell file (.h5)."),
        reference_cycle: int = typer.Option(
            None, "--reference-cycle", help="Retention reference (default: first complete cycle)."
        ),
        first_half: str = typer.Option(
            None, "--first-half", help="'charge' or 'discharge' (default: detected)."
        ),
        circuit: str = typer.Option(
            None,
            "--circuit",
            help="Equivalent circuit for all spectra (default: chosen per spectrum).",
        ),
        convention: str = typer.Option(
            "sigma_T",
            "--arrhenius",
            help="Arrhenius fit: 'sigma_T' (ln σT vs 1/T) or 'sigma' (ln σ vs 1/T).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the JSON object."),
        out: Path = typer.Option(
            None, "-o", "--out", help="Results file (default: <cell>.results.nc)."
        ),
        count_gap_estimates: bool = typer.Option(
            False,
            "--count-gap-estimates",
            help="Count a cycle interrupted by a recorded gap using the gap's estimated "
            "charge (flagged) instead of leaving it out as incomplete.",
        ),
    ) -> None:
        """Capacity, retention, CE, energy, fade; EIS fits, conductivity, Arrhenius."""
        from cyclerflow.analysis import analyze_cell
        from cyclerflow.errors import InputError

        if first_half not in (None, "charge", "discharge"):
            raise InputError(f"--first-half must be 'charge' or 'discharge', got {first_half!r}")
        if convention not in ("sigma_T", "sigma"):
            raise InputError(f"--arrhenius must be 'sigma_T' or 'sigma', got {convention!r}")
        res = analyze_cell(
            cell,
            out=out,
            reference_cycle=reference_cycle,
            first_half=first_half,
            circuit=circuit,
            arrhenius_convention=convention,
            count_gap_estimates=count_gap_estimates,
        )
        if as_json:
            typer.echo(json.dumps(res))
        else:
            print_analysis(res, Console())
