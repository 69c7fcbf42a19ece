"""Descriptors: the daemon raises its soft limit to the hard one, and keeps probes and
the API's clients within what is left after its own reserve."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from monitor.daemon import FDS_PER_PROBE, FDS_RESERVED, probe_slots

RAISE = (
    "import resource\n"
    "from monitor.daemon import raise_fd_limit\n"
    "print(raise_fd_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))\n"
)


def limited(soft: int, hard: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard limit here is {hard}")
    done = subprocess.run(
        [sys.executable, "-c", RAISE],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: limited(1024, 4096),
    )
    assert done.stdout.split() == ["4096", "4096", "4096"]


# (fd limit, concurrency, API clients, probes allowed at once)
SLOT_ROWS = [
    pytest.param(65536, 64, 64, 64, id="plenty-keeps-the-configured-concurrency"),
    pytest.param(1024, 200, 64, (1024 - FDS_RESERVED - 64) // FDS_PER_PROBE, id="1024-bounds"),
    pytest.param(100, 64, 64, 1, id="never-below-one"),
]


@pytest.mark.parametrize(("limit", "concurrency", "clients", "slots"), SLOT_ROWS)
def test_probe_slots(limit: int, concurrency: int, clients: int, slots: int) -> None:
    assert probe_slots(limit, concurrency, clients) == slots
