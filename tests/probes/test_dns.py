"""DNS probe against a real DNS server on loopback (UDP and TCP, random ports).

The world: a signed test root "test." (its DS is the trust anchor) delegating
to "example.test.", whose name servers are ns1 (127.0.0.1) and ns2 (127.0.0.2),
both on the server's port. The server is also the configured resolver.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.zone
import pytest

from probes.context import ProbeContext, make_resolver, make_ssl_context
from probes.dns import probe_dns
from probes.dnssec import load_trust_anchors
from probes.results import DnsDetails, DnssecStatus, ProbeKind, ProbeResult, Reason
from probes.settings import ProbeSettings, ProbeTarget
from simulator.dns_server import (
    DnsServer,
    Fault,
    ZoneKey,
    corrupt_signatures,
    delegate,
    make_zone,
    sign_zone,
)

NS1, NS2 = "127.0.0.1", "127.0.0.2"
WWW_V4, WWW_V6 = "127.0.0.10", "::1"
TARGET = ProbeTarget("https://www.example.test/")
NAMESERVERS = {"ns1": NS1, "ns2": NS2}
CHILD_RECORDS = f"www IN A {WWW_V4}\nwww IN AAAA {WWW_V6}\nalias IN CNAME www\n"
BUDGET_S = 1.0


def child_zone(serial: int = 1) -> dns.zone.Zone:
    return make_zone("example.test.", CHILD_RECORDS, nameservers=NAMESERVERS, serial=serial)


def root_zone() -> dns.zone.Zone:
    return make_zone("test.", nameservers={"ns.test.": NS1})


@dataclass(frozen=True)
class World:
    server: DnsServer
    anchors: Path

    def settings(self, **overrides: object) -> ProbeSettings:
        fields: dict[str, object] = {
            "timeout_s": BUDGET_S,
            "resolvers": (self.server.nameserver(NS1),),
            "authoritative_port": self.server.port,
            "dnssec_trust_anchors": self.anchors,
        }
        fields.update(overrides)
        return ProbeSettings(**fields)  # type: ignore[arg-type]


ChildSigner = Callable[[dns.zone.Zone, dns.zone.Zone], None]


def sign_both(child: dns.zone.Zone, root: dns.zone.Zone) -> None:
    key = ZoneKey.generate()
    delegate(root, child, ds_keys=[key])
    sign_zone(child, key)
    sign_zone(root)


def leave_child_unsigned(child: dns.zone.Zone, root: dns.zone.Zone) -> None:
    delegate(root, child)
    sign_zone(root)


def bad_a_signature(child: dns.zone.Zone, root: dns.zone.Zone) -> None:
    sign_both(child, root)
    assert corrupt_signatures(child, "A") > 0


def expired_child(child: dns.zone.Zone, root: dns.zone.Zone) -> None:
    key = ZoneKey.generate()
    delegate(root, child, ds_keys=[key])
    sign_zone(child, key, expired=True)
    sign_zone(root)


def ds_of_another_key(child: dns.zone.Zone, root: dns.zone.Zone) -> None:
    delegate(root, child, ds_keys=[ZoneKey.generate()])
    sign_zone(child, ZoneKey.generate())
    sign_zone(root)


@asynccontextmanager
async def world(tmp_path: Path, signer: ChildSigner = sign_both) -> AsyncIterator[World]:
    child, root = child_zone(), root_zone()
    signer(child, root)
    async with DnsServer(hosts=(NS1, NS2)) as server:
        server.add_zone(root)
        server.add_zone(child)
        yield World(server, server.write_trust_anchors(tmp_path / "anchors.zone"))


Probe = Callable[..., Awaitable[ProbeResult]]


@pytest.fixture(scope="module")
def client_ssl_context() -> ssl.SSLContext:
    # The DNS probe never uses it, and building one per test costs a tenth of a second.
    return make_ssl_context(None)


@pytest.fixture
def probe(client_ssl_context: ssl.SSLContext) -> Probe:
    """`await probe(settings, target=TARGET)`: one DNS probe with a fresh context."""

    async def run(settings: ProbeSettings, target: ProbeTarget = TARGET) -> ProbeResult:
        ctx = ProbeContext(settings, client_ssl_context, make_resolver(settings))
        return await probe_dns(target, ctx)

    return run


def details_of(result: ProbeResult) -> DnsDetails:
    assert isinstance(result.details, DnsDetails)
    return result.details


async def test_signed_zone_is_validated_and_reports_expiry(tmp_path: Path, probe: Probe) -> None:
    async with world(tmp_path) as w:
        before = time.time()
        result = await probe(w.settings())

    assert (result.kind, result.ok, result.reason) == (ProbeKind.DNS, True, None)
    details = details_of(result)
    assert details.addresses == (WWW_V4, WWW_V6)
    (lookup,) = details.resolvers
    assert (lookup.rcode, lookup.addresses, lookup.over_tcp) == ("NOERROR", (WWW_V4, WWW_V6), False)
    assert 0 < result.phases["resolve"] == lookup.lookup_time_s < BUDGET_S
    assert details.zone == "example.test."
    assert details.nameservers == ("ns1.example.test.", "ns2.example.test.")
    assert details.ns_addresses == {"ns1.example.test.": (NS1,), "ns2.example.test.": (NS2,)}
    assert details.serials == {NS1: 1, NS2: 1}
    assert details.agree is True
    dnssec = details.dnssec
    assert dnssec is not None
    assert (dnssec.status, dnssec.signed, dnssec.validated) == (DnssecStatus.SECURE, True, True)
    assert dnssec.trust_anchor == "test."
    # sign_zone signs from an hour ago for 14 days.
    assert dnssec.earliest_rrsig_expiry is not None and dnssec.rrsig_days_left is not None
    assert abs(dnssec.earliest_rrsig_expiry - (before - 3600 + 14 * 86400)) < 60
    assert 13.9 < dnssec.rrsig_days_left < 14
    # The one serialised form (CLI JSON, storage, API) carries the details.
    serialised = json.loads(json.dumps(result.to_dict()))
    assert serialised["details"]["dnssec"]["status"] == "secure"
    assert serialised["details"]["serials"] == {NS1: 1, NS2: 1}


async def test_cname_is_followed_and_validated(tmp_path: Path, probe: Probe) -> None:
    async with world(tmp_path) as w:
        result = await probe(w.settings(), ProbeTarget("https://alias.example.test/"))
    assert result.ok, result.error
    details = details_of(result)
    assert details.addresses == (WWW_V4, WWW_V6)
    assert details.dnssec is not None and details.dnssec.validated


@pytest.mark.parametrize(
    ("signer", "why"),
    [
        (bad_a_signature, "verify failure"),
        (expired_child, "expired"),
        (ds_of_another_key, "matches its DS"),
    ],
    ids=["bad-signature", "expired-rrsig", "ds-mismatch"],
)
async def test_bogus_chain_fails_the_probe(
    tmp_path: Path, signer: ChildSigner, why: str, probe: Probe
) -> None:
    async with world(tmp_path, signer) as w:
        result = await probe(w.settings())

    assert (result.ok, result.reason) == (False, Reason.DNSSEC_BOGUS)
    details = details_of(result)
    assert details.addresses == (WWW_V4, WWW_V6)  # the resolver itself does not validate
    dnssec = details.dnssec
    assert dnssec is not None
    assert (dnssec.status, dnssec.signed, dnssec.validated) == (DnssecStatus.BOGUS, True, False)
    assert dnssec.error is not None and why in dnssec.error
    assert result.error is not None and why in result.error


async def test_expired_rrsig_reports_negative_days_left(tmp_path: Path, probe: Probe) -> None:
    async with world(tmp_path, expired_child) as w:
        result = await probe(w.settings())
    dnssec = details_of(result).dnssec
    assert dnssec is not None and dnssec.rrsig_days_left is not None
    assert -1.01 < dnssec.rrsig_days_left < -0.99  # expired yesterday


async def test_unsigned_zone_is_a_fact_not_a_failure(tmp_path: Path, probe: Probe) -> None:
    async with world(tmp_path, leave_child_unsigned) as w:
        result = await probe(w.settings())

    assert (result.ok, result.reason) == (True, None)
    dnssec = details_of(result).dnssec
    assert dnssec is not None
    assert (dnssec.status, dnssec.signed, dnssec.validated) == (
        DnssecStatus.INSECURE,
        False,
        False,
    )
    assert dnssec.earliest_rrsig_expiry is None and dnssec.rrsig_days_left is None


async def test_without_a_covering_anchor_dnssec_is_indeterminate(
    tmp_path: Path, probe: Probe
) -> None:
    # The shipped root anchors do not cover the test root, which has no parent here.
    async with world(tmp_path) as w:
        result = await probe(w.settings(dnssec_trust_anchors=None))
    assert result.ok, result.error
    dnssec = details_of(result).dnssec
    assert dnssec is not None
    assert (dnssec.status, dnssec.signed, dnssec.trust_anchor) == (
        DnssecStatus.INDETERMINATE,
        True,
        ".",
    )


async def test_missing_name_is_nxdomain(tmp_path: Path, probe: Probe) -> None:
    async with world(tmp_path) as w:
        result = await probe(w.settings(), ProbeTarget("https://missing.example.test/"))
    assert (result.ok, result.reason) == (False, Reason.DNS_NXDOMAIN)
    details = details_of(result)
    assert details.resolvers[0].rcode == "NXDOMAIN"
    assert details.zone == "example.test."  # the zone is still found and checked


@pytest.mark.parametrize(
    ("fault", "reason", "rcode"),
    [
        (Fault.NXDOMAIN, Reason.DNS_NXDOMAIN, "NXDOMAIN"),
        (Fault.SERVFAIL, Reason.DNS_SERVFAIL, "SERVFAIL"),
    ],
)
async def test_resolver_rcode_decides(
    tmp_path: Path, fault: Fault, reason: Reason, rcode: str, probe: Probe
) -> None:
    async with world(tmp_path) as w:
        w.server.set_fault(fault, "www.example.test")
        result = await probe(w.settings())
    assert (result.ok, result.reason) == (False, reason)
    details = details_of(result)
    assert details.resolvers[0].rcode == rcode
    assert details.addresses == ()
    assert result.error is not None and "127.0.0.1" in result.error


async def test_silent_resolver_is_dns_timeout_within_budget(tmp_path: Path, probe: Probe) -> None:
    budget = 0.8
    async with world(tmp_path) as w:
        w.server.set_fault(Fault.DROP)
        began = time.monotonic()
        result = await probe(w.settings(timeout_s=budget))
        elapsed = time.monotonic() - began
        dropped = w.server.stats.dropped

    assert (result.ok, result.reason) == (False, Reason.DNS_TIMEOUT)
    assert dropped > 0
    assert elapsed <= budget * 1.1 + 0.05
    assert result.duration_s <= budget * 1.1
    details = details_of(result)
    assert details.resolvers[0].rcode is None
    assert details.zone is None and details.error is not None


async def test_truncated_udp_answer_is_retried_over_tcp(tmp_path: Path, probe: Probe) -> None:
    async with world(tmp_path) as w:
        w.server.set_fault(Fault.TRUNCATE, "www.example.test")
        result = await probe(w.settings())
        stats = w.server.stats

    assert result.ok, result.error
    (lookup,) = details_of(result).resolvers
    assert lookup.over_tcp is True
    assert lookup.addresses == (WWW_V4, WWW_V6)
    assert stats.truncated >= 2 and stats.tcp_queries >= 2  # A and AAAA at least


async def test_name_servers_with_different_serials_disagree_without_failing(
    tmp_path: Path, probe: Probe
) -> None:
    async with world(tmp_path, leave_child_unsigned) as w:
        # ns2 (127.0.0.2) serves a newer version of the zone than ns1.
        w.server.add_zone(child_zone(serial=1), hosts=[NS1])
        w.server.add_zone(child_zone(serial=2), hosts=[NS2])
        result = await probe(w.settings())

    assert (result.ok, result.reason) == (True, None)
    details = details_of(result)
    assert details.serials == {NS1: 1, NS2: 2}
    assert details.agree is False
    assert all(answer.error is None for answer in details.authoritative)


async def test_lame_name_server_is_a_detail(tmp_path: Path, probe: Probe) -> None:
    async with world(tmp_path) as w:
        w.server.set_fault(Fault.DROP, host=NS2)
        result = await probe(w.settings(timeout_s=0.6))
    assert result.ok, result.error
    details = details_of(result)
    assert details.serials == {NS1: 1, NS2: None}
    assert details.agree is True  # among the servers that answered
    (lame,) = [answer for answer in details.authoritative if answer.address == NS2]
    assert lame.error is not None


async def test_each_resolver_is_reported_and_one_answer_suffices(
    tmp_path: Path, probe: Probe
) -> None:
    async with world(tmp_path) as w:
        w.server.set_fault(Fault.DROP, host=NS2)
        silent_resolver = w.server.nameserver(NS2)
        settings = w.settings(timeout_s=0.6, resolvers=(silent_resolver, w.server.nameserver(NS1)))
        result = await probe(settings)

    assert result.ok, result.error
    silent, answering = details_of(result).resolvers
    assert (silent.resolver, silent.reason, silent.rcode) == (
        str(silent_resolver),
        Reason.DNS_TIMEOUT,
        None,
    )
    assert (answering.reason, answering.addresses) == (None, (WWW_V4, WWW_V6))
    assert result.phases["resolve"] == answering.lookup_time_s
    assert details_of(result).dnssec is not None


async def test_ip_literal_needs_no_lookup(probe: Probe) -> None:
    result = await probe(ProbeSettings(timeout_s=0.5), ProbeTarget("https://127.0.0.1:8443/"))
    assert (result.ok, details_of(result).addresses, details_of(result).resolvers) == (
        True,
        ("127.0.0.1",),
        (),
    )


def test_shipped_root_anchors_are_the_iana_ksks() -> None:
    (anchor,) = load_trust_anchors(None)
    assert anchor.name == dns.name.root
    assert sorted((ds.key_tag, ds.algorithm, ds.digest_type) for ds in anchor.ds) == [
        (20326, 8, 2),
        (38696, 8, 2),
    ]


async def test_no_task_outlives_the_probe(tmp_path: Path, probe: Probe) -> None:
    async with world(tmp_path) as w:
        w.server.set_fault(Fault.DROP)
        await probe(w.settings(timeout_s=0.3))
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_dnskey_trust_anchor_works_like_a_ds(tmp_path: Path, probe: Probe) -> None:
    child, root = child_zone(), root_zone()
    sign_both(child, root)
    dnskeys = root.get_rdataset("test.", "DNSKEY")
    assert dnskeys is not None
    anchors = tmp_path / "dnskey.zone"
    anchors.write_text("".join(f"test. IN DNSKEY {key}\n" for key in dnskeys))
    async with DnsServer(hosts=(NS1, NS2)) as server:
        server.add_zone(root)
        server.add_zone(child)
        result = await probe(World(server, anchors).settings())
    dnssec = details_of(result).dnssec
    assert dnssec is not None and dnssec.status is DnssecStatus.SECURE


async def test_chain_walks_past_names_that_are_not_zone_cuts(tmp_path: Path, probe: Probe) -> None:
    # test. -> example.test. -> portal.gov.example.test.; gov.example.test is no zone of its own.
    root, middle = root_zone(), child_zone()
    leaf = make_zone(
        "portal.gov.example.test.", f"www IN A {WWW_V4}\n", nameservers={"ns.example.test.": ()}
    )
    leaf_key, middle_key = ZoneKey.generate(), ZoneKey.generate()
    delegate(middle, leaf, ds_keys=[leaf_key])
    delegate(root, middle, ds_keys=[middle_key])
    for zone, key in ((leaf, leaf_key), (middle, middle_key), (root, None)):
        sign_zone(zone, key)
    async with DnsServer(hosts=(NS1, NS2)) as server:
        for zone in (root, middle, leaf):
            server.add_zone(zone)
        world_ = World(server, server.write_trust_anchors(tmp_path / "anchors.zone"))
        result = await probe(world_.settings(), ProbeTarget("https://www.portal.gov.example.test/"))

    assert result.ok, result.error
    details = details_of(result)
    assert details.zone == "portal.gov.example.test."
    assert details.dnssec is not None and details.dnssec.status is DnssecStatus.SECURE
