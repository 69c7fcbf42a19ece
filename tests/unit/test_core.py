"""The pure core's own rules: one reported state, impairment, reloads. Table-driven.

The outage rules themselves are tested through the core in test_outage.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.core import (
    Effect,
    Impairment,
    Log,
    ProbeSoon,
    RecordIncident,
    RecordTransition,
    Reload,
    StatusChanged,
    Tick,
    step,
)
from monitor.maintenance import WEEK_S
from monitor.outage import Scope
from monitor.settings import Canary, MaintenanceWindow, OutageSettings
from monitor.state import TargetState
from probes.results import LocalFault, ProbeKind, ProbeResult, Reason
from tests.unit.judge import CoreSim, Judged, catalogue

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


# --- maintenance windows -----------------------------------------------------------------

WINDOW_AT = T0 + 100.0


def window(
    *, targets: tuple[str, ...] = (), countries: tuple[str, ...] = (), hours: float = 1.0
) -> MaintenanceWindow:
    return MaintenanceWindow(
        note="planned upgrade",
        start=WINDOW_AT,
        end=WINDOW_AT + hours * 3600,
        targets=frozenset(targets),
        countries=frozenset(countries),
    )


def with_windows(sim: CoreSim, now: float, *windows: MaintenanceWindow) -> None:
    w = sim.world
    sim.world, effects = step(
        w, Reload(w.targets, w.canaries, w.settings, w.interval_s, windows), now
    )
    sim.pending.extend(effects)


def fail(sim: CoreSim, name: str, now: float, times: int = 2) -> None:
    for second in range(times):  # a failure and its quick re-probe(s) confirm it
        sim.result(name, result(False, now + 2 * second), now + 2 * second)
    canaries_answer(sim, now + 2 * times)


def logs(judged: Judged) -> list[str]:
    return [e.message for e in judged.effects if isinstance(e, Log)]


@pytest.mark.parametrize("before", ["up", "down", "failing"])
def test_maintenance_start_reports_maintenance_and_closes_the_targets_incident(
    before: str,
) -> None:
    sim = healthy({"AL": 4})
    with_windows(sim, T0 + 1, window(targets=("al1", "al2")))
    if before == "down":
        fail(sim, "al1", T0 + 10)
        assert sim.tick(T0 + 20).states["al1"] is TargetState.DOWN
        assert [i.target for i in sim.world.open_incidents] == ["al1"]
    elif before == "failing":
        sim.result("al1", result(False, T0 + 10), T0 + 10)
        sim.tick(T0 + 11)
    judged = sim.tick(WINDOW_AT)
    assert judged.states["al1"] is judged.states["al2"] is TargetState.MAINTENANCE
    assert judged.states["al3"] is TargetState.UP
    assert judged.world.counts["AL"].maintenance == 2
    assert judged.world.maintenance["al1"].note == "planned upgrade"
    (line,) = logs(judged)  # one line for the window, none per target
    assert "maintenance started" in line and "planned upgrade" in line and "2 targets" in line
    moved = [e for e in judged.effects if isinstance(e, RecordTransition)]
    assert {e.transition.target for e in moved} == {"al1", "al2"} and all(e.quiet for e in moved)
    assert [i.target for i in judged.closed] == (["al1"] if before == "down" else [])
    assert sim.world.open_incidents == ()


def test_failures_in_maintenance_open_nothing_and_ask_for_no_reprobe() -> None:
    sim = healthy({"AL": 3, "XK": 3})
    with_windows(sim, T0 + 1, window(countries=("AL",)))
    sim.tick(WINDOW_AT)
    effects: list[Effect] = []
    for second in range(0, 30, 2):
        for name in ("al1", "al2", "al3"):
            effects += sim.result(name, result(False, WINDOW_AT + second), WINDOW_AT + second)
        judged = sim.tick(WINDOW_AT + second)
        assert set(judged.world.countries_in_outage) == set()
        assert judged.opened == ()
    assert {judged.states[n] for n in ("al1", "al2", "al3")} == {TargetState.MAINTENANCE}
    assert not [e for e in effects if isinstance(e, ProbeSoon) and e.kind is ProbeKind.HTTP]
    assert judged.world.counts["AL"].down == 0 and judged.world.region.down == 0


def test_targets_in_maintenance_never_count_as_down_for_a_country() -> None:
    """AL has 4 targets: 2 in maintenance and failing, 2 down. Two down is fewer than
    country_min_targets (3): no country outage, as if the two in maintenance were up."""
    sim = healthy({"AL": 4, "XK": 3, "RS": 3})
    with_windows(sim, T0 + 1, window(targets=("al1", "al2")))
    sim.tick(WINDOW_AT)
    for name in ("al1", "al2", "al3", "al4"):
        fail(sim, name, WINDOW_AT + 10)
    judged = sim.tick(WINDOW_AT + 20)
    assert judged.states["al3"] is judged.states["al4"] is TargetState.DOWN
    assert judged.world.countries_in_outage == ()
    assert sorted(str(i.target) for i in judged.opened if i.scope is Scope.TARGET) == ["al3", "al4"]
    assert not [i for i in judged.opened if i.scope is not Scope.TARGET]


def test_maintenance_end_judges_again_as_after_blindness() -> None:
    """Healthy is up at once; failing must be confirmed by fresh failures, re-probed now."""
    sim = healthy({"AL": 4})
    with_windows(sim, T0 + 1, window(targets=("al1", "al2")))
    sim.tick(WINDOW_AT)
    for second in range(0, 10, 2):  # al2 fails all through the window
        sim.result("al2", result(False, WINDOW_AT + second), WINDOW_AT + second)
    end = WINDOW_AT + 3600
    assert sim.tick(end - 1).states["al1"] is TargetState.MAINTENANCE
    judged = sim.tick(end)
    assert judged.states["al1"] is TargetState.UP
    assert judged.states["al2"] is TargetState.UNKNOWN  # its old failures confirm nothing
    (line,) = logs(judged)
    assert "maintenance ended" in line and "2 targets" in line
    assert ProbeSoon("al2", ProbeKind.HTTP, end + SETTINGS.reprobe_delay_s) in judged.effects
    assert judged.opened == () and judged.world.counts["AL"].maintenance == 0
    fail(sim, "al2", end + 5)
    after = sim.tick(end + 15)
    assert after.states["al2"] is TargetState.DOWN
    assert [i.target for i in after.opened] == ["al2"]


def test_a_weekly_window_comes_back_and_is_checked_only_at_boundaries() -> None:
    sim = healthy({"AL": 2})
    weekly = replace(window(targets=("al1",)), every_s=WEEK_S)
    with_windows(sim, T0 + 1, weekly)
    assert sim.world.maintenance_check_at == WINDOW_AT
    for offset, expected in [
        (0.0, TargetState.MAINTENANCE),
        (3600.0, TargetState.UP),
        (WEEK_S - 1, TargetState.UP),
        (WEEK_S, TargetState.MAINTENANCE),
        (WEEK_S + 3600, TargetState.UP),
    ]:
        sim.result("al1", result(True, WINDOW_AT + offset), WINDOW_AT + offset)
        assert sim.tick(WINDOW_AT + offset).states["al1"] is expected, offset
    assert sim.world.maintenance_check_at == WINDOW_AT + 2 * WEEK_S


def test_a_reload_starts_and_ends_windows_at_once() -> None:
    sim = healthy({"AL": 2})
    now = WINDOW_AT + 60
    with_windows(sim, now, window(targets=("al1",)))  # already running when it is added
    judged = sim.tick(now)
    assert judged.states["al1"] is TargetState.MAINTENANCE
    assert any("maintenance started" in line for line in logs(judged))
    with_windows(sim, now + 1)  # and taken out again
    judged = sim.tick(now + 1)
    assert judged.states["al1"] is TargetState.UP
    assert any("maintenance ended" in line for line in logs(judged))


def test_a_country_wide_window_closes_the_countrys_open_outage() -> None:
    sim = healthy({"AL": 3, "XK": 3, "RS": 6})
    with_windows(sim, T0 + 1, window(countries=("AL",)))
    for name in ("al1", "al2", "al3"):
        fail(sim, name, T0 + 10)
    assert sim.tick(T0 + 20).world.countries_in_outage == ("AL",)
    judged = sim.tick(WINDOW_AT)
    assert judged.world.countries_in_outage == ()
    assert sorted(str(i.key) for i in judged.closed) == ["AL", "al1", "al2", "al3"]
    assert judged.world.open_incidents == ()
