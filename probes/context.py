"""What every probe needs: its settings and the shared, built-once clients.

Built once per configuration (not per probe): creating SSL contexts and
resolvers per probe is what makes probe paths slow.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import dns.asyncresolver
import dns.nameserver
from OpenSSL import SSL

from probes.dnssec import TrustAnchor, load_trust_anchors

# probes.http imports this module for types only, so this is not circular.
from probes.http import make_http_session
from probes.page import PageMemo
from probes.settings import ProbeSettings

# probes.tls imports this module for types only, so this is not circular.
from probes.tls import make_openssl_context


def make_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context: the system store plus the optional extra CA file."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def make_resolver(settings: ProbeSettings) -> dns.asyncresolver.Resolver:
    """A dnspython resolver over the configured servers (or /etc/resolv.conf)."""
    if not settings.resolvers:
        resolver = dns.asyncresolver.Resolver(configure=True)
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        # dnspython keeps one port for plain nameservers; per-server ports need Nameserver objects.
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(ns.host, ns.port) for ns in settings.resolvers
        ]
    resolver.lifetime = settings.timeout_s
    resolver.timeout = settings.timeout_s
    resolver.cache = None
    return resolver


@dataclass(frozen=True, slots=True)
class ProbeContext:
    settings: ProbeSettings
    ssl_context: ssl.SSLContext
    resolver: dns.asyncresolver.Resolver
    # The one aiohttp session every HTTP probe shares (built on ssl_context and
    # resolver); None when a context is assembled by hand without an event loop.
    http_session: aiohttp.ClientSession | None = None
    # The TLS probe's pyOpenSSL client context (same trust anchors as ssl_context).
    # None when a context is assembled by hand; probe_tls then builds its own.
    openssl_context: SSL.Context | None = None
    # DNSSEC trust anchors, loaded once; None when a context is assembled by hand
    # (probe_dns then loads settings.dnssec_trust_anchors itself).
    trust_anchors: tuple[TrustAnchor, ...] | None = None
    # Pages already fingerprinted, by URL; None: every page is fingerprinted afresh.
    page_memo: PageMemo | None = None


def _load_trust(
    settings: ProbeSettings,
) -> tuple[ssl.SSLContext, SSL.Context, tuple[TrustAnchor, ...], dns.asyncresolver.Resolver]:
    """Everything a context needs from disk: trust stores, anchors, /etc/resolv.conf."""
    return (
        make_ssl_context(settings.ca_file),
        make_openssl_context(settings.ca_file),
        load_trust_anchors(settings.dnssec_trust_anchors),
        make_resolver(settings),
    )


@asynccontextmanager
async def open_probe_context(settings: ProbeSettings) -> AsyncIterator[ProbeContext]:
    # The files are read in a thread: a reload must not stall the probes running meanwhile.
    ssl_context, openssl_context, anchors, resolver = await asyncio.to_thread(_load_trust, settings)
    http_session = make_http_session(settings, ssl_context, resolver)
    try:
        yield ProbeContext(
            settings=settings,
            ssl_context=ssl_context,
            resolver=resolver,
            openssl_context=openssl_context,
            trust_anchors=anchors,
            http_session=http_session,
            page_memo=PageMemo(),
        )
    finally:
        await http_session.close()
