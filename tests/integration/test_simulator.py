"""The simulated region, as govwatch's real probes see it.

Every fault mode is switched on a running region and probed with the real HTTP,
DNS and TLS probes through a ProbeContext built from the generated targets file,
exactly as the daemon will. Scenarios are replayed step by step and every
target is probed against what the scenario file says.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from monitor.cli import main
from monitor.config import load_config
from monitor.settings import Canary, Config, Target
from probes.context import ProbeContext, open_probe_context
from probes.dns import probe_dns
from probes.http import probe_http
from probes.results import DnsDetails, DnssecStatus, HttpDetails, ProbeResult, Reason, TlsDetails
from probes.settings import ProbeTarget
from probes.tls import probe_tls
from simulator.control import ControlServer
from simulator.flapping import plan_flapping
from simulator.region import (
    FAULT_MODES,
    LOGIN_FAILURE_STATUS,
    FaultLayer,
    Scope,
    build_region,
    expected_http_reason,
)
from simulator.runner import (
    SimulatedRegion,
    SimulateOptions,
    Timing,
    serve,
)
from simulator.scenarios import (
    PlayerStatus,
    Step,
    builtin_scenarios,
    load_scenario,
    play_scenario,
)
from tests.integration.conftest import TEST_COUNTRIES, TEST_PER_COUNTRY, TEST_TIMING, RegionFactory

pytestmark = pytest.mark.timeout(60)

AL_GOV = {"e-albania.al.test", "akshi.gov.al.test", "kryeministria.al.test"}
AL_ALL = AL_GOV | {"e-femijet.tirana.al.test"}
CANARIES = {"quad9.canary.test", "cloudflare.canary.test", "google.canary.test"}


# One region for the many fault-mode and scope tests: each leaves it recovered.
on_shared_region = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared_region(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SimulatedRegion]:
    region = build_region(TEST_COUNTRIES, TEST_PER_COUNTRY)
    out_dir = tmp_path_factory.mktemp("shared-simulation")
    async with SimulatedRegion(region, out_dir, timing=TEST_TIMING) as sim:
        yield sim


@pytest_asyncio.fixture(loop_scope="module")
async def recovered_region(shared_region: SimulatedRegion) -> AsyncIterator[SimulatedRegion]:
    await shared_region.recover_all()
    yield shared_region
    await shared_region.recover_all()


def _config(sim: SimulatedRegion, vantage: str | None = None) -> Config:
    return load_config(sim.targets_file(vantage))


def _entries(config: Config) -> list[Target | Canary]:
    return [*config.targets, *config.canaries]


def _target(config: Config, host: str) -> ProbeTarget:
    for entry in _entries(config):
        if entry.name == host:
            return entry.probe_target
    raise LookupError(host)


async def _failing(config: Config, ctx: ProbeContext) -> dict[str, Reason]:
    """Every target and canary probed over HTTP at once: the failing ones and why."""
    entries = _entries(config)
    results = await asyncio.gather(*(probe_http(e.probe_target, ctx) for e in entries))
    return {e.name: r.reason for e, r in zip(entries, results, strict=True) if r.reason}


# --- the generated files ----------------------------------------------------------------


async def test_generated_config_points_govwatch_at_the_simulator(
    simulated_region: SimulatedRegion,
) -> None:
    config = _config(simulated_region)
    assert len(config.targets) == 12 and len(config.canaries) == 3
    assert config.countries == ("AL", "MK", "XK")
    assert [str(r) for r in config.monitor.resolvers] == [f"127.53.0.1:{simulated_region.dns_port}"]
    assert config.monitor.authoritative_port == simulated_region.dns_port
    assert config.monitor.ca_file == simulated_region.ca_file
    assert config.monitor.dnssec_trust_anchors is not None
    assert config.monitor.timeout_s == 1.0
    for target in config.targets:
        assert target.url == f"https://{target.name}:{simulated_region.web_port}/"
        assert target.host.endswith(".test")
        assert target.expect_text


@on_shared_region
async def test_healthy_region_passes_every_probe_with_its_shared_infrastructure(
    recovered_region: SimulatedRegion,
) -> None:
    config = _config(recovered_region)
    region = recovered_region.region
    # 45 probes at once share one CPU with the servers: a roomy budget, correctness only.
    settings = dataclasses.replace(config.probe_settings, timeout_s=10.0)
    async with open_probe_context(settings) as ctx:
        entries = _entries(config)
        results: list[ProbeResult] = await asyncio.gather(
            *(
                probe(e.probe_target, ctx)
                for e in entries
                for probe in (probe_http, probe_dns, probe_tls)
            )
        )
    assert [(r.kind, r.reason, r.error) for r in results if not r.ok] == []
    dns_results = {e.name: results[3 * i + 1] for i, e in enumerate(entries)}
    for name, result in dns_results.items():
        site = region.site(name)
        details = result.details
        assert isinstance(details, DnsDetails)
        assert details.addresses == (str(site.address),)
        assert ipaddress.ip_address(details.addresses[0]).is_loopback
        assert details.zone == f"{name}."
        network = region.networks[site.network]
        assert set(details.nameservers) == {f"{ns}." for ns in network.nameservers}
        assert details.agree
        assert details.dnssec is not None and details.dnssec.status is DnssecStatus.SECURE
    http, tls = results[0].details, results[2].details
    assert isinstance(http, HttpDetails) and http.status_code == 200
    assert isinstance(tls, TlsDetails) and tls.verified and tls.hostname_match
    assert 89 < (tls.leaf_expiry - time.time()) / 86_400 <= 90
    assert "AKSHI CA" in tls.issuer  # e-albania's issuer: its network's intermediate


# --- every fault mode, as the probes see it ------------------------------------------------


def _expected(mode: str) -> dict[str, Reason | None]:
    """What each probe reports for `mode` on a site."""
    fault = FAULT_MODES[mode]
    early = fault.layer in (FaultLayer.DNS, FaultLayer.TLS) or mode in (
        "refuse",
        "drop",
        "blackhole",
    )
    return {
        "http": fault.http_reason,
        "dns": fault.http_reason if fault.layer is FaultLayer.DNS else None,
        "tls": fault.http_reason if early else None,
    }


@on_shared_region
@pytest.mark.parametrize("mode", list(FAULT_MODES))
async def test_fault_mode_as_the_probes_see_it(
    recovered_region: SimulatedRegion, mode: str
) -> None:
    config = _config(recovered_region)
    victim, neighbour = "akshi.gov.al.test", "e-albania.al.test"  # same network, same NS
    async with open_probe_context(config.probe_settings) as ctx:

        async def observe(host: str) -> dict[str, ProbeResult]:
            target = _target(config, host)
            http, dns, tls = await asyncio.gather(
                probe_http(target, ctx), probe_dns(target, ctx), probe_tls(target, ctx)
            )
            return {"http": http, "dns": dns, "tls": tls}

        affected = await recovered_region.apply_fault(Scope.SITE, victim, mode)
        assert affected == (victim,)
        seen = await observe(victim)
        assert {kind: r.reason for kind, r in seen.items()} == _expected(mode)
        assert all(r.ok for r in (await observe(neighbour)).values())
        if mode == "5xx":
            assert isinstance(seen["http"].details, HttpDetails)
            assert seen["http"].details.status_code == 503
        if mode == "expiring_cert":  # not a failure: days left for an expiry alert
            details = seen["tls"].details
            assert isinstance(details, TlsDetails)
            assert 4 < (details.leaf_expiry - time.time()) / 86_400 <= 5
        if mode == "truncate":  # not a failure: the resolver retried over TCP
            details = seen["dns"].details
            assert isinstance(details, DnsDetails) and details.resolvers[0].over_tcp

        await recovered_region.apply_fault(Scope.SITE, victim, "recover")
        assert all(r.ok for r in (await observe(victim)).values())


# --- scopes ---------------------------------------------------------------------------------


@on_shared_region
@pytest.mark.parametrize(
    ("scope", "selector", "expected"),
    [
        (Scope.COUNTRY, "AL", AL_ALL),
        (Scope.NAMESERVER, "ns11.akshi.al.test", AL_GOV),
        (Scope.PREFIX, "127.10.1.0/24", AL_GOV),
        (Scope.NETWORK, "AL-own", {"e-femijet.tirana.al.test"}),
        (Scope.CANARIES, "*", CANARIES),
    ],
)
async def test_scoped_fault_hits_exactly_the_sites_sharing_it(
    recovered_region: SimulatedRegion, scope: Scope, selector: str, expected: set[str]
) -> None:
    config = _config(recovered_region)
    async with open_probe_context(config.probe_settings) as ctx:
        await recovered_region.apply_fault(scope, selector, "refuse")
        assert await _failing(config, ctx) == dict.fromkeys(expected, Reason.CONNECT_REFUSED)
        await recovered_region.apply_fault(scope, selector, "nxdomain")  # a second layer
        assert await _failing(config, ctx) == dict.fromkeys(expected, Reason.DNS_NXDOMAIN)
        await recovered_region.recover_all()
        assert await _failing(config, ctx) == {}


@on_shared_region
async def test_the_monitor_losing_its_uplink_fails_everything(
    recovered_region: SimulatedRegion,
) -> None:
    config = _config(recovered_region)
    async with open_probe_context(config.probe_settings) as ctx:
        await recovered_region.apply_fault(Scope.ALL, "*", "servfail")
        failing = await _failing(config, ctx)
    assert set(failing) == {t.name for t in config.targets} | CANARIES
    assert set(failing.values()) == {Reason.DNS_SERVFAIL}


async def test_a_fault_from_one_vantage_is_invisible_from_the_other(
    make_simulated_region: RegionFactory,
) -> None:
    async with make_simulated_region(
        countries=("AL",), per_country=2, vantages=("home", "abroad"), dnssec=False
    ) as sim:
        home, abroad = _config(sim, "home"), _config(sim, "abroad")
        assert sim.targets_file("abroad").name == "targets-abroad.toml"
        await sim.apply_fault(Scope.COUNTRY, "AL", "refuse", vantage="abroad")
        async with open_probe_context(home.probe_settings) as ctx:
            assert await _failing(home, ctx) == {}
            dns = await probe_dns(_target(home, "e-albania.al.test"), ctx)
        async with open_probe_context(abroad.probe_settings) as ctx:
            failing = await _failing(abroad, ctx)
            dns_abroad = await probe_dns(_target(abroad, "e-albania.al.test"), ctx)
    assert failing == dict.fromkeys(
        ["e-albania.al.test", "akshi.gov.al.test"], Reason.CONNECT_REFUSED
    )
    assert isinstance(dns.details, DnsDetails) and isinstance(dns_abroad.details, DnsDetails)
    assert dns.details.addresses == ("127.10.1.10",)
    assert dns_abroad.details.addresses == ("127.70.1.10",)


async def test_a_failing_login_takes_the_services_behind_it_down(
    make_simulated_region: RegionFactory,
) -> None:
    async with make_simulated_region(countries=("GR",), per_country=6, dnssec=False) as sim:
        config = _config(sim)
        async with open_probe_context(config.probe_settings) as ctx:
            await sim.apply_fault(Scope.SITE, "login.gsis.gr.test", "refuse")
            failing = await _failing(config, ctx)
            behind = await probe_http(_target(config, "gov.gr.test"), ctx)
            await sim.apply_fault(Scope.SITE, "login.gsis.gr.test", "recover")
            recovered = await _failing(config, ctx)
    assert failing == {
        "login.gsis.gr.test": Reason.CONNECT_REFUSED,
        "gov.gr.test": Reason.HTTP_STATUS,
        "aade.gr.test": Reason.HTTP_STATUS,
        "efka.gov.gr.test": Reason.HTTP_STATUS,
        "ktimatologio.gr.test": Reason.HTTP_STATUS,
    }
    assert isinstance(behind.details, HttpDetails)
    assert behind.details.status_code == LOGIN_FAILURE_STATUS
    assert recovered == {}


# --- scenarios, replayed against real probes ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
async def test_scenario_steps_are_what_the_probes_see(
    make_simulated_region: RegionFactory, name: str
) -> None:
    """Each step's faults, applied for real: the named targets fail as the fault model says.

    tests/unit/test_simulator.py shows that the model's predictions lead govwatch's
    outage logic to each stated conclusion; here the predictions meet real probes.
    Only the targets a step names (and the canaries) are probed, a few at a time,
    so that a loaded machine does not turn healthy probes into timeouts.
    """
    scenario = load_scenario(builtin_scenarios()[name])
    timing = Timing(interval="5s", timeout="500ms")
    async with make_simulated_region(
        countries=scenario.countries,
        per_country=scenario.per_country,
        vantages=scenario.vantages,
        dnssec=False,
        timing=timing,
    ) as sim:
        configs = {v: _config(sim, v) for v in scenario.vantages}
        for step in scenario.steps:
            for action in step.faults:
                await sim.apply_fault(action.scope, action.selector, action.mode, action.vantage)
            for vantage, config in configs.items():
                expectation = step.expectation(vantage)
                assert expectation is not None
                hosts = [*expectation.down, *expectation.up, *sorted(CANARIES)]
                async with open_probe_context(config.probe_settings) as ctx:
                    seen = await _probe_reasons(config, ctx, hosts)
                predicted = {
                    h: expected_http_reason(sim.faults.effective(h, vantage)) for h in hosts
                }
                where = f"{name} line {expectation.line} ({vantage})"
                assert seen == predicted, where
                assert all(seen[h] is not None for h in expectation.down), where
                assert all(seen[h] is None for h in expectation.up), where
                failing_canaries = sum(seen[h] is not None for h in CANARIES)
                assert (failing_canaries < 2) == expectation.vantage_up, where


async def _probe_reasons(
    config: Config, ctx: ProbeContext, hosts: list[str]
) -> dict[str, Reason | None]:
    """probe_http of each host, four at a time."""
    slots = asyncio.Semaphore(4)

    async def one(host: str) -> Reason | None:
        async with slots:
            return (await probe_http(_target(config, host), ctx)).reason

    reasons = await asyncio.gather(*(one(h) for h in hosts))
    return dict(zip(hosts, reasons, strict=True))


async def test_play_scenario_applies_steps_in_time_and_starts_each_pass_recovered(
    simulated_region: SimulatedRegion, tmp_path: Path
) -> None:
    path = tmp_path / "quick.toml"
    path.write_text(
        'name = "quick"\ntitle = "t"\nincident = "i"\ncountries = ["AL"]\nduration = "3s"\n'
        '[[step]]\nat = "1s"\nnote = "AL goes dark"\n'
        'faults = [{ scope = "country", selector = "AL", mode = "refuse" }]\n'
        '[[step]]\nat = "2s"\nnote = "one comes back"\n'
        'faults = [{ scope = "site", selector = "e-albania.al.test", mode = "recover" }]\n'
    )
    scenario = load_scenario(path)
    await simulated_region.apply_fault(Scope.COUNTRY, "XK", "refuse")  # cleared by the pass
    seen: list[tuple[int, int, float, set[str]]] = []
    four_steps = asyncio.Event()
    began = time.monotonic()

    def on_step(status: PlayerStatus, step: Step) -> None:
        faulty = {h for (h, _), e in simulated_region.faults.snapshot().items() if not e.healthy}
        seen.append((status.pass_number, status.step_index, time.monotonic() - began, faulty))
        if len(seen) == 4:
            four_steps.set()

    speed = 10.0
    player = asyncio.create_task(
        play_scenario(scenario, simulated_region, loop=True, speed=speed, on_step=on_step)
    )
    await asyncio.wait_for(four_steps.wait(), 10)
    player.cancel()
    await asyncio.gather(player, return_exceptions=True)
    assert [(p, i) for p, i, _, _ in seen] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert seen[0][3] == AL_ALL  # XK was recovered when the pass began
    assert seen[1][3] == AL_ALL - {"e-albania.al.test"}
    assert seen[2][3] == AL_ALL  # the second pass started over
    assert seen[0][2] >= 1 / speed and seen[2][2] >= (3 + 1) / speed


# --- control API and CLI ---------------------------------------------------------------------


async def test_control_api_sets_and_clears_faults(
    simulated_region: SimulatedRegion, simulator_control: ControlServer
) -> None:
    config = _config(simulated_region)
    url = simulator_control.url
    async with aiohttp.ClientSession() as http, open_probe_context(config.probe_settings) as ctx:
        async with http.get(f"{url}/api/sites") as response:
            sites = await response.json()
        assert len(sites) == 15
        assert {s["host"] for s in sites if s["country"] == "AL"} == AL_ALL
        body = {"scope": "nameserver", "selector": "ns12.akshi.al.test", "mode": "dns-timeout"}
        async with http.post(f"{url}/api/fault", json=body) as response:
            assert response.status == 200
            assert set((await response.json())["sites"]) == AL_GOV
        assert await _failing(config, ctx) == dict.fromkeys(AL_GOV, Reason.DNS_TIMEOUT)
        async with http.get(f"{url}/api/sites") as response:
            rows = {s["host"]: s for s in await response.json()}
        assert rows["akshi.gov.al.test"]["faults"] == {"home": ["dns_drop"]}
        async with http.post(f"{url}/api/recover", json={}) as response:
            assert response.status == 200
        assert await _failing(config, ctx) == {}
        for bad, message in [
            ({"scope": "planet", "selector": "AL", "mode": "drop"}, "unknown scope 'planet'"),
            ({"scope": "country", "selector": "AL", "mode": "explode"}, "unknown fault mode"),
            ({"scope": "country", "selector": "GR", "mode": "drop"}, "matches no simulated"),
            ({"scope": "country", "mode": "drop"}, "missing selector"),
            (
                {"scope": "country", "selector": "AL", "mode": "drop", "vantage": "mars"},
                "no vantage 'mars'",
            ),
        ]:
            async with http.post(f"{url}/api/fault", json=bad) as response:
                assert response.status == 400
                assert message in (await response.json())["error"]
        async with http.get(f"{url}/api/region") as response:
            region = await response.json()
        assert region["networks"]["AL-gov"]["prefix"] == "127.10.1.0/24"
        assert "ns11.akshi.al.test" in region["scopes"]["nameserver"]


async def test_fault_cli_drives_the_control_api(
    simulated_region: SimulatedRegion,
    simulator_control: ControlServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = simulator_control.url
    # The CLI blocks; run it in a thread so this loop keeps serving the API.
    code = await asyncio.to_thread(
        main, ["simulate", "fault", "country", "XK", "expired-cert", "--control", url]
    )
    assert code == 0
    assert "expired_cert on country XK: 4 sites" in capsys.readouterr().out
    config = _config(simulated_region)
    async with open_probe_context(config.probe_settings) as ctx:
        failing = await _failing(config, ctx)
        assert set(failing.values()) == {Reason.TLS_CERT_EXPIRED} and len(failing) == 4
        code = await asyncio.to_thread(main, ["simulate", "recover", "--control", url])
        assert code == 0
        assert await _failing(config, ctx) == {}
    code = await asyncio.to_thread(
        main, ["simulate", "fault", "site", "nowhere.test", "refuse", "--control", url]
    )
    assert code == 1
    assert "no simulated site 'nowhere.test'" in capsys.readouterr().err


def test_fault_cli_without_a_simulator_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "fault", "country", "AL", "drop", "--control", "http://127.0.0.1:9"])
    assert code == 1
    assert "cannot reach the simulator's control API" in capsys.readouterr().err


def test_scenarios_cli_lists_every_scenario_with_its_conclusion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "scenarios"]) == 0
    out = capsys.readouterr().out
    for name in builtin_scenarios():
        assert f"{name}: " in out
    assert "expect: AL country outage" in out
    assert "govwatch_vantage_up 0" in out


async def test_serve_runs_a_scenario_to_its_end_and_cleans_up(tmp_path: Path) -> None:
    scenario = load_scenario(builtin_scenarios()["bulgaria-2018"])
    lines: list[str] = []
    options = SimulateOptions(
        out_dir=tmp_path / "out",
        countries=("BG",),
        per_country=4,
        scenario=scenario,
        speed=200.0,  # 110 s of timeline in about half a second
        control=("127.0.0.1", 0),
        dnssec=False,
        timing=TEST_TIMING,
    )
    await asyncio.wait_for(serve(options, stop=asyncio.Event(), out=lines.append), 10)
    text = "\n".join(lines)
    assert "govwatch simulator: 2 countries (BG, GR)" in text
    assert "[pass 1 step 1] the register's storage fails" in text
    assert "expect one target (brra.bg) down with http_content" in text
    config = load_config(tmp_path / "out" / "targets.toml")
    port = int(config.targets[0].url.rsplit(":", 1)[1].strip("/"))
    with pytest.raises(OSError):  # everything was closed
        await asyncio.open_connection("127.10.3.10", port)


async def test_serve_loops_reports_the_scenario_on_the_control_api_and_stops(
    tmp_path: Path,
) -> None:
    scenario = load_scenario(builtin_scenarios()["bulgaria-2018"])
    lines: list[str] = []
    stop = asyncio.Event()
    options = SimulateOptions(
        out_dir=tmp_path / "out",
        countries=("BG",),
        per_country=4,
        scenario=scenario,
        loop=True,
        speed=100.0,  # a pass in 1.1 s
        control=("127.0.0.1", 0),
        dnssec=False,
        timing=TEST_TIMING,
    )
    server = asyncio.create_task(serve(options, stop=stop, out=lines.append))
    while not any(line.startswith("[pass 2 step 1]") for line in lines):
        assert not server.done(), lines
        await asyncio.sleep(0.05)
    control = next(line for line in "\n".join(lines).splitlines() if "control:" in line)
    url = control.split()[1]
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/scenario") as response:
        status = await response.json()
    assert status["scenario"] == "bulgaria-2018" and status["pass"] >= 2
    assert status["expect"] and status["expect"][0]["summary"]
    stop.set()
    await asyncio.wait_for(server, 10)


async def test_serve_flaps_targets_in_their_own_modes_as_the_probes_see_it(
    tmp_path: Path,
) -> None:
    half_period = (1.5, 1.5)
    options = SimulateOptions(
        out_dir=tmp_path / "out",
        countries=("AL",),
        per_country=4,
        control=("127.0.0.1", 0),
        dnssec=False,
        timing=TEST_TIMING,
        flapping=0.5,
        flap_half_period_s=half_period,
        seed=1,
    )
    # What serve plays: a black-holed site (a timeout) and an NXDOMAIN one (the resolver).
    plan = plan_flapping(build_region(("AL",), 4), 0.5, half_period_s=half_period, seed=1)
    assert sorted(f.mode for f in plan) == ["blackhole", "nxdomain"]
    lines: list[str] = []
    stop = asyncio.Event()
    server = asyncio.create_task(serve(options, stop=stop, out=lines.append))
    while not any("control:" in line for line in lines):
        assert not server.done(), lines
        await asyncio.sleep(0.05)
    text = "\n".join(lines)
    assert "flapping:   2 targets, each up then down for 1.5-1.5 s in turn (seed 1)" in text
    url = next(line for line in text.splitlines() if "control:" in line).split()[1]
    config = load_config(tmp_path / "out" / "targets.toml")
    seen_down: dict[str, Reason | None] = {}
    seen_up: dict[str, bool] = {}
    previous: dict[str, bool] = {}
    deadline = time.monotonic() + 20
    try:
        async with (
            open_probe_context(config.probe_settings) as ctx,
            aiohttp.ClientSession() as http,
        ):
            while len(seen_up) < len(plan) and time.monotonic() < deadline:
                async with http.get(f"{url}/api/sites") as response:
                    faults = {row["host"]: row["faults"]["home"] for row in await response.json()}
                flapping = {f.host for f in plan}
                assert not any(faults[h] for h in faults if h not in flapping)  # nor canaries
                for flapper in plan:
                    down = faults[flapper.host] == [flapper.mode]
                    assert down or faults[flapper.host] == []
                    went = previous.get(flapper.host)
                    previous[flapper.host] = down
                    if went is None or went == down:
                        continue
                    # Just switched: a probe now sees what the spell shows (1 s budget < 1.5 s).
                    target = _target(config, flapper.host)
                    result = await probe_http(target, ctx)
                    if down and flapper.host not in seen_down:
                        seen_down[flapper.host] = result.reason
                    elif not down and flapper.host in seen_down:
                        seen_up[flapper.host] = result.ok
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)
    assert seen_down == {f.host: FAULT_MODES[f.mode].http_reason for f in plan}
    assert seen_up == {f.host: True for f in plan}
