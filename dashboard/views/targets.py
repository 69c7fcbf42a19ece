"""Targets: every monitored service in one filterable, sortable table, with a latency
sparkline per row. Selecting a row opens its drill-down page."""

from __future__ import annotations

import streamlit as st

from dashboard import queries, tiles, ui
from dashboard.source import STATES, UPTIME_WINDOWS, SourceError
from dashboard.text import as_text
from monitor.countries import country_name

SPARKLINE_POINTS = 30

options = ui.options()
now = ui.utc_now()

st.header("Targets")
try:
    table = ui.target_table(options.source, now.replace(second=0, microsecond=0))
    sparklines = ui.latency_sparklines(options.source, SPARKLINE_POINTS)
    offline = ui.monitor_offline(options.source)
    strips = ui.state_strips(options.source, now.replace(second=0, microsecond=0))
    uptime = queries.uptime_wide(
        ui.uptime_table(options.source, now.replace(second=0, microsecond=0)), "target"
    )
except SourceError as exc:
    st.error(as_text(f"Cannot read the monitor's data — {exc}"))
    st.stop()

filters = st.columns([2, 2, 1, 2])
countries = filters[0].multiselect(
    "country", sorted(table["country"].unique()), format_func=country_name, key="f_country"
)
sectors = filters[1].multiselect("sector", sorted(table["sector"].unique()), key="f_sector")
states = filters[2].multiselect("state", list(STATES), format_func=tiles.state_label, key="f_state")
search = filters[3].text_input("name contains", key="f_search").strip().lower()

shown = table
if countries:
    shown = shown[shown["country"].isin(countries)]
if sectors:
    shown = shown[shown["sector"].isin(sectors)]
if states:
    shown = shown[shown["state"].isin(states)]
if search:
    shown = shown[shown["target"].str.lower().str.contains(search, regex=False)]

shown = shown.merge(sparklines, on="target", how="left")
shown = ui.as_percent(shown.merge(uptime, on="target", how="left"))
shown = shown.merge(strips, on="target", how="left")
shown = shown.assign(
    response_ms=shown["response_s"] * 1000.0,
    state_shown=shown["state"].map(tiles.state_label),
    why=[
        ui.state_reason(state, reason, offline)
        for state, reason in zip(shown["state"], shown["reason"], strict=True)
    ],
    dnssec=shown["dnssec_signed"].map({True: "signed", False: "unsigned"}).fillna(""),
    latency_ms=shown["latency_ms"].map(lambda v: v if isinstance(v, list) else []),
    strip=shown["states"].map(tiles.history_strip),
    history=shown["known_since"].map(
        lambda t: ui.watching_since(t, now, UPTIME_WINDOWS[-1][1]) or ""
    ),
).reset_index(drop=True)

st.caption(f"{len(shown)} of {len(table)} targets · select a row for its details")
selection = ui.table(
    shown,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="targets_table",
    column_order=[
        "country",
        "target",
        "sector",
        "state_shown",
        "why",
        *queries.UPTIME_FIELDS.values(),
        "history",
        "response_ms",
        "latency_ms",
        "strip",
        "tls_days_left",
        "dnssec",
    ],
    column_config={
        "state_shown": st.column_config.TextColumn("state"),
        "why": st.column_config.TextColumn("reason"),
        **ui.uptime_column_config(),
        "history": st.column_config.TextColumn("history"),
        "response_ms": st.column_config.NumberColumn("response (ms)", format="%.0f"),
        "latency_ms": st.column_config.LineChartColumn(
            f"last {SPARKLINE_POINTS} responses (ms)", y_min=0, color="blue"
        ),
        "strip": st.column_config.ImageColumn(
            "last 24 h",
            width="medium",  # the whole strip, the newest hour included
            help="one slot per hour, oldest first: green up, red down (any time that hour), "
            "purple maintenance, grey unknown",
        ),
        "tls_days_left": st.column_config.NumberColumn(
            "TLS days left",
            format="%.0f",
            help="earliest notAfter in the presented chain (probe_ssl_earliest_cert_expiry)",
        ),
        "dnssec": st.column_config.TextColumn("DNSSEC"),
    },
)
rows = selection.selection.rows
if rows:
    st.switch_page("views/target.py", query_params={"target": str(shown.loc[rows[0], "target"])})
