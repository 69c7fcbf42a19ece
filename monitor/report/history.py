"""What a report reads from the history, in one place: `read_history` (the only SQL of
`govwatch report`) and the plain rows it returns. Everything after it is pure.

The connection comes from monitor.storage's `open_history` (read-only, never blocking the
daemon); the reads are indexed and bounded by the period.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from monitor.storage import StoredSignal, read_signals, schema_version

# The first schema with the tamper_signals table (monitor/storage/schema.py, migration 3).
TAMPER_SCHEMA_VERSION = 3
# Signals read at most: a report lists a handful; a flood is still bounded.
SIGNAL_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class TargetRow:
    name: str
    country: str
    sector: str
    active: bool
    state: str | None  # target_status.state now; None without a status row
    since: float | None  # target_status.since


@dataclass(frozen=True, slots=True)
class TransitionRow:
    target: str
    old_state: str
    new_state: str
    at: float
    reason: str | None


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: str
    scope: str  # 'target' | 'country' | 'region' | 'vantage'
    country: str | None
    target: str | None
    started_at: float
    ended_at: float | None
    affected: tuple[str, ...]
    dominant_reason: str | None
    hint_text: str | None


@dataclass(frozen=True, slots=True)
class ProbeFacts:
    """A target's newest TLS and DNS probe rows at or before the period's end."""

    target: str
    tls_probed_at: float | None = None
    tls_ok: bool | None = None
    tls_reason: str | None = None
    tls_expiry: float | None = None  # earliest notAfter in the chain
    tls_leaf_expiry: float | None = None
    tls_version: str | None = None
    dns_probed_at: float | None = None
    dnssec_status: str | None = None
    dnssec_signed: bool | None = None


@dataclass(frozen=True, slots=True)
class HistoryRows:
    """Everything a report is computed from, for the period [start, end]."""

    vantage: str
    targets: tuple[TargetRow, ...]
    transitions: tuple[TransitionRow, ...]  # start <= at <= end
    # per target, the first transition after `end`: its old_state is the state at `end`
    next_transitions: tuple[TransitionRow, ...]
    incidents: tuple[IncidentRow, ...]  # overlapping the period, every scope
    facts: tuple[ProbeFacts, ...]
    signals: tuple[StoredSignal, ...]  # raised at or before end, not cleared before start


def read_history(conn: sqlite3.Connection, start: float, end: float) -> HistoryRows:
    """The rows a report for [start, end] needs (every country: filtering is pure)."""
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    targets = tuple(
        TargetRow(name, country or "??", sector or "unknown", bool(active), state, since)
        for name, country, sector, active, state, since in conn.execute(
            "SELECT t.name, t.country, t.sector, t.active, s.state, s.since "
            "FROM targets t LEFT JOIN target_status s ON s.target = t.name "
            "WHERE t.kind = 'target' ORDER BY t.name"
        )
    )
    transitions = tuple(
        TransitionRow(*row)
        for row in conn.execute(
            "SELECT target, old_state, new_state, at, reason FROM transitions "
            "WHERE at >= ? AND at <= ? ORDER BY target, at, id",
            (start, end),
        )
    )
    next_transitions = tuple(
        TransitionRow(*row)
        for row in conn.execute(
            "SELECT target, old_state, new_state, min(at), reason FROM transitions "
            "WHERE at > ? GROUP BY target",
            (end,),
        )
    )
    incidents = tuple(
        IncidentRow(
            id=row[0],
            scope=row[1],
            country=row[2],
            target=row[3],
            started_at=float(row[4]),
            ended_at=None if row[5] is None else float(row[5]),
            affected=tuple(_json_list(row[6])),
            dominant_reason=row[7],
            hint_text=row[8],
        )
        for row in conn.execute(
            "SELECT id, scope, country, target, started_at, ended_at, affected, "
            "dominant_reason, hint_text FROM incidents "
            "WHERE started_at <= ? AND (ended_at IS NULL OR ended_at >= ?) "
            "ORDER BY started_at, id",
            (end, start),
        )
    )
    facts = tuple(_probe_facts(conn, target.name, end) for target in targets)
    signals: tuple[StoredSignal, ...] = ()
    if schema_version(conn) >= TAMPER_SCHEMA_VERSION:
        found = read_signals(conn, since=start, limit=SIGNAL_LIMIT)
        signals = tuple(s for s in found if s.raised_at <= end)
    return HistoryRows(
        vantage=meta.get("vantage", ""),
        targets=targets,
        transitions=transitions,
        next_transitions=next_transitions,
        incidents=incidents,
        facts=facts,
        signals=signals,
    )


_NEWEST = (
    "SELECT started_at, ok, reason, tls_expiry, tls_leaf_expiry, tls_version, dnssec_status, "
    "dnssec_signed FROM probe_results WHERE target = ? AND probe = ? AND started_at <= ? "
    "ORDER BY started_at DESC LIMIT 1"
)


def _probe_facts(conn: sqlite3.Connection, target: str, end: float) -> ProbeFacts:
    # One indexed lookup per probe (target, probe, started_at): cheap for 10,000 targets.
    # An http target has no TLS row; an https one may not have been probed yet.
    tls = conn.execute(_NEWEST, (target, "tls", end)).fetchone()
    dns = conn.execute(_NEWEST, (target, "dns", end)).fetchone()
    return ProbeFacts(
        target,
        tls_probed_at=None if tls is None else tls[0],
        tls_ok=None if tls is None else bool(tls[1]),
        tls_reason=None if tls is None else tls[2],
        tls_expiry=None if tls is None else tls[3],
        tls_leaf_expiry=None if tls is None else tls[4],
        tls_version=None if tls is None else tls[5],
        dns_probed_at=None if dns is None else dns[0],
        dnssec_status=None if dns is None else dns[6],
        dnssec_signed=None if dns is None or dns[7] is None else bool(dns[7]),
    )


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []
