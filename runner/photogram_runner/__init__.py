"""photogram_runner."""
