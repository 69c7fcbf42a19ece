"""What probes return, as plain frozen values: the vocabulary every part of govwatch shares.

The closed failure-reason enum (a contract: README, failure reasons), probe kinds, each
protocol's details, and `Facts`: the one adapter from a result's per-protocol details to
what storage, metrics, the outage hints and the CLI need. No I/O and no network library
is imported here, so the pure core and the dashboard can import it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any

from probes.page import PageFingerprint


class Reason(StrEnum):
    """Why a probe failed. Closed: results, metrics, storage and the UI use only these."""

    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_SERVFAIL = "dns_servfail"
    DNS_TIMEOUT = "dns_timeout"
    DNS_ERROR = "dns_error"
    DNSSEC_BOGUS = "dnssec_bogus"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    NETWORK_UNREACHABLE = "network_unreachable"
    TLS_HANDSHAKE = "tls_handshake"
    TLS_CERT_EXPIRED = "tls_cert_expired"
    TLS_CERT_UNTRUSTED = "tls_cert_untrusted"
    TLS_HOSTNAME_MISMATCH = "tls_hostname_mismatch"
    HTTP_TIMEOUT = "http_timeout"
    HTTP_STATUS = "http_status"
    HTTP_CONTENT = "http_content"
    HTTP_TOO_LARGE = "http_too_large"
    HTTP_REDIRECT_LOOP = "http_redirect_loop"
    PROTOCOL_ERROR = "protocol_error"


class ProbeKind(StrEnum):
    HTTP = "http"
    DNS = "dns"
    TLS = "tls"


class LocalFault(StrEnum):
    """A failure that was the monitor's own, not the target's: it says nothing about the target.

    RESOURCES: this machine ran out of something (file descriptors, buffers, memory).
    OVERLOAD: the probe was starved of CPU (the event loop lagged) and ran out of time.
    """

    RESOURCES = "resources"
    OVERLOAD = "overload"


class DnssecStatus(StrEnum):
    SECURE = "secure"
    INSECURE = "insecure"
    BOGUS = "bogus"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True, slots=True)
class Facts:
    """What one result says about its target, whatever the protocol: where it lives
    (addresses, name servers, certificate issuer) and the few figures every consumer
    wants. `ProbeResult.facts`; a field a protocol does not know is None or empty."""

    addresses: tuple[str, ...] = ()  # the target's IP addresses
    nameservers: tuple[str, ...] = ()  # its zone's NS set
    issuer: str | None = None  # its leaf certificate's issuer
    http_status: int | None = None  # the final HTTP status; None when no response came
    tls_version: str | None = None  # e.g. "TLSv1.3"
    tls_expiry: float | None = None  # the earliest notAfter in the presented chain
    tls_leaf_expiry: float | None = None  # the leaf's notAfter
    dnssec_status: DnssecStatus | None = None
    # Whether the zone is signed, only when the check got far enough to know.
    dnssec_signed: bool | None = None
    dnssec_expiry: float | None = None  # the zone's first RRSIG to expire


NO_FACTS = Facts()


@dataclass(frozen=True, slots=True)
class HttpDetails:
    """What one HTTP probe saw. Fields about the response are None when none came."""

    url: str  # the URL probed
    final_url: str  # the last URL requested (after redirects)
    redirects: int  # redirects followed
    redirect_chain: tuple[str, ...]  # every URL requested, in order
    status_code: int | None
    http_version: str | None  # "1.1"
    body_bytes: int  # decompressed body bytes read
    content_type: str | None
    content_encoding: str | None  # as sent by the server (gzip, deflate...)
    resolved_addresses: tuple[str, ...]  # the final host's addresses, from the configured resolvers
    peer_address: str | None  # the address actually connected to for the final response
    peer_port: int | None
    tls_version: str | None  # "TLSv1.3"; None over plain HTTP
    tls_cipher: str | None
    server: str | None  # the Server header
    # What the final page says (probes.page), for the defacement check: only for a 2xx
    # HTML or text page of a target (not a canary), None otherwise.
    page: PageFingerprint | None = None

    def facts(self) -> Facts:
        return Facts(
            addresses=self.resolved_addresses,
            http_status=self.status_code,
            tls_version=self.tls_version,
        )


@dataclass(frozen=True, slots=True)
class ResolverLookup:
    """A and AAAA for the host through one configured resolver."""

    resolver: str  # "127.0.0.1:5353"
    rcode: str | None  # None when no response arrived
    addresses: tuple[str, ...]  # IPv4 then IPv6
    lookup_time_s: float
    over_tcp: bool  # the UDP answer was truncated and TCP was used
    reason: Reason | None  # None: addresses were found
    error: str | None = None
    local_fault: LocalFault | None = None  # the lookup failed for this machine's own want


@dataclass(frozen=True, slots=True)
class AuthoritativeAnswer:
    """What one address of one of the zone's name servers says about the zone."""

    nameserver: str  # the NS host name
    address: str
    serial: int | None  # None: no authoritative answer
    nameservers: tuple[str, ...]  # the NS set it serves
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DnssecDetails:
    status: DnssecStatus
    signed: bool  # the zone publishes DNSKEYs
    validated: bool  # a chain of valid signatures leads from a trust anchor to the records
    trust_anchor: str | None  # the anchor's owner name
    earliest_rrsig_expiry: float | None  # unix seconds, the zone's first signature to expire
    rrsig_days_left: float | None  # negative once expired
    error: str | None = None


_NO_SERIALS: Mapping[str, int | None] = MappingProxyType({})
_NO_ADDRESSES: Mapping[str, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DnsDetails:
    host: str
    addresses: tuple[str, ...]  # from the first resolver that found any
    resolvers: tuple[ResolverLookup, ...]
    zone: str | None = None  # the zone cut holding the host
    nameservers: tuple[str, ...] = ()  # the zone's NS set, as the resolver sees it
    ns_addresses: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _NO_ADDRESSES)
    authoritative: tuple[AuthoritativeAnswer, ...] = ()
    serials: Mapping[str, int | None] = field(default_factory=lambda: _NO_SERIALS)  # by address
    # Every authoritative server that answered reports the same SOA serial and NS set
    # (False too when none answered).
    agree: bool = False
    dnssec: DnssecDetails | None = None
    error: str | None = None  # why the zone details are missing or partial

    def facts(self) -> Facts:
        dnssec = self.dnssec
        if dnssec is None:
            return Facts(addresses=self.addresses, nameservers=self.nameservers)
        known = dnssec.status is not DnssecStatus.INDETERMINATE
        return Facts(
            addresses=self.addresses,
            nameservers=self.nameservers,
            dnssec_status=dnssec.status,
            dnssec_signed=dnssec.signed if known or dnssec.signed else None,
            dnssec_expiry=dnssec.earliest_rrsig_expiry,
        )


@dataclass(frozen=True, slots=True)
class CertificateSummary:
    """One certificate, as an operator wants to see it. Times are unix epoch seconds."""

    subject: str  # RFC 4514
    issuer: str  # RFC 4514
    dns_names: tuple[str, ...]  # subjectAltName dNSName entries
    ip_addresses: tuple[str, ...]  # subjectAltName iPAddress entries
    key_type: str  # RSA, EC, Ed25519, Ed448, DSA or unknown
    key_bits: int | None
    not_before: float
    not_after: float
    serial: str  # lowercase hex
    sha256_fingerprint: str  # lowercase hex of the DER encoding's SHA-256
    signature_algorithm: str  # e.g. sha256WithRSAEncryption
    is_ca: bool
    # Lowercase hex SHA-256 of the SubjectPublicKeyInfo: one key, one value ("" if unknown).
    public_key_sha256: str = ""

    @property
    def sans(self) -> tuple[str, ...]:
        return self.dns_names + self.ip_addresses


@dataclass(frozen=True, slots=True)
class CertificateReport:
    """A presented chain (leaf first) judged at `checked_at`.

    The leaf's expiry and the chain's earliest expiry are kept apart on purpose:
    blackbox_exporter exports only the earliest, and its users keep mistaking an
    intermediate's (or a stale cross-sign's) expiry for their own certificate's
    (prometheus/blackbox_exporter#340, #589).
    """

    chain: tuple[CertificateSummary, ...]
    checked_at: float
    leaf_not_after: float
    leaf_days_left: float
    earliest_not_after: float
    earliest_days_left: float
    earliest_subject: str  # which certificate of the chain expires first

    @property
    def leaf(self) -> CertificateSummary:
        return self.chain[0]

    @property
    def subject(self) -> str:
        return self.leaf.subject

    @property
    def issuer(self) -> str:
        return self.leaf.issuer

    @property
    def sans(self) -> tuple[str, ...]:
        return self.leaf.sans


@dataclass(frozen=True, slots=True)
class TlsDetails:
    """What one handshake showed. Times are unix epoch seconds."""

    address: str  # the IP address connected to
    server_name: str | None  # SNI sent (None for IP-literal targets)
    version: str  # e.g. "TLSv1.3"; probe_tls_version_info{version}
    cipher: str
    cipher_bits: int | None
    verified: bool  # chain verified against the system store plus settings.ca_file
    verify_error: str | None  # the first verification error OpenSSL met, if any
    hostname_match: bool
    ocsp_stapled: bool
    ocsp_status: str | None  # see probes.certs.ocsp_staple_status
    subject: str  # of the leaf
    issuer: str  # of the leaf
    leaf_expiry: float  # the leaf's notAfter
    earliest_expiry: (
        float  # earliest notAfter in the presented chain; probe_ssl_earliest_cert_expiry
    )
    certificates: CertificateReport

    def facts(self) -> Facts:
        return Facts(
            issuer=self.issuer,
            tls_version=self.version,
            tls_expiry=self.earliest_expiry,
            tls_leaf_expiry=self.leaf_expiry,
        )


EMPTY_PHASES: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of one target. `reason` is None exactly when `ok` is True."""

    kind: ProbeKind
    ok: bool
    reason: Reason | None
    duration_s: float
    started_at: float  # unix epoch seconds
    # Seconds spent per phase, named as blackbox_exporter names them
    # (resolve, connect, tls, processing, transfer for HTTP).
    phases: Mapping[str, float] = field(default_factory=lambda: EMPTY_PHASES)
    details: HttpDetails | DnsDetails | TlsDetails | None = None
    error: str | None = None  # the underlying error, for humans and logs
    local_fault: LocalFault | None = None  # set when the failure was the monitor's own

    def __post_init__(self) -> None:
        if self.ok != (self.reason is None):
            raise ValueError(f"ok={self.ok} contradicts reason={self.reason!r}")

    @property
    def facts(self) -> Facts:
        """What this result says about the target (see `Facts`)."""
        return self.details.facts() if self.details is not None else NO_FACTS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the one serialised form used by the CLI, storage and the API."""
        return {
            "probe": self.kind.value,
            "ok": self.ok,
            "reason": self.reason.value if self.reason else None,
            "duration_s": round(self.duration_s, 6),
            "started_at": self.started_at,
            "phases": {name: round(seconds, 6) for name, seconds in self.phases.items()},
            "details": _readable(self.details) if self.details is not None else {},
            "error": self.error,
            "local_fault": self.local_fault.value if self.local_fault else None,
        }


def _readable(details: HttpDetails | DnsDetails | TlsDetails) -> dict[str, Any]:
    """Details as people and tools read them: a page's fingerprint keeps its title, phrases
    and size, not the sketch (64 hashes, ~600 bytes a row, only for comparing; the tamper
    baseline in the history keeps it). The page is left out before the generic conversion,
    which would otherwise walk the 64 hashes on every HTTP result."""
    if not isinstance(details, HttpDetails) or details.page is None:
        return dict(to_jsonable(details))
    page = details.page
    readable = dict(to_jsonable(dataclasses.replace(details, page=None)))
    readable["page"] = {
        "title": page.title,
        "text_chars": page.text_chars,
        "markers": list(page.markers),
    }
    return readable


def to_jsonable(value: Any) -> Any:
    """Frozen dataclasses, enums, tuples, frozensets, bytes and mappings -> JSON types."""
    if value is None or isinstance(value, str | int | float):
        return value.value if isinstance(value, Enum) else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, bytes):
        return value.hex()
    return value


_DN_ATTRIBUTE = r"\s*([A-Za-z][\w.-]*)\s*=((?:\\.|[^,\\])*)"
_DISTINGUISHED_NAME = re.compile(rf"{_DN_ATTRIBUTE}(?:,{_DN_ATTRIBUTE})*\s*")


def certificate_name(name: str) -> str:
    """An issuer's readable name: its organisation (O), else its common name (CN), from a
    distinguished name such as 'CN=R3,O=Let's Encrypt,C=US'; anything else as it is.

    Also what tells one certificate authority from another: a CA's intermediates (R10,
    R11) change every few months, its organisation does not."""
    if not _DISTINGUISHED_NAME.fullmatch(name):
        return name
    attributes: dict[str, str] = {}
    for match in re.finditer(rf"(?:^|,){_DN_ATTRIBUTE}", name):
        key, value = match.group(1).upper(), re.sub(r"\\(.)", r"\1", match.group(2)).strip()
        attributes.setdefault(key, value)
    return attributes.get("O") or attributes.get("CN") or name
