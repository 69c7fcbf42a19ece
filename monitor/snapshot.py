"""The daemon's current view, frozen: what /metrics, the API and the dashboard report.

The daemon builds a new Snapshot after every change and swaps one reference;
readers never see a half-updated view and never take a lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.config import Canary, Target
from monitor.outage import Assessment, Incident
from monitor.state import TargetState, TargetStatus
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
    taken_at: float
    started_at: float  # when this daemon started
    vantage: str | None  # --vantage NAME, or None
    targets: tuple[TargetView, ...]
    canaries: tuple[CanaryView, ...]
    assessment: Assessment
    # (probe kind, ok) -> results counted since start; a Prometheus counter.
    probe_counts: Mapping[tuple[ProbeKind, bool], int]
    schedule_lag_s: float
    last_probe_at: float | None
    config_reload_ok: bool
    config_reload_at: float | None  # last successful (re)load

    @property
    def vantage_up(self) -> bool:
        return self.assessment.vantage_up

    @property
    def open_incidents(self) -> tuple[Incident, ...]:
        return tuple(i for i in self.assessment.incidents if i.is_open)
