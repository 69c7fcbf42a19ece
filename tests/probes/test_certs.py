"""probes.certs: pure judgement of in-memory certificate chains at an explicit `now`."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from probes.certs import (
    OCSP_MALFORMED,
    hostname_matches,
    identity_matches,
    judge_chain,
    ocsp_staple_status,
    summarize_certificate,
    to_ascii_hostname,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)

CertificateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_cert(
    subject: str,
    key: CertificateKey,
    *,
    issuer: tuple[x509.Certificate, CertificateKey] | None = None,
    not_after: datetime = NOW + 90 * DAY,
    not_before: datetime = NOW - 10 * DAY,
    is_ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    serial: int = 0x1F2E3D,
) -> x509.Certificate:
    issuer_name = issuer[0].subject if issuer else _name(subject)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    algorithm = None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signing_key, algorithm)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_leaf_and_earliest_expiry_are_reported_separately(ec_key):
    root = make_cert("Root", ec_key, is_ca=True, not_after=NOW + 3650 * DAY)
    intermediate = make_cert(
        "Intermediate", ec_key, issuer=(root, ec_key), is_ca=True, not_after=NOW + 30 * DAY
    )
    leaf = make_cert(
        "portal.test",
        ec_key,
        issuer=(intermediate, ec_key),
        not_after=NOW + 200 * DAY,
        sans=[x509.DNSName("portal.test")],
    )

    report = judge_chain([leaf, intermediate], NOW.timestamp())

    assert report.leaf_not_after == (NOW + 200 * DAY).timestamp()
    assert report.leaf_days_left == pytest.approx(200)
    assert report.earliest_not_after == (NOW + 30 * DAY).timestamp()
    assert report.earliest_days_left == pytest.approx(30)
    assert report.earliest_subject == "CN=Intermediate"
    assert report.subject == "CN=portal.test"
    assert report.issuer == "CN=Intermediate"
    assert [summary.subject for summary in report.chain] == ["CN=portal.test", "CN=Intermediate"]
    assert [summary.is_ca for summary in report.chain] == [False, True]


def test_expired_leaf_has_negative_days_left(ec_key):
    leaf = make_cert("old.test", ec_key, not_before=NOW - 400 * DAY, not_after=NOW - 2 * DAY)

    report = judge_chain([leaf], NOW.timestamp())

    assert report.leaf_days_left == pytest.approx(-2)
    assert report.earliest_days_left == pytest.approx(-2)


def test_empty_chain_is_refused():
    with pytest.raises(ValueError, match="at least the leaf"):
        judge_chain([], NOW.timestamp())


def test_summary_of_an_rsa_leaf(ec_key):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = make_cert(
        "portal.test",
        rsa_key,
        issuer=(make_cert("CA", ec_key, is_ca=True), ec_key),
        serial=0xABCDEF0123,
        sans=[x509.DNSName("portal.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.7"))],
    )

    summary = summarize_certificate(leaf)

    assert summary.key_type == "RSA"
    assert summary.key_bits == 2048
    assert summary.serial == "abcdef0123"
    assert summary.sha256_fingerprint == leaf.fingerprint(hashes.SHA256()).hex()
    assert len(summary.sha256_fingerprint) == 64
    assert summary.signature_algorithm == "ecdsa-with-SHA256"  # signed by the EC CA
    assert summary.dns_names == ("portal.test",)
    assert summary.ip_addresses == ("127.0.0.7",)
    assert summary.sans == ("portal.test", "127.0.0.7")
    assert summary.not_before == (NOW - 10 * DAY).timestamp()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), ("EC", 384)),
        (ed25519.Ed25519PrivateKey.generate, ("Ed25519", 256)),
    ],
)
def test_key_type_and_size(key, expected):
    cert = make_cert("k.test", key())

    summary = summarize_certificate(cert)

    assert (summary.key_type, summary.key_bits) == expected


def test_certificate_without_san_has_none(ec_key):
    summary = summarize_certificate(make_cert("cn-only.test", ec_key))

    assert summary.sans == ()


@pytest.mark.parametrize(
    ("patterns", "host", "matches"),
    [
        (["portal.test"], "portal.test", True),
        (["portal.test"], "PORTAL.Test.", True),  # case and the root dot do not matter
        (["portal.test"], "other.test", False),
        (["*.gov.test"], "e.gov.test", True),
        (["*.gov.test"], "a.e.gov.test", False),  # one label only
        (["*.gov.test"], "gov.test", False),  # the wildcard needs a label
        (["*.test"], "portal.test", False),  # not right above a TLD
        (["e*.gov.test"], "e1.gov.test", False),  # no partial wildcards
        (["*.*.test"], "a.b.test", False),
        (["other.test", "*.gov.test"], "x.gov.test", True),
        (["xn--l-5fam.gov.test"], "çël.gov.test", True),  # IDN: matched as A-label
        ([], "portal.test", False),
    ],
)
def test_dns_name_matching(patterns, host, matches):
    assert identity_matches(patterns, [], host) is matches


@pytest.mark.parametrize(
    ("addresses", "host", "matches"),
    [
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["::1"], "0:0:0:0:0:0:0:1", True),  # compared as addresses, not text
        (["::1"], "[::1]", True),
        ([], "127.0.0.1", False),
    ],
)
def test_ip_matching(addresses, host, matches):
    assert identity_matches([], addresses, host) is matches


def test_ip_literal_never_matches_a_dns_name_entry():
    assert identity_matches(["127.0.0.1"], [], "127.0.0.1") is False


def test_hostname_matches_reads_the_certificate(ec_key):
    leaf = make_cert(
        "CN-is-ignored.test",
        ec_key,
        sans=[x509.DNSName("*.gov.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.9"))],
    )

    assert hostname_matches(leaf, "e.gov.test")
    assert hostname_matches(leaf, "127.0.0.9")
    assert not hostname_matches(leaf, "CN-is-ignored.test")


def test_common_name_is_no_fallback(ec_key):
    # Browsers ignore the subject CN; so do we, even with no SAN at all.
    assert not hostname_matches(make_cert("portal.test", ec_key), "portal.test")


def test_to_ascii_hostname():
    assert to_ascii_hostname("Çël.Gov.test.") == "xn--l-5fam.gov.test"
    assert to_ascii_hostname("") == ""


def build_ocsp_response(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    issuer_key: CertificateKey,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    now: datetime = NOW,
) -> bytes:
    """A DER OCSP response for `leaf`, signed by its issuer (the way CAs' responders do)."""
    revoked = status is ocsp.OCSPCertStatus.REVOKED
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=issuer,
            algorithm=hashes.SHA1(),
            cert_status=status,
            this_update=now,
            next_update=now + DAY,
            revocation_time=now - DAY if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    )
    response = builder.sign(issuer_key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (ocsp.OCSPCertStatus.GOOD, "good"),
        (ocsp.OCSPCertStatus.REVOKED, "revoked"),
        (ocsp.OCSPCertStatus.UNKNOWN, "unknown"),
    ],
)
def test_ocsp_staple_status(ec_key, status, expected):
    issuer = make_cert("CA", ec_key, is_ca=True)
    leaf = make_cert("portal.test", ec_key, issuer=(issuer, ec_key))

    assert ocsp_staple_status(build_ocsp_response(leaf, issuer, ec_key, status)) == expected


def test_ocsp_staple_status_of_an_unsuccessful_response():
    der = ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    ).public_bytes(serialization.Encoding.DER)

    assert ocsp_staple_status(der) == "unauthorized"


def test_ocsp_staple_status_without_or_with_garbage():
    assert ocsp_staple_status(b"") is None
    assert ocsp_staple_status(b"not an OCSP response") == OCSP_MALFORMED
