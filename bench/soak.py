"""The soak: `govwatch run` for half an hour on 2,000 simulated targets, a tenth of them flapping.

    .venv/bin/python -m bench.soak                                  # 2,002 targets, 5 s, 30 min
    .venv/bin/python -m bench.soak --duration 300 --targets 400     # a quick look

What runs, each in its own process group, stopped (SIGTERM, then SIGKILL) on the way out
whatever happens: Ctrl-C, SIGTERM, SIGHUP, an error, the end.

- `govwatch simulate` (simulator/): every region country with ceil(targets / 13) sites
  (--targets 2000 is 2,002 targets) and its 3 canaries, real HTTPS servers, a DNSSEC-signed
  DNS server, `--interval` and `--timeout` written into its targets file, and `--flapping`
  of the targets failing and recovering on their own: each in its own fault mode (every mode
  that fails a probe: refused, dropped, black-holed, 5xx, slow, defaced, bombs, redirect
  loops, bad certificates, NXDOMAIN, SERVFAIL, DNS silence), up then down for its own
  `--flap-period` half period, deterministic by `--seed` (simulator/flapping.py).
- `govwatch run` on that targets file (HTTP and DNS every interval, TLS every minute),
  its history in a fresh SQLite file, its log in the work directory.

Sampled from outside every `--sample` seconds: the daemon's RSS (/proc/PID/status VmRSS),
open file descriptors (/proc/PID/fd), CPU; every `--scrape-every` seconds its /metrics:
asyncio tasks (`govwatch_asyncio_tasks`, "n/a" if the daemon does not export it), probes
completed (`govwatch_probes_total`), schedule lag, targets up/down/unknown, the vantage's
impairment and the history's write errors and dropped records.

The verdict, on the samples after `--warmup` (default a sixth of the duration: 5 min of 30):

- **RSS growth < 10 %**: the median of the last 10 % of samples against the first 10 %;
- **file descriptors and asyncio tasks flat**: the least-squares rise over the window is at
  most 16, or 4 standard errors of that rise when the level is noisier (every probe in
  flight holds sockets and tasks: a leak climbs, noise does not); min and max are shown;
- **no exception in the daemon's log**: every entry at ERROR or CRITICAL, and any line
  saying Traceback or Exception, except what is a conclusion rather than a fault (a region
  incident opened, the monitor declaring itself impaired), each printed.

Speed is reported (probes per second achieved against wanted, schedule lag), never judged:
on a 2-core machine 2,000 targets every 5 s is more than one daemon can probe (see README,
Benchmarks), and a soak is about what the daemon holds on to, not how fast it goes.

Prints one summary line (stdout) and writes every sample to a JSON file (`--out`). Exit 0
when every goal is met, 1 when one is not, 2 when the soak could not run. The 1-minute
form runs in `make test`: tests/integration/test_soak.py calls `run_soak`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from bench.fleet import (
    REPO,
    FleetError,
    GovwatchDaemon,
    cpu_seconds,
    git_revision,
    govwatch_command,
    http_get,
    metric_sum,
    open_fds,
    parse_metrics,
    percentile,
    rss_bytes,
)
from monitor.loop_errors import Trouble
from simulator.region import MAX_PER_COUNTRY, SUPPORTED_COUNTRIES

MIB = 2**20
RSS_GROWTH_LIMIT = 0.10
SCRAPED = (
    "govwatch_asyncio_tasks",
    "govwatch_probes_total",
    "govwatch_schedule_lag_seconds",
    "govwatch_country_targets",
    "govwatch_vantage_impaired",
    "govwatch_history_write_errors",
    "govwatch_history_records_dropped",
)
SIMULATOR_START_BUDGET_S = 600.0  # 2,000 signed zones and certificates on a busy machine
STOP_BUDGET_S = 15.0


class SoakError(RuntimeError):
    """The soak could not run (a process would not start or died); the message says why."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SoakSettings:
    targets: int = 2000
    interval_s: float = 5.0
    tls_interval_s: float = 60.0
    timeout_s: float = 2.0
    flapping: float = 0.10  # share of the targets
    flap_period_s: tuple[float, float] = (20.0, 60.0)  # each flapper's up (and down) spell
    duration_s: float = 1800.0  # from the daemon serving to the end, warm-up included
    warmup_s: float | None = None  # default: a sixth of the duration
    sample_s: float = 5.0
    scrape_s: float = 15.0
    seed: int = 1
    dnssec: bool = True

    @property
    def warmup(self) -> float:
        return self.duration_s / 6 if self.warmup_s is None else self.warmup_s

    @property
    def layout(self) -> tuple[tuple[str, ...], int]:
        """(countries, sites per country): every country, as evenly as the count allows."""
        countries = SUPPORTED_COUNTRIES[: min(self.targets, len(SUPPORTED_COUNTRIES))]
        return countries, math.ceil(self.targets / len(countries))

    @property
    def simulated_targets(self) -> int:
        countries, per_country = self.layout
        return len(countries) * per_country

    def check(self) -> None:
        if not 1 <= self.targets <= len(SUPPORTED_COUNTRIES) * MAX_PER_COUNTRY:
            raise ValueError(
                f"--targets must be 1-{len(SUPPORTED_COUNTRIES) * MAX_PER_COUNTRY:,} "
                "(a full /24 per country)"
            )
        if not 0 < self.timeout_s < min(self.interval_s, self.tls_interval_s):
            raise ValueError("--timeout must be positive and shorter than both intervals")
        if not 0 <= self.flapping <= 1:
            raise ValueError("--flapping is a share, between 0 and 1")
        if not 0 <= self.warmup < self.duration_s:
            raise ValueError("--warmup must be shorter than --duration")
        if self.sample_s <= 0 or self.scrape_s <= 0:
            raise ValueError("--sample and --scrape-every must be positive")


def _duration_text(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


# --- the processes ---------------------------------------------------------------------------


@dataclass
class Simulator:
    """`govwatch simulate` as a subprocess in its own process group; its output in a log."""

    settings: SoakSettings
    workdir: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def out_dir(self) -> Path:
        return self.workdir / "region"

    @property
    def targets_file(self) -> Path:
        return self.out_dir / "targets.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "simulator.log"

    @property
    def command(self) -> list[str]:
        s = self.settings
        countries, per_country = s.layout
        low, high = s.flap_period_s
        command = [
            *govwatch_command(),
            "simulate",
            "--countries", ",".join(countries),
            "--per-country", str(per_country),
            "--out", str(self.out_dir),
            "--control", "127.0.0.1:0",
            "--interval", _duration_text(s.interval_s),
            "--timeout", _duration_text(s.timeout_s),
            "--tls-interval", _duration_text(s.tls_interval_s),
            "--flapping", f"{s.flapping:g}",
            "--flap-period", f"{_duration_text(low)}-{_duration_text(high)}",
            "--seed", str(s.seed),
        ]  # fmt: skip
        return command if s.dnssec else [*command, "--no-dnssec"]

    def start(self, budget_s: float = SIMULATOR_START_BUDGET_S) -> float:
        """Start it and wait for its targets file (written once every server listens)."""
        began = time.monotonic()
        with self.log_path.open("ab") as output:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,  # Ctrl-C reaches the soak, which stops it in order
            )
        while time.monotonic() - began < budget_s:
            if not self.alive():
                raise SoakError("govwatch simulate exited before serving:\n" + self.log_tail())
            if self.targets_file.exists():
                return time.monotonic() - began
            time.sleep(0.2)
        raise SoakError(f"govwatch simulate did not serve within {budget_s:.0f} s")

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process_group(process)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def switches(self) -> int:
        """Faults switched on or off by the flapping sites, from the simulator's log."""
        with contextlib.suppress(OSError):
            return sum(" fault site " in line for line in self.log_path.open(errors="replace"))
        return 0


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group, SIGKILL if it lingers; then the group is gone."""
    for sig, wait_s in ((signal.SIGTERM, STOP_BUDGET_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything it left behind in its group


def _stop_daemon(daemon: GovwatchDaemon) -> int | None:
    """The daemon's exit code; its process group is gone afterwards whatever it did."""
    pid = daemon.pid if daemon.alive() else None
    code, _ = daemon.stop(timeout_s=STOP_BUDGET_S)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return code


@contextlib.contextmanager
def stopped_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the soak as Ctrl-C does: through every `finally`."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- sampling --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the daemon started serving
    rss: int
    fds: int
    cpu_s: float
    # From /metrics (None when this sample did not scrape, or the daemon exports no such metric)
    tasks: float | None = None
    probes: float | None = None
    lag_s: float | None = None
    up: float | None = None
    down: float | None = None
    unknown: float | None = None
    impaired: bool | None = None
    history_errors: float | None = None
    history_dropped: float | None = None


def take_sample(daemon: GovwatchDaemon, t: float, *, scrape: bool) -> Sample:
    sample = Sample(
        t=t, rss=rss_bytes(daemon.pid), fds=open_fds(daemon.pid), cpu_s=cpu_seconds(daemon.pid)
    )
    if not scrape:
        return sample
    answer = http_get(daemon.url("/metrics"), timeout_s=60)
    if answer.status != 200:
        return sample
    samples = parse_metrics(answer.body, SCRAPED)
    names = {s.name for s in samples}

    def value(name: str, **labels: str) -> float | None:
        return metric_sum(samples, name, **labels) if name in names else None

    impaired = value("govwatch_vantage_impaired")
    return replace(
        sample,
        tasks=value("govwatch_asyncio_tasks"),
        probes=value("govwatch_probes_total"),
        lag_s=value("govwatch_schedule_lag_seconds"),
        up=value("govwatch_country_targets", state="up"),
        down=value("govwatch_country_targets", state="down"),
        unknown=value("govwatch_country_targets", state="unknown"),
        impaired=None if impaired is None else impaired > 0,
        history_errors=value("govwatch_history_write_errors_total"),
        history_dropped=value("govwatch_history_records_dropped_total"),
    )


def sample_until(
    daemon: GovwatchDaemon, simulator: Simulator, settings: SoakSettings, events: list[str]
) -> list[Sample]:
    """Sample from the daemon's start until `duration_s` has passed or a process died."""
    samples: list[Sample] = []
    start = time.monotonic()
    next_scrape = start
    ticks = itertools.count()
    while True:
        now = time.monotonic()
        t = now - start
        if not daemon.alive():
            events.append(f"the daemon died at +{t:.0f} s")
            break
        if not simulator.alive():
            events.append(f"the simulator died at +{t:.0f} s")
            break
        last = t >= settings.duration_s
        scrape = now >= next_scrape or last
        if scrape:
            next_scrape += settings.scrape_s
        samples.append(take_sample(daemon, t, scrape=scrape))
        if last:
            break
        due = start + next(ticks) * settings.sample_s + settings.sample_s
        time.sleep(max(0.0, min(due, start + settings.duration_s) - time.monotonic()))
    return samples


# --- analysis (pure) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trend:
    """A resource over the measured window: does it climb?"""

    samples: int
    minimum: float
    maximum: float
    median: float
    slope_per_min: float  # least squares
    trend: float  # the fitted line's rise over the window
    noise: float  # the standard error of that rise (in-flight probes come and go)
    tolerance: float

    @property
    def flat(self) -> bool:
        return self.trend <= self.tolerance


def trend(
    points: Sequence[tuple[float, float]], *, absolute: float = 16.0, noise_factor: float = 4.0
) -> Trend | None:
    """Fit (t, value) points; None for fewer than 4.

    Flat: the fitted rise over the window is at most `absolute` or `noise_factor` standard
    errors, whichever is larger. The level is noisy (every probe in flight holds sockets
    and tasks), so only a climb that the noise cannot explain counts; a leak climbs with
    every probe or every flap, and the longer the run, the smaller the noise it must beat.
    """
    if len(points) < 4:
        return None
    times = [t for t, _ in points]
    values = [v for _, v in points]
    span = times[-1] - times[0]
    mean_t = statistics.fmean(times)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread > 0:
        fit = statistics.linear_regression(times, values)
        slope, intercept = fit.slope, fit.intercept
        residuals = [v - intercept - slope * t for t, v in points]
        squares = sum(r * r for r in residuals)
        noise = math.sqrt(squares / (len(points) - 2) / spread) * span
        # Neighbouring samples that move together carry less news: widen the error as
        # for AR(1) noise, so a slow swing of in-flight work is not taken for a climb.
        lag1 = sum(a * b for a, b in itertools.pairwise(residuals)) / squares if squares else 0.0
        lag1 = min(max(lag1, 0.0), 0.9)
        noise *= math.sqrt((1 + lag1) / (1 - lag1))
    else:
        slope = noise = 0.0
    return Trend(
        samples=len(values),
        minimum=min(values),
        maximum=max(values),
        median=statistics.median(values),
        slope_per_min=slope * 60,
        trend=slope * span,
        noise=noise,
        tolerance=max(absolute, noise_factor * noise),
    )


@dataclass(frozen=True, slots=True)
class RssGrowth:
    early_mib: float  # median of the first 10 % of the window
    late_mib: float  # median of the last 10 %
    max_mib: float

    @property
    def growth(self) -> float:
        return (self.late_mib - self.early_mib) / self.early_mib if self.early_mib else math.inf

    @property
    def ok(self) -> bool:
        return self.growth < RSS_GROWTH_LIMIT


def rss_growth(rss: Sequence[int]) -> RssGrowth | None:
    if len(rss) < 2:
        return None
    tenth = max(1, len(rss) // 10)
    return RssGrowth(
        early_mib=statistics.median(rss[:tenth]) / MIB,
        late_mib=statistics.median(rss[-tenth:]) / MIB,
        max_mib=max(rss) / MIB,
    )


# One entry of the daemon's text log: "2026-01-01 12:00:00,123 LEVEL logger: message".
_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ([A-Z]+) ([\w.]+): (.*)$")
# What the daemon concludes about the world at ERROR level: news, not faults of its own.
EXPECTED_ERRORS = (
    re.compile(r"^incident opened: region\b"),
    re.compile(r"^monitor impaired \("),
)


# The event loop's own error reports, summarised by monitor/loop_errors.py at WARNING:
# "TLS clients failing: <first>" then "TLS clients failing: 20 more in the last 60s (...)".
_LOOP_ERRORS = re.compile(
    "^(?:" + "|".join(re.escape(t.value) for t in Trouble) + r"): (?:(\d+) more in)?"
)


@dataclass(frozen=True, slots=True)
class LogReport:
    problems: tuple[str, ...]  # each a whole entry (a traceback stays with its message)
    levels: dict[str, int]  # entries per level
    expected_errors: int
    incidents_opened: int
    incidents_closed: int
    loop_errors: int = 0  # reports of the event loop's exception handler (summarised)


def read_log(lines: Sequence[str]) -> LogReport:
    """Entries (with their continuation lines) that are exceptions, and what else was said."""
    entries: list[tuple[str | None, str, list[str]]] = []  # (level, message, all lines)
    for line in lines:
        match = _ENTRY.match(line)
        if match is not None:
            entries.append((match[1], match[3], [line]))
        elif entries:
            entries[-1][2].append(line)
        else:
            entries.append((None, line, [line]))  # before any entry: raw stderr
    problems, expected = [], 0
    levels: Counter[str] = Counter()
    opened = closed = loop_errors = 0
    for level, message, block in entries:
        levels[level or "raw"] += 1
        if (summary := _LOOP_ERRORS.match(message)) is not None:
            loop_errors += int(summary[1] or 1)
        opened += message.startswith("incident opened:")
        closed += message.startswith("incident closed:")
        text = "\n".join(block)
        severe = level in ("ERROR", "CRITICAL")
        if severe and any(pattern.match(message) for pattern in EXPECTED_ERRORS):
            expected += 1
        elif severe or "Traceback" in text or "Exception" in text:
            problems.append(text)
    return LogReport(tuple(problems), dict(levels), expected, opened, closed, loop_errors)


# --- the report ------------------------------------------------------------------------------


@dataclass
class SoakReport:
    settings: SoakSettings
    simulated_targets: int
    flapping_targets: int
    revision: str
    samples: list[Sample] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    log: LogReport | None = None
    simulator_problems: tuple[str, ...] = ()
    simulator_switches: int = 0
    simulator_start_s: float = math.nan
    daemon_ready_s: float = math.nan
    daemon_exit: int | None = None
    workdir: str = ""

    @property
    def window(self) -> list[Sample]:
        """The samples after the warm-up."""
        return [s for s in self.samples if s.t >= self.settings.warmup]

    @property
    def completed(self) -> bool:
        return (
            bool(self.samples)
            and self.samples[-1].t >= self.settings.duration_s
            and not self.events
        )

    @property
    def rss(self) -> RssGrowth | None:
        return rss_growth([s.rss for s in self.window])

    @property
    def fds(self) -> Trend | None:
        return trend([(s.t, float(s.fds)) for s in self.window])

    @property
    def tasks(self) -> Trend | None:
        """None when the daemon exports no task count (or too few scrapes)."""
        return trend([(s.t, s.tasks) for s in self.window if s.tasks is not None])

    @property
    def exceptions(self) -> tuple[str, ...]:
        return self.log.problems if self.log is not None else ()

    def verdicts(self) -> dict[str, bool | None]:
        """Each goal: met (True), missed (False) or not measurable (None)."""
        rss, fds, tasks = self.rss, self.fds, self.tasks
        return {
            "ran to the end": self.completed,
            "RSS growth < 10 %": None if rss is None else rss.ok,
            "fds flat": None if fds is None else fds.flat,
            "tasks flat": None if tasks is None else tasks.flat,
            "no exception in the log": self.log is not None and not self.exceptions,
        }

    @property
    def passed(self) -> bool:
        """No goal missed (one that cannot be measured, e.g. tasks without the gauge, is n/a)."""
        return all(ok is not False for ok in self.verdicts().values())

    def probe_rates(self) -> tuple[float, float] | None:
        """(achieved, wanted) probes per second over the window (HTTP + DNS + TLS)."""
        scraped = [(s.t, s.probes) for s in self.window if s.probes is not None]
        if len(scraped) < 2 or scraped[-1][0] <= scraped[0][0]:
            return None
        (t0, first), (t1, last) = scraped[0], scraped[-1]
        achieved = (last - first) / (t1 - t0)
        probed = self.simulated_targets + 3  # and the canaries
        wanted = probed * (2 / self.settings.interval_s + 1 / self.settings.tls_interval_s)
        return achieved, wanted

    def summary(self) -> str:
        s = self.settings
        verdict = "PASS" if self.passed else "FAIL"
        parts = [
            f"soak {verdict}: {self.simulated_targets:,} targets every {s.interval_s:g} s "
            f"({self.flapping_targets} flapping) for {_span(s.duration_s)}, warm-up "
            f"{_span(s.warmup)}, govwatch {self.revision}"
        ]
        rss = self.rss
        if rss is not None:
            parts.append(
                f"RSS {rss.early_mib:.0f} -> {rss.late_mib:.0f} MiB ({100 * rss.growth:+.1f} %, "
                f"goal < {100 * RSS_GROWTH_LIMIT:.0f} %)"
            )
        for name, resource in (("fds", self.fds), ("tasks", self.tasks)):
            if resource is None:
                parts.append(f"{name} n/a")
                continue
            parts.append(
                f"{name} {resource.minimum:.0f}-{resource.maximum:.0f} (trend "
                f"{resource.trend:+.0f} ± {resource.noise:.0f}, tolerance "
                f"{resource.tolerance:.0f}: {'flat' if resource.flat else 'GROWING'})"
            )
        parts.append(f"{len(self.exceptions)} exceptions in the log")
        rates = self.probe_rates()
        if rates is not None:
            parts.append(f"{rates[0]:.0f} of {rates[1]:.0f} probes/s")
        lags = [x.lag_s for x in self.window if x.lag_s is not None]
        if lags:
            parts.append(f"lag p50/p99 {percentile(lags, 0.5):.1f}/{percentile(lags, 0.99):.1f} s")
        parts += self.events
        return "; ".join(parts)

    def details(self) -> str:
        lines = [
            f"  {goal}: {'met' if ok else 'n/a' if ok is None else 'MISSED'}"
            for goal, ok in self.verdicts().items()
        ]
        window = self.window
        if window:
            cpu = (window[-1].cpu_s - window[0].cpu_s) / max(window[-1].t - window[0].t, 1e-9)
            impaired = [x.impaired for x in window if x.impaired is not None]
            last = next((x for x in reversed(window) if x.up is not None), None)
            lines.append(
                f"  daemon CPU {cpu:.2f} cores; impaired in {sum(impaired)} of {len(impaired)} "
                f"scrapes; at the end up/down/unknown "
                + (f"{last.up:.0f}/{last.down:.0f}/{last.unknown:.0f}" if last else "n/a")
                + f"; history write errors {_last(window, 'history_errors')}, dropped "
                f"{_last(window, 'history_dropped')}"
            )
        if self.log is not None:
            lines.append(
                f"  daemon log: {self.log.levels}; incidents opened {self.log.incidents_opened}, "
                f"closed {self.log.incidents_closed}; expected ERROR conclusions "
                f"{self.log.expected_errors}; event-loop error reports (summarised at "
                f"WARNING, e.g. TLS peers gone mid-write) {self.log.loop_errors}"
            )
        lines.append(
            f"  simulator: up in {self.simulator_start_s:.1f} s, {self.simulator_switches} "
            f"flapping switches, {len(self.simulator_problems)} problems in its log; daemon "
            f"serving after {self.daemon_ready_s:.1f} s, exit {self.daemon_exit}"
        )
        for problem in self.exceptions[:10]:
            lines.append("  daemon log problem: " + problem.replace("\n", "\n    "))
        for problem in self.simulator_problems[:5]:
            lines.append("  simulator log problem: " + problem.replace("\n", "\n    "))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        rss, fds, tasks = self.rss, self.fds, self.tasks
        return {
            "settings": asdict(self.settings) | {"warmup_s": self.settings.warmup},
            "simulated_targets": self.simulated_targets,
            "flapping_targets": self.flapping_targets,
            "revision": self.revision,
            "summary": self.summary(),
            "verdicts": self.verdicts(),
            "passed": self.passed,
            "rss": None if rss is None else asdict(rss) | {"growth": rss.growth},
            "fds": None if fds is None else asdict(fds) | {"flat": fds.flat},
            "tasks": None if tasks is None else asdict(tasks) | {"flat": tasks.flat},
            "probe_rates": self.probe_rates(),
            "log": None if self.log is None else asdict(self.log),
            "simulator_problems": list(self.simulator_problems),
            "simulator_switches": self.simulator_switches,
            "events": self.events,
            "workdir": self.workdir,
            "samples": [asdict(s) for s in self.samples],
        }


def _span(seconds: float) -> str:
    return f"{seconds / 60:.3g} min" if seconds >= 120 else f"{seconds:.3g} s"


def _last(samples: Sequence[Sample], name: str) -> str:
    values = [getattr(s, name) for s in samples if getattr(s, name) is not None]
    return f"{values[-1]:.0f}" if values else "n/a"


def flapping_count(settings: SoakSettings) -> int:
    return round(settings.flapping * settings.simulated_targets)


# --- the run ---------------------------------------------------------------------------------


def run_soak(settings: SoakSettings, workdir: Path) -> SoakReport:
    """Start the simulator and the daemon in `workdir`, sample, stop both, judge."""
    settings.check()
    workdir.mkdir(parents=True, exist_ok=True)
    report = SoakReport(
        settings=settings,
        simulated_targets=settings.simulated_targets,
        flapping_targets=flapping_count(settings),
        revision=git_revision(),
        workdir=str(workdir),
    )
    simulator = Simulator(settings, workdir)
    daemon: GovwatchDaemon | None = None
    try:
        log(
            f"starting the simulator: {report.simulated_targets} targets, {report.flapping_targets} flapping"
        )
        report.simulator_start_s = simulator.start()
        daemon = GovwatchDaemon(simulator.targets_file, workdir)
        log(f"simulator up after {report.simulator_start_s:.1f} s; starting the daemon")
        try:
            daemon.start()
        except FleetError as exc:
            raise SoakError(str(exc)) from None
        report.daemon_ready_s = daemon.ready_after_s
        log(
            f"daemon serving; sampling for {settings.duration_s:g} s (warm-up {settings.warmup:g} s)"
        )
        report.samples = sample_until(daemon, simulator, settings, report.events)
    finally:
        if daemon is not None:
            report.daemon_exit = _stop_daemon(daemon)
        simulator.stop()
    if daemon is not None:
        report.log = read_log(daemon.log_path.read_text(errors="replace").splitlines())
    simulator_log = read_log(simulator.log_path.read_text(errors="replace").splitlines())
    report.simulator_problems = simulator_log.problems
    report.simulator_switches = simulator.switches()
    return report


def reproduce(settings: SoakSettings) -> str:
    """The command line for these settings (defaults left out)."""
    default = SoakSettings()
    parts = [".venv/bin/python -m bench.soak"]
    for flag, name in (
        ("--targets", "targets"), ("--interval", "interval_s"), ("--timeout", "timeout_s"),
        ("--tls-interval", "tls_interval_s"), ("--flapping", "flapping"), ("--duration", "duration_s"), ("--warmup", "warmup_s"),
        ("--sample", "sample_s"), ("--scrape-every", "scrape_s"), ("--seed", "seed"),
    ):  # fmt: skip
        value = getattr(settings, name)
        if value != getattr(default, name):
            parts.append(f"{flag} {value:g}")
    if settings.flap_period_s != default.flap_period_s:
        parts.append("--flap-period {:g}-{:g}".format(*settings.flap_period_s))
    if not settings.dnssec:
        parts.append("--no-dnssec")
    return " ".join(parts)


def _seconds_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX seconds, got {text!r}") from None
    if not 0 < pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"expected 0 < MIN <= MAX, got {text!r}")
    return pair


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    d = SoakSettings()
    parser.add_argument(
        "--targets",
        type=int,
        default=d.targets,
        help=f"simulated targets (default {d.targets:,}; rounded up to a multiple of 13)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=d.interval_s,
        help=f"HTTP and DNS probe interval, s (default {d.interval_s:g})",
    )
    parser.add_argument(
        "--tls-interval",
        type=float,
        default=d.tls_interval_s,
        help=f"TLS probe interval, s (default {d.tls_interval_s:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=d.timeout_s,
        help=f"probe timeout, s (default {d.timeout_s:g})",
    )
    parser.add_argument(
        "--flapping",
        type=float,
        default=d.flapping,
        help=f"share of the targets that flap (default {d.flapping:g})",
    )
    parser.add_argument(
        "--flap-period",
        type=_seconds_range,
        default=d.flap_period_s,
        metavar="MIN-MAX",
        help="each flapping target's up (and down) spell, s (default {:g}-{:g})".format(
            *d.flap_period_s
        ),
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=d.duration_s,
        help=f"seconds from the daemon serving to the end, warm-up included (default {d.duration_s:g})",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        help="seconds not judged at the start (default a sixth of --duration)",
    )
    parser.add_argument(
        "--sample",
        type=float,
        default=d.sample_s,
        help=f"/proc sample period, s (default {d.sample_s:g})",
    )
    parser.add_argument(
        "--scrape-every",
        type=float,
        default=d.scrape_s,
        help=f"/metrics scrape period, s (default {d.scrape_s:g})",
    )
    parser.add_argument(
        "--seed", type=int, default=d.seed, help=f"which targets flap, and how (default {d.seed})"
    )
    parser.add_argument(
        "--no-dnssec", action="store_true", help="unsigned zones (the DNS probe skips DNSSEC)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the JSON file of samples and figures (default: in the temp directory)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (logs, history) even when every goal is met",
    )
    args = parser.parse_args(argv)
    settings = SoakSettings(
        targets=args.targets,
        interval_s=args.interval,
        tls_interval_s=args.tls_interval,
        timeout_s=args.timeout,
        flapping=args.flapping,
        flap_period_s=args.flap_period,
        duration_s=args.duration,
        warmup_s=args.warmup,
        sample_s=args.sample,
        scrape_s=args.scrape_every,
        seed=args.seed,
        dnssec=not args.no_dnssec,
    )
    try:
        settings.check()
    except ValueError as exc:
        parser.error(str(exc))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out or Path(tempfile.gettempdir()) / f"govwatch-soak-{stamp}.json"
    workdir = Path(tempfile.mkdtemp(prefix="govwatch-soak-"))
    meta = {
        "command": reproduce(settings),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "started": stamp,
    }
    report: SoakReport | None = None
    try:
        with stopped_on_signals():
            report = run_soak(settings, workdir)
    except SoakError as exc:
        log(f"the soak could not run: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted; every process it started is stopped")
        return 2
    finally:
        if report is not None:
            out.write_text(json.dumps({"meta": meta} | report.to_json(), indent=1) + "\n")
        if report is not None and report.passed and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work directory kept (logs, history): {workdir}")
    print(report.summary())
    print(report.details())
    print(f"command: {meta['command']}\nsamples: {out}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
