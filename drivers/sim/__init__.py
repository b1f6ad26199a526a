"""Instrument simulators."""
