"""Reading the history: read-only connections and the reads the daemon and the
dashboard share (the last status snapshot, incidents). Any number of readers; they
never block the writer (WAL)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from monitor.outage import Incident, TargetInfra
from monitor.state import TargetStatus
from monitor.storage.rows import incident_from_row, status_from_row
from monitor.storage.schema import StorageError, configure, schema_version

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
    return Restored(
        statuses=MappingProxyType(statuses),
        infra=MappingProxyType(infra),
        open_incidents=tuple(read_open_incidents(conn)),
        saved_at=saved_at,
    )
