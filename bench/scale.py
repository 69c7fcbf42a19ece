"""`govwatch run` at the scale users run: thousands of healthy HTTPS targets on loopback.

    .venv/bin/python -m bench.scale                      # --targets 1000 5000 10000
                                                         # --duration 300 --interval 60
    .venv/bin/python -m bench.scale --targets 200 --duration 60 --interval 10   # a quick look
    .venv/bin/python -m bench.scale --targets 2000 --interval 20 --freeze       # fleet goes dark
    .venv/bin/python -m bench.scale --targets 5000 --profile                    # py-spy as well

For each N: a loopback fleet (bench/fleet.py: one nginx, real certificates from a private
CA, IP-literal URLs over 65 addresses in 13 /24s) of N sites and 3 canaries; `govwatch run
FILE --listen 127.0.0.1:PORT --db TMP/govwatch.sqlite3` on it as a subprocess (HTTP and DNS
every `--interval`, TLS every `--tls-interval`, default 10 min); one interval of warm-up;
then `--duration` seconds of measurement:

- **HTTPS probes/s** achieved: the delta of govwatch_probes_total{probe="http"} (both
  results) between the first and the last scrape of the window, against (N + canaries) /
  interval wanted;
- **schedule lag**: p50 and p99 of the govwatch_schedule_lag_seconds samples (the gauge is
  the worst lag over the last interval, so these are upper bounds of typical lag);
- **daemon CPU** in cores: utime+stime from /proc/PID/stat, children included, over the
  window (mean) and over each `--sample` period (max); **RSS** (VmRSS, max), open fds;
- **/metrics scrape** wall time of a full GET (p50, max) and its size. The bench scrapes
  every `--scrape-every` seconds (15, a common Prometheus setting), and that cost is part
  of the daemon CPU, as it would be in production;
- at the end: **incidents** active since the daemon started (GET /api/v1/incidents?since=;
  must be 0 on a healthy fleet), targets up, the **log's ERROR and Traceback lines**, and
  how long the daemon took to stop on SIGTERM (README: within 5 s).

Also shown, for context: nginx's CPU (the fleet shares the 2 cores), the bench's own CPU,
and DNS queries that reached the fleet's never-answering resolver (0: IP literals are never
resolved; see bench/fleet.py).

`--freeze`: after the warm-up the whole fleet, canaries included, is frozen (nginx
SIGSTOP: connections are accepted by the kernel and never answered) for two intervals,
thawed, and watched for two more; the measurement window is those four intervals instead
of `--duration`. Expected: exactly one `vantage` incident and no target, country or region
incident, and every target up again at the end.

`--profile`: py-spy (installed into the venv when missing) records the daemon during the
window (speedscope by default, `--profile-format flamegraph` for an SVG); the top functions
by own and total samples are printed, and a `py-spy dump` of every thread is saved at the
end of the window. Figures of a profiled run are not comparable with unprofiled ones.

`--event-loop auto|uvloop|asyncio` (or `--uvloop` / `--no-uvloop`) is passed to
`govwatch run --event-loop`.

Prints one Markdown table row per N, each with the command that reproduces it; `--out
FILE` writes every figure as JSON. Not part of the test run; imports nothing from tests/.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fleet import (
    Fleet,
    FleetError,
    GovwatchDaemon,
    cpu_seconds,
    git_revision,
    http_get,
    metric_sum,
    open_fds,
    parse_metrics,
    percentile,
    rss_bytes,
    validate_targets,
    write_targets,
)

MIB = 2**20
SCRAPED = (
    "govwatch_probes_total",
    "govwatch_schedule_lag_seconds",
    "govwatch_vantage_up",
    "govwatch_vantage_impaired",
    "govwatch_incidents_open",
    "govwatch_country_targets",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Scrape:
    at: float  # monotonic, when the GET began
    wall_s: float
    size: int
    ok: bool
    http: float  # govwatch_probes_total{probe="http"}, both results
    http_failed: float
    dns: float
    tls: float
    lag_s: float
    vantage_up: float
    impaired: tuple[str, ...]
    incidents_open: dict[str, float]
    up: float  # targets reported up (govwatch_country_targets{state="up"})
    down: float
    unknown: float


def scrape(daemon: GovwatchDaemon) -> Scrape:
    began = time.monotonic()
    answer = http_get(daemon.url("/metrics"), timeout_s=120)
    samples = parse_metrics(answer.body, SCRAPED) if answer.status == 200 else []

    def total(name: str, **labels: str) -> float:
        return metric_sum(samples, name, **labels)

    return Scrape(
        at=began,
        wall_s=answer.seconds,
        size=len(answer.body),
        ok=answer.status == 200,
        http=total("govwatch_probes_total", probe="http"),
        http_failed=total("govwatch_probes_total", probe="http", result="failure"),
        dns=total("govwatch_probes_total", probe="dns"),
        tls=total("govwatch_probes_total", probe="tls"),
        lag_s=total("govwatch_schedule_lag_seconds"),
        vantage_up=total("govwatch_vantage_up"),
        impaired=tuple(
            s.labels.get("reason", "")
            for s in samples
            if s.name == "govwatch_vantage_impaired" and s.value
        ),
        incidents_open={
            s.labels.get("scope", ""): s.value
            for s in samples
            if s.name == "govwatch_incidents_open"
        },
        up=total("govwatch_country_targets", state="up"),
        down=total("govwatch_country_targets", state="down"),
        unknown=total("govwatch_country_targets", state="unknown"),
    )


@dataclass(frozen=True, slots=True)
class ProcSample:
    at: float  # monotonic
    cpu_s: float  # the daemon's, children included
    rss: int
    fds: int
    fleet_cpu_s: float
    bench_cpu_s: float


def proc_sample(daemon: GovwatchDaemon, fleet: Fleet) -> ProcSample:
    return ProcSample(
        at=time.monotonic(),
        cpu_s=cpu_seconds(daemon.pid),
        rss=rss_bytes(daemon.pid),
        fds=open_fds(daemon.pid),
        fleet_cpu_s=fleet.cpu_seconds(),
        bench_cpu_s=time.process_time(),
    )


@dataclass
class Window:
    """What was sampled during the measurement window."""

    procs: list[ProcSample] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)
    # Proc samples taken right after the first and last scrapes, so CPU and probe counts
    # cover the same span.
    at_first_scrape: ProcSample | None = None
    at_last_scrape: ProcSample | None = None
    died: bool = False
    events: list[str] = field(default_factory=list)


def sample_window(
    daemon: GovwatchDaemon,
    fleet: Fleet,
    seconds: float,
    *,
    sample_s: float,
    scrape_s: float,
    actions: Sequence[tuple[float, str]] = (),
) -> Window:
    """Sample /proc every `sample_s` and /metrics every `scrape_s` for `seconds`.

    `actions` are (offset, "freeze" | "thaw") to run on the fleet during the window.
    """
    window = Window()
    start = time.monotonic()
    end = start + seconds
    next_proc = next_scrape = start
    pending = sorted(actions)
    while True:
        now = time.monotonic()
        while pending and now - start >= pending[0][0]:
            _, action = pending.pop(0)
            getattr(fleet, action)()
            window.events.append(f"{action} at +{now - start:.1f} s")
            log(f"fleet: {action}")
        if not daemon.alive():
            window.died = True
            window.events.append(f"daemon died at +{now - start:.1f} s")
            log("the daemon died; see its log")
            break
        last = now >= end
        if now >= next_scrape or last:
            window.scrapes.append(scrape(daemon))
            after = proc_sample(daemon, fleet)
            window.procs.append(after)
            if window.at_first_scrape is None:
                window.at_first_scrape = after
            window.at_last_scrape = after
            next_scrape += scrape_s
            next_proc = max(next_proc, after.at + sample_s)
        elif now >= next_proc:
            window.procs.append(proc_sample(daemon, fleet))
            next_proc += sample_s
        if last:
            break
        wake = min(next_proc, next_scrape, end, *(start + at for at, _ in pending))
        time.sleep(max(0.0, min(wake - time.monotonic(), sample_s)))
    return window


# --- py-spy -------------------------------------------------------------------------------


def py_spy() -> str:
    """The venv's py-spy, pip-installed into the venv when missing."""
    path = Path(sys.executable).with_name("py-spy")
    if not path.exists():
        log("installing py-spy into the venv (pip)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return str(path)


@dataclass
class Profiler:
    pid: int
    seconds: float
    output: Path
    fmt: str
    rate: int
    blocking: bool
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            py_spy(), "record", "--pid", str(self.pid),
            "--duration", str(math.ceil(self.seconds)), "--rate", str(self.rate),
            "--format", self.fmt, "--output", str(self.output),
        ]  # fmt: skip
        if not self.blocking:
            command.append("--nonblocking")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=(self.output.parent / (self.output.name + ".log")).open("wb"),
        )

    def finish(self) -> bool:
        if self.process is None:
            return False
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=10)
        return self.process.returncode == 0 and self.output.exists()


def py_spy_dump(pid: int, output: Path) -> bool:
    done = subprocess.run(
        [py_spy(), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60
    )
    output.write_text(done.stdout + done.stderr)
    return done.returncode == 0


def _most(weights: dict[str, float], top: int | None = None) -> list[tuple[str, float]]:
    return sorted(weights.items(), key=lambda item: -item[1])[:top]


def profile_summary(path: Path, fmt: str, top: int = 15) -> str:
    """Top functions by own ("self") and inclusive ("total") samples, from a speedscope or
    raw py-spy profile (idle stacks are not recorded); '' for a flamegraph."""
    stacks: list[tuple[list[str], float]] = []
    threads: dict[str, float] = defaultdict(float)
    unit = "samples"
    if fmt == "speedscope":
        data = json.loads(path.read_text())
        frames = [
            f"{frame.get('name', '?')} ({Path(frame.get('file', '?')).name})"
            for frame in data["shared"]["frames"]
        ]
        for profile in data["profiles"]:
            unit = profile.get("unit", unit)
            weights = profile.get("weights") or [1] * len(profile["samples"])
            for sample, weight in zip(profile["samples"], weights, strict=False):
                stacks.append(([frames[i] for i in sample], float(weight)))
                threads[profile.get("name", "?")] += float(weight)
    elif fmt == "raw":
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                names = stack.split(";")
                stacks.append((names, float(count)))
                threads[names[0]] += float(count)
    else:
        return ""
    total = sum(weight for _, weight in stacks) or 1.0
    own: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)
    for names, weight in stacks:
        if names:
            own[names[-1]] += weight
        for name in set(names):
            inclusive[name] += weight
    lines = [f"py-spy: {total:.1f} {unit} on CPU (not idle), by thread:"]
    lines += [f"  {weight:8.1f}  {name}" for name, weight in _most(threads)]
    lines += [f"top {top} functions:", "  own%  total%  function"]
    for name, weight in _most(own, top):
        lines.append(
            f"  {100 * weight / total:4.1f}  {100 * inclusive[name] / total:5.1f}   {name}"
        )
    lines.append(f"top {top} by total (inclusive):")
    for name, weight in _most(inclusive, top):
        lines.append(f"  {'':4}  {100 * weight / total:5.1f}   {name}")
    return "\n".join(lines)


# --- one N --------------------------------------------------------------------------------


def reproduce(args: argparse.Namespace, count: int) -> str:
    parts = [
        ".venv/bin/python -m bench.scale",
        f"--targets {count}",
        f"--interval {args.interval:g}",
    ]
    if args.freeze:
        parts.append("--freeze")
    else:
        parts.append(f"--duration {args.duration:g}")
    for flag, value, default in (
        ("--timeout", args.timeout, None),
        ("--tls-interval", args.tls_interval, 600.0),
        ("--canaries", args.canaries, 3),
        ("--concurrency", args.concurrency, None),
        ("--event-loop", args.event_loop, None),
        ("--scrape-every", args.scrape_every, 15.0),
    ):
        if value is not None and value != default:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(parts)


def measure(count: int, args: argparse.Namespace, workroot: Path) -> dict[str, Any]:
    workdir = workroot / f"n{count}"
    workdir.mkdir(parents=True, exist_ok=True)
    timeout_s = args.timeout if args.timeout is not None else min(5.0, args.interval / 2)
    result: dict[str, Any] = {
        "targets": count,
        "canaries": args.canaries,
        "interval_s": args.interval,
        "timeout_s": timeout_s,
        "tls_interval_s": args.tls_interval,
        "freeze": args.freeze,
        "event_loop": args.event_loop or "auto (daemon default)",
        "scrape_every_s": args.scrape_every,
        "command": reproduce(args, count),
    }
    fleet = Fleet(
        targets=count, workdir=workdir / "fleet", canaries=args.canaries, workers=args.fleet_workers
    )
    log(f"N={count}: starting the fleet (nginx)")
    fleet.start()
    daemon: GovwatchDaemon | None = None
    profiler: Profiler | None = None
    try:
        targets_file = write_targets(
            fleet,
            workdir / "targets.toml",
            interval_s=args.interval,
            timeout_s=timeout_s,
            tls_interval_s=args.tls_interval,
            concurrency=args.concurrency,
        )
        result["validate"] = validate_targets(targets_file)
        result["fleet"] = {
            "nginx": fleet.version,
            "workers": fleet.workers,
            "addresses": len(fleet.all_addresses),
            "listening_sockets": fleet.listeners,
        }
        extra = ["--event-loop", args.event_loop] if args.event_loop else []
        daemon = GovwatchDaemon(targets_file, workdir, extra_args=extra)
        log(f"N={count}: {result['validate']}")
        daemon.start()
        result["daemon_command"] = shlex.join(daemon.command)
        result["ready_after_s"] = daemon.ready_after_s
        log(
            f"N={count}: daemon serving after {daemon.ready_after_s:.1f} s; warm-up {args.interval:g} s"
        )
        time.sleep(args.interval)
        if not daemon.alive():
            raise FleetError("the daemon died during the warm-up:\n" + daemon.log_tail())

        if args.freeze:
            seconds = 4 * args.interval
            actions = [(0.0, "freeze"), (2 * args.interval, "thaw")]
        else:
            seconds, actions = args.duration, []
        if args.profile:
            args.profile_dir.mkdir(parents=True, exist_ok=True)
            suffix = {"speedscope": "speedscope.json", "flamegraph": "svg", "raw": "txt"}
            output = args.profile_dir / f"scale-n{count}.{suffix[args.profile_format]}"
            profiler = Profiler(
                daemon.pid, seconds, output, args.profile_format, args.profile_rate,
                args.profile_blocking,
            )  # fmt: skip
            profiler.start()
            log(f"N={count}: py-spy recording {seconds:g} s into {output}")
        log(f"N={count}: measuring for {seconds:g} s")
        window = sample_window(
            daemon,
            fleet,
            seconds,
            sample_s=args.sample,
            scrape_s=args.scrape_every,
            actions=actions,
        )
        if fleet.frozen:
            fleet.thaw()
        if profiler is not None:
            dump = profiler.output.with_suffix(".dump.txt")
            if daemon.alive() and py_spy_dump(daemon.pid, dump):
                result["py_spy_dump"] = str(dump)
            if profiler.finish():
                result["profile"] = str(profiler.output)
                result["profile_top"] = profile_summary(profiler.output, profiler.fmt)
            else:
                result["profile"] = f"py-spy failed, see {profiler.output}.log"
        result.update(summarize(window, count, args))
        incidents = incidents_since(daemon)
        result.update(incidents)
        if args.freeze:
            result["freeze_verdict"] = freeze_verdict(window, incidents, count)
        problems = daemon.log_problems()
        result["log_errors"] = problems.errors
        result["log_tracebacks"] = problems.tracebacks
        result["log_warnings"] = problems.warnings
        result["log_first_problems"] = problems.first
        result["dns_queries_at_sink"] = fleet.dns_queries_seen
        result["window_events"] = window.events
        result["daemon_died"] = window.died
    finally:
        if (
            profiler is not None
            and profiler.process is not None
            and profiler.process.poll() is None
        ):
            profiler.process.terminate()
        if daemon is not None:
            code, stop_s = daemon.stop()
            result["exit_code"] = code
            result["stop_s"] = stop_s
            if args.keep:
                result["log"] = str(daemon.log_path)
        fleet.stop()
    return result


def summarize(window: Window, count: int, args: argparse.Namespace) -> dict[str, Any]:
    good = [s for s in window.scrapes if s.ok]
    first, last = (good[0], good[-1]) if len(good) >= 2 else (None, None)
    out: dict[str, Any] = {
        "scrapes": len(window.scrapes),
        "scrapes_failed": len(window.scrapes) - len(good),
    }
    wanted = (count + args.canaries) / args.interval
    out["https_per_s_wanted"] = wanted
    if first is not None and last is not None:
        span = last.at - first.at
        http = last.http - first.http
        out["window_s"] = span
        out["https_probes"] = http
        out["https_per_s"] = http / span
        out["https_failed"] = last.http_failed - first.http_failed
        out["dns_per_s"] = (last.dns - first.dns) / span
        out["tls_probes"] = last.tls - first.tls
        a, b = window.at_first_scrape, window.at_last_scrape
        if a is not None and b is not None and http > 0:
            out["cpu_ms_per_https_probe"] = 1000 * (b.cpu_s - a.cpu_s) / http
        out["targets_up_end"] = last.up
        out["targets_down_end"] = last.down
        out["targets_unknown_end"] = last.unknown
    lags = [s.lag_s for s in good]
    out["lag_samples"] = len(lags)
    out["lag_p50_s"] = percentile(lags, 0.50)
    out["lag_p99_s"] = percentile(lags, 0.99)
    out["lag_max_s"] = max(lags, default=float("nan"))
    walls = [s.wall_s for s in window.scrapes]
    out["scrape_p50_s"] = percentile(walls, 0.50)
    out["scrape_max_s"] = max(walls, default=float("nan"))
    out["metrics_bytes_max"] = max((s.size for s in window.scrapes), default=0)
    procs = window.procs
    if len(procs) >= 2:
        span = procs[-1].at - procs[0].at
        out["cpu_cores"] = (procs[-1].cpu_s - procs[0].cpu_s) / span
        out["cpu_cores_max"] = max(
            (b.cpu_s - a.cpu_s) / (b.at - a.at)
            for a, b in itertools.pairwise(procs)
            if b.at - a.at >= 0.5 * args.sample
        )
        out["fleet_cpu_cores"] = (procs[-1].fleet_cpu_s - procs[0].fleet_cpu_s) / span
        out["bench_cpu_cores"] = (procs[-1].bench_cpu_s - procs[0].bench_cpu_s) / span
    out["rss_mib_max"] = max((p.rss for p in procs), default=0) / MIB
    out["fds_max"] = max((p.fds for p in procs), default=0)
    origin = procs[0].at if procs else 0.0
    out["series"] = {
        "scrapes": [
            {
                "t": round(s.at - origin, 2),
                "wall_s": round(s.wall_s, 4),
                "http": s.http,
                "http_failed": s.http_failed,
                "lag_s": s.lag_s,
                "vantage_up": s.vantage_up,
                "up": s.up,
                "down": s.down,
                "unknown": s.unknown,
            }
            for s in window.scrapes
        ],
        "procs": [
            {"t": round(p.at - origin, 2), "cpu_s": p.cpu_s, "rss_mib": round(p.rss / MIB, 1)}
            for p in procs
        ],
    }
    if args.freeze:
        out["vantage_up_min"] = min((s.vantage_up for s in good), default=float("nan"))
        out["impaired_seen"] = sorted({reason for s in good for reason in s.impaired})
        out["incidents_open_max"] = {
            scope: max(s.incidents_open.get(scope, 0.0) for s in good)
            for scope in sorted({k for s in good for k in s.incidents_open})
        }
    return out


def incidents_since(daemon: GovwatchDaemon) -> dict[str, Any]:
    answer = http_get(daemon.url(f"/api/v1/incidents?since={daemon.started_at - 1:.3f}"), 120)
    if answer.status != 200:
        return {
            "incidents": None,
            "incidents_error": f"HTTP {answer.status}: {answer.body[:200]!r}",
        }
    incidents = json.loads(answer.body)["incidents"]
    keys = ("id", "scope", "country", "target", "started_at", "ended_at", "dominant_reason", "hint")
    return {
        "incidents": len(incidents),
        "incidents_by_scope": dict(Counter(i["scope"] for i in incidents)),
        "incidents_open": sum(i["ended_at"] is None for i in incidents),
        "incident_list": [
            {key: i[key] for key in keys} | {"affected": len(i["affected"])} for i in incidents[:20]
        ],
    }


def freeze_verdict(window: Window, incidents: dict[str, Any], count: int) -> str:
    scopes = incidents.get("incidents_by_scope") or {}
    problems = []
    if scopes.get("vantage", 0) != 1:
        problems.append(f"{scopes.get('vantage', 0)} vantage incidents (expected exactly 1)")
    for scope in ("target", "country", "region"):
        if scopes.get(scope, 0):
            problems.append(f"{scopes[scope]} {scope} incident(s) (expected none)")
    good = [s for s in window.scrapes if s.ok]
    if good and good[-1].up < count:
        problems.append(f"only {good[-1].up:.0f} of {count} targets up at the end")
    if incidents.get("incidents_open"):
        problems.append(f"{incidents['incidents_open']} incident(s) still open at the end")
    return "as expected" if not problems else "; ".join(problems)


# --- output -------------------------------------------------------------------------------

HEADER = (
    "| targets | HTTPS probes/s (wanted) | lag p50 / p99 | daemon CPU (cores, mean / max)"
    " | CPU ms per HTTPS probe | RSS max | /metrics p50 / max (size) | incidents | ERROR / Traceback"
    " | nginx CPU | command |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def _f(value: Any, spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:{spec}}{unit}"


def table_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return (
            f"| {r['targets']:,} | failed: {r['error'].splitlines()[0]} |||||||||`{r['command']}` |"
        )
    incidents = r.get("incidents")
    if incidents is None:
        incident_text = "—"
    elif r.get("freeze"):
        scopes = ", ".join(f"{k} {v}" for k, v in sorted(r.get("incidents_by_scope", {}).items()))
        incident_text = f"{scopes or 'none'} ({r.get('freeze_verdict')})"
    else:
        incident_text = str(incidents)
    return (
        f"| {r['targets']:,}"
        f" | {_f(r.get('https_per_s'), '.1f')} ({r['https_per_s_wanted']:.1f})"
        f" | {_f(r.get('lag_p50_s'), '.2f')} / {_f(r.get('lag_p99_s'), '.2f')} s"
        f" | {_f(r.get('cpu_cores'), '.2f')} / {_f(r.get('cpu_cores_max'), '.2f')}"
        f" | {_f(r.get('cpu_ms_per_https_probe'), '.2f')}"
        f" | {_f(r.get('rss_mib_max'), '.0f', ' MiB')}"
        f" | {_f(r.get('scrape_p50_s'), '.2f')} / {_f(r.get('scrape_max_s'), '.2f')} s"
        f" ({r.get('metrics_bytes_max', 0) / MIB:.1f} MiB)"
        f" | {incident_text}"
        f" | {r.get('log_errors', '—')} / {r.get('log_tracebacks', '—')}"
        f" | {_f(r.get('fleet_cpu_cores'), '.2f')}"
        f" | `{r['command']}` |"
    )


def details(r: dict[str, Any]) -> str:
    lines = [
        f"N={r['targets']:,}: window {_f(r.get('window_s'), '.0f', ' s')}, "
        f"{_f(r.get('https_probes'), '.0f')} HTTPS probes ({_f(r.get('https_failed'), '.0f')} failed), "
        f"DNS {_f(r.get('dns_per_s'), '.1f')}/s, TLS {_f(r.get('tls_probes'), '.0f')}, "
        f"targets up/down/unknown at the end {_f(r.get('targets_up_end'), '.0f')}/"
        f"{_f(r.get('targets_down_end'), '.0f')}/{_f(r.get('targets_unknown_end'), '.0f')}, "
        f"fds max {r.get('fds_max', '—')}, ready after {_f(r.get('ready_after_s'), '.1f', ' s')}, "
        f"stopped in {_f(r.get('stop_s'), '.1f', ' s')} (exit {r.get('exit_code')}), "
        f"bench CPU {_f(r.get('bench_cpu_cores'), '.2f')} cores, "
        f"DNS queries at the sink {r.get('dns_queries_at_sink', '—')}",
    ]
    if r.get("freeze"):
        lines.append(
            f"  freeze: {'; '.join(r.get('window_events', []))}; vantage_up min "
            f"{_f(r.get('vantage_up_min'), '.0f')}, impaired {r.get('impaired_seen')}, "
            f"open incidents max {r.get('incidents_open_max')}: {r.get('freeze_verdict')}"
        )
    for incident in r.get("incident_list", [])[:5]:
        lines.append(f"  incident {incident}")
    for line in r.get("log_first_problems", [])[:5]:
        lines.append(f"  log: {line}")
    if r.get("profile"):
        lines.append(f"  profile: {r['profile']}")
    if r.get("py_spy_dump"):
        lines.append(f"  py-spy dump: {r['py_spy_dump']}")
    if r.get("profile_top"):
        lines.append("  " + r["profile_top"].replace("\n", "\n  "))
    return "\n".join(lines)


def meta() -> dict[str, Any]:
    return {
        "revision": git_revision(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "kernel": platform.release(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--targets", type=int, nargs="+", default=[1_000, 5_000, 10_000])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds measured per N")
    parser.add_argument("--interval", type=float, default=60.0, help="HTTP and DNS interval, s")
    parser.add_argument(
        "--timeout", type=float, help="probe timeout, s (default min(5, interval/2))"
    )
    parser.add_argument("--tls-interval", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--canaries", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, help="[monitor] concurrency (default: the daemon's)"
    )
    parser.add_argument("--sample", type=float, default=5.0, help="/proc sample period, s")
    parser.add_argument(
        "--scrape-every", type=float, default=15.0, help="/metrics scrape period, s"
    )
    parser.add_argument("--fleet-workers", type=int, default=1, help="nginx worker processes")
    parser.add_argument(
        "--freeze", action="store_true", help="freeze the fleet 2 intervals, thaw, watch 2"
    )
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"),
                      help="passed to `govwatch run --event-loop`")  # fmt: skip
    loop.add_argument("--uvloop", dest="event_loop", action="store_const", const="uvloop")
    loop.add_argument("--no-uvloop", dest="event_loop", action="store_const", const="asyncio")
    parser.add_argument("--profile", action="store_true", help="py-spy record the daemon")
    parser.add_argument("--profile-format", choices=("speedscope", "flamegraph", "raw"),
                        default="speedscope")  # fmt: skip
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--profile-blocking", action="store_true",
                        help="let py-spy pause the daemon per sample (exact stacks, more overhead)")  # fmt: skip
    parser.add_argument("--profile-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "govwatch-bench-profiles")  # fmt: skip
    parser.add_argument("--out", type=Path, help="write every figure as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, db)")
    args = parser.parse_args(argv)
    timeout_s = args.timeout if args.timeout is not None else min(5.0, args.interval / 2)
    if timeout_s >= args.interval:
        parser.error("--timeout must be shorter than --interval")

    results: list[dict[str, Any]] = []
    info = meta()
    print(
        f"govwatch {info['revision']} on {info['machine']}, Python {info['python']}; "
        f"HTTP+DNS every {args.interval:g} s, TLS every {args.tls_interval:g} s, "
        f"timeout {timeout_s:g} s, /metrics scraped every {args.scrape_every:g} s\n"
    )
    workroot = Path(tempfile.mkdtemp(prefix="govwatch-bench-scale-"))
    try:
        for count in args.targets:
            try:
                result = measure(count, args, workroot)
            except FleetError as exc:
                log(f"N={count}: {exc}")
                result = {"targets": count, "error": str(exc), "command": reproduce(args, count),
                          "https_per_s_wanted": (count + args.canaries) / args.interval}  # fmt: skip
            results.append(result)
            print(f"{HEADER}\n{table_row(result)}\n\n{details(result)}\n", flush=True)
            if args.out:
                args.out.write_text(json.dumps({"meta": info, "results": results}, indent=2) + "\n")
    finally:
        if args.keep:
            log(f"work directory kept: {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    if len(results) > 1:
        print("All runs:\n")
        print(HEADER)
        for result in results:
            print(table_row(result))
    if args.out:
        print(f"\nJSON: {args.out}")
    failed = any("error" in r for r in results)
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
