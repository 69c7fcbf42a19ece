"""A real DNS server on loopback, for probe tests and the simulated region.

`DnsServer` binds UDP and TCP on one port at one or more loopback addresses.
It is authoritative for the zones it is given and also plays the resolver
govwatch is configured with: a query with RD set is answered from the most
specific zone the server holds on any of its addresses, with RA set. A zone
can be limited to some addresses, so two "name servers" on 127.0.0.1 and
127.0.0.2 can serve different versions of the same zone.

Faults (NXDOMAIN, SERVFAIL, silence, truncated UDP) switch at runtime per
name subtree, per address, or globally. Module-level helpers build, delegate
and sign zones (ECDSAP256SHA256: fast) and break them on purpose.

Zones must use absolute names (`relativize=False`): a response mixes records
from several zones, so names cannot stay relative to one origin.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, cast

import dns.dnssec
import dns.dnssectypes
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.dnskeybase
import dns.rrset
import dns.transaction
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.RRSIG import RRSIG

from probes.settings import Nameserver

Transport = Literal["udp", "tcp"]

# What the server advertises and the most it sends over UDP (the DNS flag day 2020 size).
_UDP_PAYLOAD = 1232
_MAX_CNAME_CHAIN = 8
# Random ports may collide with another test's socket on a second address: retry a few times.
_BIND_ATTEMPTS = 20
_DAY = 86_400


class Fault(StrEnum):
    """How the server misbehaves for a name subtree, an address, or everything."""

    NORMAL = "normal"
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    DROP = "drop"  # never answer, over UDP or TCP
    TRUNCATE = "truncate"  # UDP answers carry only the TC bit; TCP answers normally


@dataclass(slots=True)
class ServerStats:
    """Query counters, so tests can see which path a client took."""

    udp_queries: int = 0
    tcp_queries: int = 0
    dropped: int = 0
    truncated: int = 0


@dataclass(frozen=True, slots=True)
class ZoneKey:
    """One signing key per zone (a combined KSK/ZSK with the SEP flag)."""

    private_key: ec.EllipticCurvePrivateKey
    dnskey: DNSKEY

    @classmethod
    def generate(cls) -> ZoneKey:
        private_key = ec.generate_private_key(ec.SECP256R1())
        dnskey = dns.dnssec.make_dnskey(
            private_key.public_key(),
            dns.dnssectypes.Algorithm.ECDSAP256SHA256,
            flags=dns.rdtypes.dnskeybase.Flag.ZONE | dns.rdtypes.dnskeybase.Flag.SEP,
        )
        return cls(private_key=private_key, dnskey=dnskey)

    def ds(self, owner: dns.name.Name | str) -> DS:
        """The DS record a parent publishes for this key at `owner`."""
        return dns.dnssec.make_ds(owner, self.dnskey, dns.dnssectypes.DSDigest.SHA256)


def zone_origin(zone: dns.zone.Zone) -> dns.name.Name:
    if zone.origin is None:
        raise ValueError("zone has no origin")
    return zone.origin


def make_zone(
    origin: str,
    records: str = "",
    *,
    nameservers: Mapping[str, str | Sequence[str]] | None = None,
    serial: int = 1,
    ttl: int = 300,
) -> dns.zone.Zone:
    """A zone with SOA, NS and glue, plus `records` in zone-file syntax relative to `origin`.

    `nameservers` maps NS host names (relative to `origin`, or absolute with a
    trailing dot) to their addresses; addresses of names inside the zone become
    A/AAAA records, those outside are left to the zone that holds them.
    Default: {"ns1": "127.0.0.1"}.
    """
    nameservers = nameservers if nameservers is not None else {"ns1": "127.0.0.1"}
    if not nameservers:
        raise ValueError("a zone needs at least one name server")
    apex = dns.name.from_text(origin)
    lines = [f"$ORIGIN {apex}", f"$TTL {ttl}"]
    primary = next(iter(nameservers))
    lines.append(f"@ IN SOA {primary} hostmaster {serial} 3600 600 86400 60")
    for ns_name, addresses in nameservers.items():
        lines.append(f"@ IN NS {ns_name}")
        ns_absolute = dns.name.from_text(ns_name, apex)
        if not ns_absolute.is_subdomain(apex):
            continue
        for address in [addresses] if isinstance(addresses, str) else addresses:
            rdtype = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
            lines.append(f"{ns_absolute} IN {rdtype} {address}")
    lines.append(records)
    return dns.zone.from_text("\n".join(lines), origin=apex, relativize=False)


def delegate(
    parent: dns.zone.Zone, child: dns.zone.Zone, *, ds_keys: Iterable[ZoneKey] = ()
) -> None:
    """Publish `child`'s NS set, its glue and (when keys are given) DS records in `parent`.

    Call before signing `parent`: the DS set must be signed with the rest of it.
    A DS from a key the child does not use is how to make a DS mismatch.
    """
    cut = zone_origin(child)
    parent_origin = zone_origin(parent)
    if cut == parent_origin or not cut.is_subdomain(parent_origin):
        raise ValueError(f"{cut} is not below {parent_origin}")
    glue: list[tuple[dns.name.Name, dns.rdataset.Rdataset]] = []
    with child.reader() as child_txn:
        ns_set = child_txn.get(cut, dns.rdatatype.NS)
        if ns_set is None:
            raise ValueError(f"{cut} has no NS records")
        for rdata in ns_set:
            target = cast(NS, rdata).target
            if not target.is_subdomain(cut):
                continue
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                addresses = child_txn.get(target, rdtype)
                if addresses is not None:
                    glue.append((target, addresses))
    ds_rdatas = [key.ds(cut) for key in ds_keys]
    with parent.writer() as txn:
        txn.replace(cut, ns_set)
        for target, addresses in glue:
            txn.replace(target, addresses)
        if ds_rdatas:
            txn.replace(cut, dns.rdataset.from_rdata_list(ns_set.ttl, ds_rdatas))


def sign_zone(
    zone: dns.zone.Zone,
    key: ZoneKey | None = None,
    *,
    expired: bool = False,
    inception: float | None = None,
    expiration: float | None = None,
) -> ZoneKey:
    """Sign every RRset (adds DNSKEY, RRSIG and an NSEC chain); returns the key used.

    Signatures are valid for 14 days from now unless `inception`/`expiration`
    (unix seconds) say otherwise; `expired=True` makes them end yesterday.
    """
    key = key if key is not None else ZoneKey.generate()
    now = time.time()
    if expired:
        inception, expiration = now - 30 * _DAY, now - _DAY
    if inception is None:
        inception = now - 3600  # tolerate clock skew, as real signers do
    if expiration is None:
        expiration = inception + 14 * _DAY
    with zone.writer() as txn:
        dns.dnssec.sign_zone(
            zone,
            txn=txn,
            keys=[(key.private_key, key.dnskey)],
            inception=inception,
            expiration=expiration,
        )
    return key


def corrupt_signatures(
    zone: dns.zone.Zone, covering: dns.rdatatype.RdataType | str | None = None
) -> int:
    """Flip a bit in RRSIGs (those covering `covering`, or all) -> bogus; returns how many."""
    covered = dns.rdatatype.RdataType.make(covering) if covering is not None else None
    corrupted = 0
    with zone.writer() as txn:
        for name in list(txn.iterate_names()):
            node = txn.get_node(name)
            if node is None:
                continue
            for rdataset in list(node.rdatasets):
                if rdataset.rdtype != dns.rdatatype.RRSIG:
                    continue
                if covered is not None and rdataset.covers != covered:
                    continue
                broken: list[dns.rdata.Rdata] = []
                for rdata in rdataset:
                    signature = bytearray(cast(RRSIG, rdata).signature)
                    signature[-1] ^= 0x01
                    broken.append(rdata.replace(signature=bytes(signature)))
                    corrupted += 1
                txn.replace(name, dns.rdataset.from_rdata_list(rdataset.ttl, broken))
    return corrupted


@dataclass(frozen=True, slots=True)
class ZoneVersion:
    """One version of a zone and the addresses it is served on (None: every address).

    With `rotation`, each query answered from this version uses the next zone of
    `(zone, *rotation)` in turn: how a CDN's answers change from query to query.
    """

    zone: dns.zone.Zone
    hosts: frozenset[str] | None = None
    rotation: tuple[dns.zone.Zone, ...] = ()


@dataclass(slots=True)
class _ServedZone:
    zone: dns.zone.Zone
    hosts: frozenset[str] | None  # None: served on every address
    rotation: tuple[dns.zone.Zone, ...] = ()
    _turn: int = 0

    @property
    def origin(self) -> dns.name.Name:
        return zone_origin(self.zone)

    def zone_for_query(self) -> dns.zone.Zone:
        """The zone this query is answered from: the next one in turn if it rotates."""
        if not self.rotation:
            return self.zone
        zones = (self.zone, *self.rotation)
        self._turn = (self._turn + 1) % len(zones)
        return zones[self._turn]


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer, host: str) -> None:
        self._server = server
        self._host = host
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        reply = self._server.handle(data, self._host, "udp")
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from clients that went away are not the server's problem.
        pass


class DnsServer:
    """Authoritative server and RD-answering "resolver" on loopback, UDP and TCP, one port.

    Usage::

        async with DnsServer(hosts=("127.0.0.1", "127.0.0.2")) as server:
            server.add_zone(make_zone("example.test.", "www IN A 127.0.0.1"))
            settings = ProbeSettings(resolvers=(server.nameserver(),),
                                     authoritative_port=server.port)
    """

    def __init__(self, hosts: Sequence[str] = ("127.0.0.1",), port: int = 0) -> None:
        if not hosts:
            raise ValueError("at least one address to bind")
        self._hosts = tuple(hosts)
        self._requested_port = port
        self._port: int | None = None
        self._zones: list[_ServedZone] = []  # in the order added (earlier wins ties)
        # origin -> (position in _zones, version): a query looks up only its own ancestors,
        # so a region of thousands of zones answers as fast as one of ten.
        self._zones_by_origin: dict[dns.name.Name, list[tuple[int, _ServedZone]]] = {}
        # (address or None for all, name subtree or None for all) -> fault
        self._faults: dict[tuple[str | None, dns.name.Name | None], Fault] = {}
        self._udp_transports: list[asyncio.DatagramTransport] = []
        self._tcp_servers: list[asyncio.Server] = []
        # Open TCP connections: closing the writer ends its task (cancelling it would make
        # Python 3.11's StreamReaderProtocol log a spurious error).
        self._tcp_connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.stats = ServerStats()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def hosts(self) -> tuple[str, ...]:
        return self._hosts

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    def nameserver(self, host: str | None = None) -> Nameserver:
        """Where to send queries: for ProbeSettings.resolvers."""
        return Nameserver(host if host is not None else self._hosts[0], self.port)

    async def start(self) -> int:
        """Bind UDP and TCP on every address, same port; returns the port."""
        if self._port is not None:
            raise RuntimeError("server already started")
        attempts = 1 if self._requested_port else _BIND_ATTEMPTS
        for attempt in range(attempts):
            try:
                self._port = await self._bind(self._requested_port)
                return self._port
            except OSError as exc:
                await self._close_sockets()
                if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        """Close every socket and finish every connection task. Safe to call twice."""
        await self._close_sockets()
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _bind(self, port: int) -> int:
        loop = asyncio.get_running_loop()
        for host in self._hosts:
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_UdpProtocol, self, host), local_addr=(host, port)
            )
            self._udp_transports.append(transport)
            if port == 0:
                port = int(transport.get_extra_info("sockname")[1])
            tcp_server = await asyncio.start_server(
                functools.partial(self._serve_tcp, host=host), host, port
            )
            self._tcp_servers.append(tcp_server)
        return port

    async def _close_sockets(self) -> None:
        for transport in self._udp_transports:
            transport.close()
        self._udp_transports.clear()
        for tcp_server in self._tcp_servers:
            tcp_server.close()
        connections = dict(self._tcp_connections)
        for writer in connections.values():
            writer.close()
        await asyncio.gather(*connections, return_exceptions=True)
        for tcp_server in self._tcp_servers:
            await tcp_server.wait_closed()
        self._tcp_servers.clear()

    async def _serve_tcp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, host: str
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tcp_connections[task] = writer
        try:
            while True:
                length = int.from_bytes(await reader.readexactly(2), "big")
                reply = self.handle(await reader.readexactly(length), host, "tcp")
                if reply is not None:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up
        finally:
            self._tcp_connections.pop(task, None)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    # -- zones and faults ---------------------------------------------------------

    def add_zone(
        self,
        zone: dns.zone.Zone,
        *,
        hosts: Iterable[str] | None = None,
        rotation: Sequence[dns.zone.Zone] = (),
    ) -> None:
        """Serve `zone` on `hosts` (default: every address); replaces the same origin+hosts.

        A version added for some addresses overrides, there, one served on every
        address. The zone is read live for every query: changing it later changes
        the answers. With `rotation`, queries are answered from `zone` and then
        each of `rotation` in turn (see ZoneVersion).
        """
        hosts_set = frozenset(hosts) if hosts is not None else None
        self._add(_ServedZone(zone, hosts_set, tuple(rotation)))

    def replace_zone_versions(
        self,
        origin: str | dns.name.Name,
        versions: Iterable[ZoneVersion],
        *,
        within: Iterable[str] | None = None,
    ) -> None:
        """Serve `versions` of `origin` instead of those served only on addresses in `within`.

        `within` (default: every address) scopes the replacement, so one vantage's
        versions of a zone change while another's, on other addresses, stay.
        """
        origin = _name(origin)
        scope = frozenset(within) if within is not None else None

        def replaced(served: _ServedZone) -> bool:
            if served.origin != origin:
                return False
            if scope is None:
                return True
            return served.hosts is not None and served.hosts <= scope

        self._zones = [served for served in self._zones if not replaced(served)]
        self._zones_by_origin = {}
        for index, served in enumerate(self._zones):
            self._zones_by_origin.setdefault(served.origin, []).append((index, served))
        for version in versions:
            if zone_origin(version.zone) != origin:
                raise ValueError(f"{zone_origin(version.zone)} is not {origin}")
            self._add(_ServedZone(version.zone, version.hosts, version.rotation))

    def _add(self, served: _ServedZone) -> None:
        if served.zone.relativize:
            raise ValueError("zones must hold absolute names: build them with relativize=False")
        versions = self._zones_by_origin.setdefault(served.origin, [])
        for position, (index, existing) in enumerate(versions):
            if existing.hosts == served.hosts:
                versions[position] = (index, served)
                self._zones[index] = served
                return
        versions.append((len(self._zones), served))
        self._zones.append(served)

    def set_fault(
        self,
        fault: Fault | str,
        name: str | dns.name.Name | None = None,
        *,
        host: str | None = None,
    ) -> None:
        """Misbehave for `name` and every name below it (None: all names), on `host` (None: all).

        The most specific name wins; on equal names an address-specific fault wins.
        `Fault.NORMAL` under a faulty subtree carves out a healthy name.
        """
        self._faults[(host, _name(name) if name is not None else None)] = Fault(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def fault_for(self, qname: dns.name.Name, host: str) -> Fault:
        # Most specific name first, this address before every address: the first set wins.
        for name in (*ancestors(qname), None):
            for key in ((host, name), (None, name)):
                fault = self._faults.get(key)
                if fault is not None:
                    return fault
        return Fault.NORMAL

    def trust_anchors_text(self) -> str:
        """DS records (zone-file lines) for the signed zones that have no parent here.

        Write them to a file for ProbeSettings.dnssec_trust_anchors.
        """
        lines: dict[str, None] = {}  # ordered set: zone versions may share a key
        for served in self._zones:
            origin = served.origin
            if any(above in self._zones_by_origin for above in ancestors(origin)[1:]):
                continue
            with served.zone.reader() as txn:
                dnskeys = txn.get(origin, dns.rdatatype.DNSKEY)
            if dnskeys is None:
                continue
            keys = [cast(DNSKEY, key) for key in dnskeys]
            sep_keys = [key for key in keys if key.flags & dns.rdtypes.dnskeybase.Flag.SEP] or keys
            for key in sep_keys:
                ds = dns.dnssec.make_ds(origin, key, dns.dnssectypes.DSDigest.SHA256)
                lines[f"{origin} 3600 IN DS {ds}"] = None
        return "".join(f"{line}\n" for line in lines)

    def write_trust_anchors(self, path: Path) -> Path:
        path.write_text(self.trust_anchors_text())
        return path

    # -- answering ------------------------------------------------------------------

    def handle(self, wire: bytes, host: str, transport: Transport) -> bytes | None:
        """The reply to one query received on `host`, or None to stay silent."""
        if transport == "udp":
            self.stats.udp_queries += 1
        else:
            self.stats.tcp_queries += 1
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not worth a FORMERR: nothing here sends garbage on purpose
        response = dns.message.make_response(
            query, recursion_available=True, our_payload=_UDP_PAYLOAD
        )
        dnssec_ok = bool(query.ednsflags & dns.flags.DO)
        if query.edns >= 0:
            response.want_dnssec(dnssec_ok)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return self._render(response, query, transport)
        if len(query.question) != 1 or query.question[0].rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.FORMERR)
            return self._render(response, query, transport)
        question = query.question[0]
        fault = self.fault_for(question.name, host)
        if fault is Fault.DROP:
            self.stats.dropped += 1
            return None
        if fault is Fault.TRUNCATE and transport == "udp":
            response.flags |= dns.flags.TC
            self.stats.truncated += 1
            return response.to_wire()
        if fault is Fault.NXDOMAIN:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif fault is Fault.SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            recursive = bool(query.flags & dns.flags.RD)
            self._answer(response, question.name, question.rdtype, host, recursive, dnssec_ok)
        return self._render(response, query, transport)

    def _render(
        self, response: dns.message.Message, query: dns.message.Message, transport: Transport
    ) -> bytes:
        if transport == "tcp":
            return response.to_wire(max_size=65535)
        limit = min(max(query.payload, 512), _UDP_PAYLOAD) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            self.stats.truncated += 1
            return response.to_wire()

    def _best_zone(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, host: str, recursive: bool
    ) -> _ServedZone | None:
        """The most specific zone for `name`, preferring versions meant for this address.

        A version added for this very address beats one served everywhere, which
        beats another address's. A recursive query may use any address's zones
        (the server is its own resolver); DS lives in the parent, so the parent
        wins at a zone apex.
        """
        best: _ServedZone | None = None
        best_rank: tuple[bool, int, int, int] | None = None
        candidates = (
            version
            for origin in ancestors(name)
            for version in self._zones_by_origin.get(origin, ())
        )
        for index, served in candidates:
            if served.hosts is None:
                affinity = 1
            elif host in served.hosts:
                affinity = 2
            elif recursive:
                affinity = 0
            else:
                continue
            ds_at_apex = rdtype == dns.rdatatype.DS and served.origin == name
            rank = (not ds_at_apex, len(served.origin), affinity, -index)
            if best_rank is None or rank > best_rank:
                best, best_rank = served, rank
        return best

    def _answer(
        self,
        response: dns.message.Message,
        qname: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        host: str,
        recursive: bool,
        dnssec_ok: bool,
    ) -> None:
        name = qname
        for _ in range(_MAX_CNAME_CHAIN):
            served = self._best_zone(name, rdtype, host, recursive)
            if served is None:
                if name == qname:
                    response.set_rcode(dns.rcode.REFUSED)
                return
            with served.zone_for_query().reader() as txn:
                next_name = _answer_in_zone(txn, served.origin, name, rdtype, dnssec_ok, response)
            if next_name is None:
                return
            name = next_name


def _answer_in_zone(
    txn: dns.transaction.Transaction,
    origin: dns.name.Name,
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    dnssec_ok: bool,
    response: dns.message.Message,
) -> dns.name.Name | None:
    """Add what the zone says about (name, rdtype) to `response`; a CNAME target to chase."""

    def add(
        section: list[dns.rrset.RRset], owner: dns.name.Name, covered: dns.rdatatype.RdataType
    ) -> bool:
        rdataset = txn.get(owner, covered)
        if rdataset is None:
            return False
        _append(section, owner, rdataset)
        if dnssec_ok:
            signatures = txn.get(owner, dns.rdatatype.RRSIG, covered)
            if signatures is not None:
                _append(section, owner, signatures)
        return True

    cut = _zone_cut(txn, origin, name, rdtype)
    if cut is not None:  # a referral: the child zone is not served here
        response.flags &= ~dns.flags.AA
        add(response.authority, cut, dns.rdatatype.NS)
        if dnssec_ok and not add(response.authority, cut, dns.rdatatype.DS):
            add(response.authority, cut, dns.rdatatype.NSEC)
        ns_set = txn.get(cut, dns.rdatatype.NS)
        for rdata in ns_set or ():
            target = cast(NS, rdata).target
            if target.is_subdomain(origin):
                add(response.additional, target, dns.rdatatype.A)
                add(response.additional, target, dns.rdatatype.AAAA)
        return None

    response.flags |= dns.flags.AA
    node = txn.get_node(name)
    if node is None:
        has_descendants = any(
            other != name and other.is_subdomain(name) for other in txn.iterate_names()
        )
        if not has_descendants:
            response.set_rcode(dns.rcode.NXDOMAIN)
        add(response.authority, origin, dns.rdatatype.SOA)
        return None
    if rdtype == dns.rdatatype.ANY:
        for rdataset in node.rdatasets:
            if rdataset.rdtype != dns.rdatatype.RRSIG or dnssec_ok:
                _append(response.answer, name, rdataset)
        return None
    if add(response.answer, name, rdtype):
        return None
    if rdtype != dns.rdatatype.CNAME and add(response.answer, name, dns.rdatatype.CNAME):
        cname = txn.get(name, dns.rdatatype.CNAME)
        assert cname is not None
        return cast(CNAME, cname[0]).target
    add(response.authority, origin, dns.rdatatype.SOA)  # NODATA
    if dnssec_ok:
        add(response.authority, name, dns.rdatatype.NSEC)
    return None


def _zone_cut(
    txn: dns.transaction.Transaction,
    origin: dns.name.Name,
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
) -> dns.name.Name | None:
    """The highest delegation between the apex (excluded) and `name`, if any.

    A DS query at the cut itself is the parent's to answer, so it is not a referral.
    """
    for depth in range(len(origin) + 1, len(name) + 1):
        candidate = name.split(depth)[1]
        if candidate == name and rdtype == dns.rdatatype.DS:
            return None
        if txn.get(candidate, dns.rdatatype.NS) is not None:
            return candidate
    return None


def _append(
    section: list[dns.rrset.RRset], owner: dns.name.Name, rdataset: dns.rdataset.Rdataset
) -> None:
    rrset = dns.rrset.from_rdata_list(owner, rdataset.ttl, list(rdataset))
    if rrset not in section:
        section.append(rrset)


def ancestors(name: dns.name.Name) -> tuple[dns.name.Name, ...]:
    """`name` itself, then each name above it, up to the root (for an absolute name)."""
    return tuple(name.split(depth)[1] for depth in range(len(name), 0, -1))


def _name(value: str | dns.name.Name) -> dns.name.Name:
    return value if isinstance(value, dns.name.Name) else dns.name.from_text(value)
