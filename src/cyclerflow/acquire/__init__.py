"""cyclerflow.acquire."""
