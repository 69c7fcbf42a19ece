"""The query layer on seeded databases, without Streamlit.

Expectations come from the seed itself (what was written through monitor.storage's
writer) or from a deliberately simple oracle, never from the code under test.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from dashboard import queries
from dashboard.source import (
    DAILY_COLUMNS,
    INCIDENT_COLUMNS,
    PHASE_COLUMNS,
    STATUS_COLUMNS,
    TABLE_COLUMNS,
    UPTIME_WINDOWS,
    SourceError,
    utc_day,
)
from monitor.outage import Incident, Scope
from monitor.settings import Target
from monitor.state import TargetState, TargetStatus, Transition
from monitor.storage import MIGRATIONS, StatusRow, migrate
from probes.results import Reason, certificate_name
from tests.dashboard.conftest import Seeded
from tests.dashboard.seed import (
    AL_NAMESERVERS,
    AWAITING_TARGET,
    DAY,
    HTTP_SAMPLES,
    SINGLE_DOWN_TARGET,
    VANTAGE_DOWN_AGE_S,
    albanian_down,
    counts_by_country,
    reported_states,
    seed_targets,
    tls_days_left,
    up_down_seconds,
    write_history,
)

Get = Callable[[str], Seeded]


def at(seeded: Seeded) -> datetime:
    return datetime.fromtimestamp(seeded.now, UTC)


def index_of(name: str) -> int:
    return [t.name for t in seed_targets()].index(name)


# --- current state ------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["normal", "albania", "vantage_down"])
def test_status_has_every_target_with_its_reported_state(seeded: Get, scenario: str) -> None:
    data = seeded(scenario)
    status = data.source.target_status()
    assert list(status.columns) == STATUS_COLUMNS
    expected = {name: state.value for name, state in reported_states(data.seed).items()}
    assert set(status["target"]) == {t.name for t in data.seed.targets}  # no canaries
    assert dict(zip(status["target"], status["state"], strict=True)) == expected
    # A reason only with 'down'; a since only where it is the reported state's.
    down = status["state"] == "down"
    assert status.loc[down, "reason"].notna().all() and status.loc[~down, "reason"].isna().all()


def test_a_failure_awaiting_the_canaries_is_unknown_not_down(seeded: Get) -> None:
    data = seeded("normal")
    row = data.source.target_status().set_index("target").loc[AWAITING_TARGET]
    confirmed = next(r.status for r in data.seed.rows if r.name == AWAITING_TARGET)
    assert confirmed.state is TargetState.DOWN  # what a restart restores, not what is shown
    assert row["state"] == "unknown" and pd.isna(row["reason"])
    assert pd.isna(row["since"])  # the confirmed failure's since is not the unknown's
    single = data.source.target_status().set_index("target").loc[SINGLE_DOWN_TARGET]
    assert (single["state"], single["reason"]) == ("down", "http_status")
    assert single["since"].timestamp() == pytest.approx(data.now - 3 * 3600, abs=1e-3)


@pytest.mark.parametrize("scenario", ["normal", "albania"])
def test_country_summary_matches_the_seed(seeded: Get, scenario: str) -> None:
    data = seeded(scenario)
    summary = queries.summarize_countries(data.source.target_status()).set_index("country")
    for country, down, total in counts_by_country(data.seed):
        assert summary.loc[country, "down"] == down
        assert summary.loc[country, "total"] == total
        assert summary.loc[country, "availability"] == pytest.approx((total - down) / total)


def test_vantage_up_with_fresh_data(seeded: Get) -> None:
    data = seeded("normal")
    vantage = data.source.vantage_status()
    assert vantage.up
    assert vantage.canaries_total == 2 and vantage.canaries_failing == 0
    assert vantage.last_update is not None
    assert abs((vantage.last_update - at(data)).total_seconds()) < 1


def test_vantage_down_comes_from_the_open_vantage_incident(seeded: Get) -> None:
    data = seeded("vantage_down")
    vantage = data.source.vantage_status()
    assert not vantage.up
    assert vantage.since is not None
    assert vantage.since.timestamp() == pytest.approx(data.now - VANTAGE_DOWN_AGE_S, abs=1e-3)
    assert (vantage.canaries_failing, vantage.canaries_total) == (2, 2)


# --- incidents ----------------------------------------------------------------------------


def test_open_incidents_of_the_albanian_outage(seeded: Get) -> None:
    data = seeded("albania")
    incidents = data.source.open_incidents()
    assert list(incidents.columns) == INCIDENT_COLUMNS
    assert list(incidents["scope"]) == ["country", "target"]  # most serious first
    albania = incidents.iloc[0]
    down = sorted(t.name for t in albanian_down(data.seed.targets))
    assert albania["country"] == "AL"
    assert list(albania["affected"]) == down
    assert albania["affected_count"] == len(down)
    assert albania["dominant_reason"] == "connect_timeout"
    compact = "/".join(ns.split(".")[0] for ns in AL_NAMESERVERS) + ".akshi.gov.al"
    assert albania["hint"] == f"all share name servers {compact}"
    assert pd.isna(incidents.iloc[1]["hint"])


def test_outage_facts_join_incidents_with_live_counts(seeded: Get) -> None:
    data = seeded("albania")
    status = data.source.target_status()
    facts = queries.outage_facts(status, data.source.open_incidents())
    assert len(facts) == 1  # a single-target incident is no outage
    (albania,) = facts
    expected = {c: (d, t) for c, d, t in counts_by_country(data.seed)}["AL"]
    assert (albania.country, albania.down, albania.total) == ("AL", *expected)
    assert albania.since.timestamp() == pytest.approx(
        next(i.started_at for i in data.seed.incidents if i.country == "AL" and i.is_open),
        abs=1e-3,
    )


def test_incidents_since_includes_closed_ones_in_the_window(seeded: Get) -> None:
    data = seeded("normal")
    week = data.source.incidents_since(at(data) - timedelta(days=7))
    day = data.source.incidents_since(at(data) - timedelta(days=1))
    closed = [i.id for i in data.seed.incidents if not i.is_open]
    assert set(closed) <= set(week["incident_id"])
    assert not set(closed) & set(day["incident_id"])
    assert set(day["incident_id"]) == {i.id for i in data.seed.incidents if i.is_open}


def test_hint_shapes() -> None:
    listed = (
        '[{"kind": "nameservers", "values": ["a.ns.test", "b.ns.test"], "count": 4, "of": 4},'
        ' {"kind": "address_prefix", "values": ["192.0.2.0/24"], "count": 3, "of": 4}]'
    )
    assert queries.describe_hint(listed, "ignored") == (
        "all share name servers a/b.ns.test; 3 of 4 share address prefix 192.0.2.0/24"
    )
    assert queries.describe_hint(None, "stored text") == "stored text"
    assert queries.describe_hint("not json", None) is None
    # Storage writes the list shape only: anything else falls back to the stored text.
    assert queries.describe_hint('{"issuer": "CN=R3"}', "stored text") == "stored text"
    assert queries.describe_hint('[{"kind": "issuer", "values": []}]', None) is None


# --- the targets table --------------------------------------------------------------------


def test_target_table_facts(seeded: Get) -> None:
    data = seeded("albania")
    now = at(data)
    table = data.source.target_table(now).set_index("target")
    assert list(table.reset_index().columns) == TABLE_COLUMNS
    down = {t.name for t in albanian_down(data.seed.targets)}
    for target in data.seed.targets:
        row = table.loc[target.name]
        index = index_of(target.name)
        assert bool(row["dnssec_signed"]) == (index % 2 == 0)
        if target.name in down:
            # the last HTTP and TLS probes failed: no response time, no certificate seen
            assert math.isnan(row["response_s"]) and math.isnan(row["tls_days_left"])
            continue
        assert row["tls_days_left"] == pytest.approx(tls_days_left(index) - 300 / DAY, abs=1e-4)
        last_http = [
            r for name, r in data.seed.probes if name == target.name and r.kind.value == "http"
        ][-1]
        if last_http.ok:
            assert row["response_s"] == pytest.approx(last_http.duration_s)
        else:  # the target awaiting the canaries: its last HTTP probe failed
            assert math.isnan(row["response_s"]) and target.name == AWAITING_TARGET


def test_sparklines_are_the_last_successful_responses_oldest_first(seeded: Get) -> None:
    data = seeded("albania")
    lines = data.source.latency_sparklines(points=HTTP_SAMPLES - 2).set_index("target")
    survivor = next(t for t in data.seed.targets if t.country == "AL" and t.name not in
                    {d.name for d in albanian_down(data.seed.targets)})  # fmt: skip
    durations = [
        round(r.duration_s * 1000, 1)
        for name, r in data.seed.probes
        if name == survivor.name and r.kind.value == "http"
    ]
    assert lines.loc[survivor.name, "latency_ms"] == pytest.approx(durations[2:])
    failing = albanian_down(data.seed.targets)[0].name
    assert lines.loc[failing, "latency_ms"] == []


def test_phases_per_bucket(seeded: Get) -> None:
    data = seeded("normal")
    now = at(data)
    target = "portal-07.rs.test" if "portal-07.rs.test" in {t.name for t in data.seed.targets} \
        else data.seed.targets[1].name  # fmt: skip
    phases = data.source.target_phases(target, now - timedelta(hours=1), now)
    assert list(phases.columns) == PHASE_COLUMNS
    seeded_http = [r for name, r in data.seed.probes if name == target and r.kind.value == "http"]
    # one-minute buckets over an hour: one probe per bucket, so the means are the values
    assert len(phases) == sum(len(r.phases) for r in seeded_http)
    by_time = phases.groupby("time")["seconds"].sum().sort_index()
    assert list(by_time) == pytest.approx([sum(r.phases.values()) for r in seeded_http])


def test_failures_newest_first_with_reasons(seeded: Get) -> None:
    data = seeded("albania")
    target = albanian_down(data.seed.targets)[0].name
    failures = data.source.target_failures(target, limit=5)
    failed = sorted(
        (r for name, r in data.seed.probes if name == target and not r.ok),
        key=lambda r: r.started_at,
        reverse=True,
    )[:5]
    assert list(failures["probe"]) == [r.kind.value for r in failed]
    assert list(failures["reason"]) == [r.reason.value for r in failed if r.reason]
    assert failures["time"].is_monotonic_decreasing


def test_details_of_tls_and_dns(seeded: Get) -> None:
    data = seeded("albania")
    survivor = next(t for t in data.seed.targets if t.country == "AL").name
    details = data.source.target_details(survivor)
    fields = {(p, f): v for p, f, v in details.itertuples(index=False)}
    assert fields[("dns", "nameservers")] == ", ".join(AL_NAMESERVERS)
    assert fields[("tls", "issuer")] == "Test"  # the organisation, not the whole DN
    assert fields[("tls", "result")] == "ok"
    assert fields[("http", "status_code")] == "200"
    assert fields[("dns", "dnssec.status")] in ("secure", "insecure")


# --- availability over time ---------------------------------------------------------------


def test_uptime_windows_match_the_oracle(seeded: Get) -> None:
    data = seeded("normal")
    now = at(data)
    uptime = data.source.target_uptime(SINGLE_DOWN_TARGET, now).set_index("window")
    mine = [t for t in data.seed.transitions if t.target == SINGLE_DOWN_TARGET]
    for label, span in UPTIME_WINDOWS:
        up, down = up_down_seconds(mine, data.now - span.total_seconds(), data.now)
        assert uptime.loc[label, "uptime"] == pytest.approx(up / (up + down), abs=1e-6)
        assert uptime.loc[label, "down_s"] == pytest.approx(down, abs=1e-3)


@pytest.mark.parametrize("scenario", ["normal", "albania"])
def test_daily_availability_matches_the_oracle(seeded: Get, scenario: str) -> None:
    data = seeded(scenario)
    now = at(data)
    daily = data.source.daily_availability(now - timedelta(days=9), now)
    assert list(daily.columns) == DAILY_COLUMNS
    days = sorted(daily["day"].unique())
    assert len(days) == 10 and days[-1] == utc_day(now)
    country_of = {t.name: t.country for t in data.seed.targets}
    for day in days:
        start = day.timestamp()
        end = min(start + DAY, data.now)
        for country in ("AL", "RS", "MK"):
            totals = [0.0, 0.0]
            for name in (n for n, c in country_of.items() if c == country):
                mine = [t for t in data.seed.transitions if t.target == name]
                up, down = up_down_seconds(mine, start, end)
                totals[0] += up
                totals[1] += down
            row = daily[(daily["day"] == day) & (daily["country"] == country)]
            expected = totals[0] / (totals[0] + totals[1])
            assert row["availability"].item() == pytest.approx(expected, abs=1e-9)


def test_segments_before_the_first_transition_and_for_new_targets() -> None:
    status = pd.DataFrame(
        {"target": ["a", "b", "c"], "state": ["up", "down", "up"], "since": [50.0, 0.0, 150.0]}
    )
    transitions = pd.DataFrame(
        {"target": ["a", "a"], "old_state": ["down", "up"], "new_state": ["up", "down"],
         "at": [120.0, 160.0]}
    )  # fmt: skip
    segments = queries.state_segments(status, transitions, 100.0, 200.0)
    got = sorted(segments.itertuples(index=False, name=None), key=lambda r: (r[0], r[2]))
    assert got == [
        ("a", "down", 100.0, 120.0),  # its first transition says what it was before
        ("a", "up", 120.0, 160.0),
        ("a", "down", 160.0, 200.0),
        ("b", "down", 100.0, 200.0),
        ("c", "up", 150.0, 200.0),  # unknown before it was first seen
    ]


# --- the monitor's own blindness and unknown time ---------------------------------------

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)  # noon: the windows below stay within a day
T = NOW.timestamp()
UP, DOWN, UNKNOWN = TargetState.UP, TargetState.DOWN, TargetState.UNKNOWN


def site(name: str, country: str) -> Target:
    return Target(name=name, url=f"https://{name}/", country=country, sector="portal")


def row(name: str, state: TargetState, since: float | None, reported: TargetState) -> StatusRow:
    reason = Reason.CONNECT_TIMEOUT if state is DOWN else None
    return StatusRow(TargetStatus(name, state, since, reason), reported, None)


def vantage(started_at: float, ended_at: float | None) -> Incident:
    return Incident(
        id=f"vantage:vantage:{int(started_at)}",
        scope=Scope.VANTAGE,
        country=None,
        target=None,
        started_at=started_at,
        ended_at=ended_at,
        affected=("canary-1.test", "canary-2.test"),
        dominant_reason=Reason.NETWORK_UNREACHABLE,
    )


@pytest.mark.parametrize("incident", ["closed", "open"])
def test_time_in_a_vantage_incident_counts_neither_up_nor_down(
    tmp_path: Path, incident: str
) -> None:
    """Up for 10 days except 10 minutes in which the monitor was blind, though its
    transitions said down: availability 100 %."""
    start = T - 10 * DAY
    blind_from = T - 2 * 3600.0 if incident == "closed" else T - 600.0
    blind_until = blind_from + 600.0
    transitions = [
        Transition("a.al.test", UNKNOWN, UP, start, None),
        Transition("a.al.test", UP, DOWN, blind_from, Reason.CONNECT_TIMEOUT),
    ]
    if incident == "closed":
        transitions.append(Transition("a.al.test", DOWN, UP, blind_until, None))
        status = row("a.al.test", UP, blind_until, UP)
    else:
        status = row("a.al.test", DOWN, blind_from, DOWN)
    sources = {}
    for with_incident in (True, False):
        path = tmp_path / f"{with_incident}.sqlite3"
        incidents = [vantage(blind_from, blind_until if incident == "closed" else None)]
        write_history(
            path,
            T,
            [site("a.al.test", "AL")],
            transitions,
            [status],
            incidents if with_incident else [],
        )
        sources[with_incident] = queries.SqliteSource(str(path))

    uptime = sources[True].target_uptime("a.al.test", NOW).set_index("window")
    for label, span in UPTIME_WINDOWS:
        known = min(span.total_seconds(), T - start) - 600.0
        assert uptime.loc[label, "uptime"] == 1.0
        assert uptime.loc[label, "down_s"] == 0.0
        assert uptime.loc[label, "known_s"] == pytest.approx(known)
    daily = sources[True].daily_availability(NOW - timedelta(days=3), NOW)
    assert list(daily.loc[daily["country"] == "AL", "availability"]) == [1.0] * 4

    # The same history without the incident: those 10 minutes are down.
    control = sources[False].target_uptime("a.al.test", NOW).set_index("window")
    assert control.loc["24 h", "down_s"] == pytest.approx(600.0)
    today = sources[False].daily_availability(NOW, NOW)
    assert today.set_index("country").loc["AL", "availability"] == pytest.approx(
        1 - 600.0 / (12 * 3600.0)
    )


def test_a_country_whose_state_was_never_known_has_no_availability(tmp_path: Path) -> None:
    """Not 0 %: Kosovo's targets were unknown all along, and Montenegro's one target was
    'down' only while the monitor itself was blind."""
    start = T - 10 * DAY
    targets = [
        site("a.al.test", "AL"),
        site("x1.xk.test", "XK"),
        site("x2.xk.test", "XK"),
        site("m.me.test", "ME"),
    ]
    transitions = [
        Transition("a.al.test", UNKNOWN, UP, start, None),
        Transition("x2.xk.test", UNKNOWN, UNKNOWN, start, None),
        Transition("m.me.test", UNKNOWN, DOWN, T - 3 * DAY, Reason.CONNECT_TIMEOUT),
        Transition("m.me.test", DOWN, UNKNOWN, T - 3 * DAY + 3600.0, None),
    ]
    rows = [
        row("a.al.test", UP, start, UP),
        row("x1.xk.test", UNKNOWN, None, UNKNOWN),  # never observed
        row("x2.xk.test", UNKNOWN, start, UNKNOWN),
        # confirmed down long ago, never verified: reported unknown ever since
        row("m.me.test", DOWN, T - 3 * DAY, UNKNOWN),
    ]
    path = tmp_path / "unknown.sqlite3"
    write_history(path, T, targets, transitions, rows, [vantage(T - 3 * DAY, T - 3 * DAY + 3600)])
    source = queries.SqliteSource(str(path))

    daily = source.daily_availability(NOW - timedelta(days=6), NOW)
    by_country = daily.groupby("country")["availability"]
    assert by_country.apply(lambda s: s.isna().all()).to_dict() == {
        "AL": False,
        "ME": True,
        "XK": True,
    }
    assert list(daily.loc[daily["country"] == "AL", "availability"]) == [1.0] * 7
    for name in ("x1.xk.test", "x2.xk.test", "m.me.test"):
        uptime = source.target_uptime(name, NOW)
        assert uptime["uptime"].isna().all() and (uptime["known_s"] == 0).all()
    summary = queries.summarize_countries(source.target_status()).set_index("country")
    assert summary.loc["AL", "availability"] == 1.0
    assert math.isnan(summary.loc["XK", "availability"])
    assert math.isnan(summary.loc["ME", "availability"])
    assert summary.loc["ME", "unknown"] == 1  # reported, though confirmed down


def test_blind_intervals_are_cut_out_of_segments() -> None:
    """without_blind against a simple oracle: per segment, second by second."""
    rng = random.Random(7)
    for _ in range(200):
        segments = pd.DataFrame(
            [
                ("t", "up", float(begin), float(begin + rng.randint(1, 40)))
                for begin in (rng.randint(0, 100) for _ in range(rng.randint(0, 6)))
            ],
            columns=["target", "state", "begin", "end"],
        )
        blind = [
            (float(b), float(b + rng.randint(-5, 30)))
            for b in (rng.randint(-10, 130) for _ in range(rng.randint(0, 5)))
        ]
        cut = queries.without_blind(segments, blind)
        assert list(cut.columns) == ["target", "state", "begin", "end"]
        assert (cut["end"] > cut["begin"]).all()
        seen = [
            (second, second + 1)
            for b, e in zip(segments["begin"], segments["end"], strict=True)
            for second in range(int(b), int(e))
            if not any(lo <= second and second + 1 <= hi for lo, hi in blind)
        ]
        covered = [
            (second, second + 1)
            for b, e in zip(cut["begin"], cut["end"], strict=True)
            for second in range(int(b), int(e))
        ]
        assert sorted(covered) == sorted(seen)


def test_a_version_1_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:1])
    conn.close()
    with pytest.raises(SourceError, match="older govwatch"):
        queries.SqliteSource(str(path)).target_status()


# --- the read-only connection -------------------------------------------------------------


def test_reads_do_not_wait_for_an_open_write_transaction(seeded: Get, tmp_path: Path) -> None:
    data = seeded("normal")
    writer = sqlite3.connect(data.path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE target_status SET state = 'down'")
        status = data.source.target_status()  # WAL: readers see the last commit
        committed = sum(d for _, d, _ in counts_by_country(data.seed))
        assert (status["state"] == "down").sum() == committed < len(status)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_the_dashboard_cannot_write(seeded: Get) -> None:
    data = seeded("normal")
    with data.source.connect() as conn, pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM target_status")


def test_a_missing_database_is_a_clear_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite3"
    with pytest.raises(SourceError, match="no such database"):
        queries.SqliteSource(str(missing)).target_status()
    assert not missing.exists()


def test_a_region_outage_lists_its_countries_and_keeps_its_hint() -> None:
    now = pd.Timestamp("2022-07-15 14:40", tz="UTC")
    status = pd.DataFrame(
        {
            "target": ["a1", "a2", "m1", "m2", "g1"],
            "country": ["AL", "AL", "ME", "ME", "GR"],
            "state": ["down", "down", "down", "up", "up"],
        }
    )
    incidents = pd.DataFrame(
        [
            ("region", None, now, pd.NaT, "connect_timeout", "3 of 3 share name server x"),
            ("country", "AL", now, pd.NaT, "connect_timeout", "all share name server x"),
            ("country", "ME", now, pd.NaT, "connect_timeout", None),
            ("country", "GR", now, now, "http_status", None),  # closed: no banner
        ],
        columns=["scope", "country", "started_at", "ended_at", "dominant_reason", "hint"],
    )
    region, albania, montenegro = queries.outage_facts(status, incidents)
    assert (region.scope, region.countries, region.down, region.total) == (
        "region",
        ("AL", "ME"),
        3,
        5,
    )
    assert region.hint == "3 of 3 share name server x" and albania.hint == "all share name server x"
    assert (montenegro.down, montenegro.total) == (1, 2)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("CN=R3,O=Let's Encrypt,C=US", "Let's Encrypt"),
        ("CN=Gov CA", "Gov CA"),
        ("O=Acme\\, Inc.,CN=x", "Acme, Inc."),
        ("C=US", "C=US"),  # neither an organisation nor a common name: as it is
        ("![p](http://127.0.0.1/p.png) x=1", "![p](http://127.0.0.1/p.png) x=1"),
    ],
)
def test_certificate_issuers_by_organisation_or_common_name(name: str, shown: str) -> None:
    assert certificate_name(name) == shown


def test_a_shared_issuer_hint_names_the_organisation() -> None:
    stored = [{"kind": "issuer", "values": ["CN=R3,O=Let's Encrypt"], "count": 3, "of": 3}]
    assert (
        queries.describe_hint(json.dumps(stored), None)
        == "all share certificate issuer Let's Encrypt"
    )
