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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
T = TypeVar("T")


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


@dataclass(frozen=True)
class Shown:
    """What an element showed when it was read. Streamlit redraws a page on every rerun
    and every refresh, so an element found in one poll may be gone by the next line:
    tests assert on this copy, never on the live element."""

    text: str
    displayed: bool
    top: int


def shown(element: Any) -> Shown:
    return Shown(text_of(element), bool(element.is_displayed()), int(element.location["y"]))


def wait_until(driver: Any, condition: Callable[[Any], T | None], timeout_s: float = 30.0) -> T:
    """Poll `condition(driver)` until it returns something truthy (bounded); an element
    replaced by a redraw while the condition reads it is one more poll, not a failure."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    waiting = WebDriverWait(
        driver,
        timeout_s,
        poll_frequency=0.2,
        ignored_exceptions=(StaleElementReferenceException,),
    )
    found = waiting.until(condition)
    assert found is not None  # until() returns only a truthy value
    return found


def first_matching(driver: Any, css: str, wanted: Callable[[str], bool]) -> Any | None:
    """The first element matching `css` whose text is `wanted` (live: read it at once)."""
    from selenium.webdriver.common.by import By

    for element in driver.find_elements(By.CSS_SELECTOR, css):
        if wanted(text_of(element)):
            return element
    return None


def first_shown(driver: Any, css: str, wanted: Callable[[str], bool]) -> Shown | None:
    """The first element matching `css` whose text is `wanted`, as it was shown."""
    element = first_matching(driver, css, wanted)
    return None if element is None else shown(element)


def click_first(driver: Any, css: str, wanted: Callable[[str], bool]) -> bool:
    """Click the first element matching `css` whose text is `wanted`; False while there is
    none (a redraw between finding and clicking raises stale: `wait_until` polls again)."""
    element = first_matching(driver, css, wanted)
    if element is None:
        return False
    element.click()
    return True


def wait_for_overview(driver: Any, text: str, timeout_s: float = 30.0) -> Shown:
    """Wait (bounded) until `text` is shown and the tile map is drawn; returns the banner
    as it was shown."""
    from selenium.webdriver.common.by import By

    found = wait_until(
        driver,
        lambda d: first_shown(d, '[data-testid="stAlert"]', lambda shown_text: text in shown_text),
        timeout_s,
    )
    wait_until(
        driver,
        lambda d: d.find_elements(
            By.CSS_SELECTOR,
            '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg',
        ),
        timeout_s,
    )
    return found
