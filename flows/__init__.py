"""Prefect flows (installed as cyclerflow.flows)."""
