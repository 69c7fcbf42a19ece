"""The history under faults: kill -9 mid-write, long readers and writers, a full disk and
back, a read-only file system at start.

Real SQLite files, a real child process killed with SIGKILL, real tmpfs mounts filled
up or made read-only (the tests run as root, which permission bits do not stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.storage import (
    HistoryWriter,
    StorageError,
    StorageSettings,
    connect_readonly,
    connect_writer,
    open_history,
    read_incidents_since,
    read_restore,
)
from probes.results import ProbeKind, ProbeResult
from tests.integration.storage_writer_child import LAST

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
CHILD = "tests.integration.storage_writer_child"


def result(at: float, seq: int = 0) -> ProbeResult:
    return ProbeResult(ProbeKind.HTTP, True, None, float(seq), at)


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at `where` (skips the test if this machine cannot mount)."""
    where.mkdir(exist_ok=True)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# --- kill -9 ---------------------------------------------------------------------------


def kill_a_writer(db: Path, last_file: Path, load: str, run: str, after_s: float) -> None:
    last_file.write_bytes(bytes(LAST.size))
    child = subprocess.Popen(
        [sys.executable, "-m", CHILD, str(db), str(last_file), load, run],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(after_s)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL


def test_kill_9_during_heavy_writes_keeps_the_database_whole(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    last_file = tmp_path / "last"
    seed = int.from_bytes(os.urandom(4), "big")
    moments = random.Random(seed)
    lost: dict[str, float] = {}
    for kill in range(KILLS):
        # Full batches all the time, or a trickle that only the flush interval writes
        # (given long enough that an interval of a second or more would lose more).
        load = "heavy" if kill % 2 == 0 else "light"
        run = f"run-{kill}-{load}"
        after_s = moments.uniform(0.2, 0.7) if load == "heavy" else moments.uniform(0.5, 1.5)
        kill_a_writer(db, last_file, load, run, after_s)
        last_seq, first_at, last_at = LAST.unpack(last_file.read_bytes())
        assert last_at > 0, f"{run}: the child queued nothing (seed {seed})"

        assert integrity(db) == "ok", f"{run} (seed {seed})"
        conn = connect_readonly(db)
        count, top_seq, newest = conn.execute(
            "SELECT count(*), max(duration_s), max(started_at) FROM probe_results WHERE target = ?",
            (run,),
        ).fetchone()
        conn.close()
        # What survived is a prefix of what was queued: no hole, nothing made up.
        assert count == 0 or (count == top_seq + 1 and top_seq <= last_seq), (run, seed)
        lost[run] = last_at - (first_at if newest is None else newest)
        asyncio.run(opens_again(db))
    # At most the last second of what the child had queued is lost (flushes every 0.5 s,
    # and at once when a batch fills up).
    assert max(lost.values()) <= 1.0, (seed, lost)


async def opens_again(db: Path) -> None:
    writer = await HistoryWriter.open(db, background=False)  # the restart, checks included
    await writer.restore()
    await writer.close()


# --- long readers, long writers ---------------------------------------------------------


async def test_a_long_reader_never_locks_out_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    # A write kept waiting longer than 0.5 s fails and is counted: any blocking shows.
    settings = StorageSettings(flush_interval_s=0.05, batch_size=100, busy_timeout_s=0.5)
    writer = await HistoryWriter.open(db, settings=settings)
    writer.add_probe("portal", result(time.time()))
    assert await writer.flush()
    reader = connect_readonly(db)  # what the dashboard opens
    try:
        reader.execute("BEGIN")  # a dashboard page that takes its time: a snapshot held 2.5 s
        before = reader.execute("SELECT count(*) FROM probe_results").fetchone()[0]
        started = time.monotonic()
        added = 0
        while time.monotonic() - started < 2.5:
            for _ in range(50):
                writer.add_probe("portal", result(time.time()))
            added += 50
            read_restore(reader)  # the reader keeps reading in its snapshot meanwhile
            read_incidents_since(reader, 0.0)
            await asyncio.sleep(0.02)
        await writer.flush()
        batches = writer.stats.flushes
        assert reader.execute("SELECT count(*) FROM probe_results").fetchone()[0] == before
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM probe_results").fetchone()[0] == 1 + added
    finally:
        reader.close()
    stats = writer.stats
    await writer.close()
    assert batches >= 20, stats  # many batches committed while the snapshot was held
    assert (stats.errors, stats.dropped, stats.failing, stats.written) == (0, 0, False, 1 + added)


def test_a_long_write_never_fails_a_reader(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    asyncio.run(opens_again(db))
    writer = connect_writer(db)  # the history's own writer connection, one long transaction
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.executemany(
            "INSERT INTO probe_results (target, probe, started_at, ok, duration_s) "
            "VALUES ('portal', 'http', ?, 1, 0.1)",
            ((float(i),) for i in range(20_000)),
        )
        started = time.monotonic()
        reads = 0
        while time.monotonic() - started < 2.5:  # the write is held open 2.5 s
            with open_history(db) as reader:  # new readers, as each dashboard page opens
                reader.execute("PRAGMA busy_timeout = 100")
                assert reader.execute("SELECT count(*) FROM probe_results").fetchone() == (0,)
                read_restore(reader)
                read_incidents_since(reader, 0.0)
            reads += 1
            time.sleep(0.05)
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert reads >= 10
    with open_history(db) as reader:
        assert reader.execute("SELECT count(*) FROM probe_results").fetchone() == (20_000,)


# --- the disk full and back -------------------------------------------------------------


def fill(disk: Path) -> Path:
    """The rest of the file system, taken by something else."""
    filler = disk / "filler"
    with filler.open("wb") as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * 65536)
            file.flush()
    return filler


async def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_a_full_disk_and_back_writes_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.storage")
    with tmpfs(tmp_path / "disk", "size=2m") as disk:
        db = disk / "history.sqlite3"
        settings = StorageSettings(flush_interval_s=0.05, batch_size=200, max_pending=3_000)
        writer = await HistoryWriter.open(db, settings=settings)  # the background flush
        base = time.time()
        added = 0

        def add(n: int) -> None:
            nonlocal added
            for _ in range(n):
                writer.add_probe("portal", result(base + added, seq=added))
                added += 1

        add(100)
        await wait_for(lambda: writer.stats.written == 100)
        filler = fill(disk)
        # Probing goes on while the disk is full: far more records than may wait.
        while writer.stats.dropped < 500:
            add(100)
            await asyncio.sleep(0.01)
        stats = writer.stats
        assert stats.failing and stats.failing_since is not None, stats
        assert stats.last_error is not None and "full" in stats.last_error, stats
        assert stats.errors > 0 and stats.pending == settings.max_pending, stats
        assert stats.written + stats.dropped + stats.pending == added

        filler.unlink()  # room again
        await wait_for(lambda: writer.stats.pending == 0)
        after = writer.stats
        assert not after.failing and after.failing_since is None, after
        assert after.written + after.dropped == added
        await writer.close()

        assert integrity(db) == "ok"
        with open_history(db) as reader:
            stored = [row[0] for row in reader.execute("SELECT duration_s FROM probe_results")]
        # Everything that waited was stored, in order; only what came past the bound was
        # dropped, and counted.
        assert stored == [float(seq) for seq in range(after.written)]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    failing = [line for line in lines if line.startswith("storage: writing the history fails")]
    resumed = [line for line in lines if line.startswith("storage: writes resume")]
    backlog = [line for line in lines if "dropping new ones" in line]
    # One line each, not one per failed retry (there were many).
    assert (len(failing), len(resumed), len(backlog)) == (1, 1, 1), lines
    assert len(lines) == 3, lines
    assert after.errors > 3


# --- a read-only file system at start ----------------------------------------------------


def new_file(disk: Path) -> Path:
    return disk / "history.sqlite3"


def remount_read_only(disk: Path) -> None:
    # The writer's thread may still be closing its files (close does not wait for it),
    # and a file system with a file open for writing cannot go read-only.
    deadline = time.monotonic() + 5.0
    while subprocess.run(["mount", "-o", "remount,ro", str(disk)]).returncode != 0:
        assert time.monotonic() < deadline, f"cannot remount {disk} read-only"
        time.sleep(0.05)


def remounted_read_only(disk: Path) -> Path:
    """An existing history on a disk that has since gone read-only."""
    db = disk / "history.sqlite3"
    asyncio.run(opens_again(db))
    remount_read_only(disk)
    return db


@pytest.mark.parametrize("make", [new_file, remounted_read_only])
def test_a_read_only_file_system_is_one_line_at_start(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    with tmpfs(tmp_path / "disk", "size=1m") as disk:
        if make is new_file:
            remount_read_only(disk)
        db = make(disk)
        with pytest.raises(StorageError) as raised:
            asyncio.run(opens_again(db))
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{db}: cannot write ")
    assert "(read-only file system); make it writable or give --db another path" in message


def test_an_immutable_history_is_one_line_at_start(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    asyncio.run(opens_again(db))
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i does not work on this file system")
    try:
        with pytest.raises(StorageError) as raised:
            asyncio.run(opens_again(db))
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    message = str(raised.value)
    assert message == (
        f"{db}: cannot write {db} (permission denied or immutable); "
        "make it writable or give --db another path"
    )
