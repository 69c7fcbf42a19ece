"""`govwatch run`: the scheduler, the pipeline, the HTTP endpoints and the history writer.

The pipeline for every result: `state.observe` -> `outage.assess` ->
`state.with_vantage` for every target -> a new frozen Snapshot, and records
for the history writer. Everything here runs on one event loop, so the
daemon's own fields need no locks; readers get the Snapshot reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web

from monitor.api import build_app
from monitor.config import Canary, Config, ConfigError, Target, load_config
from monitor.exporter import make_registry
from monitor.outage import Assessment, Incident, TargetInfra, assess
from monitor.scheduler import Job, Scheduler, in_shard
from monitor.snapshot import CanaryView, Snapshot, TargetView
from monitor.state import Step, TargetState, TargetStatus, initial_status, observe, with_vantage
from monitor.storage import HistoryWriter, Restored, StorageSettings
from probes.context import ProbeContext, ProbeSettings, open_probe_context
from probes.dns import DnsDetails
from probes.http import HttpDetails
from probes.results import ProbeKind, ProbeResult
from probes.tls import TlsDetails

log = logging.getLogger("govwatch.daemon")

SHUTDOWN_BUDGET_S = 5.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    targets_path: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 9781
    db_path: Path = Path("data/govwatch.sqlite3")
    vantage: str | None = None
    shard: tuple[int, int] | None = None  # (K, N), 1-based
    retention_s: float = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a target was last seen running on: the raw facts behind TargetInfra."""

    nameservers: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    issuer: str | None = None

    def learn(self, result: ProbeResult) -> _Facts:
        details = result.details
        if isinstance(details, DnsDetails):
            return replace(
                self,
                nameservers=details.nameservers or self.nameservers,
                addresses=details.addresses or self.addresses,
            )
        if isinstance(details, HttpDetails) and details.resolved_addresses:
            return replace(self, addresses=details.resolved_addresses)
        if isinstance(details, TlsDetails) and details.issuer:
            return replace(self, issuer=details.issuer)
        return self

    @property
    def infra(self) -> TargetInfra:
        return TargetInfra.from_facts(
            nameservers=self.nameservers, addresses=self.addresses, issuer=self.issuer
        )


def jobs_for(config: Config, targets: Iterable[Target]) -> list[Job]:
    """HTTP and DNS every interval, TLS every tls_interval (https only); canaries: HTTP and DNS."""
    interval, tls_interval = config.monitor.interval_s, config.monitor.tls_interval_s
    jobs: list[Job] = []
    entries: list[Target | Canary] = [*targets, *config.canaries]
    for entry in entries:
        target = entry.probe_target
        jobs.append(Job(entry.name, ProbeKind.HTTP, target, interval))
        jobs.append(Job(entry.name, ProbeKind.DNS, target, interval))
        if isinstance(entry, Target) and entry.url.startswith("https://"):
            jobs.append(Job(entry.name, ProbeKind.TLS, target, tls_interval))
    return jobs


def _by_name(targets: Iterable[Target], canaries: Iterable[Canary]) -> dict[str, Target | Canary]:
    entries: dict[str, Target | Canary] = {t.name: t for t in targets}
    entries.update((c.name, c) for c in canaries)
    return entries


class Daemon:
    """Holds the current state and turns every probe result into a new Snapshot."""

    def __init__(
        self,
        config: Config,
        writer: HistoryWriter,
        *,
        vantage: str | None = None,
        shard: tuple[int, int] | None = None,
        restored: Restored | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._writer = writer
        self._vantage = vantage
        self._shard = shard
        self._clock = clock
        self._started_at = clock()
        self._statuses: dict[str, TargetStatus] = {}
        self._facts: dict[str, _Facts] = {}
        self._incidents: tuple[Incident, ...] = ()
        self._probe_counts: Counter[tuple[ProbeKind, bool]] = Counter()
        self._reload_ok = True
        self._reload_at: float | None = self._started_at
        self._canary_check_at = 0.0
        self._snapshot: Snapshot | None = None
        self.scheduler: Scheduler | None = None
        if restored is not None:
            self._statuses.update(restored.statuses)
            self._incidents = restored.open_incidents
        self._adopt(config)

    # -- configuration --

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(t for t in self.config.targets if in_shard(t.country, self._shard))

    def _adopt(self, config: Config) -> None:
        """Take a (new) config: statuses of unchanged targets are kept, others start over."""
        old = _by_name(self.config.targets, self.config.canaries)
        self.config = config
        wanted = _by_name(self.targets, config.canaries)
        for name in list(self._statuses):
            if name not in wanted:
                del self._statuses[name]
                self._facts.pop(name, None)
        for name, entry in wanted.items():
            if name not in self._statuses or (name in old and old[name] != entry):
                if name in old and old[name] != entry and name in self._statuses:
                    log.info("target %s changed; its state starts over", name)
                self._statuses[name] = initial_status(name)
                self._facts.pop(name, None)
        self._writer.set_targets(self.targets, config.canaries)

    def jobs(self) -> list[Job]:
        return jobs_for(self.config, self.targets)

    def reload(self, path: Path) -> Config | None:
        """Re-read the targets file. A broken file keeps the old config (reload metric 0)."""
        try:
            config = load_config(path)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("reload failed: %s", issue)
            self._reload_ok = False
            self._publish(self._clock())
            return None
        self._adopt(config)
        self._reload_ok = True
        self._reload_at = self._clock()
        log.info("reloaded %s", config.summary())
        self._reassess(self._clock())
        return config

    # -- the pipeline --

    async def handle_result(self, job: Job, result: ProbeResult) -> None:
        if job.name not in self._statuses:
            return  # removed by a reload while the probe ran
        now = self._clock()
        self._probe_counts[(result.kind, result.ok)] += 1
        self._writer.add_probe(job.name, result)
        self._facts[job.name] = self._facts.get(job.name, _Facts()).learn(result)
        self._apply(observe(self._statuses[job.name], result, now, self.config.outage), now)
        if not result.ok and job.interval_s > self.config.monitor.interval_s and self.scheduler:
            # A failing slow probe (TLS) must not hold a recovered target down for its
            # whole long interval: until it passes, it runs at the normal interval.
            self.scheduler.run_soon(job.name, job.kind, self.config.monitor.interval_s)
        self._reassess(now)

    def _apply(self, step: Step, now: float) -> None:
        self._statuses[step.status.name] = step.status
        if step.transition is not None:
            t = step.transition
            self._writer.add_transition(t)
            log.info(
                "target %s: %s -> %s%s",
                t.target,
                t.old,
                t.new,
                f" ({t.reason})" if t.reason else "",
            )
        if self.scheduler is not None:
            for reprobe in step.reprobes:
                self.scheduler.run_soon(reprobe.target, reprobe.kind, max(0.0, reprobe.at - now))

    def _reassess(self, now: float) -> None:
        settings = self.config.outage
        infra = {name: facts.infra for name, facts in self._facts.items()}
        assessment = assess(
            targets=self.targets,
            canaries=self.config.canaries,
            statuses=self._statuses,
            infra=infra,
            open_incidents=self._incidents,
            settings=settings,
            now=now,
        )
        for target in self.targets:
            self._apply(
                with_vantage(self._statuses[target.name], assessment.vantage_up, now, settings), now
            )
        self._incidents = assessment.incidents
        for incident in assessment.opened:
            log.warning(
                "incident opened: %s%s (%s)%s",
                incident.scope,
                f" {incident.target or incident.country}"
                if incident.target or incident.country
                else "",
                incident.dominant_reason or "no reason",
                f"; {incident.hint_text}" if incident.hint_text else "",
            )
        for incident in assessment.closed:
            log.warning("incident closed: %s", incident.id)
        for incident in (*assessment.opened, *assessment.updated, *assessment.closed):
            self._writer.add_incident(incident)
        if (
            assessment.vantage_check_wanted
            and self.scheduler is not None
            and now - self._canary_check_at >= settings.reprobe_delay_s
        ):
            self._canary_check_at = now
            for canary in self.config.canaries:
                self.scheduler.run_soon(canary.name, ProbeKind.HTTP)
        self._writer.set_status(self._statuses.values(), infra, reported=assessment.states)
        self._publish(now, assessment)

    def _publish(self, now: float, assessment: Assessment | None = None) -> None:
        if assessment is None:
            if self._snapshot is None:
                return
            assessment = self._snapshot.assessment
        states = assessment.states
        self._snapshot = Snapshot(
            taken_at=now,
            started_at=self._started_at,
            vantage=self._vantage,
            targets=tuple(
                TargetView(t, self._statuses[t.name], states.get(t.name, TargetState.UNKNOWN))
                for t in self.targets
            ),
            canaries=tuple(CanaryView(c, self._statuses[c.name]) for c in self.config.canaries),
            assessment=assessment,
            probe_counts=dict(self._probe_counts),
            schedule_lag_s=0.0,
            last_probe_at=None,
            config_reload_ok=self._reload_ok,
            config_reload_at=self._reload_at,
        )

    def snapshot(self) -> Snapshot | None:
        """The current view, with the scheduler's live lag and last-probe time."""
        snapshot, scheduler = self._snapshot, self.scheduler
        if snapshot is None or scheduler is None:
            return snapshot
        loop_now = asyncio.get_running_loop().time()
        return replace(
            snapshot,
            schedule_lag_s=scheduler.lag.worst(loop_now),
            last_probe_at=scheduler.last_probe_at,
        )

    def start(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._reassess(self._clock())
        scheduler.replace_jobs(self.jobs())


class _ProbeContexts:
    """Probe contexts by settings: a reload that changes them gets a new one; the old one
    is closed once in-flight probes are done with it."""

    def __init__(self) -> None:
        self._stacks: list[contextlib.AsyncExitStack] = []
        self._current: tuple[ProbeSettings, ProbeContext] | None = None

    async def get(self, settings: ProbeSettings, grace_s: float) -> ProbeContext:
        if self._current is not None and self._current[0] == settings:
            return self._current[1]
        stack = contextlib.AsyncExitStack()
        context = await stack.enter_async_context(open_probe_context(settings))
        if self._stacks:
            old = self._stacks.pop()
            asyncio.get_running_loop().call_later(
                grace_s, lambda: asyncio.ensure_future(old.aclose())
            )
        self._stacks.append(stack)
        self._current = (settings, context)
        return context

    async def close(self) -> None:
        for stack in self._stacks:
            await stack.aclose()
        self._stacks.clear()


async def run_daemon(options: RunOptions, config: Config) -> int:
    """Run until SIGTERM/SIGINT. Returns the exit code."""
    loop = asyncio.get_running_loop()
    options.db_path.parent.mkdir(parents=True, exist_ok=True)
    writer = await HistoryWriter.open(
        options.db_path,
        vantage=options.vantage or "",
        settings=StorageSettings(retention_s=options.retention_s),
    )
    restored = await writer.restore()
    daemon = Daemon(config, writer, vantage=options.vantage, shard=options.shard, restored=restored)
    contexts = _ProbeContexts()
    context = await contexts.get(config.probe_settings, config.monitor.timeout_s * 2)
    scheduler = Scheduler(
        context,
        daemon.handle_result,
        concurrency=config.monitor.concurrency,
        timeout_s=config.monitor.timeout_s,
        lag_window_s=config.monitor.interval_s,
    )
    app = build_app(
        get_snapshot=daemon.snapshot,
        registry=make_registry(daemon.snapshot),
        incidents_since=writer.incidents_since,
        interval_s=config.monitor.interval_s,
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, options.listen_host, options.listen_port)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", options.listen_host, options.listen_port, exc)
        await runner.cleanup()
        await contexts.close()
        await writer.close()
        return 1

    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        new = daemon.reload(options.targets_path)
        if new is None:
            return
        scheduler.context = await contexts.get(new.probe_settings, new.monitor.timeout_s * 2)
        scheduler.set_timeout(new.monitor.timeout_s)
        scheduler.replace_jobs(daemon.jobs())

    def on_hup() -> None:
        task = asyncio.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    daemon.start(scheduler)
    log.info(
        "govwatch running: %s; listening on http://%s:%d; history in %s%s%s",
        config.summary(),
        options.listen_host,
        options.listen_port,
        options.db_path,
        f"; vantage {options.vantage}" if options.vantage else "",
        f"; shard {options.shard[0]}/{options.shard[1]}" if options.shard else "",
    )
    await stop.wait()
    log.info("stopping")
    try:
        async with asyncio.timeout(SHUTDOWN_BUDGET_S - 0.5):
            await scheduler.stop()
            await runner.cleanup()
            await writer.close()
            await contexts.close()
    except TimeoutError:
        log.error("shutdown took longer than %.1fs; exiting anyway", SHUTDOWN_BUDGET_S)
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    return 0
