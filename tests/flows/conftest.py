"""Fixtures for the flow tests (defined in flows_support, imported by name)."""

from flows_support import *  # noqa: F403
