"""Countries: availability per country per day, side by side (time-weighted from the
reported state changes; unknown time, and any time the monitor itself was blind, is left
out). A day with no known time at all is "no data", never 0 %."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import streamlit as st

from dashboard import ui
from dashboard.source import SourceError, utc_day
from dashboard.text import as_text
from monitor.countries import country_name

SPANS = {"7 d": 7, "14 d": 14, "30 d": 30}

options = ui.options()
now = ui.utc_now()

st.header("Availability per country per day")
span_label = st.segmented_control("span", list(SPANS), default="14 d", key="country_span")
days = SPANS[span_label or "14 d"]
since = utc_day(now) - timedelta(days=days - 1)
try:
    daily = ui.daily_availability(options.source, since, now.replace(second=0, microsecond=0))
except SourceError as exc:
    st.error(as_text(f"Cannot read the monitor's data — {exc}"))
    st.stop()

if daily.empty:
    st.info("No history yet.")
    st.stop()

daily = daily.assign(
    name=daily["country"].map(country_name),
    date=daily["day"].dt.strftime("%d %b"),
    percent=daily["availability"] * 100.0,
)
known = daily.dropna(subset=["percent"])
x = alt.X("name:N", title=None, axis=alt.Axis(labelAngle=-35, orient="top", labelLimit=220))
y = alt.Y(
    "date:O",
    title=None,
    sort=alt.SortField("day", order="descending"),
    axis=alt.Axis(labelOverlap=False),
)
# Days without any known state (every service unknown, or the monitor blind): grey, "no data".
no_data = (
    alt.Chart(daily[daily["percent"].isna()])
    .encode(x=x, y=y, tooltip=["name:N", "date:O", alt.Tooltip("status:N", title="availability")])
    .transform_calculate(status="'no data'")
)
heatmap = (
    alt.Chart(known)
    .mark_rect(stroke="white", strokeWidth=1)
    .encode(
        x=x,
        y=y,
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
)
labels = (
    alt.Chart(known)
    .mark_text(fontSize=11)
    .encode(
        x="name:N",
        y=alt.Y("date:O", sort=alt.SortField("day", order="descending")),
        text=alt.Text("percent:Q", format=".1f"),
    )
)
chart = (
    no_data.mark_rect(stroke="white", strokeWidth=1, color="#eceff1")
    + no_data.mark_text(fontSize=10, color="#78909c").encode(text="status:N")
    + heatmap
    + labels
).properties(height=max(200, 24 * days))
st.altair_chart(chart, width="stretch")
st.caption("No data: every service's state was unknown that day, or the monitor was offline.")

pivot = daily.pivot_table(index="day", columns="name", values="percent", dropna=False)
pivot = pivot.sort_index(ascending=False)
pivot.index = pivot.index.strftime("%Y-%m-%d")
ui.table(
    pivot,
    column_config={name: st.column_config.NumberColumn(format="%.2f %%") for name in pivot.columns},
)
