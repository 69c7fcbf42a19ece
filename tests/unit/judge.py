"""Drive the pure core (`monitor.core.step`) the way the daemon does, for table-driven tests.

`judge()` builds a world from given statuses and lets one tick decide, returning
what the tick concluded (`Judged`); `CoreSim` feeds results event by event and
ticks on request, keeping the world between steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from monitor.core import (
    Change,
    CheckCanaries,
    Effect,
    RecordIncident,
    RecordTransition,
    Result,
    Tick,
    World,
    initial_world,
    step,
)
from monitor.outage import CountrySummary, Incident, TargetInfra
from monitor.settings import Canary, OutageSettings, Target
from monitor.state import TargetState, TargetStatus, Transition
from probes.results import ProbeResult

INTERVAL_S = 30.0


def catalogue(countries: Mapping[str, int]) -> tuple[Target, ...]:
    """{"AL": 2} -> targets al1, al2 in AL."""
    return tuple(
        Target(
            name=f"{cc.lower()}{i}",
            url=f"https://{cc.lower()}{i}.test/",
            country=cc,
            sector="portal",
        )
        for cc, count in countries.items()
        for i in range(1, count + 1)
    )


@dataclass(frozen=True)
class Judged:
    """What one tick concluded, in the words of the tests."""

    world: World
    effects: tuple[Effect, ...]

    @property
    def vantage_up(self) -> bool:
        return self.world.vantage_up

    @property
    def failing_canaries(self) -> tuple[str, ...]:
        return self.world.failing_canaries

    @property
    def states(self) -> Mapping[str, TargetState]:
        return self.world.reported

    @property
    def countries(self) -> tuple[CountrySummary, ...]:
        return self.world.countries

    @property
    def countries_in_outage(self) -> tuple[str, ...]:
        return self.world.countries_in_outage

    @property
    def region_outage(self) -> bool:
        return self.world.region_outage

    @property
    def incidents(self) -> tuple[Incident, ...]:
        return self.world.open_incidents

    def _changed(self, change: Change) -> tuple[Incident, ...]:
        found = [e.incident for e in self.effects if isinstance(e, RecordIncident)]
        kinds = [e.change for e in self.effects if isinstance(e, RecordIncident)]
        return tuple(
            sorted(
                (i for i, k in zip(found, kinds, strict=True) if k is change),
                key=lambda i: (i.started_at, i.id),
            )
        )

    @property
    def opened(self) -> tuple[Incident, ...]:
        return self._changed(Change.OPENED)

    @property
    def updated(self) -> tuple[Incident, ...]:
        return self._changed(Change.UPDATED)

    @property
    def closed(self) -> tuple[Incident, ...]:
        return self._changed(Change.CLOSED)

    @property
    def vantage_check_wanted(self) -> bool:
        return any(isinstance(e, CheckCanaries) for e in self.effects)

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return tuple(e.transition for e in self.effects if isinstance(e, RecordTransition))


def judge(
    *,
    targets: Sequence[Target],
    canaries: Sequence[Canary],
    statuses: Mapping[str, TargetStatus],
    infra: Mapping[str, TargetInfra],
    open_incidents: Iterable[Incident] = (),
    settings: OutageSettings,
    now: float,
) -> Judged:
    """One world from these statuses, judged by one tick."""
    world = initial_world(
        targets,
        canaries,
        settings,
        INTERVAL_S,
        statuses=statuses,
        infra=infra,
        open_incidents=open_incidents,
    )
    world, effects = step(world, Tick(), now)
    return Judged(world, effects)


class CoreSim:
    """A world fed event by event; `tick()` judges what changed since the last tick."""

    def __init__(
        self,
        targets: Sequence[Target],
        canaries: Sequence[Canary],
        settings: OutageSettings,
        *,
        infra: Mapping[str, TargetInfra] | None = None,
    ) -> None:
        self.world = initial_world(targets, canaries, settings, INTERVAL_S, infra=infra)
        self.pending: list[Effect] = []

    def result(self, name: str, result: ProbeResult, now: float) -> tuple[Effect, ...]:
        self.world, effects = step(self.world, Result(name, result), now)
        self.pending.extend(effects)
        return effects

    def tick(self, now: float, tick: Tick | None = None) -> Judged:
        self.world, effects = step(self.world, tick or Tick(), now)
        judged = Judged(self.world, (*self.pending, *effects))
        self.pending = []
        return judged
