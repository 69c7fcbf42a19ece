"""Countries: availability per country per day, side by side (time-weighted from the
confirmed state changes; unknown time, e.g. while the monitor was offline, is left out)."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import streamlit as st

from dashboard import queries, ui
from monitor.countries import country_name

SPANS = {"7 d": 7, "14 d": 14, "30 d": 30}

options = ui.options()
now = ui.utc_now()

st.header("Availability per country per day")
span_label = st.segmented_control("span", list(SPANS), default="14 d", key="country_span")
days = SPANS[span_label or "14 d"]
since = queries.utc_day(now) - timedelta(days=days - 1)
try:
    daily = ui.daily_availability(options.source, since, now.replace(second=0, microsecond=0))
except queries.SourceError as exc:
    st.error(f"Cannot read the monitor's data — {exc}")
    st.stop()

if daily.empty:
    st.info("No history yet.")
    st.stop()

daily = daily.assign(
    name=daily["country"].map(country_name),
    date=daily["day"].dt.strftime("%d %b"),
    percent=daily["availability"] * 100.0,
)
heatmap = (
    alt.Chart(daily)
    .mark_rect(stroke="white", strokeWidth=1)
    .encode(
        x=alt.X("name:N", title=None, axis=alt.Axis(labelAngle=-35, orient="top", labelLimit=220)),
        y=alt.Y(
            "date:O",
            title=None,
            sort=alt.SortField("day", order="descending"),
            axis=alt.Axis(labelOverlap=False),
        ),
        color=alt.Color(
            "percent:Q",
            title="% up",
            scale=alt.Scale(
                domain=[0, 50, 90, 99, 100],
                range=["#b71c1c", "#ef6c00", "#fdd835", "#9ccc65", "#2e7d32"],
            ),
        ),
        tooltip=["name:N", "date:O", alt.Tooltip("percent:Q", format=".2f")],
    )
    .properties(height=max(200, 24 * days))
)
labels = (
    alt.Chart(daily.dropna(subset=["percent"]))
    .mark_text(fontSize=11)
    .encode(
        x="name:N",
        y=alt.Y("date:O", sort=alt.SortField("day", order="descending")),
        text=alt.Text("percent:Q", format=".1f"),
    )
)
st.altair_chart(heatmap + labels, width="stretch")

pivot = daily.pivot_table(index="day", columns="name", values="percent", dropna=False)
pivot = pivot.sort_index(ascending=False)
pivot.index = pivot.index.strftime("%Y-%m-%d")
st.dataframe(
    pivot,
    column_config={name: st.column_config.NumberColumn(format="%.2f %%") for name in pivot.columns},
)
