"""cyclerflow.eis."""
