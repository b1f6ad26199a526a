"""cyclerflow.cycling."""
