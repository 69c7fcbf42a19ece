"""The pure core: `step(world, event, now) -> (world, effects)`.

Everything govwatch concludes happens here, one event at a time, with no I/O
and no clock (`now` is an argument). Three events: a probe `Result`, a config
`Reload`, a clock `Tick` (about once a second, carrying the daemon's own
health readings). The daemon shell feeds events and applies the returned
`Effect`s: history records, re-probes, canary checks, log lines.

The work per result is O(1) in the number of targets. Per-country and region
counters change only when a target's reported state changes; incidents for
what changed ("dirty" targets and countries, and the region) are re-judged on
the next tick, so a burst of results costs one judgement per second. Only a
change of the vantage (the monitor going blind or coming back) and a reload
walk every target, and both are rare.

`World` is immutable and built from persistent maps (`immutables.Map`), so a
new world shares almost everything with the old one and readers (/metrics, the
API, a thread rendering a scrape) hold a consistent world without locks.

Rules (thresholds from `OutageSettings`):

- One target: `monitor.state` (a failure is suspect, a repeated one confirmed).
- One reported state per target: UNKNOWN while the vantage is down or impaired,
  and while a confirmed failure waits for the canaries' word (enough canaries
  seen healthy after the failure began); otherwise the confirmed state. This is
  what is logged, stored as transitions, exported and counted in availability.
- Vantage: impaired for `uplink` when `vantage_canary_ratio` of the canaries are
  confirmed DOWN; for `overload` when the event loop lags more than
  `overload_lag_s` or a probe was starved of CPU; for `resources` when file
  descriptors run out. Overload and resources hold for `impairment_hold_s`
  after the last sign. While impaired every target is UNKNOWN, no outage is
  declared, open incidents stay as they are, and one vantage incident is open.
- Country outage: at least `country_min_ratio` of its targets, and at least
  `country_min_targets` (or all, if fewer), reported DOWN. Region outage:
  `region_min_countries` countries in outage, or `region_min_ratio` of all
  targets DOWN. An open country or region incident closes only when its rule
  fails even if every UNKNOWN target were down: not knowing is not recovery.
- Maintenance: while a `[[maintenance]]` window covers a target its reported state
  is MAINTENANCE whatever its results (still recorded), even while the vantage is
  impaired. It counts in a country's total but never as down (nor as possibly down
  for keeping an incident open), no target incident opens for it and an open one
  closes: the operators said it would be down. Window boundaries are found on the
  tick in O(windows) (`next_boundary`), and only the targets of windows that started
  or ended are re-evaluated; when a window ends its targets are judged again as on
  the vantage's return. One log line per window start and end, none per target.
- Tamper signals (monitor.tamper), a separate axis: each target result is compared with
  the target's baseline of each kind its probe judges (O(1): one baseline per kind). A
  deviation is confirmed by a quick re-probe, as a failure is, then raised as a `Signal`
  that stays until an `Acknowledge` adopts what the target serves now as its baseline.
  Not judged while the vantage is impaired (a captive portal or a hijacked resolver at
  the monitor's end would look like every site changing) nor under maintenance; and,
  as a failure waits for the canaries, a confirmed deviation is raised only once enough
  canaries were seen healthy after it was first seen (a captive portal that appeared
  between the canaries' last check and the re-probe makes them fail: the deviation is
  dropped). Signals never open an incident and never change a reported state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from immutables import Map

from monitor.maintenance import active_window, is_active, next_boundary
from monitor.outage import (
    CountrySummary,
    Incident,
    Scope,
    TargetInfra,
    country_rule,
    dominant_reason,
    incident_id,
    learn_infra,
    region_rule,
    shared_infrastructure,
    uplink_ok,
)
from monitor.settings import Canary, MaintenanceWindow, OutageSettings, Target
from monitor.state import (
    Reprobe,
    TargetState,
    TargetStatus,
    Transition,
    initial_status,
    observe,
    same_for_restore,
    with_maintenance,
    with_vantage,
)
from monitor.tamper import (
    DEFAULT_TAMPER,
    KINDS_BY_PROBE,
    Baseline,
    BaselineChange,
    Signal,
    SignalChange,
    TamperKind,
    TamperSettings,
    judge,
)
from probes.results import LocalFault, ProbeKind, ProbeResult

# Above this share of the descriptor limit in use, the monitor is short of resources.
FD_PRESSURE_RATIO: Final = 0.9


class Impairment(StrEnum):
    """Why the vantage cannot be trusted (govwatch_vantage_impaired{reason})."""

    UPLINK = "uplink"
    OVERLOAD = "overload"
    RESOURCES = "resources"


_FAULT_IMPAIRMENT: Final = {
    LocalFault.OVERLOAD: Impairment.OVERLOAD,
    LocalFault.RESOURCES: Impairment.RESOURCES,
}


# --- events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """A probe of target (or canary) `name` finished."""

    name: str
    result: ProbeResult


@dataclass(frozen=True, slots=True)
class Reload:
    """A new configuration: `targets` are the ones this instance watches (its shard)."""

    targets: tuple[Target, ...]
    canaries: tuple[Canary, ...]
    settings: OutageSettings
    interval_s: float
    maintenance: tuple[MaintenanceWindow, ...] = ()


@dataclass(frozen=True, slots=True)
class Tick:
    """The clock, with the shell's readings of its own health."""

    loop_lag_s: float = 0.0  # the event loop's worst lag since the last tick
    fd_ratio: float = 0.0  # open file descriptors / soft limit


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """An operator accepted target `target`'s change of `kind` (tamper_acks row `ack_id`)."""

    target: str
    kind: str  # a TamperKind value; anything else is answered, not trusted
    ack_id: int = 0
    note: str | None = None
    by: str | None = None


Event = Result | Reload | Tick | Acknowledge


# --- effects -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordProbe:
    name: str
    result: ProbeResult


@dataclass(frozen=True, slots=True)
class RecordTransition:
    """A change of a reported state (targets) or confirmed state (canaries).

    `quiet` when it is one of many caused by the vantage changing (the shell logs
    the one vantage line instead), or routine: a target becoming known to be up (after
    the start or a blind spell, every target, none of it news) or going unknown while
    its failure waits for the canaries. Quiet transitions are stored, not logged.
    """

    transition: Transition
    quiet: bool = False


class Change(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class RecordIncident:
    incident: Incident
    change: Change


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """Target (or canary) `name` has a new status row (read it from the new world): its
    reported state changed, or something a restart restores (`state.same_for_restore`)."""

    name: str


@dataclass(frozen=True, slots=True)
class ProbeSoon:
    """Run probe `kind` of `name` at `at` (unix seconds) instead of its next interval."""

    name: str
    kind: ProbeKind
    at: float


@dataclass(frozen=True, slots=True)
class CheckCanaries:
    """Probe every canary now: a confirmed failure waits for their word."""


@dataclass(frozen=True, slots=True)
class AckDone:
    """Acknowledgement `ack_id` was applied: 'cleared', 'relearning' or why not."""

    ack_id: int
    outcome: str


@dataclass(frozen=True, slots=True)
class Log:
    level: str  # "info" | "warning" | "error"
    message: str


Effect = (
    RecordProbe
    | RecordTransition
    | RecordIncident
    | StatusChanged
    | ProbeSoon
    | CheckCanaries
    | Log
    | SignalChange
    | BaselineChange
    | AckDone
)


# --- the world ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    """Reported states of one country's targets (or of the region's)."""

    up: int = 0
    down: int = 0
    unknown: int = 0
    maintenance: int = 0

    @property
    def total(self) -> int:
        return self.up + self.down + self.unknown + self.maintenance

    def moved(self, old: TargetState | None, new: TargetState | None) -> Counts:
        up, down, unknown, maintenance = self.up, self.down, self.unknown, self.maintenance
        for state, delta in ((old, -1), (new, 1)):
            if state is TargetState.UP:
                up += delta
            elif state is TargetState.DOWN:
                down += delta
            elif state is TargetState.UNKNOWN:
                unknown += delta
            elif state is TargetState.MAINTENANCE:
                maintenance += delta
        return Counts(up, down, unknown, maintenance)


_NO_COUNTS: Final = Counts()
IncidentKey = tuple[Scope, str]
TamperKey = tuple[str, TamperKind]  # (target, kind)
_VANTAGE_KEY: Final[IncidentKey] = (Scope.VANTAGE, Scope.VANTAGE.value)
_REGION_KEY: Final[IncidentKey] = (Scope.REGION, Scope.REGION.value)


@dataclass(frozen=True, slots=True)
class World:
    """Everything the core knows. Immutable; `step` returns a new one."""

    targets: tuple[Target, ...]  # in config order (this instance's shard)
    canaries: tuple[Canary, ...]
    settings: OutageSettings
    interval_s: float
    by_name: Map[str, Target]
    members: Map[str, tuple[str, ...]]  # country -> its target names
    statuses: Map[str, TargetStatus]  # targets and canaries: the confirmed state
    reported: Map[str, TargetState]  # targets: the one reported state
    infra: Map[str, TargetInfra]
    counts: Map[str, Counts]  # country -> reported states
    region: Counts
    down: Map[str, bool]  # targets reported DOWN (a set)
    # Confirmed DOWN but reported UNKNOWN until the canaries vouch (a set).
    awaiting: Map[str, bool]
    # Per healthy canary: (its last failure, its oldest fresh observation); see _vouched.
    vouchers: tuple[tuple[float | None, float], ...]
    failing_canaries: tuple[str, ...]
    impaired_seen: Map[Impairment, float]  # overload/resources: last sign seen
    impaired: frozenset[Impairment]
    incidents: Map[IncidentKey, Incident]  # open ones
    declared: frozenset[str]  # countries whose outage incident is open
    region_declared: bool
    # To judge at the next tick while the vantage is up.
    dirty_targets: Map[str, bool]
    dirty_countries: Map[str, bool]
    region_dirty: bool
    canary_check_at: float
    probe_counts: Map[tuple[ProbeKind, bool], int]
    blind_since: float | None = None
    windows: tuple[MaintenanceWindow, ...] = ()
    window_members: tuple[tuple[str, ...], ...] = ()  # per window: the targets it covers
    active_windows: frozenset[int] = frozenset()  # indexes into windows
    # Targets under maintenance -> the window that covers them (the first active one).
    maintenance: Map[str, MaintenanceWindow] = field(default_factory=Map)
    maintenance_check_at: float = -math.inf  # the next window boundary
    tamper: TamperSettings = DEFAULT_TAMPER
    baselines: Map[TamperKey, Baseline] = field(default_factory=Map)
    signals: Map[TamperKey, Signal] = field(default_factory=Map)  # raised ones
    # A first deviation waiting for its re-probe: when it was seen.
    suspects: Map[TamperKey, float] = field(default_factory=Map)
    # Confirmed by the re-probe, waiting for the canaries' word: the signal, when confirmed.
    held: Map[TamperKey, tuple[Signal, float]] = field(default_factory=Map)

    @property
    def vantage_up(self) -> bool:
        return not self.impaired

    @property
    def states(self) -> Mapping[str, TargetState]:
        return self.reported

    @property
    def countries_in_outage(self) -> tuple[str, ...]:
        """Countries in outage as reported (sorted): none while the vantage is impaired."""
        return tuple(sorted(self.declared)) if self.vantage_up else ()

    @property
    def region_outage(self) -> bool:
        return self.region_declared and self.vantage_up

    @property
    def countries(self) -> tuple[CountrySummary, ...]:
        """Per-country reported counts, by country code."""
        in_outage = self.countries_in_outage
        return tuple(
            CountrySummary(
                country=country,
                up=c.up,
                down=c.down,
                unknown=c.unknown,
                maintenance=c.maintenance,
                in_outage=country in in_outage,
            )
            for country, c in sorted(self.counts.items())
        )

    @property
    def open_incidents(self) -> tuple[Incident, ...]:
        """Open incidents by start."""
        return tuple(sorted(self.incidents.values(), key=lambda i: (i.started_at, i.id)))


def initial_world(
    targets: Sequence[Target],
    canaries: Sequence[Canary],
    settings: OutageSettings,
    interval_s: float,
    *,
    statuses: Mapping[str, TargetStatus] | None = None,
    infra: Mapping[str, TargetInfra] | None = None,
    open_incidents: Iterable[Incident] = (),
    maintenance: Sequence[MaintenanceWindow] = (),
    baselines: Mapping[TamperKey, Baseline] | None = None,
    signals: Iterable[Signal] = (),
    tamper: TamperSettings = DEFAULT_TAMPER,
    urls: Mapping[str, str] | None = None,
) -> World:
    """A world before any event, or restored from the history (statuses, incidents,
    tamper baselines and raised signals; those of targets no longer configured clear, and
    so do those of targets whose URL differs from the one in `urls`, the stored URLs:
    another page is not a defacement of the old one).

    Maintenance windows take effect at the first tick (this world is built at time 0)."""
    configured = {t.name: t.url for t in targets}
    moved = {n for n, url in (urls or {}).items() if configured.get(n, url) != url}
    incidents: dict[IncidentKey, Incident] = {}
    for incident in sorted(open_incidents, key=lambda i: (i.started_at, i.id)):
        if incident.is_open:
            incidents.setdefault((incident.scope, incident.key), incident)
    empty = World(
        targets=(),
        canaries=(),
        settings=settings,
        interval_s=interval_s,
        by_name=Map(),
        members=Map(),
        statuses=Map(dict(statuses or {})),
        reported=Map(),
        infra=Map(dict(infra or {})),
        counts=Map(),
        region=_NO_COUNTS,
        down=Map(),
        awaiting=Map(),
        vouchers=(),
        failing_canaries=(),
        impaired_seen=Map(),
        impaired=frozenset(),
        incidents=Map(incidents),
        declared=frozenset(),
        region_declared=False,
        dirty_targets=Map(),
        dirty_countries=Map(),
        region_dirty=False,
        canary_check_at=-math.inf,
        probe_counts=Map(),
        tamper=tamper,
        baselines=Map({k: b for k, b in (baselines or {}).items() if k[0] not in moved}),
        signals=Map({(s.target, s.kind): s for s in signals if s.target not in moved}),
    )
    # Everything is dirty: the first tick judges restored incidents against restored statuses.
    reload = Reload(tuple(targets), tuple(canaries), settings, interval_s, tuple(maintenance))
    world, _ = _reload(empty, reload, 0.0)
    return world


def step(world: World, event: Event, now: float) -> tuple[World, tuple[Effect, ...]]:
    """Fold one event into the world; returns the new world and what the shell must do."""
    effects: list[Effect] = []
    if isinstance(event, Result):
        world = _on_result(world, event, now, effects)
    elif isinstance(event, Tick):
        world = _on_tick(world, event, now, effects)
    elif isinstance(event, Acknowledge):
        world = _on_acknowledge(world, event, now, effects)
    else:
        world, reload_effects = _reload(world, event, now)
        effects.extend(reload_effects)
    return world, tuple(effects)


# --- results ---------------------------------------------------------------------------


def _on_result(world: World, event: Result, now: float, effects: list[Effect]) -> World:
    name, result = event.name, event.result
    status = world.statuses.get(name)
    if status is None:
        return world  # removed by a reload while the probe ran
    if result.local_fault is not None:
        # The monitor's own trouble: the vantage is impaired before the result is folded,
        # so the target is blind and this failure can never confirm anything.
        seen = world.impaired_seen.set(_FAULT_IMPAIRMENT[result.local_fault], now)
        world = _set_impairment(replace(world, impaired_seen=seen), now, effects)
    status = world.statuses[name]
    folded = observe(status, result, now, world.settings)
    key = (result.kind, result.ok)
    world = replace(  # one copy of the world per result: this is the hot path
        world,
        probe_counts=world.probe_counts.set(key, world.probe_counts.get(key, 0) + 1),
        infra=world.infra.set(name, learn_infra(world.infra.get(name, TargetInfra()), result)),
        statuses=world.statuses.set(name, folded.status),
    )
    effects.append(RecordProbe(name, result))
    if not same_for_restore(status, folded.status):
        effects.append(StatusChanged(name))
    effects.extend(_probe_soon(folded.reprobes))
    if name in world.reported:
        world = _judge_tamper(world, name, result, now, effects)
        if not result.ok and result.kind is ProbeKind.TLS:
            # A failing slow probe (TLS) must not hold a recovered target down for its
            # whole long interval: until it passes, it runs at the normal interval.
            effects.append(ProbeSoon(name, result.kind, now + world.interval_s))
        return _report(world, name, now, effects)
    # A canary: the uplink and the canaries' word on waiting failures may change.
    if folded.transition is not None:
        effects.append(RecordTransition(folded.transition))
    return _canaries_changed(world, now, effects)


def _probe_soon(reprobes: Iterable[Reprobe]) -> list[Effect]:
    return [ProbeSoon(r.target, r.kind, r.at) for r in reprobes]


def _reported_state(world: World, status: TargetStatus) -> TargetState:
    if status.maintenance:
        return TargetState.MAINTENANCE
    if world.impaired or status.blind:
        return TargetState.UNKNOWN
    if status.state is TargetState.DOWN and not _vouched(world, status):
        return TargetState.UNKNOWN  # confirmed, but the canaries have not vouched yet
    return status.state


def _vouched(world: World, status: TargetStatus) -> bool:
    """Enough canaries were healthy while the target failed: seen after its failures began,
    and not failing since before its latest failure (enough: if every other canary
    failed, the vantage would still be up). A canary that failed meanwhile, or was not
    probed since, proves nothing about the link at that time."""
    failing = [t for t in status.probes.values() if t.failing]
    if status.since is None or not failing:
        return not world.canaries
    return _canaries_vouch(world, status.since, max(t.observed_at for t in failing))


def _canaries_vouch(world: World, began: float, latest: float) -> bool:
    """Enough canaries were seen healthy after `began` and have not failed since before
    `latest`: what the monitor saw in between was the network's, not the vantage's."""
    canaries = len(world.canaries)
    if not canaries:
        return True
    vouching = sum(
        1
        for failed_at, observed_at in world.vouchers
        if observed_at >= began and (failed_at is None or failed_at < latest)
    )
    return uplink_ok(canaries - vouching, canaries, world.settings)


def _report(
    world: World, name: str, now: float, effects: list[Effect], *, quiet: bool = False
) -> World:
    """Re-derive target `name`'s reported state; on a change, move the counters."""
    status = world.statuses[name]
    new = _reported_state(world, status)
    waiting = not world.impaired and status.state is TargetState.DOWN and new is not status.state
    if waiting and name not in world.awaiting:
        world = replace(world, awaiting=world.awaiting.set(name, True))
    elif not waiting and name in world.awaiting:
        world = replace(world, awaiting=world.awaiting.delete(name))
    old = world.reported[name]
    if new is old:
        return world
    country = world.by_name[name].country
    reason = status.reason if new is TargetState.DOWN else None
    # Not news: a target learned to be up (at the start, after blindness: all of them), or
    # one whose failure waits a few seconds for the canaries' word before it is "down".
    routine = new is TargetState.UNKNOWN or (old is TargetState.UNKNOWN and new is TargetState.UP)
    # Entering or leaving maintenance is logged once per window (_windows_changed).
    routine = routine or TargetState.MAINTENANCE in (old, new)
    transition = Transition(name, old, new, now, reason)
    effects.append(RecordTransition(transition, quiet=quiet or routine))
    effects.append(StatusChanged(name))  # the stored row holds the reported state
    down = world.down.set(name, True) if new is TargetState.DOWN else world.down
    if old is TargetState.DOWN:
        down = down.delete(name)
    return replace(
        world,
        reported=world.reported.set(name, new),
        counts=world.counts.set(country, world.counts.get(country, _NO_COUNTS).moved(old, new)),
        region=world.region.moved(old, new),
        down=down,
        dirty_targets=world.dirty_targets.set(name, True),
        dirty_countries=world.dirty_countries.set(country, True),
        region_dirty=True,
    )


def _canaries_changed(world: World, now: float, effects: list[Effect]) -> World:
    canaries = [world.statuses[c.name] for c in world.canaries]
    failing = tuple(sorted(s.name for s in canaries if s.state is TargetState.DOWN))
    # A canary vouches with the time ALL its probes were last seen passing: a fresh DNS
    # answer must not vouch for an HTTP result from before a cut.
    vouchers = tuple(
        (
            max((t.failed_at for t in s.probes.values() if t.failed_at is not None), default=None),
            min(t.observed_at for t in s.probes.values()),
        )
        for s in canaries
        if s.healthy
    )
    world = replace(world, failing_canaries=failing, vouchers=vouchers)
    world = _set_impairment(world, now, effects)
    for name in list(world.awaiting.keys()):
        world = _report(world, name, now, effects)
    if world.held:
        world = _held_judged(world, now, effects)
    return world


# --- the vantage -----------------------------------------------------------------------


def _set_impairment(world: World, now: float, effects: list[Effect]) -> World:
    """Recompute why the vantage is impaired; going blind or coming back walks every target."""
    impaired = {
        reason
        for reason, seen in world.impaired_seen.items()
        if now - seen < world.settings.impairment_hold_s
    }
    if not uplink_ok(len(world.failing_canaries), len(world.canaries), world.settings):
        impaired.add(Impairment.UPLINK)
    new = frozenset(impaired)
    if new == world.impaired:
        return world
    was_up = world.vantage_up
    world = replace(world, impaired=new)
    if was_up == world.vantage_up:
        effects.append(Log("warning", f"monitor impaired ({_why(world)})"))
        return world
    changed = 0
    for target in world.targets:
        moved = with_vantage(world.statuses[target.name], world.vantage_up, now, world.settings)
        if moved.status is not world.statuses[target.name]:
            world = replace(world, statuses=world.statuses.set(target.name, moved.status))
            effects.append(StatusChanged(target.name))
        effects.extend(_probe_soon(moved.reprobes))
        before = world.reported[target.name]
        world = _report(world, target.name, now, effects, quiet=True)
        changed += world.reported[target.name] is not before
    if world.vantage_up:
        blind_for = now - world.blind_since if world.blind_since is not None else 0.0
        effects.append(
            Log(
                "warning",
                f"monitor back online after {blind_for:.0f}s: "
                f"{len(world.targets)} targets are being judged again",
            )
        )
        return replace(world, blind_since=None, region_dirty=True)
    effects.append(
        Log(
            "error",
            f"monitor impaired ({_why(world)}): {changed} targets now unknown; "
            "no outage will be declared until it recovers",
        )
    )
    return replace(world, blind_since=now)


def _why(world: World) -> str:
    parts = []
    for reason in Impairment:
        if reason in world.impaired:
            if reason is Impairment.UPLINK:
                parts.append(f"uplink: canaries {', '.join(world.failing_canaries)} failing")
            else:
                parts.append(reason.value)
    return "; ".join(parts)


# --- the tick: incidents for what changed ------------------------------------------------


def _on_tick(world: World, tick: Tick, now: float, effects: list[Effect]) -> World:
    if now >= world.maintenance_check_at:
        world = _windows_changed(world, now, effects)
    seen = world.impaired_seen
    if tick.loop_lag_s > world.settings.overload_lag_s:
        seen = seen.set(Impairment.OVERLOAD, now)
    if tick.fd_ratio >= FD_PRESSURE_RATIO:
        seen = seen.set(Impairment.RESOURCES, now)
    world = _set_impairment(replace(world, impaired_seen=seen), now, effects)
    if not world.vantage_up:
        # Blind: nothing is declared, nothing is re-evaluated, nothing is closed.
        return _record(world, _VANTAGE_KEY, frozenset(world.failing_canaries), now, now, effects)
    if _VANTAGE_KEY in world.incidents:
        world = _close(world, _VANTAGE_KEY, now, effects)
    for name in world.dirty_targets:
        world = _judge_target(world, name, now, effects)
    for country in world.dirty_countries:
        world = _judge_country(world, country, now, effects)
    if world.region_dirty:
        world = _judge_region(world, now, effects)
    waiting = world.awaiting or world.held
    if waiting and now - world.canary_check_at >= world.settings.reprobe_delay_s:
        effects.append(CheckCanaries())
        world = replace(world, canary_check_at=now)
    return replace(world, dirty_targets=Map(), dirty_countries=Map(), region_dirty=False)


def _record(
    world: World,
    key: IncidentKey,
    affected: frozenset[str],
    started_at: float,
    now: float,
    effects: list[Effect],
    *,
    country: str | None = None,
    target: str | None = None,
) -> World:
    """Open an incident for what holds now, or grow the one already open."""
    scope = key[0]
    current = world.incidents.get(key)
    reason = dominant_reason(world.statuses[n].reason for n in sorted(affected))
    if current is None:
        ordered = tuple(sorted(affected))
        incident = Incident(
            id=incident_id(scope, key[1], started_at),
            scope=scope,
            country=country,
            target=target,
            started_at=started_at,
            ended_at=None,
            affected=ordered,
            dominant_reason=reason,
            hints=shared_infrastructure(ordered, world.infra),
        )
        effects.append(RecordIncident(incident, Change.OPENED))
        return replace(world, incidents=world.incidents.set(key, incident))
    merged = tuple(sorted(set(current.affected) | affected))
    grown = replace(
        current,
        affected=merged,
        dominant_reason=reason or current.dominant_reason,
        hints=shared_infrastructure(merged, world.infra)
        if merged != current.affected
        else current.hints,
    )
    if grown == current:
        return world
    effects.append(RecordIncident(grown, Change.UPDATED))
    return replace(world, incidents=world.incidents.set(key, grown))


def _close(world: World, key: IncidentKey, now: float, effects: list[Effect]) -> World:
    effects.append(RecordIncident(replace(world.incidents[key], ended_at=now), Change.CLOSED))
    return replace(world, incidents=world.incidents.delete(key))


def _judge_target(world: World, name: str, now: float, effects: list[Effect]) -> World:
    key = (Scope.TARGET, name)
    state = world.reported.get(name)
    if state is None:  # no longer configured
        return _close(world, key, now, effects) if key in world.incidents else world
    since = world.statuses[name].since
    if state is TargetState.DOWN and since is not None:
        country = world.by_name[name].country
        return _record(
            world, key, frozenset({name}), since, now, effects, country=country, target=name
        )
    if key in world.incidents and state is not TargetState.UNKNOWN:
        return _close(world, key, now, effects)
    return world


def _judge_country(world: World, country: str, now: float, effects: list[Effect]) -> World:
    key = (Scope.COUNTRY, country)
    members = world.members.get(country)
    if members is None:  # no longer configured
        if key in world.incidents:
            world = _close(world, key, now, effects)
        return replace(world, declared=world.declared - {country})
    counts = world.counts.get(country, _NO_COUNTS)
    settings = world.settings
    if country_rule(counts.down, counts.total, settings):
        failing = frozenset(n for n in members if world.reported[n] is TargetState.DOWN)
        world = _record(world, key, failing, now, now, effects, country=country)
    elif key in world.incidents and not country_rule(
        counts.down + counts.unknown, counts.total, settings
    ):
        world = _close(world, key, now, effects)
    if key in world.incidents:
        return replace(world, declared=world.declared | {country})
    return replace(world, declared=world.declared - {country})


def _judge_region(world: World, now: float, effects: list[Effect]) -> World:
    """Opened on proven country outages only, kept while not disproven."""
    region, settings = world.region, world.settings
    proven = sum(
        country_rule(world.counts[c].down, world.counts[c].total, settings)
        for c in world.declared
        if c in world.counts
    )
    if region_rule(proven, region.down, region.total, settings):
        world = _record(world, _REGION_KEY, frozenset(world.down.keys()), now, now, effects)
    elif _REGION_KEY in world.incidents and not region_rule(
        len(world.declared), region.down + region.unknown, region.total, settings
    ):
        world = _close(world, _REGION_KEY, now, effects)
    return replace(world, region_declared=_REGION_KEY in world.incidents)


# --- maintenance windows -----------------------------------------------------------------


def _windows_changed(world: World, now: float, effects: list[Effect]) -> World:
    """At a window boundary: re-evaluate the targets of the windows that started or ended."""
    active = frozenset(i for i, w in enumerate(world.windows) if is_active(w, now))
    started, ended = active - world.active_windows, world.active_windows - active
    world = replace(
        world, active_windows=active, maintenance_check_at=next_boundary(world.windows, now)
    )
    names = dict.fromkeys(n for i in sorted(started | ended) for n in world.window_members[i])
    for name in names:
        world = _cover(world, name, now, effects)
    for index in sorted(ended):
        effects.append(_window_log(world.windows[index], len(world.window_members[index]), False))
    for index in sorted(started):
        effects.append(_window_log(world.windows[index], len(world.window_members[index]), True))
    return world


def _cover(world: World, name: str, now: float, effects: list[Effect]) -> World:
    """Put target `name` under maintenance or take it out, as the active windows say."""
    active = (world.windows[i] for i in sorted(world.active_windows))
    window = active_window(active, world.by_name[name], now)
    status = world.statuses[name]
    moved = with_maintenance(status, window is not None, now, world.settings)
    if moved.status is not status:
        world = replace(world, statuses=world.statuses.set(name, moved.status))
        effects.append(StatusChanged(name))
    effects.extend(_probe_soon(moved.reprobes))
    if window is not None:
        world = replace(world, maintenance=world.maintenance.set(name, window))
    elif name in world.maintenance:
        world = replace(world, maintenance=world.maintenance.delete(name))
    return _report(world, name, now, effects, quiet=True)


def _window_log(window: MaintenanceWindow, targets: int, started: bool) -> Log:
    if started:
        return Log(
            "info",
            f"maintenance started: {window.note!r} ({targets} targets; reported "
            "'maintenance', no incidents or alerts for them, open target incidents close)",
        )
    return Log(
        "info",
        f"maintenance ended: {window.note!r} ({targets} targets are being judged again)",
    )


def _window_members(
    windows: Sequence[MaintenanceWindow], targets: Sequence[Target]
) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(t.name for t in targets if w.covers(t)) for w in windows)


# --- tamper signals ------------------------------------------------------------------------


def _judge_tamper(
    world: World, name: str, result: ProbeResult, now: float, effects: list[Effect]
) -> World:
    """Compare a target's result with its baselines; confirm, raise, or move them along."""
    if world.impaired or world.statuses[name].maintenance or result.local_fault is not None:
        return world
    similarity = world.by_name[name].defacement_similarity
    # Local maps, one copy of the world at the end (and none for the same page again).
    baselines, signals, suspects = world.baselines, world.signals, world.suspects
    held = world.held
    for kind in KINDS_BY_PROBE[result.kind]:
        key = (name, kind)
        before = baselines.get(key)
        verdict = judge(kind, before, result, now, similarity=similarity, settings=world.tamper)
        if verdict is None:
            continue
        raised = signals.get(key)
        if raised is not None:
            # The baseline holds still while a signal is raised; an acknowledgement takes
            # the latest deviating observation.
            if verdict.deviation is not None:
                signals = signals.set(key, replace(raised, candidate=verdict.deviation.candidate))
            continue
        waiting = held.get(key)
        if waiting is not None:
            if verdict.deviation is not None:
                signal, confirmed_at = waiting
                held = held.set(
                    key, (replace(signal, candidate=verdict.deviation.candidate), confirmed_at)
                )
                continue
            held = held.delete(key)  # back to normal before the canaries spoke
        if verdict.baseline is not None and verdict.baseline is not before:
            baselines = baselines.set(key, verdict.baseline)
            if verdict.save:
                effects.append(BaselineChange(name, kind, verdict.baseline))
        deviation = verdict.deviation
        first_seen = suspects.get(key)
        if deviation is None:
            if first_seen is not None:
                suspects = suspects.delete(key)
            continue
        if first_seen is None:
            # Confirm it as a failure is confirmed: one quick re-probe must see it too.
            suspects = suspects.set(key, now)
            effects.append(ProbeSoon(name, result.kind, now + world.settings.reprobe_delay_s))
            continue
        signal = Signal(
            name, kind, first_seen, deviation.summary, deviation.evidence, deviation.candidate
        )
        suspects = suspects.delete(key)
        if _canaries_vouch(world, first_seen, now):
            signals = signals.set(key, signal)
            effects.extend(_raised(signal, world.by_name[name].country))
        else:
            held = held.set(key, (signal, now))  # CheckCanaries at the next tick
    unchanged = baselines is world.baselines and signals is world.signals
    if unchanged and suspects is world.suspects and held is world.held:
        return world
    return replace(world, baselines=baselines, signals=signals, suspects=suspects, held=held)


def _raised(signal: Signal, country: str) -> list[Effect]:
    summary = f"tamper signal {signal.kind.value} on {signal.target}: {signal.summary}"
    return [SignalChange(signal, country), Log("warning", summary)]


def _held_judged(world: World, now: float, effects: list[Effect]) -> World:
    """The canaries spoke: raise the held deviations they vouch for; drop them all if the
    vantage is impaired (what the probes saw was the monitor's own network)."""
    if world.impaired:
        effects.append(
            Log(
                "info",
                f"{len(world.held)} tamper deviation(s) not raised: the monitor is impaired "
                f"({_why(world)})",
            )
        )
        return replace(world, held=Map())
    signals, held = world.signals, world.held
    for key, (signal, confirmed_at) in world.held.items():
        if _canaries_vouch(world, signal.raised_at, confirmed_at):
            signals, held = signals.set(key, signal), held.delete(key)
            effects.extend(_raised(signal, world.by_name[signal.target].country))
    return replace(world, signals=signals, held=held)


def _on_acknowledge(world: World, event: Acknowledge, now: float, effects: list[Effect]) -> World:
    """Take what the target serves now as its baseline: the raised signal's latest
    observation, or (none raised) whatever the next results show, learned afresh."""
    target = world.by_name.get(event.target)
    kinds = {k.value: k for k in TamperKind}
    kind = kinds.get(event.kind)
    if target is None or kind is None:
        what = "unknown target" if target is None else "unknown kind"
        effects.append(AckDone(event.ack_id, what))
        effects.append(Log("warning", f"acknowledgement of {event.kind} on {event.target}: {what}"))
        return world
    key = (target.name, kind)
    signal = world.signals.get(key)
    who = f" by {event.by}" if event.by else ""
    suspects = world.suspects.delete(key) if key in world.suspects else world.suspects
    world = replace(world, held=world.held.delete(key)) if key in world.held else world
    if signal is None:
        baselines = world.baselines.delete(key) if key in world.baselines else world.baselines
        effects.append(BaselineChange(target.name, kind, None))
        effects.append(AckDone(event.ack_id, "relearning"))
        effects.append(
            Log("info", f"{kind.value} baseline of {target.name} is learned afresh{who}")
        )
        return replace(world, baselines=baselines, suspects=suspects)
    effects.append(
        SignalChange(signal, target.country, cleared_by="ack", cleared_at=now, note=event.note)
    )
    effects.append(BaselineChange(target.name, kind, signal.candidate))
    effects.append(AckDone(event.ack_id, "cleared"))
    effects.append(
        Log(
            "info",
            f"tamper signal {kind.value} on {target.name} acknowledged{who}: "
            "what it serves now is its baseline",
        )
    )
    return replace(
        world,
        signals=world.signals.delete(key),
        baselines=world.baselines.set(key, signal.candidate),
        suspects=suspects,
    )


def _tamper_reload(world: World, fresh: World, now: float, effects: list[Effect]) -> World:
    """Targets gone, or whose URL changed, lose their baselines; their signals clear."""
    wanted = {t.name: t.url for t in fresh.targets}

    def stale(name: str) -> bool:
        old = world.by_name.get(name)
        return name not in wanted or (old is not None and old.url != wanted[name])

    baselines = fresh.baselines
    for key in [k for k in baselines if stale(k[0])]:
        baselines = baselines.delete(key)
    signals, suspects = fresh.signals, fresh.suspects
    for key, signal in [(k, s) for k, s in signals.items() if stale(k[0])]:
        target = world.by_name.get(key[0])
        country = target.country if target is not None else None
        effects.append(SignalChange(signal, country, cleared_by="removed", cleared_at=now))
        signals = signals.delete(key)
    for key in [k for k in suspects if stale(k[0])]:
        suspects = suspects.delete(key)
    held = fresh.held
    for key in [k for k in held if stale(k[0])]:
        held = held.delete(key)
    return replace(fresh, baselines=baselines, signals=signals, suspects=suspects, held=held)


# --- reload -----------------------------------------------------------------------------


def _entries(targets: Iterable[Target], canaries: Iterable[Canary]) -> dict[str, Target | Canary]:
    entries: dict[str, Target | Canary] = {t.name: t for t in targets}
    entries.update((c.name, c) for c in canaries)
    return entries


def _reload(world: World, event: Reload, now: float) -> tuple[World, list[Effect]]:
    """Take a new config: unchanged targets keep their state, changed ones start over."""
    effects: list[Effect] = []
    old = _entries(world.targets, world.canaries)
    wanted = _entries(event.targets, event.canaries)
    statuses: dict[str, TargetStatus] = {}
    infra = {}
    for name, entry in wanted.items():
        kept = world.statuses.get(name)
        unchanged = name not in old or old[name] == entry
        if unchanged and name in world.infra:
            infra[name] = world.infra[name]
        if kept is not None and unchanged:
            statuses[name] = kept
        else:
            if name in old:
                effects.append(Log("info", f"target {name} changed; its state starts over"))
            statuses[name] = initial_status(name)
    members: dict[str, list[str]] = {}
    for target in event.targets:
        members.setdefault(target.country, []).append(target.name)
    # Incidents about what is no longer configured (or not since a restart) end at the next tick.
    removed_targets = [k for (scope, k) in world.incidents if scope is Scope.TARGET]
    removed_countries = [k for (scope, k) in world.incidents if scope is Scope.COUNTRY]
    fresh = replace(
        world,
        targets=event.targets,
        canaries=event.canaries,
        settings=event.settings,
        interval_s=event.interval_s,
        by_name=Map({t.name: t for t in event.targets}),
        members=Map({c: tuple(names) for c, names in members.items()}),
        statuses=Map(statuses),
        reported=Map({t.name: TargetState.UNKNOWN for t in event.targets}),
        infra=Map(infra),
        counts=Map({c: Counts(unknown=len(names)) for c, names in members.items()}),
        region=Counts(unknown=len(event.targets)),
        down=Map(),
        awaiting=Map(),
        declared=world.declared & set(members),
        dirty_targets=Map({n: True for n in [*(t.name for t in event.targets), *removed_targets]}),
        dirty_countries=Map({c: True for c in [*members, *removed_countries]}),
        region_dirty=True,
        windows=event.maintenance,
        window_members=_window_members(event.maintenance, event.targets),
        active_windows=frozenset(i for i, w in enumerate(event.maintenance) if is_active(w, now)),
        maintenance=Map(),
        maintenance_check_at=next_boundary(event.maintenance, now),
    )
    fresh = _tamper_reload(world, fresh, now, effects)
    # Kept statuses carry their blindness; the canaries decide the vantage anew. Reported
    # states restart from UNKNOWN here, so transitions are taken against the old world.
    produced: list[Effect] = []
    fresh = _canaries_changed(fresh, now, produced)
    for target in fresh.targets:
        fresh = _cover(fresh, target.name, now, produced)  # also reports it
    before_windows = {world.windows[i] for i in world.active_windows}
    after_windows = {fresh.windows[i] for i in fresh.active_windows}
    for index in sorted(fresh.active_windows):
        window = fresh.windows[index]
        if window not in before_windows:
            effects.append(_window_log(window, len(fresh.window_members[index]), True))
    for index in sorted(world.active_windows):
        window = world.windows[index]
        if window not in after_windows:
            effects.append(_window_log(window, len(world.window_members[index]), False))
    effects.extend(e for e in produced if not isinstance(e, RecordTransition))
    for target in fresh.targets:
        before = world.reported.get(target.name, TargetState.UNKNOWN)
        after = fresh.reported[target.name]
        if after is not before:
            reason = fresh.statuses[target.name].reason if after is TargetState.DOWN else None
            transition = Transition(target.name, before, after, now, reason)
            effects.append(RecordTransition(transition, quiet=True))
    return fresh, effects
