"""DNS probe: the host's addresses through every configured resolver, its zone's
authoritative name servers, and the zone's DNSSEC chain of trust.

The verdict comes from resolving `target.host` through the configured resolvers
(the README's DNS probe section). What the authoritative servers say (NS set and SOA serial
agreement) and the DNSSEC chain are details; only a bogus chain fails the probe.
All queries are independent where they can be and run concurrently under one
budget, `settings.timeout_s`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar, cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.SOA import SOA

from probes.context import ProbeContext
from probes.dnssec import (
    ChainEvidence,
    Delegation,
    Lookup,
    TrustAnchor,
    anchor_for,
    judge_chain,
    load_trust_anchors,
    names_below,
)
from probes.errors import Phase, classify, local_fault
from probes.results import (
    AuthoritativeAnswer,
    DnsDetails,
    DnssecDetails,
    DnssecStatus,
    LocalFault,
    ProbeKind,
    ProbeResult,
    Reason,
    ResolverLookup,
)
from probes.settings import Nameserver, ProbeTarget, is_ip_literal

_EDNS_PAYLOAD = 1232  # DNS flag day 2020: no IP fragmentation
_DAY = 86_400.0
# When several resolvers all fail, the most telling answer names the failure.
_REASON_PRIORITY = (Reason.DNS_NXDOMAIN, Reason.DNS_SERVFAIL, Reason.DNS_ERROR, Reason.DNS_TIMEOUT)

# Bounds on what one probe asks a zone's name servers (real zones have 2-8 of them).
MAX_NS_NAMES = 8
MAX_NS_ADDRESSES = 16
MAX_NS_QUERIES_AT_ONCE = 4  # each asks SOA and NS: at most 8 sockets at a time

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Exchange:
    query: dns.message.Message
    response: dns.message.Message
    over_tcp: bool


async def probe_dns(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
    started_at = time.time()
    loop = asyncio.get_running_loop()
    start = loop.time()
    budget = ctx.settings.timeout_s
    deadline = start + budget
    host = target.host

    def result(
        reason: Reason | None, details: DnsDetails, resolve_s: float, error: str | None
    ) -> ProbeResult:
        return ProbeResult(
            kind=ProbeKind.DNS,
            ok=reason is None,
            reason=reason,
            duration_s=loop.time() - start,
            started_at=started_at,
            phases=MappingProxyType({"resolve": resolve_s}),
            details=details,
            error=error,
            local_fault=fault,
        )

    fault: LocalFault | None = None
    if is_ip_literal(host):
        return result(None, DnsDetails(host=host, addresses=(host,), resolvers=()), 0.0, None)
    resolvers = resolver_servers(ctx)
    try:
        qname = dns.name.from_text(host)
        if not resolvers:
            raise _dns_error(dns.exception.DNSException, "no usable resolvers configured")
    except dns.exception.DNSException as exc:
        details = DnsDetails(host=host, addresses=(), resolvers=())
        return result(classify(exc, Phase.RESOLVE), details, 0.0, str(exc))

    # Zone details stop a little before the deadline, so what they found survives it.
    zone_deadline = deadline - min(0.1 * budget, 0.25)
    lookup_tasks: list[asyncio.Task[ResolverLookup]] = []
    zone_task: asyncio.Task[DnsDetails] | None = None
    try:
        async with asyncio.timeout_at(deadline), asyncio.TaskGroup() as group:
            lookup_tasks = [
                group.create_task(_lookup(qname, server, deadline)) for server in resolvers
            ]
            zone_task = group.create_task(
                _inspect_zone(qname, _Stub(resolvers, zone_deadline), ctx, zone_deadline)
            )
    except TimeoutError:
        pass  # what finished in time is kept; the rest ran out of budget

    lookups = tuple(
        _done(task) or _out_of_budget(server, budget)
        for task, server in zip(lookup_tasks, resolvers, strict=True)
    )
    zone_details = (zone_task and _done(zone_task)) or DnsDetails(
        host=host, addresses=(), resolvers=(), error="zone details ran out of budget"
    )
    answered = [lookup for lookup in lookups if lookup.reason is None]
    reason, error = _verdict(lookups, zone_details.dnssec)
    if not answered:
        # Out of descriptors or buffers here: the monitor's trouble, not the target's.
        fault = next((lookup.local_fault for lookup in lookups if lookup.local_fault), None)
    details = dataclasses.replace(
        zone_details,
        host=host,
        addresses=answered[0].addresses if answered else (),
        resolvers=lookups,
    )
    resolve_s = (
        answered[0].lookup_time_s if answered else max(lookup.lookup_time_s for lookup in lookups)
    )
    return result(reason, details, resolve_s, error)


def resolver_servers(ctx: ProbeContext) -> tuple[Nameserver, ...]:
    """The configured resolvers, or the system's (from ctx.resolver) when none are."""
    if ctx.settings.resolvers:
        return ctx.settings.resolvers
    servers: list[Nameserver] = []
    for server in ctx.resolver.nameservers:
        if isinstance(server, str) and is_ip_literal(server):
            port = ctx.resolver.nameserver_ports.get(server, ctx.resolver.port)
            servers.append(Nameserver(server, port))
        elif isinstance(server, dns.nameserver.Do53Nameserver):
            servers.append(Nameserver(server.address, server.port))
    return tuple(servers)


def _verdict(
    lookups: Sequence[ResolverLookup], dnssec: DnssecDetails | None
) -> tuple[Reason | None, str | None]:
    """Any resolver with addresses makes the host resolvable; a bogus chain overrides that.

    A validating resolver answers SERVFAIL for bogus data, so bogus explains SERVFAIL too.
    """
    reason: Reason | None = None
    error: str | None = None
    if not any(lookup.reason is None for lookup in lookups):
        failed = min(lookups, key=lambda lookup: _priority(lookup.reason))
        reason, error = failed.reason, failed.error
    if (
        dnssec is not None
        and dnssec.status is DnssecStatus.BOGUS
        and reason in (None, Reason.DNS_SERVFAIL)
    ):
        failure = _dns_error(dns.exception.ValidationFailure, dnssec.error or "bogus")
        reason, error = classify(failure, Phase.RESOLVE), f"DNSSEC bogus: {dnssec.error}"
    return reason, error


def _priority(reason: Reason | None) -> int:
    return _REASON_PRIORITY.index(reason) if reason in _REASON_PRIORITY else len(_REASON_PRIORITY)


# -- queries -------------------------------------------------------------------------------


async def _query(
    qname: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    server: Nameserver,
    deadline: float,
    *,
    recursion: bool = True,
    dnssec: bool = False,
) -> _Exchange:
    """One query, UDP first and TCP when the answer is truncated, ending by `deadline`.

    DNSSEC queries set CD, so a validating resolver hands over bogus data to judge.
    """
    query = dns.message.make_query(
        qname, rdtype, use_edns=0, payload=_EDNS_PAYLOAD, want_dnssec=dnssec
    )
    if not recursion:
        query.flags &= ~dns.flags.RD
    if dnssec:
        query.flags |= dns.flags.CD
    timeout = deadline - asyncio.get_running_loop().time()
    if timeout <= 0:
        raise _dns_error(dns.exception.Timeout, timeout=0.0)
    response, over_tcp = await dns.asyncquery.udp_with_fallback(
        query, server.host, timeout=timeout, port=server.port
    )
    return _Exchange(query, response, over_tcp)


async def _lookup(qname: dns.name.Name, server: Nameserver, deadline: float) -> ResolverLookup:
    loop = asyncio.get_running_loop()
    began = loop.time()
    outcomes = await asyncio.gather(
        _query(qname, dns.rdatatype.A, server, deadline),
        _query(qname, dns.rdatatype.AAAA, server, deadline),
        return_exceptions=True,
    )
    elapsed = loop.time() - began
    exchanges: list[_Exchange] = []
    errors: list[Exception] = []
    for outcome in outcomes:
        if isinstance(outcome, _Exchange):
            exchanges.append(outcome)
        elif isinstance(outcome, dns.exception.DNSException | OSError):
            errors.append(outcome)
        else:
            raise outcome  # a bug, not a network failure
    addresses = tuple(
        rdata.to_text()
        for exchange in exchanges
        if exchange.response.rcode() == dns.rcode.NOERROR
        for rdata in (_final_answer(exchange.response) or ())
    )
    rcode = dns.rcode.to_text(exchanges[0].response.rcode()) if exchanges else None
    over_tcp = any(exchange.over_tcp for exchange in exchanges)
    if addresses:
        return ResolverLookup(str(server), rcode, addresses, elapsed, over_tcp, None)
    failure = _lookup_failure(qname, server, exchanges, errors)
    return ResolverLookup(
        str(server),
        rcode,
        (),
        elapsed,
        over_tcp,
        classify(failure, Phase.RESOLVE),
        f"{server}: {failure}",
        local_fault(failure),
    )


def _lookup_failure(
    qname: dns.name.Name,
    server: Nameserver,
    exchanges: Sequence[_Exchange],
    errors: Sequence[Exception],
) -> BaseException:
    """Why no address came back, as the exception dnspython's resolver would raise."""
    for exchange in exchanges:
        if exchange.response.rcode() == dns.rcode.NXDOMAIN:
            return _dns_error(
                dns.resolver.NXDOMAIN, qnames=[qname], responses={qname: exchange.response}
            )
    for exchange in exchanges:
        if exchange.response.rcode() == dns.rcode.SERVFAIL:
            return _dns_error(
                dns.resolver.NoNameservers,
                request=exchange.query,
                errors=[
                    (str(server), exchange.over_tcp, server.port, "SERVFAIL", exchange.response)
                ],
            )
    if errors:
        return errors[0]
    for exchange in exchanges:
        if exchange.response.rcode() != dns.rcode.NOERROR:
            return _dns_error(
                dns.exception.DNSException,
                f"answered {dns.rcode.to_text(exchange.response.rcode())}",
            )
    return _dns_error(dns.resolver.NoAnswer, response=exchanges[0].response)


@dataclass(frozen=True, slots=True)
class _Stub:
    """Asks the configured resolvers in turn, as a stub resolver would, by one deadline."""

    servers: tuple[Nameserver, ...]
    deadline: float

    async def ask(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, *, dnssec: bool = False
    ) -> dns.message.Message:
        loop = asyncio.get_running_loop()
        failures: list[str] = []
        for index, server in enumerate(self.servers):
            # Later resolvers keep their share of the time an earlier one may have eaten.
            share = (self.deadline - loop.time()) / (len(self.servers) - index)
            try:
                exchange = await _query(qname, rdtype, server, loop.time() + share, dnssec=dnssec)
            except (dns.exception.DNSException, OSError) as exc:
                failures.append(f"{server}: {exc}")
                continue
            rcode = exchange.response.rcode()
            if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return exchange.response
            failures.append(f"{server} answered {dns.rcode.to_text(rcode)}")
        raise _dns_error(dns.exception.DNSException, "; ".join(failures))


# -- the zone: its cut, name servers and DNSSEC ----------------------------------------------


async def _inspect_zone(
    qname: dns.name.Name, stub: _Stub, ctx: ProbeContext, deadline: float
) -> DnsDetails:
    settings = ctx.settings
    host = qname.to_text(omit_final_dot=True)
    try:
        zone = await _find_zone(qname, stub)
    except (dns.exception.DNSException, OSError) as exc:
        return DnsDetails(host=host, addresses=(), resolvers=(), error=f"zone cut: {exc}")
    port = settings.authoritative_port if settings.authoritative_port is not None else 53
    async with asyncio.TaskGroup() as group:
        servers_task = group.create_task(_check_name_servers(host, zone, stub, port, deadline))
        dnssec_task = group.create_task(
            _check_dnssec(qname, zone, stub, ctx.trust_anchors, settings.dnssec_trust_anchors)
        )
    return dataclasses.replace(servers_task.result(), dnssec=dnssec_task.result())


async def _find_zone(qname: dns.name.Name, stub: _Stub) -> dns.name.Name:
    """Walk up from the host until a name has an SOA (as dnspython's zone_for_name does)."""
    name = qname
    while True:
        response = await stub.ask(name, dns.rdatatype.SOA)
        if response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.SOA):
            return name
        # A CNAME's SOA in the authority section belongs to its target's zone, not ours.
        if not response.answer:
            for rrset in response.authority:
                if rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name):
                    return rrset.name
        if name == dns.name.root:
            raise _dns_error(dns.exception.DNSException, "no SOA up to the root")
        name = name.parent()


async def _check_name_servers(
    host: str, zone: dns.name.Name, stub: _Stub, port: int, deadline: float
) -> DnsDetails:
    zone_text = zone.to_text()
    try:
        response = await stub.ask(zone, dns.rdatatype.NS)
    except (dns.exception.DNSException, OSError) as exc:
        return DnsDetails(host=host, addresses=(), resolvers=(), zone=zone_text, error=f"NS: {exc}")
    ns_rrset = response.get_rrset(response.answer, zone, dns.rdataclass.IN, dns.rdatatype.NS)
    every_name = sorted({cast(NS, rdata).target for rdata in ns_rrset or ()})
    # A hostile zone may list thousands of name servers (one probe opened 6,007 sockets):
    # a bounded few are checked, a bounded few at a time.
    names = every_name[:MAX_NS_NAMES]
    address_lists = await _all(_addresses_of(name, stub) for name in names)
    servers = [
        (name, address)
        for name, addresses in zip(names, address_lists, strict=True)
        for address in addresses
    ][:MAX_NS_ADDRESSES]
    answers = await _bounded(
        (_ask_authority(zone, name, address, port, deadline) for name, address in servers),
        MAX_NS_QUERIES_AT_ONCE,
    )
    partial = None
    if len(every_name) > len(names) or len(servers) < sum(map(len, address_lists)):
        partial = (
            f"NS set of {len(every_name)} names: checked {len(names)} names, "
            f"{len(servers)} addresses"
        )
    answered = [answer for answer in answers if answer.serial is not None]
    agree = bool(answered) and (
        len({answer.serial for answer in answered}) == 1
        and len({answer.nameservers for answer in answered}) == 1
    )
    return DnsDetails(
        host=host,
        addresses=(),
        resolvers=(),
        zone=zone_text,
        nameservers=tuple(name.to_text() for name in names),
        ns_addresses=MappingProxyType(
            {name.to_text(): addrs for name, addrs in zip(names, address_lists, strict=True)}
        ),
        authoritative=tuple(answers),
        serials=MappingProxyType({answer.address: answer.serial for answer in answers}),
        agree=agree,
        error=partial if names else "no NS records",
    )


async def _addresses_of(name: dns.name.Name, stub: _Stub) -> tuple[str, ...]:
    async def family(rdtype: dns.rdatatype.RdataType) -> tuple[str, ...]:
        try:
            response = await stub.ask(name, rdtype)
        except (dns.exception.DNSException, OSError):
            return ()
        return tuple(rdata.to_text() for rdata in _final_answer(response) or ())

    ipv4, ipv6 = await _all([family(dns.rdatatype.A), family(dns.rdatatype.AAAA)])
    return ipv4 + ipv6


async def _ask_authority(
    zone: dns.name.Name, ns_name: dns.name.Name, address: str, port: int, deadline: float
) -> AuthoritativeAnswer:
    """SOA and NS of the zone straight from one name server address (no recursion)."""
    server = Nameserver(address, port)
    outcomes = await asyncio.gather(
        _query(zone, dns.rdatatype.SOA, server, deadline, recursion=False),
        _query(zone, dns.rdatatype.NS, server, deadline, recursion=False),
        return_exceptions=True,
    )
    label = ns_name.to_text()
    rrsets = []
    for rdtype, outcome in zip((dns.rdatatype.SOA, dns.rdatatype.NS), outcomes, strict=True):
        if isinstance(outcome, dns.exception.DNSException | OSError):
            return AuthoritativeAnswer(label, address, None, (), f"{server}: {outcome}")
        if not isinstance(outcome, _Exchange):
            raise outcome
        response = outcome.response
        rrset = response.get_rrset(response.answer, zone, dns.rdataclass.IN, rdtype)
        if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA or not rrset:
            rcode = dns.rcode.to_text(response.rcode())
            return AuthoritativeAnswer(
                label, address, None, (), f"{server}: no authoritative {rdtype.name} ({rcode})"
            )
        rrsets.append(rrset)
    soa, ns = rrsets
    serial = int(cast(SOA, soa[0]).serial)
    nameservers = tuple(sorted(cast(NS, rdata).target.to_text() for rdata in ns))
    return AuthoritativeAnswer(label, address, serial, nameservers)


async def _check_dnssec(
    qname: dns.name.Name,
    zone: dns.name.Name,
    stub: _Stub,
    loaded: tuple[TrustAnchor, ...] | None,
    anchors_file: Path | None,
) -> DnssecDetails:
    try:
        # Loaded once per context; a context assembled by hand loads them here.
        anchors = loaded if loaded is not None else load_trust_anchors(anchors_file)
    except (OSError, ValueError, dns.exception.DNSException) as exc:
        return DnssecDetails(
            DnssecStatus.INDETERMINATE, False, False, None, None, None, f"trust anchors: {exc}"
        )
    anchor = anchor_for(anchors, zone)

    below = names_below(anchor.name, zone) if anchor is not None else ()
    async with asyncio.TaskGroup() as group:
        anchor_task = (
            group.create_task(_fetch(stub, anchor.name, dns.rdatatype.DNSKEY)) if anchor else None
        )
        level_tasks = [
            (
                name,
                group.create_task(_fetch(stub, name, dns.rdatatype.DS)),
                group.create_task(_fetch(stub, name, dns.rdatatype.DNSKEY)),
                group.create_task(_fetch(stub, name, dns.rdatatype.SOA)) if name != zone else None,
            )
            for name in below
        ]
        own_dnskey_task = (
            group.create_task(_fetch(stub, zone, dns.rdatatype.DNSKEY)) if anchor is None else None
        )
        record_tasks = [
            group.create_task(_fetch(stub, name, rdtype))
            for name, rdtype in (
                (zone, dns.rdatatype.SOA),
                (zone, dns.rdatatype.NS),
                (qname, dns.rdatatype.A),
                (qname, dns.rdatatype.AAAA),
            )
        ]
    delegations = tuple(
        Delegation(name, ds.result(), dnskey.result(), soa.result() if soa else None)
        for name, ds, dnskey, soa in level_tasks
    )
    anchor_dnskey = anchor_task.result() if anchor_task else None
    if own_dnskey_task is not None:
        zone_dnskey = own_dnskey_task.result()
    elif delegations:
        zone_dnskey = delegations[-1].dnskey
    else:
        assert anchor_dnskey is not None  # the zone is the anchor's own
        zone_dnskey = anchor_dnskey
    evidence = ChainEvidence(
        zone=zone,
        anchor=anchor,
        anchor_dnskey=anchor_dnskey,
        delegations=delegations,
        zone_dnskey=zone_dnskey,
        records=tuple(task.result() for task in record_tasks),
    )
    now = time.time()
    verdict = judge_chain(evidence, now)
    expiry = verdict.earliest_expiry
    return DnssecDetails(
        status=verdict.status,
        signed=verdict.signed,
        validated=verdict.status is DnssecStatus.SECURE,
        trust_anchor=anchor.name.to_text() if anchor else None,
        earliest_rrsig_expiry=expiry,
        rrsig_days_left=(expiry - now) / _DAY if expiry is not None else None,
        error=verdict.error,
    )


async def _fetch(stub: _Stub, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Lookup:
    """The RRset (or the CNAME in its place) at `name` with its RRSIGs, DO and CD set."""
    try:
        response = await stub.ask(name, rdtype, dnssec=True)
    except (dns.exception.DNSException, OSError) as exc:
        return Lookup(name, rdtype, error=str(exc))
    rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, rdtype)
    if rrset is None:
        rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
    if rrset is None:
        return Lookup(name, rdtype)
    rrsigs = response.get_rrset(
        response.answer, name, dns.rdataclass.IN, dns.rdatatype.RRSIG, rrset.rdtype
    )
    return Lookup(name, rdtype, rrset, rrsigs)


# -- helpers ----------------------------------------------------------------------------------


async def _all(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """Run concurrently, in order; a bug in one cancels the others (no orphans)."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_as_coroutine(awaitable)) for awaitable in awaitables]
    return [task.result() for task in tasks]


async def _bounded(awaitables: Iterable[Awaitable[_T]], limit: int) -> list[_T]:
    """Like _all, with at most `limit` running at once."""
    gate = asyncio.Semaphore(limit)

    async def one(awaitable: Awaitable[_T]) -> _T:
        async with gate:
            return await awaitable

    return await _all(one(awaitable) for awaitable in awaitables)


async def _as_coroutine(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


def _done(task: asyncio.Task[_T]) -> _T | None:
    return task.result() if task.done() and not task.cancelled() else None


def _out_of_budget(server: Nameserver, budget: float) -> ResolverLookup:
    return ResolverLookup(
        str(server),
        None,
        (),
        budget,
        False,
        classify(TimeoutError(), Phase.RESOLVE),
        f"{server}: no answer within the {budget:g}s budget",
    )


_E = TypeVar("_E", bound=dns.exception.DNSException)


def _dns_error(kind: type[_E], *args: object, **kwargs: object) -> _E:
    """A dnspython exception, built as its resolver builds them."""
    return kind(*args, **kwargs)


def _final_answer(response: dns.message.Message) -> dns.rrset.RRset | None:
    """The answer RRset after following CNAMEs, if the response has one."""
    if not isinstance(response, dns.message.QueryMessage):
        return None
    try:
        return response.resolve_chaining().answer
    except dns.exception.DNSException:  # a CNAME chain too long, or not a response
        return None
