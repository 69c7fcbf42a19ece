"""The event loop's own error reports, summarised, so a flood of clients is not a flood of logs.

asyncio and uvloop report what they cannot hand to a caller through the loop's exception
handler: an accept() that failed, a TLS client that went away mid-handshake. Out of file
descriptors, these came by the thousand per second, each with a traceback (93,000 lines in
40 s in issue 12). `LoopErrorSummary` logs the first report of each kind of trouble at once,
without a traceback, then at most one line per window saying how many more came; every
other report goes to the loop's default handler unchanged.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Final

# The system is out of something (descriptors, buffers, memory): retrying will not help at
# once, and every retry would say the same.
RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# What asyncio and uvloop say when a TLS peer misbehaves: the peer's problem, not ours.
TLS_CLIENT_MESSAGES: Final = ("SSL handshake failed", "Fatal error on SSL", "SSL error")
SUMMARY_WINDOW_S: Final = 60.0


class Trouble(enum.Enum):
    """The kinds of loop reports that are summarised; the value opens each log line."""

    RESOURCES = "out of file descriptors or memory"
    TLS_CLIENTS = "TLS clients failing"


def classify(context: dict[str, Any]) -> Trouble | None:
    """The kind of trouble an exception-handler `context` reports, or None for anything else."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
        return Trouble.RESOURCES
    message = str(context.get("message", ""))
    if isinstance(exc, ssl.SSLError) or message.startswith(TLS_CLIENT_MESSAGES):
        return Trouble.TLS_CLIENTS
    return None


def describe(context: dict[str, Any]) -> str:
    """One line for a report: its message and its exception, never a traceback."""
    message = str(context.get("message") or "event loop error")
    exc = context.get("exception")
    return f"{message}: {exc}" if exc is not None else message


@dataclass(slots=True)
class _Window:
    quiet_until: float = float("-inf")  # reports before this only count
    more: int = 0
    latest: str = ""
    summary: asyncio.TimerHandle | None = None


class LoopErrorSummary:
    """An event-loop exception handler: resource exhaustion and TLS client failures are
    logged once, then summarised at most once per `window_s`; the rest goes to the
    loop's default handler. `install` makes it the loop's handler."""

    def __init__(self, logger: logging.Logger, *, window_s: float = SUMMARY_WINDOW_S) -> None:
        self._log = logger
        self._window_s = window_s
        self._windows: dict[Trouble, _Window] = {}

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        trouble = classify(context)
        if trouble is None:
            loop.default_exception_handler(context)
            return
        window = self._windows.setdefault(trouble, _Window())
        now = loop.time()
        if now >= window.quiet_until:
            self._log.warning("%s: %s", trouble.value, describe(context))
            window.quiet_until = now + self._window_s
            return
        window.more += 1
        window.latest = describe(context)
        if window.summary is None:
            window.summary = loop.call_at(window.quiet_until, self._summarise, loop, trouble)

    def _summarise(self, loop: asyncio.AbstractEventLoop, trouble: Trouble) -> None:
        window = self._windows[trouble]
        window.summary = None
        if window.more:
            self._log.warning(
                "%s: %d more in the last %gs (latest: %s)",
                trouble.value,
                window.more,
                self._window_s,
                window.latest,
            )
            window.more = 0
            # Still coming: the next ones wait for the next summary.
            window.quiet_until = loop.time() + self._window_s
