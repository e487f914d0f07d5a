"""docworkers."""
