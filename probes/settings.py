"""What to probe and with which settings: plain values, no I/O (the core and the CLI import
these without loading any network library)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def is_ip_literal(host: str | None) -> bool:
    """An IPv4 or IPv6 address written as the host (no name to resolve, no SNI)."""
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str  # an IPv4 or IPv6 address
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    timeout_s: float = 5.0
    # Empty means the system resolvers (/etc/resolv.conf).
    resolvers: tuple[Nameserver, ...] = ()
    ca_file: Path | None = None  # extra trust anchors on top of the system store
    max_body_bytes: int = 1 << 20
    max_redirects: int = 10
    # DNSSEC trust anchors (a DS or DNSKEY zone-file snippet); None = the root's, shipped.
    dnssec_trust_anchors: Path | None = None
    # Port of the zones' authoritative name servers; None = 53. Tests and the simulator
    # run them on a random loopback port.
    authoritative_port: int | None = None
    user_agent: str = "govwatch/0.1"


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What to probe. Probes know nothing of countries or sectors."""

    url: str
    expect_text: str | None = None
    expect_status: frozenset[int] | None = None  # None: any 2xx or 3xx after redirects
    # Phrases that fail the probe (http_content) when the body holds any of them, matched
    # case-insensitively as plain text (blackbox_exporter's fail_if_body_matches_regexp,
    # without the regular expressions: a phrase cannot backtrack). Lower case.
    fail_if_body_matches: tuple[str, ...] = ()
    # Keep a fingerprint of a 2xx HTML or text page (HttpDetails.page) for the
    # defacement check; canaries do not need one.
    fingerprint_page: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)
