"""coding layer."""
