"""SQLite history, tested through the public API: HistoryWriter, the read helpers,
connect_readonly and the documented schema (the dashboard's contract)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from monitor.outage import HintKind, Incident, InfraHint, Scope, TargetInfra
from monitor.settings import Canary, OutageSettings, Target
from monitor.state import TargetState, TargetStatus, Transition, initial_status, observe
from monitor.storage import (
    MIGRATIONS,
    SCHEMA_VERSION,
    HistoryWriter,
    Migration,
    StatusRow,
    StorageError,
    StorageSettings,
    connect_readonly,
    connect_writer,
    migrate,
    read_incidents_since,
    read_open_incidents,
    read_restore,
    schema_version,
)
from probes.results import (
    CertificateReport,
    DnsDetails,
    DnssecDetails,
    DnssecStatus,
    Facts,
    HttpDetails,
    ProbeKind,
    ProbeResult,
    Reason,
    TlsDetails,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_750_000_000.0
DAY = 86_400.0
SETTINGS = OutageSettings()

# No background tasks unless a test is about them: flushes happen when the test says.
MANUAL = StorageSettings(busy_timeout_s=0.2, close_timeout_s=2.0)


# --- building inputs --------------------------------------------------------------


def result(
    kind: ProbeKind = ProbeKind.HTTP,
    started_at: float = T0,
    reason: Reason | None = None,
    duration_s: float = 0.25,
    details: Any = None,
    error: str | None = None,
) -> ProbeResult:
    return ProbeResult(
        kind=kind,
        ok=reason is None,
        reason=reason,
        duration_s=duration_s,
        started_at=started_at,
        phases=MappingProxyType({"resolve": 0.01, "connect": 0.02, "processing": 0.2}),
        details=details,
        error=error,
    )


def http_details(status_code: int | None = 200) -> HttpDetails:
    return HttpDetails(
        url="https://e-albania.test/",
        final_url="https://e-albania.test/home",
        redirects=1,
        redirect_chain=("https://e-albania.test/", "https://e-albania.test/home"),
        status_code=status_code,
        http_version="1.1",
        body_bytes=1234,
        content_type="text/html",
        content_encoding=None,
        resolved_addresses=("127.0.0.1",),
        peer_address="127.0.0.1",
        peer_port=443,
        tls_version="TLSv1.3",
        tls_cipher="TLS_AES_128_GCM_SHA256",
        server="nginx",
    )


def tls_details() -> TlsDetails:
    report = CertificateReport(
        chain=(),
        checked_at=T0,
        leaf_not_after=T0 + 40 * DAY,
        leaf_days_left=40.0,
        earliest_not_after=T0 + 12 * DAY,
        earliest_days_left=12.0,
        earliest_subject="CN=Intermediate",
    )
    return TlsDetails(
        address="127.0.0.1",
        server_name="e-albania.test",
        version="TLSv1.2",
        cipher="ECDHE-RSA-AES128-GCM-SHA256",
        cipher_bits=128,
        verified=True,
        verify_error=None,
        hostname_match=True,
        ocsp_stapled=False,
        ocsp_status=None,
        subject="CN=e-albania.test",
        issuer="CN=Intermediate",
        leaf_expiry=T0 + 40 * DAY,
        earliest_expiry=T0 + 12 * DAY,
        certificates=report,
    )


def dns_details(status: DnssecStatus | None, signed: bool = False) -> DnsDetails:
    dnssec = None
    if status is not None:
        expiry = T0 + 7 * DAY if signed else None
        dnssec = DnssecDetails(status, signed, status is DnssecStatus.SECURE, None, expiry, None)
    return DnsDetails(host="e-albania.test", addresses=("127.0.0.9",), resolvers=(), dnssec=dnssec)


def target(name: str, country: str = "AL", sector: str = "portal") -> Target:
    return Target(name=name, url=f"https://{name.lower()}.test/", country=country, sector=sector)


def incident(id: str = "country:AL:1750000000", **kw: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": id,
        "scope": Scope.COUNTRY,
        "country": "AL",
        "target": None,
        "started_at": T0,
        "ended_at": None,
        "affected": ("Parliament", "e-Albania"),
        "dominant_reason": Reason.CONNECT_TIMEOUT,
        "hints": (InfraHint(HintKind.NAMESERVERS, ("ns11.akshi.test", "ns12.akshi.test"), 2, 2),),
    }
    fields.update(kw)
    return Incident(**fields)


def status_after(name: str, *results: ProbeResult) -> TargetStatus:
    """A status as the real reducer builds it, observing each result at its start."""
    status = initial_status(name)
    for r in results:
        status = observe(status, r, r.started_at + r.duration_s, SETTINGS).status
    return status


@dataclass(frozen=True, slots=True)
class Unstorable:
    value: object

    def facts(self) -> Facts:
        return Facts()


# --- fixtures and helpers -------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite"


@pytest.fixture
async def writer(db: Path) -> AsyncIterator[HistoryWriter]:
    w = await HistoryWriter.open(db, vantage="tirana-1", settings=MANUAL, background=False)
    yield w
    await w.close()


@pytest.fixture
def reader(db: Path, writer: HistoryWriter) -> Iterator[sqlite3.Connection]:
    conn = connect_readonly(db)
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


def rows(conn: sqlite3.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(sql, args).fetchall()]


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def lock_holder(db: Path) -> Iterator[sqlite3.Connection]:
    """A second writer connection: `BEGIN IMMEDIATE` on it makes every write of the
    HistoryWriter fail with 'database is locked', a real SQLite error."""
    conn = sqlite3.connect(db, isolation_level=None)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


# --- opening, pragmas, migrations -------------------------------------------------


async def test_new_database_is_wal_at_latest_version(reader: sqlite3.Connection) -> None:
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema_version(reader) == SCHEMA_VERSION == MIGRATIONS[-1].version
    tables = {r[0] for r in rows(reader, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"targets", "probe_results", "transitions", "incidents", "target_status"} <= tables
    assert rows(reader, "SELECT key, value FROM meta WHERE key = 'vantage'") == [
        ("vantage", "tirana-1")
    ]
    assert [r[1] for r in rows(reader, "PRAGMA table_info(target_status)")] == STATUS_COLUMNS


STATUS_COLUMNS = [
    "target",
    "kind",
    "state",
    "confirmed_state",
    "since",
    "reason",
    "country",
    "sector",
    "blind",
    "observed_at",
    "consecutive_failures",
    "data",
    "updated_at",
]


def test_older_database_is_migrated_in_order_and_keeps_its_rows(db: Path) -> None:
    # A database as version 1 left it, with a row in it.
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrate(conn, MIGRATIONS[:1]) == 1
    conn.execute(
        "INSERT INTO transitions (target, old_state, new_state, at, reason) "
        "VALUES ('e-Albania', 'up', 'down', 1.0, 'connect_timeout')"
    )
    later = (
        *MIGRATIONS,
        Migration(90, "ALTER TABLE transitions ADD COLUMN note TEXT DEFAULT 'v90';"),
        Migration(91, "UPDATE transitions SET note = note || '+v91';"),
    )
    assert migrate(conn, later) == 91
    assert schema_version(conn) == 91
    assert rows(conn, "SELECT target, note FROM transitions") == [("e-Albania", "v90+v91")]
    assert migrate(conn, later) == 91  # nothing left to do, nothing re-run
    assert rows(conn, "SELECT note FROM transitions") == [("v90+v91",)]
    conn.close()


async def test_a_version_1_database_gets_the_reported_state_in_state(
    db: Path, tmp_path: Path
) -> None:
    # A status row's data as the writer stores it, to put in the old file.
    awaiting = status_after(
        "e-Albania",
        result(ProbeKind.DNS, T0),
        result(started_at=T0 + 1, reason=Reason.CONNECT_TIMEOUT),
        result(started_at=T0 + 9, reason=Reason.CONNECT_TIMEOUT),
    )
    assert awaiting.state is TargetState.DOWN
    infra = TargetInfra.from_facts(nameservers=["ns11.akshi.test"], addresses=["127.0.0.9"])
    async with await HistoryWriter.open(tmp_path / "donor.sqlite", settings=MANUAL) as donor:
        donor.put_status([status_row(awaiting, infra=infra)])
    conn = connect_readonly(tmp_path / "donor.sqlite")
    data = conn.execute("SELECT data FROM target_status").fetchone()[0]
    conn.close()

    # The file as version 1 left it: its own DDL, and rows as its writer wrote them.
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrate(conn, MIGRATIONS[:1]) == 1
    v1_rows = [
        # target, kind, state (confirmed), reported_state, since, reason, country, sector,
        # blind, observed_at, consecutive_failures, data, updated_at
        ("e-Albania", "target", "down", "unknown", awaiting.since, "connect_timeout", "AL",
         "portal", 0, T0 + 9.25, 2, data, T0 + 10),
        ("gov.si", "target", "up", "up", T0 - 5, None, "SI", "portal", 0, T0 + 8, 0, "{}", T0 + 10),
        ("Quad9", "canary", "up", None, T0 - 7, None, None, None, 0, T0 + 6, 0, "{}", T0 + 10),
        ("eUprava", "target", "unknown", None, None, None, "RS", "identity", 1, None, 0, "{}",
         T0 + 10),
    ]  # fmt: skip
    conn.executemany(
        "INSERT INTO target_status (target, kind, state, reported_state, since, reason, "
        "country, sector, blind, observed_at, consecutive_failures, data, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        v1_rows,
    )
    conn.execute(
        "INSERT INTO transitions (target, old_state, new_state, at, reason) "
        "VALUES ('e-Albania', 'up', 'down', ?, 'connect_timeout')",
        (awaiting.since,),
    )
    conn.close()

    conn = connect_writer(db)  # what the daemon does at start
    assert schema_version(conn) == SCHEMA_VERSION == 3
    assert [r[1] for r in rows(conn, "PRAGMA table_info(target_status)")] == STATUS_COLUMNS
    # state := the reported state where there was one; confirmed_state := the old state.
    assert rows(conn, f"SELECT {', '.join(STATUS_COLUMNS)} FROM target_status ORDER BY target") == [
        (name, kind, reported or state, state, *rest)
        for name, kind, state, reported, *rest in sorted(v1_rows)
    ]
    assert rows(conn, "SELECT target, old_state, new_state FROM transitions") == [
        ("e-Albania", "up", "down")
    ]
    restored = read_restore(conn)
    assert restored.statuses["e-Albania"] == without_details(awaiting)
    assert restored.infra == {"e-Albania": infra}
    assert restored.statuses["eUprava"].state is TargetState.UNKNOWN
    conn.close()

    # The migrated table takes upserts like a new one.
    writer = await HistoryWriter.open(db, settings=MANUAL, background=False)
    writer.put_status([status_row(status_after("e-Albania", result(started_at=T0 + 20)))])
    assert await writer.flush()
    await writer.close()
    conn = connect_readonly(db)
    assert rows(
        conn, "SELECT target, state, confirmed_state FROM target_status ORDER BY target"
    ) == [
        ("Quad9", "up", "up"),
        ("e-Albania", "up", "up"),
        ("eUprava", "unknown", "unknown"),
        ("gov.si", "up", "up"),
    ]
    conn.close()


def test_unversioned_file_is_migrated_by_the_writer(db: Path) -> None:
    sqlite3.connect(db).close()  # an empty file at user_version 0
    conn = connect_writer(db)
    assert schema_version(conn) == SCHEMA_VERSION
    conn.close()


def test_failed_migration_leaves_the_previous_version(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn)
    broken = (*MIGRATIONS, Migration(SCHEMA_VERSION + 1, "CREATE TABLE t (a); SELECT nope;"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert schema_version(conn) == SCHEMA_VERSION
    assert rows(conn, "SELECT name FROM sqlite_master WHERE name = 't'") == []
    conn.close()


def test_migrations_must_be_ordered(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    with pytest.raises(ValueError):
        migrate(conn, (Migration(2, ""), Migration(1, "")))
    conn.close()


async def test_newer_database_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer") as raised:
        await HistoryWriter.open(db, settings=MANUAL)
    assert str(raised.value).startswith(f"{db}: ")


async def test_missing_directories_are_created(tmp_path: Path) -> None:
    db = tmp_path / "var" / "lib" / "govwatch" / "h.sqlite"
    writer = await HistoryWriter.open(db, settings=MANUAL, background=False)
    await writer.close()
    assert db.is_file()


def overwrite_page(db: Path, page: int) -> None:
    """Random bytes over one page (1-based) of a database whose WAL has been folded in."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with db.open("r+b") as file:
        file.seek((page - 1) * page_size)
        file.write(os.urandom(page_size))


async def a_history_with_rows(db: Path) -> None:
    writer = await HistoryWriter.open(db, settings=MANUAL, background=False)
    writer.set_targets([target(f"t{i}") for i in range(50)])
    for i in range(2_000):
        writer.add_probe(f"t{i % 50}", result(started_at=T0 + i, details=http_details()))
    writer.put_status([status_row(status_after("t1", result()))])
    writer.add_incident(incident())
    assert await writer.flush()
    await writer.close()


def not_a_database(db: Path) -> None:
    db.write_bytes(os.urandom(4096))


def a_directory(db: Path) -> None:
    db.mkdir()


def under_a_file(db: Path) -> Path:
    """A parent that cannot be created: its own parent is a regular file."""
    (db.parent / "file").write_text("not a directory")
    return db.parent / "file" / "sub" / "h.sqlite"


def newer_schema(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (not_a_database, "not an SQLite database"),
        (a_directory, "is a directory"),
        (under_a_file, "cannot create its directory"),
        (newer_schema, "newer than this govwatch understands"),
    ],
)
async def test_an_unusable_path_is_one_line_naming_it_and_what_to_do(
    db: Path, make: Callable[[Path], Path | None], says: str
) -> None:
    db = make(db) or db
    with pytest.raises(StorageError) as raised:
        await HistoryWriter.open(db, settings=MANUAL, background=False)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{db}: ")
    assert says in message and "--db" in message, message


async def test_a_history_locked_by_another_writer_is_one_line(
    db: Path, lock_holder: sqlite3.Connection
) -> None:
    await (await HistoryWriter.open(db, settings=MANUAL, background=False)).close()
    lock_holder.execute("BEGIN IMMEDIATE")  # another `govwatch run` on the same file
    with pytest.raises(StorageError) as raised:
        await HistoryWriter.open(db, settings=MANUAL, background=False)
    assert str(raised.value) == (
        f"{db}: locked by another writer (database is locked); "
        "stop the other govwatch run or give --db another path"
    )


@pytest.mark.parametrize("page", [2, 4, 10, 19, -1])
async def test_a_damaged_page_is_found_at_start(db: Path, page: int) -> None:
    await a_history_with_rows(db)
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    overwrite_page(db, page if page > 0 else pages)
    with pytest.raises(StorageError) as raised:
        await HistoryWriter.open(db, settings=MANUAL, background=False)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{db}: the database is damaged")
    assert f"sqlite3 {db} .recover" in message and "start again" in message


async def test_a_damaged_page_past_the_check_budget_fails_reads_not_silently(db: Path) -> None:
    await a_history_with_rows(db)
    conn = sqlite3.connect(db)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'target_status'")
    conn.close()
    overwrite_page(db, root[0])
    no_check = replace(MANUAL, check_budget_s=0.0)
    writer = await HistoryWriter.open(db, settings=no_check, background=False)
    with pytest.raises(StorageError, match="the database is damaged") as raised:
        await writer.restore()  # reads target_status: the damage shows here
    await writer.close()
    assert "\n" not in str(raised.value) and str(raised.value).startswith(f"{db}: ")


async def test_readonly_connection_cannot_write(reader: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
        reader.execute("DELETE FROM targets")


# --- probe results ----------------------------------------------------------------


async def test_probe_results_keep_hot_fields_in_columns_and_the_rest_as_json(
    writer: HistoryWriter, reader: sqlite3.Connection
) -> None:
    writer.add_probe("e-Albania", result(ProbeKind.HTTP, T0, details=http_details(503)))
    writer.add_probe("e-Albania", result(ProbeKind.TLS, T0 + 1, details=tls_details()))
    writer.add_probe(
        "e-Albania",
        result(ProbeKind.HTTP, T0 + 30, Reason.HTTP_TIMEOUT, duration_s=5.0, error="timed out"),
    )
    assert await writer.flush()

    http, tls, failed = reader.execute("SELECT * FROM probe_results ORDER BY started_at")
    assert (http["target"], http["vantage"], http["probe"]) == ("e-Albania", "tirana-1", "http")
    assert (http["started_at"], http["ok"], http["reason"], http["duration_s"]) == (
        T0,
        1,
        None,
        0.25,
    )
    assert (http["http_status"], http["tls_version"], http["tls_expiry"]) == (503, "TLSv1.3", None)
    assert json.loads(http["phases"]) == {"resolve": 0.01, "connect": 0.02, "processing": 0.2}
    details = json.loads(http["details"])
    assert details["redirect_chain"] == ["https://e-albania.test/", "https://e-albania.test/home"]
    assert details["final_url"] == "https://e-albania.test/home"

    assert (tls["probe"], tls["tls_version"], tls["http_status"]) == ("tls", "TLSv1.2", None)
    assert (tls["tls_expiry"], tls["tls_leaf_expiry"]) == (T0 + 12 * DAY, T0 + 40 * DAY)
    assert json.loads(tls["details"])["certificates"]["earliest_subject"] == "CN=Intermediate"

    assert (failed["ok"], failed["reason"], failed["error"]) == (0, "http_timeout", "timed out")
    assert (failed["duration_s"], failed["details"]) == (5.0, None)
    for row in (http, tls, failed):
        assert (row["dnssec_status"], row["dnssec_signed"], row["dnssec_expiry"]) == (None,) * 3
    # SQLite's own JSON functions read the phases, for drill-down queries.
    assert reader.execute(
        "SELECT json_extract(phases, '$.connect') FROM probe_results WHERE id = ?", (http["id"],)
    ).fetchone()[0] == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("details", "columns"),
    [
        (dns_details(DnssecStatus.SECURE, signed=True), ("secure", 1, T0 + 7 * DAY)),
        (dns_details(DnssecStatus.BOGUS, signed=True), ("bogus", 1, T0 + 7 * DAY)),
        (dns_details(DnssecStatus.INSECURE), ("insecure", 0, None)),
        (dns_details(DnssecStatus.INDETERMINATE), ("indeterminate", None, None)),
        (dns_details(None), (None, None, None)),
    ],
    ids=["secure", "bogus", "unsigned", "indeterminate", "no-dnssec-check"],
)
async def test_dns_results_keep_dnssec_in_columns(
    writer: HistoryWriter, reader: sqlite3.Connection, details: DnsDetails, columns: tuple[Any, ...]
) -> None:
    writer.add_probe("e-Albania", result(ProbeKind.DNS, details=details))
    await writer.flush()
    assert rows(
        reader, "SELECT probe, dnssec_status, dnssec_signed, dnssec_expiry FROM probe_results"
    ) == [("dns", *columns)]
    stored = json.loads(reader.execute("SELECT details FROM probe_results").fetchone()[0])
    assert stored["addresses"] == ["127.0.0.9"]


async def test_details_json_cannot_express_lose_only_the_details(
    writer: HistoryWriter, reader: sqlite3.Connection
) -> None:
    writer.add_probe("A", result(details=Unstorable(float("nan"))))
    writer.add_probe("B", result(details=Unstorable(object())))
    assert await writer.flush()
    assert rows(reader, "SELECT target, ok, details FROM probe_results ORDER BY id") == [
        ("A", 1, None),
        ("B", 1, None),
    ]
    assert (writer.stats.written, writer.stats.errors) == (2, 0)


async def test_an_unstorable_record_is_skipped_not_the_batch(
    writer: HistoryWriter, reader: sqlite3.Connection
) -> None:
    writer.add_incident(incident("good-1"))
    writer.add_incident(incident("bad", affected=(object(),)))
    writer.add_incident(incident("good-2"))
    assert await writer.flush()
    assert [i.id for i in read_open_incidents(reader)] == ["good-1", "good-2"]
    stats = writer.stats
    # Dropped (a bug's mark, logged), but not a failed write: the transaction committed.
    assert (stats.written, stats.dropped, stats.errors, stats.failing) == (2, 1, 0, False)


# --- transitions, incidents, targets -------------------------------------------------


async def test_transitions_are_appended(writer: HistoryWriter, reader: sqlite3.Connection) -> None:
    up, down = TargetState.UP, TargetState.DOWN
    writer.add_transition(Transition("e-Albania", up, down, T0, Reason.CONNECT_TIMEOUT))
    writer.add_transition(Transition("e-Albania", down, up, T0 + 60, None))
    await writer.flush()
    assert rows(
        reader, "SELECT target, old_state, new_state, at, reason FROM transitions ORDER BY at"
    ) == [
        ("e-Albania", "up", "down", T0, "connect_timeout"),
        ("e-Albania", "down", "up", T0 + 60, None),
    ]


async def test_incident_is_upserted_while_it_grows_and_when_it_ends(
    writer: HistoryWriter, db: Path
) -> None:
    first = incident(affected=("e-Albania",), hints=())
    writer.add_incident(first)
    await writer.flush()
    assert await writer.open_incidents() == [first]

    grown = incident(affected=("Kryeministria", "Parliament", "e-Albania"))
    writer.add_incident(grown)
    await writer.flush()
    assert await writer.open_incidents() == [grown]

    ended = replace(grown, ended_at=T0 + 3600)
    writer.add_incident(ended)
    await writer.flush()
    assert await writer.open_incidents() == []
    assert await writer.incidents_since(T0) == [ended]

    conn = connect_readonly(db)
    assert rows(conn, "SELECT count(*), max(affected_count), max(hint_text) FROM incidents") == [
        (1, 3, "all 2 affected targets share name servers ns11.akshi.test, ns12.akshi.test")
    ]
    assert json.loads(conn.execute("SELECT hint FROM incidents").fetchone()[0]) == [
        {
            "kind": "nameservers",
            "values": ["ns11.akshi.test", "ns12.akshi.test"],
            "count": 2,
            "of": 2,
        }
    ]
    assert read_incidents_since(conn, T0) == [ended]
    conn.close()


async def test_incidents_since_means_active_at_any_time_since(writer: HistoryWriter) -> None:
    old = incident("old", started_at=T0 - 2 * DAY, ended_at=T0 - DAY)
    overlapping = incident("overlapping", started_at=T0 - DAY, ended_at=T0 + 10)
    still_open = incident("open", started_at=T0 - 3 * DAY)
    recent = incident(
        "recent",
        scope=Scope.TARGET,
        target="e-Albania",
        started_at=T0 + 100,
        ended_at=T0 + 200,
        dominant_reason=None,
        hints=(),
    )
    for item in (old, overlapping, still_open, recent):
        writer.add_incident(item)
    await writer.flush()

    assert [i.id for i in await writer.incidents_since(T0)] == ["recent", "overlapping", "open"]
    assert [i.id for i in await writer.incidents_since(T0, limit=1)] == ["recent"]
    assert [i.id for i in await writer.open_incidents()] == ["open"]
    assert (await writer.incidents_since(T0 + 150))[0] == recent


async def test_targets_follow_the_config_and_removed_ones_stay_inactive(
    writer: HistoryWriter, reader: sqlite3.Connection
) -> None:
    quad9 = Canary("Quad9", "https://quad9.test/")
    writer.set_targets([target("e-Albania"), target("eUprava", "RS")], [quad9])
    await writer.flush()
    writer.set_targets([target("eUprava", "RS", "identity"), target("gov.si", "SI")], [quad9])
    await writer.flush()
    assert rows(
        reader,
        "SELECT name, kind, country, sector, url, evidence, active FROM targets ORDER BY name",
    ) == [
        ("Quad9", "canary", None, None, "https://quad9.test/", None, 1),
        ("e-Albania", "target", "AL", "portal", "https://e-albania.test/", "seen", 0),
        ("eUprava", "target", "RS", "identity", "https://euprava.test/", "seen", 1),
        ("gov.si", "target", "SI", "portal", "https://gov.si.test/", "seen", 1),
    ]


# --- status rows and restore ----------------------------------------------------------


def status_row(
    status: TargetStatus,
    reported: TargetState | None = None,
    infra: TargetInfra | None = None,
) -> StatusRow:
    """A row as the daemon puts it; reported defaults to the confirmed state."""
    return StatusRow(status=status, reported=reported or status.state, infra=infra)


AL_TARGETS = ("e-Albania", "Parliament", "Kryeministria")
QUAD9 = Canary("Quad9", "https://quad9.test/")


@dataclass(frozen=True, slots=True)
class Scenario:
    statuses: dict[str, TargetStatus]
    infra: dict[str, TargetInfra]
    reported: dict[str, TargetState]
    opened: list[Incident]

    def rows(self) -> list[StatusRow]:
        return [StatusRow(s, self.reported[n], self.infra.get(n)) for n, s in self.statuses.items()]


def scenario() -> Scenario:
    """Albania dark, as the real reducer sees it: three targets confirmed down on the same
    name servers, a canary up. Two are reported down; Kryeministria's failure still waits
    for the canaries' word, so it is reported unknown."""
    statuses: dict[str, TargetStatus] = {}
    for name in AL_TARGETS:
        statuses[name] = status_after(
            name,
            result(ProbeKind.HTTP, T0, details=http_details()),
            result(ProbeKind.DNS, T0 + 1),
            result(ProbeKind.HTTP, T0 + 30, Reason.CONNECT_TIMEOUT, 5.0, error="timeout"),
            result(ProbeKind.HTTP, T0 + 37, Reason.CONNECT_TIMEOUT, 5.0),
        )
    statuses["Quad9"] = status_after("Quad9", result(ProbeKind.HTTP, T0 + 40, duration_s=0.1))
    infra = {
        name: TargetInfra.from_facts(
            nameservers=["ns11.akshi.test.", "ns12.akshi.test"], addresses=["127.0.0.9"]
        )
        for name in AL_TARGETS
    }
    reported = {
        "e-Albania": TargetState.DOWN,
        "Parliament": TargetState.DOWN,
        "Kryeministria": TargetState.UNKNOWN,
        "Quad9": TargetState.UP,
    }
    opened = [
        incident(
            f"target:{name}:{int(T0 + 37)}",
            scope=Scope.TARGET,
            target=name,
            started_at=T0 + 37,
            affected=(name,),
            hints=(),
        )
        for name in ("Parliament", "e-Albania")  # as stored: by start, then id
    ]
    opened.append(incident(f"country:AL:{int(T0 + 45)}", started_at=T0 + 45))
    opened.append(
        incident(
            f"region:region:{int(T0 + 45)}", scope=Scope.REGION, country=None, started_at=T0 + 45
        )
    )
    return Scenario(statuses, infra, reported, opened)


def without_details(status: TargetStatus) -> TargetStatus:
    probes = {k: replace(t, last=replace(t.last, details=None)) for k, t in status.probes.items()}
    return replace(status, probes=MappingProxyType(probes))


async def test_restore_gives_back_confirmed_statuses_infra_and_open_incidents(db: Path) -> None:
    world = scenario()
    statuses = world.statuses
    assert all(statuses[n].state is TargetState.DOWN for n in AL_TARGETS)
    closed = incident("target:gone:1", scope=Scope.TARGET, target="gone", ended_at=T0 + 9)

    writer = await HistoryWriter.open(db, settings=MANUAL, clock=lambda: T0 + 50)
    writer.set_targets([target(n) for n in AL_TARGETS], [QUAD9])
    for item in (*world.opened, closed):
        writer.add_incident(item)
    writer.put_status(world.rows())
    await writer.close()

    writer = await HistoryWriter.open(db, settings=MANUAL, background=False)
    restored = await writer.restore()
    await writer.close()
    # The confirmed state comes back, with its since, reason and probe tracks, even
    # where the reported state (target_status.state) is another one.
    assert dict(restored.statuses) == {n: without_details(s) for n, s in statuses.items()}
    assert restored.statuses["Kryeministria"].state is TargetState.DOWN
    assert dict(restored.infra) == world.infra
    assert list(restored.open_incidents) == world.opened
    assert restored.saved_at == T0 + 50

    # The restored state carries on: one more failure keeps the target down, same since.
    before = restored.statuses["Kryeministria"]
    after = observe(
        before, result(started_at=T0 + 90, reason=Reason.CONNECT_TIMEOUT), T0 + 95, SETTINGS
    )
    assert (after.status.state, after.status.since, after.transition) == (
        TargetState.DOWN,
        before.since,
        None,
    )

    down_since, up_since = statuses["e-Albania"].since, statuses["Quad9"].since
    conn = connect_readonly(db)
    assert rows(
        conn,
        "SELECT target, kind, state, confirmed_state, since, reason, country, sector, blind, "
        "consecutive_failures FROM target_status ORDER BY target",
    ) == [
        ("Kryeministria", "target", "unknown", "down", down_since, "connect_timeout", "AL",
         "portal", 0, 2),
        ("Parliament", "target", "down", "down", down_since, "connect_timeout", "AL", "portal",
         0, 2),
        ("Quad9", "canary", "up", "up", up_since, None, None, None, 0, 0),
        ("e-Albania", "target", "down", "down", down_since, "connect_timeout", "AL", "portal",
         0, 2),
    ]  # fmt: skip
    assert read_restore(conn) == restored
    conn.close()


async def test_a_null_confirmed_state_restores_as_the_state(
    writer: HistoryWriter, lock_holder: sqlite3.Connection
) -> None:
    down = status_after(
        "A",
        result(started_at=T0, reason=Reason.HTTP_STATUS),
        result(started_at=T0 + 10, reason=Reason.HTTP_STATUS),
        result(started_at=T0 + 20, reason=Reason.HTTP_STATUS),
    )
    assert down.state is TargetState.DOWN
    writer.put_status([status_row(down, TargetState.UNKNOWN)])
    assert await writer.flush()
    lock_holder.execute("UPDATE target_status SET confirmed_state = NULL, state = 'down'")
    assert (await writer.restore()).statuses["A"] == without_details(down)


async def test_put_status_writes_only_the_rows_queued(db: Path) -> None:
    clock = [T0]
    writer = await HistoryWriter.open(db, settings=MANUAL, clock=lambda: clock[0], background=False)
    names = [f"target-{i:04d}" for i in range(1_000)]
    writer.set_targets([target(n) for n in names])
    writer.put_status(status_row(status_after(n, result())) for n in names)
    assert await writer.flush()

    clock[0] = T0 + 60
    failing = {n: status_after(n, result(reason=Reason.HTTP_STATUS)) for n in names[10:13]}
    writer.put_status(status_row(s, TargetState.UNKNOWN) for s in failing.values())
    writer.add_probe("target-0010", result(started_at=T0 + 59, reason=Reason.HTTP_STATUS))
    assert await writer.flush()
    await writer.close()

    conn = connect_readonly(db)
    assert count(conn, "target_status") == 1_000
    assert rows(
        conn,
        "SELECT target, state, consecutive_failures FROM target_status WHERE updated_at = ? "
        "ORDER BY target",
        T0 + 60,
    ) == [(n, "unknown", 1) for n in names[10:13]]
    assert rows(conn, "SELECT count(*), max(updated_at) FROM target_status WHERE state = 'up'") == [
        (997, T0)
    ]
    conn.close()
    assert writer.stats.flushes == 2 and writer.stats.errors == 0


async def test_the_latest_row_per_target_wins_within_a_batch(
    writer: HistoryWriter, reader: sqlite3.Connection
) -> None:
    a1 = status_after("A", result(started_at=T0))
    a2 = status_after(
        "A", result(started_at=T0), result(started_at=T0 + 30, reason=Reason.DNS_NXDOMAIN)
    )
    b = status_after("B", result(started_at=T0))
    writer.put_status([status_row(a1), status_row(b)])
    writer.put_status([status_row(a2, TargetState.UNKNOWN)])
    assert await writer.flush()
    assert rows(
        reader,
        "SELECT target, state, confirmed_state, consecutive_failures FROM target_status "
        "ORDER BY target",
    ) == [("A", "unknown", "up", 1), ("B", "up", "up", 0)]
    assert (await writer.restore()).statuses["A"] == without_details(a2)

    assert await writer.flush()  # nothing queued: the rows stay as they are
    writer.put_status([])
    assert await writer.flush()
    assert count(reader, "target_status") == 2
    assert writer.stats.errors == 0


async def test_set_targets_deletes_the_rows_of_names_no_longer_configured(
    writer: HistoryWriter, reader: sqlite3.Connection
) -> None:
    writer.set_targets([target("A"), target("B"), target("C")], [QUAD9])
    writer.put_status(status_row(status_after(n, result())) for n in ("A", "B", "C", "Quad9"))
    assert await writer.flush()
    # A reload drops B and the canary; a row of B queued before it must not come back.
    writer.put_status([status_row(status_after("B", result(started_at=T0 + 5)))])
    writer.set_targets([target("A"), target("C"), target("D")])
    writer.put_status([status_row(status_after("D", result()))])
    assert await writer.flush()
    assert rows(reader, "SELECT target FROM target_status ORDER BY target") == [
        ("A",),
        ("C",),
        ("D",),
    ]
    assert rows(reader, "SELECT name FROM targets WHERE active = 0 ORDER BY name") == [
        ("B",),
        ("Quad9",),
    ]
    assert list((await writer.restore()).statuses) == ["A", "C", "D"]


async def test_unreadable_rows_are_skipped_on_restore(
    writer: HistoryWriter, db: Path, lock_holder: sqlite3.Connection
) -> None:
    writer.put_status([status_row(status_after(n, result())) for n in ("A", "B", "C")])
    writer.add_incident(incident("good"))
    writer.add_incident(incident("future"))
    await writer.flush()
    # Values a later govwatch might write.
    lock_holder.execute("UPDATE target_status SET confirmed_state = 'degraded' WHERE target = 'A'")
    lock_holder.execute("UPDATE target_status SET state = 'degraded' WHERE target = 'C'")
    lock_holder.execute("UPDATE incidents SET scope = 'asn' WHERE id = 'future'")
    restored = await writer.restore()
    # C's confirmed state is readable: the reported one is not what a restart needs.
    assert (list(restored.statuses), [i.id for i in restored.open_incidents]) == (
        ["B", "C"],
        ["good"],
    )


async def test_an_unstorable_status_row_is_skipped_not_the_others(
    writer: HistoryWriter, reader: sqlite3.Connection
) -> None:
    bad = StatusRow(status_after("A", result()), "sideways", None)  # type: ignore[arg-type]
    writer.put_status([bad, status_row(status_after("B", result()))])
    assert await writer.flush()
    assert rows(reader, "SELECT target FROM target_status") == [("B",)]
    assert (writer.stats.errors, writer.stats.dropped) == (0, 1)


async def test_empty_database_restores_nothing(writer: HistoryWriter) -> None:
    restored = await writer.restore()
    assert (dict(restored.statuses), restored.open_incidents, restored.saved_at) == ({}, (), None)


# --- the writer: batching, errors, closing, concurrency, crashes ---------------------


async def test_a_full_batch_is_written_without_waiting_for_the_interval(db: Path) -> None:
    settings = replace(MANUAL, batch_size=10, flush_interval_s=60.0)
    writer = await HistoryWriter.open(db, settings=settings)
    for i in range(9):
        writer.add_probe("A", result(started_at=T0 + i))
    await asyncio.sleep(0.05)
    assert writer.stats.written == 0  # not a full batch: waits for the interval
    writer.add_probe("A", result(started_at=T0 + 9))
    await wait_until(lambda: writer.stats.written == 10)
    assert writer.stats.flushes == 1
    await writer.close()


async def test_records_are_written_every_interval(db: Path) -> None:
    writer = await HistoryWriter.open(db, settings=replace(MANUAL, flush_interval_s=0.05))
    writer.add_probe("A", result())
    await wait_until(lambda: writer.stats.written == 1)
    writer.put_status([status_row(status_after("A", result()))])
    await wait_until(lambda: writer.stats.flushes == 2)
    conn = connect_readonly(db)
    assert (count(conn, "probe_results"), count(conn, "target_status")) == (1, 1)
    conn.close()
    await writer.close()


async def test_close_writes_everything_within_its_budget(db: Path) -> None:
    budget = 4.0
    writer = await HistoryWriter.open(db, settings=StorageSettings(close_timeout_s=budget))
    # Far more than the ~2 s of records a flush interval leaves queued.
    for i in range(2_000):
        writer.add_probe(f"target-{i % 200}", result(started_at=T0 + i, details=http_details()))
    writer.put_status([status_row(status_after("A", result()))])
    started = time.monotonic()
    await writer.close()
    assert time.monotonic() - started <= budget * 1.1 + 0.5
    conn = connect_readonly(db)
    assert (count(conn, "probe_results"), count(conn, "target_status")) == (2_000, 1)
    conn.close()
    stats = writer.stats
    assert (stats.written, stats.pending, stats.errors, stats.dropped) == (2_000, 0, 0, 0)
    writer.add_probe("late", result())  # after close: refused and counted, never raises
    assert writer.stats.dropped == 1


async def test_a_failed_write_is_retried_and_nothing_is_lost(
    writer: HistoryWriter, lock_holder: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    writer.add_probe("A", result())
    writer.put_status([status_row(status_after("A", result()))])
    lock_holder.execute("BEGIN IMMEDIATE")
    assert not await writer.flush()
    stats = writer.stats
    assert (stats.errors, stats.pending, stats.written) == (1, 1, 0)
    assert stats.last_error is not None and "locked" in stats.last_error
    lock_holder.execute("COMMIT")
    writer.add_probe("B", result())
    assert await writer.flush()
    assert rows(reader, "SELECT target FROM probe_results ORDER BY id") == [("A",), ("B",)]
    assert count(reader, "target_status") == 1
    assert (writer.stats.written, writer.stats.dropped) == (2, 0)


async def test_records_and_status_rows_outlive_a_write_that_keeps_failing(
    db: Path, lock_holder: sqlite3.Connection
) -> None:
    writer = await HistoryWriter.open(db, settings=MANUAL, background=False)
    a1 = status_after("A", result())
    a2 = status_after("A", result(), result(started_at=T0 + 30, reason=Reason.HTTP_TIMEOUT))
    writer.add_probe("kept", result())
    writer.put_status([status_row(a1), status_row(status_after("B", result()))])
    lock_holder.execute("BEGIN IMMEDIATE")
    for _ in range(5):
        assert not await writer.flush()
    writer.put_status([status_row(a2, TargetState.UNKNOWN)])  # newer, while writes fail
    assert not await writer.flush()
    assert (writer.stats.errors, writer.stats.dropped, writer.stats.pending) == (6, 0, 1)
    lock_holder.execute("COMMIT")
    assert await writer.flush()
    await writer.close()
    conn = connect_readonly(db)
    assert rows(conn, "SELECT target FROM probe_results") == [("kept",)]
    assert rows(
        conn, "SELECT target, state, consecutive_failures FROM target_status ORDER BY target"
    ) == [("A", "unknown", 1), ("B", "up", 0)]
    conn.close()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_while_writes_fail_records_wait_up_to_max_pending_then_new_ones_are_dropped(
    db: Path, lock_holder: sqlite3.Connection
) -> None:
    clock = Clock()
    settings = replace(MANUAL, max_pending=5, batch_size=2)
    writer = await HistoryWriter.open(db, settings=settings, clock=clock, background=False)
    assert not writer.stats.failing and writer.stats.failing_since is None
    lock_holder.execute("BEGIN IMMEDIATE")
    for i in range(3):
        writer.add_probe("A", result(started_at=T0 + i))
    assert not await writer.flush()
    stats = writer.stats
    assert (stats.failing, stats.failing_since, stats.errors) == (True, T0, 1)
    assert stats.last_error is not None and "locked" in stats.last_error
    clock.now += 10
    for i in range(3, 7):
        writer.add_probe("A", result(started_at=T0 + i))
    assert not await writer.flush()
    stats = writer.stats
    # Counted from the spell's start, not the last failure; new records beyond 5 dropped.
    assert (stats.failing_since, stats.errors, stats.pending, stats.dropped) == (T0, 2, 5, 2)
    lock_holder.execute("COMMIT")
    clock.now += 10
    assert await writer.flush()
    stats = writer.stats
    assert (stats.failing, stats.failing_since, stats.last_flush_at) == (False, None, T0 + 20)
    assert (stats.written, stats.dropped, stats.pending, stats.errors) == (5, 2, 0, 2)
    assert stats.last_error is not None  # kept: the last thing that went wrong
    await writer.close()
    conn = connect_readonly(db)
    # The oldest five, in order: what waited was kept, what came past the bound was not.
    assert rows(conn, "SELECT started_at FROM probe_results ORDER BY id") == [
        (T0 + i,) for i in range(5)
    ]
    conn.close()


async def test_a_failing_spell_logs_one_line_a_summary_a_minute_and_one_when_it_ends(
    db: Path, lock_holder: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    settings = replace(MANUAL, busy_timeout_s=0.0, failure_log_interval_s=60.0)
    writer = await HistoryWriter.open(db, settings=settings, clock=clock, background=False)
    caplog.set_level("INFO", logger="monitor.storage")
    lock_holder.execute("BEGIN IMMEDIATE")
    writer.add_probe("A", result())
    for _ in range(150):  # 150 s of a retry a second
        assert not await writer.flush()
        clock.now += 1
    lock_holder.execute("COMMIT")
    assert await writer.flush()
    await writer.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.storage"]
    assert len(lines) == 4, lines
    assert lines[0].startswith("storage: writing the history fails; records stay queued")
    assert "locked" in lines[0]
    assert lines[1].startswith("storage: writes still failing after 60s: 61 failed writes")
    assert lines[2].startswith("storage: writes still failing after 120s: 121 failed writes")
    assert lines[3] == (
        "storage: writes resume after 150s of failures (150 failed writes, "
        "0 records dropped meanwhile)"
    )
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR", "ERROR", "WARNING"]


async def test_the_background_flush_survives_errors_and_retries_at_its_interval(
    db: Path, lock_holder: sqlite3.Connection
) -> None:
    interval = 0.05
    settings = replace(MANUAL, flush_interval_s=interval, batch_size=2, busy_timeout_s=0.0)
    writer = await HistoryWriter.open(db, settings=settings)
    lock_holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    added = 0
    while time.monotonic() - started < 0.5:  # a full batch every 5 ms, all failing
        writer.add_probe("A", result(started_at=T0 + added))
        added += 1
        await asyncio.sleep(0.005)
    elapsed = time.monotonic() - started
    # Retried once an interval, not once a full batch (a busy loop on a full disk).
    assert 2 <= writer.stats.errors <= elapsed / interval + 2, writer.stats
    lock_holder.execute("COMMIT")
    await wait_until(lambda: writer.stats.written == added)
    assert not writer.stats.failing
    await writer.close()


async def test_close_gives_up_within_its_budget_when_the_disk_does_not_answer(
    db: Path, lock_holder: sqlite3.Connection
) -> None:
    budget = 0.5
    settings = replace(MANUAL, busy_timeout_s=0.2, close_timeout_s=budget)
    writer = await HistoryWriter.open(db, settings=settings)
    writer.add_probe("A", result())
    lock_holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    await writer.close()
    assert time.monotonic() - started <= budget * 1.1 + 0.3
    assert writer.stats.written == 0 and writer.stats.errors >= 1
    await wait_until(lambda: writer.stats.dropped == 1)  # counted, once, even if in flight
    assert writer.stats.pending == 0


async def test_close_is_idempotent_and_the_writer_is_a_context_manager(db: Path) -> None:
    async with await HistoryWriter.open(db, settings=MANUAL) as writer:
        writer.add_probe("A", result())
        await asyncio.gather(writer.close(), writer.close())
    assert (writer.stats.written, writer.stats.flushes) == (1, 1)


async def test_backlog_beyond_its_bound_is_dropped_not_blocking(db: Path) -> None:
    writer = await HistoryWriter.open(db, settings=replace(MANUAL, max_pending=5), background=False)
    for i in range(8):
        writer.add_probe("A", result(started_at=T0 + i))
    assert (writer.stats.pending, writer.stats.dropped) == (5, 3)
    await writer.close()
    assert writer.stats.written == 5


async def test_a_cancelled_flush_neither_loses_nor_duplicates_its_batch(
    db: Path, lock_holder: sqlite3.Connection
) -> None:
    writer = await HistoryWriter.open(
        db, settings=replace(MANUAL, busy_timeout_s=5.0), background=False
    )
    for i in range(10):
        writer.add_probe("A", result(started_at=T0 + i))
    lock_holder.execute("BEGIN IMMEDIATE")
    flushing = asyncio.create_task(writer.flush())
    await asyncio.sleep(0.1)  # the writer thread now waits for the lock
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    lock_holder.execute("COMMIT")  # the thread goes on and commits the batch
    await writer.restore()  # runs after that batch on the writer's one thread
    assert await writer.flush()
    await writer.close()
    conn = connect_readonly(db)
    assert count(conn, "probe_results") == 10
    conn.close()
    assert (writer.stats.written, writer.stats.dropped) == (10, 0)


async def test_a_reader_in_a_long_transaction_does_not_block_writes(
    writer: HistoryWriter, db: Path
) -> None:
    writer.add_probe("A", result())
    await writer.flush()
    reader = connect_readonly(db)
    reader.execute("BEGIN")
    assert count(reader, "probe_results") == 1  # the read transaction holds its snapshot
    for i in range(100):
        writer.add_probe("B", result(started_at=T0 + i))
    writer.add_incident(incident())
    assert await writer.flush()  # busy_timeout is 0.2 s: a blocked write would fail
    assert writer.stats.errors == 0
    assert count(reader, "probe_results") == 1  # still its snapshot, undisturbed
    other = connect_readonly(db)
    assert count(other, "probe_results") == 101  # a new reader sees the commit
    other.close()
    reader.execute("COMMIT")
    assert count(reader, "probe_results") == 101
    reader.close()


CRASHING_WRITER = """
import asyncio, sys, time
from types import MappingProxyType
from monitor.storage import HistoryWriter, StorageSettings
from probes.results import ProbeKind, ProbeResult

async def main() -> None:
    writer = await HistoryWriter.open(sys.argv[1], settings=StorageSettings(flush_interval_s=3600))
    now = time.time()  # recent: the retention prune, running at start, must keep them
    for i in range(100):
        writer.add_probe("A", ProbeResult(ProbeKind.HTTP, True, None, 0.1, now + i))
    await writer.flush()
    print("flushed", flush=True)
    writer.add_probe("unflushed", ProbeResult(ProbeKind.HTTP, True, None, 0.1, now))
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_committed_batches_survive_kill_9(db: Path) -> None:
    process = subprocess.Popen(  # noqa: ASYNC220 - killed by hand, read in a thread
        [sys.executable, "-c", CRASHING_WRITER, str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 10)
        assert line.strip() == "flushed"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert db.with_name(db.name + "-wal").stat().st_size > 0  # abandoned, never checkpointed

    reader = connect_readonly(db)  # the dashboard, while the daemon is dead
    assert rows(reader, "SELECT target, count(*) FROM probe_results GROUP BY target") == [
        ("A", 100)
    ]
    reader.close()
    writer = await HistoryWriter.open(db, settings=MANUAL, background=False)  # the restart
    writer.add_probe("after", result())
    assert await writer.flush()
    await writer.close()
    conn = connect_readonly(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert count(conn, "probe_results") == 101
    conn.close()


# --- retention ------------------------------------------------------------------------


async def fill_for_retention(writer: HistoryWriter) -> None:
    for i in range(20):
        writer.add_probe("old", result(started_at=T0 + i))
    for i in range(5):
        writer.add_probe("fresh", result(started_at=T0 + 30 * DAY + i))
    up, down = TargetState.UP, TargetState.DOWN
    writer.add_transition(Transition("old", up, down, T0, Reason.DNS_TIMEOUT))
    writer.add_transition(Transition("fresh", up, down, T0 + 30 * DAY, Reason.DNS_TIMEOUT))
    writer.add_incident(incident("closed-long-ago", ended_at=T0 + 60))
    writer.add_incident(incident("closed-lately", ended_at=T0 + 29.9 * DAY))
    writer.add_incident(incident("open-since-long-ago"))
    writer.put_status([status_row(status_after("old", result(started_at=T0)))])
    assert await writer.flush()


async def test_retention_prunes_old_rows_in_chunks_and_keeps_open_incidents(db: Path) -> None:
    settings = replace(MANUAL, retention_s=30 * DAY, prune_chunk=7)
    writer = await HistoryWriter.open(
        db, settings=settings, clock=lambda: T0 + 30.5 * DAY, background=False
    )
    await fill_for_retention(writer)
    assert await writer.prune() == 20 + 1 + 1
    assert writer.stats.pruned == 22
    assert await writer.prune() == 0
    conn = connect_readonly(db)
    assert rows(conn, "SELECT DISTINCT target FROM probe_results") == [("fresh",)]
    assert rows(conn, "SELECT target FROM transitions") == [("fresh",)]
    assert rows(conn, "SELECT id FROM incidents ORDER BY id") == [
        ("closed-lately",),
        ("open-since-long-ago",),
    ]
    assert count(conn, "target_status") == 1
    conn.close()
    await writer.close()


async def test_retention_runs_in_the_background(db: Path) -> None:
    writer = await HistoryWriter.open(db, settings=MANUAL, background=False)
    await fill_for_retention(writer)
    await writer.close()
    settings = replace(MANUAL, retention_s=30 * DAY, prune_chunk=3)
    writer = await HistoryWriter.open(db, settings=settings, clock=lambda: T0 + 30.5 * DAY)
    await wait_until(lambda: writer.stats.pruned == 22)
    await writer.close()
