"""fanout_worker."""
