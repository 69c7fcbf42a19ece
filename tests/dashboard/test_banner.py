"""The sentences operators read first: pure functions, no Streamlit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard.banner import (
    REASON_PHRASES,
    Banner,
    OutageFacts,
    Severity,
    SharedHint,
    VantageFacts,
    format_clock,
    format_duration,
    hint_text,
    hints_text,
    outage_banner,
    reason_phrase,
    status_banners,
    tab_title,
    vantage_banner,
)
from probes.results import Reason

NOW = datetime(2022, 7, 15, 14, 39, tzinfo=UTC)
STALE = timedelta(minutes=5)
FRESH = VantageFacts(up=True, last_update=NOW - timedelta(seconds=20))


def albania(**changes: object) -> OutageFacts:
    fields: dict[str, object] = {
        "scope": "country",
        "country": "AL",
        "down": 21,
        "total": 22,
        "since": datetime(2022, 7, 15, 14, 2, 31, tzinfo=UTC),
        "dominant_reason": "connect_timeout",
        "hint": hint_text("nameservers", ["ns11.akshi.gov.al.", "NS12.akshi.gov.al"]),
    }
    fields.update(changes)
    return OutageFacts(**fields)  # type: ignore[arg-type]


def test_every_reason_has_a_phrase() -> None:
    assert set(REASON_PHRASES) == {reason.value for reason in Reason}


def test_the_albanian_banner_reads_as_the_issue_asks() -> None:
    banner = outage_banner(albania(), NOW)
    assert banner == Banner(
        Severity.OUTAGE,
        "Albania: 21 of 22 services down since 14:02 UTC — connection timeouts; "
        "all share name servers ns11/ns12.akshi.gov.al",
    )


def test_an_outage_from_an_earlier_day_carries_its_date() -> None:
    since = datetime(2022, 7, 13, 23, 50, tzinfo=UTC)
    assert "since 13 Jul 23:50 UTC" in outage_banner(albania(since=since), NOW).text
    older = datetime(2021, 12, 31, 8, 0, tzinfo=UTC)
    assert "since 31 Dec 2021 08:00 UTC" in outage_banner(albania(since=older), NOW).text


def test_a_region_outage_names_its_countries_and_has_no_hint_when_none() -> None:
    region = OutageFacts(
        scope="region",
        country=None,
        down=60,
        total=167,
        since=NOW - timedelta(minutes=3),
        dominant_reason=None,
        countries=("AL", "ME"),
    )
    text = outage_banner(region, NOW).text
    assert text == (
        "Region-wide outage (Albania, Montenegro): 60 of 167 services down "
        "since 14:36 UTC — reason unknown"
    )


def test_hints_of_other_kinds_and_partial_shares() -> None:
    assert hint_text("address_prefix", ["192.0.2.0/24"]) == "all share address prefix 192.0.2.0/24"
    assert (
        hint_text("issuer", ["CN=R3", "CN=R4"], count=5, of=8)
        == "5 of 8 share certificate issuers CN=R3, CN=R4"
    )
    assert hint_text("nameservers", ["ns1.a.test"], count=3, of=3) == (
        "all share name server ns1.a.test"
    )


def test_several_hints_read_as_one_sentence() -> None:
    hints = [
        SharedHint("nameservers", ("ns11.akshi.gov.al", "ns12.akshi.gov.al"), 7, 7),
        SharedHint("address_prefix", ("192.0.2.0/24",), 7, 7),
        SharedHint("issuer", ("CN=Gov CA",), 7, 7),
        SharedHint("address_prefix", ("198.51.100.0/24",), 2, 7),
    ]
    assert hints_text(hints) == (
        "all share name servers ns11/ns12.akshi.gov.al, address prefix 192.0.2.0/24 "
        "and certificate issuer CN=Gov CA; 2 of 7 share address prefix 198.51.100.0/24"
    )
    assert hints_text([]) is None


def test_unknown_reason_falls_back_to_words() -> None:
    assert reason_phrase("some_new_reason") == "some new reason"
    assert reason_phrase(None) == "reason unknown"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"), (3660, "1 h 01 min"),
     (90000, "1 d 1 h"), (-5, "0 s")],
)  # fmt: skip
def test_format_duration(seconds: int, expected: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == expected


def test_format_clock_converts_to_utc() -> None:
    from datetime import timezone

    tirana = timezone(timedelta(hours=2))
    assert format_clock(datetime(2022, 7, 15, 16, 2, tzinfo=tirana), NOW) == "14:02 UTC"


def test_the_vantage_banner_when_the_monitor_is_offline() -> None:
    facts = VantageFacts(
        up=False, since=NOW - timedelta(minutes=12), canaries_failing=2, canaries_total=3
    )
    banner = vantage_banner(facts, NOW, STALE)
    assert banner == Banner(
        Severity.OFFLINE,
        "This monitor is offline — the region's state is unknown "
        "(since 14:27 UTC; 2 of 3 control targets failing)",
    )


def test_stale_data_means_the_monitor_stopped() -> None:
    facts = VantageFacts(up=True, last_update=NOW - timedelta(minutes=7))
    banner = vantage_banner(facts, NOW, STALE)
    assert banner is not None
    assert banner.severity is Severity.OFFLINE
    assert banner.text.startswith("No data since 14:32 UTC (7 min ago)")
    assert vantage_banner(FRESH, NOW, STALE) is None


def test_offline_hides_outages_they_cannot_be_trusted() -> None:
    offline = VantageFacts(up=False, since=NOW, last_update=NOW)
    banners = status_banners(offline, [albania()], {"unknown": 22}, NOW, STALE)
    assert [b.severity for b in banners] == [Severity.OFFLINE]


def test_region_first_then_countries_by_start() -> None:
    later = albania(country="ME", since=NOW - timedelta(minutes=1))
    region = albania(scope="region", country=None, countries=("AL", "ME"))
    banners = status_banners(FRESH, [later, albania(), region], {"down": 40}, NOW, STALE)
    assert [b.text.split(":")[0] for b in banners] == [
        "Region-wide outage (Albania, Montenegro)",
        "Albania",
        "Montenegro",
    ]


@pytest.mark.parametrize(
    ("counts", "severity", "text"),
    [
        ({"up": 167}, Severity.OK, "All 167 services up"),
        ({"up": 160, "unknown": 7}, Severity.OK, "160 of 167 services up, 7 not yet known"),
        ({"up": 165, "down": 2}, Severity.DEGRADED, "2 of 167 services down — no country outage"),
        ({"unknown": 5}, Severity.OFFLINE,
         "The state of all 5 services is unknown — no confirmed probe result yet"),
        ({}, Severity.OFFLINE, "No targets yet — the monitor has not stored any"),
    ],
)  # fmt: skip
def test_without_outages(counts: dict[str, int], severity: Severity, text: str) -> None:
    assert status_banners(FRESH, [], counts, NOW, STALE) == [Banner(severity, text)]


def test_every_failure_reason_has_a_phrase() -> None:
    """The phrases are keyed by the probes' own enum, so a new reason cannot go unphrased."""
    assert set(REASON_PHRASES) == set(Reason)
    assert reason_phrase("connect_timeout") == "connection timeouts"
    assert reason_phrase("from_a_newer_daemon") == "from a newer daemon"


def test_the_tab_title_says_what_is_wrong() -> None:
    serbia = albania(country="RS")
    region = albania(scope="region", country=None, countries=("AL", "RS"))
    offline = VantageFacts(up=False, last_update=NOW)
    silent = VantageFacts(up=True, last_update=NOW - timedelta(hours=1))
    assert tab_title(FRESH, [], NOW, STALE) == "govwatch"
    assert tab_title(FRESH, [albania()], NOW, STALE) == "OUTAGE: Albania — govwatch"
    assert tab_title(FRESH, [serbia, albania()], NOW, STALE) == "OUTAGE: Albania, Serbia — govwatch"
    assert tab_title(FRESH, [albania(), region], NOW, STALE) == "REGION OUTAGE — govwatch"
    assert tab_title(offline, [region], NOW, STALE) == "OFFLINE — govwatch"
    assert tab_title(silent, [albania()], NOW, STALE) == "OFFLINE — govwatch"
    assert tab_title(VantageFacts(up=True), [], NOW, STALE) == "govwatch"  # no data yet
