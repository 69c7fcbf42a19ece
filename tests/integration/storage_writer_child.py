"""A daemon's history writer under load, for the kill -9 test to kill at random moments.

    python -m tests.integration.storage_writer_child DB LAST_FILE heavy|light RUN

A real `HistoryWriter` with the default settings writes probe records of target RUN,
`heavy` (about 4,000 a second, full batches all the time) or `light` (20 a second: the
flush interval decides what is written). Each record's `started_at` is when it was
queued and its `duration_s` its sequence number (0, 1, 2...), so the test can see that
what survived is a prefix. After queuing each record the child writes into
LAST_FILE, through a shared memory map (no system call, nothing buffered to lose),
the sequence number, first and latest queue times: after SIGKILL the file says what
the child had queued.
"""

from __future__ import annotations

import asyncio
import mmap
import struct
import sys
import time
from pathlib import Path

from monitor.storage import HistoryWriter
from probes.results import ProbeKind, ProbeResult

LAST = struct.Struct("<qdd")  # sequence number, first queued at, latest queued at
# Records a burst and seconds between bursts, per load.
LOADS = {"heavy": (40, 0.01), "light": (1, 0.05)}


async def write(db: Path, last: mmap.mmap, load: str, run: str) -> None:
    burst, pause = LOADS[load]
    writer = await HistoryWriter.open(db)
    print("ready", flush=True)
    first: float | None = None
    seq = 0
    while True:
        for _ in range(burst):
            now = time.time()
            first = now if first is None else first
            writer.add_probe(run, ProbeResult(ProbeKind.HTTP, True, None, float(seq), now))
            LAST.pack_into(last, 0, seq, first, now)
            seq += 1
        await asyncio.sleep(pause)


def main() -> None:
    db, last_file, load, run = sys.argv[1:5]
    with open(last_file, "r+b") as file, mmap.mmap(file.fileno(), LAST.size) as last:
        asyncio.run(write(Path(db), last, load, run))


if __name__ == "__main__":
    main()
