"""Tamper signals through the pure core: confirmed by a re-probe and the canaries' word,
raised until acknowledged, a separate axis from up and down, never judged while the
monitor is blind."""

from __future__ import annotations

from dataclasses import replace

from monitor.core import (
    AckDone,
    Acknowledge,
    Log,
    ProbeSoon,
    RecordIncident,
    RecordTransition,
    Reload,
    Result,
    Tick,
    initial_world,
    step,
)
from monitor.settings import MaintenanceWindow
from monitor.state import TargetState
from monitor.tamper import BaselineChange, SignalChange, TamperKind
from probes.results import ProbeKind
from tests.probes.test_page import DEFACED, NEWS, portal
from tests.unit.judge import CoreSim
from tests.unit.test_core import (
    CANARIES,
    SETTINGS,
    T0,
    canaries_answer,
    healthy,
    logs,
    result,
)
from tests.unit.test_tamper import http

DEFACEMENT = ("al1", TamperKind.DEFACEMENT)


def learned() -> CoreSim:
    """AL and XK up; al1's page learned from three probes."""
    sim = healthy({"AL": 3, "XK": 3})
    for second in range(3):
        sim.result("al1", http(portal(NEWS)), T0 + second)
    assert DEFACEMENT in sim.world.baselines
    sim.tick(T0 + 3)
    return sim


def deface(sim: CoreSim, at: float) -> list[object]:
    return [*sim.result("al1", http(DEFACED, ok=False), at)]


def confirm_defacement(sim: CoreSim, at: float) -> None:
    """A defaced page, its re-probe, and the canaries checked healthy after it."""
    deface(sim, at)
    deface(sim, at + 2)
    canaries_answer(sim, at + 3)
    assert DEFACEMENT in sim.world.signals


def test_a_deviation_is_confirmed_by_a_reprobe_and_the_canaries_then_raised() -> None:
    sim = learned()
    first = deface(sim, T0 + 10)
    assert ProbeSoon("al1", ProbeKind.HTTP, T0 + 10 + SETTINGS.reprobe_delay_s) in first
    assert not sim.world.signals and not any(isinstance(e, SignalChange) for e in first)
    # The re-probe agrees; the canaries were last seen before the first sighting, so they
    # are asked first, as for a failure.
    assert not any(isinstance(e, SignalChange) for e in deface(sim, T0 + 12))
    assert not sim.world.signals
    assert sim.tick(T0 + 12).vantage_check_wanted
    for canary in CANARIES[:-1]:  # two of three healthy after the sighting: enough
        for kind in (ProbeKind.HTTP, ProbeKind.DNS):
            sim.result(canary.name, result(True, T0 + 13, kind=kind), T0 + 13)
    second = sim.tick(T0 + 13).effects
    (raised,) = [e for e in second if isinstance(e, SignalChange)]
    assert raised.cleared_by is None and raised.country == "AL"
    signal = raised.signal
    assert (signal.target, signal.kind, signal.raised_at) == ("al1", TamperKind.DEFACEMENT, T0 + 10)
    assert signal.evidence["new_title"] == "HACKED BY Homeland Justice"
    assert any(
        isinstance(e, Log) and "tamper signal defacement on al1" in e.message for e in second
    )
    assert sim.world.signals[DEFACEMENT] == signal


def test_a_deviation_the_reprobe_does_not_see_is_dropped() -> None:
    sim = learned()
    deface(sim, T0 + 10)
    sim.result("al1", http(portal(NEWS)), T0 + 12)
    deface(sim, T0 + 70)  # a new first sighting, not a confirmation
    assert not sim.world.signals


def test_a_signal_is_a_separate_axis_from_up_and_down() -> None:
    """An attacker's page with the expected text kept (probe passes): the target stays up,
    no incident opens, the signal is raised."""
    sim = learned()
    for at in (T0 + 10, T0 + 12):
        sim.result("al1", http(DEFACED), at)
    canaries_answer(sim, T0 + 13)
    judged = sim.tick(T0 + 13)
    assert DEFACEMENT in judged.world.signals
    assert judged.world.reported["al1"] is TargetState.UP
    assert not any(isinstance(e, RecordIncident | RecordTransition) for e in judged.effects)


def test_a_raised_signal_stays_until_acknowledged_and_the_ack_adopts_what_is_served() -> None:
    sim = learned()
    confirm_defacement(sim, T0 + 10)
    # The page is restored: the signal stays (someone should look), the baseline is unmoved.
    sim.result("al1", http(portal(NEWS)), T0 + 70)
    assert DEFACEMENT in sim.world.signals
    # Then the site is redesigned for real, and the operator accepts it.
    redesign = portal(["Portali i ri", "Shërbime të reja"], extra="<p>Dizajn i ri</p>")
    sim.result("al1", http(redesign.replace("e-Albania | Portali", "Ballina")), T0 + 130)
    world, effects = step(
        sim.world, Acknowledge("al1", "defacement", 7, "redesign", "ops"), T0 + 140
    )
    cleared = [e for e in effects if isinstance(e, SignalChange)]
    assert [(e.cleared_by, e.cleared_at, e.note) for e in cleared] == [
        ("ack", T0 + 140, "redesign")
    ]
    assert AckDone(7, "cleared") in effects
    assert any(isinstance(e, BaselineChange) and e.baseline is not None for e in effects)
    assert not world.signals
    # What was acknowledged is the baseline: the redesigned page passes, the old one is news.
    world, effects = step(world, Result("al1", http(redesign)), T0 + 200)
    assert not any(isinstance(e, ProbeSoon) for e in effects)
    world, effects = step(world, Result("al1", http(DEFACED)), T0 + 260)
    assert any(isinstance(e, ProbeSoon) for e in effects)


def test_acknowledging_nothing_relearns_and_unknown_targets_are_answered() -> None:
    sim = learned()
    world, effects = step(sim.world, Acknowledge("al1", "defacement", 1), T0 + 20)
    assert DEFACEMENT not in world.baselines
    assert BaselineChange("al1", TamperKind.DEFACEMENT, None) in effects
    assert AckDone(1, "relearning") in effects
    _, effects = step(world, Acknowledge("nope", "defacement", 2), T0 + 21)
    assert AckDone(2, "unknown target") in effects
    _, effects = step(world, Acknowledge("al1", "made-up", 3), T0 + 22)
    assert AckDone(3, "unknown kind") in effects


def test_nothing_is_judged_while_the_monitor_is_impaired() -> None:
    """A captive portal at the monitor's end would look like every site defaced."""
    sim = learned()
    sim.tick(T0 + 20, Tick(loop_lag_s=5.0))
    assert not sim.world.vantage_up
    effects = [*deface(sim, T0 + 21), *deface(sim, T0 + 23)]
    assert not sim.world.signals and not sim.world.suspects
    assert not any(isinstance(e, ProbeSoon | SignalChange) for e in effects)


def test_a_captive_portal_between_the_canaries_and_the_reprobe_raises_nothing() -> None:
    """The canaries passed, then a captive portal took the monitor's link: every page
    changes, the re-probe agrees, and only the canaries, asked after the first sighting,
    can tell it is the monitor's network. They fail: nothing is raised, ever."""
    sim = learned()
    deface(sim, T0 + 10)
    deface(sim, T0 + 12)
    assert sim.tick(T0 + 12).vantage_check_wanted
    canaries_answer(sim, T0 + 13, ok=False)
    canaries_answer(sim, T0 + 15, ok=False)  # confirmed down: the uplink is impaired
    judged = sim.tick(T0 + 15)
    assert not judged.vantage_up
    assert not any(isinstance(e, SignalChange) for e in judged.effects)
    assert any("not raised: the monitor is impaired" in line for line in logs(judged))
    # The portal is gone, the pages are the portal's own again: nothing was raised.
    canaries_answer(sim, T0 + 60)
    canaries_answer(sim, T0 + 62)
    sim.result("al1", http(portal(NEWS)), T0 + 70)
    canaries_answer(sim, T0 + 71)
    assert sim.tick(T0 + 71).vantage_up
    assert not sim.world.signals and not sim.world.held and not sim.world.suspects


def test_a_confirmed_deviation_gone_before_the_canaries_answer_is_dropped() -> None:
    sim = learned()
    deface(sim, T0 + 10)
    deface(sim, T0 + 12)
    assert DEFACEMENT in sim.world.held
    sim.result("al1", http(portal(NEWS)), T0 + 13)
    canaries_answer(sim, T0 + 14)
    assert not sim.world.held and not sim.world.signals


def test_without_canaries_a_confirmed_deviation_is_raised_at_once() -> None:
    sim = CoreSim(learned().world.targets, (), SETTINGS)
    for second in range(3):
        sim.result("al1", http(portal(NEWS)), T0 + second)
    deface(sim, T0 + 10)
    deface(sim, T0 + 12)
    assert DEFACEMENT in sim.world.signals


def test_nothing_is_judged_under_maintenance() -> None:
    window = MaintenanceWindow("redesign", T0 + 5, T0 + 3600, targets=frozenset({"al1"}))
    sim = learned()
    world = sim.world
    reload = Reload(world.targets, world.canaries, world.settings, world.interval_s, (window,))
    sim.world, _ = step(world, reload, T0 + 6)
    sim.tick(T0 + 7)
    assert sim.world.reported["al1"] is TargetState.MAINTENANCE
    deface(sim, T0 + 10)
    deface(sim, T0 + 12)
    canaries_answer(sim, T0 + 13)
    assert not sim.world.signals and not sim.world.held


def test_a_target_removed_or_moved_loses_its_baseline_and_its_signal_clears() -> None:
    sim = learned()
    confirm_defacement(sim, T0 + 10)
    world = sim.world
    moved = tuple(
        replace(t, url="https://al1-new.test/") if t.name == "al1" else t for t in world.targets
    )
    reloaded, effects = step(
        world, Reload(moved, world.canaries, world.settings, world.interval_s), T0 + 20
    )
    assert not reloaded.signals and DEFACEMENT not in reloaded.baselines
    (cleared,) = [e for e in effects if isinstance(e, SignalChange)]
    assert cleared.cleared_by == "removed"
    # Another change (a sector) keeps them.
    resectored = tuple(replace(t, sector="tax") for t in world.targets)
    kept, _ = step(
        world, Reload(resectored, world.canaries, world.settings, world.interval_s), T0 + 20
    )
    assert DEFACEMENT in kept.signals and DEFACEMENT in kept.baselines


def test_a_restart_restores_baselines_and_raised_signals() -> None:
    sim = learned()
    confirm_defacement(sim, T0 + 10)
    world = sim.world
    restarted = initial_world(
        world.targets,
        CANARIES,
        SETTINGS,
        world.interval_s,
        baselines=dict(world.baselines),
        signals=world.signals.values(),
    )
    assert restarted.signals == world.signals and restarted.baselines == world.baselines
    _ = result  # the shared helper keeps its import used by this module's readers


def test_a_restart_with_a_targets_url_changed_forgets_its_tamper_state() -> None:
    sim = learned()
    for second in range(3):
        sim.result("xk1", http(portal(NEWS)), T0 + 4 + second)
    confirm_defacement(sim, T0 + 10)
    world = sim.world
    stored_urls = {t.name: t.url for t in world.targets}
    moved = tuple(
        replace(t, url="https://al1-new.test/") if t.name == "al1" else t for t in world.targets
    )
    restarted = initial_world(
        moved,
        CANARIES,
        SETTINGS,
        world.interval_s,
        baselines=dict(world.baselines),
        signals=world.signals.values(),
        urls=stored_urls,
    )
    assert not restarted.signals
    assert set(restarted.baselines) == {("xk1", TamperKind.DEFACEMENT)}
