"""The availability report's core (monitor.report.model) and its renderers, from the
seeded history of tests/unit/report_history.py whose figures are worked out here by hand.

The day has 86,400 s. The monitor was blind 1,800 s (14:00-14:30), so every target has
84,600 s the monitor could see; al-tax.test spent 7,200 of them in maintenance.

    target          up       down   known = up + down   availability
    al-portal.test  81,000   3,600  84,600              81,000 / 84,600 = 95.745 %
    al-tax.test     77,400       0  77,400              100 %
    rs-portal.test  82,800   1,800  84,600              82,800 / 84,600 = 97.872 %
    rs-health.test  82,800   1,800  84,600              97.872 %

    AL:     158,400 / 162,000 = 97.778 %   1 incident, longest 3,600 s, MTTR 3,600 s
    RS:     165,600 / 169,200 = 97.872 %   2 incidents, longest 1,800 s, MTTR 1,800 s
    region: 324,000 / 331,200 = 97.826 %   3 incidents, longest 3,600 s,
            MTTR (3,600 + 1,800 + 1,800) / 3 = 2,400 s
    government (al-portal, rs-portal): 163,800 / 169,200; MTTR (3,600 + 1,800) / 2 = 2,700 s
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.report.charts import daily_availability_svg, incident_timeline_svg
from monitor.report.history import HistoryRows, IncidentRow, TargetRow, TransitionRow, read_history
from monitor.report.model import Report, build_report
from monitor.report.render import (
    CSV_COLUMNS,
    markdown_escape,
    render_csv,
    render_html,
    render_json,
    render_markdown,
    to_json_object,
)
from monitor.storage import open_history
from tests.unit.report_history import DAY_END, DAY_START, HINT, at, seed_history

NOW = DAY_END + 3600.0


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> HistoryRows:
    path = seed_history(tmp_path_factory.mktemp("report") / "history.sqlite")
    with open_history(path) as conn:
        return read_history(conn, DAY_START, DAY_END)


@pytest.fixture(scope="module")
def report(rows: HistoryRows) -> Report:
    return build_report(rows, DAY_START, DAY_END, NOW)


def test_the_monitor_s_blind_time_and_maintenance_are_left_out_and_stated(report: Report) -> None:
    assert report.blind_seconds == 1800.0  # wall clock
    assert report.maintenance_seconds == 7200.0  # al-tax.test's window
    assert report.vantage == "tirana-1"
    assert report.region.figures.blind_seconds == 4 * 1800.0  # target-time


@pytest.mark.parametrize(
    ("name", "up", "down", "maintenance", "availability", "incidents", "longest", "mttr"),
    [
        ("al-portal.test", 81000, 3600, 0, 81000 / 84600, 1, 3600, 3600),
        ("al-tax.test", 77400, 0, 7200, 1.0, 0, None, None),
        ("rs-portal.test", 82800, 1800, 0, 82800 / 84600, 1, 1800, 1800),
        ("rs-health.test", 82800, 1800, 0, 82800 / 84600, 1, 1800, 1800),
    ],
)
def test_per_target_figures(
    report: Report,
    name: str,
    up: float,
    down: float,
    maintenance: float,
    availability: float,
    incidents: int,
    longest: float | None,
    mttr: float | None,
) -> None:
    (target,) = [t for t in report.targets if t.name == name]
    f = target.figures
    assert (f.up_seconds, f.down_seconds, f.maintenance_seconds) == (up, down, maintenance)
    assert (f.blind_seconds, f.unknown_seconds) == (1800.0, 0.0)
    assert f.availability_percent == pytest.approx(100 * availability)
    assert (f.incidents, f.longest_outage_seconds, f.mttr_seconds) == (incidents, longest, mttr)


@pytest.mark.parametrize(
    ("kind", "key", "availability", "incidents", "longest", "mttr"),
    [
        ("country", "AL", 158400 / 162000, 1, 3600, 3600),
        ("country", "RS", 165600 / 169200, 2, 1800, 1800),
        ("region", "region", 324000 / 331200, 3, 3600, 2400),
        ("sector", "government", 163800 / 169200, 2, 3600, 2700),
        ("sector", "finance", 1.0, 0, None, None),
        ("sector", "health", 82800 / 84600, 1, 1800, 1800),
    ],
)
def test_per_country_sector_and_region(
    report: Report,
    kind: str,
    key: str,
    availability: float,
    incidents: int,
    longest: float | None,
    mttr: float | None,
) -> None:
    groups = {"country": report.countries, "sector": report.sectors, "region": (report.region,)}
    (group,) = [g for g in groups[kind] if g.key == key]
    f = group.figures
    assert f.availability_percent == pytest.approx(100 * availability)
    assert (f.incidents, f.longest_outage_seconds, f.mttr_seconds) == (incidents, longest, mttr)


def test_incidents_of_a_target_have_start_end_duration_and_reason(report: Report) -> None:
    (portal,) = [t for t in report.targets if t.name == "al-portal.test"]
    # Not the one that ended the day before, nor the one after the day.
    assert [(i.started_at, i.ended_at, i.duration_seconds, i.reason) for i in portal.incidents] == [
        (at(2), at(3), 3600.0, "connect_timeout")
    ]


def test_country_outages_come_with_their_hint(report: Report) -> None:
    assert [(o.scope, o.country, o.duration_seconds, o.hint) for o in report.outages] == [
        ("country", "RS", 1800.0, HINT)
    ]
    assert report.outages[0].affected == ("rs-health.test", "rs-portal.test")
    assert [(b.started_at, b.ended_at) for b in report.blind_spells] == [(at(14), at(14.5))]


def test_posture_at_the_end_of_the_period(report: Report) -> None:
    posture = {t.name: t.posture for t in report.targets}
    # The TLS probe after the day (TLSv1.2, expiring at once) is not the period's.
    assert posture["al-portal.test"].tls_version == "TLSv1.3"
    assert posture["al-portal.test"].days_to_expiry == pytest.approx(30.0)
    assert posture["al-portal.test"].dnssec_valid is True
    assert posture["rs-portal.test"].certificate_valid is False  # failed, and expired
    assert posture["rs-portal.test"].dnssec_valid is False  # signed but bogus
    assert posture["rs-health.test"].certificate_valid is None  # no TLS probe
    summary = report.posture
    assert (summary.targets, summary.with_tls, summary.certificates_valid) == (4, 3, 2)
    assert (summary.tls13, summary.dnssec_signed, summary.dnssec_valid) == (2, 3, 2)
    assert summary.nearest_expiry_target == "rs-portal.test"
    assert summary.days_to_nearest_expiry == pytest.approx(-1.0)


def test_tamper_signals_of_the_period_only(report: Report) -> None:
    assert [(s.id, s.cleared_by) for s in report.tamper] == [("defacement:rs-portal.test:1", "ack")]


def test_daily_availability_per_country(report: Report) -> None:
    assert [(d.country, d.day) for d in report.daily] == [
        ("AL", "2026-11-01"),
        ("RS", "2026-11-01"),
    ]
    assert report.daily[0].availability_percent == pytest.approx(100 * 158400 / 162000)


def test_one_country(rows: HistoryRows) -> None:
    only = build_report(rows, DAY_START, DAY_END, NOW, {"AL"})
    assert [t.name for t in only.targets] == ["al-portal.test", "al-tax.test"]
    assert [g.key for g in only.countries] == ["AL"]
    assert only.outages == () and only.tamper == ()
    assert only.region.figures.availability_percent == pytest.approx(100 * 158400 / 162000)


# --- pure cases from rows made by hand ------------------------------------------------


def _rows(**changes: object) -> HistoryRows:
    base = HistoryRows(
        vantage="",
        targets=(TargetRow("a.test", "AL", "government", True, "up", 0.0),),
        transitions=(),
        next_transitions=(),
        incidents=(),
        facts=(),
        signals=(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "rows", "up", "down", "unknown", "incidents", "longest", "mttr"),
    [
        ("quiet and up", _rows(), 1000.0, 0.0, 0.0, 0, None, None),
        (
            # Down now, but only since after the period: the state at its end is the
            # old state of the first transition after it.
            "changed after the period",
            _rows(
                targets=(TargetRow("a.test", "AL", "government", True, "down", 5000.0),),
                next_transitions=(
                    TransitionRow("a.test", "up", "down", 5000.0, "connect_timeout"),
                ),
            ),
            1000.0,
            0.0,
            0.0,
            0,
            None,
            None,
        ),
        (
            # Still down at the period's end: counted, its duration to the end, no MTTR.
            "an open incident",
            _rows(
                transitions=(TransitionRow("a.test", "up", "down", 1600.0, "connect_timeout"),),
                incidents=(
                    IncidentRow(
                        "target:a.test:1600",
                        "target",
                        "AL",
                        "a.test",
                        1600.0,
                        None,
                        ("a.test",),
                        "connect_timeout",
                        None,
                    ),
                ),
            ),
            600.0,
            400.0,
            0.0,
            1,
            400.0,
            None,
        ),
        (
            "first seen within the period",
            _rows(targets=(TargetRow("a.test", "AL", "government", True, "up", 1500.0),)),
            500.0,
            0.0,
            0.0,
            0,
            None,
            None,
        ),
        (
            "unknown awaiting the canaries: neither up nor down",
            _rows(
                transitions=(
                    TransitionRow("a.test", "up", "unknown", 1200.0, None),
                    TransitionRow("a.test", "unknown", "up", 1300.0, None),
                )
            ),
            900.0,
            0.0,
            100.0,
            0,
            None,
            None,
        ),
    ],
)
def test_pure_cases(
    case: str,
    rows: HistoryRows,
    up: float,
    down: float,
    unknown: float,
    incidents: int,
    longest: float | None,
    mttr: float | None,
) -> None:
    (target,) = build_report(rows, 1000.0, 2000.0, 3000.0).targets
    f = target.figures
    assert (f.up_seconds, f.down_seconds, f.unknown_seconds) == (up, down, unknown), case
    assert (f.incidents, f.longest_outage_seconds, f.mttr_seconds) == (incidents, longest, mttr)


def test_no_known_time_is_no_data_not_zero() -> None:
    rows = _rows(targets=(TargetRow("a.test", "AL", "government", True, "unknown", 0.0),))
    report = build_report(rows, 1000.0, 2000.0, 3000.0)
    assert report.region.figures.availability_percent is None
    assert to_json_object(report)["region"]["availability_percent"] is None


# --- renderers ----------------------------------------------------------------------------


def test_json_round_trips_and_matches(report: Report) -> None:
    data = json.loads(render_json(report))
    assert data == to_json_object(report)
    assert data["period"] == {
        "from": "2026-11-01T00:00:00Z",
        "to": "2026-11-02T00:00:00Z",
        "seconds": 86400.0,
    }
    assert (data["blind_seconds"], data["maintenance_seconds"]) == (1800.0, 7200.0)
    assert data["region"]["availability_percent"] == pytest.approx(100 * 324000 / 331200)
    assert data["region"]["mttr_seconds"] == 2400.0
    assert [c["country"] for c in data["countries"]] == ["AL", "RS"]
    portal = data["targets"][0]
    assert portal["incidents"] == [
        {
            "id": f"target:al-portal.test:{int(at(2))}",
            "started_at": "2026-11-01T02:00:00Z",
            "ended_at": "2026-11-01T03:00:00Z",
            "duration_seconds": 3600.0,
            "reason": "connect_timeout",
        }
    ]
    assert data["outages"][0]["hint"] == HINT
    assert data["tamper"][0]["kind"] == "defacement"


def test_json_fields_are_documented_in_the_readme(report: Report) -> None:
    """Every JSON field name appears in the README's field table: the table is the contract."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text(encoding="utf-8")
    section = text.split("## Availability reports", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_0-9]+)`", section))

    def names(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {n for v in value.values() for n in names(v)}
        if isinstance(value, list):
            return {n for v in value for n in names(v)}
        return set()

    assert names(to_json_object(report)) - documented == set()


def test_csv_has_a_header_and_one_row_per_target(report: Report) -> None:
    table = list(csv.reader(io.StringIO(render_csv(report))))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [row[0] for row in table[1:]] == [t.name for t in report.targets]
    portal = dict(zip(table[0], table[1], strict=True))
    assert float(portal["availability_percent"]) == pytest.approx(100 * 81000 / 84600, abs=1e-3)
    assert portal["mttr_seconds"] == "3600"


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(report: Report) -> None:
    hostile = replace(report, targets=(replace(report.targets[0], name="=cmd|' /C calc'!A0"),))
    assert list(csv.reader(io.StringIO(render_csv(hostile))))[1][0].startswith("'=")


def _markdown_images(text: str) -> list[str]:
    return [
        base64.b64decode(uri).decode()
        for uri in re.findall(r"\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", text)
    ]


def test_markdown_has_the_tables_and_embeds_the_charts(report: Report) -> None:
    text = render_markdown(report)
    for title in ("Countries", "Sectors", "Targets", "Incidents", "Outages of countries"):
        assert f"## {title}" in text
    assert "| AL Albania | 2 | 97.778 % | 1 | 1 h 00 min | 1 h 00 min |" in text
    assert HINT in text
    images = _markdown_images(text)
    assert len(images) == 2 and all(i.startswith("<svg xmlns=") for i in images)


def test_html_is_self_contained_and_contains_the_charts(report: Report) -> None:
    page = render_html(report)
    assert "http://" not in page and "https://" not in page
    lowered = page.lower()
    assert "<script" not in lowered and "<link" not in lowered and "<img" not in lowered
    assert "@import" not in lowered and "url(" not in lowered
    assert page.count("<svg") == 2
    assert "97.778 %" in page and HINT in page


def _hostile(report: Report) -> Report:
    evil = "<script>alert(1)</script>|*x*](javascript:y)"
    targets = tuple(replace(t, name=evil + t.name) for t in report.targets)
    outages = tuple(replace(o, hint=evil) for o in report.outages)
    return replace(report, targets=targets, outages=outages, vantage=evil)


def test_untrusted_text_is_escaped_in_every_markup() -> None:
    rows = _rows(
        targets=(TargetRow("<script>x</script>", "AL", "government", True, "up", 0.0),),
        incidents=(
            IncidentRow(
                "target:<script>x</script>:1500",
                "target",
                "AL",
                "<script>x</script>",
                1500.0,
                1600.0,
                (),
                "<b>",
                None,
            ),
        ),
    )
    report = _hostile(build_report(rows, 1000.0, 2000.0, 3000.0))
    page = render_html(report)
    assert "<script" not in page.lower()
    for svg in (daily_availability_svg(report), incident_timeline_svg(report)):
        assert "<script" not in svg.lower()
    text = render_markdown(report)
    assert "<script" not in text.lower()
    assert "\\|\\*x\\*\\]\\(javascript:y\\)" in text  # the cell's table and link syntax defused
    for svg in _markdown_images(text):
        assert "<script" not in svg.lower()


def test_markdown_escape() -> None:
    assert markdown_escape("a|b\nc") == "a\\|b c"
    assert markdown_escape("<img src=x>") == "&lt;img src=x&gt;"
