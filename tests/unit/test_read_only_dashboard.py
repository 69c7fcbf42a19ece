"""`--read-only` (no Acknowledge button) reaches the dashboard from `govwatch up` and
`govwatch dashboard`, and the dashboard's own parser takes it."""

from __future__ import annotations

from pathlib import Path

from dashboard.ui import parse_options
from monitor.cli import build_parser
from monitor.up import UpOptions, child_commands


def options(read_only: bool) -> UpOptions:
    return UpOptions(
        Path("t.toml"), Path("h.sqlite3"), ("127.0.0.1", 9781), "127.0.0.1", 8501, 15.0, read_only
    )


def test_up_passes_read_only_to_the_dashboard_only() -> None:
    commands = child_commands(options(True))
    assert commands["dashboard"][-1] == "--read-only"
    assert "--read-only" not in commands["daemon"]
    assert "--read-only" not in child_commands(options(False))["dashboard"]


def test_both_commands_accept_it_and_the_dashboard_reads_it() -> None:
    parser = build_parser()
    assert parser.parse_args(["up", "--read-only"]).read_only
    assert parser.parse_args(["dashboard", "--read-only"]).read_only
    assert not parser.parse_args(["dashboard"]).read_only
    assert parse_options(["--db", "h.sqlite3", "--read-only"]).read_only
