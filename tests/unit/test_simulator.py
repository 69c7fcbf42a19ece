"""The simulator's pure parts: topology, fault book, scenario files and their expectations.

The scenario expectations are checked against govwatch's own reducer and outage
logic (monitor.state, monitor.outage): each step's faults become the probe
results the simulator's fault model predicts, and what the core concludes must
be what the scenario file says govwatch will conclude.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import ipaddress
import os
import time
from pathlib import Path

import pytest
import trustme

from monitor.cli import build_parser
from monitor.config import load_config
from monitor.outage import TargetInfra, dominant_reason, shared_infrastructure
from monitor.settings import Canary, OutageSettings, Target
from monitor.state import TargetState, TargetStatus, initial_status, observe
from probes.results import ProbeKind, ProbeResult, Reason
from simulator.flapping import FLAPPING_MODES, Flapper, plan_flapping, play_flapping
from simulator.region import (
    CATALOGUE_FILE,
    COUNTRY_INFRA,
    EXTRA_SITES,
    FAULT_MODES,
    HOSTING_PROVIDERS,
    LOGINS,
    MAX_PER_COUNTRY,
    RECOVER,
    SUPPORTED_COUNTRIES,
    CertVariant,
    FaultBook,
    Region,
    Scope,
    SiteFaults,
    build_region,
    catalogue,
    expected_http_reason,
    parse_mode,
)
from simulator.runner import SimulateOptions, plan_zones, render_targets
from simulator.scenarios import (
    Expectation,
    Scenario,
    ScenarioError,
    builtin_scenarios,
    check_scenario_fits,
    find_scenario,
    load_scenario,
)
from tests.unit.judge import Judged, judge

DATA = Path(__file__).parent.parent / "data" / "scenarios"
T0 = 1_700_000_000.0

# --- topology --------------------------------------------------------------------


def test_albania_shares_one_network_and_name_server_pair() -> None:
    region = build_region(["AL", "XK"], 4)
    albania = {s.host: s for s in region.sites if s.country == "AL"}
    assert list(albania) == [
        "e-albania.al.test",
        "akshi.gov.al.test",
        "kryeministria.al.test",
        "e-femijet.tirana.al.test",
    ]
    gov = region.networks["AL-gov"]
    assert gov.prefix == ipaddress.IPv4Network("127.10.1.0/24")
    assert gov.nameservers == ("ns11.akshi.al.test", "ns12.akshi.al.test")
    assert [str(albania[h].address) for h in list(albania)[:3]] == [
        "127.10.1.10",
        "127.10.1.11",
        "127.10.1.12",
    ]
    # The municipality is hosted elsewhere: it survives the state network going dark.
    tirana = albania["e-femijet.tirana.al.test"]
    assert tirana.network == "AL-own"
    assert str(tirana.address) == "127.30.1.10"
    assert region.networks["AL-own"].nameservers == ("ns1.isp.al.test", "ns2.isp.al.test")


def test_moldova_hosting_greek_login_and_canaries() -> None:
    region = build_region(["MD", "GR"], 6)
    hosted = [s.host for s in region.sites if s.network == "host.md"]
    assert hosted == ["cec.md.test", "fisc.md.test", "cert.gov.md.test"]
    assert all(
        s.address in ipaddress.IPv4Network("127.20.1.0/24")
        for s in region.sites
        if s.network == "host.md"
    )
    dependants = {s.host for s in region.dependants("login.gsis.gr.test")}
    assert dependants == {"gov.gr.test", "aade.gr.test", "efka.gov.gr.test", "ktimatologio.gr.test"}
    assert [c.host for c in region.canaries] == [
        "quad9.canary.test",
        "cloudflare.canary.test",
        "google.canary.test",
    ]
    assert all(c.address in ipaddress.IPv4Network("127.40.0.0/24") for c in region.canaries)


def test_every_address_is_loopback_and_unique() -> None:
    region = build_region(SUPPORTED_COUNTRIES, 12, vantages=("home", "abroad", "third"))
    addresses = [region.address(s, v) for s in region.sites for v in region.vantages]
    addresses += [a for v in region.vantages for a in region.nameserver_addresses(v).values()]
    addresses += [region.resolver_address(v) for v in region.vantages]
    assert all(a.is_loopback for a in addresses)
    assert len(set(addresses)) == len(addresses)
    hosts = [s.host for s in region.sites]
    assert len(set(hosts)) == len(hosts)
    assert all(h.endswith(".test") for h in hosts)


def test_a_country_can_fill_its_network_with_sites() -> None:
    """2,002 targets (13 x 154, the soak's) and up to a full /24 per country."""
    region = build_region(SUPPORTED_COUNTRIES, 154)
    assert len(region.targets) == 2002
    full = build_region(["AL"], MAX_PER_COUNTRY)
    gov = [s.address for s in full.sites if s.network == "AL-gov"]
    assert len(set(gov)) == len(gov) == MAX_PER_COUNTRY - 1  # one site is hosted on its own
    assert all(a in ipaddress.IPv4Network("127.10.1.0/24") for a in gov)
    assert not {str(a).rsplit(".", 1)[1] for a in gov} & {"0", "53", "54", "255"}
    with pytest.raises(ValueError, match=f"per_country must be 1-{MAX_PER_COUNTRY}"):
        build_region(["AL"], MAX_PER_COUNTRY + 1)


def test_vantages_see_shifted_copies_of_every_address() -> None:
    region = build_region(["SI"], 2, vantages=("home", "abroad"))
    site = region.site("gov.si.test")
    assert str(region.address(site, "home")) == "127.10.11.10"
    assert str(region.address(site, "abroad")) == "127.70.11.10"
    assert str(region.resolver_address("abroad")) == "127.113.0.1"
    with pytest.raises(LookupError, match="no vantage 'mars'"):
        region.address(site, "mars")


def test_the_sites_are_the_shipped_catalogues_plus_a_few_extras() -> None:
    shipped = load_config(CATALOGUE_FILE)
    for country, entries in catalogue().items():
        hosts = [e.host for e in entries]
        extras = [host for host, _ in EXTRA_SITES.get(country, ())]
        assert sorted(hosts) == sorted(
            [t.host for t in shipped.targets if t.country == country] + extras
        )
        assert len(set(hosts)) == len(hosts)
    assert not {host for extras in EXTRA_SITES.values() for host, _ in extras} & {
        t.host for t in shipped.targets
    }  # an extra that targets.toml lists now is no longer an extra
    # Every host the simulator's structure names is a site it can stand up.
    known = {e.host for entries in catalogue().values() for e in entries}
    named = {h for infra in COUNTRY_INFRA.values() for h in (infra.own_hosted, *infra.featured)}
    named |= {h for provider in HOSTING_PROVIDERS.values() for h in provider.sites}
    named |= {h for login in LOGINS.values() for h in (login.host, *login.users)}
    assert named - {None} <= known


def test_a_missing_catalogue_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"catalogue .*missing\.toml, which is missing"):
        catalogue(tmp_path / "missing.toml")


def test_padding_beyond_the_catalogue_and_bad_layouts() -> None:
    region = build_region(["AL"], len(catalogue()["AL"]) + 2)
    assert [s.host for s in region.targets][-2:] == [
        f"service{len(catalogue()['AL']) + 1}.gov.al.test",
        f"service{len(catalogue()['AL']) + 2}.gov.al.test",
    ]
    with pytest.raises(ValueError, match="unsupported countries ZZ"):
        build_region(["AL", "ZZ"], 2)
    with pytest.raises(ValueError, match="per_country"):
        build_region(["AL"], 0)
    with pytest.raises(ValueError, match="vantages"):
        build_region(["AL"], 2, vantages=("a", "b", "c", "d"))


@pytest.mark.parametrize(
    ("scope", "selector", "expected"),
    [
        (Scope.SITE, "akshi.gov.al.test", {"akshi.gov.al.test"}),
        (
            Scope.COUNTRY,
            "al",
            {
                "e-albania.al.test",
                "akshi.gov.al.test",
                "kryeministria.al.test",
                "e-femijet.tirana.al.test",
            },
        ),
        (
            Scope.NAMESERVER,
            "ns12.akshi.al.test",
            {"e-albania.al.test", "akshi.gov.al.test", "kryeministria.al.test"},
        ),
        (
            Scope.PREFIX,
            "127.10.1.0/24",
            {"e-albania.al.test", "akshi.gov.al.test", "kryeministria.al.test"},
        ),
        (Scope.PREFIX, "127.30.0.0/16", {"e-femijet.tirana.al.test", "mfa-ks.net.test"}),
        (Scope.NETWORK, "AL-own", {"e-femijet.tirana.al.test"}),
        (
            Scope.CANARIES,
            "*",
            {"quad9.canary.test", "cloudflare.canary.test", "google.canary.test"},
        ),
        (Scope.CANARIES, "google.canary.test", {"google.canary.test"}),
    ],
)
def test_scopes_select_the_sites_that_share_the_infrastructure(
    scope: Scope, selector: str, expected: set[str]
) -> None:
    region = build_region(["AL", "XK"], 4)
    assert {s.host for s in region.select(scope, selector)} == expected


def test_scope_all_is_every_site_and_empty_selections_are_errors() -> None:
    region = build_region(["AL", "XK"], 4)
    assert len(region.select(Scope.ALL, "*")) == 11
    for scope, selector in [
        (Scope.SITE, "nowhere.test"),
        (Scope.COUNTRY, "GR"),
        (Scope.NAMESERVER, "ns9.nowhere.test"),
        (Scope.PREFIX, "127.99.0.0/16"),
        (Scope.PREFIX, "not-a-prefix"),
        (Scope.NETWORK, "GR-gov"),
    ]:
        with pytest.raises(LookupError):
            region.select(scope, selector)


def test_mode_names_as_users_type_them() -> None:
    assert parse_mode("Wrong-Name-Cert") == "wrong_name_cert"
    assert parse_mode("dns-timeout") == "dns_drop"
    assert parse_mode("recover") == "recover"
    with pytest.raises(ValueError, match="unknown fault mode 'explode'"):
        parse_mode("explode")


# --- fault book --------------------------------------------------------------------


def test_layers_combine_and_recover_clears_them() -> None:
    faults = SiteFaults().with_mode("5xx").with_mode("expired_cert").with_mode("nxdomain")
    assert faults == SiteFaults(web="5xx", cert=CertVariant.EXPIRED, dns="nxdomain")
    assert faults.modes() == ["nxdomain", "expired_cert", "5xx"]
    assert faults.with_mode("refuse").web == "refuse"  # the same layer: replaced
    assert faults.with_mode("recover").healthy


def test_fault_book_reports_only_what_changed() -> None:
    region = build_region(["AL", "XK"], 4)
    book = FaultBook(region)
    sites, changes = book.apply(Scope.PREFIX, "127.10.1.0/24", "drop")
    assert len(sites) == 3
    assert {c.host for c in changes} == {s.host for s in sites}
    _, again = book.apply(Scope.COUNTRY, "AL", "drop")
    assert {c.host for c in again} == {"e-femijet.tirana.al.test"}
    assert {c.host for c in book.recover_all()} == {
        s.host for s in region.select(Scope.COUNTRY, "AL")
    }
    assert all(e.healthy for e in book.snapshot().values())


def test_a_failing_login_fails_the_sites_behind_it() -> None:
    region = build_region(["GR"], 6, vantages=("home", "abroad"))
    book = FaultBook(region)
    _, changes = book.apply(Scope.SITE, "login.gsis.gr.test", "blackhole", vantage="abroad")
    assert {(c.host, c.vantage) for c in changes} == {
        ("login.gsis.gr.test", "abroad"),
        *((s.host, "abroad") for s in region.dependants("login.gsis.gr.test")),
    }
    assert expected_http_reason(book.effective("gov.gr.test", "abroad")) is Reason.HTTP_STATUS
    assert expected_http_reason(book.effective("gov.gr.test", "home")) is None
    assert expected_http_reason(book.effective("primeminister.gr.test", "abroad")) is None
    # The site's own fault wins over the login's.
    book.apply(Scope.SITE, "gov.gr.test", "defaced", vantage="abroad")
    assert expected_http_reason(book.effective("gov.gr.test", "abroad")) is Reason.HTTP_CONTENT


def test_earlier_phases_win_in_the_expected_reason() -> None:
    region = build_region(["AL"], 2)
    book = FaultBook(region)
    host = "e-albania.al.test"
    book.apply(Scope.SITE, host, "5xx")
    book.apply(Scope.SITE, host, "expired_cert")
    assert expected_http_reason(book.effective(host, "home")) is Reason.TLS_CERT_EXPIRED
    book.apply(Scope.SITE, host, "servfail")
    assert expected_http_reason(book.effective(host, "home")) is Reason.DNS_SERVFAIL
    with pytest.raises(LookupError):
        book.apply(Scope.SITE, host, "drop", vantage="mars")
    with pytest.raises(ValueError):
        book.apply(Scope.SITE, host, "explode")


def test_zones_hold_every_site_and_name_server() -> None:
    region = build_region(["SI", "AL"], 6)
    plans = {str(p.origin): p for p in plan_zones(region)}
    assert {f"{s.host}." for s in region.sites} <= set(plans)
    # ns1.gov.si.test lives in the site zone gov.si.test; ns11.akshi.al.test in its own zone.
    assert "ns1.gov.si.test" in plans["gov.si.test."].glue
    assert set(plans["akshi.al.test."].glue) == {"ns11.akshi.al.test", "ns12.akshi.al.test"}
    assert plans["e-albania.al.test."].nameservers == ("ns11.akshi.al.test", "ns12.akshi.al.test")


def test_rendered_targets_file_is_valid_config(tmp_path: Path) -> None:
    from monitor.config import parse_config

    region = build_region(["AL", "XK"], 3, vantages=("home", "abroad"))
    # The config loads both files, so they must be real: a CA and a DS record.
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    shipped = importlib.resources.files("probes.data").joinpath("root-anchors.zone")
    (tmp_path / "trust-anchors.txt").write_text(shipped.read_text())
    text = render_targets(region, "abroad", web_port=4443, dns_port=5353)
    config = parse_config(text, tmp_path / "targets-abroad.toml")
    assert [t.name for t in config.targets] == [s.host for s in region.targets]
    assert config.targets[0].url == "https://e-albania.al.test:4443/"
    assert config.targets[0].expect_text == "e-albania.al"  # the page shows the real host
    assert [str(r) for r in config.monitor.resolvers] == ["127.113.0.1:5353"]
    assert config.monitor.authoritative_port == 5353
    assert len(config.canaries) == 3


# --- scenario files ----------------------------------------------------------------


def test_there_is_a_scenario_per_required_event() -> None:
    assert set(builtin_scenarios()) >= {
        "albania-2022",
        "montenegro-2022",
        "greece-2022",
        "slovenia-2024",
        "bulgaria-2018",
        "moldova-2025",
        "monitor-offline",
    }


@pytest.mark.parametrize("path", sorted(DATA.glob("invalid-*.toml")), ids=lambda p: p.stem)
def test_invalid_scenario_gives_exact_errors(path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    got = [str(issue).replace(f"{DATA}/", "") for issue in caught.value.issues]
    assert got == path.with_suffix(".errors").read_text().splitlines()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("x = " + "[" * 100_000, "nested"),  # tomllib alone: RecursionError
        ("a" + ".a" * 10_000 + " = 1", "dotted"),
        (b'name = "\xff"', "not UTF-8"),
        ("x = 1" + "0" * 5000, "digits"),
    ],
    ids=["nesting-100k", "dotted-10k", "not-utf8", "5000-digits"],
)
def test_a_hostile_scenario_file_is_a_scenario_error(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = tmp_path / "hostile.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ScenarioError, match=expected):
        load_scenario(path)


def test_a_scenario_path_that_is_no_regular_file_is_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # reading it would wait forever for a writer
    with pytest.raises(ScenarioError, match="not a regular file"):
        load_scenario(fifo)


def test_unknown_scenario_names_the_built_in_ones() -> None:
    with pytest.raises(ScenarioError, match="albania-2022"):
        find_scenario("atlantis-2031")


def test_scenario_that_names_missing_sites_does_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    path.write_text(
        'name = "missing"\ntitle = "t"\nincident = "i"\ncountries = ["AL"]\nduration = "60s"\n'
        '\n[[step]]\nat = "10s"\nnote = "n"\n'
        'faults = [{ scope = "site", selector = "atlantis.al.test", mode = "drop" }]\n'
    )
    scenario = load_scenario(path)
    issues = check_scenario_fits(scenario, build_region(["AL"], 4))
    assert [str(i) for i in issues] == [f"{path}:10: no simulated site 'atlantis.al.test'"]


def _assessment(
    region: Region, book: FaultBook, vantage: str
) -> tuple[Judged, dict[str, TargetInfra], dict[str, TargetStatus]]:
    """What govwatch's reducer and outage logic conclude from the predicted probe results."""
    settings = OutageSettings()
    statuses: dict[str, TargetStatus] = {}
    infra: dict[str, TargetInfra] = {}
    for site in region.sites:
        reason = expected_http_reason(book.effective(site.host, vantage))
        status = initial_status(site.host)
        # Targets first, canaries after: outages need canaries seen healthy since.
        start = T0 + (10 if site.is_canary else 0)
        for attempt in range(1 + settings.confirm_reprobes):
            now = start + attempt
            result = ProbeResult(ProbeKind.HTTP, reason is None, reason, 0.1, now)
            status = observe(status, result, now, settings).status
        statuses[site.host] = status
        network = region.networks[site.network]
        infra[site.host] = TargetInfra.from_facts(
            nameservers=network.nameservers,
            addresses=[str(region.address(site, vantage))],
            issuer=network.issuer,
        )
    targets = [
        Target(name=s.host, url=f"https://{s.host}/", country=s.country or "", sector=s.sector)
        for s in region.targets
    ]
    canaries = [Canary(name=s.host, url=f"https://{s.host}/") for s in region.canaries]
    assessment = judge(
        targets=targets,
        canaries=canaries,
        statuses=statuses,
        infra=infra,
        open_incidents=(),
        settings=settings,
        now=T0 + 20,
    )
    return assessment, infra, statuses


def _check(expectation: Expectation, region: Region, book: FaultBook, vantage: str) -> None:
    assessment, infra, statuses = _assessment(region, book, vantage)
    where = f"{expectation.summary!r} (line {expectation.line}, vantage {vantage})"
    assert assessment.vantage_up == expectation.vantage_up, where
    assert set(assessment.countries_in_outage) == expectation.country_outages, where
    assert assessment.region_outage == expectation.region_outage, where
    down = {n for n, s in assessment.states.items() if s is TargetState.DOWN}
    assert set(expectation.down) <= down, where
    assert all(assessment.states[h] is TargetState.UP for h in expectation.up), where
    if not expectation.vantage_up:
        assert all(s is TargetState.UNKNOWN for s in assessment.states.values()), where
    for country in region.countries:
        failing = sorted(s.host for s in region.targets if s.country == country and s.host in down)
        reason = dominant_reason(statuses[h].reason for h in failing)
        assert expectation.dominant_reason.get(country) == reason, (country, where)
        if country in assessment.countries_in_outage:  # hints belong to country incidents
            kinds = {str(h.kind) for h in shared_infrastructure(failing, infra)}
            assert kinds == set(expectation.shared.get(country, ())), (country, where)
    assert set(expectation.shared) <= expectation.country_outages, where


def _minimum_and_default_regions(scenario: Scenario) -> list[Region]:
    return [
        build_region(scenario.countries, scenario.per_country, scenario.vantages),
        # A bigger region must not change the conclusions (more sites, other countries).
        build_region(
            [*scenario.countries, *(c for c in ("AL", "BG", "GR") if c not in scenario.countries)],
            scenario.per_country + 2,
            scenario.vantages,
        ),
    ]


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_scenario_expectations_are_what_govwatch_concludes(name: str) -> None:
    """Every step's stated conclusion follows from its faults under govwatch's own rules."""
    scenario = load_scenario(builtin_scenarios()[name])
    for region in _minimum_and_default_regions(scenario):
        assert check_scenario_fits(scenario, region) == []
        book = FaultBook(region)
        for step in scenario.steps:
            for action in step.faults:
                book.apply(action.scope, action.selector, action.mode, action.vantage)
            assert step.expectations, f"step at line {step.line} states no conclusion"
            for vantage in scenario.vantages:
                expectation = step.expectation(vantage)
                assert expectation is not None, f"step at line {step.line}: nothing for {vantage}"
                _check(expectation, region, book, vantage)


def test_every_fault_mode_has_a_description_and_layer() -> None:
    assert {m.layer for m in FAULT_MODES.values()} == {"web", "tls", "dns"}
    assert all(m.description for m in FAULT_MODES.values())


# --- flapping --------------------------------------------------------------------------------


def test_flapping_plan_is_a_share_of_the_targets_fixed_by_the_seed() -> None:
    region = build_region(SUPPORTED_COUNTRIES, 20)
    plan = plan_flapping(region, 0.1, half_period_s=(20.0, 60.0), seed=7)
    assert plan == plan_flapping(region, 0.1, half_period_s=(20.0, 60.0), seed=7)
    assert plan != plan_flapping(region, 0.1, half_period_s=(20.0, 60.0), seed=8)
    assert len(plan) == 26  # 10 % of 260
    hosts = [f.host for f in plan]
    assert len(set(hosts)) == len(hosts)
    assert set(hosts) <= {s.host for s in region.targets}  # never a canary
    assert {f.mode for f in plan} <= set(FLAPPING_MODES)
    assert all(20.0 <= f.half_period_s <= 60.0 for f in plan)
    assert all(0.0 <= f.phase_s < 2 * f.half_period_s for f in plan)
    # Every mode it may draw fails a probe: a flapping site really goes down.
    assert all(FAULT_MODES[mode].http_reason is not None for mode in FLAPPING_MODES)
    assert {"refuse", "drop", "blackhole", "gzip_bomb", "expired_cert", "dns_drop"} <= set(
        FLAPPING_MODES
    )
    assert plan_flapping(region, 0.0) == ()
    with pytest.raises(ValueError, match="between 0 and 1"):
        plan_flapping(region, 1.5)
    with pytest.raises(ValueError, match="positive, shortest first"):
        plan_flapping(region, 0.1, half_period_s=(60.0, 20.0))


def test_a_flapping_site_is_up_then_down_for_its_half_period_in_turn() -> None:
    flapper = Flapper("e-albania.al.test", "refuse", half_period_s=10.0, phase_s=3.0)
    assert [flapper.down_at(t) for t in (0.0, 6.9, 7.0, 16.9, 17.0, 26.9, 27.0)] == [
        False, False, True, True, False, False, True,
    ]  # fmt: skip
    assert flapper.next_switch_after(0.0) == pytest.approx(7.0)
    assert flapper.next_switch_after(7.0) == pytest.approx(17.0)
    assert flapper.next_switch_after(20.0) == pytest.approx(27.0)


class _RecordingSink:
    def __init__(self) -> None:
        self.switches: list[tuple[float, str, str]] = []

    async def apply_fault(
        self, scope: Scope, selector: str, mode: str, vantage: str | None = None
    ) -> tuple[str, ...]:
        assert scope is Scope.SITE and vantage is None
        self.switches.append((time.monotonic(), selector, mode))
        return (selector,)

    async def recover_all(self) -> None:
        raise AssertionError("flapping never clears the whole region")


async def test_play_flapping_switches_each_site_on_its_own_rhythm() -> None:
    plan = (
        Flapper("a.test", "refuse", half_period_s=0.1, phase_s=0.15),  # starts down
        Flapper("b.test", "nxdomain", half_period_s=0.25, phase_s=0.0),  # starts up
    )
    sink = _RecordingSink()
    began = time.monotonic()
    player = asyncio.create_task(play_flapping(plan, sink))
    await asyncio.sleep(0.62)
    elapsed = time.monotonic() - began
    player.cancel()
    await asyncio.gather(player, return_exceptions=True)
    modes = {
        host: [mode for _, h, mode in sink.switches if h == host] for host in ("a.test", "b.test")
    }
    # Down at once, then recovered and failed in turn, each site in its own mode.
    assert modes["a.test"][:4] == ["refuse", RECOVER, "refuse", RECOVER]
    assert modes["b.test"][:2] == ["nxdomain", RECOVER]
    # a: at 0, then at 0.05 s and every 0.1 s; b: every 0.25 s (one either side: timers)
    assert abs(len(modes["a.test"]) - (2 + int((elapsed - 0.05) / 0.1))) <= 1
    assert abs(len(modes["b.test"]) - int(elapsed / 0.25)) <= 1
    b_times = [at for at, h, _ in sink.switches if h == "b.test"]
    assert b_times[1] - b_times[0] >= 0.24


def test_flapping_options_are_checked() -> None:
    with pytest.raises(ValueError, match="cannot be combined"):
        SimulateOptions(
            out_dir=Path("x"), flapping=0.1, scenario=load_scenario(builtin_scenarios()["tour"])
        )
    parser = build_parser()
    args = parser.parse_args(["simulate", "--flapping", "0.1", "--flap-period", "5s-1m"])
    assert (args.flapping, args.flap_period) == (0.1, (5.0, 60.0))
    assert parser.parse_args(["simulate", "--flap-period", "30s"]).flap_period == (30.0, 30.0)
    for bad in (["--flapping", "2"], ["--flap-period", "1m-5s"], ["--interval", "soon"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["simulate", *bad])


def test_tamper_modes_are_benign_to_the_probe_but_defacement_and_leave_a_login_working() -> None:
    tamper: tuple[str, ...] = ("rotating", "ns_change", "dnssec_strip", "cdn_rotate")
    tamper += ("dns_hijack", "serial_split", "other_ca_cert", "renewed_cert")
    assert all(FAULT_MODES[mode].http_reason is None for mode in tamper)
    assert FAULT_MODES["defaced"].http_reason is Reason.HTTP_CONTENT
    region = build_region(["GR"], 5)
    book = FaultBook(region)
    for mode in tamper:  # a login that still works lets its users in
        book.apply(Scope.SITE, "login.gsis.gr.test", mode)
    assert expected_http_reason(book.effective("gov.gr.test", "home")) is None
    book.apply(Scope.SITE, "gov.gr.test", "rotating")
    book.apply(Scope.SITE, "login.gsis.gr.test", "refuse")  # a broken login wins over rotating
    assert expected_http_reason(book.effective("gov.gr.test", "home")) is Reason.HTTP_STATUS
