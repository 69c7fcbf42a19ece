"""The HTTP(S) probe: one GET, redirects followed by hand, phases timed, body capped.

Phases are named as blackbox_exporter names them and measured through
aiohttp's trace hooks. aiohttp reports connection creation as one span (TCP
connect and TLS handshake together), so the moment the handshake starts is
taken from the TLS layer itself: the shared SSLContext makes `_TimedSSLObject`s,
whose first `do_handshake` call closes the connect phase. Name resolution
goes through `probes.resolve` (the configured resolvers), as for every probe.

One budget (`timeout_s`) covers DNS, connect, TLS, every redirect and the
body; when it runs out the reason names the phase under way.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from http.cookies import BaseCookie
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp.abc
import aiohttp.connector
import aiohttp.http_exceptions
import dns.asyncresolver
import dns.exception
from yarl import URL

from probes.errors import Phase, classify, local_fault
from probes.page import PageFingerprint, fingerprint
from probes.resolve import resolve_addresses
from probes.results import HttpDetails, LocalFault, ProbeKind, ProbeResult, Reason
from probes.settings import is_ip_literal

if TYPE_CHECKING:
    from probes.context import ProbeContext
    from probes.settings import ProbeSettings, ProbeTarget

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PHASES = (Phase.RESOLVE, Phase.CONNECT, Phase.TLS, Phase.PROCESSING, Phase.TRANSFER)
# Real portals send long Content-Security-Policy and Set-Cookie lines; aiohttp's
# 8190-byte default would call them broken. A megabyte line still is.
MAX_HEADER_FIELD_BYTES = 64 * 1024
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CHARSET_SNIFF_BYTES = 4096
_MAX_CHARSET_NAME = 64  # real charset names are short; a long one is garbage
# Text codecs Python has that no web page is written in: they turn HTML into garbage.
_NOT_CHARSETS = frozenset({"punycode", "idna", "raw-unicode-escape", "unicode-escape"})
# NAT64's well-known prefix (RFC 6052): a gateway there reaches the IPv4 address inside.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",  # RFC 1918, CGNAT
        "fc00::/7", "fec0::/10", "64:ff9b:1::/48",  # unique local, site-local, local NAT64
    )
)  # fmt: skip

# Errors a network, a resolver or a misbehaving server can cause; anything else is a bug.
_NETWORK_ERRORS = (
    aiohttp.ClientError,
    aiohttp.http_exceptions.HttpProcessingError,
    OSError,  # includes ssl.SSLError and TimeoutError
    dns.exception.DNSException,
)


class NameResolutionError(OSError):
    """Resolution failed; the dnspython error is the cause (aiohttp wants an OSError)."""


class _Timeline:
    """One probe's phase clock: time is charged to the phase under way until the next one.

    Fed by the trace hooks, the resolver and the TLS layer, all running for
    this probe only (aiohttp's per-request trace context and a ContextVar).
    """

    __slots__ = (
        "_since",
        "addresses",
        "home",
        "hops",
        "peer",
        "phase",
        "refused",
        "seconds",
        "tls_cipher",
        "tls_version",
    )

    def __init__(self, started: float) -> None:
        self.phase = Phase.CONNECT
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._since = started
        # What the last connection learnt: its host's addresses, its peer, its TLS.
        self.addresses: tuple[str, ...] = ()
        self.peer: tuple[str, int] | None = None
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        # Where the target itself lives decides which non-global address spaces its
        # redirects may lead into (probes.http.address_space).
        self.hops = 0  # requests made so far: 1 while the target's own URL is fetched
        self.home: frozenset[AddressSpace] = frozenset()
        # A redirect's address outside the target's spaces, never contacted.
        self.refused: tuple[str, AddressSpace] | None = None

    def check_addresses(self, addresses: Sequence[str]) -> bool:
        """Note the spaces of the target's own addresses (the first hop); for a redirect,
        False when an address is neither global nor in one of those spaces (kept in
        `refused`)."""
        if self.hops <= 1:
            self.home = frozenset(map(address_space, addresses))
            return True
        self.refused = refused_address(self.home, addresses)
        return self.refused is None

    def new_connection(self) -> None:
        self.addresses, self.peer, self.tls_version, self.tls_cipher = (), None, None, None

    def enter(self, phase: Phase, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self.seconds[self.phase] += now - self._since
        self.phase, self._since = phase, now

    def stop(self, finished: float) -> Mapping[str, float]:
        """Seconds per phase; they add up to `finished` minus the start."""
        self.enter(self.phase, finished)
        return {phase.value: self.seconds[phase] for phase in PHASES}


# The probe whose connection is being made in this task. A ContextVar because the
# SSL layer and the resolver are shared by all probes and see no request object;
# asyncio copies it into the callbacks that run the handshake.
_current_timeline: ContextVar[_Timeline | None] = ContextVar("govwatch_http_timeline", default=None)


class _TimedSSLObject(ssl.SSLObject):
    """Marks the start of the TLS handshake for the HTTP probe under way, if any."""

    def do_handshake(self) -> None:
        timeline = _current_timeline.get()
        if timeline is not None and timeline.phase is Phase.CONNECT:
            timeline.enter(Phase.TLS)
        super().do_handshake()


class _ObservingConnector(aiohttp.TCPConnector):
    """Notes the peer and TLS parameters of each new connection for the probe under way.

    A small body can be read and its connection released before the caller
    sees the response, so this is the one moment the transport is certain to be there.
    """

    async def connect(self, *args: Any, **kwargs: Any) -> aiohttp.connector.Connection:
        connection = await super().connect(*args, **kwargs)
        timeline = _current_timeline.get()
        transport = connection.transport
        if timeline is not None and transport is not None:
            peer = transport.get_extra_info("peername")
            timeline.peer = (str(peer[0]), int(peer[1])) if peer else None
            ssl_object = transport.get_extra_info("ssl_object")
            cipher = ssl_object.cipher() if isinstance(ssl_object, ssl.SSLObject) else None
            timeline.tls_version = ssl_object.version() if cipher else None
            timeline.tls_cipher = cipher[0] if cipher else None
        return connection


class ConfiguredResolver(aiohttp.abc.AbstractResolver):
    """aiohttp name resolution through the configured resolvers, so HTTP and DNS probes agree."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        try:
            addresses = await resolve_addresses(self._resolver, host)
        except dns.exception.DNSException as exc:
            raise NameResolutionError(f"cannot resolve {host}: {exc}") from exc
        timeline = _current_timeline.get()
        if timeline is not None:
            timeline.addresses = addresses
            if not timeline.check_addresses(addresses):
                raise NameResolutionError(f"{host} is in private address space")
        results: list[aiohttp.abc.ResolveResult] = []
        for address in addresses:
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (socket.AF_UNSPEC, address_family):
                results.append(
                    {
                        "hostname": host,
                        "host": address,
                        "port": port,
                        "family": address_family,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                    }
                )
        if not results:
            raise NameResolutionError(f"{host} has no address of family {family!r}")
        return results

    async def close(self) -> None:
        pass  # the dnspython resolver belongs to the ProbeContext


def make_http_session(
    settings: ProbeSettings, ssl_context: ssl.SSLContext, resolver: dns.asyncresolver.Resolver
) -> aiohttp.ClientSession:
    """The one ClientSession all HTTP probes of a ProbeContext share (call in a running loop).

    Fresh connection per probe (force_close), no DNS cache, no connection limit
    (the scheduler bounds concurrency), no cookie jar (probes share no state),
    no aiohttp timeouts (the probe's own budget covers everything).
    """
    # Lets the probe see where the handshake starts; harmless for other users of the context.
    ssl_context.sslobject_class = _TimedSSLObject
    connector = _ObservingConnector(
        ssl=ssl_context,
        resolver=ConfiguredResolver(resolver),
        use_dns_cache=False,
        force_close=True,
        limit=0,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None),
        trace_configs=[_trace_config()],
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": settings.user_agent},
        max_field_size=MAX_HEADER_FIELD_BYTES,
        raise_for_status=False,
    )


_TraceHook = Callable[[aiohttp.ClientSession, SimpleNamespace, Any], Awaitable[None]]


def _trace_config() -> aiohttp.TraceConfig:
    def entering(phase: Phase) -> _TraceHook:
        async def hook(
            _session: aiohttp.ClientSession, trace: SimpleNamespace, _params: Any
        ) -> None:
            timeline = trace.trace_request_ctx
            if isinstance(timeline, _Timeline):
                timeline.enter(phase)

        return hook

    config = aiohttp.TraceConfig()
    config.on_connection_create_start.append(entering(Phase.CONNECT))
    config.on_dns_resolvehost_start.append(entering(Phase.RESOLVE))
    config.on_dns_resolvehost_end.append(entering(Phase.CONNECT))
    # TLS starts in _TimedSSLObject.do_handshake.
    config.on_connection_create_end.append(entering(Phase.PROCESSING))
    config.on_request_end.append(entering(Phase.TRANSFER))  # response head received
    return config


class _Failed(Exception):
    """A verdict on a response that arrived (status, content, size, redirects)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class _Observed:
    """What the probe has seen so far; becomes HttpDetails whatever the outcome."""

    url: str
    chain: list[str] = field(default_factory=list)
    status_code: int | None = None
    http_version: str | None = None
    body_bytes: int = 0
    content_type: str | None = None
    content_encoding: str | None = None
    server: str | None = None
    page: PageFingerprint | None = None

    def next_request(self, url: str) -> None:
        """Forget the previous response: details describe the final URL's."""
        self.chain.append(url)
        self.status_code = self.http_version = self.server = None
        self.content_type = self.content_encoding = None

    def details(self, timeline: _Timeline) -> HttpDetails:
        """The details, with what the final URL's connection learnt (if it got that far)."""
        peer = timeline.peer
        return HttpDetails(
            url=self.url,
            final_url=self.chain[-1] if self.chain else self.url,
            redirects=max(len(self.chain) - 1, 0),
            redirect_chain=tuple(self.chain),
            status_code=self.status_code,
            http_version=self.http_version,
            body_bytes=self.body_bytes,
            content_type=self.content_type,
            content_encoding=self.content_encoding,
            resolved_addresses=timeline.addresses,
            peer_address=peer[0] if peer else None,
            peer_port=peer[1] if peer else None,
            tls_version=timeline.tls_version,
            tls_cipher=timeline.tls_cipher,
            server=self.server,
            page=self.page,
        )


async def probe_http(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
    """GET `target.url` within `ctx.settings.timeout_s`; failures are results, not exceptions."""
    session = ctx.http_session
    if session is None:
        raise ValueError("this ProbeContext has no HTTP session; build it with open_probe_context")
    started_at = time.time()
    started = time.perf_counter()
    timeline = _Timeline(started)
    observed = _Observed(url=target.url)
    reason: Reason | None = None
    error: str | None = None
    fault: LocalFault | None = None
    token = _current_timeline.set(timeline)
    try:
        async with asyncio.timeout(ctx.settings.timeout_s):
            await _fetch(session, target, ctx, timeline, observed)
    except _Failed as failure:
        reason, error = failure.reason, str(failure)
    except TimeoutError:
        reason = classify(TimeoutError(), timeline.phase)
        error = f"no answer within {ctx.settings.timeout_s:g} s during {timeline.phase.value}"
    except _NETWORK_ERRORS as exc:
        if timeline.refused is not None:  # the resolver refused a redirect's address
            refused = _refused_redirect(timeline)
            reason, error = refused.reason, str(refused)
        else:
            reason, error = classify(exc, timeline.phase), _describe(exc)
            fault = local_fault(exc)
    finally:
        _current_timeline.reset(token)
    finished = time.perf_counter()
    return ProbeResult(
        kind=ProbeKind.HTTP,
        ok=reason is None,
        reason=reason,
        duration_s=finished - started,
        started_at=started_at,
        phases=timeline.stop(finished),
        details=observed.details(timeline),
        error=error,
        local_fault=fault,
    )


async def _fetch(
    session: aiohttp.ClientSession,
    target: ProbeTarget,
    ctx: ProbeContext,
    timeline: _Timeline,
    observed: _Observed,
) -> None:
    settings = ctx.settings
    url = URL(target.url)
    # Cookies live for one probe only: portals that set a cookie and redirect
    # to the same URL must not look like loops.
    jar = aiohttp.CookieJar(unsafe=True)
    seen: set[tuple[str, str]] = set()
    for _ in range(settings.max_redirects + 1):
        cookies = jar.filter_cookies(url)
        visit = (str(url), _cookie_key(cookies))
        if visit in seen:
            raise _Failed(Reason.HTTP_REDIRECT_LOOP, f"redirected back to {url}")
        seen.add(visit)
        observed.next_request(str(url))
        timeline.new_connection()
        timeline.hops += 1
        if is_ip_literal(url.host):
            timeline.addresses = (str(url.host),)  # as probes.resolve answers for literals
            if not timeline.check_addresses(timeline.addresses):
                raise _refused_redirect(timeline)
        async with session.get(
            url, allow_redirects=False, cookies=cookies or None, trace_request_ctx=timeline
        ) as response:
            jar.update_cookies(response.cookies, response.url)
            _observe_response(response, observed)
            location = response.headers.get(aiohttp.hdrs.LOCATION)
            if response.status in REDIRECT_STATUSES and location is not None:
                url = _redirect_target(response.url, location)
                continue
            _check_status(response.status, target.expect_status)
            fingerprinted = target.fingerprint_page and _is_page(observed.content_type)
            wanted = fingerprinted or bool(target.fail_if_body_matches)
            body = await _read_body(
                response,
                settings.max_body_bytes,
                observed,
                keep=wanted or target.expect_text is not None,
            )
        if body is not None:
            text = _page_text(response, body)
            if fingerprinted and 200 <= response.status < 300:
                # Before the content checks: a defaced page is what the fingerprint is for.
                memo, page_url = ctx.page_memo, str(response.url)
                observed.page = (
                    fingerprint(text, page_url)
                    if memo is None
                    else memo.fingerprint(text, page_url)
                )
            _check_content(text, target)
        return
    raise _Failed(Reason.HTTP_REDIRECT_LOOP, f"more than {settings.max_redirects} redirects")


def _check_content(text: str, target: ProbeTarget) -> None:
    if target.expect_text is not None and target.expect_text not in text:
        raise _Failed(Reason.HTTP_CONTENT, f"body does not contain {target.expect_text!r}")
    if target.fail_if_body_matches:
        lowered = text.casefold()
        for phrase in target.fail_if_body_matches:
            if phrase in lowered:
                raise _Failed(Reason.HTTP_CONTENT, f"body contains {phrase!r}")


def _is_page(content_type: str | None) -> bool:
    """HTML or plain text (or undeclared): what a person reads; not JSON, images, files."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("text/html", "application/xhtml+xml", "text/plain", "")


def _observe_response(response: aiohttp.ClientResponse, observed: _Observed) -> None:
    observed.status_code = response.status
    version = response.version
    observed.http_version = f"{version.major}.{version.minor}" if version else None
    observed.content_type = response.headers.get(aiohttp.hdrs.CONTENT_TYPE)
    observed.content_encoding = response.headers.get(aiohttp.hdrs.CONTENT_ENCODING)
    observed.server = response.headers.get(aiohttp.hdrs.SERVER)


def _redirect_target(current: URL, location: str) -> URL:
    shown = location if len(location) <= 200 else location[:200] + "..."
    try:
        target = current.join(URL(location))
        # yarl decodes the host lazily: invalid punycode (xn--a) raises only here.
        host, port = target.host, target.port
    except ValueError as exc:  # UnicodeError included
        raise _Failed(Reason.PROTOCOL_ERROR, f"bad redirect location {shown!r}") from exc
    if target.scheme not in ("http", "https") or not host:
        raise _Failed(Reason.PROTOCOL_ERROR, f"redirect to a non-HTTP URL {shown!r}")
    if not _plausible_host(host) or port is None or not 0 < port < 65536:
        raise _Failed(Reason.PROTOCOL_ERROR, f"bad redirect location {shown!r}")
    return target


class AddressSpace(StrEnum):
    """Where an address leads. A public site that redirects out of GLOBAL points at
    someone's internal service (a cloud metadata endpoint, an admin page): the probe
    follows only into a space the target itself lives in."""

    GLOBAL = "global"
    LOOPBACK = "loopback"  # this machine; 0.0.0.0 and :: reach it too
    LINK_LOCAL = "link-local"  # 169.254/16, fe80::/10: where cloud metadata services answer
    PRIVATE = "private"  # RFC 1918, CGNAT, unique-local and site-local IPv6
    RESERVED = "reserved"  # anything else not globally routable, multicast included


def address_space(address: str) -> AddressSpace:
    """The space of an IP address (a zone suffix such as %eth0 allowed); an IPv4 address
    inside an IPv6 one (mapped, 6to4, NAT64) leads where that IPv4 address does."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return AddressSpace.RESERVED  # not an address: nothing to follow
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if embedded is not None:
            return address_space(str(embedded))
    if ip.is_loopback or ip.is_unspecified:
        return AddressSpace.LOOPBACK
    if ip.is_link_local:
        return AddressSpace.LINK_LOCAL
    if any(ip in network for network in _PRIVATE_NETWORKS):
        return AddressSpace.PRIVATE
    if not ip.is_global or ip.is_multicast:
        return AddressSpace.RESERVED
    return AddressSpace.GLOBAL


def refused_address(
    home: frozenset[AddressSpace], addresses: Sequence[str]
) -> tuple[str, AddressSpace] | None:
    """The first of a redirect's addresses the probe may not contact, with its space: one
    neither global nor in a space of `home`, where the target's own addresses are."""
    for address in addresses:
        space = address_space(address)
        if space is not AddressSpace.GLOBAL and space not in home:
            return address, space
    return None


def _refused_redirect(timeline: _Timeline) -> _Failed:
    address, space = timeline.refused or (timeline.addresses[0], AddressSpace.RESERVED)
    return _Failed(
        Reason.PROTOCOL_ERROR,
        f"redirect to a private address ({address}) not followed: the target does not "
        f"live in {space} address space",
    )


def _plausible_host(host: str) -> bool:
    """A host a redirect may name: an IP literal, or a DNS name within DNS's limits."""
    if is_ip_literal(host):
        return True
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(0 < len(label) <= 63 for label in labels)


def _check_status(status: int, expected: frozenset[int] | None) -> None:
    if expected is None:
        if not 200 <= status < 400:
            raise _Failed(Reason.HTTP_STATUS, f"status {status}, expected 2xx or 3xx")
    elif status not in expected:
        raise _Failed(Reason.HTTP_STATUS, f"status {status}, expected one of {sorted(expected)}")


async def _read_body(
    response: aiohttp.ClientResponse, limit: int, observed: _Observed, *, keep: bool
) -> bytearray | None:
    """Read the (decompressed) body in chunks, failing past `limit` bytes; keep it only if asked.

    aiohttp inflates a compressed body only as fast as it is read, so a gzip
    bomb is stopped after about `limit` inflated bytes.
    """
    declared = response.content_length
    if declared is not None and declared > limit and observed.content_encoding is None:
        raise _Failed(
            Reason.HTTP_TOO_LARGE, f"Content-Length {declared} over the {limit}-byte limit"
        )
    kept = bytearray() if keep else None
    async for chunk in response.content.iter_any():
        observed.body_bytes += len(chunk)
        if observed.body_bytes > limit:
            raise _Failed(Reason.HTTP_TOO_LARGE, f"body over the {limit}-byte limit")
        if kept is not None:
            kept += chunk
    return kept


def _page_text(response: aiohttp.ClientResponse, body: bytearray) -> str:
    """The body as text in its declared charset, or UTF-8: whatever the page declares
    (hex, rot13, "undefined", a codec that refuses errors="replace"), never an exception."""
    charset = _charset(response, body)
    try:
        return body.decode(charset, errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return body.decode("utf-8", errors="replace")


def _charset(response: aiohttp.ClientResponse, body: bytearray) -> str:
    """The declared charset (header, then <meta>) if it names a text encoding Python
    knows; else UTF-8. Codecs such as hex, rot13 or zlib are not text encodings."""
    declared = response.charset
    if declared is None:
        match = _META_CHARSET.search(body, 0, _CHARSET_SNIFF_BYTES)
        declared = match[1].decode("ascii") if match else None
    if declared is not None and len(declared) <= _MAX_CHARSET_NAME:
        try:
            codec = codecs.lookup(declared)
        except (LookupError, ValueError):
            return "utf-8"
        if getattr(codec, "_is_text_encoding", True) and codec.name not in _NOT_CHARSETS:
            return codec.name
    return "utf-8"


def _cookie_key(cookies: BaseCookie[str]) -> str:
    return "; ".join(f"{name}={morsel.value}" for name, morsel in sorted(cookies.items()))


def _describe(exc: BaseException) -> str:
    """The outermost error and, if different, the root cause: what a human needs."""
    root, seen = exc, {id(exc)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    text = f"{type(exc).__name__}: {exc}"
    if root is not exc:
        text += f" (caused by {type(root).__name__}: {root})"
    return text
