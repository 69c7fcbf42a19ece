"""Name resolution through the configured resolvers, shared by every probe.

HTTP, TLS and DNS probes must see the same DNS, so all of them resolve here.
"""

from __future__ import annotations

import asyncio
import ipaddress

import dns.asyncresolver
import dns.rdatatype
import dns.resolver


async def resolve_addresses(resolver: dns.asyncresolver.Resolver, host: str) -> tuple[str, ...]:
    """IPv4 then IPv6 addresses of `host`; an IP literal is returned as is.

    Raises dnspython's errors (NXDOMAIN, NoNameservers, Timeout, NoAnswer when
    neither family has an address); `probes.errors.classify` maps them.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return (host,)
    answers = await asyncio.gather(
        resolver.resolve(host, dns.rdatatype.A, raise_on_no_answer=False),
        resolver.resolve(host, dns.rdatatype.AAAA, raise_on_no_answer=False),
    )
    addresses = tuple(rdata.to_text() for answer in answers for rdata in answer)
    if not addresses:
        raise dns.resolver.NoAnswer(response=answers[0].response)  # type: ignore[no-untyped-call]
    return addresses
