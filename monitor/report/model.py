"""The availability report as data: `build_report(rows, start, end, now, countries)` turns
the rows `read_history` read into a frozen `Report`. Pure: no SQL, no clock; every
renderer (monitor.report.render) only formats a Report.

Definitions (the README's "Availability reports" states them for readers):

- time-weighted availability = up / (up + down) target-seconds in the period, from the
  transitions (monitor.availability). Unknown time, maintenance windows and the
  monitor's own blind time (its 'vantage' incidents) are left out and stated;
- an incident is a 'target' incident (the incidents table) active at any moment of the
  period; its duration runs from its start to its end (the period's end while open);
- longest outage: the longest such duration; MTTR: the mean duration of the incidents
  that ended within the period (open ones have not recovered yet);
- outages: 'region' and 'country' incidents, with their shared-infrastructure hints;
- posture: each target's newest TLS and DNS probe at or before the period's end.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd  # type: ignore[import-untyped]

from monitor.availability import (
    DOWN,
    MAINTENANCE,
    UNKNOWN,
    UP,
    merged_intervals,
    state_segments,
    without_blind,
)
from monitor.countries import country_name
from monitor.report.history import HistoryRows, IncidentRow, ProbeFacts, TargetRow
from monitor.storage import StoredSignal

DAY_S = 86400.0
TLS13 = "TLSv1.3"


@dataclass(frozen=True, slots=True)
class Figures:
    """Availability and incident figures of a target or a group of targets.

    Seconds are target-seconds within the period (a group sums its targets')."""

    up_seconds: float = 0.0
    down_seconds: float = 0.0
    unknown_seconds: float = 0.0  # 'unknown' outside the monitor's blind time
    blind_seconds: float = 0.0  # inside the monitor's 'vantage' incidents, whatever the state
    maintenance_seconds: float = 0.0  # in a maintenance window, outside blind time
    incidents: int = 0
    longest_outage_seconds: float | None = None
    mttr_seconds: float | None = None

    @property
    def availability_percent(self) -> float | None:
        known = self.up_seconds + self.down_seconds
        return None if known <= 0 else 100.0 * self.up_seconds / known


@dataclass(frozen=True, slots=True)
class Group:
    """A country, a sector or the region."""

    key: str  # country code, sector name, or 'region'
    name: str
    targets: int
    figures: Figures


@dataclass(frozen=True, slots=True)
class TargetIncident:
    id: str
    started_at: float
    ended_at: float | None  # None: still open at the period's end
    duration_seconds: float  # to ended_at, or to the period's end while open
    reason: str | None


@dataclass(frozen=True, slots=True)
class Posture:
    """A target's security posture at the period's end (its newest probes by then)."""

    certificate_valid: bool | None  # None: no TLS probe (http, or none run yet)
    tls_version: str | None
    dnssec_status: str | None  # 'secure' | 'insecure' | 'bogus' | 'indeterminate'
    dnssec_signed: bool | None
    nearest_expiry: float | None  # the earliest notAfter of leaf and chain
    days_to_expiry: float | None  # from the period's end; negative once expired

    @property
    def tls13(self) -> bool | None:
        return None if self.tls_version is None else self.tls_version == TLS13

    @property
    def dnssec_valid(self) -> bool | None:
        """Signed and validating ('secure'); None when the DNS probe said nothing."""
        if self.dnssec_status is None and self.dnssec_signed is None:
            return None
        return bool(self.dnssec_signed) and self.dnssec_status == "secure"


@dataclass(frozen=True, slots=True)
class TargetReport:
    name: str
    country: str
    sector: str
    active: bool
    figures: Figures
    incidents: tuple[TargetIncident, ...]
    posture: Posture


@dataclass(frozen=True, slots=True)
class Outage:
    """A region or country incident: many targets down together."""

    id: str
    scope: str  # 'region' | 'country'
    country: str | None
    started_at: float
    ended_at: float | None
    duration_seconds: float
    affected: tuple[str, ...]
    dominant_reason: str | None
    hint: str | None  # what the failing targets share (name servers, a /24, an issuer)


@dataclass(frozen=True, slots=True)
class BlindSpell:
    """A 'vantage' incident: the monitor itself could not see."""

    started_at: float
    ended_at: float | None
    duration_seconds: float  # within the period


@dataclass(frozen=True, slots=True)
class PostureSummary:
    targets: int
    with_tls: int  # targets with a TLS probe
    certificates_valid: int
    tls13: int
    dnssec_signed: int
    dnssec_valid: int
    nearest_expiry_target: str | None
    nearest_expiry: float | None
    days_to_nearest_expiry: float | None


@dataclass(frozen=True, slots=True)
class DailyAvailability:
    country: str
    day: str  # YYYY-MM-DD (UTC)
    availability_percent: float | None  # None: nothing known that day


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: float
    start: float
    end: float
    vantage: str
    countries_filter: tuple[str, ...]  # empty: every country
    blind_seconds: float  # wall-clock seconds of the period the monitor was blind
    maintenance_seconds: float  # target-seconds in maintenance windows (the region's)
    region: Group
    countries: tuple[Group, ...]
    sectors: tuple[Group, ...]
    targets: tuple[TargetReport, ...]
    outages: tuple[Outage, ...]  # region ones first, then countries, by start
    blind_spells: tuple[BlindSpell, ...]
    posture: PostureSummary
    daily: tuple[DailyAvailability, ...]  # per country and UTC day, for the charts
    tamper: tuple[StoredSignal, ...]  # raised by the period's end, not cleared before it


def build_report(
    rows: HistoryRows,
    start: float,
    end: float,
    now: float,
    countries: Collection[str] = (),
) -> Report:
    """The report for [start, end] of the targets in `countries` (every one when empty)."""
    wanted = set(countries)
    targets = [t for t in rows.targets if not wanted or t.country in wanted]
    # Inactive targets are reported only if they changed state in the period.
    changed = {t.target for t in rows.transitions}
    targets = [t for t in targets if t.active or t.name in changed]
    names = {t.name for t in targets}

    blind = merged_intervals(
        [
            (max(i.started_at, start), min(end if i.ended_at is None else i.ended_at, end))
            for i in rows.incidents
            if i.scope == "vantage"
        ]
    )
    seconds, daily_known = _seconds_by_target(rows, targets, start, end, blind)
    incidents = _target_incidents(rows.incidents, names, end)
    facts = {f.target: f for f in rows.facts}

    reports = tuple(
        TargetReport(
            name=t.name,
            country=t.country,
            sector=t.sector,
            active=t.active,
            figures=_figures([seconds[t.name]], incidents[t.name], start, end),
            incidents=tuple(incidents[t.name]),
            posture=_posture(facts.get(t.name), end),
        )
        for t in targets
    )

    def group(key: str, name: str, members: Sequence[TargetRow]) -> Group:
        return Group(
            key=key,
            name=name,
            targets=len(members),
            figures=_figures(
                [seconds[m.name] for m in members],
                [i for m in members for i in incidents[m.name]],
                start,
                end,
            ),
        )

    by_country: dict[str, list[TargetRow]] = defaultdict(list)
    by_sector: dict[str, list[TargetRow]] = defaultdict(list)
    for t in targets:
        by_country[t.country].append(t)
        by_sector[t.sector].append(t)
    region = group("region", "region", targets)

    outages = sorted(
        (
            _outage(i, end)
            for i in rows.incidents
            if i.scope == "region" or (i.scope == "country" and (not wanted or i.country in wanted))
        ),
        key=lambda o: (o.scope != "region", o.started_at, o.id),
    )
    spells = tuple(
        BlindSpell(
            i.started_at,
            i.ended_at,
            min(end if i.ended_at is None else i.ended_at, end) - max(i.started_at, start),
        )
        for i in rows.incidents
        if i.scope == "vantage"
    )
    country_of = {t.name: t.country for t in rows.targets}
    tamper = tuple(
        s
        for s in sorted(rows.signals, key=lambda s: (s.raised_at, s.id))
        if not wanted or (s.country or country_of.get(s.target)) in wanted
    )
    return Report(
        generated_at=now,
        start=start,
        end=end,
        vantage=rows.vantage,
        countries_filter=tuple(sorted(wanted)),
        blind_seconds=sum(b - a for a, b in blind),
        maintenance_seconds=region.figures.maintenance_seconds,
        region=region,
        countries=tuple(
            group(code, country_name(code), by_country[code]) for code in sorted(by_country)
        ),
        sectors=tuple(group(sector, sector, by_sector[sector]) for sector in sorted(by_sector)),
        targets=reports,
        outages=tuple(outages),
        blind_spells=spells,
        posture=_posture_summary(reports),
        daily=_daily(daily_known, sorted(by_country), start, end),
        tamper=tamper,
    )


# --- seconds per state -----------------------------------------------------------------


@dataclass(slots=True)
class _Seconds:
    up: float = 0.0
    down: float = 0.0
    unknown: float = 0.0
    blind: float = 0.0
    maintenance: float = 0.0


# (country, day index) -> [up seconds, down seconds]
_DailyKnown = dict[tuple[str, int], list[float]]


def _seconds_by_target(
    rows: HistoryRows,
    targets: Sequence[TargetRow],
    start: float,
    end: float,
    blind: Sequence[tuple[float, float]],
) -> tuple[dict[str, _Seconds], _DailyKnown]:
    """Per target, seconds in each state, and per country and day, up and down seconds."""
    names = {t.name for t in targets}
    state_after = {t.target: t.old_state for t in rows.next_transitions}
    status = pd.DataFrame(
        [
            {
                "target": t.name,
                # The state at the period's end: the one a later transition left, else now's.
                "state": state_after.get(t.name, t.state or UNKNOWN),
                "since": None if t.name in state_after else t.since,
            }
            for t in targets
        ],
        columns=["target", "state", "since"],
    )
    transitions = pd.DataFrame(
        [
            {"target": t.target, "old_state": t.old_state, "new_state": t.new_state, "at": t.at}
            for t in rows.transitions
            if t.target in names
        ],
        columns=["target", "old_state", "new_state", "at"],
    )
    every = state_segments(status, transitions, start, end)
    seen = without_blind(every, blind)
    seconds = {t.name: _Seconds() for t in targets}
    for target, _, begin, finish in _segment_rows(every):
        seconds[target].blind += finish - begin
    country = {t.name: t.country for t in targets}
    daily: _DailyKnown = defaultdict(lambda: [0.0, 0.0])
    first_day = _day_start(start)
    for target, state, begin, finish in _segment_rows(seen):
        length = finish - begin
        counts = seconds[target]
        counts.blind -= length  # what is left of `every` after `seen` is blind time
        if state == UP:
            counts.up += length
        elif state == DOWN:
            counts.down += length
        elif state == MAINTENANCE:
            counts.maintenance += length
        else:
            counts.unknown += length
        if state in (UP, DOWN):
            for day, part in _split_by_day(begin, finish, first_day):
                daily[(country[target], day)][0 if state == UP else 1] += part
    for counts in seconds.values():
        counts.blind = max(counts.blind, 0.0)  # float dust
    return seconds, daily


def _segment_rows(segments: pd.DataFrame) -> Iterable[tuple[str, str, float, float]]:
    """(target, state, begin, end) per segment as Python values: column lists, not
    itertuples (which costs ~10 us a row on arrow strings; 200,000 rows for 10,000 targets)."""
    return zip(
        segments["target"].astype(str).tolist(),
        segments["state"].astype(str).tolist(),
        segments["begin"].astype(float).tolist(),
        segments["end"].astype(float).tolist(),
        strict=True,
    )


def _day_start(moment: float) -> float:
    return math.floor(moment / DAY_S) * DAY_S  # UTC days: epoch days have no leap seconds


def _split_by_day(begin: float, end: float, first_day: float) -> Iterable[tuple[int, float]]:
    day = int((begin - first_day) // DAY_S)
    while begin < end:
        boundary = first_day + (day + 1) * DAY_S
        yield day, min(end, boundary) - begin
        begin = boundary
        day += 1


def _daily(
    known: _DailyKnown, countries: Sequence[str], start: float, end: float
) -> tuple[DailyAvailability, ...]:
    first_day = _day_start(start)
    days = max(1, math.ceil((end - first_day) / DAY_S))
    result = []
    for country in countries:
        for day in range(days):
            up, down = known.get((country, day), (0.0, 0.0))
            label = datetime.fromtimestamp(first_day + day * DAY_S, UTC).date().isoformat()
            percent = None if up + down <= 0 else 100.0 * up / (up + down)
            result.append(DailyAvailability(country, label, percent))
    return tuple(result)


# --- incidents -------------------------------------------------------------------------


def _target_incidents(
    incidents: Iterable[IncidentRow], names: Collection[str], end: float
) -> dict[str, list[TargetIncident]]:
    found: dict[str, list[TargetIncident]] = {name: [] for name in names}
    for i in incidents:
        if i.scope != "target" or i.target not in found:
            continue
        finish = end if i.ended_at is None or i.ended_at > end else i.ended_at
        found[i.target].append(
            TargetIncident(
                id=i.id,
                started_at=i.started_at,
                # One that ended after the period was still open at its end.
                ended_at=i.ended_at if i.ended_at is not None and i.ended_at <= end else None,
                duration_seconds=finish - i.started_at,
                reason=i.dominant_reason,
            )
        )
    return found


def _figures(
    parts: Sequence[_Seconds], incidents: Sequence[TargetIncident], start: float, end: float
) -> Figures:
    durations = [i.duration_seconds for i in incidents]
    recovered = [i.duration_seconds for i in incidents if i.ended_at is not None]
    return Figures(
        up_seconds=sum(p.up for p in parts),
        down_seconds=sum(p.down for p in parts),
        unknown_seconds=sum(p.unknown for p in parts),
        blind_seconds=sum(p.blind for p in parts),
        maintenance_seconds=sum(p.maintenance for p in parts),
        incidents=len(incidents),
        longest_outage_seconds=max(durations) if durations else None,
        mttr_seconds=sum(recovered) / len(recovered) if recovered else None,
    )


def _outage(i: IncidentRow, end: float) -> Outage:
    ended_at = i.ended_at if i.ended_at is not None and i.ended_at <= end else None
    return Outage(
        id=i.id,
        scope=i.scope,
        country=i.country,
        started_at=i.started_at,
        ended_at=ended_at,
        duration_seconds=(end if ended_at is None else ended_at) - i.started_at,
        affected=i.affected,
        dominant_reason=i.dominant_reason,
        hint=i.hint_text,
    )


# --- posture ---------------------------------------------------------------------------


def _posture(facts: ProbeFacts | None, end: float) -> Posture:
    if facts is None:
        return Posture(None, None, None, None, None, None)
    expiries = [e for e in (facts.tls_expiry, facts.tls_leaf_expiry) if e is not None]
    nearest = min(expiries) if expiries else None
    valid = None
    if facts.tls_ok is not None:
        valid = facts.tls_ok and (nearest is None or nearest > end)
    return Posture(
        certificate_valid=valid,
        tls_version=facts.tls_version,
        dnssec_status=facts.dnssec_status,
        dnssec_signed=facts.dnssec_signed,
        nearest_expiry=nearest,
        days_to_expiry=None if nearest is None else (nearest - end) / DAY_S,
    )


def _posture_summary(targets: Sequence[TargetReport]) -> PostureSummary:
    expiring = [t for t in targets if t.posture.nearest_expiry is not None]
    nearest = min(expiring, key=lambda t: (t.posture.nearest_expiry, t.name), default=None)
    return PostureSummary(
        targets=len(targets),
        with_tls=sum(t.posture.certificate_valid is not None for t in targets),
        certificates_valid=sum(bool(t.posture.certificate_valid) for t in targets),
        tls13=sum(bool(t.posture.tls13) for t in targets),
        dnssec_signed=sum(bool(t.posture.dnssec_signed) for t in targets),
        dnssec_valid=sum(bool(t.posture.dnssec_valid) for t in targets),
        nearest_expiry_target=None if nearest is None else nearest.name,
        nearest_expiry=None if nearest is None else nearest.posture.nearest_expiry,
        days_to_nearest_expiry=None if nearest is None else nearest.posture.days_to_expiry,
    )


def iso(moment: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with a Z, to the second."""
    if moment is None:
        return None
    return (
        datetime.fromtimestamp(moment, UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )
