"""CPU per probe result in the pure core, at catalogue sizes users run.

    .venv/bin/python -m bench.core_step [--targets 1000 10000 50000]

Feeds a healthy world one result per target (HTTP, then DNS) and a tick per second of
simulated time, and reports the CPU microseconds per result event. The work per result must
not grow with the number of targets: the figures for 1,000 and 10,000 targets should match.
Results carry details as real ones do (a page fingerprint, the zone's name servers and
DNSSEC), so the tamper judgements are counted; every tenth page has a news item rotated.
The first rounds, while the tamper baselines are learned, are not timed: steady state is.
"""

from __future__ import annotations

import argparse
import time

from monitor.core import Result, Tick, initial_world, step
from monitor.settings import Canary, OutageSettings, Target
from monitor.tamper import DEFAULT_TAMPER
from probes.results import ProbeKind
from tests.probes.test_page import NEWS, portal
from tests.unit.test_tamper import dns, http

COUNTRIES = ("AL", "BA", "BG", "GR", "HR", "ME", "MK", "MD", "RO", "RS", "SI", "TR", "XK")


def measure(count: int, rounds: int = 3, warmup: int = DEFAULT_TAMPER.learn_probes) -> float:
    targets = tuple(
        Target(
            name=f"site{i}",
            url=f"https://site{i}.test/",
            country=COUNTRIES[i % len(COUNTRIES)],
            sector="portal",
        )
        for i in range(count)
    )
    canaries = tuple(Canary(name=f"canary{i}", url=f"https://canary{i}.test/") for i in range(3))
    world = initial_world(targets, canaries, OutageSettings(), 60.0)
    now = 1_800_000_000.0
    events = 0
    pages = [http(portal(NEWS)), http(portal([*NEWS[1:], NEWS[0]]))]
    answer = dns()
    started = time.process_time()
    for round_ in range(warmup + rounds):
        if round_ == warmup:
            started, events = time.process_time(), 0
        for kind in (ProbeKind.HTTP, ProbeKind.DNS):
            for name in [t.name for t in targets] + [c.name for c in canaries]:
                now += 60.0 / count
                if kind is ProbeKind.DNS:
                    result = answer
                else:
                    result = pages[1] if events % 10 == 0 else pages[0]
                world, _ = step(world, Result(name, result), now)
                events += 1
                if events % 100 == 0:
                    world, _ = step(world, Tick(), now)
    return (time.process_time() - started) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    args = parser.parse_args()
    print("| targets | CPU per result (µs) |\n|---:|---:|")
    for count in args.targets:
        print(f"| {count:,} | {measure(count):.1f} |")


if __name__ == "__main__":
    main()
