"""cyclerflow.report."""
