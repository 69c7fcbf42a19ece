"""The SQLite source (`SqliteSource`) and what pages compute from any source's frames.

SqliteSource reads the daemon's history database (schema: monitor/storage/schema.py's
docstring), opened read-only through monitor.storage's readers, so the dashboard never
blocks the writer. It implements dashboard.source.Source; dashboard.prom.PrometheusSource
is the other one.

No Streamlit here and no caching (the app caches); no import of probes/ or the
scheduler. Times in frames are pandas Timestamps in UTC.

A target's state is the one reported state (target_status.state, the transitions):
what the daemon's API and metrics show, 'unknown' while the monitor is blind or a
failure waits for the canaries' verification. No page derives it from anything else.

Availability and uptime are time-weighted from the state transitions, not counted
from raw probe rows: transitions are sparse, so 30 days of history for 10,000
targets stays cheap, and "down" means what the monitor reported. Unknown time counts
as neither up nor down, and neither does any time covered by a 'vantage' incident
(the monitor itself was blind), whatever the transitions say about it. With no
known time left, availability is NaN ("no data"), never 0.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from dashboard.banner import OutageFacts, SharedHint, VantageFacts, hints_text
from dashboard.source import (
    COUNTRY_COLUMNS,
    DAILY_COLUMNS,
    DETAIL_COLUMNS,
    DOWN,
    FAILURE_COLUMNS,
    INCIDENT_COLUMNS,
    MAINTENANCE,
    PHASE_COLUMNS,
    SIGNAL_COLUMNS,
    SPARKLINE_COLUMNS,
    STATUS_COLUMNS,
    STRIP_BUCKETS,
    STRIP_COLUMNS,
    STRIP_SPAN,
    TABLE_COLUMNS,
    TARGET_UPTIME_COLUMNS,
    UNKNOWN,
    UP,
    UPTIME_COLUMNS,
    UPTIME_WINDOWS,
    Source,
    SourceError,
    empty,
    phase_bucket_s,
    to_time,
    utc_day,
)
from monitor.availability import state_segments as state_segments
from monitor.availability import without_blind as without_blind
from monitor.countries import country_name
from monitor.storage import StorageError, StoredSignal, open_history, read_signals, schema_version
from probes.results import certificate_name

# The oldest schema (monitor/storage/schema.py) these queries understand: version 2 has the
# reported state in target_status.state and the confirmed one in confirmed_state.
MIN_SCHEMA_VERSION = 2
# The first schema with the tamper_signals table (monitor/storage/schema.py, migration 3).
TAMPER_SCHEMA_VERSION = 3
# At most this many signals per read: a page shows a handful; a flood is counted, not listed.
SIGNAL_LIMIT = 1000
# The newest TLS / DNS fact is looked for this far back (bounds the index scan per target).
FACT_LOOKBACK = timedelta(days=2)


# --- the SQLite source ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SqliteSource:
    """The daemon's history database (its schema: monitor/storage/schema.py), opened
    read-only through monitor.storage for each call, so the dashboard never blocks the
    daemon's writes. A `Source` (dashboard.source)."""

    path: str

    def caption(self) -> str:
        return f"data: {self.path} (read-only)"

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived read-only connection (monitor.storage's open_history: the one way
        to open the history read-only). WAL readers never block the daemon's writes."""
        try:
            with open_history(self.path, min_version=MIN_SCHEMA_VERSION) as conn:
                yield conn
        except StorageError as exc:
            raise SourceError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise SourceError(f"{Path(self.path)}: {exc}") from exc

    def availability_report(self, start: datetime, end: datetime, format_name: str) -> str:
        """`govwatch report` of [start, end) in `format_name` (monitor.report): what the
        Incidents page's download button offers. Built only when it is asked for."""
        from monitor.report.command import report_text

        with self.connect() as conn:
            return report_text(conn, start, end, datetime.now(UTC), format_name)

    def target_status(self) -> pd.DataFrame:
        """Every monitored target's reported state (STATUS_COLUMNS), cheap enough for every refresh."""
        with self.connect() as conn:
            return _status_frame(_frame(conn, _STATUS_SQL))

    def target_table(self, now: datetime) -> pd.DataFrame:
        """target_status plus the newest facts per target (TABLE_COLUMNS): response time of the
        last HTTP probe (NaN if it failed), earliest certificate expiry, DNSSEC signed or not."""
        with self.connect() as conn:
            status = _status_frame(_frame(conn, _STATUS_SQL))
            facts = _frame(conn, _TABLE_FACTS_SQL, {"since": _epoch(now - FACT_LOOKBACK)})
        return _with_facts(status, facts, now)

    def vantage_status(self) -> VantageFacts:
        """Is the monitor online (no open 'vantage' incident), and how fresh is its newest data?"""
        with self.connect() as conn:
            meta = _meta(conn)
            incident = conn.execute(
                "SELECT started_at, affected_count FROM incidents "
                "WHERE ended_at IS NULL AND scope = 'vantage' ORDER BY started_at LIMIT 1"
            ).fetchone()
            newest_status = conn.execute("SELECT max(updated_at) FROM target_status").fetchone()[0]
            canaries, canaries_down = conn.execute(
                "SELECT count(*), coalesce(sum(state = 'down'), 0) FROM target_status "
                "WHERE kind = 'canary'"
            ).fetchone()
        last_update = _float(meta.get("last_flush_at"))
        if last_update is None and newest_status is not None:
            last_update = float(newest_status)
        if incident is None:
            return VantageFacts(
                up=True,
                canaries_failing=int(canaries_down),
                canaries_total=int(canaries),
                last_update=_utc(last_update),
            )
        return VantageFacts(
            up=False,
            since=_utc(float(incident[0])),
            # a vantage incident's affected are the failing canaries
            canaries_failing=max(int(incident[1]), int(canaries_down)),
            canaries_total=int(canaries),
            last_update=_utc(last_update),
        )

    def open_incidents(self) -> pd.DataFrame:
        """Incidents still open (INCIDENT_COLUMNS), vantage and region first, then oldest first."""
        with self.connect() as conn:
            raw = _frame(conn, _INCIDENT_SQL + " WHERE ended_at IS NULL")
        return _incident_frame(raw)

    def incidents_since(self, since: datetime, limit: int = 2000) -> pd.DataFrame:
        """Incidents active at any moment from `since` on: still open or ended after it."""
        with self.connect() as conn:
            raw = _frame(
                conn,
                _INCIDENT_SQL + " WHERE ended_at IS NULL OR ended_at >= ? "
                "ORDER BY started_at DESC LIMIT ?",
                (_epoch(since), limit),
            )
        return _incident_frame(raw)

    def latency_sparklines(self, points: int = 30) -> pd.DataFrame:
        """The last `points` successful HTTP response times per target, oldest first, in ms."""
        sql = (
            """
            SELECT t.target, (
                SELECT group_concat(ms) FROM (
                    SELECT round(p.duration_s * 1000.0, 1) AS ms FROM probe_results p
                    WHERE p.target = t.target AND p.probe = 'http' AND p.ok = 1
                    ORDER BY p.started_at DESC LIMIT ?)
            ) AS latency
            FROM ("""
            + _TARGET_NAMES_SQL
            + """) t
        """
        )
        with self.connect() as conn:
            rows = conn.execute(sql, (points,)).fetchall()
        return pd.DataFrame(
            {
                "target": [row[0] for row in rows],
                # newest first in SQL (to use the index), oldest first on screen
                "latency_ms": [
                    [float(v) for v in reversed(row[1].split(","))] if row[1] else []
                    for row in rows
                ],
            },
            columns=SPARKLINE_COLUMNS,
        )

    def target_phases(self, target: str, since: datetime, now: datetime) -> pd.DataFrame:
        """Mean seconds per HTTP phase (resolve, connect, tls, processing, transfer) per bucket."""
        bucket = phase_bucket_s(now - since)
        sql = """
            SELECT CAST(p.started_at / :bucket AS INTEGER) * :bucket AS time, j.key AS phase,
                   avg(j.value) AS seconds
            FROM probe_results p, json_each(p.phases) j
            WHERE p.target = :target AND p.probe = 'http' AND p.ok = 1 AND p.started_at >= :since
            GROUP BY 1, 2 ORDER BY 1, 2
        """
        with self.connect() as conn:
            frame = _frame(conn, sql, {"bucket": bucket, "target": target, "since": _epoch(since)})
        if frame.empty:
            return empty(PHASE_COLUMNS)
        frame["time"] = to_time(frame["time"])
        frame["seconds"] = frame["seconds"].astype(float)
        return frame.reindex(columns=PHASE_COLUMNS)

    def target_uptime(self, target: str, now: datetime) -> pd.DataFrame:
        """Share of known time the target was up over 24 h, 7 d and 30 d (UPTIME_COLUMNS).

        Known time is up or down time outside the monitor's vantage incidents; NaN uptime
        when there is none."""
        end = _epoch(now)
        start = end - UPTIME_WINDOWS[-1][1].total_seconds()
        with self.connect() as conn:
            status = _frame(conn, _ONE_STATUS_SQL, (target,))
            transitions = _transitions(conn, start, target)
            blind = _blind_intervals(conn, start, end)
        segments = without_blind(state_segments(status, transitions, start, end), blind)
        return uptime_from_segments(segments, end)

    def uptime_table(self, now: datetime) -> pd.DataFrame:
        """Every target's up and known time over 24 h, 7 d and 30 d (TARGET_UPTIME_COLUMNS),
        known time as in target_uptime."""
        end = _epoch(now)
        segments, _ = self._known_segments(end - UPTIME_WINDOWS[-1][1].total_seconds(), end)
        return uptime_by_target(segments, end)

    def state_strips(self, now: datetime) -> pd.DataFrame:
        end = _epoch(now)
        segments, status = self._known_segments(end - STRIP_SPAN.total_seconds(), end)
        return strips_from_segments(segments, list(status["target"]), end)

    def _known_segments(self, start: float, end: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Every target's state segments from start to end without the monitor's blind
        time, and the status they were built from."""
        with self.connect() as conn:
            status = _epoch_status(_frame(conn, _STATUS_SQL))
            transitions = _transitions(conn, start, None)
            blind = _blind_intervals(conn, start, end)
        segments = without_blind(state_segments(status, transitions, start, end), blind)
        return segments, status

    def target_failures(self, target: str, limit: int = 50) -> pd.DataFrame:
        """The newest failed probes of one target, with reason and the underlying error."""
        sql = """
            SELECT started_at AS time, probe, reason, error FROM probe_results
            WHERE target = ? AND ok = 0 ORDER BY started_at DESC LIMIT ?
        """
        with self.connect() as conn:
            frame = _frame(conn, sql, (target, limit))
        if frame.empty:
            return empty(FAILURE_COLUMNS)
        frame["time"] = to_time(frame["time"])
        return frame.reindex(columns=FAILURE_COLUMNS)

    def target_details(self, target: str) -> pd.DataFrame:
        """The newest TLS and DNS (and HTTP) probe details of one target as (probe, field, value)."""
        sql = """
            SELECT started_at, ok, reason, error, details FROM probe_results p
            WHERE p.id = (SELECT id FROM probe_results q WHERE q.target = :target
                          AND q.probe = :probe ORDER BY q.started_at DESC LIMIT 1)
        """
        rows: list[tuple[str, str, str]] = []
        with self.connect() as conn:
            for probe in ("tls", "dns", "http"):
                found = conn.execute(sql, {"target": target, "probe": probe}).fetchone()
                if found is None:
                    continue
                started, ok, reason, error, details = found
                fields = [
                    ("probed at", str(to_time(started).strftime("%Y-%m-%d %H:%M:%S UTC"))),
                    ("result", "ok" if ok else f"failed: {reason}"),
                ]
                if error:
                    fields.append(("error", str(error)))
                fields += detail_fields(probe, _loads(details))
                rows.extend((probe, name, value) for name, value in fields)
        return pd.DataFrame(rows, columns=DETAIL_COLUMNS)

    def tamper_signals(
        self, target: str | None = None, cleared_since: datetime | None = None
    ) -> pd.DataFrame:
        """Raised tamper signals (and those cleared since `cleared_since`), newest first,
        through monitor.storage's read_signals; empty for a history older than them."""
        with self.connect() as conn:
            if schema_version(conn) < TAMPER_SCHEMA_VERSION:
                return empty(SIGNAL_COLUMNS)
            signals = read_signals(
                conn,
                raised_only=cleared_since is None,
                target=target,
                since=None if cleared_since is None else _epoch(cleared_since),
                limit=SIGNAL_LIMIT,
            )
        return signal_frame(signals)

    def daily_availability(self, since: datetime, now: datetime) -> pd.DataFrame:
        """Per UTC day and country: share of target-time up among known time (DAILY_COLUMNS).

        Days run from `since`'s day to `now`'s (today so far). Known time is up or down
        time outside the monitor's vantage incidents. A day with no known time for a
        country has availability NaN, "no data" (the monitor was not watching, was blind,
        or every target's state was unknown), never 0.
        """
        first_day = utc_day(since)
        with self.connect() as conn:
            status = _frame(conn, _STATUS_SQL)
            transitions = _transitions(conn, _epoch(first_day), None)
            # transitions of targets no longer configured still have a country
            countries = dict(
                conn.execute("SELECT name, country FROM targets WHERE kind = 'target'").fetchall()
            )
            blind = _blind_intervals(conn, _epoch(first_day), _epoch(now))
        return availability_by_day(status, transitions, countries, first_day, now, blind)


# --- SQL and the frames made from it ------------------------------------------------------


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _frame(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> pd.DataFrame:
    cursor = conn.execute(sql, dict(params) if isinstance(params, Mapping) else tuple(params))
    names = [d[0] for d in cursor.description]
    return pd.DataFrame.from_records(cursor.fetchall(), columns=names)


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}


# The state is target_status.state, the reported one, as stored. `since` and `reason` are
# stored for the confirmed state (what a restart restores); they are the reported state's
# only when it is the confirmed one (since) or is down (reason), as the daemon's API says.
_STATUS_COLUMNS_SQL = """
           CASE WHEN s.state = 'down' THEN s.reason END AS reason,
           CASE WHEN s.state = COALESCE(s.confirmed_state, s.state) THEN s.since END AS since
"""


_STATUS_SQL = (
    """
    SELECT t.name AS target, t.country, t.sector, t.url, COALESCE(s.state, 'unknown') AS state,
    """
    + _STATUS_COLUMNS_SQL
    + """
    FROM targets t LEFT JOIN target_status s ON s.target = t.name
    WHERE t.active = 1 AND t.kind = 'target'
    UNION ALL
    -- a status row whose target is not (yet) in the targets table still counts
    SELECT s.target, s.country, s.sector, NULL AS url, s.state,
    """
    + _STATUS_COLUMNS_SQL
    + """
    FROM target_status s
    WHERE s.kind = 'target' AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.name = s.target)
"""
)


_ONE_STATUS_SQL = (
    "SELECT s.target, s.state," + _STATUS_COLUMNS_SQL + "FROM target_status s WHERE s.target = ?"
)


# Every target name the table and sparklines cover (canaries excluded).
_TARGET_NAMES_SQL = """
    SELECT name AS target FROM targets WHERE active = 1 AND kind = 'target'
    UNION SELECT target FROM target_status WHERE kind = 'target'
"""


def _status_frame(raw: pd.DataFrame) -> pd.DataFrame:
    frame = raw.reindex(columns=STATUS_COLUMNS)
    frame["since"] = to_time(frame["since"])
    frame["country"] = frame["country"].fillna("??")
    frame["sector"] = frame["sector"].fillna("")
    frame["state"] = frame["state"].fillna(UNKNOWN)
    return frame.sort_values(["country", "target"], ignore_index=True)


_TABLE_FACTS_SQL = (
    """
    SELECT t.target,
        (SELECT CASE WHEN p.ok = 1 THEN p.duration_s END FROM probe_results p
         WHERE p.target = t.target AND p.probe = 'http'
         ORDER BY p.started_at DESC LIMIT 1) AS response_s,
        (SELECT p.tls_expiry FROM probe_results p
         WHERE p.target = t.target AND p.probe = 'tls' AND p.started_at >= :since
               AND p.tls_expiry IS NOT NULL
         ORDER BY p.started_at DESC LIMIT 1) AS tls_expiry,
        -- the hot column when the writer fills it, else the DNS details' dnssec.signed
        (SELECT coalesce(p.dnssec_signed, json_extract(p.details, '$.dnssec.signed'))
         FROM probe_results p
         WHERE p.target = t.target AND p.probe = 'dns' AND p.started_at >= :since
         ORDER BY p.started_at DESC LIMIT 1) AS dnssec_signed
    FROM ("""
    + _TARGET_NAMES_SQL
    + """) t
"""
)


def _with_facts(status: pd.DataFrame, facts: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Join per-target facts (target, response_s, tls_expiry as epoch, dnssec_signed)."""
    facts = facts.reindex(columns=["target", "response_s", "tls_expiry", "dnssec_signed"])
    table = status.merge(facts, on="target", how="left")
    expiry = pd.to_numeric(table["tls_expiry"], errors="coerce")
    table["tls_expiry"] = to_time(expiry)
    table["tls_days_left"] = (expiry - _epoch(now)) / 86400.0
    table["response_s"] = pd.to_numeric(table["response_s"], errors="coerce")
    table["dnssec_signed"] = table["dnssec_signed"].map(
        lambda v: None if v is None or pd.isna(v) else bool(v)
    )
    return table.reindex(columns=TABLE_COLUMNS)


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


_INCIDENT_SQL = """
    SELECT id AS incident_id, scope, country, target, started_at, ended_at,
           affected_count, affected, dominant_reason, hint, hint_text
    FROM incidents
"""


# Most serious scope first in lists.
SCOPE_ORDER = {"vantage": 0, "region": 1, "country": 2, "target": 3}


def signal_frame(signals: Sequence[StoredSignal]) -> pd.DataFrame:
    """StoredSignals as a SIGNAL_COLUMNS frame, times as UTC Timestamps."""
    if not signals:
        return empty(SIGNAL_COLUMNS)
    frame = pd.DataFrame(
        [
            {
                "signal_id": s.id,
                "target": s.target,
                "country": s.country,
                "kind": s.kind,
                "raised_at": s.raised_at,
                "cleared_at": s.cleared_at,
                "cleared_by": s.cleared_by,
                "note": s.note,
                "summary": s.summary,
                "evidence": dict(s.evidence),
            }
            for s in signals
        ],
        columns=SIGNAL_COLUMNS,
    )
    frame["raised_at"] = to_time(frame["raised_at"])
    frame["cleared_at"] = to_time(frame["cleared_at"])
    return frame


def describe_hint(hint_json: object, text: object) -> str | None:
    """The incident's shared-infrastructure hint as a sentence fragment.

    Built from incidents.hint, the one JSON shape storage writes (a list, strongest
    first, of {"kind", "values", "count", "of"}; monitor/storage/schema.py), so name
    servers are written compactly and several hints read as one sentence. The stored
    hint_text when there is none to read.
    """
    hints = _hints(_loads(hint_json))
    if hints:
        return hints_text(hints)
    return text if isinstance(text, str) and text else None


def _loads(text: object) -> Any:
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _hints(stored: Any) -> list[SharedHint]:
    """The readable items of a stored hint list; an item without values is skipped."""
    if not isinstance(stored, list):
        return []
    hints = []
    for item in stored:
        if not isinstance(item, Mapping) or "kind" not in item:
            continue
        values = item.get("values")
        if not isinstance(values, list) or not values:
            continue
        count, of = item.get("count"), item.get("of")
        kind = str(item["kind"])
        texts = tuple(str(v) for v in values)
        if kind == "issuer":
            texts = tuple(certificate_name(v) for v in texts)
        hints.append(
            SharedHint(
                kind,
                texts,
                count if isinstance(count, int) else None,
                of if isinstance(of, int) else None,
            )
        )
    return hints


def _incident_frame(raw: pd.DataFrame) -> pd.DataFrame:
    if raw.empty:
        return empty(INCIDENT_COLUMNS)
    frame = raw.copy()
    frame["started_at"] = to_time(frame["started_at"])
    frame["ended_at"] = to_time(frame["ended_at"])
    frame["affected"] = frame["affected"].map(lambda text: tuple(json.loads(text or "[]")))
    frame["hint"] = [
        describe_hint(h, t) for h, t in zip(frame["hint"], frame["hint_text"], strict=True)
    ]
    frame["affected_count"] = frame["affected_count"].astype(int)
    order = frame["scope"].map(lambda s: SCOPE_ORDER.get(s, 9))
    frame = frame.assign(_order=order).sort_values(["_order", "started_at", "incident_id"])
    return frame.reindex(columns=INCIDENT_COLUMNS).reset_index(drop=True)


# What the drill-down shows of each probe's details JSON (dotted paths), in this order;
# the JSON has more, but these are what an operator acts on.
DETAIL_FIELDS: Mapping[str, tuple[str, ...]] = {
    "tls": (
        "version",
        "cipher",
        "verified",
        "verify_error",
        "hostname_match",
        "ocsp_status",
        "subject",
        "issuer",
        "leaf_expiry",
        "earliest_expiry",
        "certificates.earliest_subject",
    ),
    "dns": (
        "addresses",
        "zone",
        "nameservers",
        "agree",
        "dnssec.status",
        "dnssec.validated",
        "dnssec.rrsig_days_left",
        "error",
    ),
    "http": (
        "status_code",
        "final_url",
        "redirects",
        "http_version",
        "server",
        "peer_address",
        "content_type",
        "body_bytes",
    ),
}


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def _show(path: str, value: Any) -> str | None:
    if value is None or value == [] or value == "":
        return None
    if path == "issuer" and isinstance(value, str):
        return certificate_name(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if path.endswith("expiry") and isinstance(value, int | float):
        return str(to_time(value).strftime("%Y-%m-%d %H:%M UTC"))
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def detail_fields(probe: str, details: Any) -> list[tuple[str, str]]:
    """The DETAIL_FIELDS of one probe's details JSON that have a value, as display text."""
    shown = []
    for path in DETAIL_FIELDS.get(probe, ()):
        text = _show(path, _lookup(details, path))
        if text is not None:
            shown.append((path, text))
    return shown


def _transitions(conn: sqlite3.Connection, since: float, target: str | None) -> pd.DataFrame:
    sql = "SELECT target, old_state, new_state, at FROM transitions WHERE at >= ?"
    params: tuple[Any, ...] = (since,)
    if target is not None:
        sql += " AND target = ?"
        params += (target,)
    return _frame(conn, sql, params)


def _blind_intervals(
    conn: sqlite3.Connection, start: float, end: float
) -> list[tuple[float, float]]:
    """When the monitor itself was blind between start and end: its 'vantage' incidents,
    an open one until `end`."""
    rows = conn.execute(
        "SELECT started_at, coalesce(ended_at, :end) FROM incidents WHERE scope = 'vantage' "
        "AND started_at < :end AND (ended_at IS NULL OR ended_at > :start)",
        {"start": start, "end": end},
    ).fetchall()
    return [(float(begin), min(float(finish), end)) for begin, finish in rows]


# --- time-weighted availability -----------------------------------------------------------
# state_segments and without_blind come from monitor.availability (shared with `govwatch
# report`), imported `as` themselves so that queries.state_segments stays public.


def _overlap(segments: pd.DataFrame, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Seconds each segment (rows) spends in each window (columns)."""
    begin = segments["begin"].to_numpy(dtype=float)[:, None]
    end = segments["end"].to_numpy(dtype=float)[:, None]
    result: np.ndarray = np.clip(
        np.minimum(end, ends[None, :]) - np.maximum(begin, starts[None, :]), 0.0, None
    )
    return result


def _epoch_status(status: pd.DataFrame) -> pd.DataFrame:
    since = status["since"]
    if pd.api.types.is_datetime64_any_dtype(since):
        epoch = since.map(lambda t: t.timestamp() if not pd.isna(t) else np.nan)
    else:
        epoch = pd.to_numeric(since, errors="coerce")
    return status.assign(since=epoch.astype(float))


def uptime_from_segments(segments: pd.DataFrame, end: float) -> pd.DataFrame:
    starts = np.array([end - span.total_seconds() for _, span in UPTIME_WINDOWS])
    ends = np.full(len(UPTIME_WINDOWS), end)
    overlap = _overlap(segments, starts, ends)
    state = segments["state"].to_numpy()
    up_s = overlap[state == UP].sum(axis=0)
    down_s = overlap[state == DOWN].sum(axis=0)
    known = up_s + down_s
    with np.errstate(invalid="ignore", divide="ignore"):
        uptime = np.where(known > 0, up_s / np.where(known > 0, known, 1), np.nan)
    return pd.DataFrame(
        {
            "window": [label for label, _ in UPTIME_WINDOWS],
            "uptime": uptime,
            "down_s": down_s,
            "known_s": known,
        },
        columns=UPTIME_COLUMNS,
    )


def uptime_by_target(segments: pd.DataFrame, end: float) -> pd.DataFrame:
    """Per target and UPTIME_WINDOWS window: seconds up, seconds known (up or down: not
    unknown, not maintenance, not blind) and the start of its known history."""
    known = segments[segments["state"].isin([UP, DOWN])].reset_index(drop=True)
    if known.empty:
        return empty(TARGET_UPTIME_COLUMNS)
    labels = [label for label, _ in UPTIME_WINDOWS]
    starts = np.array([end - span.total_seconds() for _, span in UPTIME_WINDOWS])
    overlap = pd.DataFrame(_overlap(known, starts, np.full(len(starts), end)), columns=labels)
    overlap["target"] = known["target"].to_numpy()
    known_s = overlap.groupby("target").sum()
    up_s = overlap[(known["state"] == UP).to_numpy()].groupby("target").sum()
    up_s = up_s.reindex(known_s.index, fill_value=0.0)
    frame = pd.DataFrame(
        {
            "up_s": up_s.stack(future_stack=True),
            "known_s": known_s.stack(future_stack=True),
        }
    ).reset_index()
    frame.columns = ["target", "window", "up_s", "known_s"]
    frame["known_since"] = frame["target"].map(known.groupby("target")["begin"].min())
    return frame.reindex(columns=TARGET_UPTIME_COLUMNS)


# In a strip's slice, the state that shows: any down time first, then maintenance, then up.
_STRIP_PRECEDENCE = (DOWN, MAINTENANCE, UP)


def strips_from_segments(
    segments: pd.DataFrame, targets: Sequence[str], end: float
) -> pd.DataFrame:
    """Per target: its state in each STRIP_BUCKETS slice of STRIP_SPAN up to `end`, oldest
    first (time the monitor was blind is unknown). Vectorised: one (targets x slices)
    matrix per state, so 10,000 targets cost what the uptime columns do."""
    names = list(targets)
    width = STRIP_SPAN.total_seconds() / STRIP_BUCKETS
    starts = end - STRIP_SPAN.total_seconds() + width * np.arange(STRIP_BUCKETS)
    shown = np.full((len(names), STRIP_BUCKETS), UNKNOWN, dtype=object)
    if len(segments):
        seconds = pd.DataFrame(_overlap(segments, starts, starts + width)).assign(
            target=segments["target"].to_numpy(), state=segments["state"].to_numpy()
        )
        # Lowest precedence first, so a slice with any down time ends up down.
        for state in reversed(_STRIP_PRECEDENCE):
            of_state = seconds[seconds["state"] == state].drop(columns="state")
            if of_state.empty:
                continue
            per_target = of_state.groupby("target").sum().reindex(names, fill_value=0.0)
            shown[per_target.to_numpy() > 0] = state
    return pd.DataFrame(
        {"target": names, "states": [list(row) for row in shown]}, columns=STRIP_COLUMNS
    )


def availability_by_day(
    status: pd.DataFrame,
    transitions: pd.DataFrame,
    countries: Mapping[str, str],
    first_day: datetime,
    now: datetime,
    blind: Sequence[tuple[float, float]] = (),
) -> pd.DataFrame:
    status = _epoch_status(status.reindex(columns=["target", "country", "state", "since"]))
    known_country = dict(countries)
    known_country.update(zip(status["target"], status["country"], strict=True))
    days = pd.date_range(first_day, utc_day(now), freq="D", tz=UTC)
    if len(days) == 0:
        return empty(DAILY_COLUMNS)
    starts = np.array([d.timestamp() for d in days])
    ends = np.minimum(starts + 86400.0, _epoch(now))
    segments = state_segments(status, transitions, float(starts[0]), _epoch(now))
    segments = without_blind(segments[segments["state"].isin([UP, DOWN])], blind)
    segments = segments.assign(country=segments["target"].map(known_country).fillna("??"))
    overlap = _overlap(segments, starts, ends)
    up_mask = (segments["state"] == UP).to_numpy()
    per_segment = pd.DataFrame(overlap, columns=range(len(days)))
    per_segment["country"] = segments["country"].to_numpy()
    up_s = per_segment[up_mask].groupby("country").sum()
    known_s = per_segment.groupby("country").sum()
    up_s = up_s.reindex(known_s.index, fill_value=0.0)
    ratio = (up_s / known_s.where(known_s > 0)).stack(future_stack=True)
    frame = ratio.rename("availability").reset_index()
    frame.columns = ["country", "day_index", "availability"]
    frame["day"] = [days[i] for i in frame["day_index"]]
    all_countries = sorted(set(status["country"].dropna()))
    grid = pd.MultiIndex.from_product([days, all_countries], names=["day", "country"])
    frame = frame.set_index(["day", "country"])["availability"].reindex(grid).reset_index()
    frame["availability"] = frame["availability"].astype(float)
    return frame.reindex(columns=DAILY_COLUMNS)


# --- what pages compute from any source's frames ------------------------------------------


def summarize_countries(status: pd.DataFrame) -> pd.DataFrame:
    """Per country: up, down, maintenance, unknown, total, availability = up / (up + down)
    (NaN if none known; maintenance is neither)."""
    if status.empty:
        return empty(COUNTRY_COLUMNS)
    states = status.assign(
        up=status["state"].eq(UP).astype(int),
        down=status["state"].eq(DOWN).astype(int),
        maintenance=status["state"].eq(MAINTENANCE).astype(int),
    )
    grouped = states.groupby("country", sort=True).agg(
        up=("up", "sum"),
        down=("down", "sum"),
        maintenance=("maintenance", "sum"),
        total=("target", "count"),
    )
    grouped["unknown"] = grouped["total"] - grouped["up"] - grouped["down"] - grouped["maintenance"]
    known = grouped["up"] + grouped["down"]
    grouped["availability"] = (grouped["up"] / known.where(known > 0)).astype(float)
    grouped = grouped.reset_index()
    grouped["name"] = grouped["country"].map(country_name)
    return grouped.reindex(columns=COUNTRY_COLUMNS)


UPTIME_FIELDS: Mapping[str, str] = {
    label: "uptime_" + label.replace(" ", "") for label, _ in UPTIME_WINDOWS
}  # '24 h' -> 'uptime_24h'


def uptime_wide(uptime: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per `key` (a column of `uptime`: target, or a country added by the caller):
    up / known per window as UPTIME_FIELDS columns (NaN when nothing is known), and the
    earliest known_since."""
    fields = list(UPTIME_FIELDS.values())
    if uptime.empty:
        return pd.DataFrame(columns=[key, *fields, "known_since"])
    sums = uptime.groupby([key, "window"])[["up_s", "known_s"]].sum()
    ratio = (sums["up_s"] / sums["known_s"].where(sums["known_s"] > 0)).unstack("window")
    ratio = ratio.reindex(columns=list(UPTIME_FIELDS)).rename(columns=UPTIME_FIELDS)
    ratio["known_since"] = uptime.groupby(key)["known_since"].min()
    return ratio.reset_index().reindex(columns=[key, *fields, "known_since"])


def countries_in_outage(incidents: pd.DataFrame) -> frozenset[str]:
    """Countries with an open country incident."""
    open_country = (incidents["scope"] == "country") & incidents["ended_at"].isna()
    return frozenset(str(c) for c in incidents.loc[open_country, "country"])


def outage_facts(status: pd.DataFrame, incidents: pd.DataFrame) -> list[OutageFacts]:
    """Open country and region incidents joined with the live counts, for the banners."""
    facts = []
    for row in incidents.itertuples(index=False):
        if row.scope not in ("country", "region") or not pd.isna(row.ended_at):
            continue
        in_country = status["country"] == row.country
        scope_rows = status[in_country] if row.scope == "country" else status
        down = int(scope_rows["state"].eq(DOWN).sum())
        countries: tuple[str, ...] = ()
        if row.scope == "region":
            countries = tuple(sorted(countries_in_outage(incidents)))
        # A region's hint is what is common across countries (one resolver, one carrier):
        # the first thing operators need, so it is shown even beside the countries' own.
        hint = row.hint if isinstance(row.hint, str) else None
        facts.append(
            OutageFacts(
                scope=str(row.scope),
                country=None if row.scope == "region" else str(row.country),
                down=down,
                total=len(scope_rows),
                since=row.started_at.to_pydatetime(),
                dominant_reason=None if pd.isna(row.dominant_reason) else row.dominant_reason,
                hint=hint,
                countries=countries,
            )
        )
    return facts


# --- the Source's methods as functions, for scripts (bench/dashboard_overview.py) ----------


def target_status(source: Source) -> pd.DataFrame:
    return source.target_status()


def target_table(source: Source, now: datetime) -> pd.DataFrame:
    return source.target_table(now)


def vantage_status(source: Source) -> VantageFacts:
    return source.vantage_status()


def open_incidents(source: Source) -> pd.DataFrame:
    return source.open_incidents()


def latency_sparklines(source: Source, points: int = 30) -> pd.DataFrame:
    return source.latency_sparklines(points)


def daily_availability(source: Source, since: datetime, now: datetime) -> pd.DataFrame:
    return source.daily_availability(since, now)
