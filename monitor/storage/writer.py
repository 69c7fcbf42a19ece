"""The history's one writer: `HistoryWriter` queues records in memory and writes them in
batches, one transaction per batch, on one dedicated thread; it also prunes old rows."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

from monitor.outage import Incident
from monitor.settings import Canary, Target
from monitor.state import TargetState, Transition
from monitor.storage.readers import (
    AckRequest,
    Restored,
    read_incidents_since,
    read_open_incidents,
    read_pending_acks,
    read_restore,
)
from monitor.storage.rows import (
    AckApplied,
    ProbeRecord,
    Record,
    StatusRow,
    TargetsRecord,
    dumps,
    incident_row,
    probe_row,
    signal_row,
    status_data,
)
from monitor.storage.schema import StorageError, configure, migrate
from monitor.tamper import BaselineChange, SignalChange, baseline_to_json
from probes.results import ProbeResult

log = logging.getLogger("monitor.storage")
_T = TypeVar("_T")


def connect_writer(
    path: Path | str, *, busy_timeout_s: float = 2.0, check_budget_s: float = 5.0
) -> sqlite3.Connection:
    """Open (creating it and its directory if needed), check and migrate the database
    for writing.

    WAL with synchronous=NORMAL: a committed transaction survives the process
    being killed; only a power loss can take back the last few commits.
    Raises StorageError, one line naming the path and what to do, when the file
    cannot be used: a directory, a place it cannot write, not a database, damaged
    pages (`PRAGMA quick_check`, table by table, the small ones first, for up to
    `check_budget_s`), a schema newer than this version, locked by another writer.
    """
    path = Path(path)
    _prepare_location(path)
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    except sqlite3.Error as exc:
        raise _unusable(path, exc) from exc
    try:
        configure(conn, busy_timeout_s)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(
                f"{path}: cannot switch to WAL mode (got {mode!r}); "
                "put the history on a local file system"
            )
        conn.execute("PRAGMA synchronous = NORMAL")
        # Keep the WAL from staying huge after a burst once it has been checkpointed.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        _check_pages(conn, path, check_budget_s)
        try:
            migrate(conn)
        except StorageError as exc:  # a newer schema: migrate does not know the path
            raise StorageError(f"{path}: {exc}") from exc
    except sqlite3.Error as exc:
        conn.close()
        raise _unusable(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare_location(path: Path) -> None:
    """The checks SQLite would only answer with 'unable to open database file'."""
    if path.is_dir():
        raise StorageError(
            f"{path}: is a directory, not a database file; "
            f"give --db a file in it, e.g. {path / DEFAULT_DB_PATH.name}"
        )
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise StorageError(f"{path}: {parent} is not a directory; give --db another path")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"{path}: cannot create its directory {parent} ({exc.strerror or exc}); "
            "create it or give --db another path"
        ) from exc
    # The directory too: SQLite creates the -wal and -shm files beside the database.
    # (os.access, unlike the mode bits, answers for root too: a read-only mount, chattr +i.)
    for place in (parent, path):
        if place.exists() and not os.access(place, os.W_OK):
            raise StorageError(
                f"{path}: cannot write {place} ({_why_not_writable(place)}); "
                "make it writable or give --db another path"
            )


def _why_not_writable(place: Path) -> str:
    if os.statvfs(place).f_flag & os.ST_RDONLY:
        return "read-only file system"
    return "permission denied or immutable"


# The tables that a restart reads first, checked first; the large ones last.
_CHECK_ORDER = ("meta", "targets", "target_status", "incidents", "transitions", "probe_results")


def _check_pages(conn: sqlite3.Connection, path: Path, budget_s: float) -> None:
    """StorageError if `PRAGMA quick_check` finds damage. Table by table, the small
    ones first, for at most `budget_s`: a history of gigabytes is checked in part
    (what is left unchecked shows up as failing writes or reads, never silently).
    A budget of 0 checks nothing."""
    if budget_s <= 0:
        return
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    tables.sort(key=lambda t: (_CHECK_ORDER.index(t) if t in _CHECK_ORDER else -1, t))
    deadline = time.monotonic() + budget_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 100_000)
    try:
        for table in tables:
            try:
                quoted = table.replace("'", "''")
                problems = conn.execute(f"PRAGMA quick_check('{quoted}')").fetchall()
            except sqlite3.OperationalError as exc:
                if "interrupt" not in str(exc):
                    raise
                log.info(
                    "storage: %s: checked for damage for %.0fs; table %s and later not checked",
                    path,
                    budget_s,
                    table,
                )
                return
            if problems != [("ok",)]:
                first = " ".join(str(problems[0][0]).split())
                first = first.removeprefix("*** in database main *** ")
                problem, action = _UNUSABLE["SQLITE_CORRUPT"]
                raise StorageError(
                    f"{path}: {problem} (table {table}: {first}); "
                    f"{action.replace('FILE', str(path))}"
                )
    finally:
        conn.set_progress_handler(None, 0)


# What each SQLite primary error code means for an operator starting the daemon, and
# what to do about it.
_ANOTHER = "give --db another path"
_UNUSABLE: dict[str, tuple[str, str]] = {
    "SQLITE_NOTADB": ("not an SQLite database", f"move it aside or {_ANOTHER}"),
    "SQLITE_CORRUPT": (
        "the database is damaged",
        "move it aside (`sqlite3 FILE .recover` salvages what it can) and start again",
    ),
    "SQLITE_READONLY": ("cannot be written", f"make it writable or {_ANOTHER}"),
    "SQLITE_PERM": ("cannot be written", f"make it writable or {_ANOTHER}"),
    "SQLITE_CANTOPEN": ("cannot be opened", f"check the path or {_ANOTHER}"),
    "SQLITE_FULL": ("the disk is full", f"free some space or {_ANOTHER}"),
    "SQLITE_IOERR": ("the disk reports an I/O error", f"check the disk or {_ANOTHER}"),
    "SQLITE_BUSY": ("locked by another writer", f"stop the other govwatch run or {_ANOTHER}"),
    "SQLITE_LOCKED": ("locked by another writer", f"stop the other govwatch run or {_ANOTHER}"),
}


def _unusable(path: Path, exc: sqlite3.Error) -> StorageError:
    """One line: the path, what is wrong (with SQLite's own words), what to do."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    primary = "_".join(name.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
    problem, action = _UNUSABLE.get(primary, ("cannot be used", _ANOTHER))
    said = " ".join(str(exc).split())
    return StorageError(f"{path}: {problem} ({said}); {action.replace('FILE', str(path))}")


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
_UPSERT_SIGNAL = """
    INSERT INTO tamper_signals (id, target, kind, country, raised_at, cleared_at, cleared_by,
        note, summary, evidence, candidate, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET
        cleared_at = excluded.cleared_at, cleared_by = excluded.cleared_by,
        note = excluded.note, candidate = excluded.candidate, updated_at = excluded.updated_at
"""
_UPSERT_BASELINE = """
    INSERT INTO tamper_baselines (target, kind, baseline, updated_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (target, kind) DO UPDATE SET
        baseline = excluded.baseline, updated_at = excluded.updated_at
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
    (
        "tamper_signals",
        "DELETE FROM tamper_signals WHERE id IN "
        "(SELECT id FROM tamper_signals WHERE cleared_at IS NOT NULL AND cleared_at < ? LIMIT ?)",
    ),
    (
        "tamper_acks",
        "DELETE FROM tamper_acks WHERE id IN "
        "(SELECT id FROM tamper_acks WHERE applied_at IS NOT NULL AND applied_at < ? LIMIT ?)",
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

    def apply(self, record: Record, now: float) -> None:
        if isinstance(record, ProbeRecord):
            self.conn.execute(_INSERT_PROBE, probe_row(record, self.vantage))
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
            self.conn.execute(_UPSERT_INCIDENT, incident_row(record, now))
        elif isinstance(record, SignalChange):
            self.conn.execute(_UPSERT_SIGNAL, signal_row(record, now))
        elif isinstance(record, BaselineChange):
            if record.baseline is None:
                self.conn.execute(
                    "DELETE FROM tamper_baselines WHERE target = ? AND kind = ?",
                    (record.target, record.kind.value),
                )
            else:
                self.conn.execute(
                    _UPSERT_BASELINE,
                    (
                        record.target,
                        record.kind.value,
                        dumps(baseline_to_json(record.baseline)),
                        now,
                    ),
                )
        elif isinstance(record, AckApplied):
            self.conn.execute(
                "UPDATE tamper_acks SET applied_at = ?, outcome = ? WHERE id = ?",
                (record.at, record.outcome, record.ack_id),
            )
        else:
            self._replace_targets(record, now)

    def _replace_targets(self, record: TargetsRecord, now: float) -> None:
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
                data = dumps(status_data(s, row.infra))
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


# --- the writer -----------------------------------------------------------------------


# Where the history lives and how long it is kept, unless told otherwise (`govwatch run`,
# `govwatch dashboard`, `make run`).
DEFAULT_DB_PATH = Path("data/govwatch.sqlite3")
DEFAULT_RETENTION_S = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class StorageSettings:
    batch_size: int = 500  # records per transaction; a full batch also triggers a flush
    # Also what kill -9 loses at most (plus the write under way): half a second, so that
    # "at most the last second" holds under a light load too, where no batch fills up.
    # Cheap: a commit in WAL with synchronous=NORMAL does not wait for the disk.
    flush_interval_s: float = 0.5
    # Records waiting, written or not (while writes fail they all wait, and are retried
    # every flush_interval_s); beyond this, new records are dropped (and counted).
    max_pending: int = 50_000
    retention_s: float = DEFAULT_RETENTION_S
    prune_interval_s: float = 3600.0
    prune_chunk: int = 2000  # rows per delete transaction
    busy_timeout_s: float = 2.0
    close_timeout_s: float = 4.0  # SIGTERM: the daemon must be gone within 5 s
    failure_log_interval_s: float = 60.0  # while writes fail, one summary line this often
    check_budget_s: float = (
        5.0  # at open, how long `PRAGMA quick_check` may look for damage (0: not)
    )


@dataclass(frozen=True, slots=True)
class WriterStats:
    """The writer's counters (they only grow) and its present state.

    Every record given to the writer is, at any moment, exactly one of written,
    dropped or pending. The history is failing while `failing` is true: the last
    attempt to write a batch failed, and records are waiting (and, once
    `max_pending` of them wait, being dropped).
    """

    written: int  # records committed
    flushes: int  # transactions that committed a batch
    # Transactions that failed: a batch (disk full, I/O error, locked, a damaged page)
    # or a retention delete. Each retry of a failing batch counts again.
    errors: int
    # Records given up on: more than max_pending waiting, a record that cannot be stored
    # (logged; a bug, not the disk), or still waiting when close ran out of time.
    dropped: int
    pruned: int  # rows deleted by retention
    pending: int  # records neither written nor dropped yet (queued or being written)
    last_flush_at: float | None  # clock time of the last committed batch; None before one
    last_error: str | None  # the last failed transaction's error; kept after recovery
    # When the present spell of failed batch writes began (clock time); None while the
    # last attempt succeeded (or none was made). Retention deletes neither set nor clear it.
    failing_since: float | None = None

    @property
    def failing(self) -> bool:
        """The last attempt to write a batch failed: what is probed is not being kept."""
        return self.failing_since is not None


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
        path: Path,
    ) -> None:
        self._conn = conn
        self._executor = executor
        self._statements = _Statements(conn, vantage)
        self._settings = settings
        self._clock = clock
        self._pending: collections.deque[Record] = collections.deque()
        # Status rows waiting for the next flush, the latest per name; and the latest row
        # given per name, so a failed write re-queues a row only if nothing newer came.
        self._status: dict[str, StatusRow] = {}
        self._latest_status: dict[str, StatusRow] = {}
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
        self._in_flight = 0  # records of the batch the thread is writing
        self._failing_since: float | None = None
        # The counters when the present failing spell began, for its summary lines.
        self._spell_errors = 0
        self._spell_dropped = 0
        self._failure_logged_at = 0.0  # when the last "still failing" line was written
        self._stop = asyncio.Event()  # set by close: ends the flush loop's waits
        self._flush_task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._closer: asyncio.Future[None] | None = None
        self._path = path

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

        Raises StorageError, one line naming the path and what to do, if the file
        cannot be used (see `connect_writer`): a bad --db should stop the daemon at
        start, not later. `background=False` starts no tasks (flush and prune are
        then called explicitly; for tests and tools).
        """
        path = Path(path)
        settings = settings or StorageSettings()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="govwatch-storage")
        loop = asyncio.get_running_loop()

        def setup() -> sqlite3.Connection:
            conn = connect_writer(
                path, busy_timeout_s=settings.busy_timeout_s, check_budget_s=settings.check_budget_s
            )
            try:
                conn.execute(_SET_META, ("vantage", vantage))
            except sqlite3.Error as exc:
                conn.close()
                raise _unusable(path, exc) from exc
            return conn

        try:
            conn = await loop.run_in_executor(executor, setup)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        writer = cls(conn, executor, vantage=vantage, settings=settings, clock=clock, path=path)
        if background:
            writer._flush_task = asyncio.create_task(writer._flush_loop(), name="storage-flush")
            writer._prune_task = asyncio.create_task(writer._prune_loop(), name="storage-prune")
        return writer

    # -- accepting records (never block, never raise) --

    def add_probe(self, target: str, result: ProbeResult) -> None:
        """One probe result of the target (or canary) named `target`."""
        self._add(ProbeRecord(target, result))

    def add_transition(self, transition: Transition) -> None:
        self._add(transition)

    def add_incident(self, incident: Incident) -> None:
        """Insert or update by id: send it when it opens, each time it grows
        (`Assessment.opened`, `.updated`) and when it ends (`.closed`)."""
        self._add(incident)

    def add_signal(self, record: SignalChange) -> None:
        """A tamper signal raised or cleared (upserted by id)."""
        self._add(record)

    def put_baseline(self, record: BaselineChange) -> None:
        self._add(record)

    def ack_applied(self, record: AckApplied) -> None:
        self._add(record)

    def set_targets(self, targets: Iterable[Target], canaries: Iterable[Canary] = ()) -> None:
        """The configured targets and canaries, at start and on every reload.

        Call it before the first `put_status`: the status rows' country, sector
        and kind columns come from it. Targets no longer listed are marked
        inactive (their rows and history stay) and their target_status rows are
        deleted, queued ones included.
        """
        targets, canaries = tuple(targets), tuple(canaries)
        self._add(TargetsRecord(targets, canaries))
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

    def _add(self, record: Record) -> None:
        if self._closed:
            self._dropped += 1
            return
        if len(self._pending) + self._in_flight >= self._settings.max_pending:
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
            pending=len(self._pending) + self._in_flight,
            last_flush_at=self._last_flush_at,
            last_error=self._last_error,
            failing_since=self._failing_since,
        )

    # -- flushing --

    async def flush(self) -> bool:
        """Write everything queued so far. False if a write failed: its records stay
        queued, first in line, for the next flush (the background loop retries every
        `flush_interval_s`)."""
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
                self._in_flight = len(batch)
                try:
                    # Shielded: a cancelled flush must still account for a batch the
                    # thread goes on to commit, or it would be written twice.
                    outcome = await asyncio.shield(job)
                except asyncio.CancelledError:
                    job.add_done_callback(
                        functools.partial(self._settle_late, size=len(batch), status=status)
                    )
                    raise
                finally:
                    self._in_flight = 0
                if isinstance(outcome, _Failure):
                    self._note_failure(outcome, batch, status)
                    return False
                self._note_success(outcome, len(batch))
            return True

    def _note_success(self, outcome: _Written, size: int) -> None:
        if len(self._pending) <= self._settings.max_pending // 2:
            self._backlog_warned = False  # warn again only after the backlog has drained
        self._written += size - outcome.skipped
        self._dropped += outcome.skipped + outcome.bad_status
        self._flushes += 1
        self._last_flush_at = outcome.at
        if self._failing_since is not None:
            log.warning(
                "storage: writes resume after %.0fs of failures (%d failed writes, "
                "%d records dropped meanwhile)",
                outcome.at - self._failing_since,
                self._errors - self._spell_errors,
                self._dropped - self._spell_dropped,
            )
            self._failing_since = None

    def _note_failure(
        self, failure: _Failure, batch: list[Record], status: Sequence[StatusRow]
    ) -> None:
        """A failed batch goes back to the head of the queue, whatever the error: every
        one (disk full, I/O error, locked, a damaged page) is the disk's, not the
        records', and giving the batch up would not help the next one. What cannot
        wait is bounded by max_pending (new records are dropped past it)."""
        self._note_failing(failure)
        self._pending.extendleft(reversed(batch))
        self._requeue_status(status)

    def _note_failing(self, failure: _Failure) -> None:
        """Count a failed batch write. One error line when a spell of failures starts,
        then a summary at most every `failure_log_interval_s`, and one line when writes
        resume (`_note_success`): a full disk retried twice a second must not fill the
        log (or the disk)."""
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
            self._failure_logged_at = now
            self._spell_errors, self._spell_dropped = self._errors, self._dropped
            log.error(
                "storage: writing the history fails; records stay queued (up to %d) and are "
                "retried every %.1fs: %s",
                self._settings.max_pending,
                self._settings.flush_interval_s,
                failure.message,
            )
        elif now - self._failure_logged_at >= self._settings.failure_log_interval_s:
            self._failure_logged_at = now
            log.error(
                "storage: writes still failing after %.0fs: %d failed writes, %d records "
                "dropped, %d waiting: %s",
                now - self._failing_since,
                self._errors + 1 - self._spell_errors,
                self._dropped - self._spell_dropped,
                len(self._pending) + self._in_flight,
                failure.message,
            )
        self._errors += 1
        self._last_error = failure.message

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
            # The flush that sent it was cancelled (close ran out of time): no one is
            # left to retry it.
            self._note_failing(outcome)
            self._dropped += size
            self._requeue_status(status)
        else:
            self._note_success(outcome, size)

    def _write_batch(
        self, batch: Sequence[Record], status: Sequence[StatusRow], now: float
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
            # While writes fail, retry at the interval only: the backlog is always a full
            # batch then, and waking on it would retry in a busy loop.
            wake = self._stop if self._failing_since is not None else self._wake
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self._settings.flush_interval_s)
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
        """StorageError (one line, the path and what to do) if SQLite cannot read."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, reader, self._conn)
        except sqlite3.Error as exc:
            raise _unusable(self._path, exc) from exc

    async def open_incidents(self) -> list[Incident]:
        """Incidents stored as open, oldest first. What is still queued is not
        included: at most `flush_interval_s` behind."""
        return await self._read(read_open_incidents)

    async def incidents_since(self, since: float, *, limit: int = 1000) -> list[Incident]:
        """Incidents active at any moment from `since` on, newest start first."""
        return await self._read(lambda conn: read_incidents_since(conn, since, limit=limit))

    async def pending_acks(self, after_id: int = 0) -> list[AckRequest]:
        """Acknowledgements not yet applied, with an id above `after_id`, oldest first."""
        return await self._read(lambda conn: read_pending_acks(conn, after_id))

    async def restore(self) -> Restored:
        """The stored status rows and open incidents (call it before adding).
        StorageError if they cannot be read (a damaged page the start-up check did
        not reach)."""
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
        self._stop.set()
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
        for _ in range(_CLOSE_ATTEMPTS):
            if await self.flush():
                return
        if self._pending:
            log.error("storage: %d records could not be written at close", len(self._pending))


# Tries of the last flush at close before what is left is dropped (and counted).
_CLOSE_ATTEMPTS = 3


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
