"""The Prometheus exporter, over snapshots built by the real pure logic.

`World` plays the daemon: it feeds real ProbeResults (with the probes' real
detail dataclasses) to the pure core (monitor.core.step), ticks it, and takes
a Snapshot of the core's world the way the daemon does. Every test reads a fresh private registry.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import trustme
from cryptography import x509
from prometheus_client import CollectorRegistry, generate_latest

import monitor
from monitor.core import Reload, Tick, step
from monitor.exporter import Renderer, SnapshotCollector, make_registry
from monitor.outage import TargetInfra
from monitor.settings import Canary, MaintenanceWindow, OutageSettings, Target
from monitor.snapshot import Snapshot
from monitor.storage import WriterStats
from probes.certs import judge_chain
from probes.results import (
    CertificateReport,
    DnsDetails,
    DnssecDetails,
    DnssecStatus,
    HttpDetails,
    ProbeKind,
    ProbeResult,
    Reason,
    ResolverLookup,
    TlsDetails,
)
from tests.unit.judge import CoreSim

T0 = 1_700_000_000.0
STARTED = T0 - 600.0
HTTP_PHASES = {"resolve": 0.01, "connect": 0.02, "tls": 0.03, "processing": 0.04, "transfer": 0.05}
DAY = 86_400.0


# --- real probe results ------------------------------------------------------------------


@functools.cache
def certificate_report() -> CertificateReport:
    """A real chain with a stale certificate that expires before the leaf does."""
    ca = trustme.CA()
    leaf = ca.issue_cert("portal.test", not_after=datetime(2099, 1, 1, tzinfo=UTC))
    stale = ca.issue_cert("stale.test", not_after=datetime(2031, 1, 1, tzinfo=UTC))
    chain = [
        x509.load_pem_x509_certificate(pem.bytes())
        for pem in (leaf.cert_chain_pems[0], stale.cert_chain_pems[0], ca.cert_pem)
    ]
    return judge_chain(chain, T0)


def http_result(
    url: str,
    started_at: float,
    *,
    reason: Reason | None = None,
    status: int | None = 200,
    with_details: bool = True,
    tls_version: str | None = "TLSv1.3",
) -> ProbeResult:
    details = None
    if with_details:
        details = HttpDetails(
            url=url,
            final_url=url,
            redirects=0,
            redirect_chain=(url,),
            status_code=status,
            http_version="1.1" if status is not None else None,
            body_bytes=1234 if status is not None else 0,
            content_type="text/html" if status is not None else None,
            content_encoding=None,
            resolved_addresses=("127.0.0.1",),
            peer_address="127.0.0.1" if status is not None else None,
            peer_port=443 if status is not None else None,
            tls_version=tls_version if status is not None else None,
            tls_cipher="TLS_AES_256_GCM_SHA384" if status is not None else None,
            server="nginx" if status is not None else None,
        )
    return ProbeResult(
        kind=ProbeKind.HTTP,
        ok=reason is None,
        reason=reason,
        duration_s=0.15,
        started_at=started_at,
        phases=HTTP_PHASES,
        details=details,
        error=None if reason is None else f"{reason.value} (test)",
    )


def dns_result(
    host: str, started_at: float, *, reason: Reason | None = None, signed: bool | None = True
) -> ProbeResult:
    dnssec = None
    if signed is not None:
        dnssec = DnssecDetails(
            status=DnssecStatus.SECURE if signed else DnssecStatus.INSECURE,
            signed=signed,
            validated=signed,
            trust_anchor="." if signed else None,
            earliest_rrsig_expiry=T0 + 7 * DAY if signed else None,
            rrsig_days_left=7.0 if signed else None,
        )
    addresses = ("127.0.0.1",) if reason is None else ()
    lookup = ResolverLookup(
        resolver="127.0.0.1:5353",
        rcode="NOERROR" if reason is None else "NXDOMAIN",
        addresses=addresses,
        lookup_time_s=0.004,
        over_tcp=False,
        reason=reason,
    )
    details = DnsDetails(
        host=host,
        addresses=addresses,
        resolvers=(lookup,),
        zone=host.partition(".")[2] or host,
        nameservers=("ns1.region.test", "ns2.region.test"),
        agree=True,
        dnssec=dnssec,
    )
    return ProbeResult(
        kind=ProbeKind.DNS,
        ok=reason is None,
        reason=reason,
        duration_s=0.02,
        started_at=started_at,
        phases={"resolve": 0.004},
        details=details,
    )


def tls_result(
    host: str, started_at: float, *, reason: Reason | None = None, version: str = "TLSv1.3"
) -> ProbeResult:
    report = certificate_report()
    details = TlsDetails(
        address="127.0.0.1",
        server_name=host,
        version=version,
        cipher="TLS_AES_256_GCM_SHA384",
        cipher_bits=256,
        verified=reason is None,
        verify_error=None if reason is None else "certificate has expired",
        hostname_match=True,
        ocsp_stapled=False,
        ocsp_status=None,
        subject=report.subject,
        issuer=report.issuer,
        leaf_expiry=report.leaf_not_after,
        earliest_expiry=report.earliest_not_after,
        certificates=report,
    )
    return ProbeResult(
        kind=ProbeKind.TLS,
        ok=reason is None,
        reason=reason,
        duration_s=0.05,
        started_at=started_at,
        phases={"resolve": 0.001, "connect": 0.002, "tls": 0.03},
        details=details,
    )


# --- the daemon's part, played through the real pure logic -----------------------------


def catalogue(countries: Mapping[str, int]) -> tuple[Target, ...]:
    """{"AL": 2} -> targets al1, al2 in AL; every third one a tax office."""
    return tuple(
        Target(
            name=f"{cc.lower()}{i}",
            url=f"https://{cc.lower()}{i}.test/",
            country=cc,
            sector="tax" if i % 3 == 0 else "portal",
        )
        for cc, count in countries.items()
        for i in range(1, count + 1)
    )


class World:
    """Targets and canaries, their statuses, and the snapshots the daemon would publish."""

    def __init__(
        self,
        countries: Mapping[str, int],
        canaries: int = 2,
        settings: OutageSettings | None = None,
        infra: Mapping[str, TargetInfra] | None = None,
    ) -> None:
        self.settings = settings or OutageSettings()
        self.targets = catalogue(countries)
        self.infra = dict(infra or {})
        self.canaries = tuple(
            Canary(name=f"canary{i}", url=f"https://canary{i}.test/") for i in range(canaries)
        )
        self.core = CoreSim(self.targets, self.canaries, self.settings, infra=infra)
        self.last_probe_at: float | None = None

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def target(self, name: str) -> Target:
        return next(t for t in self.targets if t.name == name)

    def feed(self, name: str, result: ProbeResult, now: float) -> None:
        self.core.result(name, result, now)
        if name in self.infra:
            # Facts the test fixed win over what the canned results would teach the core.
            world = self.core.world
            self.core.world = replace(world, infra=world.infra.set(name, self.infra[name]))
        self.last_probe_at = max(self.last_probe_at or now, now)

    def canaries_ok(self, now: float) -> None:
        for canary in self.canaries:
            self.feed(canary.name, http_result(canary.url, now), now)

    def canaries_fail(self, now: float) -> None:
        for attempt in range(1 + self.settings.confirm_reprobes):
            for canary in self.canaries:
                failed = http_result(
                    canary.url, now + attempt, reason=Reason.NETWORK_UNREACHABLE, status=None
                )
                self.feed(canary.name, failed, now + attempt)

    def all_ok(self, now: float, names: Iterable[str] | None = None) -> None:
        """Every probe of `names` (default: all targets) succeeds, and the canaries answer."""
        for name in self.names if names is None else names:
            target = self.target(name)
            self.feed(name, http_result(target.url, now), now)
            self.feed(name, dns_result(target.host, now), now)
            self.feed(name, tls_result(target.host, now), now)
        self.canaries_ok(now)

    def fail(
        self,
        names: Iterable[str],
        now: float,
        reason: Reason = Reason.CONNECT_TIMEOUT,
        kind: ProbeKind = ProbeKind.HTTP,
    ) -> None:
        """`kind` of `names` fails, is confirmed by the re-probes, and the canaries vouch."""
        names = list(names)
        for attempt in range(1 + self.settings.confirm_reprobes):
            at = now + attempt
            for name in names:
                target = self.target(name)
                if kind is ProbeKind.HTTP:
                    result = http_result(target.url, at, reason=reason, status=None)
                elif kind is ProbeKind.DNS:
                    result = dns_result(target.host, at, reason=reason, signed=None)
                else:
                    result = tls_result(target.host, at, reason=reason)
                self.feed(name, result, at)
        self.canaries_ok(now + 1 + self.settings.confirm_reprobes)

    def snapshot(
        self,
        now: float,
        *,
        vantage: str | None = None,
        config_reload_ok: bool = True,
        config_reload_at: float | None = STARTED,
        schedule_lag_s: float = 0.25,
        targets: Iterable[Target] | None = None,
    ) -> Snapshot:
        """Tick as the daemon does and take the snapshot (`targets`: the configured ones)."""
        configured = tuple(self.targets if targets is None else targets)
        if configured != self.core.world.targets:
            reload = Reload(configured, self.canaries, self.settings, 30.0)
            self.core.world, _ = step(self.core.world, reload, now)
        judged = self.core.tick(now)
        return Snapshot(
            world=judged.world,
            taken_at=now,
            started_at=STARTED,
            vantage=vantage,
            schedule_lag_s=schedule_lag_s,
            last_probe_at=self.last_probe_at,
            config_reload_ok=config_reload_ok,
            config_reload_at=config_reload_at,
        )


def registry_for(snapshot: Snapshot | None, *, process_metrics: bool = False) -> CollectorRegistry:
    return make_registry(lambda: snapshot, process_metrics=process_metrics)


def probe_labels(world: World, name: str, probe: str, **extra: str) -> dict[str, str]:
    target = world.target(name)
    return {
        "target": name,
        "country": target.country,
        "sector": target.sector,
        "probe": probe,
        **extra,
    }


def target_labels(world: World, name: str, **extra: str) -> dict[str, str]:
    target = world.target(name)
    return {"target": name, "country": target.country, "sector": target.sector, **extra}


def series(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    """The label sets of every sample named `name`."""
    return [
        sample.labels
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


# --- tests -------------------------------------------------------------------------------


def test_per_probe_metrics_come_from_each_kinds_latest_result() -> None:
    world = World({"AL": 3})
    world.all_ok(T0)
    registry = registry_for(world.snapshot(T0 + 1))
    report = certificate_report()
    value = registry.get_sample_value

    for probe in ("http", "dns", "tls"):
        labels = probe_labels(world, "al1", probe)
        assert value("probe_success", labels) == 1
        assert value("govwatch_probe_failure_info", {**labels, "reason": ""}) is None
    assert series(registry, "govwatch_probe_failure_info") == []

    http = probe_labels(world, "al1", "http")
    assert value("probe_duration_seconds", http) == pytest.approx(0.15)
    assert value("probe_http_status_code", http) == 200
    for phase, seconds in HTTP_PHASES.items():
        assert value("probe_http_duration_seconds", {**http, "phase": phase}) == seconds
    assert value("probe_tls_version_info", {**http, "version": "TLSv1.3"}) == 1

    tls = probe_labels(world, "al1", "tls")
    assert value("probe_ssl_earliest_cert_expiry", tls) == report.earliest_not_after
    assert value("govwatch_tls_leaf_cert_expiry_timestamp_seconds", tls) == report.leaf_not_after
    assert report.leaf_not_after > report.earliest_not_after  # the stale certificate expires first
    assert value("probe_tls_version_info", {**tls, "version": "TLSv1.3"}) == 1
    # Phase timings are HTTP's only; other probes' phases stay out of that family.
    assert {s["probe"] for s in series(registry, "probe_http_duration_seconds")} == {"http"}

    dns = probe_labels(world, "al1", "dns")
    assert value("probe_dns_lookup_time_seconds", dns) == 0.004
    assert value("govwatch_dnssec_signed", dns) == 1
    assert value("govwatch_dnssec_rrsig_expiry_timestamp_seconds", dns) == T0 + 7 * DAY
    # Kind-specific families never appear under another probe label.
    assert value("probe_http_status_code", dns) is None
    assert value("probe_dns_lookup_time_seconds", http) is None
    assert value("probe_ssl_earliest_cert_expiry", http) is None
    assert len(series(registry, "probe_success")) == 3 * 3


def test_unsigned_zone_reports_signed_0_and_no_rrsig_expiry() -> None:
    world = World({"AL": 1})
    target = world.target("al1")
    world.feed("al1", dns_result(target.host, T0, signed=False), T0)
    world.feed("al1", tls_result(target.host, T0, version="TLSv1.2"), T0)
    registry = registry_for(world.snapshot(T0 + 1))
    dns = probe_labels(world, "al1", "dns")
    assert registry.get_sample_value("govwatch_dnssec_signed", dns) == 0
    assert registry.get_sample_value("govwatch_dnssec_rrsig_expiry_timestamp_seconds", dns) is None
    assert series(registry, "probe_tls_version_info") == [
        probe_labels(world, "al1", "tls", version="TLSv1.2")
    ]
    # Never probed over HTTP yet: no HTTP series at all.
    assert registry.get_sample_value("probe_success", probe_labels(world, "al1", "http")) is None


def test_failed_probe_exports_its_reason_and_status_code_0_without_a_response() -> None:
    world = World({"AL": 3})
    world.all_ok(T0)
    world.fail(["al1"], T0 + 10, Reason.CONNECT_TIMEOUT)
    target = world.target("al2")
    # al2: a response came, with the wrong status.
    failed = http_result(target.url, T0 + 20, reason=Reason.HTTP_STATUS, status=503)
    world.feed("al2", failed, T0 + 20)
    # al3: failed before any details were gathered.
    bare = http_result(
        world.target("al3").url, T0 + 20, reason=Reason.DNS_NXDOMAIN, with_details=False
    )
    world.feed("al3", bare, T0 + 20)
    registry = registry_for(world.snapshot(T0 + 21))
    value = registry.get_sample_value

    al1 = probe_labels(world, "al1", "http")
    assert value("probe_success", al1) == 0
    assert value("probe_http_status_code", al1) == 0
    assert value("govwatch_probe_failure_info", {**al1, "reason": "connect_timeout"}) == 1
    al2 = probe_labels(world, "al2", "http")
    assert value("probe_http_status_code", al2) == 503
    assert value("govwatch_probe_failure_info", {**al2, "reason": "http_status"}) == 1
    al3 = probe_labels(world, "al3", "http")
    assert value("probe_http_status_code", al3) == 0
    assert value("govwatch_probe_failure_info", {**al3, "reason": "dns_nxdomain"}) == 1
    # The DNS and TLS probes of the same targets still succeed: no failure series for them.
    assert {s["probe"] for s in series(registry, "govwatch_probe_failure_info")} == {"http"}
    assert len(series(registry, "govwatch_probe_failure_info")) == 3

    # Recovery: the failure series disappears.
    world.all_ok(T0 + 30)
    registry = registry_for(world.snapshot(T0 + 31))
    assert series(registry, "govwatch_probe_failure_info") == []


def test_target_state_up_down_unknown() -> None:
    world = World({"AL": 3})
    world.all_ok(T0, ["al1", "al2"])
    world.canaries_ok(T0)
    world.fail(["al2"], T0 + 10, Reason.TLS_CERT_EXPIRED, kind=ProbeKind.TLS)
    registry = registry_for(world.snapshot(T0 + 20))
    value = registry.get_sample_value

    assert value("govwatch_target_up", target_labels(world, "al1")) == 1
    assert value("govwatch_target_up", target_labels(world, "al2")) == 0
    # al3 was never probed: unknown, so no govwatch_target_up at all.
    assert value("govwatch_target_up", target_labels(world, "al3")) is None
    assert len(series(registry, "govwatch_target_up")) == 2

    states = series(registry, "govwatch_target_state")
    assert sorted(states, key=lambda s: s["target"]) == [
        target_labels(world, "al1", state="up", reason=""),
        target_labels(world, "al2", state="down", reason="tls_cert_expired"),
        target_labels(world, "al3", state="unknown", reason=""),
    ]
    for labels in states:
        assert value("govwatch_target_state", labels) == 1


def test_suspect_failure_is_still_up_until_confirmed() -> None:
    world = World({"AL": 1})
    world.all_ok(T0)
    target = world.target("al1")
    world.feed("al1", http_result(target.url, T0 + 10, reason=Reason.HTTP_TIMEOUT), T0 + 10)
    registry = registry_for(world.snapshot(T0 + 11))
    assert registry.get_sample_value("govwatch_target_up", target_labels(world, "al1")) == 1
    http = probe_labels(world, "al1", "http", reason="http_timeout")
    assert registry.get_sample_value("govwatch_probe_failure_info", http) == 1


def test_country_and_region_aggregates() -> None:
    world = World({"AL": 3, "RS": 7, "XK": 2})
    world.all_ok(T0)
    world.fail(["al1", "al2", "al3"], T0 + 10, Reason.CONNECT_TIMEOUT)
    world.fail(["rs1"], T0 + 10, Reason.HTTP_STATUS)
    registry = registry_for(world.snapshot(T0 + 20))
    value = registry.get_sample_value

    assert value("govwatch_country_availability_ratio", {"country": "AL"}) == 0
    assert value("govwatch_country_availability_ratio", {"country": "RS"}) == pytest.approx(6 / 7)
    assert value("govwatch_country_availability_ratio", {"country": "XK"}) == 1
    for state, count in (("up", 0), ("down", 3), ("unknown", 0)):
        assert value("govwatch_country_targets", {"country": "AL", "state": state}) == count
    assert value("govwatch_country_targets", {"country": "RS", "state": "down"}) == 1
    assert value("govwatch_country_targets", {"country": "RS", "state": "up"}) == 6

    # AL: 3 of 3 down is a country outage; RS: 1 of 7 is not. 4 of 12 (33%) down is a region one.
    assert value("govwatch_outage_active", {"scope": "country", "country": "AL"}) == 1
    assert value("govwatch_outage_active", {"scope": "country", "country": "RS"}) == 0
    assert value("govwatch_outage_active", {"scope": "country", "country": "XK"}) == 0
    assert value("govwatch_outage_active", {"scope": "region", "country": ""}) == 1
    assert len(series(registry, "govwatch_outage_active")) == 3 + 1

    assert value("govwatch_incidents_open", {"scope": "target"}) == 4
    assert value("govwatch_incidents_open", {"scope": "country"}) == 1
    assert value("govwatch_incidents_open", {"scope": "region"}) == 1
    assert value("govwatch_incidents_open", {"scope": "vantage"}) == 0
    assert value("govwatch_vantage_up", {}) == 1


def test_country_outage_without_region_outage() -> None:
    world = World({"AL": 3, "RS": 10})
    world.all_ok(T0)
    world.fail(["al1", "al2", "al3"], T0 + 10)
    registry = registry_for(world.snapshot(T0 + 20))
    assert (
        registry.get_sample_value("govwatch_outage_active", {"scope": "country", "country": "AL"})
        == 1
    )
    assert (
        registry.get_sample_value("govwatch_outage_active", {"scope": "region", "country": ""}) == 0
    )


def test_nothing_known_leaves_out_the_availability_ratio() -> None:
    world = World({"AL": 2})
    registry = registry_for(world.snapshot(T0))
    assert series(registry, "govwatch_country_availability_ratio") == []
    assert (
        registry.get_sample_value("govwatch_country_targets", {"country": "AL", "state": "unknown"})
        == 2
    )
    assert (
        registry.get_sample_value("govwatch_outage_active", {"scope": "country", "country": "AL"})
        == 0
    )
    assert series(registry, "govwatch_target_up") == []
    assert series(registry, "govwatch_canary_up") == []  # canaries not probed yet: unknown


def test_vantage_down_hides_target_up_and_declares_no_outage() -> None:
    world = World({"AL": 3, "XK": 2})
    world.all_ok(T0)
    world.fail(["al1", "al2", "al3", "xk1", "xk2"], T0 + 10)
    before = registry_for(world.snapshot(T0 + 20))
    assert (
        before.get_sample_value("govwatch_outage_active", {"scope": "region", "country": ""}) == 1
    )

    world.canaries_fail(T0 + 30)
    registry = registry_for(world.snapshot(T0 + 40))
    value = registry.get_sample_value
    assert value("govwatch_vantage_up", {}) == 0
    assert value("govwatch_canary_up", {"canary": "canary0"}) == 0
    assert value("govwatch_canary_up", {"canary": "canary1"}) == 0
    assert series(registry, "govwatch_target_up") == []
    assert {s["state"] for s in series(registry, "govwatch_target_state")} == {"unknown"}
    assert {s["reason"] for s in series(registry, "govwatch_target_state")} == {""}
    for labels in series(registry, "govwatch_outage_active"):
        assert value("govwatch_outage_active", labels) == 0
    assert value("govwatch_country_targets", {"country": "AL", "state": "unknown"}) == 3
    assert series(registry, "govwatch_country_availability_ratio") == []
    assert value("govwatch_incidents_open", {"scope": "vantage"}) == 1
    assert value("govwatch_vantage_impaired", {"reason": "uplink"}) == 1
    assert value("govwatch_vantage_impaired", {"reason": "overload"}) == 0


@pytest.mark.parametrize(
    ("tick", "reason"),
    [
        (Tick(loop_lag_s=5.0), "overload"),
        (Tick(fd_ratio=0.97), "resources"),
    ],
)
def test_the_monitors_own_trouble_is_exported_as_impaired(tick: Tick, reason: str) -> None:
    world = World({"AL": 3})
    world.all_ok(T0)
    assert registry_for(world.snapshot(T0 + 1)).get_sample_value("govwatch_vantage_up", {}) == 1
    world.core.tick(T0 + 2, tick)
    registry = registry_for(world.snapshot(T0 + 3))
    value = registry.get_sample_value
    assert value("govwatch_vantage_up", {}) == 0
    assert value("govwatch_vantage_impaired", {"reason": reason}) == 1
    assert value("govwatch_vantage_impaired", {"reason": "uplink"}) == 0
    assert {s["state"] for s in series(registry, "govwatch_target_state")} == {"unknown"}


def test_daemon_metrics() -> None:
    world = World({"AL": 2})
    world.all_ok(T0)
    world.fail(["al1"], T0 + 10)
    snapshot = world.snapshot(T0 + 20, schedule_lag_s=0.75, config_reload_ok=False)
    registry = registry_for(snapshot)
    value = registry.get_sample_value

    # 2 targets x 3 probes + 2 canaries, then 2 failures of al1 and 2 more canary runs.
    assert value("govwatch_probes_total", {"probe": "http", "result": "success"}) == 2 + 2 + 2
    assert value("govwatch_probes_total", {"probe": "http", "result": "failure"}) == 2
    assert value("govwatch_probes_total", {"probe": "dns", "result": "success"}) == 2
    assert value("govwatch_probes_total", {"probe": "tls", "result": "failure"}) == 0
    assert len(series(registry, "govwatch_probes_total")) == 6
    assert value("govwatch_schedule_lag_seconds", {}) == 0.75
    assert value("govwatch_last_probe_timestamp_seconds", {}) == world.last_probe_at == T0 + 12
    assert value("govwatch_build_info", {"version": monitor.__version__}) == 1
    assert value("govwatch_config_last_reload_successful", {}) == 0
    assert value("govwatch_config_last_reload_success_timestamp_seconds", {}) == STARTED
    assert value("govwatch_start_time_seconds", {}) == STARTED


def test_history_and_task_health_is_exported() -> None:
    world = World({"AL": 1})
    world.all_ok(T0)
    history = WriterStats(
        written=120, flushes=4, errors=3, dropped=500, pruned=0, pending=42,
        last_flush_at=T0 + 5, last_error="OperationalError: database or disk is full",
    )  # fmt: skip
    snapshot = replace(world.snapshot(T0 + 20), history=history, tasks=17)
    value = registry_for(snapshot).get_sample_value
    assert value("govwatch_history_records_written_total", {}) == 120
    assert value("govwatch_history_write_errors_total", {}) == 3
    assert value("govwatch_history_records_dropped_total", {}) == 500
    assert value("govwatch_history_pending_records", {}) == 42
    assert value("govwatch_history_last_write_timestamp_seconds", {}) == T0 + 5
    assert value("govwatch_asyncio_tasks", {}) == 17
    # Without a writer (tests, benchmarks) the families are simply absent.
    bare = registry_for(world.snapshot(T0 + 20))
    assert series(bare, "govwatch_history_write_errors_total") == []


def test_without_a_snapshot_only_build_info_is_exported() -> None:
    registry = registry_for(None)
    names = {s.name for family in registry.collect() for s in family.samples}
    assert names == {"govwatch_build_info"}


def test_optional_timestamps_are_absent_until_known() -> None:
    world = World({"AL": 1})
    registry = registry_for(world.snapshot(T0, config_reload_at=None))
    assert series(registry, "govwatch_last_probe_timestamp_seconds") == []
    assert series(registry, "govwatch_config_last_reload_success_timestamp_seconds") == []


def test_removed_target_vanishes_from_the_next_scrape() -> None:
    world = World({"AL": 3})
    world.all_ok(T0)
    current: list[Snapshot] = [world.snapshot(T0 + 1)]
    registry = make_registry(lambda: current[0], process_metrics=False)
    assert any(s["target"] == "al3" for s in series(registry, "probe_success"))

    current[0] = world.snapshot(T0 + 2, targets=world.targets[:2])
    text = generate_latest(registry).decode()
    assert 'target="al3"' not in text
    assert 'target="al2"' in text
    assert (
        registry.get_sample_value("govwatch_country_targets", {"country": "AL", "state": "up"}) == 2
    )


def test_vantage_label_only_when_a_vantage_is_set() -> None:
    world = World({"AL": 2})
    world.all_ok(T0)
    world.fail(["al1"], T0 + 10)
    with_vantage_registry = registry_for(
        world.snapshot(T0 + 20, vantage="sofia"), process_metrics=True
    )
    samples = [s for family in with_vantage_registry.collect() for s in family.samples]
    assert {s.name for s in samples} >= {
        "probe_success",
        "govwatch_vantage_up",
        "process_cpu_seconds_total",
    }
    assert all(s.labels.get("vantage") == "sofia" for s in samples), [
        s for s in samples if s.labels.get("vantage") != "sofia"
    ][:3]
    value = with_vantage_registry.get_sample_value
    assert value("govwatch_vantage_up", {"vantage": "sofia"}) == 1
    assert value("probe_success", {**probe_labels(world, "al1", "http"), "vantage": "sofia"}) == 0
    assert (
        value(
            "govwatch_probe_failure_info",
            {**probe_labels(world, "al1", "http", reason="connect_timeout"), "vantage": "sofia"},
        )
        == 1
    )

    plain = registry_for(world.snapshot(T0 + 21), process_metrics=True)
    assert not any("vantage" in s.labels for family in plain.collect() for s in family.samples)


def test_collectors_never_touch_the_default_registry() -> None:
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    world = World({"AL": 1})
    make_registry(lambda: world.snapshot(T0))
    SnapshotCollector(lambda: None)
    assert set(REGISTRY._names_to_collectors) == before


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt install prometheus)"
)
@pytest.mark.parametrize("vantage", [None, "sofia"])
def test_promtool_check_metrics_passes(vantage: str | None) -> None:
    assert PROMTOOL is not None
    world = World({"AL": 3, "XK": 2})
    world.all_ok(T0)
    world.fail(["al1", "al2", "al3"], T0 + 10)
    world.fail(["xk1"], T0 + 10, Reason.DNSSEC_BOGUS, kind=ProbeKind.DNS)
    history = WriterStats(1, 1, 0, 0, 0, 0, T0, None)
    snapshot = replace(world.snapshot(T0 + 20, vantage=vantage), history=history, tasks=3)
    registry = registry_for(snapshot, process_metrics=True)
    exposition = generate_latest(registry)
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, timeout=10
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    # The exposition parses back to the names the alerting rules use.
    text = exposition.decode()
    for name in ("govwatch_probe_failure_info", "probe_tls_version_info", "govwatch_probes_total"):
        assert re.search(rf"^{name}\{{", text, re.MULTILINE), name


@pytest.mark.parametrize("vantage", [None, 'so"fia\\'])
def test_renderer_writes_what_generate_latest_writes(vantage: str | None) -> None:
    """/metrics uses Renderer (generate_latest costs seconds at 10,000 targets): the bytes
    must be the library's, scrape after scrape, with awkward label values and a removal."""
    world = World({"AL": 3, "XK": 2})
    world.all_ok(T0)
    world.fail(["al1"], T0 + 10)
    odd = Target(name='a "quoted"\\name\nwith a newline', url="https://odd.test/", country="AL",
                 sector="portal")  # fmt: skip
    current = [world.snapshot(T0 + 20, vantage=vantage, targets=(*world.targets, odd))]
    registry = make_registry(lambda: current[0], process_metrics=False)
    renderer = Renderer(registry)
    for _ in range(2):  # the second scrape reads the kept label texts
        assert renderer.render() == generate_latest(registry)
    world.all_ok(T0 + 30)
    current[0] = world.snapshot(T0 + 40, vantage=vantage, targets=world.targets[1:])
    assert renderer.render() == generate_latest(registry)
    assert b"al1" not in renderer.render() and b"quoted" not in renderer.render()


@pytest.mark.parametrize("vantage", [None, "sofia"])
def test_maintenance_active_for_every_target_and_target_up_absent_meanwhile(
    vantage: str | None,
) -> None:
    world = World({"AL": 3})
    world.all_ok(T0)
    world.canaries_ok(T0)
    window = MaintenanceWindow(
        note="upgrade", start=T0 + 5, end=T0 + 3605, targets=frozenset({"al1", "al2"})
    )
    core = world.core.world
    reload = Reload(core.targets, core.canaries, core.settings, 30.0, (window,))
    world.core.world, _ = step(core, reload, T0 + 1)
    world.fail(["al2"], T0 + 10)  # failing in the window: still maintenance, never down
    registry = registry_for(world.snapshot(T0 + 20, vantage=vantage))
    value = registry.get_sample_value
    extra = {"vantage": vantage} if vantage else {}

    active = series(registry, "govwatch_maintenance_active")
    assert sorted(active, key=lambda s: s["target"]) == [
        target_labels(world, name, **extra) for name in ("al1", "al2", "al3")
    ]
    for name, expected in (("al1", 1), ("al2", 1), ("al3", 0)):
        assert value("govwatch_maintenance_active", target_labels(world, name, **extra)) == expected
    # The up gauge keeps its convention for states that are neither up nor down: absent.
    assert [s["target"] for s in series(registry, "govwatch_target_up")] == ["al3"]
    assert (
        value(
            "govwatch_target_state",
            target_labels(world, "al2", state="maintenance", reason="", **extra),
        )
        == 1
    )
    assert (
        value("govwatch_country_targets", {"country": "AL", "state": "maintenance", **extra}) == 2
    )
    assert value("govwatch_country_availability_ratio", {"country": "AL", **extra}) == 1
