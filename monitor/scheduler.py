"""Runs every (target, probe) job on its own interval and hands results to the pipeline.

One long-lived task per job, so the same probe of the same target never
overlaps itself. Starts are spread over the interval (a stable offset per job
plus jitter) so a catalogue of hundreds of targets does not probe in bursts.
One semaphore bounds the probes in flight across all jobs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from probes.context import ProbeContext
from probes.registry import PROBES, ProbeFunction
from probes.results import LocalFault, ProbeKind, ProbeResult, Reason
from probes.settings import ProbeTarget

log = logging.getLogger(__name__)

# A probe enforces its own budget; this guard only catches a probe that does not.
GUARD_FACTOR = 1.5
GUARD_SLACK_S = 1.0


@dataclass(frozen=True, slots=True)
class Job:
    name: str  # the target's or canary's name
    kind: ProbeKind
    target: ProbeTarget
    interval_s: float
    # A canary's probes never wait for one of the `concurrency` slots: when every target
    # hangs (a frozen uplink, a dark region), the monitor's self-check must still run on
    # time, or it would judge the region while it cannot tell whether it is blind.
    canary: bool = False

    @property
    def key(self) -> tuple[str, ProbeKind]:
        return (self.name, self.kind)


# The pipeline gets every result; it asks for early runs through Scheduler.run_soon.
ResultHandler = Callable[[Job, ProbeResult], Awaitable[None]]


def stable_offset(key: str, interval_s: float) -> float:
    """Where in the interval a job starts: stable across restarts, spread evenly."""
    return (zlib.crc32(key.encode()) / 0xFFFFFFFF) * interval_s


def in_shard(country: str, shard: tuple[int, int] | None) -> bool:
    """--shard K/N keeps the targets whose country's stable hash falls in shard K (1-based).

    Sharding by country keeps every country whole on one instance, so its outage
    verdict is exact rather than judged on a share of its targets.
    """
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(country.encode()) % count == index - 1


class LagTracker:
    """Largest gap between a job's due time and its start, over a sliding window.

    Recording is O(1) amortised (expired samples leave from the left); `worst` walks
    the window and is read once a tick, not per probe.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def record(self, at: float, lag_s: float) -> None:
        self._samples.append((at, lag_s))
        cutoff = at - self.window_s
        while self._samples[0][0] < cutoff:
            self._samples.popleft()

    def worst(self, now: float) -> float:
        return self.worst_since(now - self.window_s)

    def worst_since(self, since: float) -> float:
        """The largest lag recorded at or after `since` (within the window)."""
        return max((lag for at, lag in self._samples if at >= since), default=0.0)


class LoopWatch:
    """Measures the event loop's own lag: how late a short sleep wakes up.

    A loop that lags is a monitor starved of CPU: its probes run out of time
    through no fault of the targets (monitor.core makes the vantage impaired).
    """

    def __init__(self, period_s: float = 0.1) -> None:
        self.period_s = period_s
        self._worst = 0.0  # since the last take_worst()
        self._recent = LagTracker(window_s=60.0)  # lags longer than a period, the last minute

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period_s)
            now = loop.time()
            lag = max(0.0, now - before - self.period_s)
            self._worst = max(self._worst, lag)
            if lag > self.period_s:
                self._recent.record(now, lag)

    def take_worst(self) -> float:
        """The worst lag since the last call."""
        worst, self._worst = self._worst, 0.0
        return worst

    def worst_since(self, since: float) -> float:
        """The worst lag longer than a period seen at or after loop time `since`."""
        return self._recent.worst_since(since)


# A probe that ran out of time while the loop lagged by this share of its budget was starved.
STARVED_LAG_SHARE = 0.25
_TIMEOUT_REASONS = frozenset(
    {Reason.DNS_TIMEOUT, Reason.CONNECT_TIMEOUT, Reason.TLS_HANDSHAKE, Reason.HTTP_TIMEOUT}
)
# What a probe that overran even the guard reports: the phase is unknown, the first is named.
_OVERRUN_REASON = {
    ProbeKind.HTTP: Reason.HTTP_TIMEOUT,
    ProbeKind.DNS: Reason.DNS_TIMEOUT,
    ProbeKind.TLS: Reason.TLS_HANDSHAKE,
}


class _JobRun:
    """A running job: its task, and an earlier run that the pipeline asked for."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.wake = asyncio.Event()
        self.requested_due: float | None = None  # loop time
        self.task: asyncio.Task[None] | None = None

    def request(self, due: float) -> None:
        if self.requested_due is None or due < self.requested_due:
            self.requested_due = due
        self.wake.set()


class Scheduler:
    def __init__(
        self,
        context: ProbeContext,
        handle_result: ResultHandler,
        *,
        concurrency: int,
        timeout_s: float,
        lag_window_s: float,
        probes: Mapping[ProbeKind, ProbeFunction] = PROBES,
        jitter_s: float = 1.0,
        loop_watch: LoopWatch | None = None,
    ) -> None:
        self.context = context  # swapped on reload when probe settings change
        self._handle_result = handle_result
        self._semaphore = asyncio.Semaphore(concurrency)
        self._timeout_s = timeout_s
        self._loop_watch = loop_watch
        self._probes = probes
        self._jitter_s = jitter_s
        self._runs: dict[tuple[str, ProbeKind], _JobRun] = {}
        self.lag = LagTracker(lag_window_s)
        self._raised: set[tuple[str, ProbeKind]] = set()  # jobs whose probe raised once
        self.last_probe_at: float | None = None

    @property
    def jobs(self) -> list[Job]:
        return [run.job for run in self._runs.values()]

    def set_timeout(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s

    def replace_jobs(self, jobs: Iterable[Job]) -> None:
        """Start new jobs, stop removed ones; a job whose settings are unchanged keeps running."""
        wanted = {job.key: job for job in jobs}
        for key, run in list(self._runs.items()):
            if wanted.get(key) != run.job:
                assert run.task is not None
                run.task.cancel()
                del self._runs[key]
        for key, job in wanted.items():
            if key not in self._runs:
                run = _JobRun(job)
                run.task = asyncio.create_task(
                    self._run_job(run), name=f"probe {job.kind} {job.name}"
                )
                self._runs[key] = run

    def run_soon(self, name: str, kind: ProbeKind, delay_s: float = 0.0) -> None:
        """Run a job after `delay_s` instead of at its next interval (never later than that)."""
        run = self._runs.get((name, kind))
        if run is not None:
            run.request(asyncio.get_running_loop().time() + delay_s)

    async def stop(self) -> None:
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        self._runs.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _sleep_until(self, run: _JobRun, due: float) -> float:
        """Sleep until `due` or an earlier requested time; returns the time it was due."""
        loop = asyncio.get_running_loop()
        while True:
            if run.requested_due is not None:
                due = min(due, run.requested_due)
            delay = due - loop.time()
            if delay <= 0:
                break
            run.wake.clear()
            try:
                async with asyncio.timeout(delay):
                    await run.wake.wait()
            except TimeoutError:
                break
        run.requested_due = None
        return due

    async def _run_job(self, run: _JobRun) -> None:
        job = run.job
        loop = asyncio.get_running_loop()
        offset = stable_offset(f"{job.name}/{job.kind}", job.interval_s)
        due = loop.time() + offset + random.uniform(0, self._jitter_s)
        while True:
            due = await self._sleep_until(run, due)
            async with contextlib.nullcontext() if job.canary else self._semaphore:
                started = loop.time()
                self.lag.record(started, max(0.0, started - due))
                result = await self._probe_once(job)
            due = started + job.interval_s
            try:
                await self._handle_result(job, result)
            except Exception:
                # A bug in the pipeline must not kill the job; it is logged once here.
                log.exception("pipeline failed for %s/%s", job.name, job.kind)
            else:
                # Only a probe whose result went through the pipeline counts: /healthz
                # must not call a broken monitor healthy.
                self.last_probe_at = time.time()

    async def _probe_once(self, job: Job) -> ProbeResult:
        began = asyncio.get_running_loop().time()
        result = await guarded_probe(
            self._probes[job.kind],
            job,
            self.context,
            timeout_s=self._timeout_s,
            raised_before=self._raised,
        )
        if (
            result.reason in _TIMEOUT_REASONS
            and result.local_fault is None
            and self._loop_watch is not None
            and self._loop_watch.worst_since(began) >= STARVED_LAG_SHARE * self._timeout_s
        ):
            # It ran out of time while the loop could not run it: starved, not the target's fault.
            return dataclasses.replace(result, local_fault=LocalFault.OVERLOAD)
        return result


def guard_s(timeout_s: float) -> float:
    """How long a probe may run before the guard gives up on it."""
    return timeout_s * GUARD_FACTOR + GUARD_SLACK_S


async def guarded_probe(
    probe: ProbeFunction,
    job: Job,
    context: ProbeContext,
    *,
    timeout_s: float,
    raised_before: set[tuple[str, ProbeKind]] | None = None,
) -> ProbeResult:
    """Run one probe; always a result, whatever the probe does.

    A probe enforces its own budget and never raises for what a server sends. If
    one overruns anyway, the result is a failure marked as the monitor's own
    overload; if one raises (a bug a hostile server found), the result is a
    failure with `protocol_error`, so the target never stays "up" on a stale
    result. The traceback is logged the first time per job (`raised_before`
    remembers), then one line, so a hostile site cannot flood the log.
    """
    loop = asyncio.get_running_loop()
    began, started_at = loop.time(), time.time()
    limit_s = guard_s(timeout_s)
    try:
        async with asyncio.timeout(limit_s):
            return await probe(job.target, context)
    except TimeoutError:
        # The core turns this into one "monitor impaired (overload)" line; one line per
        # probe would flood the log exactly when the machine is struggling.
        log.debug(
            "probe %s/%s overran its budget by %.1fs; counted as the monitor's own overload",
            job.name,
            job.kind,
            limit_s - timeout_s,
        )
        return ProbeResult(
            kind=job.kind,
            ok=False,
            reason=_OVERRUN_REASON[job.kind],
            duration_s=loop.time() - began,
            started_at=started_at,
            error=f"no result within {limit_s:g}s (budget {timeout_s:g}s)",
            local_fault=LocalFault.OVERLOAD,
        )
    except Exception as exc:
        first = raised_before is None or job.key not in raised_before
        if raised_before is not None:
            raised_before.add(job.key)
        log.error(
            "probe %s/%s raised (a bug; recorded as a failed probe): %s: %s",
            job.name,
            job.kind,
            type(exc).__name__,
            exc,
            exc_info=first,
        )
        return ProbeResult(
            kind=job.kind,
            ok=False,
            reason=Reason.PROTOCOL_ERROR,
            duration_s=loop.time() - began,
            started_at=started_at,
            error=f"the probe failed on this answer: {type(exc).__name__}: {exc}"[:300],
        )
