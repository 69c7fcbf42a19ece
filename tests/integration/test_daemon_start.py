"""`govwatch run` with a history it cannot use: one clear line and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemons import free_port

TARGETS = """\
[[target]]
name = "portal"
url = "https://portal.al.test/"
country = "AL"
sector = "portal"
"""


def run(targets: Path, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "run", str(targets), "--db", str(db), "--listen",
         f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.fixture
def targets(tmp_path: Path) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(TARGETS)
    return path


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only file system (root ignores permission bits, so a real ro mount)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def corrupt(path: Path) -> Path:
    path.write_bytes(os.urandom(8192))
    return path


@pytest.mark.parametrize(
    "make_db",
    [
        pytest.param(lambda d: corrupt(d / "h.sqlite3"), id="random-bytes"),
        pytest.param(lambda d: (d / "dir.sqlite3").mkdir() or d / "dir.sqlite3", id="a-directory"),
        pytest.param(lambda d: d / "ro" / "h.sqlite3", id="read-only-file-system"),
        pytest.param(lambda d: d / "ro" / "sub" / "h.sqlite3", id="cannot-create-parent"),
    ],
)
def test_a_history_that_cannot_be_used_is_one_line_and_exit_2(
    tmp_path: Path, targets: Path, read_only_dir: Path, make_db: object
) -> None:
    assert callable(make_db)
    db: Path = make_db(tmp_path)
    done = run(targets, db)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert "cannot open the history" in errors[0] and str(db) in errors[0]
