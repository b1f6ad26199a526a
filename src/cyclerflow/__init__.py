"""cyclerflow: battery-lab pipeline from instruments to reports."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cyclerflow")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
