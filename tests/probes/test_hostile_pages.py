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
from probes.http import AddressSpace, address_space, probe_http, refused_address
from probes.results import HttpDetails, ProbeResult, Reason
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


META = {
    "meta": '<meta charset="{}">',
    "meta-http-equiv": '<meta http-equiv="Content-Type" content="text/html; charset={}">',
}


@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("where", ["header", *META])
async def test_a_hostile_charset_is_judged_not_raised(
    make_probe_context: ContextFactory, charset: str, where: str
) -> None:
    safe = charset.replace("\x00", "")
    if where == "header":
        answer = response({"Content-Type": f"text/html; charset={safe}"})
    else:
        body = f"<html><head>{META[where].format(safe)}</head>".encode() + HACKED
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
    async with raw_server(answer) as (url, hits):
        result = await probe(make_probe_context, url, expect=None)
    # An empty Location means "this same URL" (RFC 3986): a loop, seen at once.
    assert result.reason is Reason.HTTP_REDIRECT_LOOP, (result.reason, result.error)
    assert hits == [1]


async def test_a_thousand_redirects_stop_at_max_redirects(
    make_probe_context: ContextFactory,
) -> None:
    """/0 -> /1 -> ... -> /1000: every URL new, so only the redirect count stops it."""
    paths: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            paths.append(path)
            hop = int(path.strip("/") or 0)
            headers = {"Location": f"/{hop + 1}"} if hop < 1000 else {}
            writer.write(response(headers, b"", "302 Found" if hop < 1000 else "200 OK"))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with make_probe_context(timeout_s=BUDGET_S) as ctx:
            started = time.perf_counter()
            result = await probe_http(ProbeTarget(f"http://{LOOPBACK}:{port}/0"), ctx)
            assert time.perf_counter() - started <= BUDGET_S * 1.1 + 0.05
            max_redirects = ctx.settings.max_redirects
    finally:
        server.close()
        await server.wait_closed()
    assert result.reason is Reason.HTTP_REDIRECT_LOOP, result.error
    assert result.error == f"more than {max_redirects} redirects"
    assert paths == [f"/{hop}" for hop in range(max_redirects + 1)]


GLOBAL, LOOPBACK_SPACE, LINK_LOCAL, PRIVATE, RESERVED = (
    AddressSpace.GLOBAL, AddressSpace.LOOPBACK, AddressSpace.LINK_LOCAL, AddressSpace.PRIVATE,
    AddressSpace.RESERVED,
)  # fmt: skip
ADDRESS_ROWS = [
    ("127.0.0.1", LOOPBACK_SPACE), ("127.8.9.10", LOOPBACK_SPACE), ("::1", LOOPBACK_SPACE),
    ("0.0.0.0", LOOPBACK_SPACE), ("::", LOOPBACK_SPACE),  # Linux connects these to itself
    ("::ffff:127.0.0.1", LOOPBACK_SPACE), ("64:ff9b::7f00:1", LOOPBACK_SPACE),  # mapped, NAT64
    ("2002:7f00:1::", LOOPBACK_SPACE),  # 6to4
    ("169.254.169.254", LINK_LOCAL), ("fe80::1%eth0", LINK_LOCAL),
    ("64:ff9b::a9fe:a9fe", LINK_LOCAL),
    ("10.1.2.3", PRIVATE), ("172.16.0.1", PRIVATE), ("172.31.255.254", PRIVATE),
    ("192.168.1.1", PRIVATE), ("100.64.0.1", PRIVATE), ("fc00::1", PRIVATE),
    ("fd12:3456::1", PRIVATE), ("fec0::1", PRIVATE), ("::ffff:10.0.0.1", PRIVATE),
    ("192.0.2.1", RESERVED), ("2001:db8::1", RESERVED), ("224.0.0.1", RESERVED),
    ("ff02::1", RESERVED), ("255.255.255.255", RESERVED), ("240.0.0.1", RESERVED),
    ("not an address", RESERVED),
    ("8.8.8.8", GLOBAL), ("193.104.68.10", GLOBAL), ("172.32.0.1", GLOBAL),
    ("2001:4860:4860::8888", GLOBAL), ("::ffff:8.8.8.8", GLOBAL), ("64:ff9b::808:808", GLOBAL),
]  # fmt: skip


@pytest.mark.parametrize(("address", "space"), ADDRESS_ROWS)
def test_address_space(address: str, space: AddressSpace) -> None:
    assert address_space(address) is space


# (where the target lives, where a redirect leads, the address refused or None)
REDIRECT_ROWS = [
    ({GLOBAL}, ["8.8.8.8"], None),
    ({GLOBAL}, ["127.0.0.1"], "127.0.0.1"),
    ({GLOBAL}, ["169.254.169.254"], "169.254.169.254"),
    ({GLOBAL}, ["8.8.8.8", "10.0.0.1"], "10.0.0.1"),  # one private address is enough
    ({GLOBAL}, ["::ffff:169.254.169.254"], "::ffff:169.254.169.254"),
    ({LOOPBACK_SPACE}, ["127.0.0.9"], None),
    ({LOOPBACK_SPACE}, ["8.8.8.8"], None),
    ({LOOPBACK_SPACE}, ["169.254.169.254"], "169.254.169.254"),  # another kind of space
    ({PRIVATE}, ["10.9.9.9", "192.168.0.1"], None),
    ({PRIVATE}, ["127.0.0.1"], "127.0.0.1"),
    ({PRIVATE, GLOBAL}, ["172.16.0.1"], None),  # the target has an address there
]


@pytest.mark.parametrize(("home", "addresses", "refused"), REDIRECT_ROWS)
def test_refused_address(
    home: set[AddressSpace], addresses: list[str], refused: str | None
) -> None:
    found = refused_address(frozenset(home), addresses)
    assert (found[0] if found else None) == refused


async def test_a_target_on_loopback_may_redirect_within_loopback(
    make_probe_context: ContextFactory,
) -> None:
    async with raw_server(response({}, b"admin"), host="127.0.0.3") as (inner, hits):
        redirect = response({"Location": inner}, b"", status="302 Found")
        async with raw_server(redirect, host="127.0.0.2") as (outer, _):
            result = await probe(make_probe_context, outer, expect="admin")
    assert result.ok, result.error
    assert hits == [1]


HOME = "127.0.0.2"  # stands for the target's address in `home`: tests may reach only loopback


@pytest.mark.parametrize("how", ["literal", "name"])
@pytest.mark.parametrize("home", [GLOBAL, PRIVATE, LINK_LOCAL])
async def test_a_target_never_leads_the_probe_into_another_space(
    make_probe_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    home: AddressSpace,
) -> None:
    monkeypatch.setattr(
        probes.http, "address_space", lambda a: home if a == HOME else address_space(a)
    )
    admin = response({"Server": "secret-admin/1.0"}, b"root console")
    async with portal_dns() as resolver, raw_server(admin) as (inner, hits):
        port = inner.rsplit(":", 1)[1]
        location = inner if how == "literal" else f"http://{PORTAL_NAME}:{port}"
        redirect = response({"Location": location}, b"", status="302 Found")
        async with (
            raw_server(redirect, host=HOME) as (outer, _),
            make_probe_context(timeout_s=BUDGET_S, resolvers=(resolver,)) as ctx,
        ):
            result = await probe_http(ProbeTarget(outer), ctx)
    assert not result.ok and result.reason is Reason.PROTOCOL_ERROR, result.error
    assert result.error == (
        "redirect to a private address (127.0.0.1) not followed: the target does not live "
        "in loopback address space"
    )
    assert hits == []  # never contacted
    details = result.details
    assert isinstance(details, HttpDetails) and "secret-admin" not in repr(details)
    assert (details.status_code, details.server, details.body_bytes) == (None, None, 0)
    assert details.peer_address is None
