"""Impedance analysis: circuits, fitter, Kramers-Kronig, roles by capacitance, series, Arrhenius.

Public API::

    from cyclerflow.eis import fit_spectrum, analyze_spectra, parse_circuit, kramers_kronig, arrhenius_fit

``fit_spectrum`` returns a frozen :class:`SpectrumFit`; arcs get their roles from their
effective capacitance (:mod:`cyclerflow.eis.roles`, scaled to the cell by
:func:`context_from_metadata`); ``analyze_spectra`` treats a temperature series as a series
(:mod:`cyclerflow.eis.series`) and can fit it globally (:mod:`cyclerflow.eis.global_fit`).
See docs/eis.md for the models, weighting, starts, roles, fallbacks and conventions.
"""

from cyclerflow.eis.analysis import analyze_spectra, conductivity_s_per_cm, fit_many
from cyclerflow.eis.arrhenius import arrhenius_fit
from cyclerflow.eis.circuits import Circuit, parse_circuit
from cyclerflow.eis.fit import fit_spectrum
from cyclerflow.eis.kk import kramers_kronig, linkk_impedance_py
from cyclerflow.eis.models import MODELS
from cyclerflow.eis.result import SpectrumFit
from cyclerflow.eis.roles import CellContext, context_from_metadata
from cyclerflow.eis.spectrum import MIN_POINTS, check_spectrum

__all__ = [
    "MIN_POINTS",
    "MODELS",
    "CellContext",
    "Circuit",
    "analyze_spectra",
    "arrhenius_fit",
    "check_spectrum",
    "conductivity_s_per_cm",
    "fit_many",
    "fit_spectrum",
    "kramers_kronig",
    "linkk_impedance_py",
    "parse_circuit",
    "SpectrumFit",
    "context_from_metadata",
]
