"""The SQLite history: probe results, state transitions, incidents, the last status snapshot.

One writer (the daemon's `HistoryWriter`, every sqlite3 call in one dedicated thread)
and any number of readers (the dashboard, the CLI) that open the file read-only with
`connect_readonly`. WAL mode: readers never block the writer and the writer never
blocks readers.

- `schema`: the tables, columns and indexes (documented in its docstring), the migrations;
- `rows`: records and status rows to table rows and back;
- `writer`: `HistoryWriter`, batching, retention;
- `readers`: read-only connections and the reads (restore, incidents, tamper signals);
- `acks`: the one write another process makes: asking the daemon to acknowledge a
  tamper signal.

Import from here: these names are the package's interface.
"""

from monitor.storage.acks import AckOutcome, ack_outcome, request_ack
from monitor.storage.readers import (
    AckRequest,
    Restored,
    StoredSignal,
    connect_readonly,
    open_history,
    read_incidents_since,
    read_open_incidents,
    read_pending_acks,
    read_restore,
    read_signals,
)
from monitor.storage.rows import AckApplied, StatusRow
from monitor.storage.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    StorageError,
    migrate,
    schema_version,
)
from monitor.storage.writer import (
    DEFAULT_DB_PATH,
    DEFAULT_RETENTION_S,
    HistoryWriter,
    StorageSettings,
    WriterStats,
    connect_writer,
)

__all__ = [
    "DEFAULT_DB_PATH",
    "DEFAULT_RETENTION_S",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AckApplied",
    "AckOutcome",
    "AckRequest",
    "HistoryWriter",
    "Migration",
    "Restored",
    "StatusRow",
    "StorageError",
    "StorageSettings",
    "StoredSignal",
    "WriterStats",
    "ack_outcome",
    "connect_readonly",
    "connect_writer",
    "migrate",
    "open_history",
    "read_incidents_since",
    "read_open_incidents",
    "read_pending_acks",
    "read_restore",
    "read_signals",
    "request_ack",
    "schema_version",
]
