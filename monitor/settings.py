"""The configuration as the rest of govwatch sees it: frozen values, no parsing, no I/O.

`monitor.config` builds these from targets.toml (and is the only place that reads it);
the pure core, the daemon, storage and the dashboard import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from probes.results import ProbeKind
from probes.settings import Nameserver, ProbeSettings, ProbeTarget

# One small vocabulary for `sector`, so dashboards and alerts can group by it.
SECTORS = frozenset(
    {
        "portal",  # national e-services portal
        "government",  # government, council of ministers, prime minister
        "parliament",
        "president",
        "tax",
        "customs",
        "registry",  # business and civil registries, ID documents
        "procurement",
        "health",
        "interior",  # interior ministry, police, border police
        "justice",
        "foreign",
        "defence",
        "finance",
        "education",
        "economy",  # economy, labour, social policy
        "statistics",
        "cadastre",
        "cert",  # CERTs, CSIRTs, cyber-security agencies
        "election",
        "payments",
        "identity",  # e-ID, government login
        "data",  # open data, data exchange
        "agency",  # other state agencies and regulators
        "municipal",
    }
)
EVIDENCE = ("seen", "plausible")


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    interval_s: float = 30.0
    timeout_s: float = 5.0
    tls_interval_s: float = 600.0
    resolvers: tuple[Nameserver, ...] = ()  # empty: the system's (/etc/resolv.conf)
    ca_file: Path | None = None
    concurrency: int = 64
    max_body_bytes: int = 1 << 20
    max_redirects: int = 10
    dnssec_trust_anchors: Path | None = None
    # Port the zones' authoritative name servers answer on; None = 53 (the simulator's differ).
    authoritative_port: int | None = None


@dataclass(frozen=True, slots=True)
class OutageSettings:
    confirm_reprobes: int = 1  # quick re-probes that must fail too before "down" is confirmed
    reprobe_delay_s: float = 2.0
    country_min_ratio: float = 0.5
    country_min_targets: int = 3
    region_min_countries: int = 2
    region_min_ratio: float = 0.3
    vantage_canary_ratio: float = 0.5
    # The monitor's own trouble: event-loop lag above this makes the vantage impaired
    # (overload), and any impairment holds until no evidence was seen for impairment_hold.
    overload_lag_s: float = 1.0
    impairment_hold_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Canary:
    name: str
    url: str
    expect_text: str | None = None
    line: int = field(default=0, compare=False)  # where it is, not what it is

    @property
    def probe_target(self) -> ProbeTarget:
        return ProbeTarget(url=self.url, expect_text=self.expect_text)

    @property
    def probe_kinds(self) -> tuple[ProbeKind, ...]:
        """Is the monitor online? Reaching the site and resolving its name answer that."""
        return (ProbeKind.HTTP, ProbeKind.DNS)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    country: str
    sector: str
    expect_text: str | None = None
    expect_status: frozenset[int] | None = None
    evidence: str = "seen"
    line: int = field(default=0, compare=False)  # where it is, not what it is
    fail_if_body_matches: tuple[str, ...] = ()  # lower case; see ProbeTarget
    # The defacement check's text-similarity threshold; None: monitor.tamper's default.
    defacement_similarity: float | None = None

    @property
    def probe_target(self) -> ProbeTarget:
        return ProbeTarget(
            url=self.url,
            expect_text=self.expect_text,
            expect_status=self.expect_status,
            fail_if_body_matches=self.fail_if_body_matches,
            fingerprint_page=True,
        )

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def probe_kinds(self) -> tuple[ProbeKind, ...]:
        """HTTP and DNS always; TLS for https URLs (in any case: "HTTPS://" too)."""
        https = urlsplit(self.url).scheme == "https"  # urlsplit lower-cases the scheme
        return tuple(kind for kind in ProbeKind if kind is not ProbeKind.TLS or https)


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A planned maintenance window ([[maintenance]]): while it is active the targets it
    covers are reported "maintenance", never down, and open no incident (monitor.core).

    Times are unix seconds; the window is active from `start` (included) to `end`
    (excluded), and again every `every_s` seconds after when that is set (a week).
    It covers a target named in `targets`, or in one of `countries`, or of `sectors`.
    """

    note: str
    start: float
    end: float
    every_s: float | None = None
    targets: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    sectors: frozenset[str] = frozenset()
    line: int = field(default=0, compare=False)  # where it is, not what it is

    def covers(self, target: Target) -> bool:
        return (
            target.name in self.targets
            or target.country in self.countries
            or target.sector in self.sectors
        )


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    outage: OutageSettings = field(default_factory=OutageSettings)
    canaries: tuple[Canary, ...] = ()
    targets: tuple[Target, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()

    @property
    def probe_settings(self) -> ProbeSettings:
        m = self.monitor
        return ProbeSettings(
            timeout_s=m.timeout_s,
            resolvers=m.resolvers,
            ca_file=m.ca_file,
            max_body_bytes=m.max_body_bytes,
            max_redirects=m.max_redirects,
            dnssec_trust_anchors=m.dnssec_trust_anchors,
            authoritative_port=m.authoritative_port,
        )

    @property
    def countries(self) -> tuple[str, ...]:
        return tuple(sorted({t.country for t in self.targets}))

    def summary(self) -> str:
        sectors = {t.sector for t in self.targets}
        plausible = sum(t.evidence == "plausible" for t in self.targets)
        return (
            f"{self.path}: OK: {len(self.targets)} targets ({plausible} plausible) "
            f"in {len(self.countries)} countries, {len(sectors)} sectors, "
            f"{len(self.canaries)} canaries"
            + (f", {len(self.maintenance)} maintenance window(s)" if self.maintenance else "")
        )
