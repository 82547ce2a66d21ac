"""modeling layer."""
