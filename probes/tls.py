"""TLS probe: resolve, connect, handshake with pyOpenSSL, then judge the chain.

The network part only collects facts (version, cipher, presented chain, the
verification errors OpenSSL met, the stapled OCSP response); probes/certs.py
judges the chain without I/O.

Why pyOpenSSL driven through memory BIOs rather than a thread: the stdlib
`ssl` module hides the presented chain when verification fails and cannot ask
for OCSP stapling, so pyOpenSSL it is; and pyOpenSSL is blocking. A thread per
handshake cannot be cancelled when the budget runs out (it lingers until its
socket timeout) and competes for the default executor with every other probe.
With memory BIOs OpenSSL never touches the socket: asyncio moves the bytes
(`sock_recv`/`sock_sendall`), so the handshake is an ordinary coroutine that
`asyncio.timeout` cancels at once, and a thousand handshakes cost no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dns.exception
from cryptography import x509
from OpenSSL import SSL

from probes.certs import hostname_matches, judge_chain, ocsp_staple_status, to_ascii_hostname
from probes.errors import Phase, classify, local_fault, reason_for_verify_code
from probes.resolve import resolve_addresses
from probes.results import ProbeKind, ProbeResult, Reason, TlsDetails
from probes.settings import ProbeTarget, is_ip_literal

if TYPE_CHECKING:
    # Types only: probes.context builds the pyOpenSSL context with make_openssl_context
    # from this module, so importing it at run time would be circular.
    from probes.context import ProbeContext

_RECV_BYTES = 65_536

# OpenSSL's own wording for the verification errors a monitor meets in practice.
_VERIFY_ERROR_TEXT: dict[int, str] = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
    27: "certificate not trusted",
    28: "certificate rejected",
}


@dataclass(frozen=True, slots=True)
class VerifyFailure:
    code: int  # OpenSSL X509_V_ERR_*
    depth: int  # 0 is the leaf

    def describe(self) -> str:
        text = _VERIFY_ERROR_TEXT.get(self.code, "certificate verification failed")
        return f"{text} (X509 error {self.code} at depth {self.depth})"


@dataclass(slots=True)
class _HandshakeRecord:
    """Facts OpenSSL's callbacks report during one handshake; one per Connection."""

    verify_failures: list[VerifyFailure] = field(default_factory=list)
    ocsp_response: bytes = b""


def _record_verify_failure(
    connection: SSL.Connection, _cert: object, code: int, depth: int, _ok: int
) -> bool:
    if code != 0:
        record: _HandshakeRecord = connection.get_app_data()
        record.verify_failures.append(VerifyFailure(code, depth))
    # Never abort the handshake: we still want the chain, version and cipher,
    # and the verdict (with its reason) is given after the handshake.
    return True


def _record_ocsp_response(connection: SSL.Connection, response: bytes, _data: object) -> bool:
    record: _HandshakeRecord = connection.get_app_data()
    record.ocsp_response = response
    return True  # stapled responses are reported, not enforced


def make_openssl_context(ca_file: Path | None) -> SSL.Context:
    """The TLS probe's client context: system store plus `ca_file`; build it once.

    Verification runs with VERIFY_PEER so OpenSSL builds the chain against the
    trust store, but the callback records each failure instead of aborting.
    Both callbacks write to the Connection's app data, so one context serves
    any number of concurrent handshakes.
    """
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_default_verify_paths()
    if ca_file is not None:
        context.load_verify_locations(str(ca_file))
    context.set_verify(SSL.VERIFY_PEER, _record_verify_failure)
    context.set_ocsp_client_callback(_record_ocsp_response)
    return context


async def probe_tls(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
    """Handshake with `target`'s host and port and judge what it presents. Never raises for
    network failures: they come back as ok=False with a Reason."""
    started_at = time.time()
    clock = time.perf_counter()
    phase_started = clock
    phases: dict[str, float] = {}
    phase = Phase.RESOLVE
    host = target.host
    server_name = None if is_ip_literal(host) else to_ascii_hostname(host)
    openssl_context = ctx.openssl_context or make_openssl_context(ctx.settings.ca_file)

    def finish_phase(name: Phase) -> None:
        nonlocal phase_started
        now = time.perf_counter()
        phases[name.value] = now - phase_started
        phase_started = now

    try:
        async with asyncio.timeout(ctx.settings.timeout_s):
            addresses = await resolve_addresses(ctx.resolver, host)
            finish_phase(Phase.RESOLVE)
            phase = Phase.CONNECT
            sock, address = await _connect(addresses, target.port)
            finish_phase(Phase.CONNECT)
            phase = Phase.TLS
            with contextlib.closing(sock):
                connection, record = await _handshake(sock, openssl_context, server_name)
            finish_phase(Phase.TLS)
    except (OSError, dns.exception.DNSException, SSL.Error) as exc:
        # TimeoutError (our budget) is an OSError; classify names the phase under way.
        finish_phase(phase)
        return ProbeResult(
            kind=ProbeKind.TLS,
            ok=False,
            reason=classify(exc, phase),
            duration_s=time.perf_counter() - clock,
            started_at=started_at,
            phases=phases,
            error=_describe(exc, phase, ctx.settings.timeout_s),
            local_fault=local_fault(exc),
        )

    reason, error, details = _judge(connection, record, address, host, server_name)
    return ProbeResult(
        kind=ProbeKind.TLS,
        ok=reason is None,
        reason=reason,
        duration_s=time.perf_counter() - clock,
        started_at=started_at,
        phases=phases,
        details=details,
        error=error,
    )


def _judge(
    connection: SSL.Connection,
    record: _HandshakeRecord,
    address: str,
    host: str,
    server_name: str | None,
) -> tuple[Reason | None, str | None, TlsDetails | None]:
    """The verdict on a completed handshake: (reason, error, details)."""
    try:
        chain = connection.get_peer_cert_chain(as_cryptography=True) or []
    except ValueError as exc:
        # cryptography parses more strictly than OpenSSL; a chain we cannot read
        # is one we cannot vouch for.
        return Reason.TLS_CERT_UNTRUSTED, f"unreadable certificate: {exc}", None
    if not chain:
        return Reason.TLS_HANDSHAKE, "the server presented no certificate", None
    report = judge_chain(chain, time.time())
    hostname_match = hostname_matches(chain[0], server_name or host)
    first_failure = record.verify_failures[0] if record.verify_failures else None
    details = TlsDetails(
        address=address,
        server_name=server_name,
        version=connection.get_protocol_version_name(),
        cipher=connection.get_cipher_name() or "",
        cipher_bits=connection.get_cipher_bits(),
        verified=first_failure is None,
        verify_error=first_failure.describe() if first_failure else None,
        hostname_match=hostname_match,
        ocsp_stapled=bool(record.ocsp_response),
        ocsp_status=ocsp_staple_status(record.ocsp_response),
        subject=report.subject,
        issuer=report.issuer,
        leaf_expiry=report.leaf_not_after,
        earliest_expiry=report.earliest_not_after,
        certificates=report,
    )
    # The chain's verdict comes first, in the order OpenSSL met the errors (an
    # untrusted chain is reported as such even if its leaf also expired), then the name.
    if first_failure is not None:
        return reason_for_verify_code(first_failure.code), first_failure.describe(), details
    if not hostname_match:
        return Reason.TLS_HOSTNAME_MISMATCH, _mismatch_text(chain[0], host), details
    return None, None, details


async def _connect(addresses: tuple[str, ...], port: int) -> tuple[socket.socket, str]:
    """A connected non-blocking socket to the first address that accepts, in order."""
    loop = asyncio.get_running_loop()
    last_error: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (address, port))
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        except BaseException:  # cancelled by the budget: do not leak the socket
            sock.close()
            raise
        return sock, address
    if last_error is None:  # resolve_addresses never returns an empty tuple
        raise OSError(f"no address to connect to on port {port}")
    raise last_error


async def _handshake(
    sock: socket.socket, context: SSL.Context, server_name: str | None
) -> tuple[SSL.Connection, _HandshakeRecord]:
    """Run a client handshake over `sock`, OpenSSL talking to memory BIOs only."""
    loop = asyncio.get_running_loop()
    record = _HandshakeRecord()
    connection = SSL.Connection(context, None)
    connection.set_app_data(record)
    connection.set_connect_state()
    if server_name:
        connection.set_tlsext_host_name(server_name.encode("ascii"))
    connection.request_ocsp()
    try:
        while not _handshake_step(connection):
            # With memory BIOs writes never block (no WantWriteError):
            # send what OpenSSL produced, then wait for the peer.
            await _send_pending(loop, sock, connection)
            data = await loop.sock_recv(sock, _RECV_BYTES)
            if not data:
                raise SSL.Error("the server closed the connection during the handshake")
            connection.bio_write(data)
        await _send_pending(loop, sock, connection)  # our Finished message
        _send_close_notify(sock, connection)
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
        # A reset mid-handshake (a middlebox dropping the ClientHello, say) is a
        # handshake failure, not a connection failure: the TCP connect succeeded.
        raise SSL.Error(f"connection lost during the handshake: {exc}") from exc
    return connection, record


def _handshake_step(connection: SSL.Connection) -> bool:
    """Advance the handshake; True when it is complete, False when OpenSSL needs input."""
    try:
        connection.do_handshake()
    except SSL.WantReadError:
        return False
    return True


async def _send_pending(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, connection: SSL.Connection
) -> None:
    pending = _take_pending(connection)
    if pending:
        await loop.sock_sendall(sock, pending)


def _take_pending(connection: SSL.Connection) -> bytes:
    chunks = []
    while True:
        try:
            chunks.append(connection.bio_read(_RECV_BYTES))
        except SSL.WantReadError:
            return b"".join(chunks)


def _send_close_notify(sock: socket.socket, connection: SSL.Connection) -> None:
    """Say goodbye politely; best effort, never waited for."""
    with contextlib.suppress(SSL.Error, OSError):
        connection.shutdown()
        sock.send(_take_pending(connection))


def _mismatch_text(leaf: x509.Certificate, host: str) -> str:
    return f"the certificate does not name {host} (subject {leaf.subject.rfc4514_string()})"


def _describe(exc: BaseException, phase: Phase, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout_s:g}s during {phase.value}"
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list):
        # pyOpenSSL's error queue: [(library, function, reason), ...]
        reasons = [str(entry[-1]) for entry in exc.args[0] if entry]
        if reasons:
            return "; ".join(reasons)
    return f"{type(exc).__name__}: {exc}"
