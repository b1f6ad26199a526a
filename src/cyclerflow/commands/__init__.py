"""CLI command groups (found through the cyclerflow.commands entry points)."""
