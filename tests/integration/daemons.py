"""Helpers for tests that run real processes: `govwatch run`, Prometheus, ...

`Daemon` is a `govwatch run` subprocess with a client for its endpoints; `wait_for`
polls a condition within a budget; `free_port` asks the OS for a loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(check: Callable[[], Awaitable[bool]], budget_s: float, what: str) -> float:
    """Poll `check` until true; fail after `budget_s`. Returns the seconds it took."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > budget_s:
            pytest.fail(f"timed out after {budget_s:.1f}s waiting for {what}")
        await asyncio.sleep(0.25)


class Daemon:
    """A `govwatch run` subprocess and a client for its endpoints."""

    def __init__(
        self,
        targets: Path,
        db: Path,
        vantage: str | None = None,
        *,
        extra_args: Sequence[str] = (),
        tls: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        """`extra_args` go to `govwatch run`; with `--web-config`, `tls` (the client context
        trusting its certificate) and `headers` (Authorization) are what the client presents."""
        self.targets, self.db, self.vantage = targets, db, vantage
        self.extra_args, self.preexec_fn = extra_args, preexec_fn
        self.tls, self.headers = tls, headers
        self.port = free_port()
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None
        self.log = db.with_suffix(".log")

    async def start(self) -> None:
        args = [
            "run",
            str(self.targets),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--db",
            str(self.db),
        ]
        if self.vantage:
            args += ["--vantage", self.vantage]
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor", *args, *self.extra_args,
                stdout=log, stderr=log, preexec_fn=self.preexec_fn,
            )  # fmt: skip
        self.session = self.session or aiohttp.ClientSession(
            headers=self.headers, connector=aiohttp.TCPConnector(ssl=self.tls) if self.tls else None
        )
        await wait_for(self._answers, 15.0, "the daemon to listen")

    async def _answers(self) -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            await self.status()
            return True
        return False

    async def status(self, **params: str) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.get(f"{self.base}/api/v1/status", params=params) as response:
            response.raise_for_status()
            body: dict[str, Any] = await response.json()
            return body

    async def get(self, path: str) -> tuple[int, str]:
        assert self.session is not None
        async with self.session.get(f"{self.base}{path}") as response:
            return response.status, await response.text()

    async def metric(self, name: str, **labels: str) -> float | None:
        _, text = await self.get("/metrics")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return None

    async def stop(self, sig: int = signal.SIGTERM) -> float:
        """Signal the process; returns how long it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        if self.process.returncode is None:
            self.process.send_signal(sig)
            await asyncio.wait_for(self.process.wait(), 10.0)
        return time.monotonic() - started

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self.session is not None:
            await self.session.close()
