"""What every page shares: the options from the command line, cached queries, banners.

Caching lives here (st.cache_data with a ttl), never in the sources (dashboard.source),
so they stay plain objects that tests call without Streamlit.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from dashboard import queries
from dashboard.banner import (
    APP_NAME,
    Banner,
    Severity,
    VantageFacts,
    format_clock,
    reason_phrase,
    tab_title,
)
from dashboard.prom import PrometheusSource
from dashboard.queries import SqliteSource
from dashboard.source import DOWN, UNKNOWN, Source, SourceError
from dashboard.text import as_text
from monitor.countries import country_name
from monitor.storage import DEFAULT_DB_PATH

OPTIONS_KEY = "govwatch_options"
# The target page, for links from other pages (dashboard/app.py registers it).
TARGET_PAGE = Path(__file__).resolve().parent / "views" / "target.py"
DEFAULT_DB = str(DEFAULT_DB_PATH)

# Current state changes every probe interval; history is expensive and changes slowly.
LIVE_TTL_S = 5
HISTORY_TTL_S = 60


@dataclass(frozen=True, slots=True)
class DashboardOptions:
    source: Source
    refresh_s: float = 15.0  # how often every page re-runs itself
    stale_after_s: float = 180.0  # no new data for this long: the monitor has stopped
    # No Acknowledge button (the dashboard's one write): for a wall screen or a port
    # reachable by people who should see the signals but not clear them.
    read_only: bool = False


def parse_options(argv: Sequence[str]) -> DashboardOptions:
    """The arguments after `streamlit run app.py --`. Unknown ones are ignored (Streamlit's own)."""
    parser = argparse.ArgumentParser(prog="govwatch dashboard", add_help=False)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--db", default=None)
    group.add_argument("--prometheus", default=None)
    parser.add_argument("--refresh", type=float, default=15.0)
    parser.add_argument("--stale-after", type=float, default=180.0)
    parser.add_argument("--read-only", action="store_true")
    args, _ = parser.parse_known_args(list(argv))
    source = make_source(
        db=args.db or (None if args.prometheus else DEFAULT_DB), prometheus=args.prometheus
    )
    return DashboardOptions(
        source=source,
        refresh_s=max(1.0, args.refresh),
        stale_after_s=args.stale_after,
        read_only=args.read_only,
    )


def make_source(*, db: str | None = None, prometheus: str | None = None) -> Source:
    if (db is None) == (prometheus is None):
        raise ValueError("exactly one of db and prometheus is needed")
    if prometheus is not None:
        return PrometheusSource(prometheus.rstrip("/"))
    return SqliteSource(str(db))


def options() -> DashboardOptions:
    """The options app.py stored for this session."""
    stored = st.session_state.get(OPTIONS_KEY)
    if not isinstance(stored, DashboardOptions):
        raise RuntimeError("dashboard pages run through dashboard/app.py")
    return stored


def utc_now() -> datetime:
    return datetime.now(UTC)


def window_start(now: datetime, span: timedelta) -> datetime:
    """`now - span`, rounded down to the minute so cached history is reused across reruns."""
    return (now - span).replace(second=0, microsecond=0)


# --- cached queries -------------------------------------------------------------------------


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def target_status(source: Source) -> pd.DataFrame:
    return source.target_status()


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def vantage_status(source: Source) -> VantageFacts:
    return source.vantage_status()


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def open_incidents(source: Source) -> pd.DataFrame:
    return source.open_incidents()


@st.cache_data(ttl=HISTORY_TTL_S, show_spinner=False)
def incidents_since(source: Source, since: datetime) -> pd.DataFrame:
    return source.incidents_since(since)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def target_table(source: Source, now: datetime) -> pd.DataFrame:
    return source.target_table(now)


@st.cache_data(ttl=HISTORY_TTL_S, show_spinner=False)
def latency_sparklines(source: Source, points: int) -> pd.DataFrame:
    return source.latency_sparklines(points)


@st.cache_data(ttl=HISTORY_TTL_S, show_spinner=False)
def target_phases(source: Source, target: str, since: datetime, now: datetime) -> pd.DataFrame:
    return source.target_phases(target, since, now)


@st.cache_data(ttl=HISTORY_TTL_S, show_spinner=False)
def target_uptime(source: Source, target: str, now: datetime) -> pd.DataFrame:
    return source.target_uptime(target, now)


@st.cache_data(ttl=HISTORY_TTL_S, show_spinner=False)
def uptime_table(source: Source, now: datetime) -> pd.DataFrame:
    return source.uptime_table(now)


@st.cache_data(ttl=HISTORY_TTL_S, show_spinner=False)
def state_strips(source: Source, now: datetime) -> pd.DataFrame:
    return source.state_strips(now)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def target_failures(source: Source, target: str, limit: int) -> pd.DataFrame:
    return source.target_failures(target, limit)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def target_details(source: Source, target: str) -> pd.DataFrame:
    return source.target_details(target)


@st.cache_data(ttl=HISTORY_TTL_S, show_spinner=False)
def daily_availability(source: Source, since: datetime, now: datetime) -> pd.DataFrame:
    return source.daily_availability(since, now)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def tamper_signals(
    source: Source, target: str | None = None, cleared_since: datetime | None = None
) -> pd.DataFrame:
    return source.tamper_signals(target, cleared_since)


def raised_signal_count(source: Source) -> int:
    """How many tamper signals are raised; 0 when the source cannot say (the page's own
    reads report that), so a tamper read never hides the outage picture."""
    try:
        return len(tamper_signals(source))
    except SourceError:
        return 0


# --- words shared by the pages --------------------------------------------------------------

MONITOR_OFFLINE_REASON = "monitor offline"
THIS_MONITOR = "This monitor"  # the vantage: one name on every page, never 'Vantage'
MISSING = "—"  # a table cell without a value: never a raw None, nan or NaT


def incident_where(scope: str, country: object, target: object) -> str:
    """Where an incident is: 'gov.al (AL)', 'Albania', 'Region' or 'This monitor'."""
    if scope == "target":
        return f"{target} ({country})"
    if scope == "country":
        return country_name(str(country))
    if scope == "vantage":
        return THIS_MONITOR
    return scope.capitalize()


def time_axis(span: timedelta) -> alt.Axis:
    """A UTC time axis in 24-hour time (Vega's default is 12-hour: '02:48' for 14:48):
    'HH:MM' over a day or less, with the date over longer spans."""
    clock = "%H:%M" if span <= timedelta(days=1) else "%d %b %H:%M"
    return alt.Axis(format=clock, labelOverlap=True)


def fitted_window(
    earliest: datetime, window_start: datetime, now: datetime
) -> tuple[datetime, datetime]:
    """A timeline's time span: from a little before its earliest bar (never before the
    chosen window's start) to now, so ten minutes of incidents are not a sliver at the right
    of 24 hours and the ticks run up to now."""
    lead = max(timedelta(minutes=5), (now - earliest) / 10)
    return max(window_start, earliest - lead), now


def watching_since(known_since: object, now: datetime, span: timedelta) -> str | None:
    """'watching since 28 Nov 23:16 UTC' when the known history (epoch) is shorter than
    `span`, so equal figures for 24 h, 7 d and 30 d say why; None otherwise."""
    if not isinstance(known_since, int | float) or known_since != known_since:
        return None
    began = datetime.fromtimestamp(float(known_since), UTC)
    if began <= now - span + timedelta(minutes=1):
        return None
    return f"watching since {format_clock(began, now)}"


def uptime_column_config() -> dict[str, Any]:
    """Table columns for queries.uptime_wide's fields, as percentages."""
    return {
        field: st.column_config.NumberColumn(f"up {label}", format="%.2f %%")
        for label, field in queries.UPTIME_FIELDS.items()
    }


def as_percent(frame: pd.DataFrame) -> pd.DataFrame:
    """uptime_wide's fractions as percentages, for NumberColumn's '%.2f %%'."""
    fields = [f for f in queries.UPTIME_FIELDS.values() if f in frame.columns]
    return frame.assign(**{f: frame[f].astype(float) * 100.0 for f in fields})


def table(data: object, **options: Any) -> Any:
    """st.dataframe, with MISSING for missing values; every page's tables go through here."""
    return st.dataframe(data, placeholder=MISSING, **options)


def state_reason(state: str, reason: object, monitor_offline: bool) -> str:
    """Why a target is in its state, for a 'reason' cell: the failure of a down target, and
    'monitor offline' for an unknown one while the monitor cannot see (open vantage
    incident); otherwise empty."""
    if state == UNKNOWN and monitor_offline:
        return MONITOR_OFFLINE_REASON
    if state == DOWN:
        return reason_phrase(reason if isinstance(reason, str) else None)
    return ""


def monitor_offline(source: Source) -> bool:
    """Whether the monitor has an open vantage incident (it cannot see the region)."""
    return not vantage_status(source).up


# --- every page -----------------------------------------------------------------------------

LAST_FULL_RUN_KEY = "govwatch_last_full_run"


def page_title(options: DashboardOptions, now: datetime) -> str:
    """The browser tab's title for any page: says OUTAGE / REGION OUTAGE / OFFLINE."""
    try:
        status = target_status(options.source)
        incidents = open_incidents(options.source)
        vantage = vantage_status(options.source)
    except SourceError:
        return APP_NAME  # the page itself says why it cannot read the data
    outages = queries.outage_facts(status, incidents)
    title = tab_title(vantage, outages, now, timedelta(seconds=options.stale_after_s))
    return with_tamper(title, raised_signal_count(options.source))


TAMPER_TAB_TITLE = "TAMPER SIGNALS: {count} — " + APP_NAME


def with_tamper(title: str, raised: int) -> str:
    """The tab title, naming raised tamper signals when nothing louder does. Never as an
    outage: a changed site is up, and signals are a separate axis from up and down."""
    if raised and title == APP_NAME:
        return TAMPER_TAB_TITLE.format(count=raised)
    return title


def refresh_due(last_full_run_s: float | None, now_s: float, every_s: float) -> bool:
    """Whether the page should re-run: it last ran (nearly) `every_s` ago or never did. The
    timer's tick during the run itself, moments after it started, is not due."""
    return last_full_run_s is None or now_s - last_full_run_s >= 0.9 * every_s


def keep_refreshing(every_s: float) -> None:
    """Re-run the whole app (whichever page is open, and its tab title) every `every_s`.

    A fragment's own timer ticks without reloading the page; when due it asks for a full
    re-run, so every page refreshes at the same interval, not only the overview.
    """
    st.session_state[LAST_FULL_RUN_KEY] = time.monotonic()

    @st.fragment(run_every=timedelta(seconds=every_s))
    def rerun_when_due() -> None:
        if refresh_due(st.session_state.get(LAST_FULL_RUN_KEY), time.monotonic(), every_s):
            st.rerun()

    rerun_when_due()


WALL_PARAMETER = "wall"
WALL_CSS = """
<style>
header[data-testid="stHeader"] { display: none; }
div[data-testid="stMainBlockContainer"] { padding: 1rem 2rem; max-width: 100%; }
div[data-testid="stMetricValue"] { font-size: 3rem; }
div[class*="st-key-wall_down"] p { font-size: 1.6rem; }
</style>
"""


def wall_mode() -> bool:
    """`?wall=1` in the URL: the overview condensed for a screen on the wall (no menu, big
    tiles, the banners, the counts and the country map)."""
    return st.query_params.get(WALL_PARAMETER) in ("1", "true", "yes")


def page_footer(options: DashboardOptions, now: datetime) -> None:
    """Where the data comes from and when this page last refreshed."""
    st.caption(
        as_text(
            f"{options.source.caption()} · refreshed {now:%H:%M:%S} UTC,"
            f" every {options.refresh_s:g} s"
        )
    )


# --- drawing --------------------------------------------------------------------------------

# Banners are read from across a room: large type, full width.
BANNER_CSS = """
<style>
div[data-testid="stAlert"] div[data-testid="stMarkdownContainer"] p {
    font-size: 1.45rem; font-weight: 600; line-height: 1.35;
}
div[data-testid="stMainBlockContainer"] { padding-top: 3.5rem; }
div[class*="st-key-region_outage"] {
    background: #b71c1c; border: 6px solid #000000; border-radius: 0.5rem;
    padding: 1rem 1.5rem; width: 100%;
}
div[class*="st-key-region_outage"] * { color: #ffffff !important; }
div[class*="st-key-region_outage"] h2 { font-size: 2.4rem; font-weight: 800; }
div[class*="st-key-region_outage"] p { font-size: 1.6rem; font-weight: 600; line-height: 1.35; }
</style>
"""
REGION_OUTAGE_HEADING = "REGION OUTAGE — the whole region, not one country"

# Tamper signals: orange, apart from the red of down and the green of up (a changed site is
# neither), in a block of their own.
TAMPER_CSS = """
<style>
div[class*="st-key-tamper_count"] {
    background: #e65100; border-radius: 0.5rem; padding: 0.6rem 1.2rem;
}
div[class*="st-key-tamper_count"] * { color: #ffffff !important; }
div[class*="st-key-tamper_count"] p { font-size: 1.3rem; font-weight: 700; }
div[class*="st-key-tamper_signal_"] { border-left: 6px solid #e65100; padding-left: 1rem; }
</style>
"""
TAMPER_ICON = ":material/gpp_maybe:"

_BANNER_ICONS = {
    Severity.OFFLINE: ":material/cloud_off:",
    Severity.REGION_OUTAGE: ":material/crisis_alert:",
    Severity.OUTAGE: ":material/error:",
    Severity.DEGRADED: ":material/warning:",
    Severity.OK: ":material/check_circle:",
}


def render_banners(banners: Sequence[Banner]) -> None:
    st.markdown(BANNER_CSS, unsafe_allow_html=True)
    for index, banner in enumerate(banners):
        icon = _BANNER_ICONS[banner.severity]
        if banner.severity is Severity.REGION_OUTAGE:
            # Not st.error like a country: a full-width red block with its own heading.
            with st.container(key=f"region_outage_{index}"):
                st.header(f"{icon} {REGION_OUTAGE_HEADING}", anchor=False)
                st.markdown(as_text(banner.text))
        elif banner.severity is Severity.OUTAGE:
            st.error(as_text(banner.text), icon=icon)
        elif banner.severity is Severity.OFFLINE:
            # Distinct from an outage: the region may be fine, we cannot tell.
            st.warning(as_text(banner.text), icon=icon)
        elif banner.severity is Severity.DEGRADED:
            st.info(as_text(banner.text), icon=icon)
        else:
            st.success(as_text(banner.text), icon=icon)
