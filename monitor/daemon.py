"""`govwatch run`: a thin shell around the pure core (`monitor.core.step`).

The shell turns what happens into events (a probe result, a reload, a tick
about once a second with the event loop's lag and the descriptors in use),
feeds them to `step`, and applies the effects it returns: history records,
status rows, early probes, canary checks, log lines. The core's world is
immutable, so /metrics, the API and a scrape rendered in a thread read the
current world without locks and without anything being rebuilt per result.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor.api import ApiServer, ClientLimits, build_app
from monitor.config import ConfigError, load_config
from monitor.core import (
    AckDone,
    Acknowledge,
    Change,
    CheckCanaries,
    Effect,
    Event,
    Log,
    ProbeSoon,
    RecordIncident,
    RecordProbe,
    RecordTransition,
    Reload,
    Result,
    StatusChanged,
    Tick,
    World,
    initial_world,
    step,
)
from monitor.exporter import make_registry
from monitor.loop_errors import LoopErrorSummary
from monitor.outage import Scope
from monitor.scheduler import Job, LoopWatch, Scheduler, guard_s, in_shard
from monitor.settings import Canary, Config, Target
from monitor.snapshot import Snapshot
from monitor.storage import (
    DEFAULT_DB_PATH,
    DEFAULT_RETENTION_S,
    AckApplied,
    HistoryWriter,
    Restored,
    StatusRow,
    StorageError,
    StorageSettings,
)
from monitor.tamper import BaselineChange, SignalChange
from monitor.webconfig import WebConfig
from probes.context import ProbeContext, open_probe_context
from probes.results import ProbeKind, ProbeResult
from probes.settings import ProbeSettings

log = logging.getLogger("govwatch.daemon")

SHUTDOWN_BUDGET_S = 5.0
TICK_S = 1.0  # how often incidents are judged and the monitor's own health is read
ACK_POLL_S = 2.0  # how often tamper_acks is read for acknowledgements (`govwatch ack`)


@dataclass(frozen=True, slots=True)
class RunOptions:
    targets_path: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 9781
    db_path: Path = DEFAULT_DB_PATH
    vantage: str | None = None
    shard: tuple[int, int] | None = None  # (K, N), 1-based
    retention_s: float = DEFAULT_RETENTION_S
    api_limits: ClientLimits = field(default_factory=ClientLimits)  # the API's clients
    web_config: WebConfig | None = None  # TLS, basic authentication, headers (--web-config)


def jobs_for(config: Config, targets: Iterable[Target]) -> list[Job]:
    """HTTP and DNS every interval, TLS every tls_interval (https only); canaries: HTTP and DNS,
    outside the concurrency bound."""
    interval, tls_interval = config.monitor.interval_s, config.monitor.tls_interval_s
    jobs: list[Job] = []
    entries: list[Target | Canary] = [*targets, *config.canaries]
    for entry in entries:
        canary = isinstance(entry, Canary)
        for kind in entry.probe_kinds:
            every = tls_interval if kind is ProbeKind.TLS else interval
            jobs.append(Job(entry.name, kind, entry.probe_target, every, canary=canary))
    return jobs


# `govwatch run` exits with 2 when the history cannot be opened, as for a bad config.
EXIT_STORAGE = 2

# Descriptors one probe in flight may hold at its peak (its connection, resolver sockets,
# a DNS probe's bounded fan-out to name servers), and those the rest of the daemon needs
# (the history database and its journal, logs, the loop's own, the signal pipe).
FDS_PER_PROBE = 8
FDS_RESERVED = 64


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one; return the limit now in force.

    The 1,024 soft default is what a flood of idle clients exhausted; systemd's
    LimitNOFILE (deploy/systemd) sets both limits for the service.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, wanted, exc)
            return soft
        return wanted
    return soft


def probe_slots(fd_limit: int, concurrency: int, api_clients: int) -> int:
    """How many probes may run at once within `fd_limit`, keeping a reserve for the daemon
    and the API's clients, so neither probes nor clients can starve the other of descriptors."""
    available = fd_limit - FDS_RESERVED - api_clients
    return max(1, min(concurrency, available // FDS_PER_PROBE))


def fd_ratio() -> float:
    """Open file descriptors / the soft limit (0 where /proc is not there)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0.0
    return used / soft if soft > 0 else 0.0


class Daemon:
    """Feeds events to the core and applies its effects. Runs on one event loop."""

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
        self._reload_ok = True
        self._reload_at: float | None = self._started_at
        self.scheduler: Scheduler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start(); counts its tasks
        self.schedule_lag_s = 0.0
        self.targets = self._in_shard(config)
        self.world: World = initial_world(
            self.targets,
            config.canaries,
            config.outage,
            config.monitor.interval_s,
            statuses=restored.statuses if restored else None,
            infra=restored.infra if restored else None,
            open_incidents=restored.open_incidents if restored else (),
            maintenance=config.maintenance,
            baselines=restored.baselines if restored else None,
            signals=restored.signals if restored else (),
            urls=restored.urls if restored else None,
        )
        self._writer.set_targets(self.targets, config.canaries)
        now = clock()
        for stale in restored.signals if restored else ():
            if (stale.target, stale.kind) not in self.world.signals:  # no longer configured
                self._writer.add_signal(
                    SignalChange(stale, None, cleared_at=now, cleared_by="removed")
                )
        for target, kind in restored.baselines if restored else ():
            if (target, kind) not in self.world.baselines:  # gone, or its URL changed
                self._writer.put_baseline(BaselineChange(target, kind, None))
        self._last_ack_id = 0
        self._acks_unreadable = False

    def _in_shard(self, config: Config) -> tuple[Target, ...]:
        return tuple(t for t in config.targets if in_shard(t.country, self._shard))

    # -- configuration --

    def jobs(self) -> list[Job]:
        return jobs_for(self.config, self.targets)

    async def load(self, path: Path) -> Config | None:
        """Re-read the targets file in a thread. A broken file keeps the old config."""
        try:
            return await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("reload failed: %s", issue)
        except Exception as exc:
            # A bug in validation must not pass for a good reload: the metric says it failed.
            log.error("reload failed: %s: %s: %s", path, type(exc).__name__, exc, exc_info=True)
        self.reload_failed()
        return None

    def reload_failed(self) -> None:
        self._reload_ok = False

    def apply(self, config: Config) -> None:
        """Take a reloaded config (its probe context is already built)."""
        self.config = config
        self.targets = self._in_shard(config)
        self._writer.set_targets(self.targets, config.canaries)
        self.feed(
            Reload(
                self.targets,
                config.canaries,
                config.outage,
                config.monitor.interval_s,
                config.maintenance,
            )
        )
        self._reload_ok = True
        self._reload_at = self._clock()
        log.info("reloaded %s", config.summary())

    # -- the pipeline --

    async def handle_result(self, job: Job, result: ProbeResult) -> None:
        self.feed(Result(job.name, result))

    def tick(self, loop_lag_s: float, fds: float) -> None:
        self.feed(Tick(loop_lag_s=loop_lag_s, fd_ratio=fds))

    def feed(self, event: Event) -> None:
        now = self._clock()
        self.world, effects = step(self.world, event, now)
        self._apply(effects, now)

    def _apply(self, effects: Sequence[Effect], now: float) -> None:
        changed: dict[str, None] = {}
        for effect in effects:
            if isinstance(effect, RecordProbe):
                self._writer.add_probe(effect.name, effect.result)
            elif isinstance(effect, StatusChanged):
                changed[effect.name] = None
            elif isinstance(effect, RecordTransition):
                t = effect.transition
                self._writer.add_transition(t)
                # Quiet ones are routine or spoken for by the one vantage line: DEBUG only.
                log.log(
                    logging.DEBUG if effect.quiet else logging.INFO,
                    "target %s: %s -> %s%s",
                    t.target,
                    t.old,
                    t.new,
                    f" ({t.reason})" if t.reason else "",
                )
            elif isinstance(effect, RecordIncident):
                self._writer.add_incident(effect.incident)
                _log_incident(effect)
            elif isinstance(effect, ProbeSoon):
                if self.scheduler is not None:
                    self.scheduler.run_soon(effect.name, effect.kind, max(0.0, effect.at - now))
            elif isinstance(effect, CheckCanaries):
                if self.scheduler is not None:
                    # A canary vouches only once all its probes are fresh (monitor/core.py).
                    for canary in self.config.canaries:
                        for kind in canary.probe_kinds:
                            self.scheduler.run_soon(canary.name, kind)
            elif isinstance(effect, Log):
                log.log(logging.getLevelName(effect.level.upper()), "%s", effect.message)
            elif isinstance(effect, SignalChange):
                self._writer.add_signal(effect)
            elif isinstance(effect, BaselineChange):
                self._writer.put_baseline(effect)
            elif isinstance(effect, AckDone):
                self._writer.ack_applied(AckApplied(effect.ack_id, effect.outcome, now))
        if changed:
            world = self.world
            self._writer.put_status(
                StatusRow(
                    status=world.statuses[name],
                    reported=world.reported.get(name, world.statuses[name].state),
                    infra=world.infra.get(name),
                )
                for name in changed
                if name in world.statuses
            )

    def snapshot(self) -> Snapshot:
        """The current view; plain attribute reads, so a scrape thread may call it too."""
        scheduler = self.scheduler
        return Snapshot(
            world=self.world,
            taken_at=self._clock(),
            started_at=self._started_at,
            vantage=self._vantage,
            schedule_lag_s=self.schedule_lag_s,
            last_probe_at=scheduler.last_probe_at if scheduler is not None else None,
            config_reload_ok=self._reload_ok,
            config_reload_at=self._reload_at,
            history=self._writer.stats,
            tasks=len(asyncio.all_tasks(self._loop)) if self._loop is not None else None,
        )

    def start(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._loop = asyncio.get_running_loop()
        self.feed(Tick())
        scheduler.replace_jobs(self.jobs())

    async def apply_acks(self) -> int:
        """Feed the acknowledgements queued in the history since the last call; returns how
        many. A read that fails is logged and retried at the next call."""
        try:
            pending = await self._writer.pending_acks(self._last_ack_id)
        except StorageError as exc:
            if not self._acks_unreadable:  # once per spell, not every poll
                log.warning("cannot read acknowledgements (retrying): %s", exc)
            self._acks_unreadable = True
            return 0
        if self._acks_unreadable:
            log.info("acknowledgements are readable again")
        self._acks_unreadable = False
        for ack in pending:
            self._last_ack_id = max(self._last_ack_id, ack.id)
            self.feed(Acknowledge(ack.target, ack.kind, ack.id, ack.note, ack.requested_by))
        return len(pending)

    async def watch_acks(self) -> None:
        while True:
            await self.apply_acks()
            await asyncio.sleep(ACK_POLL_S)

    async def watch(self, loop_watch: LoopWatch) -> None:
        """Tick about once a second with the loop's lag and the descriptors in use."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            if self.scheduler is not None:
                self.schedule_lag_s = self.scheduler.lag.worst(loop.time())
            self.tick(loop_watch.take_worst(), fd_ratio())


# Measured at 5,000 targets (bench/scale.py with a gc callback): full collections every
# 10-15 s, 0.4-1.0 s each with the GIL held, freeing nothing (the world is acyclic; refcounting
# frees it). Pauses that long stall every probe and read as the monitor's own overload.
GC_THRESHOLDS = (50_000, 20, 100)


def _tune_garbage_collector() -> None:
    """Freeze what start-up built (config, targets, modules: never garbage) out of the
    collector's sight, and make full collections rare; cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _log_incident(effect: RecordIncident) -> None:
    incident = effect.incident
    about = incident.target or incident.country or ""
    if effect.change is Change.OPENED:
        level = logging.ERROR if incident.scope is Scope.REGION else logging.WARNING
        log.log(
            level,
            "incident opened: %s%s (%s)%s",
            incident.scope,
            f" {about}" if about else "",
            incident.dominant_reason or "no reason",
            f"; {incident.hint_text}" if incident.hint_text else "",
        )
    elif effect.change is Change.CLOSED:
        log.info("incident closed: %s", incident.id)


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
            grace_s = guard_s(max(old_settings.timeout_s, settings.timeout_s))
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
    LoopErrorSummary(log).install(loop)  # a flood of clients must not flood the log
    fd_limit = raise_fd_limit()
    slots = probe_slots(fd_limit, config.monitor.concurrency, options.api_limits.max_clients)
    if slots < config.monitor.concurrency:
        log.warning(
            "open-file limit %d leaves room for %d probes at once, not the %d configured "
            "(concurrency); raise the limit (ulimit -n, systemd LimitNOFILE) to probe faster",
            fd_limit,
            slots,
            config.monitor.concurrency,
        )
    try:
        writer = await HistoryWriter.open(
            options.db_path,
            vantage=options.vantage or "",
            settings=StorageSettings(retention_s=options.retention_s),
        )
    except StorageError as exc:
        # One line an operator can act on (a corrupt file, a read-only disk), not a traceback.
        log.error("cannot open the history: %s", exc)
        return EXIT_STORAGE
    try:
        restored = await writer.restore()
    except StorageError as exc:
        log.error("cannot read the history: %s", exc)
        await writer.close()
        return EXIT_STORAGE
    daemon = Daemon(config, writer, vantage=options.vantage, shard=options.shard, restored=restored)
    contexts = _ProbeContexts()
    loop_watch = LoopWatch()
    scheduler = Scheduler(
        await contexts.get(config.probe_settings),
        daemon.handle_result,
        concurrency=slots,
        timeout_s=config.monitor.timeout_s,
        lag_window_s=config.monitor.interval_s,
        loop_watch=loop_watch,
    )
    app = build_app(
        get_snapshot=daemon.snapshot,
        registry=make_registry(daemon.snapshot),
        incidents_since=writer.incidents_since,
        interval_s=config.monitor.interval_s,
    )
    try:
        # Its default 1 s shutdown timeout: a slow client must not eat the 5 s SIGTERM budget.
        api = await ApiServer.start(
            app,
            options.listen_host,
            options.listen_port,
            limits=options.api_limits,
            web_config=options.web_config,
        )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        log.error("cannot listen on %s:%d: %s", options.listen_host, options.listen_port, exc)
        await contexts.close()
        await writer.close()
        return 1

    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        new = await daemon.load(options.targets_path)
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

    _tune_garbage_collector()
    daemon.start(scheduler)
    watchers = [
        asyncio.create_task(loop_watch.run(), name="loop watch"),
        asyncio.create_task(daemon.watch(loop_watch), name="tick"),
        asyncio.create_task(daemon.watch_acks(), name="acknowledgements"),
    ]
    log.info(
        "govwatch running: %s; listening on %s%s; history in %s%s%s",
        config.summary(),
        api.url,
        " (basic authentication)" if options.web_config and options.web_config.users else "",
        options.db_path,
        f"; vantage {options.vantage}" if options.vantage else "",
        f"; shard {options.shard[0]}/{options.shard[1]}" if options.shard else "",
    )
    await stop.wait()
    log.info("stopping")
    try:
        # History first: it is what must survive; the HTTP side and the sessions after.
        async with asyncio.timeout(SHUTDOWN_BUDGET_S - 0.5):
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await scheduler.stop()
            await writer.close()
            await api.close()
            await contexts.close()
    except TimeoutError:
        log.error("shutdown took longer than %.1fs; exiting anyway", SHUTDOWN_BUDGET_S)
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    return 0
