"""The daemon's shell in-process: real config, the pure core and SQLite history.

Results are handed to `Daemon.handle_result` directly (no network); the clock is ours.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.daemon import Daemon
from monitor.scheduler import Job, Scheduler
from monitor.settings import Config
from monitor.storage import HistoryWriter, connect_readonly, read_signals
from monitor.tamper import BaselineChange, Signal, SignalChange, TamperKind
from probes.context import ProbeContext, make_resolver, make_ssl_context
from probes.results import DnsDetails, ProbeKind, ProbeResult, Reason
from probes.settings import ProbeSettings
from tests.probes.test_page import DEFACED
from tests.unit.test_tamper import LEARNED, http, run

T0 = 1_800_000_000.0
AL_SITES = ("e-albania", "akshi", "tatime", "qkb")
TEXT = "".join(
    f'[[canary]]\nname = "canary{i}"\nurl = "https://canary{i}.test/"\n' for i in (1, 2)
) + "".join(
    f'[[target]]\nname = "{name}"\nurl = "https://{name}.al.test/"\ncountry = "AL"\n'
    'sector = "portal"\n'
    for name in AL_SITES
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class RecordingScheduler(Scheduler):
    """A real scheduler with no jobs started; it records what the pipeline asks of it."""

    def __init__(self) -> None:
        settings = ProbeSettings(timeout_s=1.0)
        context = ProbeContext(settings, make_ssl_context(None), make_resolver(settings))

        async def never(*_: object) -> None:
            raise AssertionError("no result is handled through this scheduler")

        super().__init__(context, never, concurrency=1, timeout_s=1.0, lag_window_s=30.0)
        self.requests: list[tuple[str, ProbeKind]] = []

    def run_soon(self, name: str, kind: ProbeKind, delay_s: float = 0.0) -> None:
        self.requests.append((name, kind))


def result(kind: ProbeKind, now: float, reason: Reason | None = None) -> ProbeResult:
    details = None
    if kind is ProbeKind.DNS:
        details = DnsDetails(
            host="x", addresses=("127.10.1.5",), resolvers=(),
            nameservers=("ns11.akshi.al.test.", "ns12.akshi.al.test."),
        )  # fmt: skip
    return ProbeResult(kind, reason is None, reason, 0.1, now - 0.1, details=details)


async def feed(daemon: Daemon, clock: Clock, names: tuple[str, ...], kind: ProbeKind,
               reason: Reason | None = None) -> None:  # fmt: skip
    for name in names:
        clock.now += 0.01
        job = Job(name, kind, daemon.config.targets[0].probe_target, 30.0)
        await daemon.handle_result(job, result(kind, clock.now, reason))


async def healthy_then_albania_dark(daemon: Daemon, clock: Clock) -> None:
    canaries = ("canary1", "canary2")
    for kind in (ProbeKind.HTTP, ProbeKind.DNS):
        await feed(daemon, clock, canaries + AL_SITES, kind)
    clock.now += 30
    for _ in range(2):  # the failure and its confirming re-probe
        await feed(daemon, clock, AL_SITES, ProbeKind.HTTP, Reason.CONNECT_TIMEOUT)
        clock.now += 2
    for kind in (ProbeKind.HTTP, ProbeKind.DNS):  # the canaries vouch after the failures
        await feed(daemon, clock, canaries, kind)
    daemon.tick(0.0, 0.0)  # incidents are judged on the tick


def config(tmp_path: Path, text: str = TEXT) -> Config:
    return parse_config(text, tmp_path / "targets.toml")


async def test_a_restart_keeps_the_open_outage_and_its_hints(tmp_path: Path) -> None:
    clock = Clock()
    writer = await HistoryWriter.open(tmp_path / "h.sqlite3", background=False)
    daemon = Daemon(config(tmp_path), writer, clock=clock)
    await healthy_then_albania_dark(daemon, clock)
    snapshot = daemon.snapshot()
    assert snapshot is not None
    (before,) = [i for i in snapshot.open_incidents if i.scope == "country"]
    assert before.hints and "ns11.akshi.al.test" in (before.hint_text or "")
    await writer.close()

    writer = await HistoryWriter.open(tmp_path / "h.sqlite3", background=False)
    clock.now += 60
    restarted = Daemon(config(tmp_path), writer, clock=clock, restored=await writer.restore())
    restarted.tick(0.0, 0.0)
    snapshot = restarted.snapshot()
    assert snapshot is not None
    (after,) = [i for i in snapshot.open_incidents if i.scope == "country"]
    assert (after.id, after.started_at, after.hints) == (before.id, before.started_at, before.hints)
    await writer.close()


async def test_reload_keeps_the_state_of_targets_whose_lines_moved(tmp_path: Path) -> None:
    clock = Clock()
    writer = await HistoryWriter.open(tmp_path / "h.sqlite3", background=False)
    daemon = Daemon(config(tmp_path), writer, clock=clock)
    await healthy_then_albania_dark(daemon, clock)
    kept = {t.target.name: (t.state, t.status.since) for t in daemon.snapshot().targets}
    # The first target goes: every other [[target]] moves up by five lines.
    first = TEXT.index("[[target]]")
    second = TEXT.index("[[target]]", first + 1)
    daemon.apply(config(tmp_path, TEXT[:first] + TEXT[second:]))
    after = {t.target.name: (t.state, t.status.since) for t in daemon.snapshot().targets}
    assert set(after) == set(AL_SITES[1:])
    assert all(after[name] == kept[name] for name in after)
    await writer.close()


async def test_an_unverified_failure_asks_for_every_probe_of_every_canary(
    tmp_path: Path,
) -> None:
    clock = Clock()
    writer = await HistoryWriter.open(tmp_path / "h.sqlite3", background=False)
    daemon = Daemon(config(tmp_path), writer, clock=clock)
    scheduler = RecordingScheduler()
    daemon.scheduler = scheduler
    for kind in (ProbeKind.HTTP, ProbeKind.DNS):
        await feed(daemon, clock, ("canary1", "canary2", *AL_SITES), kind)
    clock.now += 30
    for _ in range(2):
        await feed(daemon, clock, AL_SITES[:1], ProbeKind.HTTP, Reason.HTTP_STATUS)
        clock.now += 2
    daemon.tick(0.0, 0.0)
    canary_requests = {r for r in scheduler.requests if r[0].startswith("canary")}
    assert canary_requests == {
        (c, k) for c in ("canary1", "canary2") for k in (ProbeKind.HTTP, ProbeKind.DNS)
    }
    await writer.close()


@pytest.mark.parametrize("url", ["https://x.al.test/", "http://x.al.test/"])
def test_tls_only_for_https(tmp_path: Path, url: str) -> None:
    text = f'[[target]]\nname = "x"\nurl = "{url}"\ncountry = "AL"\nsector = "portal"\n'
    (target,) = config(tmp_path, text).targets
    assert (ProbeKind.TLS in target.probe_kinds) == url.startswith("https")


async def test_a_reload_that_breaks_validation_itself_is_a_failed_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    writer = await HistoryWriter.open(tmp_path / "h.sqlite3", background=False)
    daemon = Daemon(config(tmp_path), writer, clock=Clock())

    def deep(path: Path) -> Config:
        raise RecursionError("maximum recursion depth exceeded")  # what 100k-deep nesting did

    monkeypatch.setattr("monitor.daemon.load_config", deep)
    assert await daemon.load(tmp_path / "targets.toml") is None
    snapshot = daemon.snapshot()
    assert snapshot is not None and snapshot.config_reload_ok is False
    assert "reload failed" in caplog.text and "RecursionError" in caplog.text
    await writer.close()


async def test_a_url_changed_while_stopped_restarts_the_targets_tamper_baselines(
    tmp_path: Path,
) -> None:
    """Another page is not a defacement of the old one: as a reload does, a restart with
    a target's URL changed forgets its baselines (here and in the history) and clears its
    signal as `removed`; the other targets keep theirs."""
    writer = await HistoryWriter.open(tmp_path / "h.sqlite3", background=False)
    Daemon(config(tmp_path), writer, clock=Clock())  # stores the targets and their URLs
    baseline = run(TamperKind.DEFACEMENT, LEARNED).baseline
    assert baseline is not None
    deviation = run(TamperKind.DEFACEMENT, [*LEARNED, http(DEFACED)]).deviation
    assert deviation is not None
    for name in ("e-albania", "akshi"):
        writer.put_baseline(BaselineChange(name, TamperKind.DEFACEMENT, baseline))
        signal = Signal(name, TamperKind.DEFACEMENT, T0, deviation.summary, {}, baseline)
        writer.add_signal(SignalChange(signal, "AL"))
    assert await writer.flush()
    await writer.close()

    writer = await HistoryWriter.open(tmp_path / "h.sqlite3", background=False)
    moved = TEXT.replace("https://e-albania.al.test/", "https://e-albania.gov.al.test/")
    restarted = Daemon(
        config(tmp_path, moved), writer, clock=Clock(), restored=await writer.restore()
    )
    assert set(restarted.world.baselines) == {("akshi", TamperKind.DEFACEMENT)}
    assert set(restarted.world.signals) == {("akshi", TamperKind.DEFACEMENT)}
    assert await writer.flush()
    again = await writer.restore()
    assert set(again.baselines) == {("akshi", TamperKind.DEFACEMENT)}
    assert [s.target for s in again.signals] == ["akshi"]
    with connect_readonly(tmp_path / "h.sqlite3") as conn:
        cleared = {s.target: s.cleared_by for s in read_signals(conn) if not s.raised}
    assert cleared == {"e-albania": "removed"}
    await writer.close()
