"""Overview: the region at a glance — banners, the tile map, the counts, what is down now,
and the raised tamper signals (orange: up, but no longer itself; never an outage).

With `?wall=1` in the URL it is condensed for a wall screen: no menu, no tables, big tiles.
Like every page it re-runs every `--refresh` seconds (dashboard/app.py), updating in place.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from dashboard import queries, tiles, ui
from dashboard.banner import format_clock, format_duration, reason_phrase, status_banners
from dashboard.source import DOWN, MAINTENANCE, UNKNOWN, UP, SourceError
from dashboard.text import as_text

TILE_PX = 112
WALL_TILE_PX = 136  # ?wall=1: six rows of tiles under the banner on a 1080-line screen
ROW_PX = 35  # a table's row height
WALL_DOWN_ROWS = 12  # ?wall=1: services listed beside the map; more are counted
TAMPER_LISTED = 10  # raised tamper signals listed; more are counted
SUMMARY_CHARS = 160  # a signal's summary in the list, cut here (the target page has it all)

options = ui.options()
wall = ui.wall_mode()


def live_overview() -> None:
    now = ui.utc_now()
    try:
        status = ui.target_status(options.source)
        incidents = ui.open_incidents(options.source)
        vantage = ui.vantage_status(options.source)
    except SourceError as exc:
        st.error(as_text(f"Cannot read the monitor's data — {exc}"), icon=":material/database:")
        return

    counts = status["state"].value_counts().to_dict()
    outages = queries.outage_facts(status, incidents)
    ui.render_banners(
        status_banners(vantage, outages, counts, now, timedelta(seconds=options.stale_after_s))
    )

    summary = queries.summarize_countries(status)
    country_of = dict(zip(status["target"], status["country"], strict=True))
    per_target = ui.uptime_table(options.source, now.replace(second=0, microsecond=0))
    by_country = queries.uptime_wide(
        per_target.assign(country=per_target["target"].map(country_of)), "country"
    )
    summary_shown = ui.as_percent(summary.merge(by_country, on="country", how="left"))
    outage_countries = queries.countries_in_outage(incidents)
    up, down, unknown, maintenance = (
        int(counts.get(s, 0)) for s in (UP, DOWN, UNKNOWN, MAINTENANCE)
    )
    cells = st.columns(6)
    cells[0].metric("Services up", f"{up} / {len(status)}")
    cells[1].metric("Down", down)
    cells[2].metric("Unknown", unknown)
    cells[3].metric("Maintenance", maintenance)
    cells[4].metric("Countries in outage", len(outage_countries))
    if vantage.last_update is not None:
        age = format_duration(now - vantage.last_update)
        cells[5].metric("Newest data", f"{age} ago")
    else:
        cells[5].metric("Newest data", "none")
    tamper_overview(now)

    tile_map = tiles.tile_chart(
        tiles.tile_frame(summary, outage_countries), tile_px=WALL_TILE_PX if wall else TILE_PX
    )
    if wall:
        # The wall: banners, counts, the map and what is down in large type; tables are
        # for the desk.
        st.markdown(ui.WALL_CSS, unsafe_allow_html=True)
        map_column, down_column = st.columns([3, 2], gap="large")
        with map_column:
            st.altair_chart(tile_map, width="content")
        with down_column, st.container(key="wall_down"):  # the key: its text is larger
            wall_down_list(status)
        return
    map_column, table_column = st.columns(2, gap="large")
    with map_column:
        st.altair_chart(tile_map, width="content")
    with table_column:
        ui.table(
            summary_shown,
            hide_index=True,
            height=ROW_PX * (len(summary) + 1) + 3,  # every country, no scrolling
            column_order=[
                "name",
                "up",
                "down",
                "maintenance",
                "unknown",
                "availability",
                *queries.UPTIME_FIELDS.values(),
            ],
            column_config={
                **ui.uptime_column_config(),
                "name": st.column_config.TextColumn("country"),
                "availability": st.column_config.ProgressColumn(
                    "up (of known)", min_value=0.0, max_value=1.0, format="percent", color="auto"
                ),
            },
        )

    serious = incidents[incidents["scope"] != "target"]
    if not serious.empty:
        st.subheader("Open outages")
        shown = serious.assign(
            where=[
                ui.incident_where(str(scope), country, None)
                for scope, country in zip(serious["scope"], serious["country"], strict=True)
            ],
            since=serious["started_at"].map(lambda t: format_clock(t.to_pydatetime(), now)),
            lasting=serious["started_at"].map(lambda t: format_duration(now - t.to_pydatetime())),
            reason=serious["dominant_reason"].map(
                lambda r: reason_phrase(r) if isinstance(r, str) else ""
            ),
        )
        ui.table(
            shown,
            hide_index=True,
            column_order=["where", "since", "lasting", "affected_count", "reason", "hint"],
            column_config={
                "affected_count": st.column_config.NumberColumn("affected"),
                "hint": st.column_config.TextColumn("shared infrastructure"),
            },
        )

    down_now = status[status["state"] == DOWN]
    if not down_now.empty:
        st.subheader(f"Down now ({len(down_now)})")
        ui.table(
            down_now.head(500).assign(
                why=down_now["reason"].map(lambda r: reason_phrase(r) if isinstance(r, str) else "")
            ),
            hide_index=True,
            column_order=["country", "target", "sector", "why", "since"],
            column_config={
                "why": st.column_config.TextColumn("reason"),
                "since": st.column_config.DatetimeColumn(format="D MMM HH:mm"),
            },
        )


def tamper_overview(now: datetime) -> None:
    """How many tamper signals are raised, in an orange block of its own, and at the desk
    each one (country, target, kind, when, what changed) linking to its target's page,
    where the evidence and the Acknowledge button are."""
    try:
        signals = ui.tamper_signals(options.source)
    except SourceError as exc:
        st.warning(as_text(f"Cannot read the tamper signals — {exc}"), icon=ui.TAMPER_ICON)
        return
    if signals.empty:
        st.caption("Tamper signals: 0")
        return
    st.markdown(ui.TAMPER_CSS, unsafe_allow_html=True)
    with st.container(key="tamper_count"):
        st.markdown(
            f"{ui.TAMPER_ICON} Tamper signals: {len(signals)} — up, but no longer"
            " looking like themselves"
        )
    if wall:
        return
    for row in signals.head(TAMPER_LISTED).itertuples(index=False):
        raised = (
            ""
            if pd.isna(row.raised_at)
            else f" · raised {format_clock(row.raised_at.to_pydatetime(), now)}"
        )
        summary = str(row.summary or "")
        if len(summary) > SUMMARY_CHARS:
            summary = summary[: SUMMARY_CHARS - 1] + "…"
        st.page_link(
            ui.TARGET_PAGE,
            label=as_text(
                f"{row.country or '??'} · {row.target} · {row.kind}{raised}"
                + (f" — {summary}" if summary else "")
            ),
            icon=ui.TAMPER_ICON,
            query_params={"target": str(row.target)},
        )
    if len(signals) > TAMPER_LISTED:
        st.caption(f"… and {len(signals) - TAMPER_LISTED} more")


def wall_down_list(status: pd.DataFrame) -> None:
    """Beside the map on the wall: every service down now, country first, in large type."""
    down_now = status[status["state"] == DOWN].sort_values(["country", "target"])
    if down_now.empty:
        st.subheader("No service down", anchor=False)
        return
    st.subheader(f"Down now ({len(down_now)})", anchor=False)
    for row in down_now.head(WALL_DOWN_ROWS).itertuples(index=False):
        why = reason_phrase(row.reason) if isinstance(row.reason, str) else ""
        st.markdown(as_text(f"{row.country} · {row.target}" + (f" — {why}" if why else "")))
    if len(down_now) > WALL_DOWN_ROWS:
        st.markdown(f"… and {len(down_now) - WALL_DOWN_ROWS} more")


live_overview()
