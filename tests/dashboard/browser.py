"""Serve the dashboard for real (`govwatch dashboard` on 127.0.0.1) and drive headless
Chromium (Debian's chromium + chromium-driver) at it with selenium."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.dashboard.markup import WORD_JOINER

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
REPO = Path(__file__).resolve().parents[2]


def missing_browser() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(Path(path).name)):
            return f"{path} is not installed (Debian packages chromium and chromium-driver)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def served_dashboard(
    db: Path, log: Path, *, timeout_s: float = 30.0, refresh_s: float = 15.0
) -> Iterator[str]:
    """`python -m monitor dashboard --db DB --port N` until the block ends; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "monitor", "dashboard", "--db", str(db), "--port", str(port)]
    command += ["--refresh", f"{refresh_s:g}"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dashboard exited with {process.returncode}: {log.read_text()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as answer,
            ):
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"dashboard not healthy within {timeout_s}s: {log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        # The dashboard command exec'd Streamlit in this process group: end all of it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@contextlib.contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium driven through the system chromedriver (never downloaded)."""
    from selenium import webdriver

    with tempfile.TemporaryDirectory(prefix="govwatch-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()


def text_of(element: Any) -> str:
    """What the element shows, without the invisible word joiners dashboard.text.as_text
    puts where Markdown would otherwise find links, icons or emoji."""
    return str(element.text).replace(WORD_JOINER, "")


def wait_for_overview(driver: Any, text: str, timeout_s: float = 30.0) -> Any:
    """Wait (bounded) until `text` is shown and the tile map is drawn; returns its element."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def banner(d: Any) -> Any:
        for element in d.find_elements(By.CSS_SELECTOR, '[data-testid="stAlert"]'):
            if text in text_of(element):
                return element
        return None

    found = WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(banner)
    WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR,
            '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg',
        )
    )
    return found
