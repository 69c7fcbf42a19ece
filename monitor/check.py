"""`govwatch check`: one round of every probe for every target, printed as a table or JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from monitor.maintenance import active_window
from monitor.outage import uplink_ok
from monitor.scheduler import Job, guarded_probe
from monitor.settings import Canary, Config, MaintenanceWindow, OutageSettings, Target
from monitor.state import TargetState
from probes.context import ProbeContext, open_probe_context
from probes.registry import PROBES, ProbeFunction
from probes.results import ProbeKind, ProbeResult

# `govwatch check` exits 3 when this machine looks offline (documented in the README).
EXIT_OFFLINE = 3


@dataclass(frozen=True, slots=True)
class TargetCheck:
    target: Target | Canary
    results: tuple[ProbeResult, ...]  # in PROBES order; TLS only for https URLs

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def result(self, kind: ProbeKind) -> ProbeResult | None:
        return next((r for r in self.results if r.kind is kind), None)


@dataclass(frozen=True, slots=True)
class CheckRound:
    """One round: the targets' results and the canaries' word on this machine's uplink."""

    targets: list[TargetCheck]
    canaries: list[TargetCheck]
    settings: OutageSettings
    # Targets covered by a maintenance window when the round ran: name -> the window.
    maintenance: Mapping[str, MaintenanceWindow] = field(default_factory=dict)

    @property
    def failing_canaries(self) -> list[TargetCheck]:
        return [c for c in self.canaries if not c.ok]

    @property
    def offline(self) -> bool:
        """The daemon's rule: enough canaries fail that this machine, not the region, is cut off."""
        return not uplink_ok(len(self.failing_canaries), len(self.canaries), self.settings)

    def state(self, check: TargetCheck) -> TargetState:
        """As the daemon reports it: maintenance first, then this machine's own uplink."""
        if check.target.name in self.maintenance:
            return TargetState.MAINTENANCE
        if self.offline:
            return TargetState.UNKNOWN
        return TargetState.UP if check.ok else TargetState.DOWN

    @property
    def any_down(self) -> bool:
        return any(self.state(c) is TargetState.DOWN for c in self.targets)


async def check_targets(
    config: Config,
    targets: Sequence[Target | Canary],
    *,
    progress: TextIO | None = None,
    probes: Mapping[ProbeKind, ProbeFunction] = PROBES,
) -> list[TargetCheck]:
    """Probe every target once with every probe, `monitor.concurrency` at a time."""
    semaphore = asyncio.Semaphore(config.monitor.concurrency)
    total = sum(len(t.probe_kinds) for t in targets)
    done = 0

    async def one(kind: ProbeKind, target: Target | Canary, ctx: ProbeContext) -> ProbeResult:
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


async def check_round(
    config: Config,
    targets: Sequence[Target],
    *,
    progress: TextIO | None = None,
    probes: Mapping[ProbeKind, ProbeFunction] = PROBES,
) -> CheckRound:
    """The targets and the canaries, probed together in one round."""
    checks = await check_targets(
        config, [*config.canaries, *targets], progress=progress, probes=probes
    )
    count = len(config.canaries)
    now = time.time()
    in_maintenance = {
        t.name: window
        for t in targets
        if (window := active_window(config.maintenance, t, now)) is not None
    }
    return CheckRound(checks[count:], checks[:count], config.outage, in_maintenance)


def to_json(checked: CheckRound) -> str:
    rows: list[dict[str, Any]] = []
    for check in checked.targets:
        assert isinstance(check.target, Target)
        state = checked.state(check).value
        for result in check.results:
            rows.append(
                {"target": check.target.name, "country": check.target.country}
                | result.to_dict()
                | {"target_state": state}
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


def to_table(checked: CheckRound, now: float | None = None) -> str:
    now = time.time() if now is None else now
    header = ("TARGET", "CC", "HTTP", "DNS", "DNSSEC", "TLS LEFT", "VERDICT")
    rows = [header]
    for check in checked.targets:
        assert isinstance(check.target, Target)
        dns_cell, dnssec_cell = _dns_cells(check.result(ProbeKind.DNS))
        failed = [r for r in check.results if not r.ok]
        reasons = ",".join(dict.fromkeys(str(r.reason) for r in failed))  # ordered, no repeats
        window = checked.maintenance.get(check.target.name)
        if window is not None:
            verdict = f"MAINTENANCE ({window.note})" + (f" {reasons}" if reasons else "")
        elif checked.offline:
            verdict = "UNKNOWN" + (f" ({reasons})" if reasons else "")
        else:
            verdict = "DOWN " + reasons if failed else "UP"
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
    if checked.offline:
        lines.append(offline_message(checked))
    else:
        up = sum(checked.state(c) is TargetState.UP for c in checked.targets)
        resting = len(checked.maintenance)
        lines.append(
            f"{up} of {len(checked.targets)} targets up"
            + (f", {resting} in maintenance" if resting else "")
        )
    return "\n".join(lines)


def offline_message(checked: CheckRound) -> str:
    failing = checked.failing_canaries
    why = "; ".join(
        f"{c.target.name}: {','.join(dict.fromkeys(str(r.reason) for r in c.results if not r.ok))}"
        for c in failing
    )
    return (
        f"this machine looks offline: {len(failing)} of {len(checked.canaries)} canaries "
        f"(sites outside the region) failed ({why}); no target judged"
    )


def run_check(config: Config, countries: Sequence[str], output_format: str) -> int:
    """Exit 0 when no selected target is down (targets in maintenance are not), 1 when any
    is, 3 when this machine looks offline (the canaries failed): then nothing is said
    about the targets."""
    targets = [t for t in config.targets if not countries or t.country in countries]
    progress = sys.stderr if sys.stderr.isatty() and len(targets) > 10 else None
    checked = asyncio.run(check_round(config, targets, progress=progress))
    print(to_json(checked) if output_format == "json" else to_table(checked))
    if checked.offline:
        if output_format == "json":
            print(offline_message(checked), file=sys.stderr)
        return EXIT_OFFLINE
    return 1 if checked.any_down else 0
