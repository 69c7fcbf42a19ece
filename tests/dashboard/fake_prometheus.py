"""A tiny stand-in for the Prometheus HTTP API on 127.0.0.1 (aiohttp, in its own thread).

Each known PromQL expression maps to series whose values are functions of time, so
instant and range queries answer consistently for whatever time and step the
dashboard asks. An expression it does not know is answered with Prometheus's own
error shape (HTTP 400), so a test notices a query it did not expect.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dashboard import prom
from dashboard.source import UPTIME_WINDOWS
from monitor.outage import Scope
from monitor.state import TargetState
from probes.results import DnsDetails, HttpDetails, ProbeResult, TlsDetails
from tests.dashboard.seed import Seed, availability

Value = Callable[[float], float | None]


@dataclass(frozen=True)
class FakeSeries:
    labels: Mapping[str, str]
    value: Value


@dataclass
class FakePrometheus:
    series: dict[str, list[FakeSeries]]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def _answer(self, request: web.Request, kind: str) -> web.Response:
        params = dict(request.query)
        self.requests.append((kind, params))
        query = params.get("query", "")
        if query not in self.series:
            return web.json_response(
                {"status": "error", "errorType": "bad_data", "error": f"unexpected {query!r}"},
                status=400,
            )
        result: list[dict[str, Any]] = []
        if kind == "query":
            at = float(params.get("time", time.time()))
            for item in self.series[query]:
                value = item.value(at)
                if value is not None:
                    result.append({"metric": dict(item.labels), "value": [at, _text(value)]})
            data = {"resultType": "vector", "result": result}
        else:
            start, end, step = (float(params[k]) for k in ("start", "end", "step"))
            steps = math.floor((end - start) / step + 1e-9) + 1
            for item in self.series[query]:
                points = []
                for i in range(steps):
                    t = start + i * step
                    value = item.value(t)
                    if value is not None:
                        points.append([t, _text(value)])
                if points:
                    result.append({"metric": dict(item.labels), "values": points})
            data = {"resultType": "matrix", "result": result}
        return web.json_response({"status": "success", "data": data})


def _text(value: float) -> str:
    return repr(float(value))


def constant(value: float) -> Value:
    return lambda _t: value


def step_up(at: float, before: float = 0.0, after: float = 1.0) -> Value:
    """`before` until `at`, `after` from then on."""
    return lambda t: after if t >= at else before


def window(start: float, end: float) -> Value:
    """1 inside [start, end), 0 outside."""
    return lambda t: 1.0 if start <= t < end else 0.0


@contextmanager
def serve(fake: FakePrometheus) -> Iterator[FakePrometheus]:
    """Serve `fake` on 127.0.0.1 (a free port) for the duration of the block."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()

        async def query(request: web.Request) -> web.Response:
            return fake._answer(request, "query")

        async def query_range(request: web.Request) -> web.Response:
            return fake._answer(request, "query_range")

        app.router.add_get("/api/v1/query", query)
        app.router.add_get("/api/v1/query_range", query_range)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        fake.url = f"http://{host}:{port}"
        runner_box.append(runner)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="fake-prometheus", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("fake Prometheus did not start")
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# --- a seeded scenario, as a Prometheus scraping its daemon would answer ------------------


def series_from_seed(seed: Seed, now: float) -> dict[str, list[FakeSeries]]:
    """Every query dashboard.prom asks, answered from one seeded scenario (one vantage).

    The same history the SQLite source reads, as the metrics would have carried it:
    current states, the newest facts per probe, outage intervals, and uptime and
    daily availability computed by the seed's oracle (blind time left out), so both
    sources can be held to the same conclusions.
    """
    names = {t.name for t in seed.targets}
    target_of = {t.name: t for t in seed.targets}
    blind = any(i.scope is Scope.VANTAGE and i.ended_at is None for i in seed.incidents)
    series: dict[str, list[FakeSeries]] = {
        prom.STATE_QUERY: [],
        prom.VANTAGE_QUERY: [FakeSeries({"vantage": "test"}, constant(0.0 if blind else 1.0))],
        prom.VANTAGE_SEEN_QUERY: [FakeSeries({"vantage": "test"}, constant(now))],
        prom.OUTAGE_QUERY: [],
        prom.RESPONSE_QUERY: [],
        prom.EXPIRY_QUERY: [],
        prom.DNSSEC_QUERY: [],
        f"{prom.RESPONSE_QUERY} * 1000": [],
        prom.DAILY_QUERY: [],
        prom.TAMPER_QUERY: [],  # nothing raised in the scenarios
    }
    for row in seed.rows:
        if row.name not in names:
            continue  # canaries
        target = target_of[row.name]
        reason = row.status.reason if row.reported is TargetState.DOWN else None
        labels = {"target": row.name, "country": target.country, "sector": target.sector}
        labels |= {"state": row.reported.value, "reason": reason.value if reason else ""}
        series[prom.STATE_QUERY].append(FakeSeries(labels, constant(1.0)))

    results: dict[tuple[str, str], list[ProbeResult]] = {}
    for name, result in seed.probes:
        results.setdefault((name, result.kind.value), []).append(result)
    for name in sorted(names):
        _target_series(series, name, results, seed, now)

    outages: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for incident in seed.incidents:
        if incident.scope.value in ("country", "region"):
            key = (incident.scope.value, incident.country or "")
            end = math.inf if incident.ended_at is None else incident.ended_at
            outages.setdefault(key, []).append((incident.started_at, end))
    for (scope, country), spans in outages.items():
        series[prom.OUTAGE_QUERY].append(
            FakeSeries({"scope": scope, "country": country}, _inside(spans))
        )

    for country in sorted({t.country for t in seed.targets}):
        mine = [t.name for t in seed.targets if t.country == country]
        series[prom.DAILY_QUERY].append(
            FakeSeries({"country": country}, _availability(seed, mine, 86400.0, now))
        )
    return series


def _availability(seed: Seed, names: list[str], span_s: float, now: float) -> Value:
    """Over the `span_s` before t (so far, past `now`), as the oracle computes it."""
    return lambda t: availability(seed, names, t - span_s, t, now)


def _inside(spans: list[tuple[float, float]]) -> Value:
    return lambda t: 1.0 if any(start <= t < end for start, end in spans) else 0.0


def _latest_success(results: list[ProbeResult]) -> Callable[[float], ProbeResult | None]:
    """The newest successful result started at or before t."""
    succeeded = sorted((r for r in results if r.ok), key=lambda r: r.started_at)

    def at(t: float) -> ProbeResult | None:
        found = [r for r in succeeded if r.started_at <= t]
        return found[-1] if found else None

    return at


def _phase(success: Callable[[float], ProbeResult | None], phase: str) -> Value:
    return lambda t: None if (r := success(t)) is None else r.phases.get(phase)


def _target_series(
    series: dict[str, list[FakeSeries]],
    name: str,
    results: Mapping[tuple[str, str], list[ProbeResult]],
    seed: Seed,
    now: float,
) -> None:
    labels = {"target": name}
    selector = prom.target_selector(name)
    http, dns, tls = (results.get((name, kind), []) for kind in ("http", "dns", "tls"))
    success = _latest_success(http)
    if http and http[-1].ok:
        series[prom.RESPONSE_QUERY].append(FakeSeries(labels, constant(http[-1].duration_s)))
    series[f"{prom.RESPONSE_QUERY} * 1000"].append(
        FakeSeries(labels, lambda t: None if (r := success(t)) is None else r.duration_s * 1000)
    )
    series[prom.phases_query(name)] = [
        FakeSeries({"phase": phase}, _phase(success, phase))
        for phase in ("resolve", "connect", "tls", "processing", "transfer")
    ]
    for _, span in UPTIME_WINDOWS:
        series[prom.uptime_query(name, span)] = [
            FakeSeries({}, _availability(seed, [name], span.total_seconds(), now))
        ]

    expiry: list[FakeSeries] = []
    version: list[FakeSeries] = []
    if tls and isinstance(tls[-1].details, TlsDetails):
        details = tls[-1].details
        if details.earliest_expiry is not None:
            expiry.append(FakeSeries(labels, constant(details.earliest_expiry)))
        version.append(FakeSeries({"version": details.version or "?"}, constant(1.0)))
    series[prom.EXPIRY_QUERY] += expiry
    series[f"probe_ssl_earliest_cert_expiry{selector}"] = expiry
    series[f"probe_tls_version_info{selector} == 1"] = version
    signed: list[FakeSeries] = []
    if dns and isinstance(dns[-1].details, DnsDetails) and dns[-1].details.dnssec is not None:
        signed.append(FakeSeries(labels, constant(float(dns[-1].details.dnssec.signed))))
    series[prom.DNSSEC_QUERY] += signed
    series[f"govwatch_dnssec_signed{selector}"] = signed
    status: list[FakeSeries] = []
    if http and isinstance(http[-1].details, HttpDetails) and http[-1].details.status_code:
        status.append(FakeSeries(labels, constant(float(http[-1].details.status_code))))
    series[f"probe_http_status_code{selector}"] = status
    series[f"probe_success{selector}"] = [
        FakeSeries({"probe": kind}, constant(float(found[-1].ok)))
        for kind, found in (("tls", tls), ("dns", dns), ("http", http))
        if found
    ]
