"""One suite for every dashboard Source: the same seeded scenario read through SQLite and
through Prometheus must come back in the same frames and to the same conclusions.

Each scenario is written to a history database through monitor.storage's writer
(tests/dashboard/seed.py) and, for the Prometheus source, served by the canned
Prometheus HTTP API as the metrics of the daemon that wrote it
(fake_prometheus.series_from_seed). The expectations come from the seed, never from
either source. What Prometheus does not keep (the failure log, incident hints,
single-target and vantage incidents, when a state began) is left to each source's own
tests (test_queries.py, test_prom.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest

from dashboard import queries
from dashboard.banner import VantageFacts
from dashboard.prom import PrometheusSource
from dashboard.source import (
    DAILY_COLUMNS,
    DETAIL_COLUMNS,
    FAILURE_COLUMNS,
    INCIDENT_COLUMNS,
    PHASE_COLUMNS,
    SPARKLINE_COLUMNS,
    STATUS_COLUMNS,
    TABLE_COLUMNS,
    UPTIME_COLUMNS,
    UPTIME_WINDOWS,
    Source,
    utc_day,
)
from monitor.outage import Scope
from monitor.state import TargetState
from probes.results import ProbeResult, TlsDetails
from tests.dashboard.conftest import Seeded
from tests.dashboard.fake_prometheus import FakePrometheus, series_from_seed, serve
from tests.dashboard.seed import (
    AWAITING_TARGET,
    SINGLE_DOWN_TARGET,
    albanian_down,
    availability,
    reported_states,
)

SCENARIOS = ("albania", "vantage_down", "unseen")
KINDS = ("sqlite", "prometheus")


@dataclass(frozen=True)
class Case:
    source: Source
    data: Seeded

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.data.now, UTC)

    def results(self, target: str, probe: str) -> list[ProbeResult]:
        return [r for name, r in self.data.seed.probes if name == target and r.kind == probe]


@pytest.fixture(
    params=[(kind, scenario) for scenario in SCENARIOS for kind in KINDS],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def case(request: pytest.FixtureRequest, seeded: Callable[[str], Seeded]) -> Iterator[Case]:
    """A SqliteSource over a seeded history, or a PrometheusSource over the same scenario."""
    kind, scenario = request.param
    data = seeded(scenario)
    if kind == "sqlite":
        yield Case(data.source, data)
        return
    with serve(FakePrometheus(series_from_seed(data.seed, data.now))) as fake:
        yield Case(PrometheusSource(fake.url, timeout_s=5.0), data)


def nan_or(value: Any) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def same(got: Any, expected: float | None, tolerance: float) -> bool:
    """Both "no data", or both numbers within `tolerance`."""
    got_value = nan_or(got)
    if expected is None:
        return math.isnan(got_value)
    return not math.isnan(got_value) and abs(got_value - expected) <= tolerance


# --- the frames ---------------------------------------------------------------------------


def test_every_method_returns_its_columns(case: Case) -> None:
    source, now = case.source, case.now
    target = SINGLE_DOWN_TARGET
    frames = {
        "target_status": (source.target_status(), STATUS_COLUMNS),
        "target_table": (source.target_table(now), TABLE_COLUMNS),
        "open_incidents": (source.open_incidents(), INCIDENT_COLUMNS),
        "incidents_since": (source.incidents_since(now - timedelta(days=7)), INCIDENT_COLUMNS),
        "latency_sparklines": (source.latency_sparklines(10), SPARKLINE_COLUMNS),
        "target_phases": (
            source.target_phases(target, now - timedelta(hours=1), now),
            PHASE_COLUMNS,
        ),
        "target_uptime": (source.target_uptime(target, now), UPTIME_COLUMNS),
        "target_failures": (source.target_failures(target, 5), FAILURE_COLUMNS),
        "target_details": (source.target_details(target), DETAIL_COLUMNS),
        "daily_availability": (
            source.daily_availability(now - timedelta(days=3), now),
            DAILY_COLUMNS,
        ),
    }
    for method, (frame, columns) in frames.items():
        assert list(frame.columns) == columns, method
    assert isinstance(source.vantage_status(), VantageFacts)
    assert source.caption().startswith("data: ")


# --- current state ------------------------------------------------------------------------


def test_who_is_down_and_why(case: Case) -> None:
    status = case.source.target_status()
    expected = {name: state.value for name, state in reported_states(case.data.seed).items()}
    assert dict(zip(status["target"], status["state"], strict=True)) == expected
    reasons = {
        row.name: row.status.reason.value
        for row in case.data.seed.rows
        if row.reported is TargetState.DOWN
        and row.status.reason is not None
        and row.name in expected
    }
    down = status[status["state"] == "down"]
    assert dict(zip(down["target"], down["reason"], strict=True)) == reasons
    countries = {t.name: t.country for t in case.data.seed.targets}
    assert dict(zip(status["target"], status["country"], strict=True)) == countries

    summary = queries.summarize_countries(status).set_index("country")
    states = reported_states(case.data.seed)
    for country in sorted({t.country for t in case.data.seed.targets}):
        mine = [states[t.name] for t in case.data.seed.targets if t.country == country]
        up, down_count = mine.count(TargetState.UP), mine.count(TargetState.DOWN)
        row = summary.loc[country]
        assert (row["up"], row["down"], row["total"]) == (up, down_count, len(mine))
        # availability is a number exactly when some target's state is known
        known = up + down_count
        assert same(row["availability"], up / known if known else None, 1e-9), country


def test_the_monitor_is_offline_exactly_when_the_seed_says(case: Case) -> None:
    vantage = case.source.vantage_status()
    blind = any(i.scope is Scope.VANTAGE and i.is_open for i in case.data.seed.incidents)
    assert vantage.up is not blind
    assert vantage.last_update is not None
    assert abs((vantage.last_update - case.now).total_seconds()) < 2


def test_the_table_has_each_targets_newest_facts(case: Case) -> None:
    table = case.source.target_table(case.now).set_index("target")
    assert set(table.index) == {t.name for t in case.data.seed.targets}
    for target in case.data.seed.targets:
        row = table.loc[target.name]
        http = case.results(target.name, "http")
        response = http[-1].duration_s if http and http[-1].ok else None
        assert same(row["response_s"], response, 1e-9), target.name
        tls = case.results(target.name, "tls")
        days_left = None
        if tls and isinstance(tls[-1].details, TlsDetails) and tls[-1].details.earliest_expiry:
            days_left = (tls[-1].details.earliest_expiry - case.data.now) / 86400.0
        assert same(row["tls_days_left"], days_left, 1e-6), target.name
        dns = case.results(target.name, "dns")
        signed = dns[-1].details.dnssec.signed if dns else None  # type: ignore[union-attr]
        assert row["dnssec_signed"] == signed, target.name


def test_sparklines_end_with_the_newest_success(case: Case) -> None:
    lines = case.source.latency_sparklines(10)
    drawn = {t: v for t, v in zip(lines["target"], lines["latency_ms"], strict=True) if v}
    newest = {}
    for target in case.data.seed.targets:
        succeeded = [r for r in case.results(target.name, "http") if r.ok]
        if succeeded:
            newest[target.name] = round(succeeded[-1].duration_s * 1000, 1)
    assert set(drawn) == set(newest)
    for target, values in drawn.items():
        assert values[-1] == pytest.approx(newest[target], abs=0.05)


# --- incidents ----------------------------------------------------------------------------


def outages(frame: pd.DataFrame) -> dict[tuple[str, str], bool]:
    """(scope, country) -> still open, for the country and region incidents."""
    wide = frame[frame["scope"].isin(["country", "region"])]
    return {
        (str(scope), str(country or "")): bool(pd.isna(ended))
        for scope, country, ended in zip(
            wide["scope"], wide["country"], wide["ended_at"], strict=True
        )
    }


def test_open_outages_and_who_they_affect(case: Case) -> None:
    seed = case.data.seed
    frame = case.source.open_incidents()
    expected = [i for i in seed.incidents if i.is_open and i.scope in (Scope.COUNTRY, Scope.REGION)]
    assert outages(frame) == {(i.scope.value, i.country or ""): True for i in expected}
    for incident in expected:
        row = frame[frame["country"] == incident.country].iloc[0]
        assert set(row["affected"]) == set(incident.affected)
        assert row["affected_count"] == len(incident.affected)
        assert row["dominant_reason"] == incident.dominant_reason.value  # type: ignore[union-attr]
        assert abs(row["started_at"].timestamp() - incident.started_at) <= 61
    if any(i.country == "AL" for i in expected):
        (facts,) = queries.outage_facts(case.source.target_status(), frame)
        assert (facts.country, facts.down) == ("AL", len(albanian_down(seed.targets)))


def test_outages_of_the_last_week(case: Case) -> None:
    week = case.source.incidents_since(case.now - timedelta(days=7))
    expected = {
        (i.scope.value, i.country or ""): i.is_open
        for i in case.data.seed.incidents
        if i.scope in (Scope.COUNTRY, Scope.REGION)
    }
    assert outages(week) == expected


# --- one target ---------------------------------------------------------------------------


def test_uptime_is_a_number_exactly_when_something_is_known(case: Case) -> None:
    targets = [SINGLE_DOWN_TARGET, AWAITING_TARGET, *(t.name for t in case.data.seed.targets[:3])]
    targets += [t.name for t in case.data.seed.targets if t.country == "XK"][:1]
    for target in targets:
        uptime = case.source.target_uptime(target, case.now).set_index("window")
        for label, span in UPTIME_WINDOWS:
            end = case.data.now
            expected = availability(case.data.seed, [target], end - span.total_seconds(), end, end)
            # Prometheus evaluates at its own clock, seconds after the seed's now
            assert same(uptime.loc[label, "uptime"], expected, 0.01), (target, label)


def test_phases_only_where_http_succeeded(case: Case) -> None:
    now = case.now
    for target in (SINGLE_DOWN_TARGET, albanian_down(case.data.seed.targets)[0].name):
        phases = case.source.target_phases(target, now - timedelta(hours=1), now)
        succeeded = [r for r in case.results(target, "http") if r.ok]
        expected = set().union(*(r.phases for r in succeeded)) if succeeded else set()
        assert set(phases["phase"]) == expected, target


def test_failures_listed_are_the_targets_own_newest_first(case: Case) -> None:
    target = albanian_down(case.data.seed.targets)[0].name
    failures = case.source.target_failures(target, 5)
    seeded = {
        (round(r.started_at, 3), r.kind.value, r.reason.value if r.reason else None)
        for name, r in case.data.seed.probes
        if name == target and not r.ok
    }
    listed = {
        (round(t.timestamp(), 3), probe, reason)
        for t, probe, reason in zip(
            failures["time"], failures["probe"], failures["reason"], strict=True
        )
    }
    assert listed <= seeded
    assert failures["time"].is_monotonic_decreasing


def test_details_say_which_probes_succeeded(case: Case) -> None:
    for target in case.data.seed.targets[:3] + albanian_down(case.data.seed.targets)[:1]:
        details = case.source.target_details(target.name)
        results = {
            probe: value == "ok"
            for probe, field, value in details.itertuples(index=False)
            if field.startswith("result")
        }
        expected = {
            kind: found[-1].ok
            for kind in ("tls", "dns", "http")
            if (found := case.results(target.name, kind))
        }
        assert results == expected, target.name


# --- availability per day -----------------------------------------------------------------


def test_availability_per_country_and_day(case: Case) -> None:
    seed, now = case.data.seed, case.now
    daily = case.source.daily_availability(now - timedelta(days=3), now)
    got = {(d, c): a for d, c, a in daily.itertuples(index=False)}
    days = pd.date_range(utc_day(now - timedelta(days=3)), utc_day(now), freq="D", tz=UTC)
    assert {d for d, _ in got} == set(days)
    for day in days:
        for country in sorted({t.country for t in seed.targets}):
            names = [t.name for t in seed.targets if t.country == country]
            start = day.timestamp()
            expected = availability(seed, names, start, start + 86400.0, case.data.now)
            assert same(got.get((day, country)), expected, 1e-6), (day, country)
