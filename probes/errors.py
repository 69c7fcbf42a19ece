"""The one place where outside errors (OS, dnspython, aiohttp, OpenSSL) become Reasons.

Probes catch at their boundary and call `classify`; nothing else maps errors.
Entries are checked in order, so specific types come before their bases.
"""

from __future__ import annotations

import errno
import ssl
from enum import StrEnum

import dns.exception
import dns.resolver
import OpenSSL.SSL

from probes.results import Reason


class Phase(StrEnum):
    """What a probe was doing when it failed or ran out of time."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    PROCESSING = "processing"  # request sent, waiting for the response head
    TRANSFER = "transfer"  # reading the body


# A budget that runs out names the phase that was under way (DESIGN.md).
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
    (dns.exception.DNSException, Reason.DNS_ERROR),
    (ConnectionRefusedError, Reason.CONNECT_REFUSED),
    (OpenSSL.SSL.Error, Reason.TLS_HANDSHAKE),
    (ssl.SSLError, Reason.TLS_HANDSHAKE),  # after the verify-code check in classify()
]


def classify(exc: BaseException, phase: Phase) -> Reason:
    """The Reason for `exc`, raised while `phase` was under way."""
    if isinstance(exc, TimeoutError):
        return TIMEOUT_REASON_BY_PHASE[phase]
    if isinstance(exc, ssl.SSLCertVerificationError):
        return reason_for_verify_code(exc.verify_code)
    for exc_type, reason in ERROR_TABLE:
        if isinstance(exc, exc_type):
            return reason
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return Reason.NETWORK_UNREACHABLE
    if isinstance(exc, OSError) and phase in (Phase.RESOLVE, Phase.CONNECT):
        return (
            Reason.CONNECT_REFUSED
            if exc.errno == errno.ECONNREFUSED
            else Reason.NETWORK_UNREACHABLE
        )
    return Reason.PROTOCOL_ERROR
