"""The daemon's HTTP face: /metrics, /api/v1/status, /api/v1/incidents and /healthz.

Every handler reads the snapshot the daemon last published (one reference,
swapped whole), so a response is always one consistent view and no handler
takes a lock. `incident_to_dict` is THE serialised form of an incident;
storage and the dashboard may reuse it.

`serve_api` puts the application on the network with bounded clients (`ClientLimits`:
idle and slow clients cannot take the descriptors the probes need) and, with a web
config, TLS, basic authentication and response headers (monitor/webconfig.py).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry

from monitor.countries import country_name
from monitor.exporter import Renderer, SnapshotSource
from monitor.maintenance import occurrence
from monitor.outage import Incident, InfraHint
from monitor.settings import MaintenanceWindow
from monitor.snapshot import Snapshot, TargetView
from monitor.state import TargetState
from monitor.tamper import Signal
from monitor.webconfig import WebConfig
from probes.results import to_jsonable

log = logging.getLogger(__name__)

# The text format generate_latest writes (Prometheus exposition format 0.0.4).
METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
# /healthz fails when no probe finished within this many probe intervals.
HEALTH_INTERVALS: Final = 3
# ...and when history writes have failed for this long (one busy moment is not a failure).
HISTORY_FAILING_GRACE_S: Final = 10.0
DEFAULT_INCIDENT_WINDOW_S: Final = 24 * 3600.0

IncidentReader = Callable[[float], Awaitable[list[Incident]]]


def hint_to_dict(hint: InfraHint) -> dict[str, Any]:
    return {
        "kind": hint.kind.value,
        "values": list(hint.values),
        "count": hint.count,
        "of": hint.of,
        "text": hint.text,
    }


def incident_to_dict(incident: Incident) -> dict[str, Any]:
    """An incident as JSON: the one form the API, storage and the dashboard share."""
    return {
        "id": incident.id,
        "scope": incident.scope.value,
        "country": incident.country,
        "target": incident.target,
        "started_at": incident.started_at,
        "ended_at": incident.ended_at,
        "affected": list(incident.affected),
        "dominant_reason": incident.dominant_reason.value if incident.dominant_reason else None,
        "hints": [hint_to_dict(hint) for hint in incident.hints],
        "hint": incident.hint_text,
    }


def target_to_dict(
    view: TargetView,
    *,
    details: bool = False,
    window: MaintenanceWindow | None = None,
    now: float | None = None,
    tamper: Sequence[str] = (),
) -> dict[str, Any]:
    """A target's reported state and the latest result of each probe.
    `tamper`: the kinds of its raised tamper signals (a separate axis from its state).

    `since` is when the reported state began; None while a confirmed failure
    still waits for the canaries to vouch for the vantage (reported unknown).
    Probe details (certificates, DNS answers...) only when `details` is set.
    `maintenance` is the covering window (`window`, active at `now`): its note and the
    start and end of its current occurrence; None when no window covers the target.
    """
    target, status = view.target, view.status
    probes: dict[str, Any] = {}
    for kind, track in status.probes.items():
        summary = track.last.to_dict()
        if not details:
            del summary["details"]
        probes[kind.value] = summary
    reason = view.reason
    since = status.since if view.state is status.state else None
    maintenance = None
    if window is not None:
        # None only for the instant between a window's end and the tick that sees it.
        current = occurrence(window, now) if now is not None else None
        start, end = current if current is not None else (None, None)
        maintenance = {"note": window.note, "start": start, "end": end}
        since = start
    return {
        "name": target.name,
        "country": target.country,
        "sector": target.sector,
        "url": target.url,
        "state": view.state.value,
        "since": since,
        "reason": reason.value if reason is not None else None,
        "maintenance": maintenance,
        "tamper": list(tamper),
        "probes": probes,
    }


def signal_to_dict(signal: Signal, country: str | None) -> dict[str, Any]:
    """A raised tamper signal with its evidence (monitor.tamper; README, tamper signals)."""
    return {
        "target": signal.target,
        "country": country,
        "kind": signal.kind.value,
        "raised_at": signal.raised_at,
        "summary": signal.summary,
        "evidence": to_jsonable(signal.evidence),
    }


def status_to_dict(
    snapshot: Snapshot,
    *,
    countries: Collection[str] | None = None,
    states: Collection[TargetState] | None = None,
    details: bool = False,
) -> dict[str, Any]:
    """The /api/v1/status document. `countries` filters countries, targets and
    incidents; `states` filters targets. The region block always covers everything."""
    world = snapshot.world
    views = snapshot.targets  # built from the world on each read: once per document
    country_of = {view.target.name: view.target.country for view in views}
    tamper_of: dict[str, list[str]] = {}
    for name, kind in sorted(world.signals.keys()):
        tamper_of.setdefault(name, []).append(kind.value)

    def wanted_country(code: str | None) -> bool:
        return countries is None or code in countries

    def wanted_incident(incident: Incident) -> bool:
        if countries is None or incident.country in countries:
            return True
        return any(country_of.get(name) in countries for name in incident.affected)

    return {
        "generated_at": snapshot.taken_at,
        "vantage": snapshot.vantage,
        "vantage_up": snapshot.vantage_up,
        "failing_canaries": list(world.failing_canaries),
        "impaired": sorted(reason.value for reason in world.impaired),
        "region": {
            "outage": world.region_outage,
            "targets": world.region.total,
            "down": world.region.down,
            "up": world.region.up,
            "unknown": world.region.unknown,
            "maintenance": world.region.maintenance,
        },
        "countries": [
            {
                "country": summary.country,
                "name": country_name(summary.country),
                "up": summary.up,
                "down": summary.down,
                "unknown": summary.unknown,
                "maintenance": summary.maintenance,
                "total": summary.total,
                "availability": summary.availability,
                "outage": summary.in_outage,
            }
            for summary in world.countries
            if wanted_country(summary.country)
        ],
        "targets": [
            target_to_dict(
                view,
                details=details,
                window=world.maintenance.get(view.target.name),
                now=snapshot.taken_at,
                tamper=tamper_of.get(view.target.name, ()),
            )
            for view in views
            if wanted_country(view.target.country) and (states is None or view.state in states)
        ],
        "incidents": [
            incident_to_dict(incident)
            for incident in snapshot.open_incidents
            if wanted_incident(incident)
        ],
        "tamper": [
            signal_to_dict(signal, country_of.get(signal.target))
            for signal in sorted(world.signals.values(), key=lambda s: (s.raised_at, s.target))
            if wanted_country(country_of.get(signal.target))
        ],
    }


def parse_since(text: str) -> float:
    """Unix seconds ("1719792000", "1719792000.5") or ISO 8601 ("2024-07-01T00:00:00Z",
    "2024-07-01"); a time without an offset is UTC. Raises ValueError."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"since: {text!r} is not a time")
        return seconds
    # A "+02:00" offset arrives as " 02:00" when the client did not escape the "+".
    for candidate in (text, text.replace(" ", "+")):
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise ValueError(
        f"since: expected unix seconds or an ISO 8601 time such as "
        f"2024-07-01T00:00:00Z, got {text!r}"
    )


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _query_values(request: web.Request, name: str) -> list[str]:
    """Every value of a repeatable query parameter; "a,b" counts as two."""
    return [
        v.strip() for raw in request.query.getall(name, []) for v in raw.split(",") if v.strip()
    ]


class _Api:
    def __init__(
        self,
        get_snapshot: SnapshotSource,
        registry: CollectorRegistry,
        incidents_since: IncidentReader | None,
        interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.get_snapshot = get_snapshot
        self.renderer = Renderer(registry)
        self.incidents_since = incidents_since
        self.interval_s = interval_s
        self.clock = clock

    async def metrics(self, request: web.Request) -> web.Response:
        # Rendered in a thread: at 10,000 targets a scrape takes a second of CPU, and the
        # probes must keep their schedule meanwhile. The world it reads is immutable.
        body = await asyncio.to_thread(self.renderer.render)
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def status(self, request: web.Request) -> web.Response:
        countries = [c.upper() for c in _query_values(request, "country")]
        for code in countries:
            if len(code) != 2 or not code.isalpha():
                return _bad_request(f"country: expected a two-letter code like AL, got {code!r}")
        states: list[TargetState] = []
        for text in _query_values(request, "state"):
            try:
                states.append(TargetState(text.lower()))
            except ValueError:
                choices = ", ".join(s.value for s in TargetState)
                return _bad_request(f"state: expected one of {choices}, got {text!r}")
        details = request.query.get("details", "").lower() in ("1", "true", "yes")
        snapshot = self.get_snapshot()
        if snapshot is None:
            return web.json_response({"error": "no status yet: the daemon is starting"}, status=503)
        document = status_to_dict(
            snapshot,
            countries=set(countries) or None,
            states=set(states) or None,
            details=details,
        )
        return web.json_response(document)

    async def incidents(self, request: web.Request) -> web.Response:
        raw = request.query.get("since", "").strip()
        if raw:
            try:
                since = parse_since(raw)
            except ValueError as exc:
                return _bad_request(str(exc))
        else:
            since = self.clock() - DEFAULT_INCIDENT_WINDOW_S
        if self.incidents_since is not None:
            try:
                incidents = await self.incidents_since(since)
            except Exception:
                log.exception("api: reading incidents since %s failed", since)
                return web.json_response({"error": "incident history unavailable"}, status=503)
        else:
            # No history: what is open now (open incidents overlap any window up to now).
            snapshot = self.get_snapshot()
            open_now = snapshot.open_incidents if snapshot is not None else ()
            incidents = sorted(open_now, key=lambda i: (i.started_at, i.id), reverse=True)
        return web.json_response(
            {"since": since, "incidents": [incident_to_dict(i) for i in incidents]}
        )

    async def healthz(self, request: web.Request) -> web.Response:
        """The daemon's own health (is it probing?), never the region's."""
        snapshot = self.get_snapshot()
        if snapshot is None:
            return web.json_response(
                {"status": "unhealthy", "reason": "no snapshot yet: the daemon is starting"},
                status=503,
            )
        limit = HEALTH_INTERVALS * self.interval_s
        # Before the first probe finishes, the start is the reference: a grace period.
        reference = (
            snapshot.last_probe_at if snapshot.last_probe_at is not None else snapshot.started_at
        )
        age = self.clock() - reference
        body: dict[str, Any] = {
            "last_probe_at": snapshot.last_probe_at,
            "age_s": round(age, 3),
            "limit_s": limit,
        }
        history = snapshot.history
        failing_s: float | None = None
        if history is not None:
            if history.failing_since is not None:
                failing_s = max(0.0, self.clock() - history.failing_since)
            body["history"] = {
                "ok": failing_s is None,
                "failing_s": None if failing_s is None else round(failing_s, 3),
                "last_error": history.last_error if failing_s is not None else None,
                "write_errors": history.errors,
                "dropped_records": history.dropped,
                "pending_records": history.pending,
            }
        if age > limit:
            if snapshot.last_probe_at is None:
                reason = f"no probe has finished in the {age:.0f}s since the start"
            else:
                reason = f"the latest probe finished {age:.0f}s ago"
            reason += f" (limit {limit:.0f}s)"
            return web.json_response({"status": "unhealthy", "reason": reason, **body}, status=503)
        if failing_s is not None and failing_s >= HISTORY_FAILING_GRACE_S and history is not None:
            # Probing goes on, but what it finds is not being kept: the operator must know.
            reason = f"history writes failing for {failing_s:.0f}s: {history.last_error}"
            return web.json_response({"status": "unhealthy", "reason": reason, **body}, status=503)
        return web.json_response({"status": "ok", **body})


def build_app(
    *,
    get_snapshot: SnapshotSource,
    registry: CollectorRegistry,
    incidents_since: IncidentReader | None = None,
    interval_s: float,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The daemon's web application.

    `interval_s`: the probe interval (the largest, if the frequent probes'
    intervals differ); /healthz fails once no probe has finished for
    HEALTH_INTERVALS times that. `incidents_since` reads history (storage);
    without it /api/v1/incidents answers from the snapshot's open incidents.
    `clock` is for tests.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    api = _Api(get_snapshot, registry, incidents_since, interval_s, clock)
    app = web.Application()
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/api/v1/status", api.status)
    app.router.add_get("/api/v1/incidents", api.incidents)
    app.router.add_get("/healthz", api.healthz)
    return app


# --- serving: bounded clients --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """How many API clients may hold a connection, and how long one may wait without a request.

    Every client holds a file descriptor, and the probes need them too: 1,100 idle
    connections once made every probe fail with EMFILE (issue 12).
    """

    max_clients: int = 64
    # From the accept (TLS handshake included) to a complete request head: a client that
    # drips its headers (slowloris) is closed after this.
    header_timeout_s: float = 10.0
    # Between the end of a response and the next request head (keep-alive); longer than a
    # usual scrape interval, so a scraper keeps its connection.
    idle_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_clients < 1 or self.header_timeout_s <= 0 or self.idle_timeout_s <= 0:
            raise ValueError(f"client limits must be positive: {self}")


# After accept() fails for want of descriptors or memory, wait this long before the next
# try: the pending connection stays in the backlog, and retrying at once would spin.
ACCEPT_PAUSE_S: Final = 1.0
# accept() errors that concern one client only (gone before it was accepted, refused by a
# firewall rule): the next accept is fine.
_CLIENT_ACCEPT_ERRNOS: Final = frozenset(
    {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR, errno.EAGAIN}
)


class _Client:
    """One accepted connection, from accept to close."""

    __slots__ = ("busy", "requests", "socket", "task", "transport", "waiting_since")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.socket: socket.socket | None = sock  # until handed to a transport, which closes it
        self.task: asyncio.Task[None] | None = None  # connecting (and TLS handshake)
        self.transport: asyncio.Transport | None = None
        self.waiting_since = now  # when it began waiting for a request head
        self.requests = 0
        self.busy = 0  # requests being handled now


class ClientGate:
    """Admits at most `max_clients` API connections and closes those that wait too long for
    a request (`ClientLimits`). When full, a newcomer takes the place of the connection that
    has waited longest without a request in progress (headers first, then keep-alive); when
    every connection is handling a request, the newcomer is closed at once. So a flood of
    idle connections costs at most `max_clients` descriptors and does not lock out a real
    client, which sends its request as soon as it connects.

    `track` must be the application's outermost middleware: it tells requests in progress.
    """

    def __init__(self, limits: ClientLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._clients: set[_Client] = set()
        self._by_transport: dict[asyncio.Transport, _Client] = {}

    def held(self) -> int:
        """Connections held now (connecting, waiting or being served)."""
        self._forget_closed()
        return len(self._clients)

    def admit(self, sock: socket.socket) -> _Client | None:
        """A place for the connection on `sock`, making room if needed; None: no room."""
        self._forget_closed()
        if len(self._clients) >= self.limits.max_clients:
            idle = [client for client in self._clients if not client.busy]
            if not idle:
                return None
            self.close(min(idle, key=lambda c: (c.requests > 0, c.waiting_since)))
        client = _Client(sock, self._clock())
        self._clients.add(client)
        return client

    def connected(self, client: _Client, transport: asyncio.Transport) -> None:
        if client in self._clients:
            client.transport = transport
            self._by_transport[transport] = client
        else:  # closed while its handshake finished
            transport.abort()

    def close(self, client: _Client) -> None:
        """Close the connection now (RST: the descriptor is free at once) and forget it."""
        self.forget(client)
        if client.transport is not None:
            client.transport.abort()
        elif client.task is not None:
            client.task.cancel()  # its transport, if it has one yet, closes the socket
        if client.socket is not None:
            client.socket.close()
            client.socket = None

    def forget(self, client: _Client) -> None:
        self._clients.discard(client)
        if client.transport is not None:
            self._by_transport.pop(client.transport, None)

    def expire(self) -> None:
        """Close every connection that has waited too long for a request."""
        now = self._clock()
        self._forget_closed()
        for client in list(self._clients):
            if client.busy:
                continue
            limit = self.limits.idle_timeout_s if client.requests else self.limits.header_timeout_s
            if now - client.waiting_since > limit:
                self.close(client)

    def close_connecting(self) -> None:
        """Close the connections not yet handed to aiohttp (in their TLS handshake)."""
        for client in list(self._clients):
            if client.transport is None:
                self.close(client)

    def _forget_closed(self) -> None:
        for client in list(self._clients):
            if client.transport is not None and client.transport.is_closing():
                self.forget(client)

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        client = self._by_transport.get(request.transport) if request.transport else None
        if client is None:
            return await handler(request)
        client.busy += 1
        client.requests += 1
        try:
            return await handler(request)
        finally:
            client.busy -= 1
            client.waiting_since = self._clock()


async def _listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address of `host` (as
    loop.create_server makes them)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class ApiSite(web.BaseSite):
    """An aiohttp site that accepts its connections itself, through a `ClientGate`.

    aiohttp's TCPSite leaves accepting to the event loop, which has no connection cap,
    no deadline for a TLS handshake plus request head, and logs a traceback for every
    accept() that fails for want of descriptors. Here a failed accept is reported to the
    loop's exception handler (monitor/loop_errors.py summarises) and retried after
    ACCEPT_PAUSE_S.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        gate: ClientGate,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port = host, port
        self._gate = gate
        self._listeners: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def port(self) -> int:
        """The bound port (the asked one before start)."""
        return int(self._listeners[0].getsockname()[1]) if self._listeners else self._port

    @property
    def clients(self) -> int:
        """Connections held now (connecting, waiting or being served)."""
        return self._gate.held()

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host or "0.0.0.0"
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        self._listeners = await _listening_sockets(self._host, self._port, self._backlog)
        self._tasks = [
            asyncio.create_task(self._accept(sock), name=f"accept {sock.getsockname()}")
            for sock in self._listeners
        ]
        self._tasks.append(asyncio.create_task(self._expire(), name="expire API clients"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self._listeners:
            sock.close()
        self._gate.close_connecting()  # the runner then shuts down the others
        await super().stop()

    async def _expire(self) -> None:
        limits = self._gate.limits
        # Fine enough that a deadline is kept within 5 %.
        period = min(0.5, limits.header_timeout_s / 20, limits.idle_timeout_s / 20)
        while True:
            await asyncio.sleep(period)
            self._gate.expire()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _CLIENT_ACCEPT_ERRNOS:
                    continue
                loop.call_exception_handler(
                    {
                        "message": f"cannot accept API clients on {self.name} "
                        f"(retrying in {ACCEPT_PAUSE_S:g}s)",
                        "exception": exc,
                    }
                )
                await asyncio.sleep(ACCEPT_PAUSE_S)
                continue
            client = self._gate.admit(sock)
            if client is None:
                sock.close()  # every place is handling a request: this one must come back
                continue
            client.task = asyncio.create_task(self._connect(client))

    async def _connect(self, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        server = self._runner.server
        sock, client.socket = client.socket, None  # the transport owns (and closes) it now
        assert server is not None and sock is not None
        try:
            if self._ssl_context is None:
                transport, _ = await loop.connect_accepted_socket(server, sock)
            else:
                transport, _ = await loop.connect_accepted_socket(
                    server,
                    sock,
                    ssl=self._ssl_context,
                    ssl_handshake_timeout=self._gate.limits.header_timeout_s,
                )
        except Exception as exc:  # the client's doing: a failed handshake, a reset
            log.debug("api: a client's connection failed: %s: %s", type(exc).__name__, exc)
            self._gate.forget(client)
            return
        finally:
            client.task = None
        self._gate.connected(client, transport)


class ApiServer:
    """The API on the network: `await ApiServer.start(...)`, then `close()`."""

    def __init__(self, runner: web.AppRunner, site: ApiSite) -> None:
        self.runner, self.site = runner, site

    @classmethod
    async def start(
        cls,
        app: web.Application,
        host: str,
        port: int,
        *,
        limits: ClientLimits | None = None,
        web_config: WebConfig | None = None,
        shutdown_timeout_s: float = 1.0,
    ) -> ApiServer:
        """Serve `app` on host:port within `limits`, with `web_config`'s TLS, authentication
        and headers on every endpoint. OSError when it cannot listen."""
        limits = limits or ClientLimits()
        gate = ClientGate(limits)
        app.middlewares.insert(0, gate.track)
        if web_config is not None:
            app.middlewares.insert(1, web_config.middleware())
        tls = web_config.tls.ssl_context() if web_config and web_config.tls else None
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=shutdown_timeout_s,
            # aiohttp's own keep-alive timer also runs from the accept: a backstop that must not
            # close a connection before the gate's deadlines.
            keepalive_timeout=max(limits.idle_timeout_s, limits.header_timeout_s),
        )
        await runner.setup()
        site = ApiSite(runner, host, port, gate=gate, ssl_context=tls)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        return cls(runner, site)

    @property
    def url(self) -> str:
        return self.site.name

    async def close(self) -> None:
        await self.runner.cleanup()
