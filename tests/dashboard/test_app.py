"""Every page of the Streamlit app, run by streamlit.testing's AppTest on seeded databases:
a normal day, Albania's outage, and the monitor itself offline."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from streamlit.testing.v1 import AppTest

import dashboard
from dashboard import queries, tiles, ui
from dashboard.banner import format_clock
from dashboard.prom import PrometheusSource
from dashboard.source import Source
from monitor.cli import build_parser
from monitor.outage import HintKind, Incident, InfraHint, Scope
from monitor.settings import Target
from monitor.state import TargetState, TargetStatus, Transition
from monitor.storage import StatusRow
from probes.results import Reason
from tests.dashboard.conftest import Seeded
from tests.dashboard.fake_prometheus import FakePrometheus, series_from_seed, serve
from tests.dashboard.markup import shown
from tests.dashboard.seed import (
    AL_NAMESERVERS,
    AWAITING_TARGET,
    CANARIES,
    DAY,
    SINGLE_DOWN_TARGET,
    albanian_down,
    counts_by_country,
    reported_states,
    seed_database,
    write_history,
)

APP = str(Path(dashboard.__file__).with_name("app.py"))
Get = Callable[[str], Seeded]
PAGES = [f"views/{name}.py" for name in ("overview", "incidents", "targets", "target", "countries")]


def run_app(
    source: Source, page: str | None = None, query: dict[str, str] | None = None
) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    app.session_state[ui.OPTIONS_KEY] = ui.DashboardOptions(source=source)
    app.run()
    if page is not None:
        for key, value in (query or {}).items():
            app.query_params[key] = value
        app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@dataclass(frozen=True)
class Chart:
    spec: dict[str, Any]
    data: pd.DataFrame  # the first dataset (Streamlit ships chart data as Arrow)

    @property
    def marks(self) -> list[str]:
        layers = self.spec.get("layer", [self.spec])
        return [layer.get("mark", {}).get("type", "") for layer in layers]


def charts(app: AppTest) -> list[Chart]:
    found = []
    for chart in app.get("vega_lite_chart"):
        datasets = chart.proto.datasets
        data = (
            pa.ipc.open_stream(datasets[0].data.data).read_pandas() if datasets else pd.DataFrame()
        )
        found.append(Chart(json.loads(chart.proto.spec), data))
    return found


def totals(data: Seeded) -> tuple[int, int]:
    counts = list(counts_by_country(data.seed))
    return sum(d for _, d, _ in counts), sum(t for _, _, t in counts)


# --- overview -----------------------------------------------------------------------------


def test_overview_on_a_normal_day(seeded: Get) -> None:
    data = seeded("normal")
    app = run_app(data.source)
    down, total = totals(data)
    up = sum(state is TargetState.UP for state in reported_states(data.seed).values())
    assert not app.error and not app.warning
    assert [shown(i.value) for i in app.info] == [
        f"{down} of {total} services down — no country outage"
    ]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Services up"] == f"{up} / {total}"
    assert (metrics["Down"], metrics["Unknown"]) == (str(down), "1")  # the one awaiting
    assert metrics["Countries in outage"] == "0"
    (tiles,) = [c for c in charts(app) if c.marks == ["rect", "text", "text"]]
    assert set(tiles.data["country"]) >= {c for c, _, _ in counts_by_country(data.seed)}
    assert not tiles.data["outage"].any()
    down_now = app.dataframe[-1].value
    assert list(down_now["target"]) == [SINGLE_DOWN_TARGET]


def test_overview_during_the_albanian_outage(seeded: Get) -> None:
    data = seeded("albania")
    app = run_app(data.source)
    counts = {c: (d, t) for c, d, t in counts_by_country(data.seed)}
    down, total = counts["AL"]
    started = next(i.started_at for i in data.seed.incidents if i.country == "AL" and i.is_open)
    # the page's own wording: a date is added once the outage began on an earlier day
    clock = format_clock(datetime.fromtimestamp(started, UTC), datetime.now(UTC))
    servers = "/".join(n.split(".")[0] for n in AL_NAMESERVERS) + ".akshi.gov.al"
    assert [shown(e.value) for e in app.error] == [
        f"Albania: {down} of {total} services down since {clock} — connection timeouts; "
        f"all share name servers {servers}"
    ]
    assert {m.label: m.value for m in app.metric}["Countries in outage"] == "1"
    (tiles,) = [c for c in charts(app) if c.marks == ["rect", "text", "text"]]
    albania = tiles.data.set_index("country").loc["AL"]
    assert albania["outage"] and albania["detail"] == f"{total - down}/{total} up"
    assert albania["band"] == "< 50 % up"
    outages = app.dataframe[1].value
    assert list(outages["country"]) == ["AL"]
    all_down = {t.name for t in albanian_down(data.seed.targets)} | {SINGLE_DOWN_TARGET}
    assert set(app.dataframe[-1].value["target"]) == all_down


def test_overview_when_the_monitor_is_offline(seeded: Get) -> None:
    data = seeded("vantage_down")
    app = run_app(data.source)
    assert not app.error  # no outage is blamed on a country
    (warning,) = app.warning
    assert shown(warning.value).startswith(
        "This monitor is offline — the region's state is unknown"
    )
    assert f"{len(CANARIES)} of {len(CANARIES)} control targets failing" in shown(warning.value)
    _, total = totals(data)
    assert {m.label: m.value for m in app.metric}["Unknown"] == str(total)


def test_overview_when_the_monitor_has_stopped_writing(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    seed_database(path, "normal", time.time() - 3600)
    app = run_app(queries.SqliteSource(str(path)))
    (warning,) = app.warning
    assert shown(warning.value).startswith("No data since")
    assert "is the monitor running?" in shown(warning.value)


def test_overview_without_a_database(tmp_path: Path) -> None:
    app = run_app(queries.SqliteSource(str(tmp_path / "missing.sqlite3")))
    (error,) = app.error
    assert shown(error.value).startswith("Cannot read the monitor's data")


# --- the other pages ----------------------------------------------------------------------


def test_incidents_page(seeded: Get) -> None:
    data = seeded("albania")
    app = run_app(data.source, "views/incidents.py")
    open_now = app.dataframe[0].value
    assert list(open_now["scope"]) == ["country", "target"]
    assert open_now.iloc[0]["where"] == "Albania"
    assert open_now.iloc[0]["reason"] == "connection timeouts"
    (timeline,) = [c for c in charts(app) if c.marks == ["bar"]]
    assert set(timeline.data["where"]) == {"Albania"}  # single services are toggled off
    # The closed North Macedonian outage of five days ago is on the 7-day timeline only.
    day = app.dataframe[-1].value
    assert "North Macedonia" not in set(day["where"])
    app.segmented_control(key="incident_span").set_value("7 d").run()
    week = app.dataframe[-1].value
    assert "North Macedonia" in set(week["where"])


def test_targets_page_filters(seeded: Get) -> None:
    data = seeded("albania")
    app = run_app(data.source, "views/targets.py")
    table = app.dataframe[0].value
    assert len(table) == len(data.seed.targets)
    assert set(table.columns) >= {"latency_ms", "tls_days_left", "dnssec", "response_ms"}
    app.multiselect(key="f_country").set_value(["AL"]).run()
    app.multiselect(key="f_state").set_value(["down"]).run()
    filtered = app.dataframe[0].value
    assert set(filtered["target"]) == {t.name for t in albanian_down(data.seed.targets)}
    assert set(filtered["why"]) == {"connection timeouts"}
    app.text_input(key="f_search").set_value("CUSTOMS").run()
    assert all("customs" in name for name in app.dataframe[0].value["target"])


def test_target_drill_down(seeded: Get) -> None:
    data = seeded("albania")
    target = albanian_down(data.seed.targets)[0].name
    app = run_app(data.source, "views/target.py", {"target": target})
    assert shown(app.header[0].value) == target
    (banner,) = app.error
    assert shown(banner.value).startswith("Down since") and "connection timeouts" in shown(
        banner.value
    )
    assert [m.label for m in app.metric] == ["uptime 24 h", "uptime 7 d", "uptime 30 d"]
    failures = app.dataframe[0].value
    assert set(failures["why"]) == {"connection timeouts"}


def test_target_drill_down_of_a_failure_awaiting_the_canaries(seeded: Get) -> None:
    data = seeded("normal")
    app = run_app(data.source, "views/target.py", {"target": AWAITING_TARGET})
    assert not app.error  # confirmed down, but reported unknown: so it is shown
    assert [w.value for w in app.warning] == ["State unknown"]


def test_target_drill_down_of_a_healthy_target(seeded: Get) -> None:
    data = seeded("normal")
    target = data.seed.targets[1].name
    app = run_app(data.source, "views/target.py", {"target": target})
    assert app.success[0].value.startswith("Up since")
    (phases,) = [c for c in charts(app) if c.marks == ["area"]]
    assert set(phases.data["phase"]) == {"resolve", "connect", "tls", "processing", "transfer"}
    details = {(df.value.iloc[0]["field"]) for df in app.dataframe}
    assert "probed at" in details


def test_countries_page(seeded: Get) -> None:
    data = seeded("albania")
    app = run_app(data.source, "views/countries.py")
    pivot = app.dataframe[0].value
    assert len(pivot) == 14  # the default span, today included
    assert "Albania" in pivot.columns
    # the newest day with any known time (just after midnight UTC, today has none yet)
    today = pivot.dropna(how="all").iloc[0]
    assert today["Albania"] < 100.0 and today["Greece"] == pytest.approx(100.0)


def test_countries_page_shows_no_data_for_a_country_never_known(tmp_path: Path) -> None:
    now = time.time()
    start = now - 20 * DAY
    targets = [
        Target(name=f"{cc}.test", url=f"https://{cc}.test/", country=cc.upper(), sector="portal")
        for cc in ("al", "xk")
    ]
    up, unknown = TargetState.UP, TargetState.UNKNOWN
    path = tmp_path / "unknown.sqlite3"
    write_history(
        path,
        now,
        targets,
        [Transition("al.test", unknown, up, start, None)],
        [
            StatusRow(TargetStatus("al.test", up, start), up, None),
            StatusRow(TargetStatus("xk.test", unknown, None), unknown, None),
        ],
    )
    app = run_app(queries.SqliteSource(str(path)), "views/countries.py")
    pivot = app.dataframe[0].value
    assert len(pivot) == 14
    assert pivot["Kosovo"].isna().all()  # shown as empty, not 0.00 %
    albania = pivot["Albania"].dropna()  # today may have no known time just after midnight
    assert len(albania) >= 13 and (albania == 100.0).all()
    (heatmap,) = charts(app)
    assert heatmap.marks == ["rect", "text", "rect", "text"]
    assert set(heatmap.data["country"]) == {"XK"}  # the first layer: the days with no data
    assert len(heatmap.data) == 14


# --- options and the CLI ------------------------------------------------------------------


def test_options_from_the_command_line() -> None:
    options = ui.parse_options(["--db", "/tmp/x.sqlite3", "--refresh", "5", "--server.port=1"])
    assert options.source == queries.SqliteSource("/tmp/x.sqlite3") and options.refresh_s == 5
    remote = ui.parse_options(["--prometheus", "http://127.0.0.1:9090"])
    assert remote.source == PrometheusSource("http://127.0.0.1:9090")
    assert ui.parse_options([]).source == queries.SqliteSource(ui.DEFAULT_DB)


def test_make_source() -> None:
    assert ui.make_source(db="x.db") == queries.SqliteSource("x.db")
    assert ui.make_source(prometheus="http://127.0.0.1:9090/") == PrometheusSource(
        "http://127.0.0.1:9090"
    )
    with pytest.raises(ValueError):
        ui.make_source()


def test_the_dashboard_command_line() -> None:
    args = build_parser().parse_args(["dashboard", "--db", "h.sqlite3", "--port", "8600"])
    assert (str(args.db), args.port, args.address, args.prometheus) == (
        "h.sqlite3",
        8600,
        "127.0.0.1",
        None,
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dashboard", "--db", "x", "--prometheus", "http://127.0.0.1:1"])


def test_a_refresh_is_due_once_per_interval_not_on_the_runs_own_tick() -> None:
    assert ui.refresh_due(None, 100.0, 15.0)
    assert not ui.refresh_due(100.0, 100.2, 15.0)  # the timer's tick during the run
    assert ui.refresh_due(100.0, 115.0, 15.0)


REGION_RESOLVERS = ("ns1.carrier.example", "ns2.carrier.example")


def region_outage_source(tmp_path: Path) -> tuple[queries.SqliteSource, float]:
    """Albania and Montenegro dark together, sharing the carrier's name servers."""
    now = time.time()
    since = now - 600
    targets = [
        Target(name=f"{cc}{n}.test", url=f"https://{cc}{n}.test/", country=cc.upper(), sector="x")
        for cc in ("al", "me")
        for n in (1, 2)
    ]
    names = tuple(t.name for t in targets)
    down = TargetState.DOWN
    hint = InfraHint(HintKind.NAMESERVERS, REGION_RESOLVERS, len(names), len(names))

    def incident(scope: Scope, country: str | None) -> Incident:
        affected = tuple(n for n in names if country is None or n.startswith(country.lower()))
        return Incident(
            f"{scope}:{country}", scope, country, None, since, None, affected,
            Reason.DNS_TIMEOUT, (hint,),
        )  # fmt: skip

    path = tmp_path / "region.sqlite3"
    write_history(
        path,
        now,
        targets,
        [],
        [StatusRow(TargetStatus(n, down, since, Reason.DNS_TIMEOUT), down, None) for n in names],
        [
            incident(Scope.REGION, None),
            incident(Scope.COUNTRY, "AL"),
            incident(Scope.COUNTRY, "ME"),
        ],
    )
    return queries.SqliteSource(str(path)), since


def test_a_region_outage_is_louder_than_a_country_and_shows_its_hint(tmp_path: Path) -> None:
    source, since = region_outage_source(tmp_path)
    app = run_app(source)
    shared = "all share name servers ns1/ns2.carrier.example"
    clock = format_clock(datetime.fromtimestamp(since, UTC), datetime.now(UTC))
    assert [h.value for h in app.header if "REGION OUTAGE" in h.value] == [
        f":material/crisis_alert: {ui.REGION_OUTAGE_HEADING}"
    ]
    texts = [shown(m.value) for m in app.markdown if not m.value.startswith("<style>")]
    assert (
        f"Region-wide outage (Albania, Montenegro): 4 of 4 services down since {clock}"
        f" — DNS timeouts; {shared}"
    ) in texts
    assert [shown(e.value).split(":")[0] for e in app.error] == ["Albania", "Montenegro"]
    outages = app.dataframe[1].value
    assert outages.set_index("where").loc["Region", "hint"] == shared
    incidents = run_app(source, "views/incidents.py").dataframe[0].value
    assert incidents.set_index("scope").loc["region", "hint"] == shared


def test_unknown_says_monitor_offline_while_the_monitor_is_offline(seeded: Get) -> None:
    data = seeded("vantage_down")
    table = run_app(data.source, "views/targets.py").dataframe[0].value
    assert set(table["state"]) == {"unknown"} and set(table["why"]) == {"monitor offline"}
    target = data.seed.targets[0].name
    (warning,) = run_app(data.source, "views/target.py", {"target": target}).warning
    assert shown(warning.value).startswith("State unknown") and shown(warning.value).endswith(
        " — monitor offline"
    )


def test_state_reason() -> None:
    assert ui.state_reason("down", "connect_timeout", False) == "connection timeouts"
    assert ui.state_reason("unknown", None, True) == "monitor offline"
    assert ui.state_reason("unknown", None, False) == ""
    assert ui.state_reason("up", None, True) == ""


@pytest.mark.parametrize("scenario", ["albania", "vantage_down"])
def test_no_table_cell_shows_a_raw_none_or_nan(seeded: Get, scenario: str) -> None:
    """And every page has the refresh footer (pages are slow to run: one pass for both)."""
    data = seeded(scenario)
    target = data.seed.targets[0].name
    for page in PAGES:
        app = run_app(data.source, page, {"target": target})
        assert any("refreshed" in c.value and "every 15 s" in c.value for c in app.caption), page
        for table in app.dataframe:
            assert table.proto.placeholder == ui.MISSING, page  # missing values drawn as —
            words = {str(v) for v in table.value.to_numpy().ravel() if isinstance(v, str)}
            assert not words & {"None", "nan", "NaN", "NaT", "none"}, page


def test_the_monitor_is_called_this_monitor_everywhere(seeded: Get) -> None:
    data = seeded("vantage_down")
    incidents = run_app(data.source, "views/incidents.py").dataframe[0].value
    assert list(incidents.loc[incidents["scope"] == "vantage", "where"]) == ["This monitor"]
    overview = run_app(data.source)
    assert "This monitor" in set(overview.dataframe[1].value["where"])


@dataclass(frozen=True)
class FirstMinutesSource(queries.SqliteSource):
    """A target's history as in its first minutes: one phase bucket."""

    def target_phases(self, target: str, since: datetime, now: datetime) -> pd.DataFrame:
        phases = super().target_phases(target, since, now)
        return phases[phases["time"] == phases["time"].min()]


def test_time_axes_are_24_hour_and_one_point_still_draws(seeded: Get) -> None:
    data = seeded("normal")
    target = data.seed.targets[1].name
    (phases,) = [c for c in charts(run_app(data.source, "views/target.py", {"target": target}))]
    assert phases.spec["encoding"]["x"]["axis"]["format"] == "%H:%M"
    first = FirstMinutesSource(str(data.path))
    (single,) = charts(run_app(first, "views/target.py", {"target": target}))
    assert single.data["time"].nunique() == 1
    assert single.spec["mark"] == {"type": "area", "point": True}
    incidents = run_app(seeded("albania").source, "views/incidents.py")
    (timeline,) = [c for c in charts(incidents) if c.marks == ["bar"]]
    assert timeline.spec["encoding"]["x"]["axis"]["format"] == "%H:%M"


def two_days_with_maintenance(tmp_path: Path) -> queries.SqliteSource:
    """Watched for two days; for the last hour al2 and me1 in maintenance, al3 down."""
    now = time.time()
    start, window = now - 2 * DAY, now - 3600
    up, down, unknown = TargetState.UP, TargetState.DOWN, TargetState.UNKNOWN
    maintenance = TargetState.MAINTENANCE
    names = {"al1.test": up, "al2.test": maintenance, "al3.test": down, "me1.test": maintenance}
    targets = [
        Target(name=n, url=f"https://{n}/", country=n[:2].upper(), sector="x") for n in names
    ]
    transitions = [Transition(n, unknown, up, start, None) for n in names]
    transitions += [Transition(n, up, s, window, None) for n, s in names.items() if s != up]
    rows = [
        StatusRow(
            TargetStatus(n, unknown if s == maintenance else s, start if s == up else window),
            s,
            None,
        )
        for n, s in names.items()
    ]
    path = tmp_path / "maintenance.sqlite3"
    write_history(path, now, targets, transitions, rows)
    return queries.SqliteSource(str(path))


def test_maintenance_has_its_own_colour_and_label_and_is_neither_up_nor_down(
    tmp_path: Path,
) -> None:
    source = two_days_with_maintenance(tmp_path)
    app = run_app(source)
    assert {m.label: m.value for m in app.metric}["Maintenance"] == "2"
    assert [shown(i.value) for i in app.info] == [
        "1 of 4 services down — no country outage, 2 in maintenance"
    ]
    (tiles,) = [c for c in charts(app) if c.marks == ["rect", "text", "text"]]
    by_country = tiles.data.set_index("country")
    assert by_country.loc["ME", "band"] == "maintenance"
    assert by_country.loc["AL", "band"] == "≥ 50 % up"  # 1 up of 2 known: al2 left out
    assert by_country.loc["AL", "detail"] == "1/3 up · 1 maint."
    summary = app.dataframe[0].value.set_index("country")
    assert summary.loc["AL", "availability"] == 0.5 and summary.loc["AL", "maintenance"] == 1

    table = run_app(source, "views/targets.py").dataframe[0].value.set_index("target")
    assert table.loc["al2.test", "state_shown"] == "◆ maintenance"
    assert table.loc["al3.test", "state_shown"] == "▲ down"

    target = run_app(source, "views/target.py", {"target": "al2.test"})
    assert shown(target.info[0].value).startswith("In maintenance")
    # An hour of maintenance after a day up: still 100 % over 24 h, not 95.8 %.
    assert {m.label: m.value for m in target.metric}["uptime 24 h"] == "100.000%"


def test_the_incident_timeline_fits_its_incidents_and_labels_every_lane(seeded: Get) -> None:
    data = seeded("albania")
    app = run_app(data.source, "views/incidents.py")
    app.toggle[0].set_value(True).run()  # single services too: more lanes
    (timeline,) = [c for c in charts(app) if c.marks == ["bar"]]
    first, last = (pd.Timestamp(t) for t in timeline.spec["encoding"]["x"]["scale"]["domain"])
    earliest = pd.Timestamp(timeline.data["begin"].min())
    earliest = earliest.tz_localize("UTC") if earliest.tzinfo is None else earliest
    assert first <= earliest and (earliest - first) <= (last - earliest) / 9
    assert last.timestamp() == pytest.approx(time.time(), abs=120)  # ticks up to now
    assert timeline.spec["encoding"]["x"]["scale"]["nice"] is False
    y_axis = timeline.spec["encoding"]["y"]["axis"]
    assert y_axis["labelOverlap"] is False and y_axis["labelLimit"] >= 300
    assert timeline.data["where"].map(lambda w: isinstance(w, str) and w != "").all()


def test_fitted_window() -> None:
    now = datetime(2022, 7, 15, 14, 40, tzinfo=UTC)
    day_ago = datetime(2022, 7, 14, 14, 40, tzinfo=UTC)
    recent = datetime(2022, 7, 15, 14, 0, tzinfo=UTC)
    assert ui.fitted_window(recent, day_ago, now) == (
        datetime(2022, 7, 15, 13, 55, tzinfo=UTC),
        now,
    )
    assert ui.fitted_window(day_ago, day_ago, now) == (day_ago, now)  # never before the window


def test_uptime_per_target_and_country_says_how_long_it_has_watched(tmp_path: Path) -> None:
    source = two_days_with_maintenance(tmp_path)
    table = run_app(source, "views/targets.py").dataframe[0].value.set_index("target")
    assert table.loc["al1.test", "uptime_24h"] == pytest.approx(100.0)
    # al3: up for 47 of its 48 known hours, then down
    assert table.loc["al3.test", "uptime_24h"] == pytest.approx(
        100 * 23 / 24, abs=0.1
    )  # now is rounded to the minute
    assert table.loc["al3.test", "uptime_7d"] == pytest.approx(100 * 47 / 48, abs=0.05)
    assert table.loc["al2.test", "uptime_24h"] == pytest.approx(100.0)  # maintenance: out
    assert table.loc["al1.test", "history"].startswith("watching since ")
    overview = run_app(source)
    countries = overview.dataframe[0].value.set_index("country")
    # up 24 + 23 + 23 h of 24 + 23 (al2: its hour of maintenance is out) + 24 h known
    assert countries.loc["AL", "uptime_24h"] == pytest.approx(
        100 * 70 / 71, abs=0.05
    )  # the page rounds now to the minute
    target = run_app(source, "views/target.py", {"target": "al1.test"})
    captions = [c.value for c in target.caption if "watching since" in c.value]
    assert len(captions) == 2  # under 7 d and 30 d, not under 24 h


def test_watching_since() -> None:
    now = datetime(2022, 7, 15, 14, 40, tzinfo=UTC)
    began = datetime(2022, 7, 15, 14, 38, tzinfo=UTC).timestamp()
    assert ui.watching_since(began, now, timedelta(hours=24)) == "watching since 14:38 UTC"
    assert ui.watching_since(began - 86400, now, timedelta(hours=24)) is None
    assert ui.watching_since(float("nan"), now, timedelta(hours=24)) is None


def test_wall_mode_condenses_the_overview(seeded: Get) -> None:
    data = seeded("albania")
    app = run_app(data.source, "views/overview.py", {"wall": "1"})
    assert [shown(e.value).split(":")[0] for e in app.error] == ["Albania"]  # the banner
    assert not app.dataframe  # no tables on the wall
    (tile_map,) = charts(app)
    assert tile_map.spec["width"] == 5 * 136  # bigger than the desk's 112 px tiles
    assert "Countries in outage" in {m.label for m in app.metric}
    # what is down, beside the map, in large type (not a table)
    down = [r for r in data.seed.rows if r.reported == "down"]
    assert [s.value for s in app.subheader] == [f"Down now ({len(down)})"]
    texts = [shown(m.value) for m in app.markdown if not m.value.startswith("<style>")]
    listed = [text for text in texts if " · " in text]
    assert listed and all(line.startswith("AL · ") for line in listed)


def test_a_history_strip_per_target_coloured_by_state(tmp_path: Path) -> None:
    source = two_days_with_maintenance(tmp_path)
    table = run_app(source, "views/targets.py").dataframe[0].value.set_index("target")
    strips = {name: strip_colours(str(strip)) for name, strip in table["strip"].items()}
    up, down = tiles.STATE_COLOURS["up"], tiles.STATE_COLOURS["down"]
    maintenance = tiles.STATE_COLOURS["maintenance"]
    assert all(len(strip) == 24 for strip in strips.values())  # one slot per hour
    assert strips["al1.test"] == [up] * 24
    # the last hour: down, in maintenance (the hour before: up)
    assert strips["al3.test"][:22] == [up] * 22 and strips["al3.test"][-1] == down
    assert strips["al2.test"][:22] == [up] * 22 and strips["al2.test"][-1] == maintenance


def strip_colours(data_url: str) -> list[str]:
    """The fill colours of a history strip's SVG, left to right."""
    prefix = "data:image/svg+xml;base64,"
    assert data_url.startswith(prefix)
    return re.findall(r'fill="([^"]+)"', base64.b64decode(data_url[len(prefix) :]).decode())


def test_incidents_page_offers_the_report_of_its_period(seeded: Get) -> None:
    """The download button's report is govwatch report's, for the span shown."""
    data = seeded("albania")
    app = run_app(data.source, "views/incidents.py")
    assert not app.exception
    (button,) = app.get("download_button")
    assert "last 24 h" in button.proto.label
    app.segmented_control(key="incident_span").set_value("7 d").run()
    (button,) = app.get("download_button")
    assert "last 7 d" in button.proto.label
    assert isinstance(data.source, queries.SqliteSource)
    now = datetime.now(UTC)
    page = data.source.availability_report(now - timedelta(days=7), now, "html")
    assert page.startswith("<!doctype html>") or page.lower().startswith("<!doctype html>")
    assert "Albania" in page and "<svg" in page and "<script" not in page


def test_no_report_button_without_a_history(seeded: Get) -> None:
    """Prometheus keeps no transitions to make a report from: no button, the page works."""
    data = seeded("albania")
    series = series_from_seed(data.seed, datetime.now(UTC).timestamp())
    with serve(FakePrometheus(series)) as fake:
        app = run_app(PrometheusSource(fake.url), "views/incidents.py")
    assert not app.exception and not app.error
    assert app.get("segmented_control")  # the page got past its reads to the timeline
    assert not app.get("download_button")
