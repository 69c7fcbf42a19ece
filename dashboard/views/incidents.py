"""Incidents: what is open now (scope, start, duration, affected, reason, shared hint) and a
timeline of every incident over the last 24 hours, 7 days or 30 days."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import altair as alt
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from dashboard import ui
from dashboard.banner import format_clock, format_duration, reason_phrase
from dashboard.queries import SqliteSource
from dashboard.source import SourceError
from dashboard.text import as_text

SPANS = {"24 h": timedelta(hours=24), "7 d": timedelta(days=7), "30 d": timedelta(days=30)}
TIMELINE_ROWS = 60  # lanes in the Gantt chart; the rest are listed below it

options = ui.options()
now = ui.utc_now()


def where(row: Mapping[str, Any]) -> str:
    return ui.incident_where(str(row["scope"]), row["country"], row["target"])


def describe(frame: pd.DataFrame) -> pd.DataFrame:
    """Human columns for a list of incidents."""
    if frame.empty:
        return frame.assign(where=[], since=[], lasting=[], reason=[])
    ends = frame["ended_at"].map(lambda t: now if pd.isna(t) else t.to_pydatetime())
    return frame.assign(
        where=frame.apply(where, axis=1),
        since=frame["started_at"].map(lambda t: format_clock(t.to_pydatetime(), now)),
        lasting=[
            format_duration(end - start.to_pydatetime())
            for start, end in zip(frame["started_at"], ends, strict=True)
        ],
        reason=frame["dominant_reason"].map(
            lambda r: reason_phrase(r) if isinstance(r, str) else ""
        ),
    )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def show_incidents(frame: pd.DataFrame) -> None:
    ui.table(
        describe(frame).assign(hint=frame["hint"].fillna("")),
        hide_index=True,
        column_order=["scope", "where", "since", "lasting", "affected_count", "reason", "hint"],
        column_config={
            "affected_count": st.column_config.NumberColumn("affected"),
            "hint": st.column_config.TextColumn("shared infrastructure", width="large"),
        },
    )


st.header("Incidents")
try:
    open_now = ui.open_incidents(options.source)
except SourceError as exc:
    st.error(as_text(f"Cannot read the monitor's data — {exc}"))
    st.stop()

serious = open_now[open_now["scope"] != "target"]
singles = open_now[open_now["scope"] == "target"]
st.subheader(
    f"Open now: {plural(len(serious), 'outage')}, {plural(len(singles), 'single-service incident')}"
)
if open_now.empty:
    st.success("No open incident.", icon=":material/check_circle:")
else:
    show_incidents(open_now)
    with st.expander("Affected services of the open outages"):
        for row in serious.itertuples(index=False):
            st.markdown(f"**{as_text(where(row._asdict()))}** ({row.affected_count})")
            st.text(", ".join(row.affected) or "—")

st.subheader("Timeline")
span_label = st.segmented_control("span", list(SPANS), default="24 h", key="incident_span")
span = SPANS[span_label or "24 h"]
start = ui.window_start(now, span)
history = ui.incidents_since(options.source, start)
if isinstance(options.source, SqliteSource):  # a report needs the history; Prometheus has none
    history_source: SqliteSource = options.source
    first_day, last_day = f"{start:%Y-%m-%d}", f"{now:%Y-%m-%d}"
    # The data is a callable: the report is built when the button is pressed, not on
    # every refresh of the page (30 days of 10,000 targets take seconds).
    st.download_button(
        f"Download the availability report for the last {span_label or '24 h'} (HTML)",
        data=lambda: history_source.availability_report(start, now, "html"),
        file_name=f"govwatch-report-{first_day}--{last_day}.html",
        mime="text/html",
        icon=":material/download:",
        on_click="ignore",
        help="What `govwatch report --format html` writes for this period: availability per "
        "country, sector and service (this monitor's blind time and maintenance left out), "
        "incidents, outages, posture and tamper signals; one self-contained page.",
    )
include_targets = st.toggle("include single-service incidents", value=False)
if not include_targets:
    history = history[history["scope"] != "target"]

if history.empty:
    st.info(f"No incident in the last {span_label}.")
else:
    lanes = describe(history).assign(
        begin=history["started_at"].map(lambda t: max(t, pd.Timestamp(start))),
        end=history["ended_at"].map(lambda t: pd.Timestamp(now) if pd.isna(t) else t),
        open=history["ended_at"].isna().map({True: "open", False: "closed"}),
    )
    lanes["reason"] = lanes["reason"].replace("", "—")
    shown = lanes.head(TIMELINE_ROWS)
    first, last = ui.fitted_window(shown["begin"].min().to_pydatetime(), start, now)
    chart = (
        alt.Chart(shown)
        .mark_bar(cornerRadius=3, height={"band": 0.8})
        .encode(
            x=alt.X(
                "begin:T",
                title=None,
                # UTC on the axis, as everywhere on the dashboard, not the browser's zone
                scale=alt.Scale(
                    type="utc", domain=[first.isoformat(), last.isoformat()], nice=False
                ),
                axis=ui.time_axis(last - first),
            ),
            x2="end:T",
            # Every lane labelled: Vega drops labels it finds overlapping or too long.
            y=alt.Y(
                "where:N",
                title=None,
                sort=alt.EncodingSortField("begin", op="max", order="descending"),
                axis=alt.Axis(labelOverlap=False, labelLimit=360),
            ),
            color=alt.Color("reason:N", title="dominant reason"),
            opacity=alt.condition("datum.open == 'open'", alt.value(1.0), alt.value(0.55)),
            tooltip=["scope", "where", "since", "lasting", "affected_count", "reason", "hint"],
        )
        .properties(height=max(120, 26 * shown["where"].nunique()))
    )
    st.altair_chart(chart, width="stretch")
    if len(lanes) > TIMELINE_ROWS:
        st.caption(f"{TIMELINE_ROWS} newest of {len(lanes)} incidents shown")
    show_incidents(history)
