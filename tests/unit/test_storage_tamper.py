"""Tamper signals in the history: baselines and raised signals survive a restart, an
acknowledgement queued by another process reaches the daemon, `govwatch ack` says what
happened, and a probe row does not carry the page's sketch."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.ack import EXIT_NOTHING, EXIT_OK, EXIT_USAGE, run_ack
from monitor.storage import (
    AckApplied,
    HistoryWriter,
    StorageSettings,
    ack_outcome,
    connect_readonly,
    read_signals,
    request_ack,
)
from monitor.tamper import BaselineChange, SignalChange, TamperKind
from tests.probes.test_page import DEFACED, NEWS, portal
from tests.unit.judge import catalogue
from tests.unit.test_tamper import LEARNED, http, run

T0 = 1_700_000_000.0
MANUAL = StorageSettings(flush_interval_s=3600.0)


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[HistoryWriter]:
    w = await HistoryWriter.open(tmp_path / "h.sqlite", settings=MANUAL, background=False)
    w.set_targets(catalogue({"AL": 2}))
    yield w
    await w.close()


def a_signal() -> SignalChange:
    from monitor.tamper import Signal

    verdict = run(TamperKind.DEFACEMENT, [*LEARNED, http(DEFACED)])
    assert verdict.deviation is not None
    deviation = verdict.deviation
    signal = Signal(
        "al1", TamperKind.DEFACEMENT, T0, deviation.summary, deviation.evidence, deviation.candidate
    )
    return SignalChange(signal, "AL")


async def test_baselines_and_raised_signals_survive_a_restart(writer: HistoryWriter) -> None:
    baseline = run(TamperKind.DEFACEMENT, LEARNED).baseline
    assert baseline is not None
    writer.put_baseline(BaselineChange("al1", TamperKind.DEFACEMENT, baseline))
    raised = a_signal()
    writer.add_signal(raised)
    assert await writer.flush()
    restored = await writer.restore()
    assert restored.baselines == {("al1", TamperKind.DEFACEMENT): baseline}
    assert restored.signals == (raised.signal,)
    # Cleared, it is history, no longer restored; a None baseline is forgotten.
    writer.add_signal(SignalChange(raised.signal, "AL", cleared_at=T0 + 60, cleared_by="ack"))
    writer.put_baseline(BaselineChange("al1", TamperKind.DEFACEMENT, None))
    assert await writer.flush()
    restored = await writer.restore()
    assert restored.signals == () and restored.baselines == {}


async def test_signals_are_read_with_their_evidence(writer: HistoryWriter, tmp_path: Path) -> None:
    raised = a_signal()
    writer.add_signal(raised)
    assert await writer.flush()
    conn = connect_readonly(tmp_path / "h.sqlite")
    try:
        (stored,) = read_signals(conn, raised_only=True)
        assert (stored.id, stored.target, stored.kind, stored.country) == (
            raised.signal.id,
            "al1",
            "defacement",
            "AL",
        )
        assert stored.raised and stored.evidence["new_title"] == "HACKED BY Homeland Justice"
        assert read_signals(conn, target="xk1") == []
    finally:
        conn.close()


async def test_an_acknowledgement_from_another_process_reaches_the_writer(
    writer: HistoryWriter, tmp_path: Path
) -> None:
    db = tmp_path / "h.sqlite"
    ack_id = request_ack(db, "al1", "defacement", note="ours", by="ops", now=T0)
    (pending,) = await writer.pending_acks()
    assert (pending.id, pending.target, pending.kind, pending.note) == (
        ack_id,
        "al1",
        "defacement",
        "ours",
    )
    assert await writer.pending_acks(after_id=ack_id) == []
    assert ack_outcome(db, ack_id) is None
    writer.ack_applied(AckApplied(ack_id, "cleared", T0 + 2))
    assert await writer.flush()
    outcome = ack_outcome(db, ack_id)
    assert outcome is not None and outcome.outcome == "cleared"
    assert await writer.pending_acks() == []


async def test_a_probe_row_keeps_the_page_title_not_its_sketch(
    writer: HistoryWriter, tmp_path: Path
) -> None:
    writer.add_probe("al1", http(portal(NEWS)))
    assert await writer.flush()
    conn = sqlite3.connect(tmp_path / "h.sqlite")
    (details,) = conn.execute("SELECT details FROM probe_results").fetchone()
    conn.close()
    page = json.loads(details)["page"]
    assert page == {
        "title": "e-Albania | Portali qeveritar",
        "markers": [],
        "text_chars": page["text_chars"],
    }


async def test_govwatch_ack_lists_acknowledges_and_refuses(
    writer: HistoryWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "h.sqlite"
    assert await writer.flush()
    assert run_ack(db, None, None) == EXIT_OK
    assert capsys.readouterr().out == "no tamper signals raised\n"
    writer.add_signal(a_signal())
    assert await writer.flush()
    assert run_ack(db, None, None) == EXIT_OK
    assert "al1  defacement  raised 2023-11-14 22:13 UTC  " in capsys.readouterr().out
    # Not raised: refused unless relearning is asked for.
    assert run_ack(db, "al2", "defacement", wait_s=0) == EXIT_NOTHING
    assert "--relearn" in capsys.readouterr().err
    assert run_ack(db, "al-1", "defacement", wait_s=0) == EXIT_USAGE
    assert "did you mean 'al1'" in capsys.readouterr().err
    # No daemon applies it here: queued, and said so.
    assert run_ack(db, "al1", "defacement", note="ours", wait_s=0) == EXIT_OK
    assert "queued" in capsys.readouterr().out
    (pending,) = await writer.pending_acks()
    writer.ack_applied(AckApplied(pending.id, "cleared", T0))
    assert await writer.flush()
    assert run_ack(tmp_path / "missing.sqlite", None, None) == EXIT_USAGE
