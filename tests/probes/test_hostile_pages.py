"""Hostile pages: whatever a server sends, the HTTP probe returns a classified result.

A raw TCP server on loopback answers each request with bytes chosen by the test, so the
response can carry what no well-behaved server library would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

import probes.http
from probes.http import private_address, probe_http
from probes.results import ProbeResult, Reason
from probes.settings import ProbeTarget
from tests.probes.conftest import LOOPBACK, PORTAL_NAME, ContextFactory
from tests.probes.test_http import portal_dns

BUDGET_S = 1.0
HACKED = b"<html><head><title>HACKED</title></head><body>hacked by nobody</body></html>"


@contextlib.asynccontextmanager
async def raw_server(answer: bytes, host: str = LOOPBACK) -> AsyncIterator[tuple[str, list[int]]]:
    """Answers every request with `answer`, then closes; yields its URL and a hit counter."""
    hits: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(1)
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}/", hits
    finally:
        server.close()
        await server.wait_closed()


def response(headers: dict[str, str], body: bytes = HACKED, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def probe(ctx_factory: ContextFactory, url: str, expect: str | None) -> ProbeResult:
    async with ctx_factory(timeout_s=BUDGET_S) as ctx:
        started = time.perf_counter()
        result = await probe_http(ProbeTarget(url, expect_text=expect), ctx)
        assert time.perf_counter() - started <= BUDGET_S * 1.1 + 0.05
    return result


# Codecs Python knows that are not text encodings, names it does not know, and text
# codecs whose decoder refuses errors="replace".
CHARSETS = ["undefined", "hex", "rot13", "base64", "zlib", "bz2", "uu", "quopri", "idna",
            "utf-7", "punycode", "x-user-defined", "utf-8\x00", "a" * 300]  # fmt: skip


@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("where", ["header", "meta"])
async def test_a_hostile_charset_is_judged_not_raised(
    make_probe_context: ContextFactory, charset: str, where: str
) -> None:
    safe = charset.replace("\x00", "")
    if where == "header":
        answer = response({"Content-Type": f"text/html; charset={safe}"})
    else:
        body = f'<html><head><meta charset="{safe}"></head>'.encode() + HACKED
        answer = response({"Content-Type": "text/html"}, body)
    async with raw_server(answer) as (url, _):
        hacked = await probe(make_probe_context, url, expect="Ministry of Justice")
        seen = await probe(make_probe_context, url, expect="hacked by")
    assert not hacked.ok and hacked.reason is Reason.HTTP_CONTENT, hacked.error
    assert seen.ok, seen.error  # the text is still read (as UTF-8) and judged


LOCATIONS = [
    pytest.param("http://xn--a.test/", id="invalid-punycode"),
    pytest.param("http://xn--a/", id="invalid-punycode-bare"),
    pytest.param("file:///etc/passwd", id="file"),
    pytest.param("ftp://ftp.example.test/", id="ftp"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("http://[zz]/", id="bad-ipv6"),
    pytest.param("//[::1", id="unclosed-ipv6"),
    pytest.param("http://" + "a" * 10_000 + "/", id="10kb-host"),
    pytest.param("http://:0/", id="no-host"),
    pytest.param("http://a.test:99999/", id="port-out-of-range"),
    pytest.param("\x00\x01\x02", id="control-bytes"),
]


@pytest.mark.parametrize("location", LOCATIONS)
async def test_a_hostile_redirect_is_a_protocol_error(
    make_probe_context: ContextFactory, location: str
) -> None:
    answer = response({"Location": location}, b"", status="302 Found")
    async with raw_server(answer) as (url, _):
        result = await probe(make_probe_context, url, expect=None)
    assert not result.ok
    assert result.reason is Reason.PROTOCOL_ERROR, (result.reason, result.error)


async def test_an_empty_location_is_not_followed_forever(
    make_probe_context: ContextFactory,
) -> None:
    answer = response({"Location": ""}, b"", status="302 Found")
    async with raw_server(answer) as (url, _):
        result = await probe(make_probe_context, url, expect=None)
    # An empty Location means "this same URL": a loop, not a crash.
    assert not result.ok
    assert result.reason in {Reason.HTTP_REDIRECT_LOOP, Reason.PROTOCOL_ERROR}


# (address, private: a public target's redirect may not lead there)
ADDRESS_ROWS = [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("169.254.169.254", True),
    ("fe80::1%eth0", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
    ("fc00::1", True), ("0.0.0.0", True), ("100.64.0.1", True),
    ("8.8.8.8", False), ("193.104.68.10", False), ("2001:4860:4860::8888", False),
]  # fmt: skip


@pytest.mark.parametrize(("address", "private"), ADDRESS_ROWS)
def test_private_address(address: str, private: bool) -> None:
    assert private_address(address) is private


async def test_a_target_on_loopback_may_redirect_within_loopback(
    make_probe_context: ContextFactory,
) -> None:
    async with raw_server(response({}, b"admin"), host="127.0.0.3") as (inner, hits):
        redirect = response({"Location": inner}, b"", status="302 Found")
        async with raw_server(redirect, host="127.0.0.2") as (outer, _):
            result = await probe(make_probe_context, outer, expect="admin")
    assert result.ok, result.error
    assert hits == [1]


PUBLIC_HOME = "127.0.0.2"  # stands for a public address: tests may reach only loopback


@pytest.mark.parametrize("how", ["literal", "name"])
async def test_a_public_target_never_leads_the_probe_into_private_space(
    make_probe_context: ContextFactory, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setattr(
        probes.http, "private_address", lambda a: a != PUBLIC_HOME and private_address(a)
    )
    admin = response({"Server": "secret-admin/1.0"}, b"root console")
    async with portal_dns() as resolver, raw_server(admin) as (inner, hits):
        port = inner.rsplit(":", 1)[1]
        location = inner if how == "literal" else f"http://{PORTAL_NAME}:{port}"
        redirect = response({"Location": location}, b"", status="302 Found")
        async with (
            raw_server(redirect, host=PUBLIC_HOME) as (outer, _),
            make_probe_context(timeout_s=BUDGET_S, resolvers=(resolver,)) as ctx,
        ):
            result = await probe_http(ProbeTarget(outer), ctx)
    assert not result.ok and result.reason is Reason.PROTOCOL_ERROR, result.error
    assert "private address (127.0.0.1) not followed" in (result.error or "")
    assert hits == []  # never contacted
    assert result.details is not None and "secret-admin" not in repr(result.details)
