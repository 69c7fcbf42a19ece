"""Reading the history: read-only connections and the reads the daemon and the
dashboard share (the last status snapshot, incidents). Any number of readers; they
never block the writer (WAL)."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from monitor.outage import Incident, TargetInfra
from monitor.state import TargetStatus
from monitor.storage.rows import incident_from_row, signal_from_row, status_from_row
from monitor.storage.schema import StorageError, configure, schema_version
from monitor.tamper import Baseline, Signal, TamperKind, baseline_from_json

log = logging.getLogger("monitor.storage")


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
    baselines: Mapping[tuple[str, TamperKind], Baseline] = field(
        default_factory=lambda: MappingProxyType({})
    )
    signals: tuple[Signal, ...] = ()  # raised tamper signals
    # Each stored target's URL when the daemon last ran: tamper state of a target whose
    # URL changed while it was stopped is not restored (as a reload drops it).
    urls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class AckRequest:
    """A row of tamper_acks waiting for the daemon."""

    id: int
    target: str
    kind: str  # checked by the daemon: a row written by another tool may hold anything
    note: str | None
    requested_by: str | None
    requested_at: float


@dataclass(frozen=True, slots=True)
class StoredSignal:
    """A row of tamper_signals, for readers (the API, the dashboard, `govwatch ack`)."""

    id: str
    target: str
    kind: str
    country: str | None
    raised_at: float
    cleared_at: float | None
    cleared_by: str | None
    note: str | None
    summary: str
    evidence: Mapping[str, Any]

    @property
    def raised(self) -> bool:
        return self.cleared_at is None


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
        configure(conn, busy_timeout_s)
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"{path}: cannot open database read-only: {exc}") from exc
    return conn


@contextlib.contextmanager
def open_history(path: Path | str, *, min_version: int = 1) -> Iterator[sqlite3.Connection]:
    """A short-lived read-only connection (`connect_readonly`) to a history that exists,
    closed on leaving the block.

    StorageError when there is no such file (a reader never creates one), it cannot be
    opened, or a writer has set it up with a schema older than `min_version` (the
    oldest the caller's queries understand; a newer one is fine).
    """
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path}: no such database (start `govwatch run --db {path}` first)")
    conn = connect_readonly(path)
    try:
        version = schema_version(conn)
        if 0 < version < min_version:
            raise StorageError(
                f"{path}: written by an older govwatch (schema version {version}); "
                f"`govwatch run --db {path}` upgrades it"
            )
        yield conn
    finally:
        conn.close()


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
            incidents.append(incident_from_row(row))
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
            status, facts = status_from_row(name, state, since, reason, data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("storage: cannot restore the status of %r: %s", name, exc)
            continue
        statuses[name] = status
        if facts is not None:
            infra[name] = facts
        saved_at = updated_at if saved_at is None else max(saved_at, updated_at)
    baselines, signals = _read_tamper(conn)
    urls = dict(conn.execute("SELECT name, url FROM targets WHERE kind = 'target'").fetchall())
    return Restored(
        statuses=MappingProxyType(statuses),
        infra=MappingProxyType(infra),
        open_incidents=tuple(read_open_incidents(conn)),
        saved_at=saved_at,
        baselines=MappingProxyType(baselines),
        signals=tuple(signals),
        urls=MappingProxyType(urls),
    )


def _read_tamper(
    conn: sqlite3.Connection,
) -> tuple[dict[tuple[str, TamperKind], Baseline], list[Signal]]:
    baselines: dict[tuple[str, TamperKind], Baseline] = {}
    for target, kind, data in conn.execute(
        "SELECT target, kind, baseline FROM tamper_baselines ORDER BY target, kind"
    ):
        try:
            tamper_kind = TamperKind(kind)
            baselines[target, tamper_kind] = baseline_from_json(tamper_kind, json.loads(data))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("storage: cannot restore the %s baseline of %r: %s", kind, target, exc)
    signals = []
    for row in conn.execute(
        "SELECT target, kind, raised_at, summary, evidence, candidate FROM tamper_signals "
        "WHERE cleared_at IS NULL ORDER BY raised_at, id"
    ):
        try:
            signals.append(signal_from_row(row))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("storage: cannot restore the %s signal of %r: %s", row[1], row[0], exc)
    return baselines, signals


def read_pending_acks(conn: sqlite3.Connection, after_id: int = 0) -> list[AckRequest]:
    """Acknowledgements not yet applied with an id above `after_id`, oldest first."""
    return [
        AckRequest(*row)
        for row in conn.execute(
            "SELECT id, target, kind, note, requested_by, requested_at FROM tamper_acks "
            "WHERE applied_at IS NULL AND id > ? ORDER BY id LIMIT 1000",
            (after_id,),
        )
    ]


_SIGNAL_COLUMNS = (
    "id, target, kind, country, raised_at, cleared_at, cleared_by, note, summary, evidence"
)


def read_signals(
    conn: sqlite3.Connection,
    *,
    raised_only: bool = False,
    target: str | None = None,
    since: float | None = None,
    limit: int = 1000,
) -> list[StoredSignal]:
    """Tamper signals, newest first: raised ones only, or also those cleared at or after
    `since` (all of them when None); of one target or all."""
    where: list[str] = []
    params: list[Any] = []
    if raised_only:
        where.append("cleared_at IS NULL")
    elif since is not None:
        where.append("(cleared_at IS NULL OR cleared_at >= ?)")
        params.append(since)
    if target is not None:
        where.append("target = ?")
        params.append(target)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    signals = []
    for row in conn.execute(
        f"SELECT {_SIGNAL_COLUMNS} FROM tamper_signals {clause} "
        "ORDER BY raised_at DESC, id LIMIT ?",
        (*params, limit),
    ):
        try:
            evidence = json.loads(row[9])
        except ValueError:
            evidence = {}
        signals.append(
            StoredSignal(
                id=row[0],
                target=row[1],
                kind=row[2],
                country=row[3],
                raised_at=row[4],
                cleared_at=row[5],
                cleared_by=row[6],
                note=row[7],
                summary=row[8],
                evidence=evidence if isinstance(evidence, dict) else {},
            )
        )
    return signals
