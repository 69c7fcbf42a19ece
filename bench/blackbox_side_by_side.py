"""CPU per HTTPS probe: `govwatch run` and Debian's prometheus-blackbox-exporter, side by side.

    .venv/bin/python -m bench.blackbox_side_by_side     # --targets 200 --interval 5 --duration 120

One loopback fleet (bench/fleet.py: nginx, real certificates from a private CA, IP-literal
URLs) of N sites plus 3 canaries is probed at the same time, for the same window, by

- **govwatch**: `govwatch run FILE` on the generated targets file: HTTP and DNS every
  `--interval`, TLS every `--tls-interval` (default 1 h, so that it does not dominate; the
  number of TLS probes in the window is reported), the canaries too, /metrics scraped by the
  bench every `--scrape-every` seconds as Prometheus would;
- **blackbox_exporter** (`/usr/bin/prometheus-blackbox-exporter`, apt-get installed when
  missing and root), module `http_2xx_body`: `prober: http`, the body must match the sites'
  expected text (`fail_if_body_not_matches_regexp`), TLS verified against the fleet's CA
  (`tls_config.ca_file`), `preferred_ip_protocol: ip4`, the same timeout as govwatch's.
  blackbox_exporter probes only when asked, so the bench plays Prometheus: an asyncio loop
  GETs `/probe?target=URL&module=http_2xx_body` for every site once per interval, spread
  evenly over the interval, at most `--driver-concurrency` at a time (64, govwatch's
  default concurrency), over kept-alive connections.

After one interval of warm-up, each process's CPU is read from its own /proc accounting
(utime+stime, threads and children included) at the start and the end of `--duration`
seconds. CPU per HTTPS probe = CPU delta / HTTPS probes completed in the window:

- govwatch: the delta of govwatch_probes_total{probe="http"} (both results). Everything
  the daemon does is included: its DNS probes (one per target and interval; for IP
  literals the DNS probe asks nothing, see bench/fleet.py, but each is scheduled, stepped
  through the core and written to SQLite), the few TLS probes, the history writes and the
  /metrics scrapes. The counts of DNS and TLS probes are reported next to it;
- blackbox_exporter: the /probe requests the driver saw completed in the window, the
  serving of those requests (its "scrape") included.

The bench's own CPU (the driver, the sampling) is in neither figure; it is shown apart, as
is nginx's. Prints a Markdown table, the ratio govwatch / blackbox and the exact command;
`--out FILE` writes the figures as JSON. Not part of the test run; imports nothing from
tests/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.fleet import (
    Fleet,
    FleetError,
    GovwatchDaemon,
    Site,
    cpu_seconds,
    ensure_binary,
    free_port,
    git_revision,
    http_get,
    metric_sum,
    parse_metrics,
    percentile,
    rss_bytes,
    validate_targets,
    write_targets,
)

MIB = 2**20
BLACKBOX_PACKAGES = ("prometheus-blackbox-exporter",)
MODULE = "http_2xx_body"
# Every page of the fleet says "site-NNNNN is up" or "canary-K is up" (bench/fleet.py).
BODY_REGEXP = "(site|canary)-[0-9]+ is up"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- blackbox_exporter ----------------------------------------------------------------------


def blackbox_config(path: Path, ca_file: Path, timeout_s: float) -> Path:
    path.write_text(
        f"""# written by bench/blackbox_side_by_side.py
modules:
  {MODULE}:
    prober: http
    timeout: {timeout_s * 1000:.0f}ms
    http:
      method: GET
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      fail_if_not_ssl: true
      fail_if_body_not_matches_regexp:
        - "{BODY_REGEXP}"
      tls_config:
        ca_file: "{ca_file}"
"""
    )
    return path


@dataclass
class Blackbox:
    config: Path
    workdir: Path
    binary: str = ""
    version: str = ""
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "blackbox.log"

    @property
    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def start(self) -> None:
        self.binary = ensure_binary("prometheus-blackbox-exporter", BLACKBOX_PACKAGES)
        done = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        self.version = ((done.stdout + done.stderr).splitlines() or ["?"])[0].strip()
        check = subprocess.run(
            [self.binary, f"--config.file={self.config}", "--config.check"],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise FleetError(f"blackbox_exporter rejects {self.config}: {check.stderr.strip()}")
        self.port = free_port()
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise FleetError(
                    f"blackbox_exporter exited with {self._process.returncode}: "
                    + self.log_path.read_text(errors="replace")[-1000:]
                )
            if http_get(f"http://127.0.0.1:{self.port}/metrics", timeout_s=2).status == 200:
                return
            time.sleep(0.2)
        self.stop()
        raise FleetError("blackbox_exporter did not serve within 30 s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """Everything read at one instant (the start or the end of the window)."""

    at: float  # monotonic
    govwatch_cpu_s: float
    blackbox_cpu_s: float
    nginx_cpu_s: float
    bench_cpu_s: float
    gw_http_ok: float
    gw_http_failed: float
    gw_dns: float
    gw_tls: float
    gw_scrapes: int


@dataclass
class Driver:
    """Plays Prometheus for blackbox_exporter: every site once per interval, spread evenly."""

    sites: Sequence[Site]
    base: str  # blackbox_exporter's URL
    interval_s: float
    timeout_s: float
    concurrency: int
    completed: list[tuple[float, bool, str]] = field(default_factory=list)  # (at, ok, why)
    lateness: list[float] = field(default_factory=list)
    skipped: int = 0
    sample_failure: str = ""

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        semaphore = asyncio.Semaphore(self.concurrency)
        loop = asyncio.get_running_loop()
        start = loop.time()
        step = self.interval_s / max(1, len(self.sites))
        tasks = [
            asyncio.create_task(self._site(session, semaphore, site, start + i * step, stop))
            for i, site in enumerate(self.sites)
        ]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _site(
        self,
        session: aiohttp.ClientSession,
        semaphore: asyncio.Semaphore,
        site: Site,
        due: float,
        stop: asyncio.Event,
    ) -> None:
        loop = asyncio.get_running_loop()
        query = urllib.parse.urlencode({"target": site.url, "module": MODULE})
        url = f"{self.base}/probe?{query}"
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": f"{self.interval_s:g}"}
        budget = aiohttp.ClientTimeout(total=self.timeout_s + 5)
        while not stop.is_set():
            await asyncio.sleep(max(0.0, due - loop.time()))
            async with semaphore:
                self.lateness.append(loop.time() - due)
                ok, why = False, ""
                try:
                    async with session.get(url, headers=headers, timeout=budget) as response:
                        body = await response.read()
                    if response.status != 200:
                        why = f"HTTP {response.status}"
                    else:
                        ok, why = _blackbox_verdict(body)
                        if not ok and not self.sample_failure:
                            self.sample_failure = body.decode(errors="replace")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    why = type(exc).__name__
                self.completed.append((time.monotonic(), ok, why))
            due += self.interval_s
            now = loop.time()
            while due < now:  # fell a whole interval behind: skip, and say so
                due += self.interval_s
                self.skipped += 1


def _blackbox_verdict(body: bytes) -> tuple[bool, str]:
    samples = parse_metrics(
        body, ("probe_success", "probe_failed_due_to_regex", "probe_http_status_code")
    )
    if metric_sum(samples, "probe_success") == 1:
        return True, ""
    if metric_sum(samples, "probe_failed_due_to_regex") == 1:
        return False, "body regexp"
    status = metric_sum(samples, "probe_http_status_code")
    return False, f"status {status:.0f}" if status else "no response (connect/TLS)"


@dataclass
class Scraper:
    """Scrapes govwatch's /metrics every `every_s`, as Prometheus would, and on demand."""

    daemon: GovwatchDaemon
    every_s: float
    scrapes: int = 0
    walls: list[float] = field(default_factory=list)
    last: dict[str, float] = field(default_factory=dict)

    async def once(self, session: aiohttp.ClientSession) -> dict[str, float]:
        began = time.monotonic()
        async with session.get(
            self.daemon.url("/metrics"), timeout=aiohttp.ClientTimeout(total=60)
        ) as response:
            body = await response.read()
        self.walls.append(time.monotonic() - began)
        self.scrapes += 1
        samples = parse_metrics(body, ("govwatch_probes_total",))
        self.last = {
            "http_ok": metric_sum(samples, "govwatch_probes_total", probe="http", result="success"),
            "http_failed": metric_sum(
                samples, "govwatch_probes_total", probe="http", result="failure"
            ),
            "dns": metric_sum(samples, "govwatch_probes_total", probe="dns"),
            "tls": metric_sum(samples, "govwatch_probes_total", probe="tls"),
        }
        return self.last

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                await self.once(session)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)


async def point(
    session: aiohttp.ClientSession,
    scraper: Scraper,
    daemon: GovwatchDaemon,
    blackbox: Blackbox,
    fleet: Fleet,
) -> Point:
    counters = await scraper.once(session)
    return Point(
        at=time.monotonic(),
        govwatch_cpu_s=cpu_seconds(daemon.pid),
        blackbox_cpu_s=cpu_seconds(blackbox.pid),
        nginx_cpu_s=fleet.cpu_seconds(),
        bench_cpu_s=time.process_time(),
        gw_http_ok=counters["http_ok"],
        gw_http_failed=counters["http_failed"],
        gw_dns=counters["dns"],
        gw_tls=counters["tls"],
        gw_scrapes=scraper.scrapes,
    )


async def side_by_side(
    args: argparse.Namespace, fleet: Fleet, daemon: GovwatchDaemon, blackbox: Blackbox
) -> dict[str, Any]:
    sites = [*fleet.sites, *fleet.canary_sites]
    timeout_s = args.timeout
    driver = Driver(
        sites,
        f"http://127.0.0.1:{blackbox.port}",
        args.interval,
        timeout_s,
        args.driver_concurrency,
    )
    scraper = Scraper(daemon, args.scrape_every)
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=args.driver_concurrency + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        background = [
            asyncio.create_task(driver.run(session, stop)),
            asyncio.create_task(scraper.run(session, stop)),
        ]
        warm_up = args.interval + 1.0
        log(f"warm-up {warm_up:g} s (both probing)")
        await asyncio.sleep(warm_up)
        first = await point(session, scraper, daemon, blackbox, fleet)
        before = len(driver.completed)
        lateness_before = len(driver.lateness)
        skipped_before = driver.skipped
        log(f"measuring for {args.duration:g} s")
        await asyncio.sleep(args.duration)
        last = await point(session, scraper, daemon, blackbox, fleet)
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
    in_window = [c for c in driver.completed[before:] if first.at <= c[0] <= last.at]
    span = last.at - first.at
    gw_http = (last.gw_http_ok + last.gw_http_failed) - (first.gw_http_ok + first.gw_http_failed)
    gw_ok = last.gw_http_ok - first.gw_http_ok
    gw_cpu = last.govwatch_cpu_s - first.govwatch_cpu_s
    bb_probes = len(in_window)
    bb_ok = sum(ok for _, ok, _ in in_window)
    bb_cpu = last.blackbox_cpu_s - first.blackbox_cpu_s
    gw_per = 1000 * gw_cpu / gw_http if gw_http else float("nan")
    bb_per = 1000 * bb_cpu / bb_probes if bb_probes else float("nan")
    lateness = driver.lateness[lateness_before:]
    return {
        "window_s": span,
        "wanted_https_per_s": len(sites) / args.interval,
        "govwatch": {
            "https_probes": gw_http,
            "https_per_s": gw_http / span,
            "success_rate": gw_ok / gw_http if gw_http else float("nan"),
            "dns_probes": last.gw_dns - first.gw_dns,
            "tls_probes": last.gw_tls - first.gw_tls,
            "metrics_scrapes": last.gw_scrapes - first.gw_scrapes,
            "metrics_scrape_p50_s": percentile(scraper.walls, 0.5),
            "cpu_s": gw_cpu,
            "cpu_cores": gw_cpu / span,
            "cpu_ms_per_https_probe": gw_per,
            "rss_mib": rss_bytes(daemon.pid) / MIB,
        },
        "blackbox": {
            "https_probes": bb_probes,
            "https_per_s": bb_probes / span,
            "success_rate": bb_ok / bb_probes if bb_probes else float("nan"),
            "failures": dict(Counter(why for _, ok, why in in_window if not ok)),
            "sample_failure": driver.sample_failure[:2000],
            "cpu_s": bb_cpu,
            "cpu_cores": bb_cpu / span,
            "cpu_ms_per_https_probe": bb_per,
            "rss_mib": rss_bytes(blackbox.pid) / MIB,
        },
        "ratio_govwatch_over_blackbox": gw_per / bb_per if bb_per else float("nan"),
        "nginx_cpu_cores": (last.nginx_cpu_s - first.nginx_cpu_s) / span,
        "bench_cpu_cores": (last.bench_cpu_s - first.bench_cpu_s) / span,
        "driver_lateness_p50_s": percentile(lateness, 0.5),
        "driver_lateness_p99_s": percentile(lateness, 0.99),
        "driver_skipped": driver.skipped - skipped_before,
    }


def reproduce(args: argparse.Namespace) -> str:
    parts = [
        ".venv/bin/python -m bench.blackbox_side_by_side",
        f"--targets {args.targets}",
        f"--interval {args.interval:g}",
        f"--duration {args.duration:g}",
    ]
    if args.timeout_given:
        parts.append(f"--timeout {args.timeout:g}")
    for flag, value, default in (
        ("--tls-interval", args.tls_interval, 3600.0),
        ("--canaries", args.canaries, 3),
        ("--driver-concurrency", args.driver_concurrency, 64),
        ("--scrape-every", args.scrape_every, 15.0),
        ("--concurrency", args.concurrency, None),
        ("--event-loop", args.event_loop, None),
    ):
        if value is not None and value != default:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(parts)


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.1f} %"


def report(r: dict[str, Any]) -> str:
    gw, bb = r["govwatch"], r["blackbox"]
    failures = ", ".join(f"{k} {v}" for k, v in bb["failures"].items()) or "none"
    lines = [
        f"`{r['command']}`",
        "",
        f"{r['targets']} sites + {r['canaries']} canaries on loopback (nginx {r['nginx']}), "
        f"every {r['interval_s']:g} s, timeout {r['timeout_s']:g} s, window {r['window_s']:.0f} s, "
        f"govwatch {r['revision']}, {r['blackbox_version']}, {r['machine']}",
        "",
        "| prober | HTTPS probes in window (/s, wanted "
        f"{r['wanted_https_per_s']:.1f}) | success | CPU s (cores) | CPU ms per HTTPS probe "
        "| RSS | also in the figure |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| govwatch run (everything included) | {gw['https_probes']:.0f} ({gw['https_per_s']:.1f})"
        f" | {_pct(gw['success_rate'])} | {gw['cpu_s']:.2f} ({gw['cpu_cores']:.2f})"
        f" | **{gw['cpu_ms_per_https_probe']:.2f}** | {gw['rss_mib']:.0f} MiB"
        f" | {gw['dns_probes']:.0f} DNS probes (IP literals: no query sent),"
        f" {gw['tls_probes']:.0f} TLS probes (tls_interval {r['tls_interval_s']:g} s),"
        f" {gw['metrics_scrapes']} /metrics scrapes, SQLite history |",
        f"| blackbox_exporter | {bb['https_probes']} ({bb['https_per_s']:.1f})"
        f" | {_pct(bb['success_rate'])} | {bb['cpu_s']:.2f} ({bb['cpu_cores']:.2f})"
        f" | **{bb['cpu_ms_per_https_probe']:.2f}** | {bb['rss_mib']:.0f} MiB"
        f" | serving each /probe request (failures: {failures}) |",
        f"| ratio govwatch / blackbox | | | | **{r['ratio_govwatch_over_blackbox']:.2f}** | | |",
        "",
        f"Outside both figures: nginx {r['nginx_cpu_cores']:.2f} cores, the bench (driver, "
        f"sampling) {r['bench_cpu_cores']:.2f} cores; driver lateness p50 "
        f"{r['driver_lateness_p50_s'] * 1000:.0f} ms / p99 {r['driver_lateness_p99_s'] * 1000:.0f} ms, "
        f"{r['driver_skipped']} probes skipped; DNS queries at the fleet's resolver sink: "
        f"{r['dns_queries_at_sink']}; govwatch log: {r['log_errors']} ERROR, "
        f"{r['log_tracebacks']} Traceback lines.",
    ]
    if bb["sample_failure"]:
        lines.append(f"\nA failed blackbox probe said:\n```\n{bb['sample_failure'][:800]}\n```")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.blackbox_side_by_side", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds (both probers)")
    parser.add_argument("--duration", type=float, default=120.0, help="measured seconds")
    parser.add_argument(
        "--timeout", type=float, help="probe timeout, s (default min(5, interval/2))"
    )
    parser.add_argument("--tls-interval", type=float, default=3600.0, help="govwatch's, seconds")
    parser.add_argument("--canaries", type=int, default=3)
    parser.add_argument("--concurrency", type=int, help="govwatch's [monitor] concurrency")
    parser.add_argument("--driver-concurrency", type=int, default=64,
                        help="/probe requests in flight at once (default 64)")  # fmt: skip
    parser.add_argument("--scrape-every", type=float, default=15.0, help="govwatch /metrics, s")
    parser.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"),
                        help="passed to `govwatch run --event-loop`")  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the figures as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    args.timeout_given = args.timeout is not None
    if args.timeout is None:
        args.timeout = min(5.0, args.interval / 2)
    if args.timeout >= args.interval:
        parser.error("--timeout must be shorter than --interval")

    workdir = Path(tempfile.mkdtemp(prefix="govwatch-bench-blackbox-"))
    fleet = Fleet(targets=args.targets, workdir=workdir / "fleet", canaries=args.canaries)
    daemon: GovwatchDaemon | None = None
    blackbox: Blackbox | None = None
    result: dict[str, Any] = {
        "command": reproduce(args),
        "targets": args.targets,
        "canaries": args.canaries,
        "interval_s": args.interval,
        "timeout_s": args.timeout,
        "tls_interval_s": args.tls_interval,
        "revision": git_revision(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    try:
        log("starting the fleet (nginx)")
        fleet.start()
        result["nginx"] = fleet.version
        targets_file = write_targets(
            fleet,
            workdir / "targets.toml",
            interval_s=args.interval,
            timeout_s=args.timeout,
            tls_interval_s=args.tls_interval,
            concurrency=args.concurrency,
        )
        log(validate_targets(targets_file))
        config = blackbox_config(workdir / "blackbox.yml", fleet.ca_file, args.timeout)
        blackbox = Blackbox(config, workdir)
        blackbox.start()
        result["blackbox_version"] = blackbox.version
        result["blackbox_command"] = shlex.join(blackbox.command)
        log(f"{blackbox.version} on 127.0.0.1:{blackbox.port}")
        extra = ["--event-loop", args.event_loop] if args.event_loop else []
        daemon = GovwatchDaemon(targets_file, workdir, extra_args=extra)
        daemon.start()
        result["govwatch_command"] = shlex.join(daemon.command)
        log(f"govwatch run serving on 127.0.0.1:{daemon.port}")
        result.update(asyncio.run(side_by_side(args, fleet, daemon, blackbox)))
        problems = daemon.log_problems()
        result["log_errors"] = problems.errors
        result["log_tracebacks"] = problems.tracebacks
        result["log_first_problems"] = problems.first
        result["dns_queries_at_sink"] = fleet.dns_queries_seen
    except FleetError as exc:
        log(str(exc))
        return 1
    finally:
        if daemon is not None:
            result["govwatch_exit"], result["govwatch_stop_s"] = daemon.stop()
        if blackbox is not None:
            blackbox.stop()
        fleet.stop()
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(result))
    for line in result["log_first_problems"][:5]:
        print(f"govwatch log: {line}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
