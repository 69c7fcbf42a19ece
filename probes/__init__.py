"""Probes: pure async functions that return typed results. No state, metrics or storage.

Importing this package loads nothing: `probes.results` and `probes.settings` are the
I/O-free vocabulary the core and the dashboard share; `probes.registry` maps each
probe kind to its entry point (and loads the network libraries).
"""
