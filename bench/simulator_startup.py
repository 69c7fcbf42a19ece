"""How long a simulated region takes to start (issue: under 5 s for 6 countries x 10 sites).

    .venv/bin/python bench/simulator_startup.py [--countries AL,XK,MK,ME,RS,BA]
        [--per-country 10] [--vantages home] [--no-dnssec] [--runs 3]

Prints, per run, the time from `SimulatedRegion.start()` to every server
listening and every file written (DNSSEC signing included), and the time to
stop. Not part of the test run: timings belong here, not in assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from simulator.region import build_region
from simulator.runner import SimulatedRegion

BUDGET_S = 5.0


async def one_run(
    countries: list[str], per_country: int, vantages: list[str], dnssec: bool
) -> tuple[float, float, int]:
    region = build_region(countries, per_country, vantages)
    with tempfile.TemporaryDirectory() as out:
        sim = SimulatedRegion(region, Path(out), dnssec=dnssec)
        began = time.perf_counter()
        await sim.start()
        started = time.perf_counter() - began
        began = time.perf_counter()
        await sim.stop()
        stopped = time.perf_counter() - began
    return started, stopped, len(region.sites) * len(region.vantages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--countries", default="AL,XK,MK,ME,RS,BA")
    parser.add_argument("--per-country", type=int, default=10)
    parser.add_argument("--vantages", default="home")
    parser.add_argument("--no-dnssec", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    countries = args.countries.split(",")
    vantages = args.vantages.split(",")
    starts = []
    for run in range(1, args.runs + 1):
        started, stopped, servers = asyncio.run(
            one_run(countries, args.per_country, vantages, not args.no_dnssec)
        )
        starts.append(started)
        print(
            f"run {run}: {len(countries)} countries x {args.per_country} sites + canaries, "
            f"{len(vantages)} vantage(s), {servers} web servers, "
            f"DNSSEC {'off' if args.no_dnssec else 'on'}: "
            f"start {started:.2f}s, stop {stopped:.2f}s"
        )
    median = statistics.median(starts)
    verdict = "within" if median <= BUDGET_S else "OVER"
    print(f"median start {median:.2f}s ({verdict} the {BUDGET_S:.0f}s budget)")


if __name__ == "__main__":
    main()
