"""Asking the daemon to acknowledge a tamper signal: the one write a reader makes.

`govwatch ack` and the dashboard's button add a row to tamper_acks; the daemon reads
new rows every few seconds (and at start, so an acknowledgement given while it was
stopped is not lost), applies them through the core (monitor.core `Acknowledge`) and
marks them applied with an outcome. The daemon stays the only writer of everything else.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from monitor.storage.schema import StorageError, configure, schema_version

TAMPER_SCHEMA_VERSION = 3  # the first schema with tamper_acks
NOTE_MAX_CHARS = 500


@dataclass(frozen=True, slots=True)
class AckOutcome:
    applied_at: float
    outcome: str  # 'cleared' | 'relearning' | 'unknown target'


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise StorageError(f"{path}: no such database (start `govwatch run --db {path}` first)")
    try:
        conn = sqlite3.connect(path, timeout=5.0)
        configure(conn, 5.0)
        version = schema_version(conn)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open database: {exc}") from exc
    if version < TAMPER_SCHEMA_VERSION:
        conn.close()
        raise StorageError(
            f"{path}: written by an older govwatch (schema version {version}); "
            f"`govwatch run --db {path}` upgrades it"
        )
    return conn


def request_ack(
    path: Path | str, target: str, kind: str, *, note: str | None, by: str | None, now: float
) -> int:
    """Queue an acknowledgement of `target`'s `kind` signal; returns its id."""
    conn = _connect(Path(path))
    try:
        with conn:
            cursor = conn.execute(
                "INSERT INTO tamper_acks (target, kind, note, requested_by, requested_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (target, kind, (note or None) and note[:NOTE_MAX_CHARS], by, now),
            )
        return int(cursor.lastrowid or 0)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot record the acknowledgement: {exc}") from exc
    finally:
        conn.close()


def ack_outcome(path: Path | str, ack_id: int) -> AckOutcome | None:
    """What the daemon made of acknowledgement `ack_id`; None while it waits."""
    conn = _connect(Path(path))
    try:
        row = conn.execute(
            "SELECT applied_at, outcome FROM tamper_acks WHERE id = ? AND applied_at IS NOT NULL",
            (ack_id,),
        ).fetchone()
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot read the acknowledgement: {exc}") from exc
    finally:
        conn.close()
    return None if row is None else AckOutcome(row[0], row[1] or "")
