"""photogram_common."""
