"""`govwatch check`: one round of every probe for every target, printed as a table or JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from monitor.scheduler import Job, guarded_probe
from monitor.settings import Config, Target
from probes.context import ProbeContext, open_probe_context
from probes.registry import PROBES, ProbeFunction
from probes.results import ProbeKind, ProbeResult


@dataclass(frozen=True, slots=True)
class TargetCheck:
    target: Target
    results: tuple[ProbeResult, ...]  # in PROBES order; TLS only for https URLs

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def result(self, kind: ProbeKind) -> ProbeResult | None:
        return next((r for r in self.results if r.kind is kind), None)


async def check_targets(
    config: Config,
    targets: Sequence[Target],
    *,
    progress: TextIO | None = None,
    probes: Mapping[ProbeKind, ProbeFunction] = PROBES,
) -> list[TargetCheck]:
    """Probe every target once with every probe, `monitor.concurrency` at a time."""
    semaphore = asyncio.Semaphore(config.monitor.concurrency)
    total = sum(len(t.probe_kinds) for t in targets)
    done = 0

    async def one(kind: ProbeKind, target: Target, ctx: ProbeContext) -> ProbeResult:
        nonlocal done
        job = Job(target.name, kind, target.probe_target, config.monitor.interval_s)
        async with semaphore:
            # Guarded like the daemon's probes: one target that breaks a probe is a failed
            # row, not the end of the whole check.
            result = await guarded_probe(probes[kind], job, ctx, timeout_s=config.monitor.timeout_s)
        done += 1
        if progress is not None:
            progress.write(f"\rprobed {done}/{total}")
            progress.flush()
        return result

    async with open_probe_context(config.probe_settings) as ctx:
        per_target = await asyncio.gather(
            *(asyncio.gather(*(one(kind, t, ctx) for kind in t.probe_kinds)) for t in targets)
        )
    if progress is not None:
        progress.write("\r\033[K")
    return [TargetCheck(t, tuple(results)) for t, results in zip(targets, per_target, strict=True)]


def to_json(checks: Sequence[TargetCheck]) -> str:
    rows: list[dict[str, Any]] = []
    for check in checks:
        for result in check.results:
            rows.append(
                {"target": check.target.name, "country": check.target.country} | result.to_dict()
            )
    return json.dumps(rows, indent=2)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def _http_cell(result: ProbeResult | None) -> str:
    if result is None:
        return "-"
    return f"{result.facts.http_status or '---'} {_ms(result.duration_s)}"


def _dns_cells(result: ProbeResult | None) -> tuple[str, str]:
    if result is None:
        return "-", "-"
    dns_cell = f"ok {_ms(result.duration_s)}" if result.ok else str(result.reason)
    dnssec = result.facts.dnssec_status
    return dns_cell, (str(dnssec) if dnssec is not None else "-")


def _tls_cell(result: ProbeResult | None, now: float) -> str:
    if result is None:
        return "-"
    facts = result.facts
    if facts.tls_leaf_expiry is not None:
        leaf_days = (facts.tls_leaf_expiry - now) / 86400
        return f"{leaf_days:.0f}d {facts.tls_version}"
    return str(result.reason) if result.reason else "-"


def to_table(checks: Sequence[TargetCheck], now: float | None = None) -> str:
    now = time.time() if now is None else now
    header = ("TARGET", "CC", "HTTP", "DNS", "DNSSEC", "TLS LEFT", "VERDICT")
    rows = [header]
    for check in checks:
        dns_cell, dnssec_cell = _dns_cells(check.result(ProbeKind.DNS))
        failed = [r for r in check.results if not r.ok]
        reasons = dict.fromkeys(str(r.reason) for r in failed)  # ordered, no repeats
        verdict = "DOWN " + ",".join(reasons) if failed else "UP"
        rows.append(
            (
                check.target.name,
                check.target.country,
                _http_cell(check.result(ProbeKind.HTTP)),
                dns_cell,
                dnssec_cell,
                _tls_cell(check.result(ProbeKind.TLS), now),
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]  # fmt: skip
    up = sum(c.ok for c in checks)
    lines.append(f"{up} of {len(checks)} targets up")
    return "\n".join(lines)


def run_check(config: Config, countries: Sequence[str], output_format: str) -> int:
    """Exit 0 when every selected target is up, 1 when any is down."""
    targets = [t for t in config.targets if not countries or t.country in countries]
    progress = sys.stderr if sys.stderr.isatty() and len(targets) > 10 else None
    checks = asyncio.run(check_targets(config, targets, progress=progress))
    print(to_json(checks) if output_format == "json" else to_table(checks))
    return 0 if all(c.ok for c in checks) else 1
