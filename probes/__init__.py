"""Probes: pure async functions that return typed results. No state, metrics or storage."""
