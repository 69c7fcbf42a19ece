"""The scheduler with stand-in probe functions: timing, bounds and job bookkeeping."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time

import pytest

from monitor.logs import JsonFormatter
from monitor.scheduler import Job, LagTracker, LoopWatch, Scheduler, in_shard, stable_offset
from probes.context import ProbeContext, make_resolver, make_ssl_context
from probes.registry import ProbeFunction
from probes.results import LocalFault, ProbeKind, ProbeResult, Reason
from probes.settings import ProbeSettings, ProbeTarget


def context() -> ProbeContext:
    settings = ProbeSettings(timeout_s=0.5)
    return ProbeContext(settings, make_ssl_context(None), make_resolver(settings))


class Recorder:
    """A stand-in probe that records start and end times and how many run at once."""

    def __init__(self, duration_s: float = 0.05) -> None:
        self.duration_s = duration_s
        self.runs: list[tuple[str, float, float]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def probe(self, target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
        start = time.monotonic()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(self.duration_s)
        self.in_flight -= 1
        self.runs.append((target.url, start, time.monotonic()))
        return ProbeResult(ProbeKind.HTTP, True, None, self.duration_s, time.time())


async def handled(job: Job, result: ProbeResult) -> None:
    return None


def job(name: str, interval_s: float) -> Job:
    return Job(name, ProbeKind.HTTP, ProbeTarget(url=f"https://{name}.test/"), interval_s)


async def test_runs_of_one_job_never_overlap_and_concurrency_is_bounded() -> None:
    recorder = Recorder(duration_s=0.1)
    scheduler = Scheduler(
        context(),
        handled,
        concurrency=2,
        timeout_s=0.5,
        lag_window_s=1.0,
        probes={ProbeKind.HTTP: recorder.probe},
        jitter_s=0.0,
    )
    # Intervals shorter than a probe: the next run must wait for the previous one.
    scheduler.replace_jobs([job(f"t{i}", 0.05) for i in range(5)])
    await asyncio.sleep(1.0)
    await scheduler.stop()
    assert recorder.max_in_flight == 2
    for name in {url for url, _, _ in recorder.runs}:
        spans = sorted((s, e) for url, s, e in recorder.runs if url == name)
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    assert scheduler.lag.worst(asyncio.get_running_loop().time()) > 0  # starved by the bound


async def test_run_soon_brings_a_job_forward_and_replace_keeps_unchanged_jobs() -> None:
    recorder = Recorder(duration_s=0.0)
    scheduler = Scheduler(
        context(),
        handled,
        concurrency=4,
        timeout_s=0.5,
        lag_window_s=1.0,
        probes={ProbeKind.HTTP: recorder.probe},
        jitter_s=0.0,
    )
    slow, other = job("slow", 3600.0), job("other", 3600.0)
    # Both are first due minutes from now (their stable offsets in the hour).
    assert min(stable_offset(f"{j.name}/http", 3600.0) for j in (slow, other)) > 60
    scheduler.replace_jobs([slow, other])
    await asyncio.sleep(0.05)
    assert recorder.runs == []
    scheduler.run_soon("slow", ProbeKind.HTTP, 0.05)
    await asyncio.sleep(0.3)
    assert [url for url, _, _ in recorder.runs] == [slow.target.url]
    slow_task = scheduler._runs[slow.key].task
    other_task = scheduler._runs[other.key].task
    scheduler.replace_jobs([slow, job("new", 3600.0)])
    await asyncio.sleep(0)
    assert scheduler._runs[slow.key].task is slow_task and slow_task is not None
    assert not slow_task.done(), "an unchanged job keeps its task"
    assert other_task is not None and other_task.cancelled()
    assert {j.name for j in scheduler.jobs} == {"slow", "new"}
    await scheduler.stop()
    assert scheduler.jobs == []


async def test_a_probe_that_raises_or_hangs_does_not_kill_its_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    results: list[ProbeResult] = []

    async def broken(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise UnicodeDecodeError("hex", b"HACKED", 0, 1, "a hostile charset")
        await asyncio.sleep(10)  # never returns within the guard
        raise AssertionError("unreachable")

    async def record(job: Job, result: ProbeResult) -> None:
        results.append(result)

    scheduler = Scheduler(
        context(),
        record,
        concurrency=1,
        timeout_s=0.01,
        lag_window_s=1.0,
        probes={ProbeKind.HTTP: broken},
        jitter_s=0.0,
    )
    scheduler.replace_jobs([job("x", 0.01)])
    await asyncio.sleep(1.3)
    await scheduler.stop()
    assert calls >= 4
    # A probe that raised is a failed result, never nothing: the target cannot stay "up"
    # on a stale success while a hostile page is served.
    raised = [r for r in results if r.reason is Reason.PROTOCOL_ERROR]
    assert len(raised) == 3 and not any(r.ok for r in raised)
    assert all("UnicodeDecodeError" in (r.error or "") for r in raised)
    assert results[3].local_fault is LocalFault.OVERLOAD  # the one that hung past the guard
    # The traceback once per job, then one line each: a hostile site cannot flood the log.
    assert caplog.text.count("Traceback") == 1
    assert caplog.text.count("raised (a bug; recorded as a failed probe)") == 3
    assert "overran its budget" not in caplog.text  # the core's one impairment line says it


def test_lag_tracker_keeps_only_the_window() -> None:
    lag = LagTracker(window_s=10.0)
    lag.record(0.0, 5.0)
    lag.record(8.0, 1.0)
    assert lag.worst(9.0) == 5.0
    assert lag.worst(12.0) == 1.0
    assert lag.worst(30.0) == 0.0


def test_shards_partition_countries_and_offsets_spread() -> None:
    countries = ["AL", "XK", "MK", "ME", "RS", "BA", "HR", "SI", "BG", "RO", "GR", "MD", "TR"]
    owners = [[k for k in (1, 2, 3) if in_shard(cc, (k, 3))] for cc in countries]
    assert all(len(o) == 1 for o in owners)
    assert all(in_shard(cc, None) for cc in countries)
    offsets = [stable_offset(f"t{i}/http", 30.0) for i in range(200)]
    assert all(0 <= o <= 30 for o in offsets) and max(offsets) - min(offsets) > 25
    assert stable_offset("a/http", 30.0) == stable_offset("a/http", 30.0)


def test_json_log_lines() -> None:
    record = logging.LogRecord(
        "govwatch.daemon", logging.WARNING, "", 0, "incident %s", ("x",), None
    )
    record.target = "e-albania.al"
    event = json.loads(JsonFormatter().format(record))
    assert event["level"] == "warning" and event["msg"] == "incident x"
    assert event["target"] == "e-albania.al" and event["ts"].endswith("Z")


async def first_result(
    probe: ProbeFunction, *, timeout_s: float, loop_watch: LoopWatch | None = None
) -> ProbeResult:
    """The first result one job of `probe` hands to the pipeline."""
    seen: list[ProbeResult] = []

    async def collect(job: Job, result: ProbeResult) -> None:
        seen.append(result)

    watcher = asyncio.create_task(loop_watch.run()) if loop_watch is not None else None
    scheduler = Scheduler(
        context(),
        collect,
        concurrency=1,
        timeout_s=timeout_s,
        lag_window_s=1.0,
        probes={ProbeKind.HTTP: probe},
        jitter_s=0.0,
        loop_watch=loop_watch,
    )
    scheduler.replace_jobs([job("x", 0.5)])
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.05)
    await scheduler.stop()
    if watcher is not None:
        watcher.cancel()
    return seen[0]


async def test_an_overrun_is_a_failed_result_blamed_on_the_monitor() -> None:
    """A probe past its guard yields a failed result marked as the monitor's own overload,
    so the target's state never rests on a stale success and the core sees the overload."""

    async def hangs(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    result = await first_result(hangs, timeout_s=0.01)
    assert not result.ok and result.reason is Reason.HTTP_TIMEOUT
    assert result.local_fault is LocalFault.OVERLOAD


async def test_a_probe_that_timed_out_while_the_loop_was_blocked_was_starved() -> None:
    async def blocked_then_timed_out(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
        await asyncio.sleep(0.02)
        time.sleep(0.3)  # noqa: ASYNC251 -- the whole loop stalls, as under CPU starvation
        await asyncio.sleep(0.02)
        return ProbeResult(ProbeKind.HTTP, False, Reason.CONNECT_TIMEOUT, 0.5, time.time())

    watch = LoopWatch(period_s=0.01)
    result = await first_result(blocked_then_timed_out, timeout_s=0.5, loop_watch=watch)
    assert result.reason is Reason.CONNECT_TIMEOUT and result.local_fault is LocalFault.OVERLOAD


async def test_a_timeout_on_an_idle_loop_is_the_targets() -> None:
    async def timed_out(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
        await asyncio.sleep(0.1)
        return ProbeResult(ProbeKind.HTTP, False, Reason.CONNECT_TIMEOUT, 0.5, time.time())

    result = await first_result(timed_out, timeout_s=0.5, loop_watch=LoopWatch(period_s=0.01))
    assert result.local_fault is None


async def test_canaries_run_while_every_slot_is_held_by_hanging_targets() -> None:
    """Every target hangs until its budget (a frozen uplink): the canaries must still be
    probed on time, or the monitor could not see that it is blind."""
    ran: list[str] = []

    async def probe(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
        ran.append(target.url)
        if "canary" not in target.url:
            await asyncio.sleep(10)
        return ProbeResult(ProbeKind.HTTP, True, None, 0.0, time.time())

    scheduler = Scheduler(
        context(),
        handled,
        concurrency=2,
        timeout_s=20.0,
        lag_window_s=1.0,
        probes={ProbeKind.HTTP: probe},
        jitter_s=0.0,
    )
    hanging = [job(f"site{i}", 0.05) for i in range(4)]
    canary = Job(
        "canary", ProbeKind.HTTP, ProbeTarget(url="https://canary.test/"), 0.2, canary=True
    )
    scheduler.replace_jobs([*hanging, canary])
    await asyncio.sleep(1.0)
    await scheduler.stop()
    assert ran.count("https://canary.test/") >= 3
    assert sum("site" in url for url in ran) == 2  # the slots: the other targets queue
