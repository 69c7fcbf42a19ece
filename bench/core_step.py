"""CPU per probe result in the pure core, at catalogue sizes users run.

    .venv/bin/python -m bench.core_step [--targets 1000 10000 50000]

Feeds a healthy world one result per target (HTTP, then DNS) and a tick per second of
simulated time, and reports the CPU microseconds per result event. The work per result must
not grow with the number of targets: the figures for 1,000 and 10,000 targets should match.
"""

from __future__ import annotations

import argparse
import time

from monitor.core import Result, Tick, initial_world, step
from monitor.settings import Canary, OutageSettings, Target
from probes.results import ProbeKind, ProbeResult

COUNTRIES = ("AL", "BA", "BG", "GR", "HR", "ME", "MK", "MD", "RO", "RS", "SI", "TR", "XK")


def measure(count: int, rounds: int = 3) -> float:
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
    started = time.process_time()
    for _ in range(rounds):
        for kind in (ProbeKind.HTTP, ProbeKind.DNS):
            for name in [t.name for t in targets] + [c.name for c in canaries]:
                now += 60.0 / count
                result = ProbeResult(kind, True, None, 0.01, now - 0.01)
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
