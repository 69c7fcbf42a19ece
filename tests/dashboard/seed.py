"""Seeded history databases for the dashboard tests, written through monitor.storage's writer.

Going through `HistoryWriter` (not raw SQL) means a change of the storage schema
breaks these tests rather than the dashboard in production.

Scenarios (all relative to `now`, so banners and durations are live):
- "normal": every target up except one (a single-target incident) and one whose
  confirmed failure still waits for the canaries' verification (reported unknown),
  a closed country incident five days ago, a few short failures in the last days.
- "albania": "normal" plus Albania's July-2022 picture: all but one of its 22
  targets down with connection timeouts since 37 minutes ago, all on the same pair
  of name servers.
- "vantage_down": the monitor has lost the internet: every target unknown and an
  open vantage incident.
- "unseen": "normal", but Kosovo's targets were never observed (just configured): unknown,
  with no transitions and no probe results, so Kosovo has no availability at all.

Tamper signals (`seed_tamper`): a small history of four up targets, three with raised
signals of every kind (full evidence, as monitor.tamper writes it), acknowledged ones
cleared 3 and 40 days ago, and one target with none; every string in the signals can be
made hostile markup instead.

Like the daemon, the seed stores the one reported state: transitions and
target_status.state are what the API reports; target_status.confirmed_state (from
the StatusRow's TargetStatus) is what a restart restores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from monitor.outage import HintKind, Incident, InfraHint, Scope
from monitor.settings import Canary, Target
from monitor.state import TargetState, TargetStatus, Transition
from monitor.storage import HistoryWriter, StatusRow
from monitor.tamper import (
    Baseline,
    CertBaseline,
    DnssecBaseline,
    PageBaseline,
    Signal,
    SignalChange,
    TamperKind,
    ZoneBaseline,
)
from probes.results import (
    CertificateReport,
    CertificateSummary,
    DnsDetails,
    DnssecDetails,
    DnssecStatus,
    HttpDetails,
    ProbeKind,
    ProbeResult,
    Reason,
    TlsDetails,
)

SCENARIOS = ("normal", "albania", "vantage_down", "unseen")
# Targets per country: Albania as in the real catalogue, the others small.
TARGETS_PER_COUNTRY = {
    "AL": 22,
    "XK": 5,
    "MK": 5,
    "ME": 5,
    "RS": 6,
    "BA": 5,
    "HR": 4,
    "SI": 4,
    "BG": 5,
    "RO": 4,
    "GR": 4,
    "MD": 4,
    "TR": 4,
}
SECTORS = ("portal", "government", "parliament", "tax", "customs", "registry", "health")
AL_NAMESERVERS = ("ns11.akshi.gov.al", "ns12.akshi.gov.al")
AL_OUTAGE_AGE_S = 37 * 60
AL_SURVIVOR_INDEX = 0  # the one Albanian target still up (hosted elsewhere)
VANTAGE_DOWN_AGE_S = 12 * 60
SINGLE_DOWN_TARGET = "registry-05.rs.test"
SINGLE_DOWN_AGE_S = 3 * 3600
# Confirmed down, but reported unknown: the canaries have not vouched for the vantage yet.
AWAITING_TARGET = "tax-03.bg.test"
AWAITING_AGE_S = 90
HTTP_SAMPLES = 12  # recent HTTP results per target
HTTP_SPACING_S = 60.0
DAY = 86400.0


CANARIES = (
    Canary(name="canary-1.test", url="https://canary-1.test/"),
    Canary(name="canary-2.test", url="https://canary-2.test/"),
)
UP, DOWN, UNKNOWN = TargetState.UP, TargetState.DOWN, TargetState.UNKNOWN


def seed_targets() -> list[Target]:
    targets = []
    for country, count in TARGETS_PER_COUNTRY.items():
        for index in range(1, count + 1):
            sector = SECTORS[index % len(SECTORS)]
            name = f"{sector}-{index:02d}.{country.lower()}.test"
            targets.append(
                Target(name=name, url=f"https://{name}/", country=country, sector=sector)
            )
    return targets


def albanian_down(targets: list[Target]) -> list[Target]:
    albanian = [t for t in targets if t.country == "AL"]
    return [t for i, t in enumerate(albanian) if i != AL_SURVIVOR_INDEX]


def _phases(index: int, sample: int) -> MappingProxyType[str, float]:
    base = 0.004 + 0.001 * (index % 5)
    return MappingProxyType(
        {
            "resolve": base,
            "connect": 0.02 + 0.002 * (index % 7),
            "tls": 0.03 + 0.001 * (sample % 4),
            "processing": 0.08 + 0.01 * ((index + sample) % 6),
            "transfer": 0.01,
        }
    )


def _http(
    index: int, sample: int, at: float, target: Target, failure: Reason | None
) -> ProbeResult:
    if failure is not None:
        return ProbeResult(
            kind=ProbeKind.HTTP,
            ok=False,
            reason=failure,
            duration_s=5.0,
            started_at=at,
            phases=MappingProxyType({"resolve": 0.005, "connect": 4.995}),
            error="connect to 192.0.2.10:443 timed out after 5.0s",
        )
    phases = _phases(index, sample)
    details = HttpDetails(
        url=target.url,
        final_url=target.url,
        redirects=0,
        redirect_chain=(target.url,),
        status_code=200,
        http_version="1.1",
        body_bytes=20_000 + index,
        content_type="text/html",
        content_encoding="gzip",
        resolved_addresses=("192.0.2.10",),
        peer_address="192.0.2.10",
        peer_port=443,
        tls_version="TLSv1.3",
        tls_cipher="TLS_AES_128_GCM_SHA256",
        server="nginx",
    )
    return ProbeResult(
        kind=ProbeKind.HTTP,
        ok=True,
        reason=None,
        duration_s=round(sum(phases.values()), 4),
        started_at=at,
        phases=phases,
        details=details,
    )


def tls_days_left(index: int) -> float:
    """The seeded certificate lifetime left for the target at `index` (one expires soon)."""
    return 5.0 if index == 3 else 20.0 + (index * 37) % 300


def _tls(index: int, at: float, target: Target, ok: bool) -> ProbeResult:
    if not ok:
        return ProbeResult(
            kind=ProbeKind.TLS,
            ok=False,
            reason=Reason.CONNECT_TIMEOUT,
            duration_s=5.0,
            started_at=at,
            error="timed out",
        )
    not_after = at + tls_days_left(index) * DAY
    leaf = CertificateSummary(
        subject=f"CN={target.host}",
        issuer="CN=Test Issuing CA,O=Test",
        dns_names=(target.host,),
        ip_addresses=(),
        key_type="EC",
        key_bits=256,
        not_before=at - 60 * DAY,
        not_after=not_after,
        serial=f"{index:x}",
        sha256_fingerprint="00" * 32,
        signature_algorithm="ecdsa-with-SHA256",
        is_ca=False,
    )
    report = CertificateReport(
        chain=(leaf,),
        checked_at=at,
        leaf_not_after=not_after,
        leaf_days_left=tls_days_left(index),
        earliest_not_after=not_after,
        earliest_days_left=tls_days_left(index),
        earliest_subject=leaf.subject,
    )
    details = TlsDetails(
        address="192.0.2.10",
        server_name=target.host,
        version="TLSv1.3" if index % 3 else "TLSv1.2",
        cipher="TLS_AES_128_GCM_SHA256",
        cipher_bits=128,
        verified=True,
        verify_error=None,
        hostname_match=True,
        ocsp_stapled=False,
        ocsp_status=None,
        subject=leaf.subject,
        issuer=leaf.issuer,
        leaf_expiry=not_after,
        earliest_expiry=not_after,
        certificates=report,
    )
    return ProbeResult(
        kind=ProbeKind.TLS, ok=True, reason=None, duration_s=0.06, started_at=at, details=details
    )


def nameservers_of(target: Target) -> tuple[str, ...]:
    if target.country == "AL":
        return AL_NAMESERVERS
    return (f"ns1.{target.country.lower()}.test", f"ns2.{target.country.lower()}.test")


def _dns(index: int, at: float, target: Target) -> ProbeResult:
    signed = index % 2 == 0
    details = DnsDetails(
        host=target.host,
        addresses=("192.0.2.10",),
        resolvers=(),
        zone=target.host,
        nameservers=nameservers_of(target),
        agree=True,
        dnssec=DnssecDetails(
            status=DnssecStatus.SECURE if signed else DnssecStatus.INSECURE,
            signed=signed,
            validated=signed,
            trust_anchor="." if signed else None,
            earliest_rrsig_expiry=at + 10 * DAY if signed else None,
            rrsig_days_left=10.0 if signed else None,
        ),
    )
    return ProbeResult(
        kind=ProbeKind.DNS, ok=True, reason=None, duration_s=0.012, started_at=at, details=details
    )


def albanian_outage(since: float, affected: set[str], reason: Reason, hint: InfraHint) -> Incident:
    """Albania's open country outage since `since`, with one shared-infrastructure hint."""
    return Incident(
        id=f"country:AL:{int(since)}",
        scope=Scope.COUNTRY,
        country="AL",
        target=None,
        started_at=since,
        ended_at=None,
        affected=tuple(sorted(affected)),
        dominant_reason=reason,
        hints=(hint,),
    )


@dataclass
class Seed:
    targets: list[Target]
    probes: list[tuple[str, ProbeResult]]
    transitions: list[Transition]  # of the reported state
    incidents: list[Incident]
    rows: list[StatusRow]  # target_status: reported state, and the confirmed TargetStatus
    signals: list[SignalChange] = field(default_factory=list)  # tamper signals, as written


def build(scenario: str, now: float) -> Seed:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    targets = seed_targets()
    al_down = {t.name for t in albanian_down(targets)} if scenario == "albania" else set()
    unseen = {t.name for t in targets if t.country == "XK"} if scenario == "unseen" else set()
    al_since = now - AL_OUTAGE_AGE_S
    vantage_since = now - VANTAGE_DOWN_AGE_S
    first_seen = now - 30 * DAY
    blind = scenario == "vantage_down"

    probes: list[tuple[str, ProbeResult]] = []
    transitions: list[Transition] = []
    rows: list[StatusRow] = []
    for index, target in enumerate(targets):
        if target.name in unseen:
            rows.append(StatusRow(TargetStatus(target.name, UNKNOWN, None, None), UNKNOWN, None))
            continue
        # Everyone came up 30 days ago; a few had a short confirmed failure since.
        transitions.append(Transition(target.name, UNKNOWN, UP, first_seen, None))
        if index % 9 == 0:
            start = now - (2 + index % 5) * DAY - 3600.0
            transitions.append(Transition(target.name, UP, DOWN, start, Reason.HTTP_TIMEOUT))
            transitions.append(Transition(target.name, DOWN, UP, start + 2 * 3600.0, None))
        state, since, reason = UP, first_seen, None
        failing: Reason | None = None
        if target.name in al_down:
            transitions.append(Transition(target.name, UP, DOWN, al_since, Reason.CONNECT_TIMEOUT))
            state, since, reason = DOWN, al_since, Reason.CONNECT_TIMEOUT
            failing = Reason.CONNECT_TIMEOUT
        if target.name == SINGLE_DOWN_TARGET and not blind:
            at = now - SINGLE_DOWN_AGE_S
            transitions.append(Transition(target.name, UP, DOWN, at, Reason.HTTP_STATUS))
            state, since, reason = DOWN, at, Reason.HTTP_STATUS
        reported = state
        failing_since = al_since
        if target.name == AWAITING_TARGET and not blind:
            # Confirmed down; reported (and logged) unknown until the canaries vouch.
            at = now - AWAITING_AGE_S
            transitions.append(Transition(target.name, UP, UNKNOWN, at, None))
            state, since, reason, reported = DOWN, at, Reason.HTTP_STATUS, UNKNOWN
            failing, failing_since = Reason.HTTP_STATUS, at - HTTP_SPACING_S
        if blind:
            # The state machine makes a blind target unknown; so is its reported state.
            transitions.append(Transition(target.name, state, UNKNOWN, vantage_since, None))
            state, since, reason, reported = UNKNOWN, vantage_since, None, UNKNOWN
        status = TargetStatus(
            name=target.name, state=state, since=since, reason=reason, blind=blind
        )
        rows.append(StatusRow(status=status, reported=reported, infra=None))
        for sample in range(HTTP_SAMPLES):
            at = now - (HTTP_SAMPLES - sample) * HTTP_SPACING_S
            fails = failing if at >= failing_since else None
            probes.append((target.name, _http(index, sample, at, target, fails)))
        probes.append((target.name, _dns(index, now - 90.0, target)))
        probes.append((target.name, _tls(index, now - 300.0, target, target.name not in al_down)))
    for canary in CANARIES:
        status = TargetStatus(
            name=canary.name,
            state=DOWN if blind else UP,
            since=vantage_since if blind else first_seen,
            reason=Reason.NETWORK_UNREACHABLE if blind else None,
        )
        rows.append(StatusRow(status=status, reported=status.state, infra=None))

    mk = tuple(sorted(t.name for t in targets if t.country == "MK"))
    incidents = [
        Incident(
            id=f"country:MK:{int(now - 5 * DAY)}",
            scope=Scope.COUNTRY,
            country="MK",
            target=None,
            started_at=now - 5 * DAY,
            ended_at=now - 5 * DAY + 3 * 3600.0,
            affected=mk,
            dominant_reason=Reason.HTTP_TIMEOUT,
        )
    ]
    if not blind:
        incidents.append(
            Incident(
                id=f"target:{SINGLE_DOWN_TARGET}:{int(now - SINGLE_DOWN_AGE_S)}",
                scope=Scope.TARGET,
                country="RS",
                target=SINGLE_DOWN_TARGET,
                started_at=now - SINGLE_DOWN_AGE_S,
                ended_at=None,
                affected=(SINGLE_DOWN_TARGET,),
                dominant_reason=Reason.HTTP_STATUS,
            )
        )
    if scenario == "albania":
        hint = InfraHint(HintKind.NAMESERVERS, AL_NAMESERVERS, len(al_down), len(al_down))
        incidents.append(albanian_outage(al_since, al_down, Reason.CONNECT_TIMEOUT, hint))
    if blind:
        incidents.append(
            Incident(
                id=f"vantage:vantage:{int(vantage_since)}",
                scope=Scope.VANTAGE,
                country=None,
                target=None,
                started_at=vantage_since,
                ended_at=None,
                affected=tuple(c.name for c in CANARIES),
                dominant_reason=Reason.NETWORK_UNREACHABLE,
            )
        )
    return Seed(targets, probes, transitions, incidents, rows)


async def write(path: Path, seed: Seed, now: float) -> None:
    writer = await HistoryWriter.open(path, vantage="test", background=False, clock=lambda: now)
    try:
        writer.set_targets(seed.targets, CANARIES)
        for target, result in seed.probes:
            writer.add_probe(target, result)
        for transition in seed.transitions:
            writer.add_transition(transition)
        for incident in seed.incidents:
            writer.add_incident(incident)
        for signal in seed.signals:
            writer.add_signal(signal)
        writer.put_status(seed.rows)
        if not await writer.flush():
            raise RuntimeError(f"seeding {path} failed: {writer.stats.last_error}")
    finally:
        await writer.close()


def seed_database(path: Path, scenario: str, now: float) -> Seed:
    seed = build(scenario, now)
    asyncio.run(write(path, seed, now))
    return seed


def write_history(
    path: Path,
    now: float,
    targets: Iterable[Target],
    transitions: Iterable[Transition] = (),
    rows: Iterable[StatusRow] = (),
    incidents: Iterable[Incident] = (),
) -> Seed:
    """A small hand-made history (no probe results), written like the scenarios."""
    seed = Seed(list(targets), [], list(transitions), list(incidents), list(rows))
    asyncio.run(write(path, seed, now))
    return seed


def hostile_markup(origin: str) -> str:
    """One string with every way text could become markup in Streamlit, its URLs under
    `origin` (a loopback server that counts requests): the image a certificate issuer made
    the operator's browser fetch, a link, an HTML tag, a colour directive, an icon, an
    emoji, LaTeX and emphasis. Under 200 characters with a suffix, so it is a valid target name."""
    return (
        f"![p]({origin}/pixel.png) [click]({origin}/x) <img src={origin}/tag.png> "
        ":red[alarm] :material/home: :smile: $x$ *em*"
    )


HOSTILE_DOWN_AGE_S = 10 * 60
HOSTILE_TARGETS = 3


def build_hostile(now: float, markup: str) -> Seed:
    """Albania's three targets, all down, where everything that came from the config or the
    network is `markup`: their names, the HTTP error text and Server header,
    the certificates' subject and issuer, the name servers and the outage's shared-issuer hint."""
    targets = [
        Target(
            name=f"{markup} {i}", url=f"https://site-{i}.al.test/", country="AL", sector="portal"
        )
        for i in range(1, HOSTILE_TARGETS + 1)
    ]
    since = now - HOSTILE_DOWN_AGE_S
    probes: list[tuple[str, ProbeResult]] = []
    transitions: list[Transition] = []
    rows: list[StatusRow] = []
    for index, target in enumerate(targets):
        transitions.append(Transition(target.name, UNKNOWN, UP, now - DAY, None))
        transitions.append(Transition(target.name, UP, DOWN, since, Reason.HTTP_STATUS))
        status = TargetStatus(target.name, DOWN, since, Reason.HTTP_STATUS)
        rows.append(StatusRow(status=status, reported=DOWN, infra=None))
        answered = _http(index, 0, now - 60.0, target, None)
        assert isinstance(answered.details, HttpDetails)
        probes.append(
            (
                target.name,
                replace(
                    answered,
                    ok=False,
                    reason=Reason.HTTP_STATUS,
                    error=markup,
                    details=replace(answered.details, status_code=503, server=markup),
                ),
            )
        )
        tls = _tls(index, now - 120.0, target, ok=True)
        assert isinstance(tls.details, TlsDetails)
        probes.append(
            (target.name, replace(tls, details=replace(tls.details, subject=markup, issuer=markup)))
        )
        dns = _dns(index, now - 90.0, target)
        assert isinstance(dns.details, DnsDetails)
        probes.append(
            (target.name, replace(dns, details=replace(dns.details, nameservers=(markup,))))
        )
    for canary in CANARIES:
        status = TargetStatus(canary.name, UP, now - DAY, None)
        rows.append(StatusRow(status=status, reported=UP, infra=None))
    hint = InfraHint(HintKind.ISSUER, (markup,), len(targets), len(targets))
    incident = albanian_outage(since, {t.name for t in targets}, Reason.HTTP_STATUS, hint)
    return Seed(targets, probes, transitions, [incident], rows)


def seed_hostile(path: Path, now: float, markup: str) -> Seed:
    seed = build_hostile(now, markup)
    asyncio.run(write(path, seed, now))
    return seed


# --- tamper signals -------------------------------------------------------------------------

DEFACED_TARGET = "e-albania.al.test"
CERT_TARGET = "gov.me.test"
ZONE_TARGET = "mfa.al.test"  # dns_change and dnssec_downgrade raised together
UNTOUCHED_TARGET = "tatime.al.test"  # no signal ever
DEFACED_AGE_S = 25 * 60
RECENT_ACK_AGE_S = 3 * DAY  # a dns_change of the defaced target, acknowledged
OLD_ACK_AGE_S = 40 * DAY  # a cert_change of it, acknowledged: outside the 30-day list
ACK_NOTE = "ticket 4711: moved to the new DNS provider"

# What monitor.tamper's judges write, per kind (its _judge_* functions).
EVIDENCE: Mapping[TamperKind, Mapping[str, object]] = {
    TamperKind.DEFACEMENT: {
        "url": f"https://{DEFACED_TARGET}/",
        "status_code": 200,
        "old_title": "e-Albania | Portali qeveritar",
        "new_title": "HACKED BY GHOST",
        "similarity": 0.03,
        "threshold": 0.3,
        "old_excerpt": "Mirë se vini në portalin e shërbimeve qeveritare",
        "new_excerpt": "Hacked by Ghost. Greetz to all the crew",
        "new_markers": ["hacked by", "greetz"],
        "new_script_hosts": ["evil.example"],
        "new_link_hosts": ["mirror.example"],
        "old_text_chars": 5210,
        "new_text_chars": 48,
        "content_check_before": True,
        "content_check_now": False,
    },
    TamperKind.DNS_CHANGE: {
        "zone": ZONE_TARGET,
        "old_nameservers": ["ns11.akshi.gov.al", "ns12.akshi.gov.al"],
        "new_nameservers": ["ns1.parked.example", "ns2.parked.example"],
        "addresses": ["203.0.113.7"],
        "known_prefixes": ["192.0.2.0/24"],
        "new_prefixes": ["203.0.113.0/24"],
        "serials": {"192.0.2.53": 2026112801, "198.51.100.53": 2026112901},
        "serial_split_probes": 3,
    },
    TamperKind.DNSSEC_DOWNGRADE: {
        "zone": ZONE_TARGET,
        "old_status": "secure",
        "new_status": "insecure",
        "signed": False,
        "error": None,
    },
    TamperKind.CERT_CHANGE: {
        "host": CERT_TARGET,
        "old_issuer": "Let's Encrypt",
        "new_issuer": "Shady CA",
        "new_issuer_dn": "CN=Shady Issuing CA,O=Shady CA",
        "old_keys": ["9f86d081884c7d65"],
        "new_key": "60303ae22b998861",
        "old_not_after": 1_800_000_000.0,
        "old_days_left": 61.5,
        "new_not_after": 1_830_000_000.0,
        "new_subject": f"CN={CERT_TARGET}",
        "new_names": [CERT_TARGET],
        "covers_host": True,
        "renewal_window_days": 30.0,
    },
}
SUMMARIES: Mapping[TamperKind, str] = {
    TamperKind.DEFACEMENT: (
        "text 3% like before (fires below 30%); title 'e-Albania | Portali qeveritar' became "
        "'HACKED BY GHOST'; defacement phrase 'hacked by', 'greetz'"
    ),
    TamperKind.DNS_CHANGE: (
        "name servers ns11.akshi.gov.al, ns12.akshi.gov.al became ns1.parked.example, "
        "ns2.parked.example"
    ),
    TamperKind.DNSSEC_DOWNGRADE: f"zone {ZONE_TARGET} was signed and validated; now unsigned",
    TamperKind.CERT_CHANGE: "issued by 'Shady CA', was \"Let's Encrypt\"",
}


def _candidate(kind: TamperKind, at: float) -> Baseline:
    """What an acknowledgement would adopt (the dashboard never reads it)."""
    if kind is TamperKind.DEFACEMENT:
        return PageBaseline(
            "HACKED BY GHOST", (1, 2, 3), 48, (), ("hacked by",), "", 3, 1.0, at, at
        )
    if kind is TamperKind.DNS_CHANGE:
        return ZoneBaseline(("ns1.parked.example",), ("203.0.113.0/24",), 3, 0, at)
    if kind is TamperKind.DNSSEC_DOWNGRADE:
        return DnssecBaseline(False, at)
    return CertBaseline("Shady CA", "CN=Shady Issuing CA", ("60303ae22b998861",), at, True, at)


def poisoned(value: object, markup: str) -> object:
    """`value` with every string in it (keys too) replaced by `markup`."""
    if isinstance(value, str):
        return markup
    if isinstance(value, list):
        return [poisoned(item, markup) for item in value]
    if isinstance(value, Mapping):
        return {f"{markup} {i}": poisoned(v, markup) for i, v in enumerate(value.values())}
    return value


def tamper_record(
    target: str,
    country: str,
    kind: TamperKind,
    raised_at: float,
    *,
    cleared_at: float | None = None,
    note: str | None = None,
    markup: str | None = None,
) -> SignalChange:
    """A signal as the daemon records it: raised, or cleared by an acknowledgement."""
    evidence = dict(EVIDENCE[kind])
    summary = SUMMARIES[kind]
    if markup is not None:
        evidence = {k: poisoned(v, markup) for k, v in evidence.items()}
        summary = markup
        note = None if note is None else markup
    signal = Signal(target, kind, raised_at, summary, evidence, _candidate(kind, raised_at))
    return SignalChange(
        signal,
        country,
        cleared_at=cleared_at,
        cleared_by=None if cleared_at is None else "ack",
        note=note,
    )


def build_tamper(now: float, markup: str | None = None) -> Seed:
    """Four targets up for a day; signals of every kind raised on three of them."""
    countries = {DEFACED_TARGET: "AL", CERT_TARGET: "ME", ZONE_TARGET: "AL", UNTOUCHED_TARGET: "AL"}
    targets = [
        Target(name=name, url=f"https://{name}/", country=country, sector="portal")
        for name, country in countries.items()
    ]
    first_seen = now - 45 * DAY
    transitions = [Transition(t.name, UNKNOWN, UP, first_seen, None) for t in targets]
    rows = [StatusRow(TargetStatus(t.name, UP, first_seen, None), UP, None) for t in targets]
    for canary in CANARIES:
        rows.append(StatusRow(TargetStatus(canary.name, UP, first_seen, None), UP, None))
    raised = now - DEFACED_AGE_S
    signals = [
        tamper_record(DEFACED_TARGET, "AL", TamperKind.DEFACEMENT, raised, markup=markup),
        tamper_record(CERT_TARGET, "ME", TamperKind.CERT_CHANGE, raised - 3600, markup=markup),
        tamper_record(ZONE_TARGET, "AL", TamperKind.DNS_CHANGE, raised - 7200, markup=markup),
        tamper_record(ZONE_TARGET, "AL", TamperKind.DNSSEC_DOWNGRADE, raised - 7300, markup=markup),
        tamper_record(
            DEFACED_TARGET,
            "AL",
            TamperKind.DNS_CHANGE,
            now - RECENT_ACK_AGE_S - 3600,
            cleared_at=now - RECENT_ACK_AGE_S,
            note=ACK_NOTE,
            markup=markup,
        ),
        tamper_record(
            DEFACED_TARGET,
            "AL",
            TamperKind.CERT_CHANGE,
            now - OLD_ACK_AGE_S - 3600,
            cleared_at=now - OLD_ACK_AGE_S,
            note="renewed early",
            markup=markup,
        ),
    ]
    return Seed(targets, [], transitions, [], rows, signals)


def seed_tamper(path: Path, now: float, markup: str | None = None) -> Seed:
    seed = build_tamper(now, markup)
    asyncio.run(write(path, seed, now))
    return seed


def reported_states(seed: Seed) -> dict[str, TargetState]:
    """The reported state of every seeded target (canaries excluded)."""
    targets = {t.name for t in seed.targets}
    return {row.name: row.reported for row in seed.rows if row.name in targets}


def counts_by_country(seed: Seed) -> Iterator[tuple[str, int, int]]:
    """(country, down, total) per country from the seeded reported states."""
    country = {t.name: t.country for t in seed.targets}
    states = reported_states(seed)
    for code in TARGETS_PER_COUNTRY:
        mine = [state for name, state in states.items() if country[name] == code]
        yield code, sum(state is DOWN for state in mine), len(mine)


# --- an oracle: time up and down, walked transition by transition -------------------------


def blind_intervals(seed: Seed, now: float) -> list[tuple[float, float]]:
    """When the monitor itself was blind: its vantage incidents (an open one until `now`)."""
    return [
        (i.started_at, now if i.ended_at is None else i.ended_at)
        for i in seed.incidents
        if i.scope is Scope.VANTAGE
    ]


def up_down_seconds(
    transitions: list[Transition],
    start: float,
    end: float,
    blind: Iterable[tuple[float, float]] = (),
) -> tuple[float, float]:
    """One target's up and down time within [start, end), outside the `blind` intervals:
    walk its transitions in order and add up."""
    up = down = 0.0
    gaps = list(blind)
    ordered = sorted(transitions, key=lambda t: t.at)
    ends = [t.at for t in ordered[1:]] + [end] if ordered else []
    for current, following in zip(ordered, ends, strict=True):
        begin = max(current.at, start)
        finish = min(following, end)
        if finish <= begin:
            continue
        seen = finish - begin
        seen -= sum(max(0.0, min(finish, hi) - max(begin, lo)) for lo, hi in gaps)
        if current.new is UP:
            up += seen
        elif current.new is DOWN:
            down += seen
    return up, down


def availability(
    seed: Seed, names: Iterable[str], start: float, end: float, now: float
) -> float | None:
    """Up time / known time of these targets within [start, end); None when nothing is known."""
    blind = blind_intervals(seed, now)
    wanted = set(names)
    up = down = 0.0
    for name in wanted:
        mine = [t for t in seed.transitions if t.target == name]
        target_up, target_down = up_down_seconds(mine, start, min(end, now), blind)
        up += target_up
        down += target_down
    return up / (up + down) if up + down > 0 else None
