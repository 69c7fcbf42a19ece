"""`govwatch simulate ...`: run a simulated region, switch its faults, list its scenarios.

monitor/cli.py registers this with `add_simulate_command` when it builds its parser.
Building it loads only this module, the control API's client (standard library) and
the region's vocabulary (simulator.region); the servers, the CA (trustme) and the
runner load when a subcommand runs, so the daemon and `govwatch validate` never do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from monitor.config import parse_duration
from simulator.client import DEFAULT_CONTROL_PORT, DEFAULT_CONTROL_URL, ControlError, call_control
from simulator.flapping import DEFAULT_HALF_PERIOD_S
from simulator.region import (
    DEFAULT_COUNTRIES,
    DEFAULT_PER_COUNTRY,
    FAULT_MODES,
    HOME_VANTAGE,
    RECOVER,
    REHEARSAL_INTERVAL,
    REHEARSAL_TIMEOUT,
    REHEARSAL_TLS_INTERVAL,
    SUPPORTED_COUNTRIES,
    Scope,
    parse_mode,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_OUT = Path("simulation")


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _duration_range(text: str) -> tuple[float, float]:
    """ "20s-60s" -> (20.0, 60.0); one duration is a fixed period."""
    shortest, _, longest = text.partition("-")
    try:
        low = parse_duration(shortest)
        high = parse_duration(longest) if longest else low
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX with 0 < MIN <= MAX, got {text!r}")
    return low, high


def add_simulate_command(commands: Any) -> None:
    """Add `simulate` (and its fault/recover/sites/scenarios subcommands) to `commands`."""
    modes = ", ".join(FAULT_MODES)
    simulate = commands.add_parser(
        "simulate",
        help="run a simulated region on loopback (real HTTPS, DNS, certificates) and break it",
        description=(
            "Start a simulated region: HTTPS sites on their own loopback addresses, a DNS "
            "server, a CA, canaries, and a targets file pointing govwatch at them. Without "
            "a subcommand it runs until Ctrl-C (or the end of a non-looping --scenario)."
        ),
    )
    simulate.add_argument(
        "--countries",
        type=_csv,
        default=DEFAULT_COUNTRIES,
        metavar="CC,CC,...",
        help=f"countries to simulate (default {','.join(DEFAULT_COUNTRIES)}; "
        f"supported: {','.join(SUPPORTED_COUNTRIES)})",
    )
    simulate.add_argument(
        "--per-country",
        type=int,
        default=DEFAULT_PER_COUNTRY,
        metavar="N",
        help=f"sites per country (default {DEFAULT_PER_COUNTRY})",
    )
    simulate.add_argument(
        "--vantages",
        type=_csv,
        default=(HOME_VANTAGE,),
        metavar="NAME,...",
        help="simulated vantage points, each with its own resolver and addresses "
        "(default: home; a scenario adds the ones it needs)",
    )
    simulate.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where targets.toml, ca.pem and trust-anchors.txt go (default ./{DEFAULT_OUT})",
    )
    simulate.add_argument(
        "--scenario",
        metavar="NAME|FILE",
        help="play a scenario (see `govwatch simulate scenarios`)",
    )
    simulate.add_argument("--loop", action="store_true", help="repeat the scenario until stopped")
    simulate.add_argument(
        "--speed",
        type=_positive,
        default=1.0,
        metavar="X",
        help="play the scenario X times faster (default 1)",
    )
    simulate.add_argument(
        "--control",
        type=_host_port,
        default=("127.0.0.1", DEFAULT_CONTROL_PORT),
        metavar="HOST:PORT",
        help=f"where the control API listens (default 127.0.0.1:{DEFAULT_CONTROL_PORT})",
    )
    simulate.add_argument(
        "--no-dnssec", action="store_true", help="serve unsigned zones (starts faster)"
    )
    simulate.add_argument(
        "--interval",
        type=_duration,
        default=REHEARSAL_INTERVAL,
        metavar="DURATION",
        help=f"probe interval written into the targets files (default {REHEARSAL_INTERVAL})",
    )
    simulate.add_argument(
        "--timeout",
        type=_duration,
        default=REHEARSAL_TIMEOUT,
        metavar="DURATION",
        help=f"probe timeout written into the targets files (default {REHEARSAL_TIMEOUT})",
    )
    simulate.add_argument(
        "--tls-interval",
        type=_duration,
        default=REHEARSAL_TLS_INTERVAL,
        metavar="DURATION",
        help=f"TLS probe interval written into the targets files (default {REHEARSAL_TLS_INTERVAL})",
    )
    simulate.add_argument(
        "--flapping",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of the targets (0-1) that fail and recover on their own, each in its "
        "own fault mode and rhythm, until stopped (not with --scenario)",
    )
    simulate.add_argument(
        "--flap-period",
        type=_duration_range,
        default=DEFAULT_HALF_PERIOD_S,
        metavar="MIN-MAX",
        help="how long a flapping target stays up, then down: each draws its own from this "
        "range (default {:g}s-{:g}s)".format(*DEFAULT_HALF_PERIOD_S),
    )
    simulate.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="which targets flap, in which mode and rhythm: the same seed, the same run "
        "(default 0)",
    )
    simulate.set_defaults(handler=cmd_simulate)
    actions = simulate.add_subparsers(
        dest="simulate_command",
        metavar="ACTION",
        help="act on a running simulator instead of starting one",
    )

    fault = actions.add_parser(
        "fault",
        help="set a fault on a running simulator",
        description=f"Set MODE on every site SCOPE/SELECTOR picks. Modes: {modes}.",
    )
    fault.add_argument(
        "scope",
        choices=[s.value for s in Scope],
        metavar="SCOPE",
        help=f"one of: {', '.join(Scope)}",
    )
    fault.add_argument(
        "selector",
        metavar="SELECTOR",
        help="a site host, country code, name server, prefix (CIDR), network key, or * ",
    )
    fault.add_argument("mode", metavar="MODE", help=f"one of: {modes}; or {RECOVER}")
    _add_client_options(fault)
    fault.set_defaults(handler=cmd_fault)

    recover = actions.add_parser(
        "recover",
        help="clear faults on a running simulator (default: everything)",
        description="Clear every fault on SCOPE/SELECTOR (default: all of them).",
    )
    recover.add_argument(
        "scope",
        nargs="?",
        default=Scope.ALL.value,
        choices=[s.value for s in Scope],
        metavar="SCOPE",
    )
    recover.add_argument("selector", nargs="?", default="*", metavar="SELECTOR")
    _add_client_options(recover)
    recover.set_defaults(handler=cmd_recover)

    sites = actions.add_parser("sites", help="list a running simulator's sites and faults")
    _add_client_options(sites, vantage=False)
    sites.add_argument("--json", action="store_true", help="print JSON")
    sites.set_defaults(handler=cmd_sites)

    scenarios = actions.add_parser(
        "scenarios", help="list the built-in scenarios and what govwatch should conclude"
    )
    scenarios.add_argument("--json", action="store_true", help="print JSON")
    scenarios.set_defaults(handler=cmd_scenarios)


def _add_client_options(parser: argparse.ArgumentParser, *, vantage: bool = True) -> None:
    parser.add_argument(
        "--control",
        dest="control_url",
        default=DEFAULT_CONTROL_URL,
        metavar="URL",
        help=f"the simulator's control API (default {DEFAULT_CONTROL_URL})",
    )
    if vantage:
        parser.add_argument(
            "--vantage", metavar="NAME", help="only as seen from this vantage (default: all)"
        )


def cmd_simulate(args: argparse.Namespace) -> int:
    from monitor.logs import configure_logging
    from simulator.runner import SimulateOptions, Timing, serve
    from simulator.scenarios import ScenarioError, find_scenario

    configure_logging("text", "INFO")  # every fault switched is logged
    # asyncio warns each time a TLS client hangs up on the servers' stream readers
    # ("returning true from eof_received() has no effect when using ssl"): harmless noise.
    logging.getLogger("asyncio").setLevel(logging.ERROR)

    try:
        scenario = find_scenario(args.scenario) if args.scenario else None
        options = SimulateOptions(
            out_dir=args.out,
            countries=tuple(c.upper() for c in args.countries),
            per_country=args.per_country,
            vantages=args.vantages,
            scenario=scenario,
            loop=args.loop,
            speed=args.speed,
            control=args.control,
            dnssec=not args.no_dnssec,
            timing=replace(
                Timing(),
                interval=args.interval,
                timeout=args.timeout,
                tls_interval=args.tls_interval,
            ),
            flapping=args.flapping,
            flap_half_period_s=args.flap_period,
            seed=args.seed,
        )
        if parse_duration(args.timeout) >= parse_duration(args.interval):
            raise ValueError("--timeout must be shorter than --interval")
        asyncio.run(serve(options, out=lambda line: print(line, flush=True)))
    except ScenarioError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"govwatch simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"govwatch simulate: cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _post(args: argparse.Namespace, path: str, body: dict[str, Any]) -> int:
    try:
        answer = call_control(args.control_url, path, body)
    except ControlError as exc:
        print(f"govwatch simulate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    sites = answer.get("sites", [])
    where = f" from {answer['vantage']}" if answer.get("vantage") else ""
    print(
        f"{answer['mode']} on {answer['scope']} {answer['selector']}{where}: "
        f"{len(sites)} sites: {', '.join(sites)}"
    )
    return EXIT_OK


def cmd_fault(args: argparse.Namespace) -> int:
    try:
        mode = parse_mode(args.mode)
    except ValueError as exc:
        print(f"govwatch simulate fault: {exc}", file=sys.stderr)
        return EXIT_USAGE
    body = {"scope": args.scope, "selector": args.selector, "mode": mode, "vantage": args.vantage}
    return _post(args, "/api/fault", body)


def cmd_recover(args: argparse.Namespace) -> int:
    body = {"scope": args.scope, "selector": args.selector, "vantage": args.vantage}
    return _post(args, "/api/recover", body)


def cmd_sites(args: argparse.Namespace) -> int:
    try:
        rows = call_control(args.control_url, "/api/sites")
    except ControlError as exc:
        print(f"govwatch simulate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        faults = "; ".join(
            f"{vantage}: {', '.join(modes)}" for vantage, modes in row["faults"].items() if modes
        )
        address = ", ".join(row["addresses"].values())
        print(
            f"{row['country'] or 'canary':6} {row['host']:34} {address:26} "
            f"{row['network']:10} {faults or 'ok'}"
        )
    return EXIT_OK


def cmd_scenarios(args: argparse.Namespace) -> int:
    from simulator.scenarios import ScenarioError, builtin_scenarios, load_scenario

    listing = []
    for name, path in builtin_scenarios().items():
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            return EXIT_FAILED
        listing.append(
            {
                "name": name,
                "title": scenario.title,
                "countries": list(scenario.countries),
                "vantages": list(scenario.vantages),
                "duration_s": scenario.duration_s,
                "expected": scenario.headline(),
                "file": str(path),
            }
        )
    if args.json:
        print(json.dumps(listing, indent=2))
        return EXIT_OK
    for item in listing:
        print(f"{item['name']}: {item['title']}")
        print(f"    expect: {item['expected']}")
    return EXIT_OK
