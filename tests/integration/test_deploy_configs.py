"""The shipped deploy/ files, checked by the programs that will run them.

promtool checks prometheus.yml and the rule files and runs the rule unit tests; amtool checks
alertmanager.yml and where each alert is routed; a real Alertmanager on loopback applies the
inhibition rules to posted alerts; systemd-analyze verifies the unit. A test skips only when
its program is not installed (Debian packages prometheus, prometheus-alertmanager, systemd).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = (PROMETHEUS_DIR / "recording.yml", PROMETHEUS_DIR / "alerts.yml")
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
SYSTEMD_UNIT = DEPLOY / "systemd" / "govwatch.service"
DEPLOY_README = DEPLOY / "README.md"

RUNBOOK_BASE = "https://github.com/govwatch/govwatch/blob/main/deploy/README.md#"
# Alerts whose expression aggregates every label away: their text cannot name one.
LABEL_FREE_ALERTS = frozenset(
    {"GovwatchWatchdog", "GovwatchInstancesAbsent", "GovwatchRegionOutage"}
)
WATCHDOG = "GovwatchWatchdog"


def _binary(*names: str, package: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip(f"{names[0]} is not installed (Debian package {package})")


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def _assert_succeeds(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"`{' '.join(result.args)}` exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def _load_yaml(path: Path) -> Any:
    # Only the tests that read the files need PyYAML; promtool, amtool and systemd-analyze
    # checks run without it.
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install pyyaml)")
    # libyaml's parser when present: several times faster on the 1000-line rule test file.
    with path.open(encoding="utf-8") as stream:
        return yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    expr: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def _alert_rules() -> list[AlertRule]:
    rules = []
    for path in RULE_FILES:
        for group in _load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules.append(
                        AlertRule(
                            name=rule["alert"],
                            expr=rule["expr"],
                            labels=rule.get("labels", {}),
                            annotations=rule.get("annotations", {}),
                        )
                    )
    return rules


def _recording_rule_names() -> list[str]:
    return [
        rule["record"]
        for path in RULE_FILES
        for group in _load_yaml(path)["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]


# --- Prometheus --------------------------------------------------------------------------------


def test_prometheus_config_is_valid() -> None:
    promtool = _binary("promtool", package="prometheus")
    _assert_succeeds(_run([promtool, "check", "config", str(PROMETHEUS_CONFIG)]))


def test_prometheus_config_keeps_the_rules_assumptions() -> None:
    config = _load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == [path.name for path in RULE_FILES]
    for job in config["scrape_configs"]:
        # The missing-data alerts select up{job=~"govwatch.*"}.
        assert job["job_name"].startswith("govwatch"), job["job_name"]
        # The daemon's own `vantage` label must win over the target label of the same name.
        assert job.get("honor_labels") is True, job["job_name"]


def test_rule_files_are_valid_and_lint_clean() -> None:
    promtool = _binary("promtool", package="prometheus")
    _assert_succeeds(
        _run([promtool, "check", "rules", "--lint=all", "--lint-fatal", *map(str, RULE_FILES)])
    )


def test_rule_unit_tests_pass() -> None:
    promtool = _binary("promtool", package="prometheus")
    _assert_succeeds(_run([promtool, "test", "rules", RULE_TESTS.name], cwd=PROMETHEUS_DIR))


def test_every_alert_is_tested_firing_and_silent() -> None:
    rules = _alert_rules()
    rule_names = {rule.name for rule in rules}
    fired: set[str] = set()
    fired_severities: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for test_group in _load_yaml(RULE_TESTS)["tests"]:
        for case in test_group.get("alert_rule_test", []):
            name = case["alertname"]
            # A misspelt name would "pass" every silent test.
            assert name in rule_names, f"{test_group['name']!r} tests unknown alert {name!r}"
            expected = case.get("exp_alerts") or []
            (fired if expected else silent).add(name)
            fired_severities.update((name, alert["exp_labels"]["severity"]) for alert in expected)
    never_fired = rule_names - fired
    never_silent = rule_names - silent - {WATCHDOG}  # vector(1) cannot be silent
    untested_severities = {
        (rule.name, rule.labels["severity"]) for rule in rules
    } - fired_severities
    assert not never_fired, f"alerts never tested firing: {sorted(never_fired)}"
    assert not never_silent, f"alerts never tested silent: {sorted(never_silent)}"
    assert not untested_severities, f"rules never tested firing: {sorted(untested_severities)}"


def test_every_recording_rule_is_used_or_tested() -> None:
    readers = [
        text
        for path in RULE_FILES
        for group in _load_yaml(path)["groups"]
        for rule in group["rules"]
        for text in (rule["expr"], *rule.get("annotations", {}).values())
    ] + [
        case["expr"]
        for test_group in _load_yaml(RULE_TESTS)["tests"]
        for case in test_group.get("promql_expr_test", [])
    ]
    unused = [
        name
        for name in _recording_rule_names()
        # Whole names only: ...:p95_30m must not count as read where ...:p95_30m_median_1d is.
        if not any(re.search(re.escape(name) + r"(?![\w:])", text) for text in readers)
    ]
    assert not unused, f"recording rules nothing reads or tests: {unused}"


def test_alerts_carry_severity_audience_and_annotations() -> None:
    problems = []
    for rule in _alert_rules():
        severity = rule.labels.get("severity")
        allowed = {"none"} if rule.name == WATCHDOG else {"critical", "warning"}
        if severity not in allowed:
            problems.append(f"{rule.name}: severity {severity!r} not in {sorted(allowed)}")
        # Exactly one audience: the monitor's owner, or the people watching the services.
        is_monitor = rule.labels.get("team") == "monitor"
        has_scope = rule.labels.get("scope") in {"target", "country", "region"}
        if is_monitor == has_scope:
            problems.append(f"{rule.name}: needs team=monitor or a scope, not both")
        for key in ("summary", "description", "runbook_url"):
            if not rule.annotations.get(key, "").strip():
                problems.append(f"{rule.name}: no {key}")
        text = rule.annotations.get("summary", "") + rule.annotations.get("description", "")
        if rule.name not in LABEL_FREE_ALERTS and "$labels." not in text:
            problems.append(f"{rule.name}: summary and description name no label")
    assert not problems, "\n".join(problems)


def test_every_alert_has_a_runbook_section() -> None:
    headings = set(re.findall(r"^#{2,4} (Govwatch\w+)\s*$", DEPLOY_README.read_text(), re.M))
    problems = []
    for rule in _alert_rules():
        url = rule.annotations.get("runbook_url")
        if url != RUNBOOK_BASE + rule.name.lower():
            problems.append(f"{rule.name}: runbook_url {url!r}")
        if rule.name not in headings:
            problems.append(f"{rule.name}: no '### {rule.name}' section in {DEPLOY_README}")
    assert not problems, "\n".join(problems)


# --- Alertmanager ------------------------------------------------------------------------------


def test_alertmanager_config_is_valid() -> None:
    amtool = _binary("amtool", package="prometheus-alertmanager")
    _assert_succeeds(_run([amtool, "check-config", str(ALERTMANAGER_CONFIG)]))


def _audience(labels: Mapping[str, str]) -> str:
    """The receiver an alert is meant for (the routing policy of alertmanager.yml)."""
    if labels["alertname"] == WATCHDOG:
        return "heartbeat"
    if labels.get("team") == "monitor":
        return "monitor-owner"
    if labels["severity"] == "critical" and labels.get("scope") in {"country", "region"}:
        return "outage-pager"
    return "portal-ops"


def test_each_alert_is_routed_to_its_audience() -> None:
    amtool = _binary("amtool", package="prometheus-alertmanager")
    failures = []
    for rule in _alert_rules():
        labels = {
            "alertname": rule.name,
            "country": "AL",
            "vantage": "vantage-a",
            **rule.labels,
        }
        expected = _audience(labels)
        result = _run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={ALERTMANAGER_CONFIG}",
                f"--verify.receivers={expected}",
                *(f"{key}={value}" for key, value in sorted(labels.items())),
            ]
        )
        if result.returncode != 0:
            failures.append(f"{labels}: expected {expected}, amtool: {result.stdout.strip()}")
    assert not failures, "\n".join(failures)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http_json(url: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=2) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager with the shipped configuration, on a loopback port; its base URL.

    Its webhooks point at 127.0.0.1:5001; the shortest group_wait of the routes these tests
    use is 10 s, so nothing is sent before the test ends.
    """
    binary = _binary("prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager")
    port = _free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port: a single, private instance
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        f"Alertmanager did not start:\n{(tmp_path / 'alertmanager.log').read_text()}"
                    )
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


INSTANCES = {"vantage-a": "127.0.0.1:9781", "vantage-b": "127.0.0.1:9782"}


def _monitor_alert(name: str, vantage: str) -> dict[str, str]:
    return {
        "alertname": name,
        "severity": "critical",
        "team": "monitor",
        "instance": INSTANCES[vantage],
        "job": "govwatch",
        "vantage": vantage,
    }


def _country_alert(name: str, country: str, vantage: str | None = None) -> dict[str, str]:
    labels = {
        "alertname": name,
        "severity": "critical" if name == "GovwatchCountryOutage" else "warning",
        "scope": "country",
        "country": country,
    }
    return labels if vantage is None else {**labels, "vantage": vantage}


def _region_alert() -> dict[str, str]:
    return {"alertname": "GovwatchRegionOutage", "severity": "critical", "scope": "region"}


def _target_alert(name: str, vantage: str, country: str, target: str) -> dict[str, str]:
    return {
        "alertname": name,
        "severity": "warning",
        "scope": "target",
        "instance": INSTANCES[vantage],
        "job": "govwatch",
        "vantage": vantage,
        "country": country,
        "target": target,
        "sector": "portal",
    }


# (alert labels, expected to be inhibited)
INHIBITION_CASES: dict[str, list[tuple[dict[str, str], bool]]] = {
    "a blind vantage point mutes its own alerts, not the monitor's or the consensus": [
        (_monitor_alert("GovwatchVantageDown", "vantage-a"), False),
        (_target_alert("GovwatchTargetDown", "vantage-a", "AL", "e-albania.al"), True),
        (_target_alert("GovwatchTLSCertExpiring", "vantage-a", "ME", "gov.me"), True),
        (_country_alert("GovwatchCountryOutagePartial", "SI", vantage="vantage-a"), True),
        (_target_alert("GovwatchTargetDown", "vantage-b", "AL", "e-albania.al"), False),
        (_monitor_alert("GovwatchNotProbing", "vantage-a"), False),
        (_country_alert("GovwatchCountryOutage", "XK"), False),
    ],
    "a region outage mutes country alerts and service availability alerts": [
        (_region_alert(), False),
        (_country_alert("GovwatchCountryOutage", "AL"), True),
        (_country_alert("GovwatchCountryOutagePartial", "ME", vantage="vantage-a"), True),
        (_target_alert("GovwatchTargetDown", "vantage-a", "RS", "gov.rs"), True),
        (_target_alert("GovwatchTLSCertExpiring", "vantage-a", "AL", "e-albania.al"), False),
        (_monitor_alert("GovwatchVantageDown", "vantage-b"), False),
    ],
    "a country outage mutes that country's availability alerts from every vantage point": [
        (_country_alert("GovwatchCountryOutage", "AL"), False),
        (_target_alert("GovwatchTargetDown", "vantage-a", "AL", "e-albania.al"), True),
        (_target_alert("GovwatchTargetDown", "vantage-b", "AL", "parlament.al"), True),
        (_target_alert("GovwatchDNSFailing", "vantage-a", "AL", "akshi.gov.al"), True),
        (_target_alert("GovwatchTargetSlow", "vantage-b", "AL", "kryeministria.al"), True),
        (_target_alert("GovwatchTargetDown", "vantage-a", "ME", "gov.me"), False),
        (_target_alert("GovwatchTLSCertInvalid", "vantage-a", "AL", "qkb.gov.al"), False),
        (_target_alert("GovwatchDNSSECBogus", "vantage-a", "AL", "gov.al"), False),
    ],
    "a partial outage mutes only that vantage point's alerts of that country": [
        (_country_alert("GovwatchCountryOutagePartial", "SI", vantage="vantage-a"), False),
        (_target_alert("GovwatchTargetDown", "vantage-a", "SI", "dz-rs.si"), True),
        (_target_alert("GovwatchTargetDown", "vantage-b", "SI", "dz-rs.si"), False),
        (_target_alert("GovwatchTargetDown", "vantage-a", "HR", "gov.hr"), False),
    ],
    "a down target is not also slow": [
        (_target_alert("GovwatchTargetDown", "vantage-a", "AL", "e-albania.al"), False),
        (_target_alert("GovwatchTargetSlow", "vantage-a", "AL", "e-albania.al"), True),
        (_target_alert("GovwatchTargetSlow", "vantage-a", "AL", "gov.al"), False),
        (_target_alert("GovwatchTargetSlow", "vantage-b", "AL", "e-albania.al"), False),
    ],
}


@pytest.mark.parametrize("case", INHIBITION_CASES, ids=list(INHIBITION_CASES))
def test_inhibition_rules(alertmanager: str, case: str) -> None:
    alerts = INHIBITION_CASES[case]
    _http_json(f"{alertmanager}/api/v2/alerts", [{"labels": labels} for labels, _ in alerts])
    expected = {json.dumps(labels, sort_keys=True): muted for labels, muted in alerts}

    def observed() -> dict[str, bool]:
        listed = _http_json(f"{alertmanager}/api/v2/alerts")
        return {
            json.dumps(alert["labels"], sort_keys=True): bool(alert["status"]["inhibitedBy"])
            for alert in listed
        }

    # The inhibitor learns its source alerts asynchronously: wait until every alert is listed
    # and every expected inhibition has happened, then compare everything.
    deadline = time.monotonic() + 5
    state = observed()
    while time.monotonic() < deadline and not (
        state.keys() == expected.keys()
        and all(state[key] for key, muted in expected.items() if muted)
    ):
        time.sleep(0.05)
        state = observed()
    wrong = {
        key: f"inhibited={state.get(key)}"
        for key, muted in expected.items()
        if state.get(key) != muted
    }
    assert not wrong, "unexpected inhibition state:\n" + "\n".join(
        f"{k}: {v}" for k, v in wrong.items()
    )


# --- systemd -----------------------------------------------------------------------------------


def _unit_directives() -> list[tuple[str, str]]:
    directives = []
    for line in SYSTEMD_UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            directives.append((key.strip(), value.strip()))
    return directives


def _units_with_runnable_exec(tmp_path: Path, *sources: Path) -> list[Path]:
    """The units, with ExecStart's program replaced by a stub: verify checks it exists."""
    stub = tmp_path / "govwatch"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    units = []
    for source in sources:
        unit = tmp_path / source.name
        unit.write_text(source.read_text().replace("/opt/govwatch/.venv/bin/govwatch", str(stub)))
        units.append(unit)
    return units


def _unit_with_runnable_exec(tmp_path: Path) -> Path:
    (unit,) = _units_with_runnable_exec(tmp_path, SYSTEMD_UNIT)
    return unit


def test_systemd_unit_verifies_cleanly(tmp_path: Path) -> None:
    analyze = _binary("systemd-analyze", package="systemd")
    result = _run([analyze, "verify", str(_unit_with_runnable_exec(tmp_path))])
    _assert_succeeds(result)
    # Unknown or misspelt directives are only warnings (exit 0): any output is a failure.
    assert result.stdout + result.stderr == "", result.stdout + result.stderr


def test_systemd_unit_exposure_is_low(tmp_path: Path) -> None:
    analyze = _binary("systemd-analyze", package="systemd")
    unit = _unit_with_runnable_exec(tmp_path)
    # --threshold is the exposure level times ten: fail above 2.0 ("OK" and better).
    _assert_succeeds(_run([analyze, "security", "--offline=yes", "--threshold=20", str(unit)]))


def test_systemd_unit_runs_the_daemon_hardened() -> None:
    directives = _unit_directives()
    values = dict(directives)
    assert values["ExecStart"].split() == [
        "/opt/govwatch/.venv/bin/govwatch",
        "run",
        "/etc/govwatch/targets.toml",
        "--listen",
        "127.0.0.1:9781",
        "--db",
        "/var/lib/govwatch/history.sqlite3",
    ]
    required = {
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure",
        "DynamicUser": "yes",
        "StateDirectory": "govwatch",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "LockPersonality": "yes",
    }
    wrong = {key: values.get(key) for key, value in required.items() if values.get(key) != value}
    assert not wrong, f"unit directives differ from {required}: {wrong}"
    assert ("SystemCallFilter", "@system-service") in directives


_TLS_CONTEXT_UNDER_WX = """
import ctypes, sys
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(3)  # kernel older than 6.3: cannot emulate MemoryDenyWriteExecute
from probes.tls import make_openssl_context
try:
    make_openssl_context(None)
except MemoryError:
    sys.exit(1)
sys.exit(0)
"""


def _run_under_wx(code: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter that first asks the kernel for W^X (PR_SET_MDWE, what
    systemd uses for MemoryDenyWriteExecute=); skips where the platform or kernel cannot."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_MDWE is Linux-only")
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
        check=False,
    )
    if result.returncode == 3:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux >= 6.3)")
    return result


def test_memory_deny_write_execute_matches_the_tls_probe() -> None:
    """MemoryDenyWriteExecute=yes is set exactly when the TLS probe works under W^X.

    PR_SET_MDWE is the kernel mechanism systemd uses for MemoryDenyWriteExecute= when available.
    """
    result = _run_under_wx(_TLS_CONTEXT_UNDER_WX, timeout_s=60)
    assert result.returncode in (0, 1), result.stderr
    works_under_wx = result.returncode == 0
    setting = dict(_unit_directives()).get("MemoryDenyWriteExecute")
    assert setting == ("yes" if works_under_wx else "no"), (
        f"the TLS probe {'works' if works_under_wx else 'fails'} under W^X, "
        f"but the unit says MemoryDenyWriteExecute={setting}"
    )


def test_service_alerts_are_inhibited_by_maintenance_and_tested_so() -> None:
    """Every target, country and region alert reads govwatch_maintenance_active (directly or
    through country:govwatch_maintenance_active:min), and alerts_test.yml has a case that
    counts its firing ALERTS with a target (or country) in maintenance beside one without."""
    cases = " ".join(
        case["expr"]
        for test_group in _load_yaml(RULE_TESTS)["tests"]
        if "maintenance" in test_group.get("name", "")
        for case in test_group.get("promql_expr_test", [])
    )
    problems = []
    for rule in _alert_rules():
        if rule.labels.get("scope") not in {"target", "country", "region"}:
            continue
        if "govwatch_maintenance_active" not in rule.expr:
            problems.append(f"{rule.name}: not inhibited by govwatch_maintenance_active")
        if f'alertname="{rule.name}"' not in cases:
            problems.append(f"{rule.name}: no maintenance case in {RULE_TESTS.name}")
    assert not problems, "\n".join(problems)


# --- the monthly report timer -------------------------------------------------------------------

REPORT_UNITS = (
    DEPLOY / "systemd" / "govwatch-report.service",
    DEPLOY / "systemd" / "govwatch-report.timer",
)


def test_report_timer_and_service_verify_cleanly_and_are_confined(tmp_path: Path) -> None:
    analyze = _binary("systemd-analyze", package="systemd")
    service, timer = _units_with_runnable_exec(tmp_path, *REPORT_UNITS)
    result = _run([analyze, "verify", str(service), str(timer)])
    _assert_succeeds(result)
    assert result.stdout + result.stderr == "", result.stdout + result.stderr
    _assert_succeeds(_run([analyze, "security", "--offline=yes", "--threshold=20", str(service)]))


def test_report_service_asks_for_last_month_from_the_daemons_history() -> None:
    text = REPORT_UNITS[0].read_text()
    starts = [
        line.split("=", 1)[1].split() for line in text.splitlines() if line.startswith("ExecStart=")
    ]
    assert [args[:4] for args in starts] == [
        ["/opt/govwatch/.venv/bin/govwatch", "report", "--month", "last"]
    ] * 2
    assert all("/var/lib/govwatch/history.sqlite3" in args for args in starts)
    assert "User=govwatch" in text  # the daemon's dynamic user: its -wal and -shm files
    assert "OnCalendar=*-*-01 02:00:00 UTC" in REPORT_UNITS[1].read_text()


_REPORT_UNDER_WX = """
import ctypes, pathlib, sys, tempfile
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(3)  # kernel older than 6.3: cannot emulate MemoryDenyWriteExecute
from tests.unit.report_history import seed_history
from monitor.cli import main
out = pathlib.Path(tempfile.mkdtemp())
db = seed_history(out / "history.sqlite")
for form in ("html", "json"):
    code = main(["report", "--db", str(db), "--month", "2026-11", "--format", form,
                 "--out", str(out / ("govwatch-{month}." + form))])
    if code != 0 or not (out / ("govwatch-2026-11." + form)).is_file():
        sys.exit(1)
sys.exit(0)
"""


def test_the_report_runs_under_memory_deny_write_execute() -> None:
    """The report unit sets MemoryDenyWriteExecute=yes (unlike the daemon's: no TLS here)."""
    result = _run_under_wx(_REPORT_UNDER_WX, timeout_s=120)
    assert result.returncode == 0, result.stderr
    assert "MemoryDenyWriteExecute=yes" in REPORT_UNITS[0].read_text()
