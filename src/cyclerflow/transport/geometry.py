"""The diffusion length of the cathode film from the cell metadata.

Two routes, in this order of preference:

- *molar volume / mass* (Weppner & Huggins 1977): L = m_B V_M / (M_B S) with the
  cathode layer's ``mass_mg`` (m_B), ``molar_volume_cm3_mol`` (V_M), ``molar_mass_g_mol``
  (M_B) and the cell's ``active_area_cm2`` (S);
- *film thickness*: L = the cathode layer's ``thickness_um``.

The route used is stated with every result.
"""

from __future__ import annotations

from dataclasses import dataclass

from cyclerflow.schema import CellMetadata


@dataclass(frozen=True)
class DiffusionLength:
    """Diffusion length in cm (None when the metadata give none) and the route used."""

    length_cm: float | None
    route: str
    note: str = ""


def _extra_float(layer, key: str) -> float | None:
    val = (layer.model_extra or {}).get(key)
    try:
        out = float(val)
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


def diffusion_length(meta: CellMetadata | None) -> DiffusionLength:
    """L (cm) from the cathode layer: molar-volume/mass route first, else its thickness."""
    if meta is None:
        return DiffusionLength(None, "none", "no cell metadata: D needs the diffusion length")
    lay = meta.layer("cathode")
    if lay is None:
        return DiffusionLength(None, "none", "no cathode layer in metadata: D is null")
    vm = _extra_float(lay, "molar_volume_cm3_mol")
    mm = _extra_float(lay, "molar_mass_g_mol")
    if vm and mm and lay.mass_mg and meta.active_area_cm2:
        length = (lay.mass_mg * 1e-3) * vm / (mm * meta.active_area_cm2)
        return DiffusionLength(
            length,
            "molar_volume",
            "L = m_B V_M / (M_B S) from cathode mass_mg, "
            "molar_volume_cm3_mol, molar_mass_g_mol and active_area_cm2",
        )
    if lay.thickness_um:
        return DiffusionLength(
            lay.thickness_um * 1e-4, "film_thickness", "L = cathode thickness_um"
        )
    return DiffusionLength(None, "none", "cathode layer has no thickness_um (nor molar volume)")
