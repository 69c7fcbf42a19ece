"""Hostile API clients against a real `govwatch run` (issue 12, items 2 and 8).

The flood: 1,100 idle TCP connections to the API port of a daemon held to 1,024 file
descriptors (soft and hard, so it cannot raise its own limit) once made every probe fail with
EMFILE, wrote false outages, filled the log with accept() tracebacks and hung /healthz. Now
the daemon holds at most ClientLimits.max_clients of them, answers /healthz at once, keeps
probing, logs nothing per connection, closes a slowloris client at the header timeout and
gives every descriptor back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.api import ClientLimits
from simulator.runner import SimulatedRegion
from tests.integration.daemons import Daemon, free_port, wait_for
from tests.unit.test_webconfig import LockedDown, basic_auth

FLOOD = 1_100
DAEMON_FDS = 1_024  # the usual default soft limit, which the flood exhausted
LIMITS = ClientLimits()  # what `govwatch run` uses
STARTUP_BUDGET_S = 30.0
# Descriptors a daemon at rest may hold beyond its baseline (probes in flight come and go).
FD_SLACK = 16
PROBES_IN_FLIGHT_SLACK = 160  # the simulated region's probes running at that moment


def hold_to_1024_descriptors() -> None:
    """In the daemon's process before exec: hard = soft = 1,024."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_FDS, DAEMON_FDS))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def own_fd_limit(at_least: int) -> Any:
    """This process needs a descriptor per flood connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= at_least:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < at_least:
        pytest.skip(f"the flood needs {at_least} descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (at_least, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.asynccontextmanager
async def idle_connections(port: int, count: int) -> AsyncIterator[list[socket.socket]]:
    loop = asyncio.get_running_loop()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sockets.append(sock)
            await loop.sock_connect(sock, ("127.0.0.1", port))
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


async def slowloris(port: int) -> float:
    """Drip a request head one byte a second; seconds from connect until the server closes."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    connected = time.monotonic()

    async def drip() -> None:
        with contextlib.suppress(OSError):
            for byte in b"GET /healthz HTTP/1.1\r\nHost: govwatch\r\nX-Padding: " + b"a" * 100:
                await loop.sock_sendall(sock, bytes([byte]))
                await asyncio.sleep(1.0)

    dripping = asyncio.create_task(drip())
    try:
        with contextlib.suppress(ConnectionResetError):
            async with asyncio.timeout(LIMITS.header_timeout_s * 2):
                while await loop.sock_recv(sock, 4096):
                    pass
        return time.monotonic() - connected
    finally:
        dripping.cancel()
        sock.close()


async def fresh_get(url: str, **kwargs: Any) -> tuple[int, Any]:
    """GET over a new connection (none kept from before), within 5 s."""
    timeout = aiohttp.ClientTimeout(total=5.0)
    connector = aiohttp.TCPConnector(force_close=True, ssl=kwargs.pop("ssl", True))
    async with (
        aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
        session.get(url, **kwargs) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def test_a_flood_of_idle_clients_and_a_slowloris_change_nothing(
    simulated_region: SimulatedRegion, tmp_path: Path
) -> None:
    daemon = Daemon(
        simulated_region.targets_file(),
        tmp_path / "history.sqlite3",
        preexec_fn=hold_to_1024_descriptors,
    )
    try:
        with own_fd_limit(FLOOD + 1_000):
            await daemon.start()
            assert daemon.process is not None
            pid = daemon.process.pid

            async def all_up() -> bool:
                status = await daemon.status()
                return status["vantage_up"] and all(t["state"] == "up" for t in status["targets"])

            await wait_for(all_up, STARTUP_BUDGET_S, "every target up")
            baseline = open_fds(pid)

            async with idle_connections(daemon.port, FLOOD) as flood:
                # The daemon holds at most max_clients of them; it has closed the rest.
                # Probes in flight come and go beside them (a few sockets per target):
                # bounded by the cap, far below the flood's 1,100.
                assert open_fds(pid) <= baseline + LIMITS.max_clients + PROBES_IN_FLIGHT_SLACK
                # Meanwhile a slowloris client, and real clients every half second for as
                # long as it lasts (more than a probe interval and timeout).
                dripping = asyncio.create_task(slowloris(daemon.port))
                checks = 0
                while not dripping.done():
                    status_code, health = await fresh_get(f"{daemon.base}/healthz")
                    assert status_code == 200, health
                    status_code, status = await fresh_get(f"{daemon.base}/api/v1/status")
                    assert status_code == 200
                    assert not [t["name"] for t in status["targets"] if t["state"] == "down"]
                    assert status["incidents"] == []
                    checks += 1
                    await asyncio.sleep(0.5)
                slow_s = await dripping
                assert len(flood) == FLOOD
            # Closed at the header timeout: not before (it was not evicted), within + 10 %.
            assert LIMITS.header_timeout_s <= slow_s <= LIMITS.header_timeout_s * 1.1
            assert checks >= 10
            await wait_for(all_up, 5.0, "every target still up")

            async def fds_back() -> bool:
                return open_fds(pid) <= baseline + FD_SLACK

            await wait_for(fds_back, 10.0, f"the daemon's descriptors back to {baseline}")
        await daemon.stop()
    finally:
        await daemon.close()
    log = daemon.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]
    noisy = [
        line
        for line in log.splitlines()
        if any(word in line for word in ("accept", "EMFILE", "Too many open files"))
    ]
    assert len(noisy) < 5, noisy


# --- --web-config ------------------------------------------------------------------------

TARGETS = """\
[monitor]
interval = "2s"
timeout = "1s"

[[target]]
name = "portal"
url = "http://127.0.0.1:{port}/"
country = "AL"
sector = "portal"
"""


@pytest.fixture
def targets(tmp_path: Path) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(TARGETS.format(port=free_port()))  # nothing listens: the probe fails
    return path


async def test_run_with_a_web_config_serves_tls_and_basic_auth(
    tmp_path: Path, targets: Path
) -> None:
    locked = LockedDown.create(tmp_path)
    client_tls = locked.client_tls()
    daemon = Daemon(
        targets,
        tmp_path / "history.sqlite3",
        extra_args=["--web-config", str(locked.web_config)],
        tls=client_tls,
        headers=locked.authorization(),
    )
    try:
        await daemon.start()  # through TLS, with the password
        for path in ("/healthz", "/metrics", "/api/v1/status"):
            url = daemon.base + path
            right = locked.authorization()
            assert (await fresh_get(url, ssl=client_tls, headers=right))[0] == 200, path
            wrong = basic_auth("prometheus", "guess")
            assert (await fresh_get(url, ssl=client_tls, headers=wrong))[0] == 401, path
            assert (await fresh_get(url, ssl=client_tls))[0] == 401, path
        with pytest.raises(aiohttp.ClientError):
            await fresh_get(daemon.base.replace("https:", "http:") + "/healthz")
        await daemon.stop()
    finally:
        await daemon.close()
    log = daemon.log.read_text(errors="replace")
    assert f"listening on https://127.0.0.1:{daemon.port} (basic authentication)" in log
    assert "Traceback" not in log, log[-5000:]


def test_a_bad_web_config_stops_the_start_with_one_line(tmp_path: Path, targets: Path) -> None:
    web_config = tmp_path / "web.yml"
    web_config.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "run", str(targets), "--db",
         str(tmp_path / "history.sqlite3"), "--listen", f"127.0.0.1:{free_port()}",
         "--web-config", str(web_config)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{web_config}:2: basic_auth_users.prometheus: not a bcrypt hash ($2y$, $2b$ or $2a$, "
        """a cost, 53 characters); make one with: htpasswd -nBC 10 "" | tr -d ':\\n'"""
    ]
