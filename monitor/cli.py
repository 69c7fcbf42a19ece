"""The `govwatch` command line (also `python -m monitor`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor import __version__
from monitor.config import DEFAULT_TARGETS, Config, ConfigError, load_config
from monitor.simulator.cli import add_simulate_command

EXIT_OK = 0
EXIT_DOWN = 1
EXIT_CONFIG = 2

Command = Callable[[argparse.Namespace], int]


def _load_or_report(path: Path) -> Config | None:
    """The config, or None after printing every FILE:LINE error to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load_or_report(args.targets)
    if config is None:
        return EXIT_CONFIG
    print(config.summary())
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Replace this process with `streamlit run dashboard/app.py` (headless, no telemetry),
    so signals from systemd or `make run` reach Streamlit itself."""
    import os

    import dashboard

    app = Path(dashboard.__file__).with_name("app.py")
    source = ["--prometheus", args.prometheus] if args.prometheus else ["--db", str(args.db)]
    command = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.headless", "true",
        "--server.address", args.address,
        "--server.port", str(args.port),
        "--browser.gatherUsageStats", "false",
        "--", *source, "--refresh", str(args.refresh),
    ]  # fmt: skip
    sys.stdout.flush()
    os.execv(sys.executable, command)


def _add_targets_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets",
        nargs="?",
        type=Path,
        default=DEFAULT_TARGETS,
        metavar="TARGETS",
        help="the targets file (default: ./targets.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govwatch",
        description="Monitor South East Europe's e-government portals: HTTP, DNS and TLS.",
    )
    parser.add_argument("--version", action="version", version=f"govwatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check a targets file and print a one-line summary",
        description="Check a targets file. Exit 0 with a summary, or 2 with FILE:LINE errors.",
    )
    _add_targets_argument(validate)
    validate.set_defaults(handler=cmd_validate)

    add_simulate_command(commands)

    dashboard = commands.add_parser(
        "dashboard",
        help="serve the Streamlit dashboard",
        description="Serve the operators' dashboard over the history database or Prometheus.",
    )
    source = dashboard.add_mutually_exclusive_group()
    source.add_argument(
        "--db",
        type=Path,
        default=Path("data/govwatch.sqlite3"),
        help="the daemon's history database, opened read-only",
    )
    source.add_argument(
        "--prometheus",
        metavar="URL",
        help="read a Prometheus server instead (multi-vantage deployments)",
    )
    dashboard.add_argument("--port", type=int, default=8501)
    dashboard.add_argument("--address", default="127.0.0.1", help="default: loopback only")
    dashboard.add_argument(
        "--refresh",
        type=float,
        default=15.0,
        help="seconds between overview refreshes (default: 15)",
    )
    dashboard.set_defaults(handler=cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    return handler(args)
