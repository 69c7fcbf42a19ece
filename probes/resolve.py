"""Name resolution through the configured resolvers, shared by every probe.

HTTP, TLS and DNS probes must see the same DNS, so all of them resolve here.
"""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import dns.rdatatype
import dns.resolver

from probes.settings import is_ip_literal


async def resolve_addresses(resolver: dns.asyncresolver.Resolver, host: str) -> tuple[str, ...]:
    """IPv4 then IPv6 addresses of `host`; an IP literal is returned as is.

    Raises dnspython's errors (NXDOMAIN, NoNameservers, Timeout, NoAnswer when
    neither family has an address); `probes.errors.classify` maps them.
    """
    if is_ip_literal(host):
        return (host,)
    # Both families are asked together; a server that mishandles AAAA (SERVFAIL,
    # silence) must not sink a host whose A records answer, so errors wait until
    # neither family produced an address.
    answers = await asyncio.gather(
        resolver.resolve(host, dns.rdatatype.A, raise_on_no_answer=False),
        resolver.resolve(host, dns.rdatatype.AAAA, raise_on_no_answer=False),
        return_exceptions=True,
    )
    addresses = tuple(
        rdata.to_text()
        for answer in answers
        if isinstance(answer, dns.resolver.Answer)
        for rdata in answer
    )
    if addresses:
        return addresses
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    first = answers[0]
    assert isinstance(first, dns.resolver.Answer)
    raise dns.resolver.NoAnswer(response=first.response)  # type: ignore[no-untyped-call]
