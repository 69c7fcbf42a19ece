"""govwatch's monitor: config, scheduler, state, outages, exporter, storage, API and CLI."""

__version__ = "0.1.0"
