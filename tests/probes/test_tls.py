"""probe_tls against real TLS servers on 127.0.0.1 with trustme certificates."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509 import ocsp
from OpenSSL import SSL

from probes.context import ProbeContext, make_resolver, make_ssl_context, open_probe_context
from probes.results import ProbeKind, Reason, TlsDetails
from probes.settings import Nameserver, ProbeSettings, ProbeTarget
from probes.tls import probe_tls
from simulator.dns_server import DnsServer, make_zone
from tests.probes.test_certs import build_ocsp_response

BUDGET_S = 1.0
# Never queried: IP-literal targets skip DNS. A closed port, so a stray query fails fast.
UNUSED_RESOLVER = Nameserver("127.0.0.1", 9)
LEAF_NOT_AFTER = datetime(3000, 6, 1, tzinfo=UTC)  # after trustme's CA expiry (3000-01-01)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def root_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def intermediate_ca(root_ca: trustme.CA) -> trustme.CA:
    return root_ca.create_child_ca()


@pytest.fixture(scope="module")
def ca_file(root_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "ca.pem"
    root_ca.cert_pem.write_to_path(str(path))
    return path


@contextlib.asynccontextmanager
async def probe_context(
    ca_file: Path | None, timeout_s: float = BUDGET_S
) -> AsyncIterator[ProbeContext]:
    settings = ProbeSettings(timeout_s=timeout_s, resolvers=(UNUSED_RESOLVER,), ca_file=ca_file)
    async with open_probe_context(settings) as ctx:
        yield ctx


@contextlib.asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A loopback server; yields its port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def _until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        await reader.read()
    writer.close()


@contextlib.asynccontextmanager
async def tls_server(leaf: trustme.LeafCert) -> AsyncIterator[int]:
    """A stdlib TLS server presenting `leaf` and its chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    async with serving(_until_eof, context) as port:
        yield port


def _pending(connection: SSL.Connection) -> bytes:
    chunks = []
    while True:
        try:
            chunks.append(connection.bio_read(65_536))
        except SSL.WantReadError:
            return b"".join(chunks)


@contextlib.asynccontextmanager
async def stapling_server(leaf: trustme.LeafCert, staple: bytes) -> AsyncIterator[int]:
    """A pyOpenSSL TLS server that staples `staple` when asked (the stdlib cannot)."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    leaf.configure_cert(context)
    context.set_ocsp_server_callback(lambda _connection, _data: staple)

    async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = SSL.Connection(context, None)
        connection.set_accept_state()
        try:
            while True:
                try:
                    connection.do_handshake()
                    break
                except SSL.WantReadError:
                    writer.write(_pending(connection))
                    data = await reader.read(65_536)
                    if not data:
                        return
                    connection.bio_write(data)
            writer.write(_pending(connection))
            await reader.read()
        except (SSL.Error, OSError):
            pass
        finally:
            writer.close()

    async with serving(handshake) as port:
        yield port


def _url(port: int, host: str = "127.0.0.1") -> ProbeTarget:
    return ProbeTarget(url=f"https://{host}:{port}/")


def _details(result: object) -> TlsDetails:
    details = getattr(result, "details", None)
    assert isinstance(details, TlsDetails)
    return details


def _cert(pem: trustme.Blob) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.bytes())


async def test_valid_chain_with_intermediate(root_ca, intermediate_ca, ca_file):
    leaf = intermediate_ca.issue_cert("127.0.0.1", not_after=LEAF_NOT_AFTER)
    leaf_cert = _cert(leaf.cert_chain_pems[0])
    intermediate_cert = _cert(intermediate_ca.cert_pem)

    async with tls_server(leaf) as port, probe_context(ca_file) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.kind is ProbeKind.TLS
    assert result.ok, result.error
    assert result.reason is None
    assert set(result.phases) == {"resolve", "connect", "tls"}
    details = _details(result)
    assert details.address == "127.0.0.1"
    assert details.server_name is None  # no SNI for an IP literal
    assert details.version in {"TLSv1.2", "TLSv1.3"}
    assert details.cipher
    assert details.verified
    assert details.verify_error is None
    assert details.hostname_match
    assert not details.ocsp_stapled
    assert details.ocsp_status is None
    assert details.subject == leaf_cert.subject.rfc4514_string()
    assert details.issuer == intermediate_cert.subject.rfc4514_string()
    # The leaf outlives the intermediate: the two expiries must not be conflated.
    assert details.leaf_expiry == LEAF_NOT_AFTER.timestamp()
    assert details.earliest_expiry == intermediate_cert.not_valid_after_utc.timestamp()
    assert details.earliest_expiry < details.leaf_expiry
    chain = details.certificates.chain
    assert [summary.sha256_fingerprint for summary in chain] == [
        leaf_cert.fingerprint(hashes.SHA256()).hex(),
        intermediate_cert.fingerprint(hashes.SHA256()).hex(),
    ]
    assert chain[0].ip_addresses == ("127.0.0.1",)
    assert details.certificates.earliest_subject == details.issuer


async def test_expired_leaf(intermediate_ca, ca_file):
    expired_at = datetime.now(UTC) - timedelta(days=3)
    leaf = intermediate_ca.issue_cert(
        "127.0.0.1", not_before=expired_at - timedelta(days=90), not_after=expired_at
    )

    async with tls_server(leaf) as port, probe_context(ca_file) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.reason is Reason.TLS_CERT_EXPIRED
    assert not result.ok
    details = _details(result)  # the chain is still reported
    assert not details.verified
    assert details.verify_error is not None
    assert "expired" in details.verify_error
    assert details.leaf_expiry == int(expired_at.timestamp())
    assert details.certificates.leaf_days_left == pytest.approx(-3, abs=0.01)
    assert details.hostname_match


async def test_certificate_for_another_name(intermediate_ca, ca_file):
    leaf = intermediate_ca.issue_cert("portal.test", "127.0.0.2")

    async with tls_server(leaf) as port, probe_context(ca_file) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.reason is Reason.TLS_HOSTNAME_MISMATCH
    details = _details(result)
    assert details.verified  # the chain itself is fine
    assert not details.hostname_match
    assert details.certificates.sans == ("portal.test", "127.0.0.2")
    assert result.error is not None
    assert "127.0.0.1" in result.error


async def test_unknown_ca_is_untrusted(intermediate_ca):
    # The same certificate as the valid case, but the trustme root is not in the store.
    leaf = intermediate_ca.issue_cert("127.0.0.1")

    async with tls_server(leaf) as port, probe_context(ca_file=None) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.reason is Reason.TLS_CERT_UNTRUSTED
    details = _details(result)
    assert not details.verified
    assert details.verify_error is not None
    assert "local issuer" in details.verify_error
    assert details.hostname_match
    assert len(details.certificates.chain) == 2


async def test_untrusted_and_expired_is_reported_as_untrusted(intermediate_ca):
    # OpenSSL meets the unknown issuer before the dates; we keep its order.
    expired_at = datetime.now(UTC) - timedelta(days=1)
    leaf = intermediate_ca.issue_cert(
        "127.0.0.1", not_before=expired_at - timedelta(days=90), not_after=expired_at
    )

    async with tls_server(leaf) as port, probe_context(ca_file=None) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.reason is Reason.TLS_CERT_UNTRUSTED
    assert _details(result).certificates.leaf_days_left < 0


async def test_concurrent_handshakes_keep_their_own_verdicts(intermediate_ca, ca_file):
    # One shared pyOpenSSL context; each handshake's errors must stay its own.
    good = intermediate_ca.issue_cert("127.0.0.1")
    expired_at = datetime.now(UTC) - timedelta(days=1)
    expired = intermediate_ca.issue_cert(
        "127.0.0.1", not_before=expired_at - timedelta(days=9), not_after=expired_at
    )

    async with (
        tls_server(good) as good_port,
        tls_server(expired) as expired_port,
        probe_context(ca_file) as ctx,
    ):
        results = await asyncio.gather(
            *(probe_tls(_url(port), ctx) for port in [good_port, expired_port] * 5)
        )

    assert [result.reason for result in results] == [None, Reason.TLS_CERT_EXPIRED] * 5


async def test_silent_server_fails_the_handshake_within_budget():
    budget = 0.5

    async with serving(_until_eof) as port, probe_context(None, timeout_s=budget) as ctx:
        started = time.perf_counter()
        result = await probe_tls(_url(port), ctx)
        elapsed = time.perf_counter() - started

    assert result.reason is Reason.TLS_HANDSHAKE
    assert result.error == "no answer within 0.5s during tls"  # the budget, not an EOF
    assert result.details is None
    assert "connect" in result.phases
    assert elapsed <= budget * 1.1 + 0.1


async def test_server_closing_at_once_fails_the_handshake():
    async def close(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with serving(close) as port, probe_context(None) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.reason is Reason.TLS_HANDSHAKE
    assert result.error is not None


async def test_plain_http_server_fails_the_handshake():
    async def answer_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with serving(answer_http) as port, probe_context(None) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.reason is Reason.TLS_HANDSHAKE


async def test_connection_refused():
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        async with probe_context(None) as ctx:
            result = await probe_tls(_url(port), ctx)

    assert result.reason is Reason.CONNECT_REFUSED
    assert result.details is None
    assert "tls" not in result.phases


async def test_full_accept_queue_is_a_connect_timeout():
    budget = 0.5
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        # Fill the accept queue (never accepted) so the kernel drops further SYNs.
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
            fillers.append(filler)
        try:
            await asyncio.sleep(0.05)
            async with probe_context(None, timeout_s=budget) as ctx:
                started = time.perf_counter()
                result = await probe_tls(_url(address[1]), ctx)
                elapsed = time.perf_counter() - started
        finally:
            for filler in fillers:
                filler.close()

    assert result.reason is Reason.CONNECT_TIMEOUT
    assert elapsed <= budget * 1.1 + 0.1


async def test_unanswering_resolver_is_a_dns_timeout():
    budget = 0.5
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as black_hole:
        black_hole.bind(("127.0.0.1", 0))  # receives queries, never answers
        port = black_hole.getsockname()[1]
        settings = ProbeSettings(timeout_s=budget, resolvers=(Nameserver("127.0.0.1", port),))
        async with open_probe_context(settings) as ctx:
            started = time.perf_counter()
            result = await probe_tls(_url(443, host="portal.test"), ctx)
            elapsed = time.perf_counter() - started

    assert result.reason is Reason.DNS_TIMEOUT
    assert elapsed <= budget * 1.1 + 0.1


def _ocsp_for(leaf: trustme.LeafCert, issuer: trustme.CA, status: ocsp.OCSPCertStatus) -> bytes:
    issuer_key = load_pem_private_key(issuer.private_key_pem.bytes(), None)
    return build_ocsp_response(
        _cert(leaf.cert_chain_pems[0]),
        _cert(issuer.cert_pem),
        issuer_key,  # type: ignore[arg-type]
        status,
        now=datetime.now(UTC),
    )


async def test_stapled_ocsp_response_is_reported(intermediate_ca, ca_file):
    leaf = intermediate_ca.issue_cert("127.0.0.1")
    staple = _ocsp_for(leaf, intermediate_ca, ocsp.OCSPCertStatus.GOOD)

    async with stapling_server(leaf, staple) as port, probe_context(ca_file) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.ok, result.error
    details = _details(result)
    assert details.ocsp_stapled
    assert details.ocsp_status == "good"


async def test_revoked_staple_is_reported_not_enforced(intermediate_ca, ca_file):
    leaf = intermediate_ca.issue_cert("127.0.0.1")
    staple = _ocsp_for(leaf, intermediate_ca, ocsp.OCSPCertStatus.REVOKED)

    async with stapling_server(leaf, staple) as port, probe_context(ca_file) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.ok
    assert _details(result).ocsp_status == "revoked"


async def test_pyopenssl_server_without_staple(intermediate_ca, ca_file):
    leaf = intermediate_ca.issue_cert("127.0.0.1")

    async with stapling_server(leaf, b"") as port, probe_context(ca_file) as ctx:
        result = await probe_tls(_url(port), ctx)

    assert result.ok, result.error
    assert not _details(result).ocsp_stapled


async def test_hand_built_context_without_openssl_context(intermediate_ca, ca_file):
    leaf = intermediate_ca.issue_cert("127.0.0.1")
    settings = ProbeSettings(timeout_s=BUDGET_S, resolvers=(UNUSED_RESOLVER,), ca_file=ca_file)
    ctx = ProbeContext(
        settings=settings,
        ssl_context=make_ssl_context(settings.ca_file),
        resolver=make_resolver(settings),
    )

    async with tls_server(leaf) as port:
        result = await probe_tls(_url(port), ctx)

    assert result.ok, result.error


async def test_named_target_resolves_through_the_configured_dns_and_sends_sni(
    intermediate_ca, ca_file
):
    leaf = intermediate_ca.issue_cert("portal.test")
    server_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)

    async with DnsServer() as dns_server, serving(_until_eof, context) as port:
        dns_server.add_zone(make_zone("test.", "portal IN A 127.0.0.1"))
        settings = ProbeSettings(
            timeout_s=BUDGET_S, resolvers=(dns_server.nameserver(),), ca_file=ca_file
        )
        async with open_probe_context(settings) as ctx:
            result = await probe_tls(_url(port, host="portal.test"), ctx)
            missing = await probe_tls(_url(port, host="missing.test"), ctx)

    assert result.ok, result.error
    assert server_names == ["portal.test"]
    details = _details(result)
    assert details.server_name == "portal.test"
    assert details.address == "127.0.0.1"
    assert details.hostname_match
    assert missing.reason is Reason.DNS_NXDOMAIN
