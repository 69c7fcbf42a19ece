"""SQLite history: probe results, state transitions, incidents, the last status snapshot.

One writer (the daemon's `HistoryWriter`, every sqlite3 call in one dedicated
thread) and any number of readers (the dashboard, the CLI) that open the file
read-only with `connect_readonly`. WAL mode: readers never block the writer
and the writer never blocks readers.

Schema version 3 (`PRAGMA user_version`; every change goes through `MIGRATIONS`, which
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
    old_state TEXT NOT NULL       'up' | 'down' | 'unknown' | 'maintenance' (monitor.state.TargetState;
                                  'maintenance' while a [[maintenance]] window covers the target)
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
    state TEXT NOT NULL           'up' | 'down' | 'unknown' | 'maintenance': the one reported state,
                                  what the API, govwatch_target_up and the transitions show
                                  ('unknown' while the monitor is blind or a confirmed failure
                                  waits for the canaries' verification, 'maintenance' while a
                                  window covers it); for canaries their confirmed state. Read
                                  this one.
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

tamper_baselines -- what each target looked like (monitor.tamper), one row per target and kind
    target TEXT NOT NULL, kind TEXT NOT NULL    'defacement' | 'dns_change' |
                                  'dnssec_downgrade' | 'cert_change'; PRIMARY KEY (target, kind)
    baseline TEXT NOT NULL        JSON of the kind's baseline (monitor.tamper.baseline_to_json)
    updated_at REAL NOT NULL

tamper_signals -- one row per tamper signal, upserted by id when raised and when cleared
    id TEXT PRIMARY KEY           e.g. 'defacement:e-albania.al:1700000000'
    target TEXT NOT NULL, kind TEXT NOT NULL, country TEXT
    raised_at REAL NOT NULL
    cleared_at REAL               NULL while raised
    cleared_by TEXT               'ack' (acknowledged: the change is the new baseline) |
                                  'removed' (the target left the config or its URL changed)
    note TEXT                     the acknowledgement's note
    summary TEXT NOT NULL         one line: what changed
    evidence TEXT NOT NULL        JSON, per kind (README, tamper signals): e.g. for defacement
                                  {"old_title", "new_title", "similarity", "new_excerpt", ...}
    candidate TEXT                JSON baseline an acknowledgement adopts (what is served now)
    updated_at REAL NOT NULL
    indexes: raised ones (target) WHERE cleared_at IS NULL, (raised_at)

tamper_acks -- acknowledgements asked for (`govwatch ack`, the dashboard), applied by the daemon
    id INTEGER PRIMARY KEY
    target TEXT NOT NULL, kind TEXT NOT NULL
    note TEXT, requested_by TEXT  who and why, as given
    requested_at REAL NOT NULL
    applied_at REAL               NULL until the daemon has applied it
    outcome TEXT                  'cleared' (a raised signal became the baseline) |
                                  'relearning' (none was raised: the baseline is learned afresh) |
                                  'unknown target'
    indexes: pending ones (id) WHERE applied_at IS NULL

meta -- facts about the writer
    key TEXT PRIMARY KEY, value TEXT NOT NULL
    keys: 'vantage'; 'last_flush_at' (epoch seconds as text)

Retention: probe_results and transitions older than the retention (30 days by
default), incidents and tamper signals that ended (cleared) before it and applied
acknowledgements older than it are deleted in the background, in small chunks.
targets, target_status, tamper_baselines, open incidents and raised signals are never
pruned.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger("monitor.storage")


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
    # Tamper signals (monitor.tamper): baselines, signals with their evidence, and the
    # acknowledgements other processes ask the daemon to apply.
    Migration(
        3,
        """
        CREATE TABLE tamper_baselines (
            target TEXT NOT NULL,
            kind TEXT NOT NULL,
            baseline TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (target, kind)
        );
        CREATE TABLE tamper_signals (
            id TEXT PRIMARY KEY,
            target TEXT NOT NULL,
            kind TEXT NOT NULL,
            country TEXT,
            raised_at REAL NOT NULL,
            cleared_at REAL,
            cleared_by TEXT,
            note TEXT,
            summary TEXT NOT NULL,
            evidence TEXT NOT NULL DEFAULT '{}',
            candidate TEXT,
            updated_at REAL NOT NULL
        );
        CREATE INDEX tamper_signals_raised ON tamper_signals (target) WHERE cleared_at IS NULL;
        CREATE INDEX tamper_signals_time ON tamper_signals (raised_at);
        CREATE TABLE tamper_acks (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            kind TEXT NOT NULL,
            note TEXT,
            requested_by TEXT,
            requested_at REAL NOT NULL,
            applied_at REAL,
            outcome TEXT
        );
        CREATE INDEX tamper_acks_pending ON tamper_acks (id) WHERE applied_at IS NULL;
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


def configure(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """What every connection to the history sets, the writer's and the readers'."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
