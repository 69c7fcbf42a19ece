"""`govwatch check` against the simulated region: real probes, real servers, real CLI."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.check import check_round, to_table
from monitor.config import load_config
from probes.context import ProbeContext
from probes.registry import PROBES
from probes.results import ProbeKind, ProbeResult, Reason
from probes.settings import ProbeTarget
from simulator.runner import SimulatedRegion


async def _cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_check_table_all_up_then_one_country_blackholed(
    simulated_region: SimulatedRegion,
) -> None:
    path = simulated_region.targets_file()
    code, out, _ = await _cli("check", str(path), "--country", "AL")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["TARGET", "CC", "HTTP"]
    al_rows = [line for line in lines[1:-1] if " AL " in line]
    assert len(al_rows) == 4 and all(line.rstrip().endswith("UP") for line in al_rows)
    assert lines[-1] == "4 of 4 targets up"

    await simulated_region.apply_fault("country", "AL", "drop")
    code, out, _ = await _cli("check", str(path), "--country", "AL")
    assert code == 1
    assert out.count("DOWN connect_timeout") == 4


async def test_check_json_shape(simulated_region: SimulatedRegion) -> None:
    path = simulated_region.targets_file()
    await simulated_region.apply_fault("site", "e-albania.al.test", "nxdomain")
    code, out, _ = await _cli("check", str(path), "--country", "AL", "--format", "json")
    assert code == 1
    rows = json.loads(out)
    assert {row["probe"] for row in rows} == {"http", "dns", "tls"}
    for row in rows:
        assert {"target", "country", "probe", "ok", "reason", "duration_s", "details"} <= set(row)
        assert row["country"] == "AL"
    broken = {row["probe"]: row for row in rows if row["target"] == "e-albania.al.test"}
    assert broken["dns"]["reason"] == "dns_nxdomain" and broken["http"]["ok"] is False
    assert all(row["ok"] for row in rows if row["target"] != "e-albania.al.test")


async def test_check_exit_codes_for_config_problems(simulated_region: SimulatedRegion) -> None:
    code, _, err = await _cli("check", str(simulated_region.targets_file()), "--country", "FR")
    assert code == 2 and "no targets in FR" in err
    code, _, err = await _cli("check", "/nonexistent/targets.toml")
    assert code == 2 and "/nonexistent/targets.toml: cannot read" in err


async def test_check_in_process_table_names_reasons(simulated_region: SimulatedRegion) -> None:
    config = load_config(simulated_region.targets_file())
    await simulated_region.apply_fault("site", "akshi.gov.al.test", "5xx")
    targets = [t for t in config.targets if t.country == "AL"]
    table = to_table(await check_round(config, targets))
    row = next(line for line in table.splitlines() if line.startswith("akshi.gov.al.test"))
    assert "DOWN http_status" in row and " 503 " in row


async def test_a_probe_that_raises_is_a_failed_row_not_the_end_of_the_check(
    simulated_region: SimulatedRegion,
) -> None:
    config = load_config(simulated_region.targets_file())
    targets = [t for t in config.targets if t.country == "AL"]
    hostile = targets[0].name

    async def http_that_breaks_on_one_site(target: ProbeTarget, ctx: ProbeContext) -> ProbeResult:
        if hostile in target.url:
            raise LookupError("unknown encoding: undefined")  # what a hostile charset did
        return await PROBES[ProbeKind.HTTP](target, ctx)

    checked = await check_round(
        config, targets, probes={**PROBES, ProbeKind.HTTP: http_that_breaks_on_one_site}
    )
    assert len(checked.targets) == len(targets)
    broken = next(c for c in checked.targets if c.target.name == hostile)
    http = broken.result(ProbeKind.HTTP)
    assert http is not None and not http.ok and http.reason is Reason.PROTOCOL_ERROR
    assert all(c.ok for c in checked.targets if c.target.name != hostile)
    assert "DOWN protocol_error" in to_table(checked)


async def test_offline_machine_is_exit_3_and_blames_no_target(
    simulated_region: SimulatedRegion,
) -> None:
    path = simulated_region.targets_file()
    await simulated_region.apply_fault("all", "*", "drop")  # this machine's uplink is cut
    code, out, _ = await _cli("check", str(path), "--country", "AL")
    assert code == 3, out
    lines = out.splitlines()
    assert lines[-1].startswith("this machine looks offline: 3 of 3 canaries")
    assert "no target judged" in lines[-1]
    rows = [line for line in lines[1:-1] if " AL " in line]
    assert len(rows) == 4 and all(" UNKNOWN (" in row for row in rows), out
    assert "DOWN" not in out

    code, out, err = await _cli("check", str(path), "--country", "AL", "--format", "json")
    assert code == 3 and "this machine looks offline" in err
    assert {row["target_state"] for row in json.loads(out)} == {"unknown"}


async def test_one_canary_down_is_not_offline(simulated_region: SimulatedRegion) -> None:
    config = load_config(simulated_region.targets_file())
    await simulated_region.apply_fault("canaries", "quad9.canary.test", "drop")
    checked = await check_round(config, [t for t in config.targets if t.country == "AL"])
    assert len(checked.failing_canaries) == 1 and not checked.offline
    assert all(checked.state(c).value == "up" for c in checked.targets)


async def test_a_target_in_maintenance_is_not_down_and_not_a_failed_check(
    simulated_region: SimulatedRegion, tmp_path: Path
) -> None:
    # A copy of the region's targets file with a window open now over one Albanian site.
    source = simulated_region.targets_file()
    path = source.parent / "targets-maintenance.toml"
    now = datetime.now(UTC).replace(microsecond=0)
    path.write_text(
        source.read_text()
        + "\n[[maintenance]]\n"
        + 'note = "registry upgrade"\n'
        + f"start = {(now - timedelta(hours=1)).isoformat()}\n"
        + f"end = {(now + timedelta(hours=1)).isoformat()}\n"
        + 'targets = ["e-albania.al.test"]\n'
    )
    await simulated_region.apply_fault("site", "e-albania.al.test", "5xx")
    code, out, _ = await _cli("check", str(path), "--country", "AL")
    assert code == 0, out  # the one failing target is in its window
    row = next(line for line in out.splitlines() if line.startswith("e-albania.al.test "))
    assert row.rstrip().endswith("MAINTENANCE (registry upgrade) http_status"), row
    assert out.splitlines()[-1] == "3 of 4 targets up, 1 in maintenance"

    code, out, _ = await _cli("check", str(path), "--country", "AL", "--format", "json")
    states = {row["target"]: row["target_state"] for row in json.loads(out)}
    assert states.pop("e-albania.al.test") == "maintenance"
    assert set(states.values()) == {"up"}
    assert code == 0

    await simulated_region.apply_fault("site", "akshi.gov.al.test", "5xx")  # not covered
    code, out, _ = await _cli("check", str(path), "--country", "AL")
    assert code == 1 and "DOWN http_status" in out
