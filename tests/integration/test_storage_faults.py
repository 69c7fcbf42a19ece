"""The history under faults: kill -9 mid-write, a long reader, a full disk and back.

Real SQLite files, a real child process killed with SIGKILL, a real tmpfs filled up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.storage import HistoryWriter, StorageSettings
from monitor.storage.readers import connect_readonly
from probes.results import ProbeKind, ProbeResult

WRITER_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from monitor.storage import HistoryWriter
    from probes.results import ProbeKind, ProbeResult

    async def main() -> None:
        writer = await HistoryWriter.open(sys.argv[1])
        print("ready", flush=True)
        while True:  # as fast as a busy daemon: about 4,000 records a second
            for _ in range(40):
                now = time.time()
                writer.add_probe("portal", ProbeResult(ProbeKind.HTTP, True, None, 0.1, now))
            await asyncio.sleep(0.01)

    asyncio.run(main())
    """
)


def result(at: float) -> ProbeResult:
    return ProbeResult(ProbeKind.HTTP, True, None, 0.1, at)


def test_kill_9_during_heavy_writes_keeps_the_database_whole(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    lost: list[float] = []
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER_CHILD, str(db)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(random.uniform(0.2, 0.7))
        killed_at = time.time()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            (newest,) = conn.execute("SELECT max(started_at) FROM probe_results").fetchone()
        assert newest is not None
        lost.append(killed_at - newest)
    # Flushed every second: what a kill loses is at most the last second (and the commit
    # under way); the database opens again each time.
    assert max(lost) <= 1.5, lost
    asyncio.run(_opens_again(db))


async def _opens_again(db: Path) -> None:
    writer = await HistoryWriter.open(db, background=False)
    await writer.restore()
    await writer.close()


async def test_a_long_reader_never_locks_out_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    writer = await HistoryWriter.open(db, settings=StorageSettings(flush_interval_s=0.05))
    writer.add_probe("portal", result(time.time()))
    assert await writer.flush()
    reader = connect_readonly(db)
    try:
        reader.execute("BEGIN")  # a dashboard query that takes its time: a read snapshot held
        before = reader.execute("SELECT count(*) FROM probe_results").fetchone()[0]
        for _ in range(30):
            for _ in range(100):
                writer.add_probe("portal", result(time.time()))
            await asyncio.sleep(0.05)
        assert await writer.flush()
        # Still the snapshot it began with, and no write failed meanwhile.
        assert reader.execute("SELECT count(*) FROM probe_results").fetchone()[0] == before
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM probe_results").fetchone()[0] == before + 3000
    finally:
        reader.close()
    stats = writer.stats
    await writer.close()
    assert (stats.errors, stats.dropped, stats.failing_since) == (0, 0, None)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB file system (tmpfs), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_and_back_writes_resume(small_disk: Path) -> None:
    db = small_disk / "history.sqlite3"
    writer = await HistoryWriter.open(
        db, settings=StorageSettings(max_pending=20_000), background=False
    )
    writer.add_probe("portal", result(time.time()))
    assert await writer.flush()
    filler = small_disk / "filler"
    with filler.open("wb") as fill, contextlib.suppress(OSError):
        while True:  # the rest of the disk, taken by something else
            fill.write(b"\0" * 65536)
            fill.flush()
    added = 1
    for _ in range(50):
        for _ in range(200):
            writer.add_probe("portal", result(time.time()))
        added += 200
        if not await writer.flush():
            break
    stats = writer.stats
    assert stats.failing_since is not None and stats.errors > 0, stats
    assert stats.pending > 0  # kept for later, not thrown away at once
    filler.unlink()  # room again
    assert await writer.flush(), writer.stats.last_error
    after = writer.stats
    assert after.failing_since is None and after.pending == 0
    await writer.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = conn.execute("SELECT count(*) FROM probe_results").fetchone()[0]
    # Everything queued was stored, except what the backlog had to drop (counted).
    assert stored + after.dropped == added
