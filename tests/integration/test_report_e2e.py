"""`govwatch report` on a real daemon's history: Albania blacked out in the simulated region
for a known time, then back; the report's incidents and availability for Albania match
the blackout within one probe interval, and the other countries stay whole."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.conftest import RegionFactory
from tests.integration.daemons import Daemon, wait_for
from tests.integration.test_daemon import DAEMON_TIMING, INTERVAL_S, STARTUP_BUDGET_S, all_up

BLACKOUT_S = 30.0
JITTER_S = 1.0  # the scheduler spreads probe starts by up to a second


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


async def test_a_country_blackout_is_reported_within_one_probe_interval(
    make_simulated_region: RegionFactory, tmp_path: Path
) -> None:
    db = tmp_path / "history.sqlite3"
    # Four countries of four sites: Albania dark is 25 % of the targets, under the region's
    # 30 %: a country outage, not a region one.
    region = make_simulated_region(countries=("AL", "XK", "MK", "ME"), timing=DAEMON_TIMING)
    async with region as sim:
        daemon = Daemon(sim.targets_file(), db)
        try:
            await daemon.start()
            started = time.time()
            await wait_for(lambda: all_up(daemon), STARTUP_BUDGET_S, "every target up")
            cut = time.time()
            await sim.apply_fault("country", "AL", "drop")
            await asyncio.sleep(BLACKOUT_S)
            await sim.apply_fault("country", "AL", "recover")
            restored = time.time()
            await wait_for(lambda: all_up(daemon), 3 * INTERVAL_S, "Albania back")
            await asyncio.sleep(2.0)  # the history is written every 0.5 s
            ended = time.time()
        except BaseException:
            print(daemon.log.read_text(errors="replace")[-5000:])
            raise
        finally:
            await daemon.close()

    report = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "report", "--db", str(db), "--format", "json",
        "--from", iso(started), "--to", iso(ended),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(report.communicate(), 60.0)
    assert report.returncode == 0, err.decode()
    data = json.loads(out)

    truth = restored - cut
    albania = [t for t in data["targets"] if t["country"] == "AL"]
    assert len(albania) == 4
    for target in albania:
        (incident,) = target["incidents"]
        # Its first failed probe comes within an interval of the cut, its first success
        # within an interval of the repair.
        assert abs(incident["duration_seconds"] - truth) <= INTERVAL_S + JITTER_S, incident
        assert incident["reason"] == "connect_timeout"
        assert target["availability_percent"] < 100.0
    (outage,) = [o for o in data["outages"] if o["scope"] == "country"]
    assert outage["country"] == "AL" and sorted(outage["affected"]) == sorted(
        t["name"] for t in albania
    )
    assert outage["duration_seconds"] == pytest.approx(truth, abs=2 * INTERVAL_S + JITTER_S)
    assert not [o for o in data["outages"] if o["scope"] == "region"]
    others = [c for c in data["countries"] if c["country"] != "AL"]
    assert others and all(c["availability_percent"] == 100.0 for c in others)
    assert all(c["incident_count"] == 0 for c in others)
