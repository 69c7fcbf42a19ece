"""The Prometheus data source against a canned Prometheus HTTP API on 127.0.0.1.

Two vantages watch Albania and Serbia. Albania's outage is seen by both; one
Serbian target fails from one vantage only, which is a path problem, not down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import dashboard
from dashboard import prom, queries, ui
from dashboard.source import INCIDENT_COLUMNS, STATUS_COLUMNS, SourceError, utc_day
from tests.dashboard.fake_prometheus import (
    FakePrometheus,
    FakeSeries,
    Value,
    constant,
    serve,
    step_up,
    window,
)
from tests.dashboard.markup import shown

NOW = time.time()
AL_START = NOW - 40 * 60
MK_START, MK_END = NOW - 3 * 86400, NOW - 3 * 86400 + 7200
ALBANIA = ("e-albania.al", "akshi.gov.al", "parlament.al", "tatime.gov.al")
SERBIA = ("euprava.gov.rs", "rgz.gov.rs")
VANTAGES = ("sofia", "vienna")


def seconds_before(seconds: float) -> Value:
    """A timestamp `seconds` before the time the query is evaluated at."""
    return lambda at: at - seconds


def state(target: str, country: str, state: str, vantage: str, reason: str = "") -> FakeSeries:
    labels = {"target": target, "country": country, "sector": "portal", "state": state}
    labels |= {"reason": reason, "vantage": vantage}
    return FakeSeries(labels, constant(1.0))


def region() -> dict[str, list[FakeSeries]]:
    states = []
    for vantage in VANTAGES:
        states.append(state(ALBANIA[0], "AL", "up", vantage))  # hosted abroad
        states += [state(t, "AL", "down", vantage, "connect_timeout") for t in ALBANIA[1:]]
        states.append(state(SERBIA[0], "RS", "up", vantage))
    # rgz.gov.rs fails only from Vienna: one of two vantages is no majority.
    states.append(state(SERBIA[1], "RS", "up", "sofia"))
    states.append(state(SERBIA[1], "RS", "down", "vienna", "http_timeout"))
    return {
        prom.STATE_QUERY: states,
        prom.VANTAGE_QUERY: [
            FakeSeries({"vantage": v, "instance": v}, constant(1.0)) for v in VANTAGES
        ],
        prom.VANTAGE_SEEN_QUERY: [
            # Seen 7 s before each query, not before this module was imported: in a full
            # run the tests may come minutes later, and a vantage unseen that long is stale.
            FakeSeries({"vantage": v, "instance": v}, seconds_before(7.0))
            for v in VANTAGES
        ],
        prom.OUTAGE_QUERY: [
            FakeSeries({"scope": "country", "country": "AL"}, step_up(AL_START)),
            FakeSeries({"scope": "country", "country": "MK"}, window(MK_START, MK_END)),
            # seen by only half of the vantages: below the quorum, no incident
            FakeSeries({"scope": "country", "country": "RS"}, constant(0.5)),
        ],
        prom.RESPONSE_QUERY: [FakeSeries({"target": ALBANIA[0]}, constant(0.184))],
        prom.EXPIRY_QUERY: [FakeSeries({"target": ALBANIA[0]}, constant(NOW + 12.5 * 86400))],
        prom.DNSSEC_QUERY: [FakeSeries({"target": ALBANIA[0]}, constant(0.0))],
        f"{prom.RESPONSE_QUERY} * 1000": [FakeSeries({"target": ALBANIA[0]}, constant(184.0))],
        prom.DAILY_QUERY: [
            FakeSeries({"country": "AL"}, lambda t: 0.5 if t > AL_START else 1.0),
            FakeSeries({"country": "RS"}, constant(1.0)),
        ],
    }


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    with serve(FakePrometheus(region())) as running:
        yield running


def source(fake: FakePrometheus) -> prom.PrometheusSource:
    return prom.PrometheusSource(fake.url, timeout_s=2.0)


def test_states_by_majority_of_vantages(fake: FakePrometheus) -> None:
    status = source(fake).target_status().set_index("target")
    assert list(status.reset_index().columns) == STATUS_COLUMNS
    assert status.loc[ALBANIA[0], "state"] == "up"
    assert set(status.loc[list(ALBANIA[1:]), "state"]) == {"down"}
    assert set(status.loc[list(ALBANIA[1:]), "reason"]) == {"connect_timeout"}
    assert status.loc[SERBIA[1], "state"] == "up"  # one vantage of two is no majority
    summary = queries.summarize_countries(status.reset_index()).set_index("country")
    assert (summary.loc["AL", "up"], summary.loc["AL", "down"]) == (1, 3)


def test_the_monitor_is_offline_only_when_every_vantage_is(fake: FakePrometheus) -> None:
    asked = time.time()
    facts = source(fake).vantage_status()
    assert facts.up and facts.last_update is not None
    assert asked - 7.001 <= facts.last_update.timestamp() <= time.time() - 6.999
    fake.series[prom.VANTAGE_QUERY] = [FakeSeries({"vantage": v}, constant(0.0)) for v in VANTAGES]
    assert not source(fake).vantage_status().up


def test_open_incidents_start_when_the_quorum_saw_them(fake: FakePrometheus) -> None:
    incidents = source(fake).open_incidents()
    assert list(incidents.columns) == INCIDENT_COLUMNS
    (albania,) = incidents.itertuples(index=False)
    assert albania.country == "AL" and albania.scope == "country"
    step = max(60.0, 86400 / 1500)  # the range query's resolution
    assert AL_START <= albania.started_at.timestamp() < AL_START + step + 1
    assert set(albania.affected) == set(ALBANIA[1:])
    assert albania.dominant_reason == "connect_timeout"
    status = source(fake).target_status()
    (facts,) = queries.outage_facts(status, incidents)
    assert (facts.down, facts.total) == (3, 4)


def test_closed_incidents_in_the_window(fake: FakePrometheus) -> None:
    week = source(fake).incidents_since(datetime.now(UTC) - timedelta(days=7))
    macedonia = week[week["country"] == "MK"].iloc[0]
    step = 7 * 86400 / 1500
    assert abs(macedonia["started_at"].timestamp() - MK_START) <= step + 1
    assert abs(macedonia["ended_at"].timestamp() - MK_END) <= step + 1
    assert "RS" not in set(week["country"])


def test_table_facts(fake: FakePrometheus) -> None:
    now = datetime.fromtimestamp(NOW, UTC)
    table = source(fake).target_table(now).set_index("target")
    row = table.loc[ALBANIA[0]]
    assert row["response_s"] == pytest.approx(0.184)
    assert row["tls_days_left"] == pytest.approx(12.5)
    assert row["dnssec_signed"] is False
    assert table.loc[ALBANIA[1], "dnssec_signed"] is None
    lines = source(fake).latency_sparklines(points=10).set_index("target")
    assert lines.loc[ALBANIA[0], "latency_ms"] == [184.0] * 11  # both ends of the range


def test_daily_availability_per_day(fake: FakePrometheus) -> None:
    now = datetime.now(UTC)
    daily = source(fake).daily_availability(now - timedelta(days=2), now)
    assert set(daily["country"]) == {"AL", "RS"}
    today = daily[daily["day"] == utc_day(now)].set_index("country")
    assert today.loc["AL", "availability"] == 0.5
    (_, params) = next(r for r in fake.requests if r[1]["query"] == prom.DAILY_QUERY)
    assert float(params["step"]) == 86400


def test_bad_answers_and_unreachable_servers_are_source_errors(fake: FakePrometheus) -> None:
    with pytest.raises(SourceError, match="unexpected"):
        prom.instant(source(fake), "no_such_query_known")
    closed = prom.PrometheusSource("http://127.0.0.1:9", timeout_s=0.5)
    with pytest.raises(SourceError, match="cannot query"):
        closed.target_status()


def test_overview_from_prometheus(fake: FakePrometheus) -> None:
    app = AppTest.from_file(str(Path(dashboard.__file__).with_name("app.py")), default_timeout=30)
    app.session_state[ui.OPTIONS_KEY] = ui.DashboardOptions(source=source(fake))
    app.run()
    assert not app.exception
    errors = [shown(e.value) for e in app.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith("Albania: 3 of 4 services down since ")
    assert errors[0].endswith(" UTC — connection timeouts")  # Prometheus keeps no hint


def test_a_target_every_vantage_sees_in_maintenance_is_in_maintenance() -> None:
    states = [state("mup.gov.me", "ME", "maintenance", v) for v in VANTAGES]
    states += [state("gov.me", "ME", "maintenance", "sofia"), state("gov.me", "ME", "up", "vienna")]
    with serve(FakePrometheus({prom.STATE_QUERY: states})) as running:
        status = source(running).target_status().set_index("target")["state"]
    assert (status["mup.gov.me"], status["gov.me"]) == ("maintenance", "up")
