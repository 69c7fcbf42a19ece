"""Per-target confirmed state: a pure reducer over probe results.

Nothing here does I/O or reads a clock: `now` (unix seconds, the time the
daemon observed the result) is always an argument, and every function returns
new frozen values.

Every change of a target's state happens in `_settle`, and only through the
`TRANSITIONS` table (as h11's `_state.py` does): the latest observations are
first summarised as one `Evidence`, then `(state, evidence)` is looked up.

- A probe failure makes the target *suspect* (its state does not change) and
  asks the scheduler for a quick re-probe of that probe kind.
- When `OutageSettings.confirm_reprobes` further failures of the same probe
  kind follow, the failure is *confirmed* and the target is DOWN, `since` the
  first failure of the streak. With `confirm_reprobes = 0` the first failure
  confirms.
- A target is UP again as soon as none of its latest probe results fails.
- While the vantage is down (`with_vantage(..., vantage_up=False)`) a target
  is *blind*: results are still recorded but prove nothing, and its state is
  UNKNOWN. When the vantage returns, a target whose latest results all succeed
  is UP at once; any other must be confirmed again by fresh failures.
- While a maintenance window covers a target (`with_maintenance`) it is blind in
  the same way (its confirmed state UNKNOWN; the core reports it MAINTENANCE), and
  when the window ends it is judged again as on the vantage's return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from monitor.settings import OutageSettings
from probes.results import ProbeKind, ProbeResult, Reason


class TargetState(StrEnum):
    """The confirmed state of a target (or canary), as reported."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"
    # Reported while a maintenance window covers the target (monitor.core); the confirmed
    # state meanwhile is UNKNOWN, so this row of TRANSITIONS is only read for a status
    # restored from a history row that holds it.
    MAINTENANCE = "maintenance"


class Evidence(StrEnum):
    """What a target's latest observations say, before the table decides."""

    UNOBSERVED = "unobserved"  # no result yet
    HEALTHY = "healthy"  # no latest result fails
    SUSPECT = "suspect"  # a probe fails, but not yet 1 + confirm_reprobes times in a row
    CONFIRMED = "confirmed"  # a probe failed 1 + confirm_reprobes times in a row
    BLIND = "blind"  # the vantage is down: observations are kept but prove nothing


_UP, _DOWN, _UNKNOWN = TargetState.UP, TargetState.DOWN, TargetState.UNKNOWN
_MAINTENANCE = TargetState.MAINTENANCE

# THE state machine. Total: every (state, evidence) pair has a row.
TRANSITIONS: Final[Mapping[tuple[TargetState, Evidence], TargetState]] = MappingProxyType(
    {
        (_UNKNOWN, Evidence.UNOBSERVED): _UNKNOWN,
        (_UNKNOWN, Evidence.HEALTHY): _UP,
        (_UNKNOWN, Evidence.SUSPECT): _UNKNOWN,
        (_UNKNOWN, Evidence.CONFIRMED): _DOWN,
        (_UNKNOWN, Evidence.BLIND): _UNKNOWN,
        (_UP, Evidence.UNOBSERVED): _UNKNOWN,
        (_UP, Evidence.HEALTHY): _UP,
        (_UP, Evidence.SUSPECT): _UP,  # one failure is not an outage: re-probe first
        (_UP, Evidence.CONFIRMED): _DOWN,
        (_UP, Evidence.BLIND): _UNKNOWN,
        (_DOWN, Evidence.UNOBSERVED): _UNKNOWN,
        (_DOWN, Evidence.HEALTHY): _UP,
        # The confirmed probe recovered but another one fails: not up while anything fails.
        (_DOWN, Evidence.SUSPECT): _DOWN,
        (_DOWN, Evidence.CONFIRMED): _DOWN,
        (_DOWN, Evidence.BLIND): _UNKNOWN,
        # As UNKNOWN: nothing observed during maintenance is evidence either way.
        (_MAINTENANCE, Evidence.UNOBSERVED): _UNKNOWN,
        (_MAINTENANCE, Evidence.HEALTHY): _UP,
        (_MAINTENANCE, Evidence.SUSPECT): _UNKNOWN,
        (_MAINTENANCE, Evidence.CONFIRMED): _DOWN,
        (_MAINTENANCE, Evidence.BLIND): _UNKNOWN,
    }
)

# When several probes fail, the reason of the first in this order is the target's.
PROBE_PRECEDENCE: Final[tuple[ProbeKind, ...]] = (ProbeKind.HTTP, ProbeKind.DNS, ProbeKind.TLS)

_NO_PROBES: Final[Mapping[ProbeKind, ProbeTrack]] = MappingProxyType({})


def _rank(kind: ProbeKind) -> int:
    return PROBE_PRECEDENCE.index(kind) if kind in PROBE_PRECEDENCE else len(PROBE_PRECEDENCE)


@dataclass(frozen=True, slots=True)
class ProbeTrack:
    """The latest result of one probe kind of one target, and its failure streak."""

    last: ProbeResult
    observed_at: float  # `now` when `last` was observed
    consecutive_failures: int = 0
    failing_since: float | None = None  # when the streak's first failure was observed
    # When this probe last failed at all, kept across successes: a canary that failed
    # after a target began failing cannot vouch for that failure (monitor.core).
    failed_at: float | None = None

    @property
    def kind(self) -> ProbeKind:
        return self.last.kind

    @property
    def failing(self) -> bool:
        return not self.last.ok


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """Everything the reducer knows about one target (or canary)."""

    name: str
    state: TargetState = TargetState.UNKNOWN
    since: float | None = None  # when `state` was entered; None before any observation
    reason: Reason | None = None  # set exactly when state is DOWN
    # Latest result per probe kind, in PROBE_PRECEDENCE order. Read-only.
    probes: Mapping[ProbeKind, ProbeTrack] = field(default_factory=lambda: _NO_PROBES)
    blind: bool = False  # the vantage is down: nothing observed counts
    maintenance: bool = False  # a maintenance window covers it: nothing observed counts

    def track(self, kind: ProbeKind) -> ProbeTrack | None:
        return self.probes.get(kind)

    @property
    def failing(self) -> tuple[ProbeKind, ...]:
        """Probe kinds whose latest result fails, in precedence order."""
        return tuple(kind for kind, track in self.probes.items() if track.failing)

    @property
    def healthy(self) -> bool:
        """Observed at least once and no latest result fails (regardless of blindness)."""
        return bool(self.probes) and not self.failing

    @property
    def suspect(self) -> bool:
        """A probe fails but the failure is not (yet) confirmed."""
        return (
            not self.blind
            and not self.maintenance
            and self.state is not TargetState.DOWN
            and bool(self.failing)
        )

    @property
    def observed_at(self) -> float | None:
        """When the most recent result (of any kind) was observed."""
        return max((t.observed_at for t in self.probes.values()), default=None)

    @property
    def consecutive_failures(self) -> int:
        """The longest current failure streak among the probe kinds."""
        return max((t.consecutive_failures for t in self.probes.values()), default=0)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of confirmed state, for storage and logs."""

    target: str
    old: TargetState
    new: TargetState
    at: float  # when the change was decided (`now`)
    reason: Reason | None  # the DOWN reason; None for other new states


@dataclass(frozen=True, slots=True)
class Reprobe:
    """A request to the scheduler: probe `kind` of `target` again at `at`."""

    target: str
    kind: ProbeKind
    at: float


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one reduction."""

    status: TargetStatus
    transition: Transition | None = None
    reprobes: tuple[Reprobe, ...] = ()


def same_for_restore(old: TargetStatus, new: TargetStatus) -> bool:
    """Nothing a restart restores has changed: the state and every probe's streak.

    The latest result and its time change with every probe; rewriting a target's
    stored row for them alone would cost one write per result for nothing.
    """
    if (old.state, old.since, old.reason, old.blind, old.maintenance) != (
        new.state,
        new.since,
        new.reason,
        new.blind,
        new.maintenance,
    ):
        return False
    if old.probes.keys() != new.probes.keys():
        return False
    for kind, track in new.probes.items():
        before = old.probes[kind]
        if (
            before.last.ok,
            before.consecutive_failures,
            before.failing_since,
            before.failed_at,
        ) != (
            track.last.ok,
            track.consecutive_failures,
            track.failing_since,
            track.failed_at,
        ):
            return False
    return True


def initial_status(name: str) -> TargetStatus:
    """The status of a target before any result: UNKNOWN."""
    return TargetStatus(name=name)


def observe(
    status: TargetStatus, result: ProbeResult, now: float, settings: OutageSettings
) -> Step:
    """Fold one probe result into a target's status."""
    previous = status.probes.get(result.kind)
    if previous is not None and result.started_at < previous.last.started_at:
        # A slow probe finished after a newer one of the same kind: it is old news.
        return Step(status)
    if result.ok:
        failed_at = previous.failed_at if previous is not None else None
        track = ProbeTrack(last=result, observed_at=now, failed_at=failed_at)
    else:
        streak = previous.consecutive_failures if previous is not None else 0
        started = previous.failing_since if previous is not None and streak else None
        track = ProbeTrack(
            last=result,
            observed_at=now,
            consecutive_failures=streak + 1,
            failing_since=started if started is not None else now,
            failed_at=now,
        )
    step = _settle(status, _with_tracks(status.probes, [track]), status.blind, now, settings)
    unconfirmed = track.failing and track.consecutive_failures <= settings.confirm_reprobes
    if unconfirmed and not status.blind and not status.maintenance:
        reprobe = Reprobe(status.name, result.kind, now + settings.reprobe_delay_s)
        return replace(step, reprobes=(reprobe,))
    return step


def with_vantage(
    status: TargetStatus, vantage_up: bool, now: float, settings: OutageSettings
) -> Step:
    """Make a target blind (vantage down) or sighted again (vantage up). Idempotent.

    The daemon applies this to every *target* (never to canaries) after each
    assessment, with `Assessment.vantage_up`. Going blind keeps every
    observation; coming back resets failure streaks, so failures seen while
    blind never confirm an outage, and re-probes every failing kind at once.
    """
    if status.blind != vantage_up:
        return Step(status)
    if not vantage_up:
        return _settle(status, status.probes, True, now, settings)
    return _sighted(status, False, status.maintenance, now, settings)


def with_maintenance(
    status: TargetStatus, active: bool, now: float, settings: OutageSettings
) -> Step:
    """Put a target under maintenance (a window covers it) or take it out. Idempotent.

    Under maintenance a target is blind as when the vantage is down: results are kept
    but prove nothing, and failures ask for no re-probe. Leaving it is returning from
    blindness: healthy is UP at once, failing must be confirmed by fresh failures.
    """
    if status.maintenance == active:
        return Step(status)
    if active:
        return _settle(status, status.probes, status.blind, now, settings, maintenance=True)
    return _sighted(status, status.blind, False, now, settings)


def _sighted(
    status: TargetStatus, blind: bool, maintenance: bool, now: float, settings: OutageSettings
) -> Step:
    """Back from blindness: failure streaks start over and every failing kind is re-probed."""
    fresh = [
        replace(track, consecutive_failures=0, failing_since=None)
        for track in status.probes.values()
        if track.failing
    ]
    step = _settle(
        status, _with_tracks(status.probes, fresh), blind, now, settings, maintenance=maintenance
    )
    if blind or maintenance:
        return step
    reprobes = tuple(
        Reprobe(status.name, track.kind, now + settings.reprobe_delay_s) for track in fresh
    )
    return replace(step, reprobes=reprobes)


def _with_tracks(
    probes: Mapping[ProbeKind, ProbeTrack], tracks: Iterable[ProbeTrack]
) -> Mapping[ProbeKind, ProbeTrack]:
    merged = dict(probes)
    merged.update((track.kind, track) for track in tracks)
    return MappingProxyType({kind: merged[kind] for kind in sorted(merged, key=_rank)})


def _confirmed(
    probes: Mapping[ProbeKind, ProbeTrack], settings: OutageSettings
) -> list[ProbeTrack]:
    return [t for t in probes.values() if t.consecutive_failures > settings.confirm_reprobes]


def _evidence(
    probes: Mapping[ProbeKind, ProbeTrack], blind: bool, settings: OutageSettings
) -> Evidence:
    if blind:
        return Evidence.BLIND
    if not probes:
        return Evidence.UNOBSERVED
    if _confirmed(probes, settings):
        return Evidence.CONFIRMED
    if any(t.failing for t in probes.values()):
        return Evidence.SUSPECT
    return Evidence.HEALTHY


def _settle(
    status: TargetStatus,
    probes: Mapping[ProbeKind, ProbeTrack],
    blind: bool,
    now: float,
    settings: OutageSettings,
    *,
    maintenance: bool | None = None,
) -> Step:
    """The one place where a target's state changes."""
    if maintenance is None:
        maintenance = status.maintenance
    new_state = TRANSITIONS[(status.state, _evidence(probes, blind or maintenance, settings))]
    confirmed = _confirmed(probes, settings)
    reason: Reason | None = None
    if new_state is TargetState.DOWN:
        # Confirmed failures name the reason; while one recovers and another is
        # only suspect, the suspect one does.
        failing = confirmed or [t for t in probes.values() if t.failing]
        reason = min(failing, key=lambda t: _rank(t.kind)).last.reason
    if new_state is status.state:
        since = status.since
    elif new_state is TargetState.DOWN:
        since = min(t.failing_since if t.failing_since is not None else now for t in confirmed)
    else:
        since = now
    new_status = TargetStatus(
        name=status.name,
        state=new_state,
        since=since,
        reason=reason,
        probes=probes,
        blind=blind,
        maintenance=maintenance,
    )
    transition = None
    if new_state is not status.state:
        transition = Transition(status.name, status.state, new_state, now, reason)
    return Step(new_status, transition)
