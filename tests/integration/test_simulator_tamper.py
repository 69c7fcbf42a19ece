"""The tamper faults (and their benign twins) as real clients see them.

One small region serves every test (each leaves it recovered). dnspython asks the
simulator's resolver and name servers; TLS handshakes use the generated CA file;
the pages are fetched over HTTPS; the project's own probes judge each mode as its
`http_reason` says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.IN.A import A

from monitor.config import load_config
from probes.context import open_probe_context
from probes.dns import probe_dns
from probes.http import probe_http
from probes.results import DnsDetails, DnssecStatus
from probes.tls import probe_tls
from simulator.portal import DEFACER_SCRIPT_URL, visible_words
from simulator.region import (
    ATTACKER_PREFIX,
    FAULT_MODES,
    OTHER_CA_ORGANIZATION,
    Scope,
    build_region,
)
from simulator.runner import CDN_TTL_S, SimulatedRegion
from tests.integration.conftest import TEST_TIMING

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]

VICTIM = "akshi.gov.al.test"  # on AL's government network, name servers ns11/ns12.akshi.al.test
NEIGHBOUR = "e-albania.al.test"
TAMPER_MODES = (
    "defaced",
    "rotating",
    "ns_change",
    "dnssec_strip",
    "cdn_rotate",
    "dns_hijack",
    "serial_split",
    "other_ca_cert",
    "renewed_cert",
)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def region(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatedRegion]:
    out_dir = tmp_path_factory.mktemp("tamper-simulation")
    async with SimulatedRegion(build_region(("AL",), 4), out_dir, timing=TEST_TIMING) as sim:
        yield sim


@pytest_asyncio.fixture(loop_scope="module")
async def sim(region: SimulatedRegion) -> AsyncIterator[SimulatedRegion]:
    await region.recover_all()
    yield region
    await region.recover_all()


# --- clients ----------------------------------------------------------------------------------


async def _query(
    sim: SimulatedRegion,
    name: str,
    rdtype: str,
    server: str | None = None,
    *,
    dnssec: bool = False,
    recursive: bool = True,
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=dnssec)
    if not recursive:
        query.flags &= ~dns.flags.RD
    where = server or str(sim.region.resolver_address("home"))
    return await dns.asyncquery.udp(query, where, port=sim.dns_port, timeout=2.0)


def _records(message: dns.message.Message, rdtype: str) -> list[object]:
    wanted = dns.rdatatype.from_text(rdtype)
    return [rdata for rrset in message.answer if rrset.rdtype == wanted for rdata in rrset]


async def _addresses(sim: SimulatedRegion, host: str) -> frozenset[str]:
    answer = await _query(sim, host, "A")
    return frozenset(rdata.address for rdata in _records(answer, "A") if isinstance(rdata, A))


def _nameserver_addresses(sim: SimulatedRegion, host: str) -> list[str]:
    site = sim.region.site(host)
    addresses = sim.region.nameserver_addresses("home")
    return [str(addresses[ns]) for ns in sim.region.networks[site.network].nameservers]


@dataclass(frozen=True, slots=True)
class Fetched:
    status_line: str
    body: str
    certificate: x509.Certificate

    @property
    def issuer_organization(self) -> str:
        return str(
            self.certificate.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        )

    @property
    def public_key(self) -> bytes:
        return self.certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )


async def _fetch(sim: SimulatedRegion, host: str, address: str | None = None) -> Fetched:
    """GET / from `host` (at `address`, else where the resolver says), verified by the CA file."""
    if address is None:
        address = sorted(await _addresses(sim, host))[0]
    context = ssl.create_default_context(cafile=str(sim.ca_file))
    reader, writer = await asyncio.open_connection(
        address, sim.web_port, ssl=context, server_hostname=host
    )
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
    finally:
        writer.close()
    head, _, body = response.decode().partition("\r\n\r\n")
    return Fetched(head.split("\r\n")[0], body, x509.load_der_x509_certificate(der))


# --- web ------------------------------------------------------------------------------------


async def test_the_healthy_page_is_a_realistic_portal_and_stable(sim: SimulatedRegion) -> None:
    site = sim.region.site(VICTIM)
    first, second = await _fetch(sim, VICTIM), await _fetch(sim, VICTIM)
    assert first.body == second.body
    assert site.title in first.body
    assert 300 <= visible_words(first.body.encode()) <= 600
    assert first.body.count("<li><h3>") == 8  # e-services, each with a sentence
    assert "<nav>" in first.body and "<footer>" in first.body


async def test_defaced_page_is_an_attackers(sim: SimulatedRegion) -> None:
    healthy = await _fetch(sim, VICTIM)
    await sim.apply_fault(Scope.SITE, VICTIM, "defaced")
    page = await _fetch(sim, VICTIM)
    assert page.status_line == "HTTP/1.1 200 OK"
    assert "<title>Hacked by " in page.body
    assert "hacked by" in page.body.lower()
    assert f'<script src="{DEFACER_SCRIPT_URL}">' in page.body
    assert sim.region.site(VICTIM).title not in page.body
    assert "Electronic services" in healthy.body and "Electronic services" not in page.body


async def test_rotating_page_changes_on_every_request_but_keeps_the_expected_text(
    sim: SimulatedRegion,
) -> None:
    await sim.apply_fault(Scope.SITE, VICTIM, "rotating")
    pages = [(await _fetch(sim, VICTIM)).body for _ in range(3)]
    assert len(set(pages)) == 3
    assert all(sim.region.site(VICTIM).title in page for page in pages)
    assert all("csrf_token" in page and "Today is" in page for page in pages)
    assert all("Electronic services" in page for page in pages)


# --- DNS ------------------------------------------------------------------------------------


async def test_ns_change_moves_the_ns_set_to_name_servers_that_still_answer(
    sim: SimulatedRegion,
) -> None:
    before = await _addresses(sim, VICTIM)
    await sim.apply_fault(Scope.SITE, VICTIM, "ns_change")
    answer = await _query(sim, VICTIM, "NS")
    targets = {str(r.target) for r in _records(answer, "NS") if isinstance(r, NS)}
    assert targets == {"ns1.hijack.test.", "ns2.hijack.test."}
    assert await _addresses(sim, VICTIM) == before
    for ns in sorted(targets):
        ns_answer = await _query(sim, ns, "A")
        (ns_address,) = [r.address for r in _records(ns_answer, "A") if isinstance(r, A)]
        assert ipaddress.ip_address(ns_address) in ATTACKER_PREFIX
        soa = await _query(sim, VICTIM, "SOA", ns_address, recursive=False)
        assert _records(soa, "SOA") and soa.flags & dns.flags.AA
    neighbour = await _query(sim, NEIGHBOUR, "NS")
    assert {str(r.target) for r in _records(neighbour, "NS") if isinstance(r, NS)} == {
        "ns11.akshi.al.test.",
        "ns12.akshi.al.test.",
    }
    await sim.apply_fault(Scope.SITE, VICTIM, "recover")
    answer = await _query(sim, VICTIM, "NS")
    assert {str(r.target) for r in _records(answer, "NS") if isinstance(r, NS)} == {
        "ns11.akshi.al.test.",
        "ns12.akshi.al.test.",
    }


async def test_dnssec_strip_removes_dnskey_and_ds_and_the_name_still_resolves(
    sim: SimulatedRegion,
) -> None:
    assert _records(await _query(sim, VICTIM, "DS", dnssec=True), "DS")
    await sim.apply_fault(Scope.SITE, VICTIM, "dnssec_strip")
    assert not _records(await _query(sim, VICTIM, "DNSKEY", dnssec=True), "DNSKEY")
    assert not _records(await _query(sim, VICTIM, "DS", dnssec=True), "DS")
    assert not _records(await _query(sim, VICTIM, "A", dnssec=True), "RRSIG")
    assert await _addresses(sim, VICTIM) == {str(sim.region.site(VICTIM).address)}
    assert _records(await _query(sim, NEIGHBOUR, "DS", dnssec=True), "DS")


async def test_cdn_rotate_answers_vary_within_the_sites_slash_24_and_each_serves_it(
    sim: SimulatedRegion,
) -> None:
    site = sim.region.site(VICTIM)
    await sim.apply_fault(Scope.SITE, VICTIM, "cdn_rotate")
    answers = [await _query(sim, VICTIM, "A") for _ in range(4)]
    sets = {frozenset(r.address for r in _records(a, "A") if isinstance(r, A)) for a in answers}
    assert len(sets) > 1
    every = {ipaddress.ip_address(address) for answer in sets for address in answer}
    same_24 = ipaddress.ip_network(f"{site.address}/24", strict=False)
    assert len(every) >= 3 and all(address in same_24 for address in every)
    assert all(rrset.ttl == CDN_TTL_S for a in answers for rrset in a.answer)
    for address in sorted(every):
        page = await _fetch(sim, VICTIM, str(address))
        assert page.status_line == "HTTP/1.1 200 OK" and site.title in page.body
    await sim.apply_fault(Scope.SITE, VICTIM, "recover")
    assert await _addresses(sim, VICTIM) == {str(site.address)}


async def test_dns_hijack_points_at_the_attacker_network_with_another_cas_certificate(
    sim: SimulatedRegion,
) -> None:
    site = sim.region.site(VICTIM)
    await sim.apply_fault(Scope.SITE, VICTIM, "dns_hijack")
    (address,) = await _addresses(sim, VICTIM)
    assert ipaddress.ip_address(address) in ATTACKER_PREFIX
    assert address.split(".")[:2] != str(site.address).split(".")[:2]  # another /16
    page = await _fetch(sim, VICTIM)
    assert page.issuer_organization == OTHER_CA_ORGANIZATION
    assert site.title in page.body  # a proxy: the site's own page, through the attacker
    await sim.apply_fault(Scope.SITE, VICTIM, "recover")
    assert await _addresses(sim, VICTIM) == {str(site.address)}


async def test_serial_split_leaves_one_name_server_behind(sim: SimulatedRegion) -> None:
    async def serials() -> list[int]:
        found = []
        for server in _nameserver_addresses(sim, VICTIM):
            answer = await _query(sim, VICTIM, "SOA", server, recursive=False)
            found += [r.serial for r in _records(answer, "SOA") if isinstance(r, SOA)]
        return found

    healthy = await serials()
    assert len(healthy) == 2 and len(set(healthy)) == 1
    await sim.apply_fault(Scope.SITE, VICTIM, "serial_split")
    for _ in range(3):  # persistently, not one odd answer
        primary, lagging = await serials()
        assert primary == healthy[0] and lagging < primary
    await sim.apply_fault(Scope.SITE, VICTIM, "recover")
    assert await serials() == healthy


# --- TLS ------------------------------------------------------------------------------------


async def test_other_ca_cert_is_a_new_key_from_another_trusted_ca(sim: SimulatedRegion) -> None:
    usual = await _fetch(sim, VICTIM)
    await sim.apply_fault(Scope.SITE, VICTIM, "other_ca_cert")
    other = await _fetch(sim, VICTIM)  # verified through the CA file
    assert other.issuer_organization == OTHER_CA_ORGANIZATION != usual.issuer_organization
    assert other.certificate.issuer != usual.certificate.issuer
    assert other.public_key != usual.public_key


async def test_renewed_cert_is_a_new_key_from_the_same_issuer(sim: SimulatedRegion) -> None:
    usual = await _fetch(sim, VICTIM)
    await sim.apply_fault(Scope.SITE, VICTIM, "renewed_cert")
    renewed = await _fetch(sim, VICTIM)
    assert renewed.certificate.issuer == usual.certificate.issuer
    assert renewed.public_key != usual.public_key
    assert renewed.certificate.not_valid_before_utc > usual.certificate.not_valid_before_utc
    lifetime = renewed.certificate.not_valid_after_utc - renewed.certificate.not_valid_before_utc
    assert lifetime.days == 90


# --- the project's own probes -------------------------------------------------------------------


@pytest.mark.parametrize("mode", TAMPER_MODES)
async def test_the_probes_pass_or_fail_as_http_reason_says(sim: SimulatedRegion, mode: str) -> None:
    config = load_config(sim.targets_file())
    (target,) = [t.probe_target for t in config.targets if t.name == VICTIM]
    await sim.apply_fault(Scope.SITE, VICTIM, mode)
    async with open_probe_context(config.probe_settings) as ctx:
        http, dns_result, tls = await asyncio.gather(
            probe_http(target, ctx), probe_dns(target, ctx), probe_tls(target, ctx)
        )
    assert http.reason == FAULT_MODES[mode].http_reason
    assert dns_result.ok and tls.ok
    details = dns_result.details
    assert isinstance(details, DnsDetails) and details.dnssec is not None
    expected_dnssec = DnssecStatus.INSECURE if mode == "dnssec_strip" else DnssecStatus.SECURE
    assert details.dnssec.status is expected_dnssec
    if mode == "ns_change":
        assert set(details.nameservers) == {"ns1.hijack.test.", "ns2.hijack.test."}
    if mode == "serial_split":
        assert not details.agree and len(set(details.serials.values())) == 2
