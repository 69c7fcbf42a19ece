"""The loopback DNS server itself, queried with plain dnspython over UDP and TCP."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest

from simulator.dns_server import (
    DnsServer,
    Fault,
    ZoneKey,
    ZoneVersion,
    delegate,
    make_zone,
    sign_zone,
)

NS1, NS2 = "127.0.0.1", "127.0.0.2"
TIMEOUT_S = 1.0


def zones(*, signed: bool = False) -> tuple[dns.zone.Zone, dns.zone.Zone, ZoneKey | None]:
    root = make_zone("test.", nameservers={"ns.test.": NS1})
    child = make_zone(
        "example.test.", "www IN A 127.0.0.10\n", nameservers={"ns1": NS1, "ns2": NS2}
    )
    if not signed:
        delegate(root, child)
        return root, child, None
    child_key, root_key = ZoneKey.generate(), ZoneKey.generate()
    delegate(root, child, ds_keys=[child_key])
    sign_zone(child, child_key)
    sign_zone(root, root_key)
    return root, child, root_key


def query(
    name: str, rdtype: str = "A", *, recursive: bool = True, edns: bool = True
) -> dns.message.Message:
    message = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    if not recursive:
        message.flags &= ~dns.flags.RD
    return message


async def udp(
    server: DnsServer, message: dns.message.Message, host: str = NS1
) -> dns.message.Message:
    return await dns.asyncquery.udp(message, host, timeout=TIMEOUT_S, port=server.port)


async def tcp(
    server: DnsServer, message: dns.message.Message, host: str = NS1
) -> dns.message.Message:
    return await dns.asyncquery.tcp(message, host, timeout=TIMEOUT_S, port=server.port)


async def test_every_address_answers_over_udp_and_tcp_on_one_port() -> None:
    root, child, _ = zones()
    async with DnsServer(hosts=(NS1, NS2)) as server:
        server.add_zone(root)
        server.add_zone(child)
        for host in (NS1, NS2):
            for send in (udp, tcp):
                response = await send(server, query("www.example.test"), host)
                assert response.rcode() == dns.rcode.NOERROR
                assert response.flags & dns.flags.AA and response.flags & dns.flags.RA
                assert [rr.to_text() for rr in response.answer[0]] == ["127.0.0.10"]
        stats = server.stats
    assert (stats.udp_queries, stats.tcp_queries) == (2, 2)


async def test_referral_unless_recursion_is_desired() -> None:
    root, child, _ = zones()
    async with DnsServer(hosts=(NS1, NS2)) as server:
        server.add_zone(root, hosts=[NS1])
        server.add_zone(child, hosts=[NS2])
        referral = await udp(server, query("www.example.test", recursive=False))
        answer = await udp(server, query("www.example.test", recursive=True))
        own = await udp(server, query("www.example.test", recursive=False), NS2)

    assert not referral.flags & dns.flags.AA and referral.answer == []
    assert {rr.to_text() for rr in referral.authority[0]} == {
        "ns1.example.test.",
        "ns2.example.test.",
    }
    assert {rrset[0].to_text() for rrset in referral.additional} == {NS1, NS2}
    assert answer.flags & dns.flags.RA and answer.answer[0][0].to_text() == "127.0.0.10"
    assert own.flags & dns.flags.AA and own.answer[0][0].to_text() == "127.0.0.10"


async def test_names_outside_every_zone_are_refused() -> None:
    root, _, _ = zones()
    async with DnsServer() as server:
        server.add_zone(root)
        response = await udp(server, query("example.org"))
    assert response.rcode() == dns.rcode.REFUSED


async def test_ds_at_a_zone_apex_is_answered_by_the_parent_with_its_signature() -> None:
    root, child, _ = zones(signed=True)
    async with DnsServer() as server:
        server.add_zone(root)
        server.add_zone(child)
        message = dns.message.make_query("example.test", "DS", want_dnssec=True)
        response = await udp(server, message)
    ds = response.get_rrset(
        response.answer, dns.name.from_text("example.test"), dns.rdataclass.IN, dns.rdatatype.DS
    )
    rrsig = response.get_rrset(
        response.answer,
        dns.name.from_text("example.test"),
        dns.rdataclass.IN,
        dns.rdatatype.RRSIG,
        dns.rdatatype.DS,
    )
    assert ds is not None and rrsig is not None
    assert rrsig[0].signer == dns.name.from_text("test.")


async def test_signatures_only_when_the_do_bit_is_set() -> None:
    _, child, _ = zones(signed=True)
    async with DnsServer() as server:
        server.add_zone(child)
        plain = await udp(server, query("www.example.test"))
        signed = await udp(
            server, dns.message.make_query("www.example.test", "A", want_dnssec=True)
        )
    assert [rrset.rdtype for rrset in plain.answer] == [dns.rdatatype.A]
    assert [rrset.rdtype for rrset in signed.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]


async def test_missing_name_and_empty_type() -> None:
    _, child, _ = zones()
    async with DnsServer() as server:
        server.add_zone(child)
        missing = await udp(server, query("nope.example.test"))
        nodata = await udp(server, query("www.example.test", "MX"))
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
    assert [rrset.rdtype for rrset in missing.authority + nodata.authority] == [
        dns.rdatatype.SOA,
        dns.rdatatype.SOA,
    ]


async def test_most_specific_fault_wins_and_address_specific_breaks_ties() -> None:
    _, child, _ = zones()
    async with DnsServer(hosts=(NS1, NS2)) as server:
        server.add_zone(child)
        server.set_fault(Fault.SERVFAIL, "example.test")
        server.set_fault(Fault.NORMAL, "www.example.test")
        server.set_fault(Fault.NXDOMAIN, "www.example.test", host=NS2)

        other = await udp(server, query("ns1.example.test"))
        www_ns1 = await udp(server, query("www.example.test"), NS1)
        www_ns2 = await udp(server, query("www.example.test"), NS2)
        server.clear_faults()
        healed = await udp(server, query("ns1.example.test"))

    assert other.rcode() == dns.rcode.SERVFAIL
    assert www_ns1.rcode() == dns.rcode.NOERROR
    assert www_ns2.rcode() == dns.rcode.NXDOMAIN
    assert healed.rcode() == dns.rcode.NOERROR


@pytest.mark.parametrize("send", [dns.asyncquery.udp, dns.asyncquery.tcp], ids=["udp", "tcp"])
async def test_dropped_queries_get_no_answer(send: Any) -> None:
    _, child, _ = zones()
    async with DnsServer() as server:
        server.add_zone(child)
        server.set_fault(Fault.DROP)
        with pytest.raises(dns.exception.Timeout):
            await send(query("www.example.test"), NS1, timeout=0.2, port=server.port)
        assert server.stats.dropped == 1


async def test_truncate_fault_sends_tc_over_udp_and_answers_over_tcp() -> None:
    _, child, _ = zones()
    async with DnsServer() as server:
        server.add_zone(child)
        server.set_fault(Fault.TRUNCATE, "www.example.test")
        response, over_tcp = await dns.asyncquery.udp_with_fallback(
            query("www.example.test"), NS1, timeout=TIMEOUT_S, port=server.port
        )
        stats = server.stats
    assert over_tcp and response.answer[0][0].to_text() == "127.0.0.10"
    assert (stats.truncated, stats.tcp_queries) == (1, 1)


async def test_answers_too_big_for_plain_udp_are_truncated() -> None:
    texts = "".join(f'big IN TXT "{index:02d} {"x" * 40}"\n' for index in range(30))
    zone = make_zone("example.test.", texts)
    async with DnsServer() as server:
        server.add_zone(zone)
        over_udp = await udp(server, query("big.example.test", "TXT", edns=False))
        over_tcp = await tcp(server, query("big.example.test", "TXT", edns=False))
    assert over_udp.flags & dns.flags.TC and over_udp.answer == []
    assert len(over_tcp.answer[0]) == 30


async def test_trust_anchor_is_the_ds_of_the_top_zone() -> None:
    root, child, root_key = zones(signed=True)
    assert root_key is not None
    server = DnsServer()
    server.add_zone(root)
    server.add_zone(child)
    assert server.trust_anchors_text() == f"test. 3600 IN DS {root_key.ds('test.')}\n"


def test_zones_with_relative_names_are_rejected() -> None:
    zone = dns.zone.from_text("@ 300 IN SOA ns h 1 2 3 4 5\n@ 300 IN NS ns\n", "example.test.")
    with pytest.raises(ValueError, match="relativize=False"):
        DnsServer().add_zone(zone)


async def test_stop_closes_open_connections_and_frees_the_port() -> None:
    _, child, _ = zones()
    server = DnsServer()
    port = await server.start()
    server.add_zone(child)
    reader, writer = await asyncio.open_connection(NS1, port)
    await server.stop()
    assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""  # the server hung up
    writer.close()
    await writer.wait_closed()

    again = DnsServer(port=port)
    assert await again.start() == port
    await again.stop()
    assert asyncio.all_tasks() == {asyncio.current_task()}


def _a_record(message: dns.message.Message) -> str:
    return str(message.answer[0][0])


async def test_replacing_zone_versions_splits_a_zone_between_addresses() -> None:
    served = make_zone("split.test.", "@ IN A 127.0.0.20", nameservers={"ns1": NS1}, serial=5)
    lagging = make_zone("split.test.", "@ IN A 127.0.0.20", nameservers={"ns1": NS1}, serial=4)
    async with DnsServer(hosts=(NS1, NS2)) as server:
        server.add_zone(served, hosts=[NS1, NS2])
        server.replace_zone_versions(
            "split.test.",
            [ZoneVersion(served, frozenset({NS1})), ZoneVersion(lagging, frozenset({NS2}))],
            within=[NS1, NS2],
        )
        serials = [
            (await udp(server, query("split.test.", "SOA", recursive=False), host)).answer[0][0]
            for host in (NS1, NS2)
        ]
    assert [soa.serial for soa in serials] == [5, 4]


async def test_a_rotating_zone_version_answers_from_each_zone_in_turn() -> None:
    versions = [
        make_zone("cdn.test.", f"@ IN A 127.0.0.{n}", nameservers={"ns1": NS1}) for n in (1, 2, 3)
    ]
    async with DnsServer(hosts=(NS1,)) as server:
        server.add_zone(versions[0], rotation=versions[1:])
        answers = [_a_record(await udp(server, query("cdn.test."))) for _ in range(6)]
    assert set(answers) == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    assert answers[:3] != answers[1:4]  # it moves on every query
