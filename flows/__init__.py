"""Prefect flows and deployments (installed as ``cyclerflow.flows``).

Importing this package prepares Prefect for the embedded default before Prefect
reads its settings: no analytics, a long ephemeral-server start-up timeout (the first
start on a new machine creates the database), and an empty ``PREFECT_API_URL``
removed (empty is not the same as unset). See :mod:`cyclerflow.flows.runtime`.

Flows: :func:`analyze_cell_flow`, :func:`analyze_lab_flow`, :func:`analyze_live_cells_flow`,
:func:`acquire_station_flow` (imported lazily so the package import stays cheap).
"""

from cyclerflow.flows.runtime import configure_prefect_env

configure_prefect_env()

_LAZY = {
    "analyze_cell_flow": "cyclerflow.flows.lab",
    "analyze_lab_flow": "cyclerflow.flows.lab",
    "analyze_live_cells_flow": "cyclerflow.flows.lab",
    "acquire_station_flow": "cyclerflow.flows.acquire",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
