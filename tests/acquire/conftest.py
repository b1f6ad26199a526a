"""Fixtures for the acquisition tests (defined in acquire_support, imported by name)."""

from acquire_support import *  # noqa: F403
