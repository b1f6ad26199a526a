"""Transport analyses of a cycling record: GITT, ICI, PITT, DCIR, self-discharge.

Public API::

    block = analyze_transport(ds, meta=None, cycle_starts=None)

``block`` is the ``transport`` object of ``analyze --json`` (DESIGN.md "Second wave"):
``gitt``, ``ici``, ``pitt``, ``dcir``, ``self_discharge`` lists, with diffusion
coefficients as ``diffusion_coefficient_cm2_per_s``. Methods, equations and assumptions
are in docs/transport.md.
"""

from cyclerflow.transport.analyze import analyze_transport

__all__ = ["analyze_transport"]
