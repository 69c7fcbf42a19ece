"""How long one /metrics collection and rendering takes for the shipped catalogue's size.

    .venv/bin/python -m bench.exporter_collect

170 targets x 3 probes, 20 of them failing; prints CPU time of collect() and of
generate_latest(), best of 20. Goal: collect() a few ms, a scrape well under 100 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import generate_latest

from monitor.exporter import SnapshotCollector, make_registry
from tests.unit.test_exporter import T0, World


def _cpu(work: Callable[[], object]) -> float:
    start = time.thread_time()
    work()
    return time.thread_time() - start


def main() -> None:
    countries = dict.fromkeys(
        ("AL", "BA", "BG", "GR", "HR", "MD", "ME", "MK", "RO", "RS", "SI", "TR", "XK"), 13
    )
    countries["AL"] += 1
    world = World(countries)
    world.all_ok(T0)
    world.fail(world.names[:20], T0 + 10)
    snapshot = world.snapshot(T0 + 20)
    collector = SnapshotCollector(lambda: snapshot, process_metrics=False)
    registry = make_registry(lambda: snapshot, process_metrics=False)
    collect = min(_cpu(lambda: list(collector.collect())) for _ in range(20))
    render = min(_cpu(lambda: generate_latest(registry)) for _ in range(20))
    size = len(generate_latest(registry))
    print(f"targets: {len(world.targets)}; exposition: {size / 1024:.0f} KiB")
    print(f"collect(): {collect * 1000:.1f} ms CPU (best of 20)")
    print(f"generate_latest(): {render * 1000:.1f} ms CPU (best of 20)")


if __name__ == "__main__":
    main()
