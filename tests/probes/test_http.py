"""probe_http against real loopback servers (simulator.web) with trustme certificates."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from probes.context import ProbeContext
from probes.http import probe_http
from probes.registry import PROBES
from probes.results import HttpDetails, LocalFault, ProbeKind, ProbeResult, Reason
from probes.settings import Nameserver, ProbeTarget
from simulator.dns_server import DnsServer, Fault, make_zone
from simulator.web import FaultWebServer, WebMode
from tests.probes.conftest import LOOPBACK, PORTAL_NAME, ServerCertificates

BUDGET_S = 0.5  # for probes that must run out of time
SLACK_S = 0.05
PHASE_NAMES = {"resolve", "connect", "tls", "processing", "transfer"}


@contextlib.asynccontextmanager
async def web_server(
    mode: WebMode, tls: ssl.SSLContext | None = None, **knobs: object
) -> AsyncIterator[FaultWebServer]:
    server = FaultWebServer(LOOPBACK, 0, ssl_context=tls, mode=mode)
    for name, value in knobs.items():
        assert hasattr(server, name), name
        setattr(server, name, value)
    async with server:
        yield server


async def timed_probe(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
    """Probe once; every probe, passing or failing, must end within its budget + 10%."""
    started = time.perf_counter()
    result = await probe_http(target, ctx)
    elapsed = time.perf_counter() - started
    assert elapsed <= ctx.settings.timeout_s * 1.1 + SLACK_S, elapsed
    assert result.kind is ProbeKind.HTTP
    assert set(result.phases) == PHASE_NAMES
    return result


def dominant_phase(result: ProbeResult) -> str:
    """The phase that took most of the probe's time."""
    return max(result.phases, key=lambda name: result.phases[name])


def details_of(result: ProbeResult) -> HttpDetails:
    assert isinstance(result.details, HttpDetails)
    return result.details


def test_registry_maps_http_to_probe_http():
    assert PROBES[ProbeKind.HTTP] is probe_http


async def test_valid_https_page(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.OK, server_certs.valid) as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.ok, result.error
    assert result.reason is None
    details = details_of(result)
    assert details.status_code == 200
    assert details.final_url == server.url
    assert details.redirects == 0
    assert details.http_version == "1.1"
    assert details.tls_version is not None and details.tls_version.startswith("TLSv1.")
    assert details.tls_cipher
    assert details.peer_address == LOOPBACK
    assert details.peer_port == server.port
    assert details.resolved_addresses == (LOOPBACK,)
    assert details.body_bytes == len(server.body_text) * 2 + len(
        "<!doctype html><html><head><meta charset=utf-8><title></title></head>"
        "<body><h1></h1></body></html>\n"
    )


async def test_phases_cover_the_probe(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.OK, server_certs.valid) as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    phases = result.phases
    assert result.ok
    assert phases["resolve"] == 0.0  # an IP literal is not looked up
    for name in ("connect", "tls", "processing", "transfer"):
        assert phases[name] > 0.0, name
    # Every moment of the probe is charged to exactly one phase.
    assert sum(phases.values()) == pytest.approx(result.duration_s, abs=1e-6)


async def test_plain_http_has_no_tls_phase(make_probe_context):
    async with web_server(WebMode.OK) as server, make_probe_context() as ctx:
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.ok, result.error
    assert result.phases["tls"] == 0.0
    assert result.phases["connect"] > 0.0
    assert details_of(result).tls_version is None


async def test_every_probe_opens_a_fresh_connection(
    server_certs: ServerCertificates, make_probe_context
):
    async with (
        web_server(WebMode.OK, server_certs.valid) as server,
        make_probe_context() as ctx,
    ):
        first = await timed_probe(ProbeTarget(server.url), ctx)
        second = await timed_probe(ProbeTarget(server.url), ctx)

    assert first.ok and second.ok
    assert server.connections_accepted == 2
    assert second.phases["tls"] > 0.0  # a second handshake, not a reused connection


async def test_expected_text_present(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.OK, server_certs.valid, body_text="Portali e-Albania") as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url, expect_text="e-Albania"), ctx)

    assert result.ok, result.error


@pytest.mark.parametrize("mode", [WebMode.OK, WebMode.DEFACED])
async def test_expected_text_missing(
    mode: WebMode, server_certs: ServerCertificates, make_probe_context
):
    async with (
        web_server(mode, server_certs.valid, body_text="Portali") as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url, expect_text="e-Albania"), ctx)

    assert result.reason is Reason.HTTP_CONTENT
    assert details_of(result).status_code == 200


async def test_server_error_status(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.STATUS, server_certs.valid, status_code=500) as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.HTTP_STATUS
    assert details_of(result).status_code == 500


async def test_expected_status_set_overrides_the_default(
    server_certs: ServerCertificates, make_probe_context
):
    async with (
        web_server(WebMode.STATUS, server_certs.valid, status_code=503) as server,
        make_probe_context() as ctx,
    ):
        accepted = await timed_probe(ProbeTarget(server.url, expect_status=frozenset({503})), ctx)
        await server.set_mode(WebMode.OK)
        refused = await timed_probe(ProbeTarget(server.url, expect_status=frozenset({503})), ctx)

    assert accepted.ok, accepted.error
    assert refused.reason is Reason.HTTP_STATUS


async def test_connection_refused(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.REFUSE, server_certs.valid) as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.CONNECT_REFUSED
    assert details_of(result).status_code is None


async def test_dropped_syns_are_a_connect_timeout(
    server_certs: ServerCertificates, make_probe_context
):
    async with (
        web_server(WebMode.DROP, server_certs.valid) as server,
        make_probe_context(timeout_s=BUDGET_S) as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)
        await server.set_mode(WebMode.OK)  # the same port serves again
        recovered = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.CONNECT_TIMEOUT
    assert dominant_phase(result) == "connect"
    assert details_of(result).peer_address is None
    assert recovered.ok, recovered.error


async def test_tls_never_answered(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.BLACKHOLE, server_certs.valid) as server,
        make_probe_context(timeout_s=BUDGET_S) as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.TLS_HANDSHAKE
    # TCP connected at once; the budget went into the handshake.
    assert dominant_phase(result) == "tls"


async def test_plain_http_never_answered(make_probe_context):
    async with (
        web_server(WebMode.BLACKHOLE) as server,
        make_probe_context(timeout_s=BUDGET_S) as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.HTTP_TIMEOUT
    assert dominant_phase(result) == "processing"


async def test_headers_never_sent(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.SLOW, server_certs.valid, slow_delay_s=30.0) as server,
        make_probe_context(timeout_s=BUDGET_S) as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.HTTP_TIMEOUT
    assert dominant_phase(result) == "processing"
    assert details_of(result).status_code is None


async def test_body_dripped(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.DRIP, server_certs.valid, drip_interval_s=0.2) as server,
        make_probe_context(timeout_s=BUDGET_S) as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.HTTP_TIMEOUT
    assert dominant_phase(result) == "transfer"
    details = details_of(result)
    assert details.status_code == 200
    assert details.body_bytes < len(server.body_text)  # a few bytes of the page


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "until-close"])
async def test_huge_body(
    declare_length: bool, server_certs: ServerCertificates, make_probe_context
):
    limit = 1 << 20
    async with (
        web_server(WebMode.HUGE_BODY, server_certs.valid, declare_length=declare_length) as server,
        make_probe_context(max_body_bytes=limit) as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert server.huge_body_bytes == 50 << 20
    assert result.reason is Reason.HTTP_TOO_LARGE
    # Declared too large: refused unread. Undeclared: read until past the limit
    # (by what aiohttp had buffered), never on to the 50 MiB.
    if declare_length:
        assert details_of(result).body_bytes == 0
    else:
        assert limit < details_of(result).body_bytes <= 4 * limit


async def test_gzip_bomb(server_certs: ServerCertificates, make_probe_context):
    limit = 1 << 20
    async with (
        web_server(WebMode.GZIP_BOMB, server_certs.valid) as server,
        make_probe_context(max_body_bytes=limit) as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.HTTP_TOO_LARGE
    details = details_of(result)
    assert details.content_encoding == "gzip"
    # Inflated a chunk or so past the limit, not to the bomb's 256 MiB.
    assert limit < details.body_bytes <= 4 * limit


async def test_redirect_is_followed(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.REDIRECT, server_certs.valid) as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.ok, result.error
    details = details_of(result)
    assert details.redirects == 1
    assert details.final_url == server.url + "landing"
    assert details.redirect_chain == (server.url, server.url + "landing")
    assert server.connections_accepted == 2


async def test_redirect_loop(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.REDIRECT_LOOP, server_certs.valid) as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.HTTP_REDIRECT_LOOP
    # / -> /loop-a -> /loop-b -> /loop-a: stopped at the first URL seen twice.
    assert details_of(result).redirect_chain == (
        server.url,
        server.url + "loop-a",
        server.url + "loop-b",
    )


async def test_too_many_redirects(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.REDIRECT, server_certs.valid) as server,
        make_probe_context(max_redirects=0) as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.HTTP_REDIRECT_LOOP
    assert server.connections_accepted == 1


@contextlib.asynccontextmanager
async def aiohttp_app(routes: web.RouteTableDef) -> AsyncIterator[str]:
    """A well-behaved aiohttp.web server on loopback; yields its base URL."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://{LOOPBACK}:{port}/"
    finally:
        await runner.cleanup()


async def test_cookie_check_redirect_to_the_same_url_is_no_loop(make_probe_context):
    """Portals that set a cookie and redirect to themselves must not look like loops."""
    routes = web.RouteTableDef()

    @routes.get("/")
    async def cookie_check(request: web.Request) -> web.Response:
        if request.cookies.get("checked") != "1":
            response = web.HTTPFound("/")
            response.set_cookie("checked", "1")
            raise response
        return web.Response(text="welcome")

    async with aiohttp_app(routes) as url, make_probe_context() as ctx:
        result = await timed_probe(ProbeTarget(url, expect_text="welcome"), ctx)

    assert result.ok, result.error
    assert details_of(result).redirect_chain == (url, url)


@pytest.mark.parametrize("declared_in", ["header", "meta"])
async def test_expected_text_in_a_legacy_charset(declared_in: str, make_probe_context):
    page = "<html><head>{meta}</head><body>Портал за електронски услуги</body></html>"
    routes = web.RouteTableDef()

    @routes.get("/")
    async def legacy(_request: web.Request) -> web.Response:
        if declared_in == "header":
            body = page.format(meta="").encode("cp1251")
            return web.Response(body=body, content_type="text/html", charset="windows-1251")
        body = page.format(meta='<meta charset="windows-1251">').encode("cp1251")
        return web.Response(body=body, headers={"Content-Type": "text/html"})

    async with aiohttp_app(routes) as url, make_probe_context() as ctx:
        found = await timed_probe(ProbeTarget(url, expect_text="Портал"), ctx)
        missing = await timed_probe(ProbeTarget(url, expect_text="Портали"), ctx)

    assert found.ok, found.error
    assert missing.reason is Reason.HTTP_CONTENT


async def test_megabyte_header_line(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.HUGE_HEADER, server_certs.valid) as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert server.huge_header_bytes == 1 << 20
    assert result.reason is Reason.PROTOCOL_ERROR


async def test_non_http_answer(server_certs: ServerCertificates, make_probe_context):
    async with (
        web_server(WebMode.GARBAGE, server_certs.valid) as server,
        make_probe_context() as ctx,
    ):
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert result.reason is Reason.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("certificate", "reason"),
    [
        ("expired", Reason.TLS_CERT_EXPIRED),
        ("other_name", Reason.TLS_HOSTNAME_MISMATCH),
        ("untrusted", Reason.TLS_CERT_UNTRUSTED),
    ],
)
async def test_bad_certificate(
    certificate: str, reason: Reason, server_certs: ServerCertificates, make_probe_context
):
    async with (
        web_server(WebMode.OK, server_certs.valid) as server,
        make_probe_context() as ctx,
    ):
        before = await timed_probe(ProbeTarget(server.url), ctx)
        server.ssl_context = getattr(server_certs, certificate)  # swapped at runtime
        result = await timed_probe(ProbeTarget(server.url), ctx)

    assert before.ok, before.error
    assert result.reason is reason, result.error
    assert result.phases["tls"] > 0.0
    assert details_of(result).status_code is None


async def test_concurrent_probes_keep_their_own_phases(
    server_certs: ServerCertificates, make_probe_context
):
    async with (
        web_server(WebMode.OK, server_certs.valid) as healthy,
        web_server(WebMode.BLACKHOLE, server_certs.valid) as silent,
        make_probe_context(timeout_s=BUDGET_S) as ctx,
    ):
        good, bad = await asyncio.gather(
            timed_probe(ProbeTarget(healthy.url), ctx),
            timed_probe(ProbeTarget(silent.url), ctx),
        )

    assert good.ok, good.error
    assert 0.0 < good.phases["tls"] < bad.phases["tls"]
    assert bad.reason is Reason.TLS_HANDSHAKE
    assert dominant_phase(bad) == "tls"


@contextlib.asynccontextmanager
async def portal_dns(**faults: Fault) -> AsyncIterator[Nameserver]:
    """A real DNS server for `test.`: portal.test and elsewhere.test are 127.0.0.1.

    `faults` maps a first label (under .test) to the fault for that name.
    """
    async with DnsServer(hosts=(LOOPBACK,)) as server:
        records = f"{PORTAL_NAME.split('.')[0]} IN A {LOOPBACK}\nelsewhere IN A {LOOPBACK}"
        server.add_zone(make_zone("test.", records))
        for label, fault in faults.items():
            server.set_fault(fault, f"{label}.test.")
        yield server.nameserver()


async def test_name_resolved_through_the_configured_resolver(
    server_certs: ServerCertificates, make_probe_context
):
    async with (
        portal_dns() as resolver,
        web_server(WebMode.OK, server_certs.valid) as server,
        make_probe_context(resolvers=(resolver,)) as ctx,
    ):
        result = await timed_probe(ProbeTarget(f"https://{PORTAL_NAME}:{server.port}/"), ctx)

    assert result.ok, result.error
    details = details_of(result)
    assert details.resolved_addresses == (LOOPBACK,)
    assert details.peer_address == LOOPBACK
    assert result.phases["resolve"] > 0.0
    assert sum(result.phases.values()) == pytest.approx(result.duration_s, abs=1e-6)


async def test_name_missing_from_the_certificate(
    server_certs: ServerCertificates, make_probe_context
):
    async with (
        portal_dns() as resolver,
        web_server(WebMode.OK, server_certs.valid) as server,
        make_probe_context(resolvers=(resolver,)) as ctx,
    ):
        result = await timed_probe(ProbeTarget(f"https://elsewhere.test:{server.port}/"), ctx)

    assert result.reason is Reason.TLS_HOSTNAME_MISMATCH, result.error


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("missing.test", Reason.DNS_NXDOMAIN),
        ("broken.test", Reason.DNS_SERVFAIL),
        ("silent.test", Reason.DNS_TIMEOUT),
    ],
)
async def test_resolution_failures(host: str, reason: Reason, make_probe_context):
    async with (
        portal_dns(broken=Fault.SERVFAIL, silent=Fault.DROP) as resolver,
        make_probe_context(timeout_s=BUDGET_S, resolvers=(resolver,)) as ctx,
    ):
        result = await timed_probe(ProbeTarget(f"https://{host}/"), ctx)

    assert result.reason is reason, result.error
    assert details_of(result).peer_address is None
    if reason is Reason.DNS_TIMEOUT:
        assert dominant_phase(result) == "resolve"


async def test_unanswering_resolver_is_a_dns_timeout(make_probe_context):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as black_hole:
        black_hole.bind((LOOPBACK, 0))  # receives queries, never answers
        resolver = Nameserver(LOOPBACK, black_hole.getsockname()[1])
        async with make_probe_context(timeout_s=BUDGET_S, resolvers=(resolver,)) as ctx:
            result = await timed_probe(ProbeTarget(f"https://{PORTAL_NAME}/"), ctx)

    assert result.reason is Reason.DNS_TIMEOUT
    assert dominant_phase(result) == "resolve"


@contextlib.contextmanager
def descriptors_exhausted() -> Iterator[None]:
    """Every file descriptor this process may open is in use (EMFILE on the next one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    try:
        with contextlib.suppress(OSError):
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_descriptor_exhaustion_is_the_monitors_fault_not_the_targets(make_probe_context):
    async with web_server(WebMode.OK) as server, make_probe_context() as ctx:
        with descriptors_exhausted():
            result = await timed_probe(ProbeTarget(server.url), ctx)
        healthy = await timed_probe(ProbeTarget(server.url), ctx)

    assert not result.ok and result.local_fault is LocalFault.RESOURCES, result
    assert healthy.ok and healthy.local_fault is None


# --- what the tamper checks need (monitor.tamper) ---------------------------------------

PAGE = "<html><head><title>e-Albania</title></head><body><h1>Portali qeveritar</h1></body></html>"
HACKED = "<html><head><title>HACKED BY X</title></head><body>Hacked By X. Greetz.</body></html>"


def pages_app() -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/")
    async def home(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    @routes.get("/hacked")
    async def hacked(_request: web.Request) -> web.Response:
        return web.Response(text=HACKED, content_type="text/html")

    @routes.get("/api")
    async def api(_request: web.Request) -> web.Response:
        return web.json_response({"title": "not a page"})

    served = iter((PAGE, PAGE, HACKED))

    @routes.get("/changing")
    async def changing(_request: web.Request) -> web.Response:
        return web.Response(text=next(served, HACKED), content_type="text/html")

    return routes


async def test_fail_if_body_matches_fails_the_probe_on_a_phrase_in_any_case(make_probe_context):
    async with aiohttp_app(pages_app()) as url, make_probe_context() as ctx:
        clean = await timed_probe(ProbeTarget(url, fail_if_body_matches=("hacked by",)), ctx)
        hacked = await timed_probe(
            ProbeTarget(f"{url}hacked", fail_if_body_matches=("defaced", "hacked by")), ctx
        )
    assert clean.ok, clean.error
    assert hacked.reason is Reason.HTTP_CONTENT and hacked.error == "body contains 'hacked by'"


async def test_a_targets_page_is_fingerprinted_even_when_its_content_check_fails(
    make_probe_context,
):
    async with aiohttp_app(pages_app()) as url, make_probe_context() as ctx:
        page = await timed_probe(ProbeTarget(url, fingerprint_page=True), ctx)
        hacked = await timed_probe(
            ProbeTarget(f"{url}hacked", expect_text="Portali", fingerprint_page=True), ctx
        )
        json_api = await timed_probe(ProbeTarget(f"{url}api", fingerprint_page=True), ctx)
        canary = await timed_probe(ProbeTarget(url), ctx)

    seen = details_of(page).page
    assert seen is not None and seen.title == "e-Albania" and seen.excerpt == "Portali qeveritar"
    defaced = details_of(hacked).page
    assert hacked.reason is Reason.HTTP_CONTENT
    assert defaced is not None and "hacked by" in defaced.markers
    assert details_of(json_api).page is None  # not a page a person reads
    assert details_of(canary).page is None  # not asked for: canaries keep no fingerprint


async def test_a_page_served_as_before_is_not_fingerprinted_again(make_probe_context):
    """The context's memo hands back the fingerprint of a page whose text is unchanged, and
    a page changed in any byte is fingerprinted afresh."""
    async with aiohttp_app(pages_app()) as url, make_probe_context() as ctx:
        target = ProbeTarget(f"{url}changing", fingerprint_page=True)
        first, again, defaced = [details_of(await timed_probe(target, ctx)).page for _ in range(3)]
    assert first is not None and first.title == "e-Albania"
    assert again is first  # the same object: not computed again
    assert defaced is not None and "hacked by" in defaced.markers
