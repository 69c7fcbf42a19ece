"""The daemon's current view, frozen: what /metrics, the API and the dashboard report.

The core's world is immutable, so a Snapshot is one reference plus a few live
figures: readers never see a half-updated view and never take a lock, and
nothing is rebuilt per probe result (per-target views are built when read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.core import World
from monitor.outage import Incident
from monitor.settings import Canary, Target
from monitor.state import TargetState, TargetStatus
from monitor.storage.writer import WriterStats
from probes.results import ProbeKind, ProbeResult, Reason


@dataclass(frozen=True, slots=True)
class TargetView:
    target: Target
    status: TargetStatus
    state: TargetState  # as reported: UNKNOWN while the vantage is down or a failure is unverified

    @property
    def reason(self) -> Reason | None:
        return self.status.reason if self.state is TargetState.DOWN else None

    def result(self, kind: ProbeKind) -> ProbeResult | None:
        track = self.status.track(kind)
        return track.last if track else None


@dataclass(frozen=True, slots=True)
class CanaryView:
    canary: Canary
    status: TargetStatus

    def result(self, kind: ProbeKind) -> ProbeResult | None:
        track = self.status.track(kind)
        return track.last if track else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The core's current world plus what only the shell knows (lag, reload, start)."""

    world: World
    taken_at: float
    started_at: float  # when this daemon started
    vantage: str | None  # --vantage NAME, or None
    schedule_lag_s: float
    last_probe_at: float | None
    config_reload_ok: bool
    config_reload_at: float | None  # last successful (re)load
    history: WriterStats | None = None  # the history writer's counters, when there is one
    tasks: int | None = None  # asyncio tasks alive: flat in a healthy daemon (leak watch)

    @property
    def targets(self) -> tuple[TargetView, ...]:
        """Every target with its status and reported state, in config order (built on read)."""
        statuses, reported = self.world.statuses, self.world.reported
        return tuple(TargetView(t, statuses[t.name], reported[t.name]) for t in self.world.targets)

    @property
    def canaries(self) -> tuple[CanaryView, ...]:
        return tuple(CanaryView(c, self.world.statuses[c.name]) for c in self.world.canaries)

    @property
    def probe_counts(self) -> Mapping[tuple[ProbeKind, bool], int]:
        """(probe kind, ok) -> results counted since start; a Prometheus counter."""
        return self.world.probe_counts

    @property
    def vantage_up(self) -> bool:
        return self.world.vantage_up

    @property
    def open_incidents(self) -> tuple[Incident, ...]:
        return self.world.open_incidents
