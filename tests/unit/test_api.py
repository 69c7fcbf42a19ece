"""The daemon's HTTP API on a real loopback server, over snapshots from the real pure logic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import trustme
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from monitor.api import (
    ACCEPT_PAUSE_S,
    DEFAULT_INCIDENT_WINDOW_S,
    HEALTH_INTERVALS,
    ApiServer,
    ClientLimits,
    build_app,
    incident_to_dict,
    parse_since,
)
from monitor.core import Reload, step
from monitor.exporter import make_registry
from monitor.loop_errors import LoopErrorSummary
from monitor.outage import Incident, TargetInfra
from monitor.settings import MaintenanceWindow
from monitor.snapshot import Snapshot
from monitor.storage import WriterStats
from monitor.webconfig import MAX_PENDING_CHECKS, WebConfig, load_web_config
from probes.results import Reason
from tests.unit.test_exporter import STARTED, T0, World
from tests.unit.test_storage import wait_until
from tests.unit.test_webconfig import LockedDown, basic_auth

INTERVAL = 30.0
JULY_1_2024 = 1_719_792_000.0  # 2024-07-01T00:00:00Z

Client = TestClient[Any, Any]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def albania_dark() -> World:
    """AL: all 3 down on shared name servers (a country outage); RS: 1 of 10 down; XK: never probed."""
    shared = TargetInfra.from_facts(nameservers=["ns1.akshi.test.", "NS2.akshi.test"])
    world = World(
        {"AL": 3, "RS": 10, "XK": 2},
        infra={f"al{i}": shared for i in (1, 2, 3)},
    )
    world.all_ok(T0, [t.name for t in world.targets if t.country != "XK"])
    world.fail(["al1", "al2", "al3"], T0 + 10, Reason.CONNECT_TIMEOUT)
    world.fail(["rs1"], T0 + 10, Reason.HTTP_STATUS)
    return world


async def serve(
    get_snapshot: Callable[[], Snapshot | None],
    *,
    registry: CollectorRegistry | None = None,
    incidents_since: Any = None,
    clock: Clock | None = None,
) -> AsyncIterator[Client]:
    app = build_app(
        get_snapshot=get_snapshot,
        registry=registry or make_registry(get_snapshot, process_metrics=False),
        incidents_since=incidents_since,
        interval_s=INTERVAL,
        clock=clock or Clock(T0 + 30),
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def dark() -> AsyncIterator[tuple[World, Snapshot, Client]]:
    world = albania_dark()
    snapshot = world.snapshot(T0 + 20, vantage="sofia")
    async for client in serve(lambda: snapshot):
        yield world, snapshot, client


async def get_json(client: Client, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


# --- /api/v1/status ----------------------------------------------------------------------


async def test_status_document(dark: tuple[World, Snapshot, Client]) -> None:
    world, snapshot, client = dark
    status = await get_json(client, "/api/v1/status")

    assert status["generated_at"] == T0 + 20
    assert status["vantage"] == "sofia"
    assert status["vantage_up"] is True
    assert status["failing_canaries"] == []
    # 4 of 15 down (27%) and one country in outage: no region outage.
    assert status["region"] == {
        "outage": False,
        "targets": 15,
        "down": 4,
        "up": 9,
        "unknown": 2,
        "maintenance": 0,
    }

    countries = {c["country"]: c for c in status["countries"]}
    assert list(countries) == ["AL", "RS", "XK"]
    assert countries["AL"] == {
        "country": "AL",
        "name": "Albania",
        "up": 0,
        "down": 3,
        "unknown": 0,
        "maintenance": 0,
        "total": 3,
        "availability": 0.0,
        "outage": True,
    }
    assert countries["RS"]["availability"] == pytest.approx(0.9)
    assert countries["RS"]["outage"] is False
    assert countries["XK"]["name"] == "Kosovo"
    assert countries["XK"]["availability"] is None

    targets = {t["name"]: t for t in status["targets"]}
    assert [t["name"] for t in status["targets"]] == world.names
    al1 = targets["al1"]
    assert {k: v for k, v in al1.items() if k != "probes"} == {
        "name": "al1",
        "country": "AL",
        "sector": "portal",
        "url": "https://al1.test/",
        "state": "down",
        "since": T0 + 10,  # the first failure of the confirmed streak
        "reason": "connect_timeout",
        "maintenance": None,
        "tamper": [],
    }
    assert set(al1["probes"]) == {"http", "dns", "tls"}
    http = al1["probes"]["http"]
    assert http["ok"] is False
    assert http["reason"] == "connect_timeout"
    assert http["started_at"] == T0 + 11  # the confirming re-probe
    assert "details" not in http
    assert al1["probes"]["dns"]["ok"] is True
    assert targets["al2"]["sector"] == "portal"
    assert targets["al3"]["sector"] == "tax"
    assert targets["rs2"]["state"] == "up"
    assert targets["rs2"]["reason"] is None
    assert targets["rs1"]["reason"] == "http_status"
    assert targets["xk1"] == {
        "name": "xk1",
        "country": "XK",
        "sector": "portal",
        "url": "https://xk1.test/",
        "state": "unknown",
        "since": None,
        "reason": None,
        "maintenance": None,
        "tamper": [],
        "probes": {},
    }

    incidents = {i["id"]: i for i in status["incidents"]}
    assert len(incidents) == len(snapshot.open_incidents) == 5  # 4 targets and AL
    country = next(i for i in status["incidents"] if i["scope"] == "country")
    assert country == {
        "id": country["id"],
        "scope": "country",
        "country": "AL",
        "target": None,
        "started_at": T0 + 20,
        "ended_at": None,
        "affected": ["al1", "al2", "al3"],
        "dominant_reason": "connect_timeout",
        "hints": [
            {
                "kind": "nameservers",
                "values": ["ns1.akshi.test", "ns2.akshi.test"],
                "count": 3,
                "of": 3,
                "text": "all 3 affected targets share name servers ns1.akshi.test, ns2.akshi.test",
            }
        ],
        "hint": "all 3 affected targets share name servers ns1.akshi.test, ns2.akshi.test",
    }
    rs1 = next(i for i in status["incidents"] if i["target"] == "rs1")
    assert (rs1["scope"], rs1["country"], rs1["affected"]) == ("target", "RS", ["rs1"])
    assert (rs1["hints"], rs1["hint"]) == ([], None)


async def test_status_shows_maintenance_with_the_windows_note_and_end() -> None:
    world = World({"AL": 3})
    world.all_ok(T0)
    world.canaries_ok(T0)
    window = MaintenanceWindow(
        note="e-Albania upgrade", start=T0 + 5, end=T0 + 3605, targets=frozenset({"al1"})
    )
    core = world.core.world
    reload = Reload(core.targets, core.canaries, core.settings, INTERVAL, (window,))
    world.core.world, _ = step(core, reload, T0 + 1)
    snapshot = world.snapshot(T0 + 20)
    async for client in serve(lambda: snapshot):
        status = await get_json(client, "/api/v1/status")
        targets = {t["name"]: t for t in status["targets"]}
        assert targets["al1"]["state"] == "maintenance"
        assert targets["al1"]["since"] == T0 + 5
        assert targets["al1"]["maintenance"] == {
            "note": "e-Albania upgrade",
            "start": T0 + 5,
            "end": T0 + 3605,
        }
        assert targets["al2"]["state"] == "up" and targets["al2"]["maintenance"] is None
        (al,) = status["countries"]
        assert (al["up"], al["maintenance"], al["total"], al["availability"]) == (2, 1, 3, 1.0)
        assert status["region"]["maintenance"] == 1
        only = await get_json(client, "/api/v1/status?state=maintenance")
        assert [t["name"] for t in only["targets"]] == ["al1"]


@pytest.mark.parametrize(
    ("query", "countries", "targets", "incidents"),
    [
        ("country=AL", ["AL"], ["al1", "al2", "al3"], 4),
        ("country=al", ["AL"], ["al1", "al2", "al3"], 4),
        ("state=down", ["AL", "RS", "XK"], ["al1", "al2", "al3", "rs1"], 5),
        ("country=RS&state=down", ["RS"], ["rs1"], 1),
        ("country=RS&country=XK&state=unknown", ["RS", "XK"], ["xk1", "xk2"], 1),
        ("country=AL,XK&state=up,unknown", ["AL", "XK"], ["xk1", "xk2"], 4),
        ("country=MD", [], [], 0),
    ],
)
async def test_status_filters(
    dark: tuple[World, Snapshot, Client],
    query: str,
    countries: list[str],
    targets: list[str],
    incidents: int,
) -> None:
    _, _, client = dark
    status = await get_json(client, f"/api/v1/status?{query}")
    assert [c["country"] for c in status["countries"]] == countries
    assert [t["name"] for t in status["targets"]] == targets
    assert len(status["incidents"]) == incidents
    assert status["region"]["targets"] == 15  # the region block is never filtered


async def test_status_filter_keeps_region_incidents_that_touch_the_country() -> None:
    world = World({"AL": 3, "XK": 2})
    world.all_ok(T0)
    world.fail(["al1", "al2", "al3", "xk1", "xk2"], T0 + 10)
    snapshot = world.snapshot(T0 + 20)
    assert snapshot.world.region_outage
    async for client in serve(lambda: snapshot):
        status = await get_json(client, "/api/v1/status?country=XK")
    scopes = sorted(i["scope"] for i in status["incidents"])
    assert scopes == ["country", "region", "target", "target"]
    region = next(i for i in status["incidents"] if i["scope"] == "region")
    assert region["affected"] == ["al1", "al2", "al3", "xk1", "xk2"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("state=sideways", "state: expected one of up, down, unknown, maintenance, got 'sideways'"),
        ("country=ALB", "country: expected a two-letter code like AL, got 'ALB'"),
        ("country=A1", "country: expected a two-letter code like AL, got 'A1'"),
    ],
)
async def test_status_rejects_bad_filters(
    dark: tuple[World, Snapshot, Client], query: str, message: str
) -> None:
    _, _, client = dark
    assert await get_json(client, f"/api/v1/status?{query}", 400) == {"error": message}


async def test_status_details_on_request(dark: tuple[World, Snapshot, Client]) -> None:
    _, _, client = dark
    status = await get_json(client, "/api/v1/status?country=RS&details=1")
    rs1 = next(t for t in status["targets"] if t["name"] == "rs1")
    assert rs1["probes"]["tls"]["details"]["version"] == "TLSv1.3"
    assert rs1["probes"]["dns"]["details"]["dnssec"]["signed"] is True
    assert rs1["probes"]["http"]["details"]["status_code"] is None


async def test_status_before_the_first_snapshot_is_503() -> None:
    async for client in serve(lambda: None):
        body = await get_json(client, "/api/v1/status", 503)
    assert "starting" in body["error"]


async def test_status_during_vantage_loss() -> None:
    world = albania_dark()
    world.canaries_fail(T0 + 30)
    snapshot = world.snapshot(T0 + 40)
    async for client in serve(lambda: snapshot):
        status = await get_json(client, "/api/v1/status")
    assert status["vantage_up"] is False
    assert status["failing_canaries"] == ["canary0", "canary1"]
    assert status["region"] == {
        "outage": False,
        "targets": 15,
        "down": 0,
        "up": 0,
        "unknown": 15,
        "maintenance": 0,
    }
    assert not any(c["outage"] for c in status["countries"])
    assert {t["state"] for t in status["targets"]} == {"unknown"}
    assert {t["reason"] for t in status["targets"]} == {None}
    assert "vantage" in {i["scope"] for i in status["incidents"]}


# --- /api/v1/incidents -------------------------------------------------------------------


class Reader:
    """Stands in for storage's incidents_since: records what it was asked."""

    def __init__(self, incidents: list[Incident], fail: bool = False) -> None:
        self.incidents = incidents
        self.fail = fail
        self.calls: list[float] = []

    async def __call__(self, since: float) -> list[Incident]:
        self.calls.append(since)
        if self.fail:
            raise OSError("database is locked")
        return self.incidents


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("1719792000", JULY_1_2024),
        ("1719792000.5", JULY_1_2024 + 0.5),
        ("2024-07-01T00:00:00Z", JULY_1_2024),
        ("2024-07-01T00:00:00%2B02:00", JULY_1_2024 - 7200),
        ("2024-07-01T00:00:00+02:00", JULY_1_2024 - 7200),  # unescaped "+" arrives as a space
        ("2024-07-01T03:00:00", JULY_1_2024 + 3 * 3600),  # no offset: UTC
        ("2024-07-01", JULY_1_2024),
    ],
)
async def test_incidents_since_parsing(since: str, expected: float) -> None:
    world = albania_dark()
    snapshot = world.snapshot(T0 + 20)
    reader = Reader(list(snapshot.open_incidents))
    async for client in serve(lambda: snapshot, incidents_since=reader):
        body = await get_json(client, f"/api/v1/incidents?since={since}")
    assert reader.calls == [expected]
    assert body["since"] == expected
    assert body["incidents"] == [incident_to_dict(i) for i in snapshot.open_incidents]


async def test_incidents_default_to_the_last_day() -> None:
    reader = Reader([])
    clock = Clock(JULY_1_2024)
    async for client in serve(lambda: None, incidents_since=reader, clock=clock):
        body = await get_json(client, "/api/v1/incidents")
    assert reader.calls == [JULY_1_2024 - DEFAULT_INCIDENT_WINDOW_S]
    assert body == {"since": JULY_1_2024 - 86_400, "incidents": []}


@pytest.mark.parametrize("since", ["yesterday", "nan", "inf", "-5", "2024-13-01", "1719792000x"])
async def test_incidents_reject_a_bad_since(since: str) -> None:
    reader = Reader([])
    async for client in serve(lambda: None, incidents_since=reader):
        body = await get_json(client, f"/api/v1/incidents?since={since}", 400)
    assert body["error"].startswith("since: ")
    assert since in body["error"]
    assert reader.calls == []


async def test_incidents_when_history_fails_is_503() -> None:
    reader = Reader([], fail=True)
    async for client in serve(lambda: None, incidents_since=reader):
        body = await get_json(client, "/api/v1/incidents?since=0", 503)
    assert body == {"error": "incident history unavailable"}


async def test_incidents_without_history_come_from_the_snapshot() -> None:
    world = albania_dark()
    snapshot = world.snapshot(T0 + 20)
    async for client in serve(lambda: snapshot):
        body = await get_json(client, "/api/v1/incidents?since=2024-07-01")
    expected = sorted(snapshot.open_incidents, key=lambda i: (i.started_at, i.id), reverse=True)
    assert [i["id"] for i in body["incidents"]] == [i.id for i in expected]
    assert len(expected) == 5
    assert body["incidents"][0]["scope"] == "country"  # the newest start

    # Recovery closes everything: nothing open, nothing reported.
    world.all_ok(T0 + 60)
    recovered = world.snapshot(T0 + 61)
    async for client in serve(lambda: recovered):
        body = await get_json(client, "/api/v1/incidents")
    assert body["incidents"] == []


def test_parse_since_edges() -> None:
    assert parse_since(" 0 ") == 0.0
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_since("")


# --- /healthz ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_probe_at", "now", "status"),
    [
        (T0 + 12, T0 + 30, 200),  # probed 18 s ago
        (T0 + 12, T0 + 12 + HEALTH_INTERVALS * INTERVAL, 200),  # exactly at the limit
        (T0 + 12, T0 + 13 + HEALTH_INTERVALS * INTERVAL, 503),  # just beyond it
    ],
)
async def test_healthz_follows_the_latest_probe(
    last_probe_at: float, now: float, status: int
) -> None:
    world = World({"AL": 1})
    world.all_ok(T0)
    world.fail(["al1"], T0 + 10)
    snapshot = world.snapshot(T0 + 20)
    assert snapshot.last_probe_at == last_probe_at
    async for client in serve(lambda: snapshot, clock=Clock(now)):
        body = await get_json(client, "/healthz", status)
    if status == 200:
        assert body["status"] == "ok"
        assert body["last_probe_at"] == last_probe_at
    else:
        assert body["status"] == "unhealthy"
        assert body["reason"] == "the latest probe finished 91s ago (limit 90s)"


async def test_healthz_reports_the_daemon_not_the_region() -> None:
    world = albania_dark()
    world.canaries_fail(T0 + 30)
    snapshot = world.snapshot(T0 + 40)
    assert not snapshot.vantage_up
    async for client in serve(lambda: snapshot, clock=Clock(T0 + 45)):
        assert (await get_json(client, "/healthz"))["status"] == "ok"


@pytest.mark.parametrize(
    ("failing_for_s", "status"),
    [(None, 200), (5.0, 200), (30.0, 503)],  # fine; one busy moment; a full disk
)
async def test_healthz_says_when_the_history_is_failing(
    failing_for_s: float | None, status: int
) -> None:
    world = World({"AL": 1})
    world.all_ok(T0)
    now = T0 + 20
    history = WriterStats(
        written=10, flushes=2, errors=4, dropped=0, pruned=0, pending=300,
        last_flush_at=T0, last_error="OperationalError: database or disk is full",
        failing_since=None if failing_for_s is None else now - failing_for_s,
    )  # fmt: skip
    snapshot = replace(world.snapshot(T0 + 12), history=history)
    async for client in serve(lambda: snapshot, clock=Clock(now)):
        body = await get_json(client, "/healthz", status)
    assert body["history"]["ok"] is (failing_for_s is None)
    assert body["history"]["pending_records"] == 300
    if status == 503:
        assert body["reason"] == (
            "history writes failing for 30s: OperationalError: database or disk is full"
        )


async def test_healthz_before_any_probe() -> None:
    world = World({"AL": 1})
    snapshot = world.snapshot(STARTED + 1)
    assert snapshot.last_probe_at is None
    async for client in serve(lambda: None):
        body = await get_json(client, "/healthz", 503)
    assert body == {"status": "unhealthy", "reason": "no snapshot yet: the daemon is starting"}
    # Just started: a grace period of the same length.
    async for client in serve(lambda: snapshot, clock=Clock(STARTED + 60)):
        assert (await get_json(client, "/healthz"))["status"] == "ok"
    async for client in serve(lambda: snapshot, clock=Clock(STARTED + 100)):
        body = await get_json(client, "/healthz", 503)
    assert body["reason"] == "no probe has finished in the 100s since the start (limit 90s)"


# --- /metrics ----------------------------------------------------------------------------


async def test_metrics_endpoint_serves_the_registry(dark: tuple[World, Snapshot, Client]) -> None:
    _, _, client = dark
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.text()
    assert 'govwatch_outage_active{country="AL",scope="country",vantage="sofia"} 1.0' in text
    assert (
        'govwatch_target_up{country="RS",sector="portal",target="rs1",vantage="sofia"} 0.0' in text
    )
    assert "# TYPE govwatch_probes_total counter" in text


async def test_metrics_follow_the_current_snapshot() -> None:
    world = albania_dark()
    current: list[Snapshot] = [world.snapshot(T0 + 20)]
    async for client in serve(lambda: current[0]):
        assert 'target="xk2"' in await (await client.get("/metrics")).text()
        current[0] = world.snapshot(T0 + 21, targets=world.targets[:-1])
        assert 'target="xk2"' not in await (await client.get("/metrics")).text()
        status = await get_json(client, "/api/v1/status?country=XK")
        assert [t["name"] for t in status["targets"]] == ["xk1"]


def test_build_app_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        build_app(get_snapshot=lambda: None, registry=CollectorRegistry(), interval_s=0)


# --- serving: bounded clients ------------------------------------------------------------


@contextlib.asynccontextmanager
async def api_server(
    *,
    limits: ClientLimits | None = None,
    web_config: WebConfig | None = None,
    incidents_since: Any = None,
) -> AsyncIterator[ApiServer]:
    """The daemon's app over the dark-Albania snapshot, served as the daemon serves it."""
    snapshot = albania_dark().snapshot(T0 + 20, vantage="sofia")
    app = build_app(
        get_snapshot=lambda: snapshot,
        registry=make_registry(lambda: snapshot, process_metrics=False),
        incidents_since=incidents_since,
        interval_s=INTERVAL,
        clock=Clock(T0 + 30),
    )
    server = await ApiServer.start(app, "127.0.0.1", 0, limits=limits, web_config=web_config)
    try:
        yield server
    finally:
        await server.close()


async def connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


async def closed_at(sock: socket.socket, budget_s: float) -> float:
    """When (time.monotonic) the server closes `sock`; what it sends is read and dropped."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(budget_s):
            while await loop.sock_recv(sock, 4096):
                pass
    return time.monotonic()


def gate_busy(server: ApiServer) -> int:
    """Connections the server sees handling a request now."""
    return sum(1 for client in server.site._gate._clients if client.busy)


async def get(port: int, path: str = "/healthz") -> bytes:
    """One HTTP/1.1 request over a raw socket; the raw response."""
    sock = await connect(port)
    loop = asyncio.get_running_loop()
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        await loop.sock_sendall(sock, request.encode())
        chunks = []
        async with asyncio.timeout(5.0):
            while chunk := await loop.sock_recv(sock, 65536):
                chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


async def test_idle_connections_beyond_the_cap_make_room_for_a_real_client() -> None:
    limits = ClientLimits(max_clients=8, header_timeout_s=30.0)
    async with api_server(limits=limits) as server:
        flood = [await connect(server.site.port) for _ in range(50)]
        try:
            # The server holds at most 8; the others were closed, the oldest first.
            await wait_until(lambda: sum(map(closed_by_peer, flood)) >= 42, 5.0)
            assert server.site.clients <= 8
            assert not any(closed_by_peer(sock) for sock in flood[-8:])
            # A client that sends its request takes an idle connection's place at once,
            # long before any header timeout (30 s) could have freed one.
            async with asyncio.timeout(5.0):
                response = await get(server.site.port)
            assert response.startswith(b"HTTP/1.1 200 OK"), response
            assert server.site.clients <= 8
        finally:
            for sock in flood:
                sock.close()


async def test_connections_handling_a_request_are_never_evicted() -> None:
    release = asyncio.Event()

    async def slow_history(since: float) -> list[Incident]:
        await release.wait()
        return []

    limits = ClientLimits(max_clients=2, header_timeout_s=30.0)
    async with api_server(limits=limits, incidents_since=slow_history) as server:
        busy = [asyncio.create_task(get(server.site.port, "/api/v1/incidents")) for _ in range(2)]
        await wait_until(lambda: gate_busy(server) == 2, 5.0)
        # Full of requests in progress: a newcomer is closed at once, nobody is evicted.
        newcomer = await connect(server.site.port)
        await closed_at(newcomer, 5.0)  # within the budget, or TimeoutError
        newcomer.close()
        release.set()
        for response in await asyncio.gather(*busy):
            assert response.startswith(b"HTTP/1.1 200 OK"), response


async def test_slow_headers_and_idle_keep_alive_are_closed_at_their_deadlines() -> None:
    limits = ClientLimits(header_timeout_s=2.0, idle_timeout_s=1.5)
    async with api_server(limits=limits) as server:
        loop = asyncio.get_running_loop()
        # Slowloris: a request head dripped one byte every 0.25 s never completes.
        slowloris = await connect(server.site.port)
        accepted = time.monotonic()

        async def drip() -> None:
            with contextlib.suppress(OSError):
                for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1000:
                    await loop.sock_sendall(slowloris, bytes([byte]))
                    await asyncio.sleep(0.25)

        # Keep-alive: one request answered, then silence.
        keep_alive = await connect(server.site.port)
        await loop.sock_sendall(keep_alive, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await loop.sock_recv(keep_alive, 65536)
        answered = time.monotonic()
        assert response.startswith(b"HTTP/1.1 200 OK")

        dripping = asyncio.create_task(drip())
        try:
            slow_closed, idle_closed = await asyncio.gather(
                closed_at(slowloris, 10.0), closed_at(keep_alive, 10.0)
            )
        finally:
            dripping.cancel()
            slowloris.close()
            keep_alive.close()
        # Closed by its deadline (not before: not evicted), within the deadline + 10 %.
        assert 2.0 <= slow_closed - accepted <= 2.0 * 1.1
        assert 1.5 <= idle_closed - answered <= 1.5 * 1.1
        assert server.site.clients == 0


async def test_accept_out_of_descriptors_is_reported_once_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    summary = LoopErrorSummary(logging.getLogger("test.loop"))
    reports: list[dict[str, Any]] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reports.append(context)
        summary(loop, context)

    loop.set_exception_handler(handler)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    async with api_server() as server:
        client = socket.socket()
        client.setblocking(False)
        fillers = []
        try:
            # No descriptor left below the limit: the server's accept() fails with EMFILE.
            highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
            with contextlib.suppress(OSError):
                while True:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            with contextlib.suppress(BlockingIOError):
                client.connect(("127.0.0.1", server.site.port))
            starved_s = 2.5
            await asyncio.sleep(starved_s)
        finally:
            for fd in fillers:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            loop.set_exception_handler(None)
        # Retried once per ACCEPT_PAUSE_S (no spinning), and logged once, without a traceback.
        assert 1 <= len(reports) <= starved_s / ACCEPT_PAUSE_S + 1
        assert all(isinstance(r["exception"], OSError) for r in reports)
        lines = [r for r in caplog.records if r.name == "test.loop"]
        assert [r.getMessage() for r in lines] == [
            f"out of file descriptors or memory: cannot accept API clients on {server.url} "
            "(retrying in 1s): [Errno 24] Too many open files"
        ]
        assert lines[0].exc_info is None
        # Descriptors back: the waiting client is accepted and answered.
        await loop.sock_sendall(client, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5.0):
            assert (await loop.sock_recv(client, 65536)).startswith(b"HTTP/1.1 200 OK")
        client.close()


# --- serving: --web-config (TLS, basic authentication, headers) --------------------------


def session(tls: ssl.SSLContext) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls, force_close=True))


async def test_tls_and_basic_auth_guard_every_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = LockedDown.create(tmp_path)
    checks: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(password)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    right, password = locked.authorization(), locked.password
    config = load_web_config(locked.web_config)
    async with (
        api_server(web_config=config) as server,
        session(locked.client_tls()) as client,
    ):
        assert server.url.startswith("https://127.0.0.1:")
        secured = dict(locked.headers)
        for path in ("/metrics", "/api/v1/status", "/api/v1/incidents", "/healthz"):
            async with client.get(server.url + path, headers=right) as response:
                assert response.status == 200, path
                assert {k: response.headers[k] for k in secured} == secured
            for wrong in ({}, basic_auth("prometheus", "wrong"), basic_auth("eve", password)):
                async with client.get(server.url + path, headers=wrong) as response:
                    assert response.status == 401, (path, wrong)
                    assert response.headers["WWW-Authenticate"].startswith("Basic ")
                    assert {k: response.headers[k] for k in secured} == secured
        async with client.get(server.url + "/nowhere", headers=right) as response:
            assert response.status == 404
            assert {k: response.headers[k] for k in secured} == secured
        # The right password paid bcrypt once; every wrong or unknown one pays it each time
        # (an unknown user too, so timing does not tell who exists).
        assert checks.count(password.encode()) == 1 + 4  # + "eve" on each of the 4 paths
        assert checks.count(b"wrong") == 4
        # Plain HTTP to the TLS port gets no answer.
        plain_url = server.url.replace("https://", "http://")
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                async with plain.get(plain_url + "/healthz", headers=right) as response:
                    await response.read()


async def test_client_certificates_when_the_web_config_requires_them(tmp_path: Path) -> None:
    locked = LockedDown.create(tmp_path)
    clients_ca = trustme.CA()
    clients_ca.cert_pem.write_to_path(tmp_path / "clients-ca.pem")
    path = tmp_path / "mtls.yml"
    path.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients-ca.pem\n"
    )
    config = load_web_config(path)
    async with api_server(web_config=config) as server:
        client_tls = locked.client_tls()
        async with session(client_tls) as client:  # no client certificate
            with pytest.raises(aiohttp.ClientError):
                async with client.get(server.url + "/healthz") as response:
                    await response.read()
        clients_ca.issue_cert("prometheus.govwatch.test").configure_cert(client_tls)
        async with session(client_tls) as client, client.get(server.url + "/healthz") as response:
            assert response.status == 200
        assert server.site.clients <= 1


async def served_certificate(url: str, client_tls: ssl.SSLContext) -> bytes:
    """The certificate a new TLS connection to `url` is shown (DER); it must verify."""
    host, _, port = url.removeprefix("https://").rstrip("/").partition(":")
    _, writer = await asyncio.open_connection(host, int(port), ssl=client_tls)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert isinstance(der, bytes)
        return der
    finally:
        writer.close()
        await writer.wait_closed()


def install(cert: trustme.LeafCert, folder: Path, *, key: bool = True) -> bytes:
    """Write `cert` (and its key) where the web config points; returns its DER."""
    cert.cert_chain_pems[0].write_to_path(folder / "server.crt")
    if key:
        cert.private_key_pem.write_to_path(folder / "server.key")
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


async def test_a_renewed_certificate_is_served_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As exporter-toolkit: the files are taken as they are at each handshake. A renewal
    caught half written (the new certificate, the old key) keeps the last good one served,
    with one warning however many clients connect meanwhile."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    first = install(ca.issue_cert("127.0.0.1"), tmp_path)
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    client_tls = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    async with api_server(web_config=load_web_config(path)) as server:
        assert await served_certificate(server.url, client_tls) == first
        renewed = install(ca.issue_cert("127.0.0.1"), tmp_path)
        assert await served_certificate(server.url, client_tls) == renewed
        third = ca.issue_cert("127.0.0.1")
        install(third, tmp_path, key=False)
        with caplog.at_level(logging.WARNING, logger="govwatch.webconfig"):
            for _ in range(3):
                assert await served_certificate(server.url, client_tls) == renewed
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "still serving the certificate loaded before" in (
            warnings[0].getMessage()
        )
        completed = install(third, tmp_path)  # its key too: the renewal is done
        assert await served_certificate(server.url, client_tls) == completed


async def test_logins_beyond_those_bcrypt_can_check_are_told_to_retry(tmp_path: Path) -> None:
    # Cost 10 (htpasswd's): a check takes long enough (tens of ms) for all the logins below to
    # arrive meanwhile.
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    async with api_server(web_config=load_web_config(path)) as server:

        async def login(password: str) -> tuple[int, str | None]:
            async with (
                aiohttp.ClientSession() as client,
                client.get(
                    server.url + "/healthz", headers=basic_auth("prometheus", password)
                ) as response,
            ):
                return response.status, response.headers.get("Retry-After")

        answers = await asyncio.gather(
            *(login(f"guess-{i}") for i in range(MAX_PENDING_CHECKS + 4))
        )
        # At most MAX_PENDING_CHECKS wait for bcrypt; the rest are answered at once.
        assert answers.count((401, None)) <= MAX_PENDING_CHECKS
        assert (503, "1") in answers
        assert set(answers) == {(401, None), (503, "1")}
        assert await login("right") == (200, None)
