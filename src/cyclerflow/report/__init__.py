"""Figures and the self-contained HTML report.

- :func:`build_report` (cell files -> one HTML file, optionally PDF)
- :mod:`cyclerflow.report.figures` (matplotlib figures from plain data, for notebooks)
- :mod:`cyclerflow.report.watch` (live terminal view of a running acquisition)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "build_report",
    "render_html",
    "cell_context",
    "load_cell",
    "CellData",
    "html_to_pdf",
    "find_chromium",
]


def __getattr__(name: str) -> Any:  # lazy: importing the package does not import matplotlib
    if name in ("build_report", "render_html", "cell_context", "html_to_pdf", "find_chromium"):
        from cyclerflow.report import html

        return getattr(html, name)
    if name in ("load_cell", "CellData"):
        from cyclerflow.report import data

        return getattr(data, name)
    raise AttributeError(name)
