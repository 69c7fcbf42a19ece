"""`govwatch ack [TARGET KIND]`: list raised tamper signals, or acknowledge one.

An acknowledgement says "this change is ours": the daemon clears the signal and takes
what the target serves now as its new baseline (monitor.tamper). It is queued in the
history (monitor.storage.acks) and applied by the daemon within a few seconds, or when
it next starts; this command waits a little to report the outcome.
"""

from __future__ import annotations

import difflib
import getpass
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from monitor.storage import (
    StorageError,
    StoredSignal,
    ack_outcome,
    open_history,
    read_signals,
    request_ack,
)

EXIT_OK = 0
EXIT_NOTHING = 1  # nothing raised to acknowledge
EXIT_USAGE = 2  # no such database or target
POLL_S = 0.2


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _line(signal: StoredSignal) -> str:
    return f"{signal.target}  {signal.kind}  raised {_when(signal.raised_at)}  {signal.summary}"


def _targets_and_signals(db: Path) -> tuple[list[str], list[StoredSignal], float | None]:
    with open_history(db, min_version=3) as conn:
        targets = [row[0] for row in conn.execute("SELECT name FROM targets WHERE active = 1")]
        signals = read_signals(conn, raised_only=True)
        row = conn.execute("SELECT value FROM meta WHERE key = 'last_flush_at'").fetchone()
    return targets, signals, float(row[0]) if row else None


def run_ack(
    db: Path,
    target: str | None,
    kind: str | None,
    *,
    note: str | None = None,
    relearn: bool = False,
    wait_s: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> int:
    try:
        targets, raised, last_write = _targets_and_signals(db)
    except StorageError as exc:
        print(f"govwatch ack: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if target is None or kind is None:
        if not raised:
            print("no tamper signals raised")
        for signal in raised:
            print(_line(signal))
        return EXIT_OK
    if target not in targets:
        close = difflib.get_close_matches(target, targets, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"govwatch ack: no target named {target!r} in {db}{hint}", file=sys.stderr)
        return EXIT_USAGE
    mine = [s for s in raised if s.target == target and s.kind == kind]
    if not mine and not relearn:
        others = [s for s in raised if s.target == target]
        shown = "; raised for it: " + ", ".join(s.kind for s in others) if others else ""
        print(
            f"govwatch ack: no {kind} signal raised for {target}{shown}. To learn its {kind} "
            "baseline afresh after a planned change, add --relearn.",
            file=sys.stderr,
        )
        return EXIT_NOTHING
    try:
        ack_id = request_ack(db, target, kind, note=note, by=_user(), now=clock())
    except StorageError as exc:
        print(f"govwatch ack: {exc}", file=sys.stderr)
        return EXIT_USAGE
    deadline = clock() + wait_s
    while True:
        outcome = ack_outcome(db, ack_id)
        if outcome is not None:
            print(f"{target} {kind}: {_OUTCOMES.get(outcome.outcome, outcome.outcome)}")
            return EXIT_OK
        if clock() >= deadline:
            break
        time.sleep(POLL_S)
    age = "" if last_write is None else f"; its last write was {clock() - last_write:.0f} s ago"
    print(f"{target} {kind}: acknowledgement queued; the daemon applies it when it runs{age}")
    return EXIT_OK


_OUTCOMES = {
    "cleared": "acknowledged; what it serves now is its baseline",
    "relearning": "its baseline is learned afresh from the next probes",
    "unknown target": "the daemon does not watch this target (not in its config)",
}


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
