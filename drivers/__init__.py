"""Instrument drivers (installed as cyclerflow.drivers)."""
