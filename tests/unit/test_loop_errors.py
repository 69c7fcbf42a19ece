"""The event-loop exception handler the daemon installs: resource exhaustion and TLS client
noise are logged once and then summarised per window; everything else reaches asyncio's
default handler unchanged."""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from typing import Any

import pytest

from monitor.loop_errors import LoopErrorSummary, Trouble, classify

WINDOW_S = 0.3


def emfile(message: str = "socket.accept() out of system resource") -> dict[str, Any]:
    return {"message": message, "exception": OSError(errno.EMFILE, "Too many open files")}


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.loop"]


def test_what_is_summarised() -> None:
    assert classify(emfile()) is Trouble.RESOURCES
    for code in (errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
        assert classify({"message": "x", "exception": OSError(code, "x")}) is Trouble.RESOURCES
    assert classify({"message": "SSL handshake failed", "exception": ConnectionResetError()}) is (
        Trouble.TLS_CLIENTS
    )
    assert classify({"message": "Fatal error on SSL protocol"}) is Trouble.TLS_CLIENTS
    assert classify({"message": "x", "exception": ssl.SSLError(1, "bad record")}) is (
        Trouble.TLS_CLIENTS
    )
    # A refused connection or a bug is not noise: it goes to the default handler.
    assert classify({"message": "x", "exception": OSError(errno.ECONNREFUSED, "x")}) is None
    assert classify({"message": "Task exception was never retrieved"}) is None


async def test_a_flood_is_one_line_then_one_summary_per_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    summary = LoopErrorSummary(logging.getLogger("test.loop"), window_s=WINDOW_S)
    for _ in range(1000):
        summary(loop, emfile())
    summary(loop, {"message": "SSL handshake failed", "exception": ConnectionResetError("reset")})
    assert lines(caplog) == [
        "out of file descriptors or memory: socket.accept() out of system resource: "
        "[Errno 24] Too many open files",
        "TLS clients failing: SSL handshake failed: reset",
    ]
    assert all(r.exc_info is None for r in caplog.records)
    await asyncio.sleep(WINDOW_S * 1.5)
    assert lines(caplog)[2:] == [
        f"out of file descriptors or memory: 999 more in the last {WINDOW_S:g}s (latest: "
        "socket.accept() out of system resource: [Errno 24] Too many open files)"
    ]
    # Still flooding: the next ones wait for the next summary, not a line each.
    for _ in range(10):
        summary(loop, emfile())
    assert len(lines(caplog)) == 3
    await asyncio.sleep(WINDOW_S * 1.5)
    assert lines(caplog)[3:] == [
        f"out of file descriptors or memory: 10 more in the last {WINDOW_S:g}s (latest: "
        "socket.accept() out of system resource: [Errno 24] Too many open files)"
    ]
    # Quiet for a whole window: the next one is logged at once again.
    await asyncio.sleep(WINDOW_S * 1.5)
    summary(loop, emfile("again"))
    assert lines(caplog)[4:] == [
        "out of file descriptors or memory: again: [Errno 24] Too many open files"
    ]


async def test_anything_else_reaches_the_default_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    LoopErrorSummary(logging.getLogger("test.loop")).install(loop)
    try:
        loop.call_exception_handler({"message": "a bug", "exception": ValueError("boom")})
    finally:
        loop.set_exception_handler(None)
    (record,) = [r for r in caplog.records if r.name == "asyncio"]
    assert record.getMessage() == "a bug"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert lines(caplog) == []
