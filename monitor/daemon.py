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
from monitor.scheduler import GUARD_FACTOR, GUARD_SLACK_S, Job, Scheduler, in_shard
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


def learn_infra(infra: TargetInfra, result: ProbeResult) -> TargetInfra:
    """What a target runs on, updated from one result; facts a result lacks are kept,
    so a failing target still counts with the name servers it had."""
    details = result.details
    if isinstance(details, DnsDetails):
        seen = TargetInfra.from_facts(nameservers=details.nameservers, addresses=details.addresses)
        return replace(
            infra,
            nameservers=seen.nameservers or infra.nameservers,
            address_prefixes=seen.address_prefixes or infra.address_prefixes,
        )
    if isinstance(details, HttpDetails) and details.resolved_addresses:
        seen = TargetInfra.from_facts(addresses=details.resolved_addresses)
        return replace(infra, address_prefixes=seen.address_prefixes)
    if isinstance(details, TlsDetails) and details.issuer:
        return replace(infra, issuer=details.issuer)
    return infra


def jobs_for(config: Config, targets: Iterable[Target]) -> list[Job]:
    """HTTP and DNS every interval, TLS every tls_interval (https only); canaries: HTTP and DNS."""
    interval, tls_interval = config.monitor.interval_s, config.monitor.tls_interval_s
    jobs: list[Job] = []
    entries: list[Target | Canary] = [*targets, *config.canaries]
    for entry in entries:
        for kind in entry.probe_kinds:
            every = tls_interval if kind is ProbeKind.TLS else interval
            jobs.append(Job(entry.name, kind, entry.probe_target, every))
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
        self._infra: dict[str, TargetInfra] = {}
        self._incidents: tuple[Incident, ...] = ()
        self._probe_counts: Counter[tuple[ProbeKind, bool]] = Counter()
        self._reload_ok = True
        self._reload_at: float | None = self._started_at
        self._canary_check_at = 0.0
        self._snapshot: Snapshot | None = None
        self.scheduler: Scheduler | None = None
        self.targets: tuple[Target, ...] = ()
        if restored is not None:
            self._statuses.update(restored.statuses)
            self._infra.update(restored.infra)
            self._incidents = restored.open_incidents
        self._adopt(config)

    # -- configuration --

    def _adopt(self, config: Config) -> None:
        """Take a (new) config: statuses of unchanged targets are kept, others start over."""
        old = _by_name(self.config.targets, self.config.canaries)
        self.config = config
        self.targets = tuple(t for t in config.targets if in_shard(t.country, self._shard))
        wanted = _by_name(self.targets, config.canaries)
        for name in list(self._statuses):
            if name not in wanted:
                del self._statuses[name]
                self._infra.pop(name, None)
        for name, entry in wanted.items():
            if name not in self._statuses or (name in old and old[name] != entry):
                if name in old and old[name] != entry and name in self._statuses:
                    log.info("target %s changed; its state starts over", name)
                self._statuses[name] = initial_status(name)
                self._infra.pop(name, None)
        self._writer.set_targets(self.targets, config.canaries)

    def jobs(self) -> list[Job]:
        return jobs_for(self.config, self.targets)

    def load(self, path: Path) -> Config | None:
        """Re-read the targets file. A broken file keeps the old config (reload metric 0)."""
        try:
            return load_config(path)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("reload failed: %s", issue)
        self.reload_failed()
        return None

    def reload_failed(self) -> None:
        self._reload_ok = False
        self._publish(self._clock())

    def apply(self, config: Config) -> None:
        """Take a reloaded config (its probe context is already built)."""
        self._adopt(config)
        self._reload_ok = True
        self._reload_at = self._clock()
        log.info("reloaded %s", config.summary())
        self._reassess(self._clock())

    # -- the pipeline --

    async def handle_result(self, job: Job, result: ProbeResult) -> None:
        if job.name not in self._statuses:
            return  # removed by a reload while the probe ran
        now = self._clock()
        self._probe_counts[(result.kind, result.ok)] += 1
        self._writer.add_probe(job.name, result)
        self._infra[job.name] = learn_infra(self._infra.get(job.name, TargetInfra()), result)
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
        infra = self._infra
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
            # A canary vouches only once all its probes are fresh (monitor/outage.py).
            for canary in self.config.canaries:
                for kind in canary.probe_kinds:
                    self.scheduler.run_soon(canary.name, kind)
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

    def refresh(self) -> None:
        """Assess and publish the current state now (at start, before any result)."""
        self._reassess(self._clock())

    def start(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.refresh()
        scheduler.replace_jobs(self.jobs())


class _ProbeContexts:
    """The probe context for the current settings. A reload that changes them gets a new
    one; the old one is closed once probes still running on it are past their budget."""

    def __init__(self) -> None:
        self._current: tuple[ProbeSettings, contextlib.AsyncExitStack, ProbeContext] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def get(self, settings: ProbeSettings) -> ProbeContext:
        if self._current is not None and self._current[0] == settings:
            return self._current[2]
        stack = contextlib.AsyncExitStack()
        context = await stack.enter_async_context(open_probe_context(settings))
        if self._current is not None:
            old_settings, old_stack, _ = self._current
            grace_s = max(old_settings.timeout_s, settings.timeout_s) * GUARD_FACTOR + GUARD_SLACK_S
            task = asyncio.create_task(self._close_later(old_stack, grace_s))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        self._current = (settings, stack, context)
        return context

    @staticmethod
    async def _close_later(stack: contextlib.AsyncExitStack, delay_s: float) -> None:
        try:
            await asyncio.sleep(delay_s)
        finally:
            await stack.aclose()

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()  # closes its context at once (finally)
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._current is not None:
            await self._current[1].aclose()
            self._current = None


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
    scheduler = Scheduler(
        await contexts.get(config.probe_settings),
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
    # A short shutdown_timeout: a slow client must not eat the 5 s SIGTERM budget.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
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
        new = daemon.load(options.targets_path)
        if new is None:
            return
        try:
            context = await contexts.get(new.probe_settings)
        except Exception:
            log.exception("reload failed: cannot build the probe context; keeping the old config")
            daemon.reload_failed()
            return
        daemon.apply(new)
        scheduler.context = context
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
        # History first: it is what must survive; the HTTP side and the sessions after.
        async with asyncio.timeout(SHUTDOWN_BUDGET_S - 0.5):
            await scheduler.stop()
            await writer.close()
            await runner.cleanup()
            await contexts.close()
    except TimeoutError:
        log.error("shutdown took longer than %.1fs; exiting anyway", SHUTDOWN_BUDGET_S)
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    return 0
