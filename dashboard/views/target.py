"""One target in detail: state, its tamper signals (evidence, Acknowledge), uptime over
24 h / 7 d / 30 d, response-time phases over time, recent failures with their reasons, and
what TLS and DNS said last."""

from __future__ import annotations

import time
from datetime import timedelta

import altair as alt
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from dashboard import tamper, ui
from dashboard.banner import format_clock, format_duration, reason_phrase
from dashboard.queries import SqliteSource
from dashboard.source import DOWN, MAINTENANCE, UP, UPTIME_WINDOWS, SourceError
from dashboard.text import as_text
from monitor.countries import country_name
from monitor.storage import StorageError, request_ack
from monitor.storage.acks import NOTE_MAX_CHARS

SPANS = {"24 h": timedelta(hours=24), "7 d": timedelta(days=7), "30 d": timedelta(days=30)}
PHASE_ORDER = ["resolve", "connect", "tls", "processing", "transfer"]
FEW_POINTS = 3
CLEARED_SPAN = timedelta(days=30)  # cleared tamper signals shown this far back
ACK_BY = "dashboard"  # tamper_acks.requested_by for the button

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


def acknowledge_form(history: str, target: str, kind: str, form_key: str) -> None:
    """The Acknowledge button with an optional note: queues the acknowledgement in the
    history for the daemon (the one write the dashboard makes) and says what became of it
    if the daemon answers within a few seconds."""
    with st.form(key=form_key, border=False, enter_to_submit=False):
        note = st.text_input(
            "Note (optional): why the change is fine, a ticket",
            max_chars=NOTE_MAX_CHARS,
            key=f"{form_key}_note",
        )
        pressed = st.form_submit_button("Acknowledge", icon=":material/task_alt:")
    if not pressed:
        return
    try:
        ack_id = request_ack(
            history, target, kind, note=note.strip() or None, by=ACK_BY, now=time.time()
        )
        with st.spinner("Waiting for the daemon…"):
            outcome = tamper.wait_for_outcome(history, ack_id)
    except StorageError as exc:
        st.error(as_text(f"Cannot queue the acknowledgement — {exc}"), icon=":material/error:")
        return
    ui.tamper_signals.clear()  # the next run shows the signal cleared, not the cached one
    done = outcome is not None and outcome.outcome == "cleared"
    (st.success if done else st.info)(as_text(tamper.ack_result(ack_id, outcome, target)))


def tamper_section(target: str) -> None:
    """Raised signals with their evidence, old against new, each with Acknowledge (SQLite
    source only: Prometheus knows only that a signal is raised); then the signals cleared in
    the last 30 days. Every string from the evidence, the summary and the note is escaped:
    an attacker's page wrote the title and the excerpt."""
    history = options.source.path if isinstance(options.source, SqliteSource) else None
    can_acknowledge = history is not None and not options.read_only
    try:
        signals = ui.tamper_signals(options.source, target, ui.window_start(now, CLEARED_SPAN))
    except SourceError as exc:
        st.warning(as_text(f"Cannot read the tamper signals — {exc}"), icon=ui.TAMPER_ICON)
        return
    raised = signals[signals["cleared_at"].isna()]
    cleared = signals[signals["cleared_at"].notna()]
    if raised.empty:
        st.caption("No tamper signal raised.")
    else:
        st.markdown(ui.TAMPER_CSS, unsafe_allow_html=True)
        st.subheader(f"{ui.TAMPER_ICON} Tamper signals: {len(raised)} raised", anchor=False)
        if history is None:
            st.caption(
                "Prometheus says only that these are raised. The evidence and the Acknowledge "
                "button are on the dashboard over the daemon's history (govwatch dashboard "
                "--db), or run govwatch ack TARGET KIND where the daemon runs."
            )
        elif not can_acknowledge:
            st.caption(
                "This dashboard is read-only: acknowledge with govwatch ack TARGET KIND "
                "where the daemon runs."
            )
    for index, signal in enumerate(raised.itertuples(index=False)):
        kind = str(signal.kind)
        # Known kinds key the widgets, so a note typed for one signal stays with it when
        # another is raised or cleared meanwhile.
        key = kind if kind in tamper.KIND_TITLES else f"other_{index}"
        with st.container(key=f"tamper_signal_{key}"):
            raised_at = (
                ""
                if pd.isna(signal.raised_at)
                else f" — raised {format_clock(signal.raised_at.to_pydatetime(), now)}"
            )
            st.markdown(f"**{as_text(tamper.kind_title(kind))}**{as_text(raised_at)}")
            if signal.summary:
                st.markdown(as_text(signal.summary))
            for label, text in tamper.evidence_lines(kind, signal.evidence):
                # The label too: for a kind this dashboard does not know it is the JSON key.
                st.markdown(f"**{as_text(label)}:** {as_text(text)}")
            if can_acknowledge and history is not None:
                acknowledge_form(history, target, kind, f"ack_{key}")
    if not cleared.empty:
        st.markdown("**Tamper signals cleared in the last 30 days**")
        ui.table(
            cleared.assign(kind_shown=cleared["kind"].map(tamper.kind_title)),
            hide_index=True,
            column_order=["kind_shown", "raised_at", "cleared_at", "cleared_by", "note", "summary"],
            column_config={
                "kind_shown": st.column_config.TextColumn("signal"),
                "raised_at": st.column_config.DatetimeColumn("raised", format="D MMM HH:mm"),
                "cleared_at": st.column_config.DatetimeColumn("cleared", format="D MMM HH:mm"),
                "cleared_by": st.column_config.TextColumn("by"),
                "summary": st.column_config.TextColumn("what changed"),
            },
        )


tamper_section(name)

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
