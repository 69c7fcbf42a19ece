"""The per-target reducer, driven by rows of events.

Event language (event i happens at now = T0 + 10*i, its probe started 1 s before):
  h+ d+ t+        http / dns / tls success
  h- d- t-        failure with the kind's default reason (see DEFAULT_FAILURE)
  h-:http_status  failure with that reason
  lost / back     the vantage goes down / comes back (with_vantage)
Transitions are written "i:old>new" or "i:old>new:reason", reprobes "i:kind".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from monitor.settings import OutageSettings
from monitor.state import (
    PROBE_PRECEDENCE,
    TRANSITIONS,
    Evidence,
    Reprobe,
    Step,
    TargetState,
    TargetStatus,
    initial_status,
    observe,
    with_maintenance,
    with_vantage,
)
from probes.results import ProbeKind, ProbeResult, Reason

T0 = 1_700_000_000.0
DELAY = 2.0
KINDS = {"h": ProbeKind.HTTP, "d": ProbeKind.DNS, "t": ProbeKind.TLS}
DEFAULT_FAILURE = {
    ProbeKind.HTTP: Reason.CONNECT_TIMEOUT,
    ProbeKind.DNS: Reason.DNS_SERVFAIL,
    ProbeKind.TLS: Reason.TLS_CERT_EXPIRED,
}


def at(i: int) -> float:
    return T0 + 10 * i


def result(kind: ProbeKind, reason: Reason | None, started_at: float) -> ProbeResult:
    return ProbeResult(
        kind=kind, ok=reason is None, reason=reason, duration_s=0.5, started_at=started_at
    )


@dataclass
class Run:
    status: TargetStatus
    transitions: list[str]
    reprobes: list[str]
    steps: list[Step]


def run(events: str, confirm_reprobes: int = 1) -> Run:
    settings = OutageSettings(confirm_reprobes=confirm_reprobes, reprobe_delay_s=DELAY)
    status = initial_status("portal.test")
    transitions: list[str] = []
    reprobes: list[str] = []
    steps: list[Step] = []
    for i, event in enumerate(events.split()):
        now = at(i)
        if event in ("lost", "back"):
            step = with_vantage(status, event == "back", now, settings)
        else:
            kind = KINDS[event[0]]
            if event[1] == "+":
                reason = None
            elif ":" in event:
                reason = Reason(event.split(":", 1)[1])
            else:
                reason = DEFAULT_FAILURE[kind]
            step = observe(status, result(kind, reason, now - 1), now, settings)
        t = step.transition
        if t is not None:
            assert t.target == "portal.test" and t.at == now
            assert t.old is status.state and t.new is step.status.state
            transitions.append(f"{i}:{t.old}>{t.new}" + (f":{t.reason}" if t.reason else ""))
        else:
            assert step.status.state is status.state
        for reprobe in step.reprobes:
            assert reprobe == Reprobe("portal.test", reprobe.kind, now + DELAY)
            reprobes.append(f"{i}:{reprobe.kind}")
        # Invariant: a reason exactly when down.
        assert (step.status.reason is not None) == (step.status.state is TargetState.DOWN)
        status = step.status
        steps.append(step)
    return Run(status, transitions, reprobes, steps)


# (events, confirm_reprobes, transitions, final (state, since event, reason), reprobes)
ROWS = [
    pytest.param("h+", 1, ["0:unknown>up"], ("up", 0, None), [], id="first-success-up"),
    pytest.param("h-", 1, [], ("unknown", None, None), ["0:http"], id="first-failure-suspect"),
    pytest.param(
        "h- h-",
        1,
        ["1:unknown>down:connect_timeout"],
        ("down", 0, "connect_timeout"),
        ["0:http"],
        id="unknown-confirmed-down",
    ),
    pytest.param(
        "h+ h- h-",
        1,
        ["0:unknown>up", "2:up>down:connect_timeout"],
        ("down", 1, "connect_timeout"),
        ["1:http"],
        id="confirmed-by-one-reprobe",
    ),
    pytest.param(
        "h+ h- h+ h- h+ h- h+",
        1,
        ["0:unknown>up"],
        ("up", 0, None),
        ["1:http", "3:http", "5:http"],
        id="flapping-never-confirms",
    ),
    pytest.param(
        "h+ h- h- h+",
        1,
        ["0:unknown>up", "2:up>down:connect_timeout", "3:down>up"],
        ("up", 3, None),
        ["1:http"],
        id="recovery-on-first-success",
    ),
    pytest.param(
        "h+ h- h- h- h-",
        1,
        ["0:unknown>up", "2:up>down:connect_timeout"],
        ("down", 1, "connect_timeout"),
        ["1:http"],
        id="down-stays-down-no-more-reprobes",
    ),
    pytest.param(
        "h+ h-",
        0,
        ["0:unknown>up", "1:up>down:connect_timeout"],
        ("down", 1, "connect_timeout"),
        [],
        id="confirm0-first-failure-confirms",
    ),
    pytest.param(
        "h+ h- h- h+",
        0,
        ["0:unknown>up", "1:up>down:connect_timeout", "3:down>up"],
        ("up", 3, None),
        [],
        id="confirm0-recovery",
    ),
    pytest.param(
        "h+ h- h-", 2, ["0:unknown>up"], ("up", 0, None), ["1:http", "2:http"], id="confirm2-two"
    ),
    pytest.param(
        "h+ h- h- h-",
        2,
        ["0:unknown>up", "3:up>down:connect_timeout"],
        ("down", 1, "connect_timeout"),
        ["1:http", "2:http"],
        id="confirm2-three-failures",
    ),
    pytest.param(
        "h+ h- h- h+ h- h- h+",
        2,
        ["0:unknown>up"],
        ("up", 0, None),
        ["1:http", "2:http", "4:http", "5:http"],
        id="confirm2-flapping",
    ),
    pytest.param(
        "h+ h- d-",
        1,
        ["0:unknown>up"],
        ("up", 0, None),
        ["1:http", "2:dns"],
        id="failures-of-different-probes-do-not-add-up",
    ),
    pytest.param(
        "h+ h- d+ h-",
        1,
        ["0:unknown>up", "3:up>down:connect_timeout"],
        ("down", 1, "connect_timeout"),
        ["1:http"],
        id="another-probe-success-keeps-the-streak",
    ),
    pytest.param(
        "h+ h-:http_timeout h-:http_status",
        1,
        ["0:unknown>up", "2:up>down:http_status"],
        ("down", 1, "http_status"),
        ["1:http"],
        id="reason-of-the-latest-failure",
    ),
    pytest.param(
        "h+ d- d- h- h-",
        1,
        ["0:unknown>up", "2:up>down:dns_servfail"],
        ("down", 1, "connect_timeout"),
        ["1:dns", "3:http"],
        id="http-reason-preferred-over-dns",
    ),
    pytest.param(
        "h+ d+ t- t-",
        1,
        ["0:unknown>up", "3:up>down:tls_cert_expired"],
        ("down", 2, "tls_cert_expired"),
        ["2:tls"],
        id="tls-failure-confirmed",
    ),
    pytest.param(
        "d+ d- d- h+",
        1,
        ["0:unknown>up", "2:up>down:dns_servfail"],
        ("down", 1, "dns_servfail"),
        ["1:dns"],
        id="up-needs-the-failing-probe-to-succeed",
    ),
    pytest.param(
        "h+ h- h- d-",
        1,
        ["0:unknown>up", "2:up>down:connect_timeout"],
        ("down", 1, "connect_timeout"),
        ["1:http", "3:dns"],
        id="suspect-second-probe-while-down",
    ),
    pytest.param(
        "h+ h- h- d- h+",
        1,
        ["0:unknown>up", "2:up>down:connect_timeout"],
        ("down", 1, "dns_servfail"),
        ["1:http", "3:dns"],
        id="not-up-while-another-probe-fails",
    ),
    pytest.param(
        "h+ h- h- d- h+ d+",
        1,
        ["0:unknown>up", "2:up>down:connect_timeout", "5:down>up"],
        ("up", 5, None),
        ["1:http", "3:dns"],
        id="up-when-no-probe-fails",
    ),
    # --- vantage loss ---
    pytest.param(
        "h+ lost", 1, ["0:unknown>up", "1:up>unknown"], ("unknown", 1, None), [], id="blind"
    ),
    pytest.param(
        "h+ lost h- h- h-",
        1,
        ["0:unknown>up", "1:up>unknown"],
        ("unknown", 1, None),
        [],
        id="blind-failures-confirm-nothing-and-ask-no-reprobe",
    ),
    pytest.param(
        "h+ lost h- h- back",
        1,
        ["0:unknown>up", "1:up>unknown"],
        ("unknown", 1, None),
        ["4:http"],
        id="back-failing-must-be-reconfirmed",
    ),
    pytest.param(
        "h+ lost h- h- back h- h-",
        1,
        ["0:unknown>up", "1:up>unknown", "6:unknown>down:connect_timeout"],
        ("down", 5, "connect_timeout"),
        ["4:http", "5:http"],
        id="back-reconfirmed-by-fresh-failures",
    ),
    pytest.param(
        "h+ lost h- back h-",
        0,
        ["0:unknown>up", "1:up>unknown", "4:unknown>down:connect_timeout"],
        ("down", 4, "connect_timeout"),
        ["3:http"],
        id="confirm0-back-one-fresh-failure",
    ),
    pytest.param(
        "h+ lost h- h+ back",
        1,
        ["0:unknown>up", "1:up>unknown", "4:unknown>up"],
        ("up", 4, None),
        [],
        id="back-healthy-is-up",
    ),
    pytest.param(
        "h+ h- h- lost back h+",
        1,
        [
            "0:unknown>up",
            "2:up>down:connect_timeout",
            "3:down>unknown",
            "5:unknown>up",
        ],
        ("up", 5, None),
        ["1:http", "4:http"],
        id="down-then-blind-then-recovered",
    ),
    pytest.param(
        "h+ lost lost back back",
        1,
        ["0:unknown>up", "1:up>unknown", "3:unknown>up"],
        ("up", 3, None),
        [],
        id="vantage-changes-are-idempotent",
    ),
    pytest.param(
        "lost back", 1, [], ("unknown", None, None), [], id="never-observed-stays-unknown"
    ),
    pytest.param(
        "h+ lost h- d- t- back",
        1,
        ["0:unknown>up", "1:up>unknown"],
        ("unknown", 1, None),
        ["5:http", "5:dns", "5:tls"],
        id="back-reprobes-every-failing-kind",
    ),
]


@pytest.mark.parametrize(("events", "confirm", "transitions", "final", "reprobes"), ROWS)
def test_reducer(
    events: str,
    confirm: int,
    transitions: list[str],
    final: tuple[str, int | None, str | None],
    reprobes: list[str],
) -> None:
    outcome = run(events, confirm)
    state, since_event, reason = final
    assert outcome.transitions == transitions
    assert outcome.status.state == state
    assert outcome.status.since == (at(since_event) if since_event is not None else None)
    assert outcome.status.reason == reason
    assert outcome.reprobes == reprobes


def test_failure_counts_and_last_results_are_kept() -> None:
    outcome = run("h+ d+ h- h- d-", 1)
    status = outcome.status
    http, dns = status.track(ProbeKind.HTTP), status.track(ProbeKind.DNS)
    assert http is not None and dns is not None and status.track(ProbeKind.TLS) is None
    assert (http.consecutive_failures, http.failing_since, http.last.started_at) == (
        2,
        at(2),
        at(3) - 1,
    )
    assert (dns.consecutive_failures, dns.failing_since, dns.observed_at) == (1, at(4), at(4))
    assert status.consecutive_failures == 2
    assert status.failing == (ProbeKind.HTTP, ProbeKind.DNS)
    assert list(status.probes) == list(PROBE_PRECEDENCE[:2])
    assert status.observed_at == at(4)
    assert not status.healthy and not status.suspect


@pytest.mark.parametrize(
    ("events", "suspect"),
    [("h+", False), ("h+ h-", True), ("h- ", True), ("h+ h- h-", False), ("h+ h- lost", False)],
)
def test_suspect(events: str, suspect: bool) -> None:
    assert run(events).status.suspect is suspect


def test_observations_survive_blindness() -> None:
    before = run("h+ d+ h-").status
    blinded = with_vantage(before, False, at(3), OutageSettings()).status
    assert blinded.state is TargetState.UNKNOWN and blinded.blind
    assert blinded.probes == before.probes


def test_an_older_result_arriving_late_is_ignored() -> None:
    settings = OutageSettings()
    status = observe(
        initial_status("a"), result(ProbeKind.HTTP, None, T0 + 5), T0 + 6, settings
    ).status
    late = observe(status, result(ProbeKind.HTTP, Reason.HTTP_TIMEOUT, T0), T0 + 7, settings)
    assert late == Step(status)


def test_the_transition_table_is_total() -> None:
    assert set(TRANSITIONS) == set(itertools.product(TargetState, Evidence))
    # Only a confirmed failure leads to DOWN, only healthy observations to UP.
    for (state, evidence), new in TRANSITIONS.items():
        if new is TargetState.DOWN and state is not TargetState.DOWN:
            assert evidence is Evidence.CONFIRMED
        if new is TargetState.UP and state is not TargetState.UP:
            assert evidence is Evidence.HEALTHY


# (results before the window, results during it, state at its end, re-probed kinds)
MAINTENANCE_ROWS = [
    pytest.param([None], [None], TargetState.UP, (), id="healthy-is-up-at-once"),
    pytest.param([None], [Reason.HTTP_TIMEOUT] * 3, TargetState.UNKNOWN, (ProbeKind.HTTP,),
                 id="failing-in-the-window-must-be-confirmed-afresh"),
    pytest.param([Reason.HTTP_TIMEOUT] * 2, [Reason.HTTP_TIMEOUT], TargetState.UNKNOWN,
                 (ProbeKind.HTTP,), id="down-before-must-be-confirmed-afresh"),
    pytest.param([Reason.HTTP_TIMEOUT] * 2, [None], TargetState.UP, (),
                 id="down-before-recovered-in-the-window"),
    pytest.param([], [], TargetState.UNKNOWN, (), id="never-observed"),
]  # fmt: skip


@pytest.mark.parametrize(("before", "during", "after", "reprobed"), MAINTENANCE_ROWS)
def test_maintenance_is_blindness_that_the_window_ends(
    before: list[Reason | None],
    during: list[Reason | None],
    after: TargetState,
    reprobed: tuple[ProbeKind, ...],
) -> None:
    settings = OutageSettings()
    status, i = initial_status("a"), 0
    for reason in before:
        status, i = (
            observe(status, result(ProbeKind.HTTP, reason, at(i) - 1), at(i), settings).status,
            i + 1,
        )
    entered = with_maintenance(status, True, at(i), settings)
    assert entered.status.maintenance and entered.status.state is TargetState.UNKNOWN
    assert with_maintenance(entered.status, True, at(i), settings).status is entered.status
    status = entered.status
    for reason in during:
        i += 1
        step = observe(status, result(ProbeKind.HTTP, reason, at(i) - 1), at(i), settings)
        assert step.status.state is TargetState.UNKNOWN and step.reprobes == ()
        assert not step.status.suspect
        status = step.status
    left = with_maintenance(status, False, at(i + 1), settings)
    assert not left.status.maintenance and left.status.state is after
    assert tuple(r.kind for r in left.reprobes) == reprobed
    assert left.status.consecutive_failures == 0
