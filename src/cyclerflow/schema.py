"""Column names, units and the cell-metadata model.

Column names follow the Battery Data Format (BDF) machine names; every column has
a CF/UDUNITS unit string that is written as the ``units`` attribute in HDF5.

Cell metadata is read from YAML or JSON in lab units (cm², µm, µAh, g/cm³, mg, °C)
and kept in SI inside (m, m², Ah, kg/m³, kg, K) through the ``*_si`` properties.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cyclerflow.errors import InputError
from cyclerflow.units import parse_lab_value

#: metadata fields that take a quantity: field -> (dimension, unit of the bare number)
LAB_UNITS = {
    "active_area_cm2": ("area", "cm2"),
    "nominal_capacity_uah": ("charge", "uAh"),
    "thickness_um": ("length", "um"),
    "mass_mg": ("mass", "mg"),
    "anneal_c": ("temperature", "degC"),
}


def _lab_quantity(field: str):
    """A before-validator: accept a number in the field's lab unit or a string with units."""

    def convert(cls, v: Any, info) -> Any:
        if v is None or isinstance(v, (int, float)):
            return v
        dim, unit = LAB_UNITS[field]
        return parse_lab_value(v, dim, unit, where=info.field_name)

    return field_validator(field, mode="before")(classmethod(convert))


# --- columns ---------------------------------------------------------------------

#: BDF machine name -> (units attribute, numpy dtype)
CYCLING_COLUMNS: dict[str, tuple[str, str]] = {
    "test_time_second": ("s", "f8"),
    "unix_time_second": ("s", "f8"),
    "voltage_volt": ("V", "f8"),
    "current_ampere": ("A", "f8"),
    "cycle_count": ("1", "i8"),
    "step_count": ("1", "i8"),
    "step_index": ("1", "i8"),
    "temperature_kelvin": ("K", "f8"),
    "charge_capacity_ampere_hour": ("A h", "f8"),
    "discharge_capacity_ampere_hour": ("A h", "f8"),
    "charge_energy_watt_hour": ("W h", "f8"),
    "discharge_energy_watt_hour": ("W h", "f8"),
    "vendor_cycle_index": ("1", "i8"),
    "vendor_step_index": ("1", "i8"),
}
REQUIRED_CYCLING = ("test_time_second", "voltage_volt", "current_ampere")

#: BDF labels (human) -> machine names, for the neutral CSV importer
BDF_LABELS: dict[str, str] = {
    "Test Time / s": "test_time_second",
    "Unix Time / s": "unix_time_second",
    "Voltage / V": "voltage_volt",
    "Current / A": "current_ampere",
    "Cycle Count / 1": "cycle_count",
    "Step Count / 1": "step_count",
    "Step Index / 1": "step_index",
    "Temperature / K": "temperature_kelvin",
    "Charging Capacity / Ah": "charge_capacity_ampere_hour",
    "Discharging Capacity / Ah": "discharge_capacity_ampere_hour",
    "Charging Energy / Wh": "charge_energy_watt_hour",
    "Discharging Energy / Wh": "discharge_energy_watt_hour",
}

EIS_COLUMNS: dict[str, tuple[str, str]] = {
    "frequency_hertz": ("Hz", "f8"),
    "real_impedance_ohm": ("ohm", "f8"),
    "imaginary_impedance_ohm": ("ohm", "f8"),
}
#: optional per-spectrum attributes in the long EIS CSV and in /eis/<id> attrs
EIS_SPECTRUM_ATTRS: dict[str, str] = {
    "unix_time_second": "s",
    "cycle_count": "1",
    "temperature_kelvin": "K",
    "amplitude": "V or A (see technique)",
    "dc_level": "V or A (see technique)",
}

EVENT_KINDS = (
    "step_start",
    "step_end",
    "limit",
    "safety_stop",
    "resume",
    "disconnect",
    "note",
    "gap",  # host down during a run: JSON message with start_s, end_s and the charge estimate
    "stop",  # a vendor record says the test was stopped (importers)
)


def units_of(column: str) -> str:
    """Units string of a known column, or ``"1"`` for unknown (dimensionless) ones."""
    if column in CYCLING_COLUMNS:
        return CYCLING_COLUMNS[column][0]
    if column in EIS_COLUMNS:
        return EIS_COLUMNS[column][0]
    return "1"


# --- cell metadata ----------------------------------------------------------------

LayerRole = Literal[
    "substrate",
    "current_collector",
    "cathode",
    "electrolyte",
    "anode",
    "interlayer",
    "protection",
    "encapsulation",
    "other",
]


class Layer(BaseModel):
    """One layer of the stack, bottom to top. Thickness in µm (``thickness_m`` in SI)."""

    model_config = ConfigDict(extra="allow")

    role: LayerRole
    material: str
    thickness_um: float | None = Field(default=None, gt=0)
    density_g_cm3: float | None = Field(default=None, gt=0)
    mass_mg: float | None = Field(default=None, gt=0)
    deposition: str | None = None
    anneal_c: float | None = Field(default=None, ge=-273.15)

    _thickness = _lab_quantity("thickness_um")
    _mass = _lab_quantity("mass_mg")
    _anneal = _lab_quantity("anneal_c")

    @property
    def thickness_m(self) -> float | None:
        return None if self.thickness_um is None else self.thickness_um * 1e-6


class CellMetadata(BaseModel):
    """Cell metadata as in docs/metadata.md. Lab units in the fields, SI through properties."""

    model_config = ConfigDict(extra="allow")

    cell_id: str = Field(min_length=1)
    wafer: str | None = None
    die: str | None = None
    active_area_cm2: float | None = Field(default=None, gt=0)
    nominal_capacity_uah: float | None = Field(default=None, gt=0)
    layers: list[Layer] = Field(default_factory=list)
    notes: str | None = None

    _area = _lab_quantity("active_area_cm2")
    _capacity = _lab_quantity("nominal_capacity_uah")

    @field_validator("cell_id", "wafer", "die", mode="before")
    @classmethod
    def _to_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    # SI views -----------------------------------------------------------------
    @property
    def active_area_m2(self) -> float | None:
        return None if self.active_area_cm2 is None else self.active_area_cm2 * 1e-4

    @property
    def nominal_capacity_ah(self) -> float | None:
        return None if self.nominal_capacity_uah is None else self.nominal_capacity_uah * 1e-6

    def layer(self, role: str) -> Layer | None:
        """First layer with this role, or None."""
        return next((lay for lay in self.layers if lay.role == role), None)

    @property
    def electrolyte_thickness_m(self) -> float | None:
        lay = self.layer("electrolyte")
        return None if lay is None else lay.thickness_m

    @property
    def cathode_thickness_m(self) -> float | None:
        lay = self.layer("cathode")
        return None if lay is None else lay.thickness_m

    @property
    def cathode_mass_kg(self) -> float | None:
        """From ``mass_mg``, else density x thickness x area; None when unknown."""
        lay = self.layer("cathode")
        if lay is None:
            return None
        if lay.mass_mg is not None:
            return lay.mass_mg * 1e-6
        if lay.density_g_cm3 and lay.thickness_um and self.active_area_cm2:
            grams = lay.density_g_cm3 * (lay.thickness_um * 1e-4) * self.active_area_cm2
            return grams * 1e-3
        return None

    @property
    def extra(self) -> dict[str, Any]:
        """Unknown keys, kept as given."""
        return dict(self.model_extra or {})


def _format_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "missing":
        return f"key '{loc}' is required"
    if first["type"] == "value_error" and "error" in first.get("ctx", {}):
        inner = first["ctx"]["error"]
        text = getattr(inner, "bare_message", str(inner))
        return f"key '{loc}': {text}"
    value = first.get("input")
    return f"key '{loc}': {msg} (got {value!r})"


def parse_metadata(data: dict[str, Any], *, source: str | Path | None = None) -> CellMetadata:
    """Validate a metadata mapping; raise :class:`InputError` naming the key."""
    if not isinstance(data, dict):
        raise InputError("cell metadata must be a mapping of keys to values", path=source)
    try:
        return CellMetadata.model_validate(data)
    except ValidationError as err:
        raise InputError(_format_validation_error(err), path=source) from None


def load_metadata(path: str | Path) -> tuple[CellMetadata, str]:
    """Read cell metadata from YAML or JSON. Returns (model, original text)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("cell metadata file not found", path=path) from None
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text (byte {err.start})", path=path) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise InputError(f"cannot parse metadata: {str(err).splitlines()[0]}", path=path) from None
    if data is None:
        raise InputError("metadata file is empty", path=path)
    return parse_metadata(data, source=path), text


def metadata_to_attrs(meta: CellMetadata) -> dict[str, Any]:
    """Flatten metadata into HDF5-friendly attributes (lab-unit keys and SI keys)."""
    attrs: dict[str, Any] = {"metadata_json": meta.model_dump_json()}
    for key, value in meta.model_dump(exclude={"layers"}).items():
        if value is None:
            continue
        attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
    si = {
        "active_area_m2": meta.active_area_m2,
        "nominal_capacity_ah": meta.nominal_capacity_ah,
        "electrolyte_thickness_m": meta.electrolyte_thickness_m,
        "cathode_thickness_m": meta.cathode_thickness_m,
        "cathode_mass_kg": meta.cathode_mass_kg,
    }
    attrs.update({k: v for k, v in si.items() if v is not None})
    return attrs


def metadata_warnings(meta: CellMetadata) -> list[str]:
    """What the metadata lacks for the usual figures (missing values give nulls, never guesses)."""
    out = []
    if meta.active_area_cm2 is None:
        out.append(
            "no 'active_area_cm2': per-area capacities, conductivity and Ohm·cm² will be null"
        )
    if meta.electrolyte_thickness_m is None:
        out.append("no electrolyte layer with 'thickness_um': conductivity will be null")
    if meta.cathode_mass_kg is None:
        out.append("no cathode 'mass_mg' (or density x thickness x area): mAh/g will be null")
    return out
