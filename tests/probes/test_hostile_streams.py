"""The hostile corpus, part two: servers that never stop, stop rudely or crawl; oversized
and overlong certificate chains; then a thousand such probes, and nothing left behind.

Each case is one real server on loopback; each ends with a reason from the closed enum
within the probe's budget + 10 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import ssl
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from probes.http import probe_http
from probes.results import ProbeResult, Reason
from probes.settings import ProbeTarget
from probes.tls import probe_tls
from tests.probes.conftest import LOOPBACK, ContextFactory

BUDGET_S = 1.0
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEAD_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"


@contextlib.asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            await handler(reader, writer)
        with contextlib.suppress(OSError):
            writer.close()

    server = await asyncio.start_server(guarded, LOOPBACK, 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://{LOOPBACK}:{port}/"
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await server.wait_closed()


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(HEAD_OK + b"Connection: close\r\n\r\n")
    while True:
        writer.write(b"x" * 65536)
        await writer.drain()


async def endless_chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(HEAD_OK + b"Transfer-Encoding: chunked\r\n\r\n")
    while True:
        writer.write(b"10\r\n0123456789abcdef\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)


async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(HEAD_OK + b"Content-Length: 100000\r\n\r\n" + b"x" * 1000)
    await writer.drain()
    raw = writer.get_extra_info("socket")
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST, not FIN


async def endless_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(HEAD_OK)
    for number in range(10**9):
        writer.write(b"X-Filler-%d: %s\r\n" % (number, b"y" * 100))
        await writer.drain()


async def slowloris_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    for byte in HEAD_OK + b"Content-Length: 2\r\n\r\nok":
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


def deflate_bomb_handler() -> Handler:
    bomb = zlib.compress(b"\0" * (20 * 1024 * 1024), 9)  # 20 MiB inflated, ~20 KB on the wire

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            HEAD_OK + b"Content-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb
        )
        await writer.drain()

    return handler


HTTP_CASES = [
    pytest.param(endless_body, {Reason.HTTP_TOO_LARGE}, id="endless-body"),
    pytest.param(endless_chunks, {Reason.HTTP_TIMEOUT}, id="endless-chunked-stream"),
    pytest.param(reset_mid_body, {Reason.PROTOCOL_ERROR}, id="reset-mid-body"),
    pytest.param(endless_header, {Reason.PROTOCOL_ERROR}, id="endless-header"),
    pytest.param(slowloris_server, {Reason.HTTP_TIMEOUT}, id="slowloris-server"),
    pytest.param(deflate_bomb_handler(), {Reason.HTTP_TOO_LARGE}, id="deflate-bomb"),
]


async def timed(probe: Callable[[], Awaitable[ProbeResult]], budget_s: float) -> ProbeResult:
    started = time.perf_counter()
    result = await probe()
    assert time.perf_counter() - started <= budget_s * 1.1 + 0.05
    return result


@pytest.mark.parametrize(("handler", "reasons"), HTTP_CASES)
async def test_hostile_http_server(
    make_probe_context: ContextFactory, handler: Handler, reasons: set[Reason]
) -> None:
    async with serving(handler) as url, make_probe_context(timeout_s=BUDGET_S) as ctx:
        result = await timed(lambda: probe_http(ProbeTarget(url), ctx), BUDGET_S)
    assert not result.ok
    assert result.reason in reasons, (result.reason, result.error)


def chain_of(ca: trustme.CA, depth: int, *names: str) -> ssl.SSLContext:
    """A server context presenting a leaf under `depth` intermediates, all sent."""
    issuer = ca
    for _ in range(depth):
        issuer = issuer.create_child_ca()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issuer.issue_cert(*names).configure_cert(context)
    return context


async def test_a_100_certificate_chain_is_judged_within_budget(
    make_probe_context: ContextFactory,
) -> None:
    deep_ca = trustme.CA(path_length=101)  # trustme's default CA allows only 9 below it
    async with (
        serving(endless_body, tls=chain_of(deep_ca, 100, LOOPBACK)) as url,
        make_probe_context(timeout_s=BUDGET_S) as ctx,
    ):
        result = await timed(lambda: probe_tls(ProbeTarget(url), ctx), BUDGET_S)
    # Not in the trust store, and deeper than OpenSSL will verify: untrusted, not a hang.
    assert result.reason in {Reason.TLS_CERT_UNTRUSTED, Reason.TLS_HANDSHAKE}, result.error


async def test_an_oversized_certificate_is_judged_within_budget(
    make_probe_context: ContextFactory, trusted_ca: trustme.CA
) -> None:
    names = [LOOPBACK, *(f"{'n' * 50}{i}.oversized.test" for i in range(1500))]  # ~100 KB
    async with (
        serving(endless_body, tls=chain_of(trusted_ca, 0, *names)) as url,
        make_probe_context(timeout_s=BUDGET_S) as ctx,
    ):
        result = await timed(lambda: probe_tls(ProbeTarget(url), ctx), BUDGET_S)
    assert result.reason in {None, Reason.TLS_HANDSHAKE}, result.error


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_thousand_hostile_probes_leave_nothing_behind(
    make_probe_context: ContextFactory,
) -> None:
    handlers = [endless_body, endless_chunks, reset_mid_body, endless_header, slowloris_server,
                deflate_bomb_handler()]  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serving(h)) for h in handlers]
        # A small body cap: the endless body ends sooner, the test stays cheap.
        ctx = await stack.enter_async_context(
            make_probe_context(timeout_s=0.3, max_body_bytes=65_536)
        )
        await probe_http(ProbeTarget(urls[0]), ctx)  # warm: the session's own sockets
        gc.collect()
        fds, tasks = open_fds(), len(asyncio.all_tasks())
        gate = asyncio.Semaphore(100)

        async def one(index: int) -> ProbeResult:
            async with gate:
                return await probe_http(ProbeTarget(urls[index % len(urls)]), ctx)

        results = await asyncio.gather(*(one(i) for i in range(1000)))
        assert all(not r.ok and r.reason is not None for r in results)
        for _ in range(100):  # the servers' handlers wind down on their side
            await asyncio.sleep(0.05)
            gc.collect()
            if open_fds() <= fds and len(asyncio.all_tasks()) <= tasks + len(handlers):
                break
        assert open_fds() <= fds, (fds, open_fds())
        # The probes' tasks are all gone; only server-side handlers still draining remain.
        assert len(asyncio.all_tasks()) <= tasks + len(handlers), (tasks, asyncio.all_tasks())
