"""Correlated outages and incidents, from target and canary statuses. Pure.

`assess()` turns one snapshot of statuses into an `Assessment`: is the monitor
itself online (the vantage), what each country's availability is, which
countries and whether the region are in outage, and which incidents are open,
opened, updated or closed in this step. Nothing here does I/O or reads a clock.

Rules (thresholds from `OutageSettings`):

- Vantage: down when `vantage_canary_ratio` or more of the configured canaries
  are confirmed DOWN (canaries without a result do not count as failing). No
  canaries configured: always up. While it is down every target is reported
  UNKNOWN, nothing is declared or re-evaluated, open incidents stay open as
  they are, and one "vantage" incident is open.
- Verified failures: a confirmed DOWN target is reported DOWN only once enough
  canaries (as many as it takes for the vantage to be up even if all others
  failed) have been seen healthy at or after its first failure; until then it
  is reported UNKNOWN and `vantage_check_wanted` asks the daemon to probe the
  canaries now. This closes the race in which the monitor loses its link,
  confirms every target DOWN, and only then probes the canaries.
- Country outage: at least `country_min_ratio` of its targets, and at least
  `country_min_targets` of them (or all, if it has fewer), reported DOWN.
- Region outage: `region_min_countries` or more countries in outage, or at
  least `region_min_ratio` of all targets reported DOWN.
- An open country or region incident closes only when the rule fails even if
  every UNKNOWN target were down: not knowing is not recovery (e.g. right after
  the vantage returns, while failures are re-confirmed).
- A target incident opens when the target is reported DOWN and closes when it
  is UP (or no longer configured).

The daemon's loop: fold each result with `state.observe` (targets and canaries
alike); then `a = assess(...)`; apply `state.with_vantage(status,
a.vantage_up, now, settings)` to every target (never to canaries); persist
`a.opened`, `a.updated`, `a.closed`; pass `a.incidents` as the next
`open_incidents`; when `a.vantage_check_wanted`, probe the canaries now.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from monitor.config import Canary, OutageSettings, Target
from monitor.state import TargetState, TargetStatus, initial_status
from probes.results import Reason

IPV4_PREFIX_LENGTH: Final = 24
IPV6_PREFIX_LENGTH: Final = 48
# Ratios are compared with a little slack so that 3 of 10 is 30% despite floats.
_EPSILON: Final = 1e-9


class Scope(StrEnum):
    TARGET = "target"
    COUNTRY = "country"
    REGION = "region"
    VANTAGE = "vantage"


class HintKind(StrEnum):
    NAMESERVERS = "nameservers"
    ADDRESS_PREFIX = "address_prefix"
    ISSUER = "issuer"


def address_prefix(address: str) -> str:
    """'192.0.2.7' -> '192.0.2.0/24'; '2001:db8:1:2::1' -> '2001:db8:1::/48'."""
    ip = ipaddress.ip_address(address)
    length = IPV4_PREFIX_LENGTH if ip.version == 4 else IPV6_PREFIX_LENGTH
    return str(ipaddress.ip_network(f"{ip}/{length}", strict=False))


@dataclass(frozen=True, slots=True)
class TargetInfra:
    """What a target runs on, as the daemon last learned it from DNS and TLS results.

    Pass the last known facts even while the target fails: a target whose DNS
    is down can no longer tell which name servers it had.
    """

    nameservers: frozenset[str] = frozenset()  # lower case, no trailing dot
    address_prefixes: frozenset[str] = frozenset()  # see address_prefix()
    issuer: str | None = None  # the leaf certificate's issuer, e.g. its CN

    @classmethod
    def from_facts(
        cls,
        *,
        nameservers: Iterable[str] = (),
        addresses: Iterable[str] = (),
        issuer: str | None = None,
    ) -> TargetInfra:
        """Normalise name servers and turn IP addresses into their /24 or /48 prefixes."""
        return cls(
            nameservers=frozenset(ns.lower().rstrip(".") for ns in nameservers if ns.strip(".")),
            address_prefixes=frozenset(address_prefix(a) for a in addresses),
            issuer=issuer or None,
        )


_NO_INFRA: Final = TargetInfra()

_HINT_LABELS: Final[Mapping[HintKind, tuple[str, str]]] = MappingProxyType(
    {
        HintKind.NAMESERVERS: ("name server", "name servers"),
        HintKind.ADDRESS_PREFIX: ("address prefix", "address prefixes"),
        HintKind.ISSUER: ("certificate issuer", "certificate issuers"),
    }
)


@dataclass(frozen=True, slots=True)
class InfraHint:
    """`count` of the `of` affected targets share every one of `values`."""

    kind: HintKind
    values: tuple[str, ...]  # sorted
    count: int
    of: int

    @property
    def text(self) -> str:
        who = f"all {self.of}" if self.count == self.of else f"{self.count} of {self.of}"
        singular, plural = _HINT_LABELS[self.kind]
        label = singular if len(self.values) == 1 else plural
        return f"{who} affected targets share {label} {', '.join(self.values)}"


@dataclass(frozen=True, slots=True)
class Incident:
    """One outage, from start to end. `id` and `started_at` never change."""

    id: str
    scope: Scope
    country: str | None  # the country (scope country or target), else None
    target: str | None  # the target (scope target), else None
    started_at: float
    ended_at: float | None  # None while open
    affected: tuple[str, ...]  # sorted; every target (or canary) failing during the incident
    dominant_reason: Reason | None
    hints: tuple[InfraHint, ...] = ()  # strongest first; empty when nothing is shared

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def key(self) -> str:
        return incident_key(self.scope, self.country, self.target)

    @property
    def hint_text(self) -> str | None:
        return "; ".join(h.text for h in self.hints) or None


def incident_key(scope: Scope, country: str | None, target: str | None) -> str:
    """What an incident is about: the target, the country, "region" or "vantage"."""
    if scope is Scope.TARGET:
        return target or ""
    if scope is Scope.COUNTRY:
        return country or ""
    return scope.value


def incident_id(scope: Scope, key: str, started_at: float) -> str:
    return f"{scope.value}:{key}:{int(started_at)}"


@dataclass(frozen=True, slots=True)
class CountrySummary:
    country: str
    up: int
    down: int
    unknown: int
    in_outage: bool

    @property
    def total(self) -> int:
        return self.up + self.down + self.unknown

    @property
    def availability(self) -> float | None:
        """up / (up + down); None when nothing is known."""
        known = self.up + self.down
        return self.up / known if known else None


@dataclass(frozen=True, slots=True)
class Assessment:
    at: float
    vantage_up: bool
    failing_canaries: tuple[str, ...]  # sorted names of canaries confirmed DOWN
    states: Mapping[str, TargetState]  # reported state of every configured target
    countries: tuple[CountrySummary, ...]  # sorted by country code
    region_outage: bool
    incidents: tuple[Incident, ...]  # open after this step, by start
    opened: tuple[Incident, ...]
    updated: tuple[Incident, ...]  # still open; affected, reason or hints changed
    closed: tuple[Incident, ...]  # with ended_at = `at`
    # Some target is confirmed DOWN but no canary was seen healthy since it
    # started failing: probe the canaries now rather than at their interval.
    vantage_check_wanted: bool

    @property
    def countries_in_outage(self) -> tuple[str, ...]:
        return tuple(c.country for c in self.countries if c.in_outage)


def dominant_reason(reasons: Iterable[Reason | None]) -> Reason | None:
    """The most common reason; ties go to the one declared first in `Reason`."""
    counts = Counter(r for r in reasons if r is not None)
    if not counts:
        return None
    order = list(Reason)
    return min(counts, key=lambda r: (-counts[r], order.index(r)))


def shared_infrastructure(
    affected: Sequence[str], infra: Mapping[str, TargetInfra]
) -> tuple[InfraHint, ...]:
    """What a strict majority (and at least 2) of the affected targets share.

    Per kind, the value held by the most affected targets wins (ties: the
    smallest value), joined by every other value held by exactly the same
    targets, so "share name servers a, b" is true of each target counted.
    Targets without known facts share nothing. Strongest hint first.
    """
    if len(affected) < 2:
        return ()
    hints: list[InfraHint] = []
    for kind in HintKind:
        holders: dict[str, set[str]] = {}
        for name in affected:
            for value in _infra_values(infra.get(name, _NO_INFRA), kind):
                holders.setdefault(value, set()).add(name)
        if not holders:
            continue
        best = min(holders, key=lambda v: (-len(holders[v]), v))
        group = holders[best]
        if len(group) < 2 or 2 * len(group) <= len(affected):
            continue
        values = tuple(sorted(v for v, h in holders.items() if h == group))
        hints.append(InfraHint(kind, values, len(group), len(affected)))
    order = list(HintKind)
    return tuple(sorted(hints, key=lambda h: (-h.count, order.index(h.kind))))


def _infra_values(facts: TargetInfra, kind: HintKind) -> frozenset[str]:
    if kind is HintKind.NAMESERVERS:
        return facts.nameservers
    if kind is HintKind.ADDRESS_PREFIX:
        return facts.address_prefixes
    return frozenset({facts.issuer}) if facts.issuer else frozenset()


def _at_least(part: int, whole: int, ratio: float) -> bool:
    return whole > 0 and part >= ratio * whole - _EPSILON


def _country_rule(down: int, total: int, settings: OutageSettings) -> bool:
    return (
        down > 0
        and _at_least(down, total, settings.country_min_ratio)
        and down >= min(settings.country_min_targets, total)
    )


def _region_rule(countries: int, down: int, total: int, settings: OutageSettings) -> bool:
    return countries >= settings.region_min_countries or (
        down > 0 and _at_least(down, total, settings.region_min_ratio)
    )


def _vantage_up(failing: int, canaries: int, settings: OutageSettings) -> bool:
    return not _at_least(failing, canaries, settings.vantage_canary_ratio)


def _verified_until(canaries: Sequence[TargetStatus], settings: OutageSettings) -> float | None:
    """The latest time T such that enough canaries were seen healthy at or after T.

    Enough: if every other canary failed, the vantage would still be up.
    None: not enough healthy canaries at all.
    """
    if not canaries:
        return math.inf
    # A canary vouches for the vantage from the time ALL its probes were last seen
    # passing: a fresh DNS answer must not vouch for an HTTP result from before a cut.
    seen = sorted(
        (min(t.observed_at for t in s.probes.values()) for s in canaries if s.healthy),
        reverse=True,
    )
    for healthy, observed_at in enumerate(seen, start=1):
        if _vantage_up(len(canaries) - healthy, len(canaries), settings):
            return observed_at
    return None


def _reported(status: TargetStatus, vantage_up: bool, verified_until: float | None) -> TargetState:
    if not vantage_up or status.blind:
        return TargetState.UNKNOWN
    if status.state is TargetState.DOWN and (
        verified_until is None or status.since is None or status.since > verified_until
    ):
        return TargetState.UNKNOWN
    return status.state


@dataclass(frozen=True, slots=True)
class _Finding:
    """An outage that holds in this step."""

    scope: Scope
    country: str | None
    target: str | None
    affected: frozenset[str]
    started_at: float


class _Ledger:
    """Reconciles open incidents with this step's findings; collects the changes."""

    def __init__(
        self,
        open_incidents: Iterable[Incident],
        statuses: Mapping[str, TargetStatus],
        infra: Mapping[str, TargetInfra],
        now: float,
    ) -> None:
        self.previous: dict[tuple[Scope, str], Incident] = {}
        for incident in sorted(open_incidents, key=lambda i: (i.started_at, i.id)):
            if incident.is_open:
                self.previous.setdefault((incident.scope, incident.key), incident)
        self.statuses = statuses
        self.infra = infra
        self.now = now
        self.open: list[Incident] = []
        self.opened: list[Incident] = []
        self.updated: list[Incident] = []
        self.closed: list[Incident] = []

    def is_open(self, scope: Scope, key: str) -> bool:
        return (scope, key) in self.previous

    def carry(self, scope: Scope, key: str) -> None:
        """Keep an open incident as it is (not re-evaluated)."""
        self.open.append(self.previous[(scope, key)])

    def close(self, scope: Scope, key: str) -> None:
        self.closed.append(replace(self.previous[(scope, key)], ended_at=self.now))

    def record(self, finding: _Finding) -> None:
        """Open an incident for `finding`, or grow the one already open."""
        key = incident_key(finding.scope, finding.country, finding.target)
        current = self.previous.get((finding.scope, key))
        reason = dominant_reason(self.statuses[n].reason for n in sorted(finding.affected))
        if current is None:
            affected = tuple(sorted(finding.affected))
            incident = Incident(
                id=incident_id(finding.scope, key, finding.started_at),
                scope=finding.scope,
                country=finding.country,
                target=finding.target,
                started_at=finding.started_at,
                ended_at=None,
                affected=affected,
                dominant_reason=reason,
                hints=shared_infrastructure(affected, self.infra),
            )
            self.opened.append(incident)
            self.open.append(incident)
            return
        affected = tuple(sorted(set(current.affected) | finding.affected))
        grown = replace(
            current,
            affected=affected,
            dominant_reason=reason or current.dominant_reason,
            hints=shared_infrastructure(affected, self.infra),
        )
        if grown != current:
            self.updated.append(grown)
        self.open.append(grown)

    def settle(self, scope: Scope, key: str, finding: _Finding | None, keep: bool) -> None:
        """The whole life cycle of one incident key, in one place."""
        if finding is not None:
            self.record(finding)
        elif self.is_open(scope, key):
            if keep:
                self.carry(scope, key)
            else:
                self.close(scope, key)


def assess(
    *,
    targets: Sequence[Target],
    canaries: Sequence[Canary],
    statuses: Mapping[str, TargetStatus],
    infra: Mapping[str, TargetInfra],
    open_incidents: Iterable[Incident],
    settings: OutageSettings,
    now: float,
) -> Assessment:
    """Judge one snapshot. Statuses missing from `statuses` count as never observed."""

    def status_of(name: str) -> TargetStatus:
        found = statuses.get(name)
        return found if found is not None else initial_status(name)

    canary_statuses = [status_of(c.name) for c in canaries]
    target_statuses = {t.name: status_of(t.name) for t in targets}
    failing_canaries = tuple(sorted(s.name for s in canary_statuses if s.state is TargetState.DOWN))
    vantage_up = _vantage_up(len(failing_canaries), len(canary_statuses), settings)
    verified_until = _verified_until(canary_statuses, settings)
    states = {
        name: _reported(status, vantage_up, verified_until)
        for name, status in target_statuses.items()
    }
    unverified = vantage_up and any(
        s.state is TargetState.DOWN and not s.blind and states[n] is TargetState.UNKNOWN
        for n, s in target_statuses.items()
    )

    by_country: dict[str, list[Target]] = {}
    for target in targets:
        by_country.setdefault(target.country, []).append(target)

    ledger = _Ledger(
        open_incidents,
        {**target_statuses, **{s.name: s for s in canary_statuses}},
        infra,
        now,
    )
    in_outage: set[str] = set()
    region_outage = False
    if vantage_up:
        proven, in_outage = _judge_targets_and_countries(
            ledger, targets, by_country, states, settings
        )
        region_outage = _judge_region(ledger, states, proven, in_outage, settings, now)
        ledger.settle(Scope.VANTAGE, Scope.VANTAGE.value, None, keep=False)
    else:
        # Blind: nothing is declared, nothing is re-evaluated, nothing is closed.
        for scope, key in ledger.previous:
            if scope is not Scope.VANTAGE:
                ledger.carry(scope, key)
        ledger.record(
            _Finding(Scope.VANTAGE, None, None, frozenset(failing_canaries), started_at=now)
        )

    summaries = []
    for country, members in sorted(by_country.items()):
        counts = Counter(states[t.name] for t in members)
        summaries.append(
            CountrySummary(
                country=country,
                up=counts[TargetState.UP],
                down=counts[TargetState.DOWN],
                unknown=counts[TargetState.UNKNOWN],
                in_outage=country in in_outage,
            )
        )

    def ordered(incidents: list[Incident]) -> tuple[Incident, ...]:
        return tuple(sorted(incidents, key=lambda i: (i.started_at, i.id)))

    return Assessment(
        at=now,
        vantage_up=vantage_up,
        failing_canaries=failing_canaries,
        states=MappingProxyType(states),
        countries=tuple(summaries),
        region_outage=region_outage,
        incidents=ordered(ledger.open),
        opened=ordered(ledger.opened),
        updated=ordered(ledger.updated),
        closed=ordered(ledger.closed),
        vantage_check_wanted=unverified,
    )


def _judge_targets_and_countries(
    ledger: _Ledger,
    targets: Sequence[Target],
    by_country: Mapping[str, Sequence[Target]],
    states: Mapping[str, TargetState],
    settings: OutageSettings,
) -> tuple[set[str], set[str]]:
    """Target and country incidents.

    Returns the countries whose outage is proven in this step, and those in
    outage at all (proven, or kept open because unknown targets might be down).
    """
    for target in targets:
        since = ledger.statuses[target.name].since
        finding = None
        if states[target.name] is TargetState.DOWN and since is not None:
            finding = _Finding(
                Scope.TARGET, target.country, target.name, frozenset({target.name}), since
            )
        keep = states[target.name] is TargetState.UNKNOWN
        ledger.settle(Scope.TARGET, target.name, finding, keep)

    proven: set[str] = set()
    in_outage: set[str] = set()
    for country, members in by_country.items():
        failing = frozenset(t.name for t in members if states[t.name] is TargetState.DOWN)
        unknown = sum(states[t.name] is TargetState.UNKNOWN for t in members)
        country_finding = None
        if _country_rule(len(failing), len(members), settings):
            country_finding = _Finding(Scope.COUNTRY, country, None, failing, ledger.now)
        keep = _country_rule(len(failing) + unknown, len(members), settings)
        ledger.settle(Scope.COUNTRY, country, country_finding, keep)
        if country_finding is not None:
            proven.add(country)
        if country_finding is not None or (keep and ledger.is_open(Scope.COUNTRY, country)):
            in_outage.add(country)

    # Incidents about targets or countries no longer configured end now.
    configured = {(Scope.TARGET, t.name) for t in targets} | {
        (Scope.COUNTRY, c) for c in by_country
    }
    for scope, key in ledger.previous:
        if scope in (Scope.TARGET, Scope.COUNTRY) and (scope, key) not in configured:
            ledger.close(scope, key)
    return proven, in_outage


def _judge_region(
    ledger: _Ledger,
    states: Mapping[str, TargetState],
    proven: set[str],
    in_outage: set[str],
    settings: OutageSettings,
    now: float,
) -> bool:
    """The region incident: opened on proven outages only, kept while not disproven."""
    down = frozenset(n for n, s in states.items() if s is TargetState.DOWN)
    unknown = sum(s is TargetState.UNKNOWN for s in states.values())
    finding = None
    if _region_rule(len(proven), len(down), len(states), settings):
        finding = _Finding(Scope.REGION, None, None, down, now)
    keep = _region_rule(len(in_outage), len(down) + unknown, len(states), settings)
    key = Scope.REGION.value
    ledger.settle(Scope.REGION, key, finding, keep)
    return finding is not None or (keep and ledger.is_open(Scope.REGION, key))
