"""What the dashboard reads through: the `Source` interface and the frames it returns.

Two implementations:
- dashboard.queries.SqliteSource: the daemon's history database, read-only (SQL);
- dashboard.prom.PrometheusSource: the HTTP API of a Prometheus server scraping one or
  more govwatch daemons (PromQL), for multi-vantage deployments.

Every method returns a pandas DataFrame with exactly the columns named below (whatever
the source, so a page never asks which one it has), or VantageFacts. Times in frames
are pandas Timestamps in UTC. Both raise SourceError when they cannot be read.

This module imports neither implementation: they import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pandas as pd  # type: ignore[import-untyped]

from dashboard.banner import VantageFacts


class SourceError(Exception):
    """The data source cannot be read (missing file, unreachable Prometheus, bad answer)."""


# --- frame shapes (every source returns exactly these columns) ----------------------------

STATUS_COLUMNS = ["target", "country", "sector", "url", "state", "reason", "since"]
TABLE_COLUMNS = [*STATUS_COLUMNS, "response_s", "tls_expiry", "tls_days_left", "dnssec_signed"]
COUNTRY_COLUMNS = [
    "country",
    "name",
    "up",
    "down",
    "maintenance",
    "unknown",
    "total",
    "availability",
]
INCIDENT_COLUMNS = [
    "incident_id",
    "scope",
    "country",
    "target",
    "started_at",
    "ended_at",
    "affected_count",
    "affected",
    "dominant_reason",
    "hint",
]
SPARKLINE_COLUMNS = ["target", "latency_ms"]
PHASE_COLUMNS = ["time", "phase", "seconds"]
UPTIME_COLUMNS = ["window", "uptime", "down_s", "known_s"]
# Per target and window: seconds up and known (up or down), and when its known history
# begins (epoch; NaN if none) - "watching since" when that is inside the window.
TARGET_UPTIME_COLUMNS = ["target", "window", "up_s", "known_s", "known_since"]
# Per target: its state in each of STRIP_BUCKETS equal slices of STRIP_SPAN, oldest first.
STRIP_COLUMNS = ["target", "states"]
STRIP_SPAN = timedelta(hours=24)
STRIP_BUCKETS = 24
FAILURE_COLUMNS = ["time", "probe", "reason", "error"]
DETAIL_COLUMNS = ["probe", "field", "value"]
DAILY_COLUMNS = ["day", "country", "availability"]
# Tamper signals (README, "Tamper signals"), newest first. `evidence` is a dict per kind
# (monitor.tamper); every string in it, the summary and the note came from the network or an
# operator and is shown as text only. Prometheus knows only which are raised: no times, no
# summary, empty evidence.
SIGNAL_COLUMNS = [
    "signal_id",
    "target",
    "country",
    "kind",
    "raised_at",
    "cleared_at",
    "cleared_by",
    "note",
    "summary",
    "evidence",
]

UP, DOWN, UNKNOWN = "up", "down", "unknown"
# A target inside a maintenance window (the daemon's [[maintenance]]): expected to fail,
# so it is neither up nor down; every availability figure counts only up and down time.
MAINTENANCE = "maintenance"
STATES = (UP, DOWN, MAINTENANCE, UNKNOWN)
UPTIME_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("24 h", timedelta(hours=24)),
    ("7 d", timedelta(days=7)),
    ("30 d", timedelta(days=30)),
)


class Source(Protocol):
    """One data source of the dashboard; the pages call only these (through dashboard.ui,
    which caches them).

    A target's state is the one reported state: what the daemon's API and metrics show,
    'unknown' while the monitor is blind or a failure waits for the canaries. What a
    source does not keep (Prometheus: the per-probe failure log, incident hints) comes
    back empty, with the same columns.
    """

    def caption(self) -> str:
        """Where the data comes from, for the page footer."""
        ...

    def target_status(self) -> pd.DataFrame:
        """Every monitored target's state (STATUS_COLUMNS); cheap enough for every refresh."""
        ...

    def target_table(self, now: datetime) -> pd.DataFrame:
        """target_status plus the newest facts per target (TABLE_COLUMNS): response time of
        the last HTTP probe (NaN if it failed), earliest certificate expiry, DNSSEC signed."""
        ...

    def vantage_status(self) -> VantageFacts:
        """Is the monitor online, and how fresh is its newest data?"""
        ...

    def open_incidents(self) -> pd.DataFrame:
        """Incidents still open (INCIDENT_COLUMNS)."""
        ...

    def incidents_since(self, since: datetime, limit: int = 2000) -> pd.DataFrame:
        """Incidents active at any moment from `since` on: still open or ended after it."""
        ...

    def latency_sparklines(self, points: int = 30) -> pd.DataFrame:
        """The last successful HTTP response times per target, oldest first, in ms."""
        ...

    def target_phases(self, target: str, since: datetime, now: datetime) -> pd.DataFrame:
        """Mean seconds per HTTP phase per time bucket (PHASE_COLUMNS; phase_bucket_s)."""
        ...

    def target_uptime(self, target: str, now: datetime) -> pd.DataFrame:
        """Share of known time the target was up over UPTIME_WINDOWS (UPTIME_COLUMNS);
        NaN uptime when nothing is known."""
        ...

    def uptime_table(self, now: datetime) -> pd.DataFrame:
        """Every target's up and known seconds over UPTIME_WINDOWS (TARGET_UPTIME_COLUMNS);
        empty where the source cannot tell."""
        ...

    def state_strips(self, now: datetime) -> pd.DataFrame:
        """Every target's state per hour over the last 24 h (STRIP_COLUMNS): down if it was
        down at all that hour, else maintenance, else up, else unknown; empty where the
        source cannot tell."""
        ...

    def target_failures(self, target: str, limit: int = 50) -> pd.DataFrame:
        """The newest failed probes of one target, with reason and error (FAILURE_COLUMNS)."""
        ...

    def target_details(self, target: str) -> pd.DataFrame:
        """What the newest probes of one target saw, as (probe, field, value) rows."""
        ...

    def daily_availability(self, since: datetime, now: datetime) -> pd.DataFrame:
        """Per UTC day from `since`'s to `now`'s and country: availability (DAILY_COLUMNS),
        NaN for a day with nothing known ("no data"), never 0."""
        ...

    def tamper_signals(
        self, target: str | None = None, cleared_since: datetime | None = None
    ) -> pd.DataFrame:
        """Raised tamper signals, of one target or all, newest first (SIGNAL_COLUMNS); with
        `cleared_since`, also those cleared since then. Empty where the history predates
        tamper signals."""
        ...


# --- helpers both sources use -------------------------------------------------------------


def empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})


def to_time(epoch: Any) -> pd.Series | pd.Timestamp:
    """Epoch seconds (scalar or Series) -> UTC Timestamp(s), to the microsecond (what
    datetime holds); None stays NaT."""
    if isinstance(epoch, pd.Series):
        seconds = pd.to_numeric(epoch, errors="coerce")
        return pd.to_datetime(seconds, unit="s", utc=True).dt.round("us")
    if epoch is None:
        return pd.NaT
    return pd.to_datetime(epoch, unit="s", utc=True).round("us")


def utc_day(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def phase_bucket_s(span: timedelta, max_points: int = 300) -> int:
    """A bucket width (s) that keeps a phase chart under `max_points` per phase."""
    seconds = max(60, int(span.total_seconds() / max_points))
    return seconds - seconds % 60 if seconds > 120 else seconds
