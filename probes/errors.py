"""The one place where outside errors (OS, dnspython, aiohttp, OpenSSL) become Reasons.

Probes catch at their boundary and call `classify`; nothing else maps errors.
Entries are checked in order, so specific types come before their bases.
"""

from __future__ import annotations

import errno
import ssl
from enum import StrEnum

import aiohttp
import aiohttp.http_exceptions
import dns.exception
import dns.resolver
import OpenSSL.SSL

from probes.results import LocalFault, Reason


class Phase(StrEnum):
    """What a probe was doing when it failed or ran out of time."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    PROCESSING = "processing"  # request sent, waiting for the response head
    TRANSFER = "transfer"  # reading the body


# A budget that runs out names the phase that was under way (README, failure reasons).
TIMEOUT_REASON_BY_PHASE: dict[Phase, Reason] = {
    Phase.RESOLVE: Reason.DNS_TIMEOUT,
    Phase.CONNECT: Reason.CONNECT_TIMEOUT,
    Phase.TLS: Reason.TLS_HANDSHAKE,
    Phase.PROCESSING: Reason.HTTP_TIMEOUT,
    Phase.TRANSFER: Reason.HTTP_TIMEOUT,
}

_UNREACHABLE_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.EADDRNOTAVAIL}
)

# OpenSSL's X509_V_ERR_* codes that are not about trust; every other
# verification failure (unknown CA, self-signed, bad signature, ...) is untrusted.
# Not-yet-valid shares the expiry reason: both are "outside the validity period".
VERIFY_CODE_REASONS: dict[int, Reason] = {
    9: Reason.TLS_CERT_EXPIRED,  # X509_V_ERR_CERT_NOT_YET_VALID
    10: Reason.TLS_CERT_EXPIRED,  # X509_V_ERR_CERT_HAS_EXPIRED
    62: Reason.TLS_HOSTNAME_MISMATCH,  # X509_V_ERR_HOSTNAME_MISMATCH
    64: Reason.TLS_HOSTNAME_MISMATCH,  # X509_V_ERR_IP_ADDRESS_MISMATCH
}


def reason_for_verify_code(code: int) -> Reason:
    """The Reason for a certificate verification failure with OpenSSL code `code`."""
    return VERIFY_CODE_REASONS.get(code, Reason.TLS_CERT_UNTRUSTED)


# (exception type, reason): first match wins. Probes extend this table, not their own.
ERROR_TABLE: list[tuple[type[BaseException], Reason]] = [
    (dns.resolver.NXDOMAIN, Reason.DNS_NXDOMAIN),
    (dns.resolver.NoNameservers, Reason.DNS_SERVFAIL),
    (dns.exception.Timeout, Reason.DNS_TIMEOUT),
    (dns.exception.ValidationFailure, Reason.DNSSEC_BOGUS),
    (dns.exception.DNSException, Reason.DNS_ERROR),
    (ConnectionRefusedError, Reason.CONNECT_REFUSED),
    (OpenSSL.SSL.Error, Reason.TLS_HANDSHAKE),
    (ssl.SSLError, Reason.TLS_HANDSHAKE),  # after the verify-code check in classify()
    # aiohttp (HTTP probe). classify() walks `__cause__` chains innermost first, so
    # aiohttp's wrappers (ClientConnectorError, ClientResponseError...) yield to
    # the OS, SSL or dnspython error they wrap; these entries catch what is left.
    # A bad status line, a header line too long, a malformed header:
    (aiohttp.http_exceptions.HttpProcessingError, Reason.PROTOCOL_ERROR),
    (aiohttp.ClientPayloadError, Reason.PROTOCOL_ERROR),  # truncated body, broken encoding
    (aiohttp.ServerDisconnectedError, Reason.PROTOCOL_ERROR),  # closed without a response
    (aiohttp.TooManyRedirects, Reason.HTTP_REDIRECT_LOOP),
]


def classify(exc: BaseException, phase: Phase) -> Reason:
    """The Reason for `exc`, raised while `phase` was under way.

    Wrapped errors are judged by what they wrap: the `__cause__` chain is
    searched innermost first (aiohttp's ClientConnectorError around a
    ConnectionRefusedError is a refusal, not a generic client error).
    """
    chain = _cause_chain(exc)
    for error in chain:
        if isinstance(error, TimeoutError):
            return TIMEOUT_REASON_BY_PHASE[phase]
        if isinstance(error, ssl.SSLCertVerificationError):
            return reason_for_verify_code(error.verify_code)
        for exc_type, reason in ERROR_TABLE:
            if isinstance(error, exc_type):
                return reason
    os_errors = [error for error in chain if isinstance(error, OSError)]
    if any(error.errno in _UNREACHABLE_ERRNOS for error in os_errors):
        return Reason.NETWORK_UNREACHABLE
    if os_errors and phase in (Phase.RESOLVE, Phase.CONNECT):
        refused = any(error.errno == errno.ECONNREFUSED for error in os_errors)
        return Reason.CONNECT_REFUSED if refused else Reason.NETWORK_UNREACHABLE
    if os_errors and phase is Phase.TLS:
        # A reset or EOF in the middle of the handshake (middleboxes do this).
        return Reason.TLS_HANDSHAKE
    return Reason.PROTOCOL_ERROR


# Out of descriptors, buffers or memory on this machine: the monitor's trouble, not the target's.
_EXHAUSTION_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def local_fault(exc: BaseException) -> LocalFault | None:
    """RESOURCES when `exc` (or what it wraps) is this machine running out of something."""
    for error in _cause_chain(exc):
        if isinstance(error, OSError) and error.errno in _EXHAUSTION_ERRNOS:
            return LocalFault.RESOURCES
    return None


def _cause_chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the errors it was raised from (`raise ... from`), innermost first."""
    chain: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__
    chain.reverse()
    return chain
