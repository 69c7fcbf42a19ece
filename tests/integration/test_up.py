"""`govwatch up`: one supervisor for the daemon and the dashboard, as `make run` starts it.

Closing the terminal (SIGHUP to the group), Ctrl-C, or the supervisor killed outright
must leave no child behind holding a port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemons import free_port

TARGETS = """\
[monitor]
interval = "30s"

[[target]]
name = "portal"
url = "https://portal.al.test/"
country = "AL"
sector = "portal"
"""


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait(condition: object, budget_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + budget_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {budget_s}s waiting for {what}")
        time.sleep(0.2)


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Up:
    def __init__(self, tmp_path: Path) -> None:
        targets = tmp_path / "targets.toml"
        targets.write_text(TARGETS)
        self.api_port, self.dashboard_port = free_port(), free_port()
        self.log = (tmp_path / "up.log").open("wb")
        # Its own session, as a terminal's foreground job is: the test signals the group.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "up", str(targets),
             "--db", str(tmp_path / "h.sqlite3"),
             "--listen", f"127.0.0.1:{self.api_port}",
             "--dashboard-port", str(self.dashboard_port)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait(lambda: answers(self.api_port) and answers(self.dashboard_port), 60, "both to listen")
        self.children = children_of(self.process.pid)
        assert len(self.children) == 2

    def gone(self) -> bool:
        return not any(alive(pid) for pid in self.children) and not (
            answers(self.api_port) or answers(self.dashboard_port)
        )


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    started = Up(tmp_path)
    yield started
    for pid in [started.process.pid, *started.children]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    started.process.wait()
    started.log.close()


def test_a_closed_terminal_stops_both_and_frees_the_ports(up: Up) -> None:
    os.killpg(up.process.pid, signal.SIGHUP)  # what closing the terminal sends
    assert up.process.wait(timeout=15) == 0
    wait(up.gone, 10, "both children to be gone and the ports free")


def test_the_supervisor_killed_outright_takes_its_children_with_it(up: Up) -> None:
    up.process.kill()
    up.process.wait()
    wait(up.gone, 15, "both children to follow the supervisor")


def test_a_child_that_dies_stops_the_other(up: Up) -> None:
    dashboard = next(pid for pid in up.children if b"streamlit" in
                     Path(f"/proc/{pid}/cmdline").read_bytes())  # fmt: skip
    os.kill(dashboard, signal.SIGKILL)
    assert up.process.wait(timeout=15) == 1
    wait(up.gone, 10, "the daemon to be stopped too")


def test_a_port_already_taken_is_one_clear_line(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    targets.write_text(TARGETS)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "up", str(targets), "--db",
             str(tmp_path / "h.sqlite3"), "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot start the daemon on 127.0.0.1:{port}" in done.stderr
    assert "another govwatch" in done.stderr and "Traceback" not in done.stderr
