"""Outage detection and incidents, driven through the real reducer.

`Sim` plays the daemon's part: it feeds ProbeResults to the pure core
(`monitor.core.step`) and ticks it, as the daemon does; each tick's conclusions
are checked against the outage rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import pytest

from monitor.core import initial_world
from monitor.outage import (
    HintKind,
    Incident,
    InfraHint,
    Scope,
    TargetInfra,
    address_prefix,
    dominant_reason,
    shared_infrastructure,
)
from monitor.settings import Canary, OutageSettings
from monitor.state import TargetState
from probes.results import ProbeKind, ProbeResult, Reason
from tests.unit.judge import CoreSim, Judged, catalogue

T0 = 1_700_000_000.0
TIMEOUT = Reason.CONNECT_TIMEOUT


class Sim:
    """Results and ticks fed to the core, as the daemon feeds them."""

    def __init__(
        self,
        countries: Mapping[str, int],
        canaries: int = 2,
        settings: OutageSettings | None = None,
        infra: Mapping[str, TargetInfra] | None = None,
    ) -> None:
        self.settings = settings or OutageSettings()
        self.targets = catalogue(countries)
        self.canaries = tuple(
            Canary(name=f"canary{i}", url=f"https://canary{i}.test/") for i in range(canaries)
        )
        self.core = CoreSim(self.targets, self.canaries, self.settings, infra=infra)

    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def canary_names(self) -> list[str]:
        return [c.name for c in self.canaries]

    def restart(self, incidents: Iterable[Incident]) -> None:
        """A daemon restarted with these incidents open in its history."""
        self.core.world = initial_world(
            self.targets, self.canaries, self.settings, 30.0, open_incidents=incidents
        )

    def probe(
        self,
        names: Iterable[str],
        now: float,
        reason: Reason | None = None,
        kind: ProbeKind = ProbeKind.HTTP,
    ) -> None:
        for name in names:
            result = ProbeResult(
                kind=kind, ok=reason is None, reason=reason, duration_s=0.1, started_at=now - 0.1
            )
            self.core.result(name, result, now)

    def fail(self, names: Iterable[str], now: float, reason: Reason = TIMEOUT) -> None:
        """A failure and its confirming re-probe (now, now + 2)."""
        names = list(names)
        for i in range(self.settings.confirm_reprobes + 1):
            self.probe(names, now + 2 * i, reason)

    def assess(self, now: float) -> Judged:
        return self.core.tick(now)

    def healthy_start(self) -> Judged:
        self.probe(self.names() + self.canary_names(), T0)
        return self.assess(T0)


def keys(incidents: Iterable[Incident]) -> list[str]:
    return sorted(f"{i.scope}:{i.key}" for i in incidents)


# --- the rules --------------------------------------------------------------

# (countries, failing targets, countries in outage, region outage, incidents opened)
RULE_ROWS = [
    pytest.param(
        {"AL": 4, "XK": 2}, ["al1"], [], False, ["target:al1"], id="one-site-down-no-country"
    ),
    pytest.param(
        {"AL": 4, "XK": 2, "RS": 20},
        ["xk1", "xk2"],
        ["XK"],
        False,
        ["country:XK", "target:xk1", "target:xk2"],
        id="country-with-2-targets-all-down",
    ),
    pytest.param(
        {"AL": 4, "XK": 2}, ["xk1"], [], False, ["target:xk1"], id="half-of-a-2-target-country"
    ),
    pytest.param(
        {"AL": 4, "RS": 20},
        ["al1", "al2"],
        [],
        False,
        ["target:al1", "target:al2"],
        id="half-but-only-2",
    ),
    pytest.param(
        {"AL": 4, "RS": 20},
        ["al1", "al2", "al3"],
        ["AL"],
        False,
        ["country:AL", "target:al1", "target:al2", "target:al3"],
        id="3-of-4",
    ),
    pytest.param(
        {"AL": 8, "RS": 20},
        ["al1", "al2", "al3"],
        [],
        False,
        ["target:al1", "target:al2", "target:al3"],
        id="3-of-8-below-half",
    ),
    pytest.param(
        {"AL": 8, "RS": 20},
        ["al1", "al2", "al3", "al4"],
        ["AL"],
        False,
        ["country:AL", "target:al1", "target:al2", "target:al3", "target:al4"],
        id="4-of-8",
    ),
    pytest.param(
        {"AL": 3, "XK": 2, "RS": 10, "HR": 10},
        ["al1", "al2", "al3", "xk1", "xk2"],
        ["AL", "XK"],
        True,
        ["country:AL", "country:XK", "region:region"]
        + [f"target:{n}" for n in ("al1", "al2", "al3", "xk1", "xk2")],
        id="2-countries-region",
    ),
    pytest.param(
        {"AL": 4, "XK": 4, "RS": 4, "HR": 4, "ME": 4},
        ["al1", "al2", "xk1", "xk2", "rs1", "rs2"],
        [],
        True,
        ["region:region"] + [f"target:{n}" for n in ("al1", "al2", "rs1", "rs2", "xk1", "xk2")],
        id="30pc-of-targets-region",
    ),
    pytest.param(
        {"AL": 4, "XK": 4, "RS": 4, "HR": 4, "ME": 4},
        ["al1", "al2", "xk1", "xk2", "rs1"],
        [],
        False,
        [f"target:{n}" for n in ("al1", "al2", "rs1", "xk1", "xk2")],
        id="25pc-no-region",
    ),
]


@pytest.mark.parametrize(("countries", "failing", "in_outage", "region", "opened"), RULE_ROWS)
def test_outage_rules(
    countries: dict[str, int],
    failing: list[str],
    in_outage: list[str],
    region: bool,
    opened: list[str],
) -> None:
    sim = Sim(countries)
    sim.healthy_start()
    sim.fail(failing, T0 + 10)
    sim.probe(sim.canary_names(), T0 + 20)  # the monitor is online after the failures
    a = sim.assess(T0 + 20)
    assert a.vantage_up and not a.vantage_check_wanted
    assert list(a.countries_in_outage) == in_outage
    assert a.region_outage is region
    assert keys(a.opened) == opened
    assert keys(a.incidents) == opened and a.closed == () and a.updated == ()
    for name in failing:
        assert a.states[name] is TargetState.DOWN
    by_country = {c.country: c for c in a.countries}
    for country, total in countries.items():
        down = sum(n.startswith(country.lower()) for n in failing)
        summary = by_country[country]
        assert (summary.up, summary.down, summary.unknown, summary.total) == (
            total - down,
            down,
            0,
            total,
        )
        assert summary.availability == pytest.approx((total - down) / total)


# (settings, countries, failing targets, countries in outage, region outage)
CUSTOM_RULE_ROWS = [
    pytest.param(
        OutageSettings(country_min_ratio=0.25, country_min_targets=1),
        {"AL": 4, "RS": 20},
        ["al1"],
        ["AL"],
        False,
        id="country-quarter-and-1",
    ),
    pytest.param(
        OutageSettings(region_min_countries=1),
        {"XK": 2, "RS": 20},
        ["xk1", "xk2"],
        ["XK"],
        True,
        id="region-on-1-country",
    ),
    pytest.param(
        OutageSettings(region_min_ratio=0.1),
        {"AL": 10, "RS": 10},
        ["al1", "rs1"],
        [],
        True,
        id="region-10pc",
    ),
]


@pytest.mark.parametrize(
    ("settings", "countries", "failing", "in_outage", "region"), CUSTOM_RULE_ROWS
)
def test_outage_rules_follow_settings(
    settings: OutageSettings,
    countries: dict[str, int],
    failing: list[str],
    in_outage: list[str],
    region: bool,
) -> None:
    sim = Sim(countries, settings=settings)
    sim.healthy_start()
    sim.fail(failing, T0 + 10)
    sim.probe(sim.canary_names(), T0 + 20)
    a = sim.assess(T0 + 20)
    assert list(a.countries_in_outage) == in_outage and a.region_outage is region


def test_target_incident_fields() -> None:
    sim = Sim({"AL": 4})
    sim.healthy_start()
    sim.fail(["al2"], T0 + 10, Reason.DNS_NXDOMAIN)
    sim.probe(sim.canary_names(), T0 + 20)
    (incident,) = sim.assess(T0 + 25).opened
    assert incident == Incident(
        id=f"target:al2:{int(T0 + 10)}",
        scope=Scope.TARGET,
        country="AL",
        target="al2",
        started_at=T0 + 10,  # the first failure, not the confirmation
        ended_at=None,
        affected=("al2",),
        dominant_reason=Reason.DNS_NXDOMAIN,
        hints=(),
    )
    assert incident.is_open and incident.hint_text is None


def test_recovery_closes_incidents_with_their_end() -> None:
    sim = Sim({"XK": 2, "AL": 4, "RS": 20})
    sim.healthy_start()
    sim.fail(["xk1", "xk2"], T0 + 10)
    sim.probe(sim.canary_names(), T0 + 20)
    first = sim.assess(T0 + 20)
    country = next(i for i in first.opened if i.scope is Scope.COUNTRY)
    assert country.started_at == T0 + 20

    sim.probe(["xk1"], T0 + 40)
    second = sim.assess(T0 + 40)
    assert keys(second.closed) == ["country:XK", "target:xk1"]
    assert {i.ended_at for i in second.closed} == {T0 + 40}
    closed_country = next(i for i in second.closed if i.scope is Scope.COUNTRY)
    # The same incident, now with its end.
    assert closed_country == replace(country, ended_at=T0 + 40)
    assert keys(second.incidents) == ["target:xk2"] and second.opened == ()
    assert second.countries_in_outage == ()

    sim.probe(["xk2"], T0 + 50)
    third = sim.assess(T0 + 50)
    assert keys(third.closed) == ["target:xk2"] and third.incidents == ()
    assert {c.availability for c in third.countries} == {1.0}


def test_growing_outage_keeps_id_and_start() -> None:
    sim = Sim({"AL": 5, "RS": 20})
    sim.healthy_start()
    sim.fail(["al1", "al2", "al3"], T0 + 10, Reason.DNS_SERVFAIL)
    sim.probe(sim.canary_names(), T0 + 20)
    (country,) = [i for i in sim.assess(T0 + 20).opened if i.scope is Scope.COUNTRY]
    assert country.affected == ("al1", "al2", "al3")

    sim.fail(["al4", "al5"], T0 + 30, Reason.CONNECT_REFUSED)
    sim.probe(sim.canary_names(), T0 + 40)
    a = sim.assess(T0 + 40)
    (grown,) = [i for i in a.updated if i.scope is Scope.COUNTRY]
    assert (grown.id, grown.started_at) == (country.id, country.started_at)
    assert grown.affected == ("al1", "al2", "al3", "al4", "al5")
    assert grown.dominant_reason is Reason.DNS_SERVFAIL  # 3 against 2
    assert grown in a.incidents and keys(a.opened) == ["target:al4", "target:al5"]

    # al5 recovers: 4 of 5 still down, the incident goes on and remembers al5.
    sim.probe(["al5"], T0 + 50)
    b = sim.assess(T0 + 50)
    assert grown in b.incidents and b.updated == () and keys(b.closed) == ["target:al5"]

    # al1..al3 recover: 1 of 5 down -> closed; affected keeps everyone.
    sim.probe(["al1", "al2", "al3"], T0 + 60)
    c = sim.assess(T0 + 60)
    (ended,) = [i for i in c.closed if i.scope is Scope.COUNTRY]
    assert ended.id == country.id and ended.affected == grown.affected


def test_unverified_failures_wait_for_the_canaries() -> None:
    sim = Sim({"XK": 2, "RS": 20})
    sim.healthy_start()  # canaries last seen healthy at T0
    sim.fail(["xk1", "xk2"], T0 + 10)
    a = sim.assess(T0 + 12)
    assert a.vantage_up and a.vantage_check_wanted
    assert a.states["xk1"] is TargetState.UNKNOWN and a.opened == ()
    xk = next(c for c in a.countries if c.country == "XK")
    assert (xk.unknown, xk.down, xk.availability) == (2, 0, None)

    sim.probe(sim.canary_names(), T0 + 13)
    b = sim.assess(T0 + 13)
    assert not b.vantage_check_wanted
    assert keys(b.opened) == ["country:XK", "target:xk1", "target:xk2"]


# --- the vantage --------------------------------------------------------------

# (canaries, failing canaries, canaries never probed, vantage_canary_ratio, vantage up)
VANTAGE_ROWS = [
    pytest.param(0, 0, 0, 0.5, True, id="no-canaries-always-up"),
    pytest.param(4, 1, 0, 0.5, True, id="1-of-4-failing-up"),
    pytest.param(4, 2, 0, 0.5, False, id="2-of-4-failing-down"),
    pytest.param(2, 1, 0, 0.5, False, id="1-of-2-failing-down"),
    pytest.param(3, 1, 0, 0.5, True, id="1-of-3-failing-up"),
    pytest.param(2, 0, 1, 0.5, True, id="never-probed-is-not-failing"),
    pytest.param(3, 1, 2, 0.5, True, id="never-probed-still-counted-in-the-ratio"),
    pytest.param(4, 2, 0, 0.75, True, id="ratio-0.75-2-of-4-up"),
    pytest.param(4, 3, 0, 0.75, False, id="ratio-0.75-3-of-4-down"),
]


@pytest.mark.parametrize(("canaries", "failing", "unprobed", "ratio", "vantage_up"), VANTAGE_ROWS)
def test_vantage(
    canaries: int, failing: int, unprobed: int, ratio: float, vantage_up: bool
) -> None:
    settings = OutageSettings(vantage_canary_ratio=ratio)
    sim = Sim({"AL": 3}, canaries=canaries, settings=settings)
    names = sim.canary_names()
    sim.probe(sim.names() + names[unprobed:], T0)
    sim.fail(names[unprobed : unprobed + failing], T0 + 1, Reason.NETWORK_UNREACHABLE)
    a = sim.assess(T0 + 5)
    assert a.vantage_up is vantage_up
    assert list(a.failing_canaries) == names[unprobed : unprobed + failing]
    expected = TargetState.UP if vantage_up else TargetState.UNKNOWN
    assert set(a.states.values()) == {expected}
    assert keys(a.opened) == ([] if vantage_up else ["vantage:vantage"])


def test_vantage_loss_during_a_country_outage() -> None:
    sim = Sim({"XK": 2, "AL": 4, "RS": 4}, canaries=2)
    sim.healthy_start()
    sim.fail(["xk1", "xk2"], T0 + 10)
    sim.probe(sim.canary_names(), T0 + 20)
    before = sim.assess(T0 + 20)
    assert before.countries_in_outage == ("XK",) and not before.region_outage

    # The monitor loses its link: everything fails, canaries included.
    sim.fail(sim.names() + sim.canary_names(), T0 + 30, Reason.NETWORK_UNREACHABLE)
    blind = sim.assess(T0 + 32)
    assert not blind.vantage_up
    assert set(blind.states.values()) == {TargetState.UNKNOWN}
    assert all(c.up == c.down == 0 and not c.in_outage for c in blind.countries)
    assert blind.countries_in_outage == () and not blind.region_outage
    (vantage,) = blind.opened
    assert (vantage.scope, vantage.affected, vantage.started_at) == (
        Scope.VANTAGE,
        ("canary0", "canary1"),
        T0 + 32,
    )
    assert vantage.dominant_reason is Reason.NETWORK_UNREACHABLE
    # Open incidents stay open, untouched; nothing closed, nothing new about AL or RS.
    assert set(before.incidents) < set(blind.incidents) and blind.closed == ()

    # Still blind a minute later: the same.
    sim.fail(sim.names() + sim.canary_names(), T0 + 90, Reason.NETWORK_UNREACHABLE)
    still = sim.assess(T0 + 92)
    assert still.opened == () and still.closed == () and still.incidents == blind.incidents

    # The link is back; targets' failures from the blind time must be confirmed afresh.
    sim.probe(sim.canary_names(), T0 + 100)
    back = sim.assess(T0 + 100)
    assert back.vantage_up and keys(back.closed) == ["vantage:vantage"]
    assert back.closed[0].ended_at == T0 + 100
    sim.probe(sim.canary_names(), T0 + 101)
    reconfirming = sim.assess(T0 + 101)
    assert set(reconfirming.states.values()) == {TargetState.UNKNOWN}
    assert reconfirming.opened == () and reconfirming.closed == ()
    assert reconfirming.countries_in_outage == ("XK",)  # not disproven: kept open

    # Only XK is really down.
    sim.probe([n for n in sim.names() if not n.startswith("xk")], T0 + 102)
    sim.fail(["xk1", "xk2"], T0 + 102)
    sim.probe(sim.canary_names(), T0 + 110)
    after = sim.assess(T0 + 110)
    assert after.opened == () and after.closed == ()
    assert after.countries_in_outage == ("XK",)
    assert {i.id for i in after.incidents} == {i.id for i in before.incidents}


def test_a_lost_link_never_declares_an_outage() -> None:
    """The race: targets are confirmed down before the canaries are even probed."""
    sim = Sim({"AL": 3, "XK": 2, "RS": 5}, canaries=3)
    sim.healthy_start()
    seen: list[Judged] = []
    sim.fail(sim.names(), T0 + 30, Reason.NETWORK_UNREACHABLE)
    seen.append(sim.assess(T0 + 32))
    assert seen[-1].vantage_check_wanted
    sim.fail(sim.canary_names(), T0 + 33, Reason.NETWORK_UNREACHABLE)
    seen.append(sim.assess(T0 + 35))
    assert not seen[-1].vantage_up
    sim.fail(sim.names(), T0 + 60, Reason.NETWORK_UNREACHABLE)
    seen.append(sim.assess(T0 + 62))
    sim.probe(sim.canary_names(), T0 + 100)
    seen.append(sim.assess(T0 + 100))
    sim.probe(sim.names(), T0 + 103)
    seen.append(sim.assess(T0 + 103))
    opened = [i for a in seen for i in a.opened]
    assert keys(opened) == ["vantage:vantage"]
    assert set(seen[-1].states.values()) == {TargetState.UP} and seen[-1].incidents == ()


def test_a_fresh_dns_answer_does_not_vouch_for_a_stale_http_result() -> None:
    """The uplink is cut for web traffic only: canaries' DNS still answers, their HTTP
    results are from before the cut. They must not verify the targets' failures."""
    sim = Sim({"AL": 3, "XK": 2, "RS": 5}, canaries=3)
    sim.healthy_start()  # every probe of every canary passed at T0
    sim.probe(sim.canary_names(), T0 + 1, kind=ProbeKind.DNS)
    sim.fail(sim.names(), T0 + 30, Reason.CONNECT_TIMEOUT)
    sim.probe(sim.canary_names(), T0 + 33, kind=ProbeKind.DNS)  # DNS: still fine
    a = sim.assess(T0 + 33)
    assert a.vantage_check_wanted and a.opened == ()
    assert set(a.states.values()) == {TargetState.UNKNOWN}
    # Their HTTP answers again after the failures: now the failures are real.
    sim.probe(sim.canary_names(), T0 + 34)
    b = sim.assess(T0 + 34)
    assert not b.vantage_check_wanted
    assert "country:AL" in keys(b.opened)


def test_open_incidents_survive_a_restart_until_disproven() -> None:
    sim = Sim({"XK": 2, "AL": 4}, canaries=0)
    sim.restart(
        (
            Incident("country:XK:1", Scope.COUNTRY, "XK", None, 1.0, None, ("xk1", "xk2"), TIMEOUT),
            Incident("country:AL:1", Scope.COUNTRY, "AL", None, 1.0, None, ("al1",), TIMEOUT),
            Incident("target:gone:1", Scope.TARGET, "XK", "gone", 1.0, None, ("gone",), TIMEOUT),
            Incident("country:XK:0", Scope.COUNTRY, "XK", None, 0.0, 5.0, ("xk1",), TIMEOUT),
        )
    )
    fresh = sim.assess(T0)  # nothing observed yet
    assert keys(fresh.incidents) == ["country:AL", "country:XK"]
    assert fresh.countries_in_outage == ("AL", "XK")
    # Kept-open countries are not proof: no region outage is opened on them.
    assert fresh.opened == () and not fresh.region_outage
    assert keys(fresh.closed) == ["target:gone"]  # no longer configured
    sim.probe(sim.names(), T0 + 5)
    up = sim.assess(T0 + 5)
    assert [i.id for i in up.closed] == ["country:AL:1", "country:XK:1"] and up.incidents == ()


# --- reasons and hints ------------------------------------------------------------

R = Reason


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        ([R.DNS_SERVFAIL, R.CONNECT_TIMEOUT, R.DNS_SERVFAIL], R.DNS_SERVFAIL),
        ([R.CONNECT_TIMEOUT, R.HTTP_STATUS, R.HTTP_STATUS, None, None], R.HTTP_STATUS),
        ([R.CONNECT_TIMEOUT, R.DNS_SERVFAIL], R.DNS_SERVFAIL),  # tie: declared first
        ([R.HTTP_STATUS, R.TLS_HANDSHAKE], R.TLS_HANDSHAKE),
        ([None], None),
        ([], None),
    ],
)
def test_dominant_reason(reasons: list[Reason | None], expected: Reason | None) -> None:
    assert dominant_reason(reasons) is expected


def infra(ns: str = "", ips: str = "", issuer: str | None = None) -> TargetInfra:
    return TargetInfra.from_facts(nameservers=ns.split(), addresses=ips.split(), issuer=issuer)


AKSHI = "ns11.akshi.test ns12.akshi.test"

# (infra per affected target, expected hints as (kind, values, count, of))
HINT_ROWS = [
    pytest.param(
        [infra(AKSHI), infra(AKSHI), infra(AKSHI + " ns13.akshi.test")],
        [(HintKind.NAMESERVERS, ("ns11.akshi.test", "ns12.akshi.test"), 3, 3)],
        id="nameservers",
    ),
    pytest.param(
        [infra(ips="127.0.2.10"), infra(ips="127.0.2.99 ::1"), infra(ips="127.0.3.1"), infra()],
        [],
        id="prefix-2-of-4-not-a-majority",
    ),
    pytest.param(
        [infra(ips="127.0.2.10"), infra(ips="127.0.2.99 ::1"), infra(ips="127.0.2.1")],
        [(HintKind.ADDRESS_PREFIX, ("127.0.2.0/24",), 3, 3)],
        id="prefix",
    ),
    pytest.param(
        [infra(issuer="R3 Test CA"), infra(issuer="R3 Test CA"), infra(issuer="Other CA")],
        [(HintKind.ISSUER, ("R3 Test CA",), 2, 3)],
        id="issuer",
    ),
    pytest.param(
        [infra("a.test", "127.0.0.1", "CA 1"), infra("b.test", "127.0.1.1", "CA 2")],
        [],
        id="nothing-shared",
    ),
    pytest.param([infra(AKSHI)], [], id="single-target"),
    pytest.param([infra(), infra()], [], id="nothing-known"),
    pytest.param(
        [infra(ns) for ns in ("ns1.test", "ns1.test", "ns1.test ns2.test", "ns2.test", "ns2.test")],
        [(HintKind.NAMESERVERS, ("ns1.test",), 3, 5)],
        id="nameserver-tie-names-only-one-group",
    ),
    pytest.param(
        [infra(AKSHI, ip, "CA") for ip in ("127.0.2.1", "127.0.2.2", "127.0.9.1")],
        [
            (HintKind.NAMESERVERS, ("ns11.akshi.test", "ns12.akshi.test"), 3, 3),
            (HintKind.ISSUER, ("CA",), 3, 3),
            (HintKind.ADDRESS_PREFIX, ("127.0.2.0/24",), 2, 3),
        ],
        id="several-strongest-first",
    ),
]


@pytest.mark.parametrize(("facts", "expected"), HINT_ROWS)
def test_shared_infrastructure(
    facts: list[TargetInfra], expected: list[tuple[HintKind, tuple[str, ...], int, int]]
) -> None:
    names = [f"t{i}" for i in range(len(facts))]
    hints = shared_infrastructure(names, dict(zip(names, facts, strict=True)))
    assert [(h.kind, h.values, h.count, h.of) for h in hints] == expected


@pytest.mark.parametrize(
    ("hint", "text"),
    [
        (
            InfraHint(HintKind.NAMESERVERS, ("ns11.akshi.test", "ns12.akshi.test"), 4, 4),
            "all 4 affected targets share name servers ns11.akshi.test, ns12.akshi.test",
        ),
        (
            InfraHint(HintKind.ADDRESS_PREFIX, ("127.0.2.0/24",), 3, 5),
            "3 of 5 affected targets share address prefix 127.0.2.0/24",
        ),
        (
            InfraHint(HintKind.ISSUER, ("R3 Test CA",), 2, 3),
            "2 of 3 affected targets share certificate issuer R3 Test CA",
        ),
    ],
)
def test_hint_text(hint: InfraHint, text: str) -> None:
    assert hint.text == text


def test_country_incident_carries_hint_and_reason() -> None:
    facts = {
        "al1": infra(AKSHI, "127.0.2.1", "CA"),
        "al2": infra(AKSHI, "127.0.2.2", "Other CA"),
        "al3": infra(AKSHI, "127.0.7.2"),
        "al4": infra("ns.elsewhere.test", "127.0.2.3", "CA"),
    }
    sim = Sim({"AL": 4, "RS": 20}, infra=facts)
    sim.healthy_start()
    sim.fail(["al1", "al2", "al3"], T0 + 10, Reason.DNS_SERVFAIL)
    sim.probe(sim.canary_names(), T0 + 20)
    (country,) = [i for i in sim.assess(T0 + 20).opened if i.scope is Scope.COUNTRY]
    assert country.dominant_reason is Reason.DNS_SERVFAIL
    assert country.hint_text == (
        "all 3 affected targets share name servers ns11.akshi.test, ns12.akshi.test; "
        "2 of 3 affected targets share address prefix 127.0.2.0/24"
    )


@pytest.mark.parametrize(
    ("address", "prefix"),
    [("127.0.0.1", "127.0.0.0/24"), ("127.1.2.250", "127.1.2.0/24"), ("::1", "::/48")],
)
def test_address_prefix(address: str, prefix: str) -> None:
    assert address_prefix(address) == prefix


def test_infra_from_facts_normalises() -> None:
    facts = TargetInfra.from_facts(
        nameservers=["NS1.Akshi.TEST.", "ns1.akshi.test", "."],
        addresses=["127.0.0.1", "127.0.0.9"],
        issuer="",
    )
    assert facts == TargetInfra(frozenset({"ns1.akshi.test"}), frozenset({"127.0.0.0/24"}), None)
