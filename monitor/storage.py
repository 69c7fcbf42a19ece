"""SQLite history: probe results, state transitions, incidents, the last status snapshot.

One writer (the daemon's `HistoryWriter`, every sqlite3 call in one dedicated
thread) and any number of readers (the dashboard, the CLI) that open the file
read-only with `connect_readonly`. WAL mode: readers never block the writer
and the writer never blocks readers.

Schema version 2 (`PRAGMA user_version`; every change goes through `MIGRATIONS`, which
bring an older file up to date when the writer opens it). All times are unix epoch
seconds (REAL, UTC); booleans are INTEGER 0/1; JSON columns hold UTF-8 JSON text
(SQLite's json_extract() and json_each() work on them). Enum-valued columns hold the
enum's string value.

targets -- the configured targets and canaries, refreshed from the config at start/reload
    name TEXT PRIMARY KEY
    kind TEXT NOT NULL            'target' | 'canary'
    country TEXT                  ISO 3166-1 alpha-2 (XK for Kosovo); NULL for canaries
    sector TEXT                   monitor.config.SECTORS; NULL for canaries
    url TEXT NOT NULL
    evidence TEXT                 'seen' | 'plausible'; NULL for canaries
    active INTEGER NOT NULL       1 while in the config; 0 once removed (history kept)
    updated_at REAL NOT NULL

probe_results -- one row per probe run
    id INTEGER PRIMARY KEY
    target TEXT NOT NULL          a targets.name (targets and canaries alike)
    vantage TEXT NOT NULL         `govwatch run --vantage`; '' when unnamed
    probe TEXT NOT NULL           'http' | 'dns' | 'tls'
    started_at REAL NOT NULL
    ok INTEGER NOT NULL
    reason TEXT                   probes.results.Reason value; NULL exactly when ok = 1
    duration_s REAL NOT NULL      the response time
    http_status INTEGER           http: final status code; NULL when none came
    tls_expiry REAL               tls: earliest notAfter in the presented chain
    tls_leaf_expiry REAL          tls: the leaf certificate's notAfter
    tls_version TEXT              http (https only) and tls: e.g. 'TLSv1.3'
    dnssec_status TEXT            dns: 'secure' | 'insecure' | 'bogus' | 'indeterminate';
                                  NULL when the probe did not get that far
    dnssec_signed INTEGER         dns: 1 the zone publishes DNSKEYs, 0 it does not (a fact,
                                  not a failure); NULL when unknown
    dnssec_expiry REAL            dns: the zone's first RRSIG to expire
    phases TEXT NOT NULL          JSON {phase: seconds}, e.g. {"resolve":0.01,"connect":0.02}
    details TEXT                  JSON of the probe's details (ProbeResult.to_dict()["details"]);
                                  NULL when the probe had none
    error TEXT                    the underlying error, for humans
    indexes: (target, probe, started_at), (started_at)

transitions -- changes of a target's reported state (for canaries: their confirmed state)
    id INTEGER PRIMARY KEY
    target TEXT NOT NULL
    old_state TEXT NOT NULL       'up' | 'down' | 'unknown' (monitor.state.TargetState)
    new_state TEXT NOT NULL
    at REAL NOT NULL
    reason TEXT                   the DOWN reason (Reason value); NULL otherwise
    indexes: (target, at), (at)

incidents -- one row per incident, upserted by id while it grows and when it ends
    id TEXT PRIMARY KEY           e.g. 'country:AL:1657886400' (monitor.outage.incident_id)
    scope TEXT NOT NULL           'target' | 'country' | 'region' | 'vantage'
    country TEXT                  scopes country and target; NULL otherwise
    target TEXT                   scope target; NULL otherwise
    started_at REAL NOT NULL
    ended_at REAL                 NULL while open
    affected TEXT NOT NULL        JSON list of target (or, for 'vantage', canary) names, sorted
    affected_count INTEGER NOT NULL
    dominant_reason TEXT          Reason value; NULL when none
    hint TEXT                     JSON list, strongest first, of what the failing targets share:
                                  [{"kind": "nameservers"|"address_prefix"|"issuer",
                                    "values": [...], "count": 3, "of": 4}]; NULL when nothing
    hint_text TEXT                the same as one line for humans; NULL when nothing
    updated_at REAL NOT NULL
    indexes: (started_at), (ended_at), open ones: (started_at) WHERE ended_at IS NULL

target_status -- the latest status of every target and canary, one row each, upserted only
                 when it changes; rows of names no longer configured are deleted at start/reload
    target TEXT PRIMARY KEY
    kind TEXT NOT NULL            'target' | 'canary'
    state TEXT NOT NULL           'up' | 'down' | 'unknown': the one reported state, what the API,
                                  govwatch_target_up and the transitions show ('unknown' while the
                                  monitor is blind or a confirmed failure waits for the canaries'
                                  verification); for canaries their confirmed state. Read this one.
    confirmed_state TEXT          'up' | 'down' | 'unknown': the confirmed state (monitor.state),
                                  what a restart restores; NULL means the same as state
    since REAL                    when confirmed_state was entered; NULL before any observation.
                                  It is `state`'s since only when state = confirmed_state
    reason TEXT                   the DOWN reason, set exactly when confirmed_state is 'down'
                                  (so whenever state is 'down')
    country TEXT, sector TEXT     as in targets; NULL for canaries
    blind INTEGER NOT NULL        1 while the vantage is down
    observed_at REAL              the latest result's observation time
    consecutive_failures INTEGER NOT NULL
    data TEXT NOT NULL            JSON for restore: {"blind", "probes": [{"last", "observed_at",
                                  "consecutive_failures", "failing_since", "failed_at"}], "infra"?}
    updated_at REAL NOT NULL      when this row was last written

meta -- facts about the writer
    key TEXT PRIMARY KEY, value TEXT NOT NULL
    keys: 'vantage'; 'last_flush_at' (epoch seconds as text)

Retention: probe_results and transitions older than the retention (30 days by
default) and incidents that ended before it are deleted in the background, in
small chunks. targets, target_status and open incidents are never pruned.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import functools
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self, TypeAlias, TypeVar

from monitor.config import Canary, Target
from monitor.outage import HintKind, Incident, InfraHint, Scope, TargetInfra
from monitor.state import PROBE_PRECEDENCE, ProbeTrack, TargetState, TargetStatus, Transition
from probes.results import (
    DnsDetails,
    DnssecStatus,
    HttpDetails,
    ProbeKind,
    ProbeResult,
    Reason,
    TlsDetails,
    to_jsonable,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# --- schema -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    sql: str  # DDL and data moves; run in one transaction with the version bump


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        """
        CREATE TABLE targets (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL DEFAULT 'target',
            country TEXT,
            sector TEXT,
            url TEXT NOT NULL,
            evidence TEXT,
            active INTEGER NOT NULL DEFAULT 1,
            updated_at REAL NOT NULL
        );
        CREATE TABLE probe_results (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            vantage TEXT NOT NULL DEFAULT '',
            probe TEXT NOT NULL,
            started_at REAL NOT NULL,
            ok INTEGER NOT NULL,
            reason TEXT,
            duration_s REAL NOT NULL,
            http_status INTEGER,
            tls_expiry REAL,
            tls_leaf_expiry REAL,
            tls_version TEXT,
            dnssec_status TEXT,
            dnssec_signed INTEGER,
            dnssec_expiry REAL,
            phases TEXT NOT NULL DEFAULT '{}',
            details TEXT,
            error TEXT
        );
        CREATE INDEX probe_results_target_probe_time ON probe_results (target, probe, started_at);
        CREATE INDEX probe_results_time ON probe_results (started_at);
        CREATE TABLE transitions (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            old_state TEXT NOT NULL,
            new_state TEXT NOT NULL,
            at REAL NOT NULL,
            reason TEXT
        );
        CREATE INDEX transitions_target_time ON transitions (target, at);
        CREATE INDEX transitions_time ON transitions (at);
        CREATE TABLE incidents (
            id TEXT PRIMARY KEY,
            scope TEXT NOT NULL,
            country TEXT,
            target TEXT,
            started_at REAL NOT NULL,
            ended_at REAL,
            affected TEXT NOT NULL DEFAULT '[]',
            affected_count INTEGER NOT NULL DEFAULT 0,
            dominant_reason TEXT,
            hint TEXT,
            hint_text TEXT,
            updated_at REAL NOT NULL
        );
        CREATE INDEX incidents_started ON incidents (started_at);
        CREATE INDEX incidents_ended ON incidents (ended_at);
        CREATE INDEX incidents_open ON incidents (started_at) WHERE ended_at IS NULL;
        CREATE TABLE target_status (
            target TEXT PRIMARY KEY,
            kind TEXT NOT NULL DEFAULT 'target',
            state TEXT NOT NULL,
            reported_state TEXT,
            since REAL,
            reason TEXT,
            country TEXT,
            sector TEXT,
            blind INTEGER NOT NULL DEFAULT 0,
            observed_at REAL,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL DEFAULT '{}',
            updated_at REAL NOT NULL
        );
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
    # target_status.state becomes the one reported state (version 1 kept it, mostly
    # unread, in reported_state, NULL for canaries) and the confirmed state moves to
    # confirmed_state. The table is rebuilt rather than altered column by column, so
    # this runs on any SQLite (DROP COLUMN needs 3.35) and keeps state's NOT NULL.
    Migration(
        2,
        """
        CREATE TABLE target_status_v2 (
            target TEXT PRIMARY KEY,
            kind TEXT NOT NULL DEFAULT 'target',
            state TEXT NOT NULL,
            confirmed_state TEXT,
            since REAL,
            reason TEXT,
            country TEXT,
            sector TEXT,
            blind INTEGER NOT NULL DEFAULT 0,
            observed_at REAL,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL DEFAULT '{}',
            updated_at REAL NOT NULL
        );
        INSERT INTO target_status_v2 (target, kind, state, confirmed_state, since, reason,
            country, sector, blind, observed_at, consecutive_failures, data, updated_at)
        SELECT target, kind, coalesce(reported_state, state), state, since, reason,
            country, sector, blind, observed_at, consecutive_failures, data, updated_at
        FROM target_status;
        DROP TABLE target_status;
        ALTER TABLE target_status_v2 RENAME TO target_status;
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


class StorageError(Exception):
    """The database cannot be opened or is not one this version understands."""


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to the last migration, one transaction per step.

    Returns the version reached. Refuses a database newer than `migrations`
    (written by a later govwatch) rather than guess at its layout.
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError(f"migrations must have increasing versions >= 1, got {versions}")
    current = schema_version(conn)
    latest = versions[-1] if versions else 0
    if current > latest:
        raise StorageError(
            f"database schema version {current} is newer than this govwatch understands "
            f"({latest}); upgrade govwatch or use another --db"
        )
    for step in migrations:
        if step.version <= current:
            continue
        # executescript commits any open transaction first; the BEGIN/COMMIT here make
        # the DDL and the version bump one atomic step (user_version is transactional).
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{step.sql}\nPRAGMA user_version = {step.version};\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        log.info("storage: migrated schema to version %d", step.version)
        current = step.version
    return current


def _configure(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")


def connect_writer(path: Path | str, *, busy_timeout_s: float = 2.0) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database for writing.

    WAL with synchronous=NORMAL: a committed transaction survives the process
    being killed; only a power loss can take back the last few commits.
    Raises StorageError when the file cannot be opened or migrated.
    """
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=True)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open database: {exc}") from exc
    try:
        _configure(conn, busy_timeout_s)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"{path}: cannot switch to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Keep the WAL from staying huge after a burst once it has been checkpointed.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"{path}: cannot prepare database: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def connect_readonly(
    path: Path | str, *, busy_timeout_s: float = 2.0, check_same_thread: bool = True
) -> sqlite3.Connection:
    """A read-only connection (`file:...?mode=ro`) that can never block the writer.

    Keep read transactions short: they do not block writes, but while one is
    open the WAL cannot be checkpointed past it and keeps growing.
    """
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=check_same_thread)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open database read-only: {exc}") from exc
    try:
        _configure(conn, busy_timeout_s)
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"{path}: cannot open database read-only: {exc}") from exc
    return conn


# --- JSON ---------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    """JSON text in the project's one serialised form (probes.results.to_jsonable)."""
    return _dumps_plain(to_jsonable(value))


def _dumps_plain(value: Any) -> str:
    """JSON text of values already JSON-ready. Non-finite floats are refused: SQLite's
    JSON functions cannot read them."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# --- records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ProbeRecord:
    target: str
    result: ProbeResult


@dataclass(frozen=True, slots=True)
class _TargetsRecord:
    targets: tuple[Target, ...]
    canaries: tuple[Canary, ...]


_Record: TypeAlias = _ProbeRecord | Transition | Incident | _TargetsRecord


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One target's (or canary's) current status, for the target_status table."""

    status: TargetStatus  # confirmed state, since, reason, probe tracks: what a restart restores
    reported: TargetState  # the one reported state (for canaries: their confirmed state)
    infra: TargetInfra | None  # what the target runs on, if known

    @property
    def name(self) -> str:
        return self.status.name


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restarted daemon takes back: the stored statuses and the open incidents.

    Restored statuses carry the confirmed state (target_status.confirmed_state) and
    keep each probe's last result and failure streak, but not the result's details
    (None): the state machine does not need them.
    """

    statuses: Mapping[str, TargetStatus]
    infra: Mapping[str, TargetInfra]
    open_incidents: tuple[Incident, ...]
    saved_at: float | None  # when the newest status row was written; None if there is none


# --- rows ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _HotFields:
    http_status: int | None = None
    tls_expiry: float | None = None
    tls_leaf_expiry: float | None = None
    tls_version: str | None = None
    dnssec_status: str | None = None
    dnssec_signed: bool | None = None
    dnssec_expiry: float | None = None


def _hot_fields(details: object) -> _HotFields:
    """The columns the dashboard's table needs, so it never parses JSON per row."""
    if isinstance(details, HttpDetails):
        return _HotFields(http_status=details.status_code, tls_version=details.tls_version)
    if isinstance(details, TlsDetails):
        return _HotFields(
            tls_expiry=details.earliest_expiry,
            tls_leaf_expiry=details.leaf_expiry,
            tls_version=details.version,
        )
    if isinstance(details, DnsDetails) and details.dnssec is not None:
        dnssec = details.dnssec
        known = dnssec.status is not DnssecStatus.INDETERMINATE
        return _HotFields(
            dnssec_status=dnssec.status.value,
            # Whether the zone is signed is only known when the check got that far.
            dnssec_signed=dnssec.signed if known or dnssec.signed else None,
            dnssec_expiry=dnssec.earliest_rrsig_expiry,
        )
    return _HotFields()


def _probe_row(record: _ProbeRecord, vantage: str) -> tuple[Any, ...]:
    r = record.result
    serialised = r.to_dict()
    hot = _hot_fields(r.details)
    details: str | None = None
    if r.details is not None:
        try:
            details = _dumps_plain(serialised["details"])
        except (TypeError, ValueError) as exc:
            # The columns still tell the story; losing the whole row would hide it.
            log.error("storage: details of %s/%s not stored: %s", record.target, r.kind, exc)
    return (
        record.target,
        vantage,
        serialised["probe"],
        r.started_at,
        int(r.ok),
        serialised["reason"],
        r.duration_s,
        hot.http_status,
        hot.tls_expiry,
        hot.tls_leaf_expiry,
        hot.tls_version,
        hot.dnssec_status,
        None if hot.dnssec_signed is None else int(hot.dnssec_signed),
        hot.dnssec_expiry,
        _dumps_plain(serialised["phases"]),
        details,
        r.error,
    )


def _incident_row(incident: Incident, now: float) -> tuple[Any, ...]:
    return (
        incident.id,
        incident.scope.value,
        incident.country,
        incident.target,
        incident.started_at,
        incident.ended_at,
        _dumps(list(incident.affected)),
        len(incident.affected),
        None if incident.dominant_reason is None else incident.dominant_reason.value,
        _dumps(incident.hints) if incident.hints else None,
        incident.hint_text,
        now,
    )


def _incident_from_row(row: Sequence[Any]) -> Incident:
    hints = json.loads(row[8]) if row[8] is not None else []
    return Incident(
        id=row[0],
        scope=Scope(row[1]),
        country=row[2],
        target=row[3],
        started_at=row[4],
        ended_at=row[5],
        affected=tuple(json.loads(row[6])),
        dominant_reason=None if row[7] is None else Reason(row[7]),
        hints=tuple(
            InfraHint(HintKind(h["kind"]), tuple(h["values"]), h["count"], h["of"]) for h in hints
        ),
    )


def _status_data(status: TargetStatus, infra: TargetInfra | None) -> dict[str, Any]:
    """Everything needed to rebuild `status` (and the target's infra), as JSON values."""
    probes = []
    for track in status.probes.values():
        last = track.last.to_dict()
        del last["details"]  # large, and the state machine never looks at them
        probes.append(
            {
                "last": last,
                "observed_at": track.observed_at,
                "consecutive_failures": track.consecutive_failures,
                "failing_since": track.failing_since,
                "failed_at": track.failed_at,
            }
        )
    data: dict[str, Any] = {"blind": status.blind, "probes": probes}
    if infra is not None:
        data["infra"] = to_jsonable(infra)
    return data


def _status_from_row(
    name: str, state: str, since: float | None, reason: str | None, data_text: str
) -> tuple[TargetStatus, TargetInfra | None]:
    data = json.loads(data_text)
    tracks = []
    for probe in data.get("probes", []):
        last = probe["last"]
        result = ProbeResult(
            kind=ProbeKind(last["probe"]),
            ok=last["ok"],
            reason=None if last["reason"] is None else Reason(last["reason"]),
            duration_s=last["duration_s"],
            started_at=last["started_at"],
            phases=MappingProxyType(dict(last["phases"])),
            details=None,
            error=last["error"],
        )
        tracks.append(
            ProbeTrack(
                last=result,
                observed_at=probe["observed_at"],
                consecutive_failures=probe["consecutive_failures"],
                failing_since=probe["failing_since"],
                failed_at=probe.get("failed_at"),  # absent in rows from before it existed
            )
        )
    order = {kind: rank for rank, kind in enumerate(PROBE_PRECEDENCE)}
    tracks.sort(key=lambda t: order.get(t.kind, len(order)))
    status = TargetStatus(
        name=name,
        state=TargetState(state),
        since=since,
        reason=None if reason is None else Reason(reason),
        probes=MappingProxyType({t.kind: t for t in tracks}),
        blind=bool(data.get("blind", False)),
    )
    raw_infra = data.get("infra")
    infra = None
    if raw_infra is not None:
        infra = TargetInfra(
            nameservers=frozenset(raw_infra["nameservers"]),
            address_prefixes=frozenset(raw_infra["address_prefixes"]),
            issuer=raw_infra["issuer"],
        )
    return status, infra


_INSERT_PROBE = """
    INSERT INTO probe_results (target, vantage, probe, started_at, ok, reason, duration_s,
        http_status, tls_expiry, tls_leaf_expiry, tls_version, dnssec_status, dnssec_signed,
        dnssec_expiry, phases, details, error)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_TRANSITION = """
    INSERT INTO transitions (target, old_state, new_state, at, reason) VALUES (?, ?, ?, ?, ?)
"""
_UPSERT_INCIDENT = """
    INSERT INTO incidents (id, scope, country, target, started_at, ended_at, affected,
        affected_count, dominant_reason, hint, hint_text, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET
        scope = excluded.scope, country = excluded.country, target = excluded.target,
        started_at = excluded.started_at, ended_at = excluded.ended_at,
        affected = excluded.affected, affected_count = excluded.affected_count,
        dominant_reason = excluded.dominant_reason, hint = excluded.hint,
        hint_text = excluded.hint_text, updated_at = excluded.updated_at
"""
_UPSERT_TARGET = """
    INSERT INTO targets (name, kind, country, sector, url, evidence, active, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, 1, ?)
    ON CONFLICT (name) DO UPDATE SET
        kind = excluded.kind, country = excluded.country, sector = excluded.sector,
        url = excluded.url, evidence = excluded.evidence, active = 1,
        updated_at = excluded.updated_at
"""
_UPSERT_STATUS = """
    INSERT INTO target_status (target, kind, state, confirmed_state, since, reason, country,
        sector, blind, observed_at, consecutive_failures, data, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (target) DO UPDATE SET
        kind = excluded.kind, state = excluded.state, confirmed_state = excluded.confirmed_state,
        since = excluded.since, reason = excluded.reason, country = excluded.country,
        sector = excluded.sector, blind = excluded.blind, observed_at = excluded.observed_at,
        consecutive_failures = excluded.consecutive_failures, data = excluded.data,
        updated_at = excluded.updated_at
"""
_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"

# Each deletes at most `limit` rows older than the cutoff; run until fewer come back.
_PRUNE_STATEMENTS: tuple[tuple[str, str], ...] = (
    (
        "probe_results",
        "DELETE FROM probe_results WHERE id IN "
        "(SELECT id FROM probe_results WHERE started_at < ? LIMIT ?)",
    ),
    (
        "transitions",
        "DELETE FROM transitions WHERE id IN (SELECT id FROM transitions WHERE at < ? LIMIT ?)",
    ),
    (
        "incidents",
        "DELETE FROM incidents WHERE id IN "
        "(SELECT id FROM incidents WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?)",
    ),
)

# What one bad record raises (not the disk): skip it, keep the rest of the batch.
_RECORD_ERRORS = (
    TypeError,
    ValueError,
    KeyError,
    OverflowError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
)


class _Statements:
    """Turns records into SQL on the writer's connection. Writer thread only."""

    def __init__(self, conn: sqlite3.Connection, vantage: str) -> None:
        self.conn = conn
        self.vantage = vantage
        # From the last targets record: what the status rows' extra columns need.
        self.targets: dict[str, Target] = {}
        self.canaries: frozenset[str] = frozenset()

    def apply(self, record: _Record, now: float) -> None:
        if isinstance(record, _ProbeRecord):
            self.conn.execute(_INSERT_PROBE, _probe_row(record, self.vantage))
        elif isinstance(record, Transition):
            self.conn.execute(
                _INSERT_TRANSITION,
                (
                    record.target,
                    record.old.value,
                    record.new.value,
                    record.at,
                    None if record.reason is None else record.reason.value,
                ),
            )
        elif isinstance(record, Incident):
            self.conn.execute(_UPSERT_INCIDENT, _incident_row(record, now))
        else:
            self._replace_targets(record, now)

    def _replace_targets(self, record: _TargetsRecord, now: float) -> None:
        rows: list[tuple[str, str, str | None, str | None, str, str | None, float]] = [
            (t.name, "target", t.country, t.sector, t.url, t.evidence, now) for t in record.targets
        ]
        rows += [(c.name, "canary", None, None, c.url, None, now) for c in record.canaries]
        self.conn.executemany(_UPSERT_TARGET, rows)
        # Removed ones stay (their history needs a country) but are marked inactive;
        # their status rows go: nothing will update them again.
        names = json.dumps([row[0] for row in rows])
        self.conn.execute(
            "UPDATE targets SET active = 0, updated_at = ? "
            "WHERE active = 1 AND name NOT IN (SELECT value FROM json_each(?))",
            (now, names),
        )
        self.conn.execute(
            "DELETE FROM target_status WHERE target NOT IN (SELECT value FROM json_each(?))",
            (names,),
        )
        self.targets = {t.name: t for t in record.targets}
        self.canaries = frozenset(c.name for c in record.canaries)

    def upsert_status(self, rows: Iterable[StatusRow], now: float) -> int:
        """Insert or update these rows; returns how many could not be stored."""
        skipped = 0
        for row in rows:
            s = row.status
            target = self.targets.get(s.name)
            try:
                data = _dumps(_status_data(s, row.infra))
                self.conn.execute(
                    _UPSERT_STATUS,
                    (
                        s.name,
                        "canary" if s.name in self.canaries else "target",
                        TargetState(row.reported).value,
                        s.state.value,
                        s.since,
                        None if s.reason is None else s.reason.value,
                        None if target is None else target.country,
                        None if target is None else target.sector,
                        int(s.blind),
                        s.observed_at,
                        s.consecutive_failures,
                        data,
                        now,
                    ),
                )
            except _RECORD_ERRORS as exc:
                skipped += 1
                log.error("storage: cannot store the status of %r: %s", s.name, exc)
        return skipped


# --- reading ------------------------------------------------------------------------


_INCIDENT_COLUMNS = (
    "id, scope, country, target, started_at, ended_at, affected, dominant_reason, hint"
)


def _read_incidents(conn: sqlite3.Connection, where: str, *params: Any) -> list[Incident]:
    """Incidents matching `where`; a row this version cannot read (say, a reason a
    later version added) is skipped with a warning rather than fail the caller."""
    incidents = []
    for row in conn.execute(f"SELECT {_INCIDENT_COLUMNS} FROM incidents {where}", params):
        try:
            incidents.append(_incident_from_row(row))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("storage: cannot read incident %r: %s", row[0], exc)
    return incidents


def read_open_incidents(conn: sqlite3.Connection) -> list[Incident]:
    """Incidents without an end, oldest first."""
    return _read_incidents(conn, "WHERE ended_at IS NULL ORDER BY started_at, id")


def read_incidents_since(
    conn: sqlite3.Connection, since: float, *, limit: int = 1000
) -> list[Incident]:
    """Incidents active at any moment from `since` on (still open, or ended at or
    after it), newest start first."""
    return _read_incidents(
        conn,
        "WHERE ended_at IS NULL OR ended_at >= ? ORDER BY started_at DESC, id LIMIT ?",
        since,
        limit,
    )


def read_restore(conn: sqlite3.Connection) -> Restored:
    """The last status snapshot and the open incidents, as monitor.state/outage types.

    A row this version cannot read is skipped with a warning: a restart must not
    fail over history.
    """
    statuses: dict[str, TargetStatus] = {}
    infra: dict[str, TargetInfra] = {}
    saved_at: float | None = None
    rows = conn.execute(
        "SELECT target, coalesce(confirmed_state, state), since, reason, data, updated_at "
        "FROM target_status ORDER BY target"
    ).fetchall()
    for name, state, since, reason, data, updated_at in rows:
        try:
            status, facts = _status_from_row(name, state, since, reason, data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("storage: cannot restore the status of %r: %s", name, exc)
            continue
        statuses[name] = status
        if facts is not None:
            infra[name] = facts
        saved_at = updated_at if saved_at is None else max(saved_at, updated_at)
    return Restored(
        statuses=MappingProxyType(statuses),
        infra=MappingProxyType(infra),
        open_incidents=tuple(read_open_incidents(conn)),
        saved_at=saved_at,
    )


# --- the writer -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StorageSettings:
    batch_size: int = 500  # records per transaction; a full batch also triggers a flush
    flush_interval_s: float = 2.0
    max_pending: int = 50_000  # beyond this, new records are dropped (and counted)
    max_attempts: int = 3  # a batch that fails this many times is dropped
    retention_s: float = 30 * 86400.0
    prune_interval_s: float = 3600.0
    prune_chunk: int = 2000  # rows per delete transaction
    busy_timeout_s: float = 2.0
    close_timeout_s: float = 4.0  # SIGTERM: the daemon must be gone within 5 s


@dataclass(frozen=True, slots=True)
class WriterStats:
    written: int  # records committed
    flushes: int  # transactions committed
    errors: int  # failed transactions (disk full, I/O error, ...) and bad records
    dropped: int  # records given up on: backlog full, batch failed too often, unstorable
    pruned: int  # rows deleted by retention
    pending: int  # records waiting for the next flush
    last_flush_at: float | None
    last_error: str | None


class HistoryWriter:
    """The only writer of the history database.

    Methods that take records (`add_*`, `put_status`, `set_targets`) never block
    and never raise for storage problems: records queue in memory and are
    written in batches, one transaction per batch, by one dedicated thread.
    Disk errors are logged and counted in `stats`, and the daemon keeps going.

        writer = await HistoryWriter.open(path, vantage="sofia-1")  # StorageError if it cannot
        restored = await writer.restore()      # last statuses, infra, open incidents
        writer.set_targets(config.targets, config.canaries)   # at start and on reload
        writer.add_probe("e-Albania", result)  # every result
        writer.add_transition(transition)      # every change of a reported state
        writer.add_incident(incident)          # when it opens, grows and ends
        writer.put_status([StatusRow(status, reported, infra)])  # the targets that changed
        ...
        await writer.close()                   # on SIGTERM: flushes, within 4 s

    One database per daemon (vantage): probe rows carry the vantage, the other
    tables do not.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        *,
        vantage: str,
        settings: StorageSettings,
        clock: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._executor = executor
        self._statements = _Statements(conn, vantage)
        self._settings = settings
        self._clock = clock
        self._pending: collections.deque[_Record] = collections.deque()
        # Status rows waiting for the next flush, the latest per name; and the latest row
        # given per name, so a failed write re-queues a row only if nothing newer came.
        self._status: dict[str, StatusRow] = {}
        self._latest_status: dict[str, StatusRow] = {}
        self._attempts = 0  # failures of the batch at the head of `_pending`
        self._lock = asyncio.Lock()  # one flush at a time, so batches stay in order
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._backlog_warned = False
        self._written = 0
        self._flushes = 0
        self._errors = 0
        self._dropped = 0
        self._pruned = 0
        self._last_flush_at: float | None = None
        self._last_error: str | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._closer: asyncio.Future[None] | None = None

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        vantage: str = "",
        settings: StorageSettings | None = None,
        clock: Callable[[], float] = time.time,
        background: bool = True,
    ) -> HistoryWriter:
        """Open (create, migrate) the database and start the flush and prune tasks.

        Raises StorageError if the file cannot be opened: a bad --db should stop
        the daemon at start, not later. `background=False` starts no tasks
        (flush and prune are then called explicitly; for tests and tools).
        """
        settings = settings or StorageSettings()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="govwatch-storage")
        loop = asyncio.get_running_loop()

        def setup() -> sqlite3.Connection:
            conn = connect_writer(path, busy_timeout_s=settings.busy_timeout_s)
            conn.execute(_SET_META, ("vantage", vantage))
            return conn

        try:
            conn = await loop.run_in_executor(executor, setup)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        writer = cls(conn, executor, vantage=vantage, settings=settings, clock=clock)
        if background:
            writer._flush_task = asyncio.create_task(writer._flush_loop(), name="storage-flush")
            writer._prune_task = asyncio.create_task(writer._prune_loop(), name="storage-prune")
        return writer

    # -- accepting records (never block, never raise) --

    def add_probe(self, target: str, result: ProbeResult) -> None:
        """One probe result of the target (or canary) named `target`."""
        self._add(_ProbeRecord(target, result))

    def add_transition(self, transition: Transition) -> None:
        self._add(transition)

    def add_incident(self, incident: Incident) -> None:
        """Insert or update by id: send it when it opens, each time it grows
        (`Assessment.opened`, `.updated`) and when it ends (`.closed`)."""
        self._add(incident)

    def set_targets(self, targets: Iterable[Target], canaries: Iterable[Canary] = ()) -> None:
        """The configured targets and canaries, at start and on every reload.

        Call it before the first `put_status`: the status rows' country, sector
        and kind columns come from it. Targets no longer listed are marked
        inactive (their rows and history stay) and their target_status rows are
        deleted, queued ones included.
        """
        targets, canaries = tuple(targets), tuple(canaries)
        self._add(_TargetsRecord(targets, canaries))
        if self._closed:
            return
        names = {t.name for t in targets} | {c.name for c in canaries}
        for queue in (self._status, self._latest_status):
            for name in [n for n in queue if n not in names]:
                del queue[name]

    def put_status(self, rows: Iterable[StatusRow]) -> None:
        """Queue these rows; the next flush upserts only them (the latest row per target wins).
        Cheap and never blocks: O(len(rows))."""
        if self._closed:
            return
        for row in rows:
            self._status[row.name] = row
            self._latest_status[row.name] = row

    def _add(self, record: _Record) -> None:
        if self._closed:
            self._dropped += 1
            return
        if len(self._pending) >= self._settings.max_pending:
            self._dropped += 1
            if not self._backlog_warned:
                self._backlog_warned = True
                log.warning(
                    "storage: %d records waiting; dropping new ones until writes catch up",
                    len(self._pending),
                )
            return
        self._pending.append(record)
        if len(self._pending) >= self._settings.batch_size:
            self._wake.set()

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            written=self._written,
            flushes=self._flushes,
            errors=self._errors,
            dropped=self._dropped,
            pruned=self._pruned,
            pending=len(self._pending),
            last_flush_at=self._last_flush_at,
            last_error=self._last_error,
        )

    # -- flushing --

    async def flush(self) -> bool:
        """Write everything queued so far. False if a write failed (the records stay
        queued for a retry, up to `max_attempts`)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            while self._pending or self._status:
                count = min(self._settings.batch_size, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
                # Status rows go with the last batch, so they are never older than the
                # transitions already stored.
                status: tuple[StatusRow, ...] = ()
                if not self._pending:
                    status, self._status = tuple(self._status.values()), {}
                job = loop.run_in_executor(
                    self._executor, self._write_batch, batch, status, self._clock()
                )
                try:
                    # Shielded: a cancelled flush must still account for a batch the
                    # thread goes on to commit, or it would be written twice.
                    outcome = await asyncio.shield(job)
                except asyncio.CancelledError:
                    job.add_done_callback(
                        functools.partial(self._settle_late, size=len(batch), status=status)
                    )
                    raise
                if isinstance(outcome, _Failure):
                    self._note_failure(outcome, batch, status)
                    return False
                self._note_success(outcome, len(batch))
            return True

    def _note_success(self, outcome: _Written, size: int) -> None:
        self._attempts = 0
        self._backlog_warned = False
        self._written += size - outcome.skipped
        self._errors += outcome.skipped + outcome.bad_status
        self._dropped += outcome.skipped + outcome.bad_status
        self._flushes += 1
        self._last_flush_at = outcome.at

    def _note_failure(
        self, failure: _Failure, batch: list[_Record], status: Sequence[StatusRow]
    ) -> None:
        self._errors += 1
        self._last_error = failure.message
        self._attempts += 1
        # Status rows stay queued even when the batch is given up: they are the latest
        # word on their targets, and nothing else would rewrite them.
        self._requeue_status(status)
        if self._attempts < self._settings.max_attempts:
            log.error(
                "storage: write of %d records failed, will retry: %s", len(batch), failure.message
            )
            self._pending.extendleft(reversed(batch))
            return
        log.error(
            "storage: write of %d records failed %d times, dropping them: %s",
            len(batch),
            self._attempts,
            failure.message,
        )
        self._dropped += len(batch)
        self._attempts = 0

    def _requeue_status(self, rows: Sequence[StatusRow]) -> None:
        """Queue again the rows of a failed write that nothing newer has replaced."""
        if self._closed:
            return
        for row in rows:
            if self._latest_status.get(row.name) is row and row.name not in self._status:
                self._status[row.name] = row

    def _settle_late(
        self,
        job: asyncio.Future[_Written | _Failure],
        size: int,
        status: Sequence[StatusRow] = (),
    ) -> None:
        if job.cancelled() or job.exception() is not None:
            self._dropped += size
            self._requeue_status(status)
            return
        outcome = job.result()
        if isinstance(outcome, _Failure):
            self._errors += 1
            self._dropped += size
            self._last_error = outcome.message
            self._requeue_status(status)
        else:
            self._note_success(outcome, size)

    def _write_batch(
        self, batch: Sequence[_Record], status: Sequence[StatusRow], now: float
    ) -> _Written | _Failure:
        """Writer thread: one transaction for the batch (and the queued status rows)."""
        conn = self._conn
        skipped = bad_status = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            for record in batch:
                try:
                    self._statements.apply(record, now)
                except _RECORD_ERRORS as exc:
                    # One unstorable record must not take the batch down with it.
                    skipped += 1
                    log.error("storage: cannot store a %s: %s", type(record).__name__, exc)
            if status:
                bad_status = self._statements.upsert_status(status, now)
            conn.execute(_SET_META, ("last_flush_at", repr(now)))
            conn.execute("COMMIT")
        except Exception as exc:  # the disk (sqlite3.Error, OSError) or a bug: never fatal
            if not isinstance(exc, sqlite3.Error | OSError):
                log.exception("storage: unexpected error writing a batch")
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return _Failure(f"{type(exc).__name__}: {exc}")
        return _Written(skipped, bad_status, now)

    async def _flush_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.flush_interval_s)
            self._wake.clear()
            if self._closing:
                break
            try:
                await self.flush()
            except Exception:  # a bug, not a disk error; keep the daemon alive
                log.exception("storage: flush failed unexpectedly")
                self._errors += 1

    # -- retention --

    async def prune(self) -> int:
        """Delete rows older than the retention, a chunk per transaction, so flushes
        interleave. Returns the number of rows deleted (0 if a delete failed)."""
        cutoff = self._clock() - self._settings.retention_s
        loop = asyncio.get_running_loop()
        deleted = 0
        for table, statement in _PRUNE_STATEMENTS:
            while not self._closing:
                outcome = await loop.run_in_executor(
                    self._executor, self._delete_chunk, statement, cutoff
                )
                if isinstance(outcome, _Failure):
                    self._errors += 1
                    self._last_error = outcome.message
                    log.error("storage: pruning %s failed: %s", table, outcome.message)
                    return deleted
                deleted += outcome
                self._pruned += outcome
                if outcome < self._settings.prune_chunk:
                    break
        if deleted:
            log.info("storage: pruned %d rows older than %s", deleted, _iso(cutoff))
        return deleted

    def _delete_chunk(self, statement: str, cutoff: float) -> int | _Failure:
        try:
            with _transaction(self._conn):
                cursor = self._conn.execute(statement, (cutoff, self._settings.prune_chunk))
                return cursor.rowcount
        except (sqlite3.Error, OSError) as exc:
            return _Failure(f"{type(exc).__name__}: {exc}")

    async def _prune_loop(self) -> None:
        while not self._closing:
            try:
                await self.prune()
            except Exception:
                log.exception("storage: pruning failed unexpectedly")
                self._errors += 1
            await asyncio.sleep(self._settings.prune_interval_s)

    # -- reading (on the writer's thread: sees everything committed) --

    async def _read(self, reader: Callable[[sqlite3.Connection], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, reader, self._conn)

    async def open_incidents(self) -> list[Incident]:
        """Incidents stored as open, oldest first. What is still queued is not
        included: at most `flush_interval_s` behind."""
        return await self._read(read_open_incidents)

    async def incidents_since(self, since: float, *, limit: int = 1000) -> list[Incident]:
        """Incidents active at any moment from `since` on, newest start first."""
        return await self._read(lambda conn: read_incidents_since(conn, since, limit=limit))

    async def restore(self) -> Restored:
        """The stored status rows and open incidents (call it before adding)."""
        return await self._read(read_restore)

    # -- closing --

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop background work and write everything queued, within `close_timeout_s`
        (SIGTERM: the daemon must be gone within 5 s). What cannot be written in time
        is logged and counted as dropped. Idempotent; concurrent calls share one close."""
        if self._closer is None:
            self._closer = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closer)

    async def _close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._prune_task is not None:
            # A delete chunk already in the thread finishes first; the executor is FIFO.
            self._prune_task.cancel()
        try:
            async with asyncio.timeout(self._settings.close_timeout_s):
                if self._prune_task is not None:
                    await asyncio.gather(self._prune_task, return_exceptions=True)
                if self._flush_task is not None:
                    await self._flush_task  # wakes, finishes the flush under way, stops
                await self._final_flush()
        except TimeoutError:
            log.error(
                "storage: could not flush within %.1fs; %d records lost",
                self._settings.close_timeout_s,
                len(self._pending),
            )
        finally:
            self._closed = True
            self._dropped += len(self._pending)
            self._pending.clear()
            self._status.clear()
            self._latest_status.clear()
            self._executor.submit(self._conn.close)
            self._executor.shutdown(wait=False)

    async def _final_flush(self) -> None:
        for _ in range(self._settings.max_attempts):
            if await self.flush():
                return
        if self._pending:
            log.error("storage: %d records could not be written at close", len(self._pending))


@dataclass(frozen=True, slots=True)
class _Written:
    skipped: int  # records of the batch that could not be stored
    bad_status: int  # status rows that could not be stored
    at: float


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="seconds")
