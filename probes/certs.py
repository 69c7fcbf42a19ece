"""Judging a presented certificate chain: pure functions, no I/O, no clock.

Split from the network work in probes/tls.py the way sslyze splits fetching a
chain from analysing it, so every rule here is testable with in-memory
certificates and an explicit `now`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.exception
import dns.name
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509 import ocsp

from probes.results import CertificateReport, CertificateSummary

SECONDS_PER_DAY = 86_400.0


def judge_chain(chain: Sequence[x509.Certificate], now: float) -> CertificateReport:
    """Summarise `chain` (leaf first, as the server presented it) at unix time `now`."""
    if not chain:
        raise ValueError("a certificate chain needs at least the leaf certificate")
    summaries = tuple(summarize_certificate(cert) for cert in chain)
    earliest = min(summaries, key=lambda summary: summary.not_after)
    return CertificateReport(
        chain=summaries,
        checked_at=now,
        leaf_not_after=summaries[0].not_after,
        leaf_days_left=days_left(summaries[0].not_after, now),
        earliest_not_after=earliest.not_after,
        earliest_days_left=days_left(earliest.not_after, now),
        earliest_subject=earliest.subject,
    )


def days_left(not_after: float, now: float) -> float:
    """Days until `not_after`; negative once it has passed."""
    return (not_after - now) / SECONDS_PER_DAY


def summarize_certificate(cert: x509.Certificate) -> CertificateSummary:
    key_type, key_bits = _public_key_type(cert)
    dns_names, ip_addresses = _subject_alt_names(cert)
    return CertificateSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        key_type=key_type,
        key_bits=key_bits,
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        serial=format(cert.serial_number, "x"),
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        public_key_sha256=public_key_sha256(cert),
        signature_algorithm=_signature_algorithm_name(cert),
        is_ca=_is_ca(cert),
    )


def public_key_sha256(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's SubjectPublicKeyInfo (as HPKP pinned
    it): the same for every certificate issued for one key, so a renewal that keeps its
    key keeps it."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return digest.finalize().hex()


def hostname_matches(cert: x509.Certificate, host: str) -> bool:
    """Does `cert` identify `host` (a DNS name or an IP literal)?

    Follows browsers rather than OpenSSL's defaults: only subjectAltName entries
    count (no fallback to the subject CN, which the CA/B Forum baseline forbids
    relying on), a wildcard is a whole left-most label matching exactly one
    label, and never sits right above a top-level domain (`*.al`).
    IP literals match iPAddress entries only.
    """
    dns_names, ip_addresses = _subject_alt_names(cert)
    return identity_matches(dns_names, ip_addresses, host)


def identity_matches(dns_names: Sequence[str], ip_addresses: Sequence[str], host: str) -> bool:
    """`hostname_matches` over already extracted subjectAltName entries."""
    address = _ip_literal(host)
    if address is not None:
        return any(_ip_literal(entry) == address for entry in ip_addresses)
    wanted = to_ascii_hostname(host)
    if not wanted:
        return False
    return any(_dns_pattern_matches(pattern, wanted) for pattern in dns_names)


def to_ascii_hostname(host: str) -> str:
    """Lower-case A-label form of `host` without the final dot; '' when it is no valid name.

    Uses dnspython's IDNA codec so the name matched is the name resolved.
    """
    name = host.strip().rstrip(".")
    if not name:
        return ""
    try:
        return dns.name.from_text(name).to_text(omit_final_dot=True).lower()
    except (dns.exception.DNSException, UnicodeError):
        return ""


def _dns_pattern_matches(pattern: str, host: str) -> bool:
    pattern = pattern.strip().rstrip(".").lower()
    if not pattern:
        return False
    if "*" not in pattern:
        return pattern == host
    first, _, rest = pattern.partition(".")
    # A wildcard must be the whole left-most label and be followed by at least two labels.
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    host_first, _, host_rest = host.partition(".")
    return bool(host_first) and host_rest == rest


def _ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _subject_alt_names(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return (), ()
    except ValueError:
        # cryptography is stricter than TLS stacks (e.g. duplicate extensions);
        # a certificate we cannot read names no host.
        return (), ()
    names = extension.value
    dns_names = tuple(names.get_values_for_type(x509.DNSName))
    ip_addresses = tuple(str(address) for address in names.get_values_for_type(x509.IPAddress))
    return dns_names, ip_addresses


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):
        return False


def _public_key_type(cert: x509.Certificate) -> tuple[str, int | None]:
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return "unknown", None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return "unknown", None


def _signature_algorithm_name(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    # `_name` is cryptography's registry of OID names (typed in its stubs);
    # unknown OIDs come back as "Unknown OID", where the dotted form says more.
    name = oid._name
    return oid.dotted_string if not name or name == "Unknown OID" else name


OCSP_MALFORMED = "malformed"


def ocsp_staple_status(der: bytes) -> str | None:
    """What a stapled OCSP response says, in one word; None when nothing was stapled.

    "good", "revoked" or "unknown" for a successful response; otherwise the
    responder's status (e.g. "unauthorized") or "malformed". The response's
    signature is not checked: this is a report, not a revocation verdict.
    """
    if not der:
        return None
    try:
        response = ocsp.load_der_ocsp_response(der)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return response.response_status.name.lower()
        # Servers staple the response for their own leaf; it comes first.
        first = next(iter(response.responses), None)
        return OCSP_MALFORMED if first is None else first.certificate_status.name.lower()
    except ValueError:
        return OCSP_MALFORMED
