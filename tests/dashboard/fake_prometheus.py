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
