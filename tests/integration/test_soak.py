"""The soak's 1-minute form (bench/soak.py runs it for 30 minutes at 2,000 targets).

`govwatch run` watches 312 simulated targets (13 countries x 24), a tenth of them failing and
recovering every 5-10 s, each in its own fault mode (timeouts, resets, TLS errors, bombs,
DNS failures), for a minute. Only leaks are asserted, never speed: after a 20 s warm-up the
daemon's open file descriptors and asyncio tasks must not climb, and its log must hold no
exception. The judge itself is checked first, on made-up series and logs, so the soak
cannot pass by measuring nothing.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.soak import SoakSettings, read_log, run_soak, trend

SHORT_SOAK = SoakSettings(
    targets=312,
    interval_s=5.0,
    timeout_s=2.0,
    flapping=0.10,
    flap_period_s=(5.0, 10.0),
    duration_s=60.0,
    warmup_s=20.0,
    sample_s=0.5,  # /proc is cheap to read: more samples, a smaller error on the trend
    scrape_s=1.0,  # /metrics is not: every scrape costs the daemon probes
    seed=1,
)


# --- the judge -------------------------------------------------------------------------------


def _series(
    leak_per_s: float, noise: float, *, every_s: float = 1.0, seconds: float = 40.0
) -> list[tuple[float, float]]:
    draw = random.Random(5)
    times = [i * every_s for i in range(int(seconds / every_s))]
    return [(t, 1200.0 + leak_per_s * t + draw.uniform(-noise, noise)) for t in times]


def test_a_noisy_level_is_flat_and_a_climb_is_not() -> None:
    """What the minute can tell, at the noise a saturated daemon shows (tasks +-150, fds +-60
    around their level): a task leaked per probe (about 50 a second), an fd leaked per failed
    probe (2-3 a second), and any steady climb of more than 16 when the level is quiet."""
    flat = trend(_series(leak_per_s=0.0, noise=150.0))
    assert flat is not None and flat.flat, flat
    assert flat.minimum < 1100 and flat.maximum > 1300
    per_probe = trend(_series(leak_per_s=50.0, noise=150.0))
    assert per_probe is not None and not per_probe.flat, per_probe
    per_failure = trend(_series(leak_per_s=2.5, noise=60.0, every_s=0.5))
    assert per_failure is not None and not per_failure.flat, per_failure
    quiet = trend(_series(leak_per_s=0.5, noise=2.0))
    assert quiet is not None and not quiet.flat, quiet
    assert trend([(0.0, 1.0)] * 3) is None  # too few samples to judge


def test_the_log_judge_finds_exceptions_and_lets_conclusions_pass() -> None:
    lines = [
        "2026-01-01 12:00:00,001 INFO monitor.daemon: govwatch listening",
        "2026-01-01 12:00:01,002 WARNING monitor.daemon: incident opened: target x.test (http_status)",
        "2026-01-01 12:00:02,003 ERROR monitor.daemon: incident opened: region (connect_timeout)",
        "2026-01-01 12:00:03,004 ERROR monitor.daemon: monitor impaired (overload): 3 targets now unknown",
        "2026-01-01 12:00:04,005 ERROR monitor.scheduler: pipeline failed for x.test/http",
        "Traceback (most recent call last):",
        '  File "monitor/core.py", line 1, in step',
        "KeyError: 'x.test'",
        "2026-01-01 12:00:05,006 INFO monitor.daemon: incident closed: target:x.test:1",
        "2026-01-01 12:00:06,007 ERROR asyncio: Task exception was never retrieved",
        "2026-01-01 12:00:07,008 WARNING govwatch.daemon: TLS clients failing: Fatal error on SSL",
        "2026-01-01 12:01:07,009 WARNING govwatch.daemon: TLS clients failing: 20 more in the last 60s",
    ]
    report = read_log(lines)
    assert len(report.problems) == 2
    assert report.problems[0].splitlines()[-1] == "KeyError: 'x.test'"  # the whole traceback
    assert "Task exception was never retrieved" in report.problems[1]
    assert report.expected_errors == 2
    assert (report.incidents_opened, report.incidents_closed) == (2, 1)
    assert report.loop_errors == 21  # counted and shown, not exceptions of the daemon's own
    assert read_log(["Traceback (most recent call last):", "OSError: boom"]).problems


# --- the soak --------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_minute_of_flapping_targets_leaks_no_descriptor_no_task_and_no_exception(
    tmp_path: Path,
) -> None:
    report = run_soak(SHORT_SOAK, tmp_path)
    context = f"{report.summary()}\n{report.details()}\n(logs in {tmp_path})"
    assert report.completed, context
    # It really soaked: probes ran, flapping sites switched, targets went down and came back.
    rates = report.probe_rates()
    assert rates is not None and rates[0] > 0, context
    assert report.simulator_switches >= report.flapping_targets, context
    assert report.log is not None and report.log.incidents_closed > 0, context
    fds, tasks = report.fds, report.tasks
    assert fds is not None and fds.flat, context
    assert tasks is not None and tasks.flat, context
    assert not report.exceptions, context
