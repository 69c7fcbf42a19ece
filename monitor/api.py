"""The daemon's HTTP face: /metrics, /api/v1/status, /api/v1/incidents and /healthz.

Every handler reads the snapshot the daemon last published (one reference,
swapped whole), so a response is always one consistent view and no handler
takes a lock. `incident_to_dict` is THE serialised form of an incident;
storage and the dashboard may reuse it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.countries import country_name
from monitor.exporter import Renderer, SnapshotSource
from monitor.outage import Incident, InfraHint
from monitor.snapshot import Snapshot, TargetView
from monitor.state import TargetState

log = logging.getLogger(__name__)

# The text format generate_latest writes (Prometheus exposition format 0.0.4).
METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
# /healthz fails when no probe finished within this many probe intervals.
HEALTH_INTERVALS: Final = 3
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


def target_to_dict(view: TargetView, *, details: bool = False) -> dict[str, Any]:
    """A target's reported state and the latest result of each probe.

    `since` is when the reported state began; None while a confirmed failure
    still waits for the canaries to vouch for the vantage (reported unknown).
    Probe details (certificates, DNS answers...) only when `details` is set.
    """
    target, status = view.target, view.status
    probes: dict[str, Any] = {}
    for kind, track in status.probes.items():
        summary = track.last.to_dict()
        if not details:
            del summary["details"]
        probes[kind.value] = summary
    reason = view.reason
    return {
        "name": target.name,
        "country": target.country,
        "sector": target.sector,
        "url": target.url,
        "state": view.state.value,
        "since": status.since if view.state is status.state else None,
        "reason": reason.value if reason is not None else None,
        "probes": probes,
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
        },
        "countries": [
            {
                "country": summary.country,
                "name": country_name(summary.country),
                "up": summary.up,
                "down": summary.down,
                "unknown": summary.unknown,
                "total": summary.total,
                "availability": summary.availability,
                "outage": summary.in_outage,
            }
            for summary in world.countries
            if wanted_country(summary.country)
        ],
        "targets": [
            target_to_dict(view, details=details)
            for view in views
            if wanted_country(view.target.country) and (states is None or view.state in states)
        ],
        "incidents": [
            incident_to_dict(incident)
            for incident in snapshot.open_incidents
            if wanted_incident(incident)
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
        if age > limit:
            if snapshot.last_probe_at is None:
                reason = f"no probe has finished in the {age:.0f}s since the start"
            else:
                reason = f"the latest probe finished {age:.0f}s ago"
            reason += f" (limit {limit:.0f}s)"
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
