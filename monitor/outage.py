"""Outage vocabulary and rules: incidents, shared-infrastructure hints, the thresholds. Pure.

The judging itself happens in `monitor.core.step`, event by event; this module
holds what it judges with: the rule functions (`country_rule`, `region_rule`,
`uplink_ok`), `Incident` and its id, `dominant_reason`, and
`shared_infrastructure` (what the failing targets run on in common, learned
from results by `learn_infra`).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from monitor.hints import hint_sentence
from monitor.settings import OutageSettings
from probes.results import ProbeResult, Reason

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
    # Dotted quads without ipaddress: it took 68 µs a call, on every DNS result (bench.core_step).
    octets = address.split(".")
    if len(octets) == 4 and all(
        o.isdigit() and len(o) <= 3 and int(o) <= 255 and (o == "0" or o[0] != "0") for o in octets
    ):
        return f"{octets[0]}.{octets[1]}.{octets[2]}.0/{IPV4_PREFIX_LENGTH}"
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


@dataclass(frozen=True, slots=True)
class InfraHint:
    """`count` of the `of` affected targets share every one of `values`."""

    kind: HintKind
    values: tuple[str, ...]  # sorted
    count: int
    of: int

    @property
    def text(self) -> str:
        return hint_sentence(self.kind, self.values, self.count, self.of)


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
    maintenance: int = 0  # reported "maintenance": neither up nor down, out of availability

    @property
    def total(self) -> int:
        return self.up + self.down + self.unknown + self.maintenance

    @property
    def availability(self) -> float | None:
        """up / (up + down); None when nothing is known."""
        known = self.up + self.down
        return self.up / known if known else None


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


def country_rule(down: int, total: int, settings: OutageSettings) -> bool:
    """At least country_min_ratio of its targets, and country_min_targets (or all), are down."""
    return (
        down > 0
        and _at_least(down, total, settings.country_min_ratio)
        and down >= min(settings.country_min_targets, total)
    )


def region_rule(countries: int, down: int, total: int, settings: OutageSettings) -> bool:
    """region_min_countries countries in outage, or region_min_ratio of all targets down."""
    return countries >= settings.region_min_countries or (
        down > 0 and _at_least(down, total, settings.region_min_ratio)
    )


def uplink_ok(failing: int, canaries: int, settings: OutageSettings) -> bool:
    """Fewer than vantage_canary_ratio of the canaries fail (always, with no canaries)."""
    return not _at_least(failing, canaries, settings.vantage_canary_ratio)


def learn_infra(infra: TargetInfra, result: ProbeResult) -> TargetInfra:
    """What a target runs on, updated from one result; facts a result lacks are kept,
    so a failing target still counts with the name servers it had."""
    facts = result.facts
    if not (facts.nameservers or facts.addresses or facts.issuer):
        return infra
    seen = TargetInfra.from_facts(
        nameservers=facts.nameservers, addresses=facts.addresses, issuer=facts.issuer
    )
    learned = TargetInfra(
        nameservers=seen.nameservers or infra.nameservers,
        address_prefixes=seen.address_prefixes or infra.address_prefixes,
        issuer=seen.issuer or infra.issuer,
    )
    return infra if learned == infra else learned
