"""The `govwatch` command line (also `python -m monitor`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.config import DEFAULT_TARGETS, ConfigError, load_config, parse_duration
from monitor.settings import Config
from monitor.storage import DEFAULT_DB_PATH, DEFAULT_RETENTION_S
from monitor.tamper import TamperKind

EXIT_OK = 0
EXIT_DOWN = 1
EXIT_CONFIG = 2

Command = Callable[[argparse.Namespace], int]
# `govwatch up` and `govwatch dashboard` pass it on to the dashboard.
READ_ONLY_HELP = (
    "no Acknowledge button: tamper signals can be seen, not cleared (the dashboard has no "
    "login; use it where people who should not clear a signal can reach it)"
)


def _load_or_report(path: Path) -> Config | None:
    """The config, or None after printing every FILE:LINE error to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        _print_issues(exc)
        return None


def _print_issues(exc: ConfigError) -> None:
    for issue in exc.issues:
        print(issue, file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load_or_report(args.targets)
    if config is None:
        return EXIT_CONFIG
    print(config.summary())
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from monitor.check import run_check

    config = _load_or_report(args.targets)
    if config is None:
        return EXIT_CONFIG
    countries = [c.upper() for c in args.country]
    unknown = sorted(set(countries) - set(config.countries))
    if unknown:
        print(f"govwatch check: no targets in {', '.join(unknown)}", file=sys.stderr)
        return EXIT_CONFIG
    return run_check(config, countries, args.format)


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(count):
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N with 1 <= K <= N")
    return int(index), int(count)


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:

    from monitor.daemon import RunOptions, run_daemon
    from monitor.logs import configure_logging

    configure_logging(args.log_format, args.log_level)
    config = _load_or_report(args.targets)
    if config is None:
        return EXIT_CONFIG
    web_config = None
    if args.web_config is not None:
        from monitor.webconfig import load_web_config

        try:
            web_config = load_web_config(args.web_config)
        except ConfigError as exc:
            _print_issues(exc)
            return EXIT_CONFIG
    options = RunOptions(
        targets_path=args.targets,
        listen_host=args.listen[0],
        listen_port=args.listen[1],
        db_path=args.db,
        vantage=args.vantage,
        shard=args.shard,
        retention_s=args.retention,
        web_config=web_config,
    )
    try:
        return _run_loop(run_daemon(options, config), args.event_loop)
    except KeyboardInterrupt:
        return 130


def _run_loop(main: Coroutine[Any, Any, int], event_loop: str) -> int:
    """asyncio.run on uvloop's loop when asked or, with `auto`, when it is installed."""
    import asyncio

    if event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                print("govwatch: --event-loop uvloop: uvloop is not installed", file=sys.stderr)
                return EXIT_CONFIG
        else:
            exit_code: int = uvloop.run(main)
            return exit_code
    return asyncio.run(main)


def cmd_up(args: argparse.Namespace) -> int:
    from monitor.up import UpOptions, supervise

    if _load_or_report(args.targets) is None:
        return EXIT_CONFIG
    options = UpOptions(
        targets=args.targets,
        db=args.db,
        listen=args.listen,
        dashboard_address=args.dashboard_address,
        dashboard_port=args.dashboard_port,
        refresh_s=args.refresh,
        read_only=args.read_only,
    )
    return supervise(options)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Replace this process with `streamlit run dashboard/app.py` (headless, no telemetry),
    so signals from systemd or `make run` reach Streamlit itself."""
    import dashboard

    app = Path(dashboard.__file__).with_name("app.py")
    source = ["--prometheus", args.prometheus] if args.prometheus else ["--db", str(args.db)]
    command = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.headless", "true",
        "--server.address", args.address,
        "--server.port", str(args.port),
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--", *source, "--refresh", str(args.refresh),
        *(["--read-only"] if args.read_only else []),
    ]  # fmt: skip
    sys.stdout.flush()
    os.execv(sys.executable, command)


def cmd_ack(args: argparse.Namespace) -> int:
    from monitor.ack import run_ack

    if (args.target is None) != (args.kind is None):
        print("govwatch ack: give both TARGET and KIND, or neither to list", file=sys.stderr)
        return EXIT_CONFIG
    return run_ack(
        args.db, args.target, args.kind, note=args.note, relearn=args.relearn, wait_s=args.wait
    )


def cmd_report(args: argparse.Namespace) -> int:
    from monitor.report.command import run_report

    return run_report(
        args.db, args.start, args.end, args.country, args.format, args.out, month=args.month
    )


def _add_targets_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets",
        nargs="?",
        type=Path,
        default=DEFAULT_TARGETS,
        metavar="TARGETS",
        help="the targets file (default: ./targets.toml)",
    )


def _add_daemon_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the daemon listens and keeps its history: `run` and `up` take the same."""
    parser.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 9781),
        metavar="HOST:PORT",
        help="where to serve metrics and the API (default: 127.0.0.1:9781)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=DEFAULT_DB_PATH,
        help=f"SQLite history (default: {DEFAULT_DB_PATH})",
    )


def build_parser() -> argparse.ArgumentParser:
    # `simulate` lives in the simulator package; its parser module loads neither the
    # simulator's servers nor its CA (trustme), and importing this module loads none of it.
    from simulator.cli import add_simulate_command

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

    check = commands.add_parser(
        "check",
        help="probe every target once and print the results",
        description="One round of every probe. Exit 0 when all targets are up, 1 when any "
        "is down, 2 on a bad config.",
    )
    _add_targets_argument(check)
    check.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="a table for people (default) or JSON, one object per target and probe",
    )
    check.add_argument(
        "--country",
        action="append",
        default=[],
        metavar="CC",
        help="only this country (repeatable)",
    )
    check.set_defaults(handler=cmd_check)

    run = commands.add_parser(
        "run",
        help="run the monitoring daemon",
        description="Probe continuously; serve /metrics, /api/v1/status, /api/v1/incidents and "
        "/healthz; keep history in SQLite. SIGHUP reloads TARGETS, SIGTERM stops.",
    )
    _add_targets_argument(run)
    _add_daemon_arguments(run)
    run.add_argument(
        "--web-config",
        type=Path,
        metavar="FILE",
        help="TLS, basic authentication and headers for every endpoint, in Prometheus "
        "exporter-toolkit's web configuration format (default: plain HTTP, no authentication)",
    )
    run.add_argument("--vantage", help="this instance's vantage point name (a metric label)")
    run.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="probe only the countries whose stable hash falls in shard K of N (whole countries)",
    )
    run.add_argument(
        "--retention",
        type=_duration_arg,
        default=DEFAULT_RETENTION_S,
        metavar="DURATION",
        help=f"history kept (default: {DEFAULT_RETENTION_S / 86400:g}d)",
    )
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text (default) or one JSON object each, for a log pipeline",
    )
    run.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="least severe lines logged (default: INFO; DEBUG adds every routine transition)",
    )
    run.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the event loop: uvloop when installed (auto, the default), or the standard one",
    )
    run.set_defaults(handler=cmd_run)

    up = commands.add_parser(
        "up",
        help="run the daemon and the dashboard together (what `make run` does)",
        description="Start the daemon and the dashboard and supervise both: any of SIGINT, "
        "SIGTERM, SIGHUP (a closed terminal) or SIGQUIT stops both, and if one exits the "
        "other is stopped. Exit 0 after a requested stop, 2 on a bad config, else 1 or the "
        "failed child's status.",
    )
    _add_targets_argument(up)
    _add_daemon_arguments(up)
    up.add_argument(
        "--dashboard-address",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="where the dashboard listens (default: 127.0.0.1, this machine only; "
        "0.0.0.0 shows it to the network, e.g. a wall screen: see the README)",
    )
    up.add_argument(
        "--dashboard-port", type=int, default=8501, metavar="PORT", help="default: 8501"
    )
    up.add_argument(
        "--refresh",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="seconds between dashboard refreshes (default: 15)",
    )
    up.add_argument(
        "--read-only",
        action="store_true",
        help=READ_ONLY_HELP,
    )
    up.set_defaults(handler=cmd_up)

    ack = commands.add_parser(
        "ack",
        help="list raised tamper signals, or acknowledge one as the new baseline",
        description="Without arguments, list the raised tamper signals. With TARGET and KIND, "
        "acknowledge that change: the daemon clears the signal and takes what the target "
        "serves now as its baseline. Exit 0 when done or queued, 1 when no such signal is "
        "raised, 2 for an unknown target or database.",
    )
    ack.add_argument("target", nargs="?", metavar="TARGET", help="the target's name")
    ack.add_argument(
        "kind",
        nargs="?",
        choices=[k.value for k in TamperKind],
        metavar="KIND",
        help="defacement, dns_change, dnssec_downgrade or cert_change",
    )
    ack.add_argument("--note", help="why the change is accepted (kept with the signal)")
    ack.add_argument(
        "--relearn",
        action="store_true",
        help="no signal raised: forget the KIND baseline and learn it afresh (after a "
        "planned redesign, a move or a new certificate authority)",
    )
    ack.add_argument(
        "--db",
        type=Path,
        default=DEFAULT_DB_PATH,
        help=f"the daemon's history database (default: {DEFAULT_DB_PATH})",
    )
    ack.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the daemon to apply it (default: 10)",
    )
    ack.set_defaults(handler=cmd_ack)

    report = commands.add_parser(
        "report",
        help="availability report for a period: per country, sector and target",
        description="Availability (time-weighted, the monitor's blind time and maintenance "
        "windows left out and stated), incidents, outages, posture and tamper signals "
        "from the history, as Markdown, CSV, JSON or HTML. Exit 0, or 2 with one line for "
        "a bad date, an unknown country or an unusable database.",
    )
    report.add_argument(
        "--from",
        dest="start",
        metavar="DATE",
        help="start: YYYY-MM-DD (UTC midnight) or ISO 8601 (UTC when no offset); "
        "default: 30 days before --to",
    )
    report.add_argument(
        "--to",
        dest="end",
        metavar="DATE",
        help="end: YYYY-MM-DD (that whole day included) or ISO 8601; default: now",
    )
    report.add_argument(
        "--month",
        metavar="YYYY-MM",
        help="one calendar month (UTC) instead of --from/--to; `last` is the month before "
        "this one (what the monthly timer asks for)",
    )
    report.add_argument(
        "--country",
        action="append",
        default=[],
        metavar="CC",
        help="only this country (repeatable; default: every country)",
    )
    report.add_argument(
        "--format",
        choices=("md", "csv", "json", "html"),
        default="md",
        help="md (default), csv (one row per target), json (the stable form) or html "
        "(self-contained, charts inline)",
    )
    report.add_argument(
        "--out",
        metavar="FILE",
        help="write the report to FILE (default, or -: stdout); {month} in it becomes the "
        "period's YYYY-MM, and missing directories are created",
    )
    report.add_argument(
        "--db",
        type=Path,
        default=DEFAULT_DB_PATH,
        help=f"the daemon's history database, opened read-only (default: {DEFAULT_DB_PATH})",
    )
    report.set_defaults(handler=cmd_report)

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
        default=DEFAULT_DB_PATH,
        help=f"the daemon's history database, opened read-only (default: {DEFAULT_DB_PATH})",
    )
    source.add_argument(
        "--prometheus",
        metavar="URL",
        help="read a Prometheus server instead (multi-vantage deployments)",
    )
    dashboard.add_argument(
        "--port", type=int, default=8501, help="the dashboard's HTTP port (default: 8501)"
    )
    dashboard.add_argument(
        "--address",
        default="127.0.0.1",
        help="where the dashboard listens (default: 127.0.0.1, this machine only; "
        "0.0.0.0 shows it to the network, e.g. a wall screen: see the README)",
    )
    dashboard.add_argument(
        "--refresh",
        type=float,
        default=15.0,
        help="seconds between overview refreshes (default: 15)",
    )
    dashboard.add_argument(
        "--read-only",
        action="store_true",
        help=READ_ONLY_HELP,
    )
    dashboard.set_defaults(handler=cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except BrokenPipeError:
        # `govwatch check | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_DOWN
