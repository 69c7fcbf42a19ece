"""The shipped alerting rules, fired by a real Prometheus scraping two real `govwatch run`s.

The simulated region serves two vantage points (home, abroad); one daemon probes it from
each. Prometheus runs with the shipped prometheus.yml, changed only where a test must: the
scrape targets are the two daemons, scrape and evaluation run every second, the rule files
are the shipped recording.yml and alerts.yml by absolute path, and there is no Alertmanager
(the test reads alert states from Prometheus's HTTP API). The rules themselves are loaded as
shipped, `for:` durations included, so those set the test's length:

* GovwatchCountryOutage `for: 30s` after the daemons confirm the blackholed country;
* GovwatchVantageDown `for: 1m` after the daemon at the cut vantage point goes blind;
* GovwatchTargetDown has `for: 3m`: waiting it out would triple the test, so its alerts are
  asserted present and pending (active since the fault), not firing.

The daemons are locked down as the README says (`govwatch run --web-config`: TLS with a
trustme certificate and a bcrypt basic-auth user), and Prometheus scrapes them with the
`scheme`, `tls_config` and `basic_auth` the shipped prometheus.yml shows in its comments.

Every wait is bounded; Prometheus, the daemons and the region are torn down even on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import shutil
import signal
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from simulator.runner import Timing
from tests.integration.conftest import RegionFactory
from tests.integration.daemons import Daemon, free_port, wait_for
from tests.unit.test_webconfig import LockedDown

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"

# Four countries of four sites: one dark country is 25% of the targets, under the region's
# 30% threshold, so blackholing it is a country outage and not a region one.
COUNTRIES = ("AL", "XK", "MK", "ME")
PER_COUNTRY = 4
VANTAGES = ("home", "abroad")
DARK_COUNTRY = "AL"  # blackholed from everywhere
BLIND_VANTAGE = "abroad"  # loses its canaries
SEEING_VANTAGES = tuple(v for v in VANTAGES if v != BLIND_VANTAGE)
HIDDEN_COUNTRY = "XK"  # then goes dark from the blind vantage only

INTERVAL_S = 5.0
TIMEOUT_S = 2.0  # as in test_daemon: two daemons, Prometheus and the region share 2 cores
REPROBE_S = 0.2
DAEMON_TIMING = Timing(
    interval=f"{INTERVAL_S:g}s", timeout=f"{TIMEOUT_S:g}s", tls_interval="30s",
    reprobe_delay=f"{REPROBE_S:g}s",
)  # fmt: skip
SCRAPE_S = 1.0  # scrape and rule evaluation interval
# A fault is confirmed within an interval, a timed-out probe and its quick re-probe; then
# Prometheus needs a scrape and an evaluation to see it. Slack for a busy machine.
DETECTION_BUDGET_S = INTERVAL_S + 2 * TIMEOUT_S + REPROBE_S + 2 * SCRAPE_S + 5.0
STARTUP_BUDGET_S = INTERVAL_S + 2 * TIMEOUT_S + 2 * SCRAPE_S + 12.0
# The shipped rules' `for:` (alerts.yml); the test checks they are still what it budgets for.
COUNTRY_OUTAGE_FOR_S = 30.0
VANTAGE_DOWN_FOR_S = 60.0
TARGET_DOWN_FOR_S = 180.0

pytestmark = pytest.mark.timeout(300)


def prometheus_binary() -> str:
    path = shutil.which("prometheus") or shutil.which("/usr/bin/prometheus")
    if path is None:
        pytest.skip(
            "prometheus is not installed (Debian package prometheus; make test installs it)"
        )
    return path


def e2e_prometheus_config(daemons: Mapping[str, Daemon], locked: LockedDown) -> dict[str, Any]:
    """The shipped prometheus.yml, pointed at `daemons` (by vantage), through TLS and basic
    authentication, and sped up."""
    config: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    config["global"].update(
        scrape_interval=f"{SCRAPE_S:g}s",
        scrape_timeout=f"{SCRAPE_S:g}s",
        evaluation_interval=f"{SCRAPE_S:g}s",
    )
    # The rule files the shipped config names, resolved as Prometheus would (relative to it).
    config["rule_files"] = [str(SHIPPED_CONFIG.parent / name) for name in config["rule_files"]]
    # No Alertmanager here: alert states are read from Prometheus itself.
    config.pop("alerting", None)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"].startswith("govwatch")]
    assert job["honor_labels"] is True, "the shipped job must keep the daemons' vantage label"
    for key in ("scrape_interval", "scrape_timeout"):
        job.pop(key, None)
    # What the shipped job's comments say to add for a daemon run with --web-config.
    job["scheme"] = "https"
    job["tls_config"] = {"ca_file": str(locked.ca_file)}
    job["basic_auth"] = {"username": locked.username, "password": locked.password}
    job["static_configs"] = [
        {"targets": [f"127.0.0.1:{daemon.port}"], "labels": {"vantage": vantage}}
        for vantage, daemon in daemons.items()
    ]
    return config


class Prometheus:
    """A Prometheus subprocess on a free loopback port and a client for its HTTP API."""

    def __init__(self, binary: str, config: Path, data_dir: Path) -> None:
        self.binary, self.config, self.data_dir = binary, config, data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.with_suffix(".log")
        self.process: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        args = [
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                self.binary, *args, stdout=log, stderr=log
            )
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0))
        await wait_for(self._ready, 15.0, "Prometheus to be ready")

    async def _ready(self) -> bool:
        assert self.process is not None and self.session is not None
        if self.process.returncode is not None:
            pytest.fail(f"prometheus exited {self.process.returncode}:\n{self.log_tail()}")
        with contextlib.suppress(aiohttp.ClientError):
            async with self.session.get(f"{self.base}/-/ready") as response:
                return response.status == 200
        return False

    async def _api(self, path: str, **params: str) -> Any:
        assert self.session is not None
        async with self.session.get(f"{self.base}/api/v1/{path}", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query; its vector's samples ({"metric": labels, "value": [t, "v"]})."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = await self._api("query", **params)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    async def alerts(self) -> list[dict[str, Any]]:
        """Every pending and firing alert (labels, annotations, state, activeAt)."""
        data = await self._api("alerts")
        alerts: list[dict[str, Any]] = data["alerts"]
        return alerts

    async def alerts_named(self, name: str, **labels: str) -> list[dict[str, Any]]:
        return [
            a
            for a in await self.alerts()
            if a["labels"]["alertname"] == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10.0)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.session is not None:
            await self.session.close()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""


def alert_for_seconds(rule_name: str) -> float:
    """The `for:` of the shipped alert `rule_name` (the same for each of its severities)."""
    rules = yaml.safe_load((SHIPPED_CONFIG.parent / "alerts.yml").read_text(encoding="utf-8"))
    durations = {
        rule["for"]
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == rule_name
    }
    (duration,) = durations
    value, unit = re.fullmatch(r"(\d+)([smh])", duration).groups()  # type: ignore[union-attr]
    return float(value) * {"s": 1, "m": 60, "h": 3600}[unit]


def unix_time(rfc3339: str) -> float:
    """Prometheus's timestamps (nanoseconds, "Z") as Unix time."""
    seconds, _, fraction = rfc3339.removesuffix("Z").partition(".")
    moment = datetime.datetime.fromisoformat(seconds).replace(tzinfo=datetime.UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")


def one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.asynccontextmanager
async def running_daemons(
    targets: Mapping[str, Path], tmp_path: Path, locked: LockedDown
) -> AsyncIterator[dict[str, Daemon]]:
    daemons = {
        v: Daemon(
            path,
            tmp_path / f"govwatch-{v}.sqlite3",
            v,
            extra_args=["--web-config", str(locked.web_config)],
            tls=locked.client_tls(),
            headers=locked.authorization(),
        )
        for v, path in targets.items()
    }
    try:
        # A task group: if one daemon fails to start, the other's start is cancelled too.
        async with asyncio.TaskGroup() as group:
            for daemon in daemons.values():
                group.create_task(daemon.start())
        yield daemons
    except BaseException:
        for vantage, daemon in daemons.items():
            log = daemon.log.read_text(errors="replace") if daemon.log.exists() else ""
            print(f"--- govwatch run --vantage {vantage}\n{log[-4000:]}")
        raise
    finally:
        for daemon in daemons.values():
            if daemon.process is not None:
                with contextlib.suppress(TimeoutError, ProcessLookupError):
                    await daemon.stop(signal.SIGTERM)
            await daemon.close()


@contextlib.asynccontextmanager
async def running_prometheus(config: dict[str, Any], tmp_path: Path) -> AsyncIterator[Prometheus]:
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    prometheus = Prometheus(prometheus_binary(), config_file, tmp_path / "prometheus-data")
    try:
        await prometheus.start()
        yield prometheus
    except BaseException:
        print(f"--- prometheus\n{prometheus.log_tail()}")
        raise
    finally:
        await prometheus.close()


class Timeline:
    """Named phases and how long each took; printed at the end (and on failure)."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.phases: list[tuple[str, float]] = []

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.phases.append((phase, now - self.last))
        self.last = now

    def report(self) -> str:
        rows = [f"  {seconds:6.1f}s  {phase}" for phase, seconds in self.phases]
        return "\n".join([*rows, f"  {time.monotonic() - self.started:6.1f}s  total"])


def labelled(alerts: Sequence[dict[str, Any]], *keys: str) -> set[tuple[str, ...]]:
    return {tuple(a["labels"].get(k, "") for k in keys) for a in alerts}


async def test_shipped_rules_fire_for_a_dark_country_and_a_blind_vantage(
    make_simulated_region: RegionFactory, tmp_path: Path
) -> None:
    prometheus_binary()  # skip before starting anything
    # The waits below are budgeted for these; a change to the shipped rules shows here first.
    assert alert_for_seconds("GovwatchCountryOutage") == COUNTRY_OUTAGE_FOR_S
    assert alert_for_seconds("GovwatchVantageDown") == VANTAGE_DOWN_FOR_S
    assert alert_for_seconds("GovwatchTargetDown") == TARGET_DOWN_FOR_S

    timeline = Timeline()
    locked = LockedDown.create(tmp_path)
    region = make_simulated_region(
        countries=COUNTRIES, per_country=PER_COUNTRY, vantages=VANTAGES, timing=DAEMON_TIMING
    )
    try:
        async with (
            region as sim,
            running_daemons(
                {v: sim.targets_file(v) for v in VANTAGES}, tmp_path, locked
            ) as daemons,
            running_prometheus(e2e_prometheus_config(daemons, locked), tmp_path) as prometheus,
        ):
            timeline.mark("region, two daemons and Prometheus started")
            targets = {t.host for t in sim.region.targets}
            canaries = sorted(c.host for c in sim.region.canaries)

            # --- 3. both instances scraped, every target up from both vantage points
            async def everything_up() -> bool:
                scraped = await prometheus.query('up{job=~"govwatch.*"} == 1')
                seeing = await prometheus.query("govwatch_vantage_up == 1")
                up = await prometheus.query("count by (vantage) (govwatch_target_up == 1)")
                return (
                    {s["metric"]["vantage"] for s in scraped} == set(VANTAGES)
                    and {s["metric"]["vantage"] for s in seeing} == set(VANTAGES)
                    and {s["metric"]["vantage"]: int(s["value"][1]) for s in up}
                    == dict.fromkeys(VANTAGES, len(targets))
                )

            await wait_for(everything_up, STARTUP_BUDGET_S, "both vantages scraped, all up")
            timeline.mark("both instances scraped, every target up")
            # The honored vantage label and Prometheus's target label agree on every instance.
            instances = {
                s["metric"]["vantage"]: s["metric"]["instance"]
                for s in await prometheus.query('up{job=~"govwatch.*"}')
            }
            assert instances == {v: f"127.0.0.1:{d.port}" for v, d in daemons.items()}
            # Scraped over TLS with the password; without it the daemons answer 401.
            assert {
                s["metric"]["vantage"]: s["value"][1]
                for s in await prometheus.query('up{job=~"govwatch.*"}')
            } == dict.fromkeys(VANTAGES, "1")
            for daemon in daemons.values():
                async with (
                    aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(ssl=locked.client_tls())
                    ) as anonymous,
                    anonymous.get(f"{daemon.base}/metrics") as response,
                ):
                    assert response.status == 401
            assert not await prometheus.query('ALERTS{scope=~"target|country|region"}')

            # --- 4. one country blackholed from everywhere
            fault_at = time.time()
            dark = set(await sim.apply_fault("country", DARK_COUNTRY, "drop"))

            async def country_alert_firing() -> bool:
                found = await prometheus.alerts_named("GovwatchCountryOutage", country=DARK_COUNTRY)
                return any(a["state"] == "firing" for a in found)

            await wait_for(
                country_alert_firing,
                DETECTION_BUDGET_S + COUNTRY_OUTAGE_FOR_S + 5.0,
                f"GovwatchCountryOutage for {DARK_COUNTRY} to fire",
            )
            timeline.mark(f"GovwatchCountryOutage {DARK_COUNTRY} firing (for: 30s)")
            alerts = await prometheus.alerts()
            (country_alert,) = [
                a for a in alerts if a["labels"]["alertname"] == "GovwatchCountryOutage"
            ]
            assert country_alert["labels"]["severity"] == "critical"
            assert "vantage" not in country_alert["labels"], "a verdict across vantage points"
            assert f"{len(VANTAGES)} of {len(VANTAGES)} reporting vantage points" in one_line(
                country_alert["annotations"]["description"]
            )
            # Nothing else at country or region scope: 25% of the targets is no region outage.
            assert labelled(
                [a for a in alerts if a["labels"].get("scope") in ("country", "region")],
                "alertname", "country",
            ) == {("GovwatchCountryOutage", DARK_COUNTRY)}  # fmt: skip

            # The target alerts: one per dark site and vantage point, and no other. Asserted
            # pending (or firing), active since the fault: their `for: 3m` is longer than the
            # whole test. Alertmanager would inhibit them under the country alert anyway.
            target_alerts = [a for a in alerts if a["labels"]["alertname"] == "GovwatchTargetDown"]
            assert labelled(target_alerts, "target", "vantage", "country") == {
                (host, vantage, DARK_COUNTRY) for host in dark for vantage in VANTAGES
            }
            statuses = {v: await d.status() for v, d in daemons.items()}
            for alert in target_alerts:
                assert alert["state"] in ("pending", "firing"), alert
                assert unix_time(alert["activeAt"]) >= fault_at
                # The reason in the summary is the one the daemon reports for that target.
                labels = alert["labels"]
                (view,) = [
                    t
                    for t in statuses[labels["vantage"]]["targets"]
                    if t["name"] == labels["target"]
                ]
                assert view["state"] == "down" and view["reason"]
                assert one_line(alert["annotations"]["summary"]).endswith(f": {view['reason']}")
            print(
                f"GovwatchTargetDown: {len(target_alerts)} alerts, states "
                f"{sorted({a['state'] for a in target_alerts})}"
            )

            # --- 5. one vantage point loses its canaries
            await sim.apply_fault("canaries", "*", "drop", vantage=BLIND_VANTAGE)

            async def blind() -> bool:
                return bool(
                    await prometheus.query(f'govwatch_vantage_up{{vantage="{BLIND_VANTAGE}"}} == 0')
                )

            await wait_for(blind, DETECTION_BUDGET_S, f"{BLIND_VANTAGE} to report itself blind")
            blind_at = time.time()
            timeline.mark(f"{BLIND_VANTAGE} blind in Prometheus")
            # What only the blind vantage point could see must not become an alert.
            hidden = await sim.apply_fault("country", HIDDEN_COUNTRY, "drop", vantage=BLIND_VANTAGE)
            assert hidden

            async def vantage_alert_firing() -> bool:
                found = await prometheus.alerts_named("GovwatchVantageDown")
                return any(a["state"] == "firing" for a in found)

            await wait_for(
                vantage_alert_firing,
                VANTAGE_DOWN_FOR_S + 2 * SCRAPE_S + 10.0,
                f"GovwatchVantageDown for {BLIND_VANTAGE} to fire",
            )
            timeline.mark(f"GovwatchVantageDown {BLIND_VANTAGE} firing (for: 1m)")
            now = time.time()
            alerts = await prometheus.alerts()
            (vantage_alert,) = [
                a for a in alerts if a["labels"]["alertname"] == "GovwatchVantageDown"
            ]
            assert vantage_alert["labels"]["vantage"] == BLIND_VANTAGE
            assert vantage_alert["labels"]["instance"] == instances[BLIND_VANTAGE]
            assert vantage_alert["labels"]["team"] == "monitor"
            assert f"(uplink; failing canaries: {', '.join(canaries)})" in one_line(
                vantage_alert["annotations"]["description"]
            )

            # No new country alert, in any state, at any evaluation since the vantage went
            # blind: ALERTS records pending alerts too.
            window = f"[{int(now - blind_at)}s]"
            seen = await prometheus.query(
                f'max_over_time(ALERTS{{scope=~"country|region"}}{window})', at=now
            )
            assert {(s["metric"]["alertname"], s["metric"].get("country", "")) for s in seen} == {
                ("GovwatchCountryOutage", DARK_COUNTRY)
            }
            # The blind daemon declared nothing and cast no vote.
            declared = await prometheus.query(
                f'max_over_time(govwatch_outage_active{{vantage="{BLIND_VANTAGE}"}}{window}) > 0',
                at=now,
            )
            assert declared == []
            votes = await prometheus.query(
                f'count_over_time(vantage_country:govwatch_outage_active:max{{vantage="{BLIND_VANTAGE}"}}{window})',
                at=now,
            )
            assert votes == []
            # The dark country's alert fires on, from the vantage point that still sees, and
            # was not restarted.
            (still,) = [a for a in alerts if a["labels"]["alertname"] == "GovwatchCountryOutage"]
            assert still["state"] == "firing"
            assert still["activeAt"] == country_alert["activeAt"]
            assert "1 of 1 reporting vantage points" in one_line(
                still["annotations"]["description"]
            )
            # The blind vantage point's target alerts are withdrawn (its states are unknown).
            assert labelled(
                [a for a in alerts if a["labels"]["alertname"] == "GovwatchTargetDown"],
                "target", "vantage",
            ) == {(host, vantage) for host in dark for vantage in SEEING_VANTAGES}  # fmt: skip
            timeline.mark("checked; tearing down")
    finally:
        timeline.mark("torn down")
        print(f"end-to-end timeline:\n{timeline.report()}")
