"""The simulator's control API (aiohttp, 127.0.0.1).

    GET  /healthz         "ok"
    GET  /api/region      ports, vantages, networks, the selectors every scope accepts
    GET  /api/sites       every site with its addresses and current faults
    GET  /api/modes       the fault modes, their layer and what a probe reports
    GET  /api/scenario    the scenario being played (step, note, expected conclusion) or null
    POST /api/fault       {"scope", "selector", "mode", "vantage"?} -> {"sites": [...]}
    POST /api/recover     {"scope"?, "selector"?, "vantage"?} (default: everything)

Errors are 400 with {"error": message}. The client is simulator.client.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from simulator.client import DEFAULT_CONTROL_HOST, DEFAULT_CONTROL_PORT
from simulator.region import FAULT_MODES, RECOVER, Scope


class Controllable(Protocol):
    """What the API drives: a running `SimulatedRegion`."""

    async def apply_fault(
        self, scope: Scope | str, selector: str, mode: str, vantage: str | None = None
    ) -> tuple[str, ...]: ...

    def describe(self) -> dict[str, Any]: ...

    def site_rows(self) -> list[dict[str, Any]]: ...


def modes_table() -> list[dict[str, Any]]:
    return [
        {
            "mode": mode.name,
            "layer": str(mode.layer),
            "description": mode.description,
            "http_reason": str(mode.http_reason) if mode.http_reason else None,
        }
        for mode in FAULT_MODES.values()
    ]


def _error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


class ControlServer:
    """Serves the control API for one running region. `scenario_status` is set by the player."""

    def __init__(
        self,
        region: Controllable,
        host: str = DEFAULT_CONTROL_HOST,
        port: int = DEFAULT_CONTROL_PORT,
    ) -> None:
        self.region = region
        self.host = host
        self.port = port
        self.scenario_status: dict[str, Any] | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/api/region", self._region)
        app.router.add_get("/api/sites", self._sites)
        app.router.add_get("/api/modes", self._modes)
        app.router.add_get("/api/scenario", self._scenario)
        app.router.add_post("/api/fault", self._fault)
        app.router.add_post("/api/recover", self._recover)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # the port the OS chose
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _region(self, request: web.Request) -> web.Response:
        return web.json_response(self.region.describe())

    async def _sites(self, request: web.Request) -> web.Response:
        return web.json_response(self.region.site_rows())

    async def _modes(self, request: web.Request) -> web.Response:
        return web.json_response(modes_table())

    async def _scenario(self, request: web.Request) -> web.Response:
        return web.json_response(self.scenario_status)

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error("the body must be a JSON object")
        if not isinstance(body, dict):
            return _error("the body must be a JSON object")
        for key, value in body.items():
            if value is not None and not isinstance(value, str):
                return _error(f"{key} must be a string")
        return body

    async def _apply(
        self, scope: str, selector: str, mode: str, vantage: str | None
    ) -> web.Response:
        try:
            sites = await self.region.apply_fault(scope, selector, mode, vantage)
        except (LookupError, ValueError) as exc:
            return _error(str(exc))
        return web.json_response(
            {
                "scope": scope,
                "selector": selector,
                "mode": mode,
                "vantage": vantage,
                "sites": list(sites),
            }
        )

    async def _fault(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        missing = [k for k in ("scope", "selector", "mode") if not body.get(k)]
        if missing:
            return _error(f"missing {', '.join(missing)}")
        if body["scope"] not in set(Scope):
            return _error(f"unknown scope {body['scope']!r} (scopes: {', '.join(Scope)})")
        return await self._apply(body["scope"], body["selector"], body["mode"], body.get("vantage"))

    async def _recover(self, request: web.Request) -> web.Response:
        body = await self._body(request) if request.can_read_body else {}
        if isinstance(body, web.Response):
            return body
        scope = body.get("scope") or Scope.ALL.value
        if scope not in set(Scope):
            return _error(f"unknown scope {scope!r} (scopes: {', '.join(Scope)})")
        return await self._apply(scope, body.get("selector") or "*", RECOVER, body.get("vantage"))
