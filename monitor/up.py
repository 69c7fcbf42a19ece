"""`govwatch up`: the daemon and the dashboard as one command that starts and stops both.

`make run` used to start them from a shell: closing the terminal (SIGHUP to the whole
process group) killed the dashboard, the daemon took the SIGHUP as a reload and stayed
orphaned on its port, and the next start failed with "address already in use".

Here the two run as children in their own session, so a terminal's signals reach only
this supervisor. Any of SIGINT, SIGTERM, SIGHUP or SIGQUIT stops both (SIGTERM, then
SIGKILL after a grace period); if either child exits, the other is stopped too and the
exit status says which. The children also ask the kernel to SIGTERM them if this process
dies without a word (PR_SET_PDEATHSIG), so even `kill -9` of the supervisor leaves no
orphan holding a port.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

# How long a child gets to stop after SIGTERM (the daemon needs up to 5 s to flush history).
STOP_GRACE_S = 8.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True, slots=True)
class UpOptions:
    targets: Path
    db: Path
    listen: tuple[str, int]
    dashboard_address: str
    dashboard_port: int
    refresh_s: float
    read_only: bool = False  # the dashboard without its Acknowledge button


def child_commands(options: UpOptions) -> dict[str, list[str]]:
    """The two children, each the same `govwatch` CLI an operator could run by hand."""
    govwatch = [sys.executable, "-m", "monitor"]
    host, port = options.listen
    return {
        "daemon": [*govwatch, "run", str(options.targets), "--db", str(options.db),
                   "--listen", f"{host}:{port}"],
        "dashboard": [*govwatch, "dashboard", "--db", str(options.db),
                      "--address", options.dashboard_address,
                      "--port", str(options.dashboard_port),
                      "--refresh", f"{options.refresh_s:g}",
                      *(["--read-only"] if options.read_only else [])],
    }  # fmt: skip


def port_in_use(host: str, port: int) -> str | None:
    """Why `host:port` cannot be bound, or None when it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM me when my parent dies (Linux; elsewhere a no-op)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class _Stop:
    """Which signal asked us to stop, if any (set from the signal handler)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum


def supervise(options: UpOptions) -> int:
    """Start both children and wait. Returns 0 after a requested stop, else the failed
    child's exit code (1 if it was killed by a signal)."""
    for what, (host, port) in (
        ("daemon", options.listen),
        ("dashboard", (options.dashboard_address, options.dashboard_port)),
    ):
        problem = port_in_use(host, port)
        if problem is not None:
            print(
                f"govwatch up: cannot start the {what} on {host}:{port}: {problem} "
                "(is another govwatch running? stop it, or choose another port)",
                file=sys.stderr,
            )
            return 1
    stop = _Stop()
    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in child_commands(options).items():
            children[name] = subprocess.Popen(
                command,
                start_new_session=True,  # a terminal's signals reach only the supervisor
                preexec_fn=_die_with_parent,  # safe: this process runs no threads
            )
        host, port = options.listen
        print(
            f"govwatch up: daemon http://{host}:{port}/api/v1/status, dashboard "
            f"http://{options.dashboard_address}:{options.dashboard_port}/ "
            "(Ctrl-C stops both)",
            flush=True,
        )
        exited = _wait(children, stop)
    finally:
        _stop_all(children)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if exited is None:
        return 0
    name, code = exited
    print(f"govwatch up: the {name} exited with status {code}; stopped the rest", file=sys.stderr)
    return code if code > 0 else 1


def _wait(children: dict[str, subprocess.Popen[bytes]], stop: _Stop) -> tuple[str, int] | None:
    """Until a stop signal (None) or a child's exit ((name, returncode))."""
    while stop.signum is None:
        for name, child in children.items():
            code = child.poll()
            if code is not None:
                return name, code
        time.sleep(0.2)
    return None


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children.values():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
