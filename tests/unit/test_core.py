"""The pure core's own rules: one reported state, impairment, reloads. Table-driven.

The outage rules themselves are tested through the core in test_outage.py.
"""

from __future__ import annotations

import pytest

from monitor.core import (
    Effect,
    Impairment,
    Log,
    RecordIncident,
    RecordTransition,
    Reload,
    StatusChanged,
    Tick,
    step,
)
from monitor.outage import Scope
from monitor.settings import Canary, OutageSettings
from monitor.state import TargetState
from probes.results import LocalFault, ProbeKind, ProbeResult, Reason
from tests.unit.judge import CoreSim, catalogue

T0 = 1_700_000_000.0
SETTINGS = OutageSettings(impairment_hold_s=30.0, overload_lag_s=1.0)


CANARIES = tuple(Canary(name=f"canary{i}", url=f"https://canary{i}.test/") for i in range(3))


def result(
    ok: bool, now: float, *, fault: LocalFault | None = None, kind: ProbeKind = ProbeKind.HTTP
) -> ProbeResult:
    reason = None if ok else Reason.CONNECT_TIMEOUT
    return ProbeResult(
        kind=kind, ok=ok, reason=reason, duration_s=0.1, started_at=now - 0.1, local_fault=fault
    )


def healthy(countries: dict[str, int]) -> CoreSim:
    sim = CoreSim(catalogue(countries), CANARIES, SETTINGS)
    for name in [t.name for t in sim.world.targets] + [c.name for c in CANARIES]:
        for kind in (ProbeKind.HTTP, ProbeKind.DNS):
            sim.result(name, result(True, T0, kind=kind), T0)
    judged = sim.tick(T0)
    assert set(judged.states.values()) == {TargetState.UP}
    return sim


def names(sim: CoreSim) -> list[str]:
    return [t.name for t in sim.world.targets]


# (how the monitor's own trouble shows, the impairment it must cause)
IMPAIRMENT_ROWS = [
    pytest.param("lag", Impairment.OVERLOAD, id="event-loop-lag-is-overload"),
    pytest.param("starved", Impairment.OVERLOAD, id="starved-probes-are-overload"),
    pytest.param("emfile", Impairment.RESOURCES, id="descriptor-exhaustion-is-resources"),
    pytest.param("fds", Impairment.RESOURCES, id="descriptors-nearly-all-used-is-resources"),
]


@pytest.mark.parametrize(("sign", "impairment"), IMPAIRMENT_ROWS)
def test_the_monitors_own_trouble_never_becomes_an_outage(
    sign: str, impairment: Impairment
) -> None:
    sim = healthy({"AL": 4, "XK": 3, "RS": 3})
    now = T0 + 10
    fault = {"starved": LocalFault.OVERLOAD, "emfile": LocalFault.RESOURCES}.get(sign)
    tick = Tick(loop_lag_s=3.0 if sign == "lag" else 0.0, fd_ratio=0.95 if sign == "fds" else 0.0)
    if fault is None:
        sim.tick(now, tick)
    # Every target fails, again and again, for the monitor's reasons.
    for second in range(0, 20, 2):
        for name in names(sim):
            sim.result(name, result(False, now + second, fault=fault), now + second)
        judged = sim.tick(now + second, tick if fault is None else None)
        assert not judged.vantage_up and impairment in judged.world.impaired
        assert set(judged.states.values()) == {TargetState.UNKNOWN}
        assert judged.countries_in_outage == () and not judged.region_outage
        assert all(t.new is not TargetState.DOWN for t in judged.transitions)
        assert [i.scope for i in judged.opened] in ([], [Scope.VANTAGE])
    # The trouble passes: after the hold, the targets are judged afresh.
    later = now + 20 + SETTINGS.impairment_hold_s
    for name in names(sim):
        sim.result(name, result(True, later), later)
    back = sim.tick(later)
    assert back.vantage_up and back.world.impaired == frozenset()
    assert [i.scope for i in back.closed] == [Scope.VANTAGE]
    assert set(back.states.values()) == {TargetState.UP}


def test_impairment_is_logged_once_and_transitions_are_quiet() -> None:
    sim = healthy({"AL": 30})
    judged = sim.tick(T0 + 5, Tick(loop_lag_s=5.0))
    logs = [e for e in judged.effects if isinstance(e, Log)]
    assert len(logs) == 1 and "overload" in logs[0].message and "30 targets" in logs[0].message
    moved = [e for e in judged.effects if isinstance(e, RecordTransition)]
    assert len(moved) == 30 and all(e.quiet for e in moved)


def test_targets_learned_up_are_quiet_and_news_is_not() -> None:
    """After the start or a blind spell every target goes unknown -> up: one vantage line
    speaks for them (64 'unknown -> up' lines did). A target going down is still news,
    in one line."""
    sim = healthy({"AL": 30})
    judged = sim.tick(T0 + 5, Tick(loop_lag_s=5.0))
    later = T0 + 10 + SETTINGS.impairment_hold_s
    effects: list[Effect] = []
    for name in names(sim):
        effects += sim.result(name, result(True, later), later)
    effects += sim.tick(later).effects
    back = [e for e in effects if isinstance(e, RecordTransition)]
    assert len(back) == 30 and all(e.transition.new is TargetState.UP for e in back)
    assert all(e.quiet for e in back)
    (line,) = [e.message for e in effects if isinstance(e, Log)]
    assert "back online" in line and judged.vantage_up is False
    now = later + 30
    for second in (0, 2):  # a failure and its quick re-probe confirm it
        sim.result("al1", result(False, now + second), now + second)
    for canary in CANARIES:  # the canaries vouch for the vantage
        for kind in (ProbeKind.HTTP, ProbeKind.DNS):
            sim.result(canary.name, result(True, now + 3, kind=kind), now + 3)
    down = sim.tick(now + 4).effects
    loud = [e.transition for e in down if isinstance(e, RecordTransition) and not e.quiet]
    # The few seconds it waited for the canaries' word (reported unknown) are stored, not
    # logged: one line for one event.
    assert [(t.target, t.new) for t in loud] == [("al1", TargetState.DOWN)]


def test_a_frozen_fleet_gives_one_vantage_incident_and_no_down_row() -> None:
    """Every site and canary silent for two intervals, then back: the history holds one
    vantage incident and not one 'down' transition (the uplink-loss race, event by event)."""
    sim = healthy({"AL": 5, "XK": 3, "RS": 6, "HR": 4})
    everyone = names(sim) + [c.name for c in CANARIES]
    effects: list[Effect] = []
    # Targets happen to be probed before the canaries in each round.
    for second in range(0, 60, 2):
        now = T0 + 30 + second
        for name in everyone:
            effects += sim.result(name, result(False, now), now)
        effects += sim.tick(now).effects
    for second in range(0, 10, 2):
        now = T0 + 100 + second
        for name in [c.name for c in CANARIES] + names(sim):
            for kind in (ProbeKind.HTTP, ProbeKind.DNS):
                effects += sim.result(name, result(True, now, kind=kind), now)
        effects += sim.tick(now).effects
    incidents = {e.incident.id: e.incident for e in effects if isinstance(e, RecordIncident)}
    assert [i.scope for i in incidents.values()] == [Scope.VANTAGE]
    (vantage,) = incidents.values()
    assert vantage.ended_at is not None
    target_rows = [
        e.transition
        for e in effects
        if isinstance(e, RecordTransition) and e.transition.target not in {c.name for c in CANARIES}
    ]
    assert all(t.new is not TargetState.DOWN and t.old is not TargetState.DOWN for t in target_rows)
    assert set(sim.world.reported.values()) == {TargetState.UP}


def test_transitions_are_of_the_reported_state() -> None:
    """A confirmed failure is 'unknown' until the canaries vouch, then 'down': the rows say so."""
    sim = healthy({"AL": 4, "RS": 6})
    for second in (10, 12):
        sim.result("al1", result(False, T0 + second), T0 + second)
    waiting = sim.tick(T0 + 12)
    assert waiting.states["al1"] is TargetState.UNKNOWN and waiting.vantage_check_wanted
    assert [(t.old, t.new) for t in waiting.transitions] == [(TargetState.UP, TargetState.UNKNOWN)]
    for canary in CANARIES:
        for kind in (ProbeKind.HTTP, ProbeKind.DNS):
            sim.result(canary.name, result(True, T0 + 13, kind=kind), T0 + 13)
    vouched = sim.tick(T0 + 13)
    assert [(t.target, t.old, t.new) for t in vouched.transitions] == [
        ("al1", TargetState.UNKNOWN, TargetState.DOWN)
    ]
    assert [i.key for i in vouched.opened] == ["al1"]
    assert vouched.world.region.down == 1 and vouched.world.counts["AL"].down == 1


def test_counters_follow_transitions() -> None:
    sim = healthy({"AL": 3, "XK": 2})
    world = sim.world
    assert (world.region.up, world.region.down, world.region.unknown) == (5, 0, 0)
    assert world.counts["XK"].total == 2


def test_reload_keeps_unchanged_targets_and_ends_what_was_removed() -> None:
    sim = healthy({"AL": 4, "RS": 6})
    for second in (10, 12):
        sim.result("al1", result(False, T0 + second), T0 + second)
    for canary in CANARIES:
        for kind in (ProbeKind.HTTP, ProbeKind.DNS):
            sim.result(canary.name, result(True, T0 + 13, kind=kind), T0 + 13)
    assert [i.key for i in sim.tick(T0 + 13).opened] == ["al1"]
    kept = tuple(t for t in sim.world.targets if t.name != "al1")
    world, _ = step(sim.world, Reload(kept, CANARIES, SETTINGS, 30.0), T0 + 20)
    assert world.reported["al2"] is TargetState.UP and "al1" not in world.reported
    assert world.counts["AL"].total == 3 and world.region.total == 9
    sim.world = world
    judged = sim.tick(T0 + 21)
    assert [i.key for i in judged.closed] == ["al1"]


def test_a_result_for_a_removed_target_is_ignored() -> None:
    sim = healthy({"AL": 3})
    before = sim.world
    assert sim.result("gone", result(False, T0 + 1), T0 + 1) == ()
    assert sim.world is before


def canaries_answer(sim: CoreSim, now: float, ok: bool = True) -> None:
    for canary in CANARIES:
        for kind in (ProbeKind.HTTP, ProbeKind.DNS):
            sim.result(canary.name, result(ok, now, kind=kind), now)


@pytest.mark.parametrize(
    ("target_after_the_cut", "reported", "incident"),
    [
        pytest.param(True, TargetState.UP, False, id="back-with-the-link-no-incident"),
        pytest.param(False, TargetState.DOWN, True, id="still-failing-after-the-link-is-down"),
    ],
)
def test_canaries_that_failed_meanwhile_do_not_vouch_for_a_failure(
    target_after_the_cut: bool, reported: TargetState, incident: bool
) -> None:
    """A short cut: a target's failure is confirmed, the canaries checked at once fail
    too (not long enough to confirm), then the link is back. The canaries' later health
    says nothing about the cut: only a failure seen after their last failure is real."""
    sim = healthy({"AL": 4, "RS": 6})
    for second in (10, 12):
        sim.result("al1", result(False, T0 + second), T0 + second)
    assert sim.tick(T0 + 12).vantage_check_wanted
    canaries_answer(sim, T0 + 13, ok=False)  # the check: the link is cut
    canaries_answer(sim, T0 + 20)  # and back, before the canaries were confirmed down
    judged = sim.tick(T0 + 20)
    assert judged.vantage_up and judged.states["al1"] is TargetState.UNKNOWN
    assert judged.opened == ()
    sim.result("al1", result(target_after_the_cut, T0 + 40), T0 + 40)
    canaries_answer(sim, T0 + 41)
    after = sim.tick(T0 + 41)
    assert after.states["al1"] is reported
    assert [i.key for i in after.opened] == (["al1"] if incident else [])


def test_a_steady_success_does_not_rewrite_the_stored_row() -> None:
    """The stored status row is what a restart restores: it is rewritten when the state or
    a streak changes, not for every result (one write per result would not scale)."""
    sim = healthy({"AL": 3})
    quiet = sim.result("al1", result(True, T0 + 30), T0 + 30)
    assert not any(isinstance(e, StatusChanged) for e in quiet)
    failed = sim.result("al1", result(False, T0 + 60), T0 + 60)
    assert [e for e in failed if isinstance(e, StatusChanged)] == [StatusChanged("al1")]
