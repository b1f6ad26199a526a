"""The result of fitting one spectrum (:class:`SpectrumFit`) and the prepared spectrum."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cyclerflow.eis.roles import RoleEvidence


@dataclass(frozen=True)
class Prepared:
    """A checked spectrum ready to fit (f strictly decreasing, Hz; z complex, Ohm).

    ``fu``/``zu`` are the points the fit uses (inductive top points left out),
    ``inverse`` maps back to the caller's order, ``chi2_floor`` is the KK fit's
    reduced chi-square (the noise floor), ``kk`` the KK test result, ``drt`` the quick
    DRT of the fitted points (start values, arc count).
    """

    f: np.ndarray
    z: np.ndarray
    inverse: np.ndarray
    fu: np.ndarray
    zu: np.ndarray
    feat: dict
    kk: dict
    chi2_floor: float
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    drt: object | None = None  #: quick DRT (cyclerflow.eis.drt_start), None if it failed


@dataclass(frozen=True)
class BulkEstimate:
    """R_bulk (Ohm) with its standard error, how it was found and the circuit it came from."""

    r_ohm: float | None
    stderr_ohm: float | None
    method: str
    resolved: bool
    f_bulk_hertz: float | None = None
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpectrumFit:
    """Everything :func:`cyclerflow.eis.fit_spectrum` found about one spectrum.

    Resistances in Ohm, frequencies in Hz; ``params``/``stderr`` are {name: value} in
    impedance.py's parameter names; ``z_fit`` is complex over ``frequency_hertz`` in the
    caller's order (NaN when no circuit describes the estimate). ``roles`` maps role ->
    element; ``role_evidence`` holds each arc's capacitance and peak frequency.
    """

    circuit: str | None
    model: str | None
    model_selection: str
    method: str
    params: dict
    stderr: dict
    r_bulk_ohm: float | None
    r_bulk_stderr_ohm: float | None
    r_interface_ohm: float | None
    r_grain_boundary_ohm: float | None
    r_grain_boundary_stderr_ohm: float | None
    r_lead_ohm: float | None
    f_bulk_hertz: float | None
    bulk_resolved: bool
    chi2: float | None
    fit_ok: bool
    message: str
    flags: tuple[str, ...]
    kk_residual_max: float
    kk_ok: bool
    z_fit: np.ndarray
    frequency_hertz: np.ndarray
    n_points: int
    n_points_used: int
    weighting: str
    roles: dict
    role_evidence: RoleEvidence | None = None
    fixed: tuple[str, ...] = ()
    warm: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain dict (``z_fit``/``frequency_hertz`` stay numpy arrays, flags a list)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["flags"] = list(self.flags)
        out["fixed"] = list(self.fixed)
        out["role_evidence"] = None if self.role_evidence is None else self.role_evidence.to_dict()
        return out

    def with_note(self, note: str, flag: str | None = None, **changes) -> SpectrumFit:
        """A copy with ``note`` appended to the message (and ``flag`` added)."""
        from dataclasses import replace

        msg = note if self.message == "ok" else f"{self.message}; {note}"
        flags = self.flags + ((flag,) if flag and flag not in self.flags else ())
        return replace(self, message=msg, flags=flags, **changes)
