"""Shared name resolution: what every probe sees, through a real DNS server on loopback."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from probes.context import make_resolver
from probes.resolve import resolve_addresses
from probes.settings import ProbeSettings
from simulator.dns_server import DnsServer, Transport, make_zone


class AaaaServfailServer(DnsServer):
    """A server that breaks on AAAA, as some government name servers do."""

    def handle(self, wire: bytes, host: str, transport: Transport) -> bytes | None:
        query = dns.message.from_wire(wire)
        if query.question[0].rdtype == dns.rdatatype.AAAA:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        return super().handle(wire, host, transport)


ZONE = "site.test."
RECORDS = "www 300 IN A 127.0.0.9\nv6 300 IN AAAA ::1\n"


async def test_a_answers_survive_a_broken_aaaa() -> None:
    async with AaaaServfailServer() as server:
        server.add_zone(make_zone(ZONE, RECORDS))
        resolver = make_resolver(ProbeSettings(timeout_s=1.0, resolvers=(server.nameserver(),)))
        assert await resolve_addresses(resolver, "www.site.test") == ("127.0.0.9",)
        # With no A record either, the AAAA failure is the answer.
        with pytest.raises(dns.resolver.NoNameservers):
            await resolve_addresses(resolver, "v6.site.test")


async def test_both_families_and_literals() -> None:
    async with DnsServer() as server:
        server.add_zone(
            make_zone(ZONE, RECORDS + "both 300 IN A 127.0.0.8\nboth 300 IN AAAA ::1\n")
        )
        resolver = make_resolver(ProbeSettings(timeout_s=1.0, resolvers=(server.nameserver(),)))
        assert await resolve_addresses(resolver, "both.site.test") == ("127.0.0.8", "::1")
        assert await resolve_addresses(resolver, "127.0.0.5") == ("127.0.0.5",)
        with pytest.raises(dns.resolver.NXDOMAIN):
            await resolve_addresses(resolver, "missing.site.test")
        with pytest.raises(dns.resolver.NoAnswer):
            await resolve_addresses(resolver, "site.test")
