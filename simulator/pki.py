"""The simulator's certificates: two root CAs, an intermediate per issuer, a leaf per site.

Every site can present six variants: `valid` (90 days, as ACME CAs issue them),
`expiring` (valid, 5 days left), `expired`, `wrong_name`, `renewed` (a new key from
the same intermediate, fresh 90 days) and `other_ca` (a new key issued by the
second root, `OTHER_CA_ORGANIZATION`: another CA altogether, as a hijacker's DV
certificate would be). Both roots go into the CA file govwatch trusts, so every
variant but `expired` and `wrong_name` verifies. Only the valid leaf is made
eagerly; the others are made the first time a fault asks for them.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from simulator.region import OTHER_CA_ORGANIZATION, CertVariant

ROOT_ORGANIZATION = "govwatch simulator"
# A name no simulated site uses, so a leaf issued for it never matches.
WRONG_NAME = "wrong-name.invalid.test"
VALID_DAYS = 90
EXPIRING_DAYS = 5


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class SimulatorPKI:
    """A root CA (the one file govwatch trusts) and per-issuer intermediates.

    Server-side `ssl.SSLContext`s are cached per (host, variant): building one
    means writing the key to a temporary file, which is worth doing once.
    """

    root: trustme.CA = field(
        default_factory=lambda: trustme.CA(organization_name=ROOT_ORGANIZATION)
    )
    # A second, unrelated CA: its own root, its own organization in the issuer DN.
    other_root: trustme.CA = field(
        default_factory=lambda: trustme.CA(organization_name=OTHER_CA_ORGANIZATION)
    )
    _issuers: dict[str, trustme.CA] = field(default_factory=dict)
    _contexts: dict[tuple[str, CertVariant], ssl.SSLContext] = field(default_factory=dict)

    def issuer(self, name: str) -> trustme.CA:
        """The intermediate CA called `name` (made on first use)."""
        if name not in self._issuers:
            # Its own organization, so the issuer names what the sites behind it share.
            self._issuers[name] = trustme.CA(parent_cert=self.root, organization_name=name)
        return self._issuers[name]

    def leaf(self, host: str, issuer: str, variant: CertVariant) -> trustme.LeafCert:
        """A new leaf (trustme makes a new key for each) for `host` in `variant`."""
        ca = self.other_root if variant is CertVariant.OTHER_CA else self.issuer(issuer)
        now = _utcnow()
        day = datetime.timedelta(days=1)
        if variant is CertVariant.RENEWED:  # issued just now, unlike `valid` (a day ago)
            return ca.issue_cert(host, not_before=now, not_after=now + VALID_DAYS * day)
        if variant is CertVariant.EXPIRED:
            return ca.issue_cert(host, not_before=now - 90 * day, not_after=now - day)
        if variant is CertVariant.EXPIRING:
            return ca.issue_cert(
                host,
                not_before=now - (VALID_DAYS - EXPIRING_DAYS) * day,
                not_after=now + EXPIRING_DAYS * day,
            )
        name = WRONG_NAME if variant is CertVariant.WRONG_NAME else host
        return ca.issue_cert(name, not_before=now - day, not_after=now + VALID_DAYS * day)

    def server_context(self, host: str, issuer: str, variant: CertVariant) -> ssl.SSLContext:
        """A server context presenting `host`'s certificate in `variant` (cached)."""
        key = (host, variant)
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.leaf(host, issuer, variant).configure_cert(context)
            self._contexts[key] = context
        return context

    def write_ca(self, path: Path) -> Path:
        """Write both roots (PEM) to `path`; govwatch's `ca_file` points here."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.root.cert_pem.bytes() + self.other_root.cert_pem.bytes())
        return path
