"""Data shipped with the probes (read with importlib.resources)."""
