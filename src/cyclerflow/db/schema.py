"""The lab database schema (SQLAlchemy Core): one table per kind of record.

Units are in the column names, as everywhere in cyclerflow. Fields the schema does not
model (new ``analyze --json`` keys, unknown metadata keys, layer parameters) are kept as
JSON in the ``*_json`` columns, so nothing a file says is lost. The HDF5 cell files stay the
source of truth: every row can be rebuilt from them (``cyclerflow db rebuild``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_F = sa.Float
_T = sa.Text

cells = sa.Table(
    "cells",
    metadata,
    sa.Column("cell_id", _T, primary_key=True),
    sa.Column("wafer", _T, index=True),
    sa.Column("die", _T),
    sa.Column("cell", _T),
    sa.Column("active_area_cm2", _F),
    sa.Column("nominal_capacity_uah", _F),
    sa.Column("notes", _T),
    sa.Column("path", _T, nullable=False),
    sa.Column("metadata_json", sa.JSON),  # every metadata key, unknown ones included
    sa.Column("updated_unix_time_second", _F),
)

layers = sa.Table(
    "layers",
    metadata,
    sa.Column("cell_id", _T, sa.ForeignKey("cells.cell_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),  # 0 = bottom of the stack
    sa.Column("role", _T),
    sa.Column("material", _T),
    sa.Column("thickness_um", _F),
    sa.Column("density_g_cm3", _F),
    sa.Column("mass_mg", _F),
    sa.Column("deposition", _T),
    sa.Column("anneal_c", _F),
    sa.Column("parameters_json", sa.JSON),  # deposition parameters and other extra keys
    sa.Index("ix_layers_cell_role", "cell_id", "role", "position"),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("path", _T, primary_key=True),
    sa.Column("cell_id", _T, index=True),
    sa.Column("kind", _T, nullable=False),  # cell | results
    sa.Column("sha256", _T),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("mtime_ns", sa.BigInteger),
    sa.Column("live", sa.Boolean),
    sa.Column("closed", sa.Boolean),
    sa.Column("format_version", _T),
    sa.Column("last_sample_time_second", _F),
    sa.Column("error", _T),
    sa.Column("indexed_unix_time_second", _F),
)

analysis_runs = sa.Table(
    "analysis_runs",
    metadata,
    sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("cell_id", _T, sa.ForeignKey("cells.cell_id", ondelete="CASCADE"), index=True),
    sa.Column("software_version", _T),
    sa.Column("settings_json", sa.JSON),
    sa.Column("input_sha256", _T),
    sa.Column("results_path", _T),
    sa.Column("started_unix_time_second", _F),
    sa.Column("finished_unix_time_second", _F),
    sa.Column("status", _T),  # ok | failed
    sa.Column("reason", _T),
)

#: per-cycle fields of ``analyze --json`` modelled as columns (the rest go to extra_json)
CYCLE_FIELDS: dict[str, type] = {
    "charge_capacity_ah": _F,
    "discharge_capacity_ah": _F,
    "coulombic_efficiency": _F,
    "capacity_retention": _F,
    "charge_energy_wh": _F,
    "discharge_energy_wh": _F,
    "discharge_capacity_uah_per_cm2": _F,
    "discharge_capacity_uah_per_cm2_um": _F,
    "discharge_capacity_mah_per_g": _F,
    "energy_efficiency": _F,
    "mean_charge_voltage_v": _F,
    "mean_discharge_voltage_v": _F,
    "voltage_hysteresis_v": _F,
    "complete": sa.Boolean,
    "incomplete_reason": _T,
    "incomplete_detail": _T,
    "estimated_charge_ah": _F,
    "cycle_type": _T,
}

#: no foreign key on cycles (the one big table): a per-row key check (a trigger on
#: PostgreSQL) cost 2.6x the bulk load; the writers keep it consistent themselves (a cell's
#: cycles are deleted and rewritten in the transaction that upserts its cells row)
cycles = sa.Table(
    "cycles",
    metadata,
    sa.Column("cell_id", _T, primary_key=True),
    sa.Column("cycle", sa.Integer, primary_key=True),
    *(sa.Column(k, t) for k, t in CYCLE_FIELDS.items()),
    sa.Column("extra_json", sa.JSON),
    sqlite_with_rowid=False,  # one B-tree clustered by (cell_id, cycle): 2x faster inserts
)

#: per-spectrum fields modelled as columns; the whole spectrum object is kept in spectrum_json
SPECTRUM_FIELDS: dict[str, type] = {
    "spectrum_id": sa.Integer,
    "cycle": sa.Integer,
    "temperature_kelvin": _F,
    "circuit": _T,
    "model": _T,
    "method": _T,
    "roles": _T,  # ";"-joined roles of the fitted arcs (role_evidence)
    "r_bulk_ohm": _F,
    "r_bulk_stderr_ohm": _F,
    "r_interface_ohm": _F,
    "r_interface_ohm_cm2": _F,
    "conductivity_s_per_cm": _F,
    "f_bulk_hertz": _F,
    "chi2": _F,
    "kk_residual_max": _F,
    "fit_ok": sa.Boolean,
    "in_arrhenius": sa.Boolean,
    "flags": _T,  # ";"-joined
    "message": _T,
}

spectra = sa.Table(
    "spectra",
    metadata,
    sa.Column("cell_id", _T, sa.ForeignKey("cells.cell_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("spectrum", sa.Integer, primary_key=True),  # order in the file
    *(sa.Column(k, t) for k, t in SPECTRUM_FIELDS.items()),
    sa.Column("spectrum_json", sa.JSON),
)

#: per-cell summary columns besides the lab table's (cyclerflow.lab.SUMMARY_COLUMNS)
SUMMARY_EXTRA: dict[str, type] = {
    "cycles_to_80_percent": sa.Integer,
    "cycles_to_80_percent_extrapolated": _F,
    "fade_rate_stderr_per_cycle": _F,
    "reference_discharge_capacity_ah": _F,
    "first_cycle_irreversible_ah": _F,
    "ce_mean": _F,
    "ce_median": _F,
    "ce_std": _F,
    "ce_min": _F,
    "ce_max": _F,
    "ce_n": sa.Integer,
    "n_complete_cycles": sa.Integer,
    "interface_growth_ohm_per_cycle": _F,
    "lead_resistance_ohm": _F,
    "sample_type": _T,
}

#: lab-table columns that are not per-cell summary values (they live in other tables)
_NOT_SUMMARY = {"cell_id", "wafer", "die", "path", "results_path"}
_SUMMARY_TYPES = {
    "status": _T,
    "live": sa.Boolean,
    "reason": _T,
    "flags": _T,
    "n_cycles": sa.Integer,
    "reference_cycle": sa.Integer,
    "retention_cycle": sa.Integer,
}


def summary_columns() -> list[str]:
    """Names of the summary value columns (lab table + extras), in order."""
    from cyclerflow.lab import SUMMARY_COLUMNS

    return [c for c in SUMMARY_COLUMNS if c not in _NOT_SUMMARY] + list(SUMMARY_EXTRA)


summaries = sa.Table(
    "summaries",
    metadata,
    sa.Column("cell_id", _T, sa.ForeignKey("cells.cell_id", ondelete="CASCADE"), primary_key=True),
    *(sa.Column(c, SUMMARY_EXTRA.get(c) or _SUMMARY_TYPES.get(c, _F)) for c in summary_columns()),
    sa.Column("summary_json", sa.JSON),  # the analyze JSON without cycles and spectra
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("cell_id", _T, sa.ForeignKey("cells.cell_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("time_second", _F),
    sa.Column("kind", _T),
    sa.Column("event_json", sa.JSON),
)

#: metadata keys and layer keys seen in the lab (``scope`` = "metadata" or a layer role),
#: so ``cells --where`` can name the known keys without scanning every cell
known_keys = sa.Table(
    "known_keys",
    metadata,
    sa.Column("scope", _T, primary_key=True),
    sa.Column("key", _T, primary_key=True),
)

#: tables holding one cell's rows, children first (deleted and rewritten per cell)
CELL_CHILD_TABLES = (layers, cycles, spectra, summaries, events)
