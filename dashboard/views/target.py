"""One target in detail: state, uptime over 24 h / 7 d / 30 d, response-time phases over
time, recent failures with their reasons, and what TLS and DNS said last."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import streamlit as st

from dashboard import ui
from dashboard.banner import format_clock, format_duration, reason_phrase
from dashboard.source import DOWN, MAINTENANCE, UP, UPTIME_WINDOWS, SourceError
from dashboard.text import as_text
from monitor.countries import country_name

SPANS = {"24 h": timedelta(hours=24), "7 d": timedelta(days=7), "30 d": timedelta(days=30)}
PHASE_ORDER = ["resolve", "connect", "tls", "processing", "transfer"]
FEW_POINTS = 3

options = ui.options()
now = ui.utc_now()

try:
    status = ui.target_status(options.source)
except SourceError as exc:
    st.error(as_text(f"Cannot read the monitor's data — {exc}"))
    st.stop()

names = list(status["target"])
wanted = st.query_params.get("target")
if not names:
    st.info("No targets yet.")
    st.stop()
name = st.selectbox(
    "target", names, index=names.index(wanted) if wanted in names else 0, key="target_pick"
)
st.query_params["target"] = name
row = status[status["target"] == name].iloc[0]

st.header(as_text(name))
st.caption(
    as_text(
        f"{country_name(str(row['country']))} · {row['sector']}"
        + (f" · {row['url']}" if isinstance(row["url"], str) else "")
    )
)
state = str(row["state"])
since = row["since"]
since_text = "" if since is None or since != since else f" since {format_clock(since, now)}"
if state == DOWN:
    st.error(as_text(f"Down{since_text} — {reason_phrase(row['reason'])}"), icon=":material/error:")
elif state == UP:
    st.success(f"Up{since_text}", icon=":material/check_circle:")
elif state == MAINTENANCE:
    # Planned: neither up nor down, and out of the uptime figures below.
    st.info(as_text(f"In maintenance{since_text}"), icon=":material/build:")
else:
    why = ui.state_reason(state, row["reason"], ui.monitor_offline(options.source))
    st.warning(
        as_text(f"State unknown{since_text}" + (f" — {why}" if why else "")), icon=":material/help:"
    )

uptime = ui.target_uptime(options.source, name, now.replace(second=0, microsecond=0))
history = ui.uptime_table(options.source, now.replace(second=0, microsecond=0))
known_since = history.loc[history["target"] == name, "known_since"].min()
spans = dict(UPTIME_WINDOWS)
cells = st.columns(len(uptime))
for cell, item in zip(cells, uptime.itertuples(index=False), strict=True):
    value = "—" if item.uptime != item.uptime else f"{item.uptime:.3%}"
    down = (
        ""
        if item.down_s != item.down_s
        else f"down {format_duration(timedelta(seconds=item.down_s))}"
    )
    cell.metric(f"uptime {item.window}", value, help=down or None)
    # Equal figures for 24 h, 7 d and 30 d after two minutes: say how long we have watched.
    shorter = ui.watching_since(known_since, now, spans.get(str(item.window), timedelta()))
    if shorter:
        cell.caption(shorter)

st.subheader("Response time by phase")
span_label = st.segmented_control("span", list(SPANS), default="24 h", key="phase_span")
span = SPANS[span_label or "24 h"]
phases = ui.target_phases(
    options.source, name, ui.window_start(now, span), now.replace(second=0, microsecond=0)
)
if phases.empty:
    st.info(f"No successful HTTP probe in the last {span_label}.")
else:
    chart = (
        alt.Chart(
            phases.assign(
                ms=phases["seconds"] * 1000.0,
                at=phases["time"].dt.strftime("%d %b %H:%M UTC"),
            )
        )
        # Points as well while there are few buckets: an area of one point draws nothing.
        .mark_area(point=phases["time"].nunique() <= FEW_POINTS)
        .encode(
            x=alt.X("time:T", title=None, scale=alt.Scale(type="utc"), axis=ui.time_axis(span)),
            y=alt.Y("ms:Q", stack="zero", title="ms"),
            color=alt.Color("phase:N", sort=PHASE_ORDER),
            order=alt.Order("phase_rank:Q"),
            tooltip=["at:N", "phase:N", alt.Tooltip("ms:Q", format=".1f")],
        )
        .transform_calculate(phase_rank=f"indexof({PHASE_ORDER!r}, datum.phase)")
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch")

left, right = st.columns(2, gap="large")
with left:
    st.subheader("Recent failures")
    failures = ui.target_failures(options.source, name, 50)
    if failures.empty:
        st.success("No failed probe stored.", icon=":material/check_circle:")
    else:
        ui.table(
            failures.assign(
                why=failures["reason"].map(lambda r: reason_phrase(r) if isinstance(r, str) else "")
            ),
            hide_index=True,
            column_order=["time", "probe", "why", "error"],
            column_config={
                "time": st.column_config.DatetimeColumn(format="D MMM HH:mm:ss"),
                "why": st.column_config.TextColumn("reason"),
            },
        )
with right:
    st.subheader("TLS and DNS")
    details = ui.target_details(options.source, name)
    if details.empty:
        st.info("No TLS or DNS result stored yet.")
    else:
        for probe in ("tls", "dns", "http"):
            part = details[details["probe"] == probe]
            if part.empty:
                continue
            st.markdown(f"**{probe.upper()}**")
            ui.table(part[["field", "value"]], hide_index=True)
