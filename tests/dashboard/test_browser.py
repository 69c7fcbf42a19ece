"""One real browser: `govwatch dashboard` on loopback, headless Chromium, the outage banner
visible on screen, and a screenshot saved."""

from __future__ import annotations

import contextlib
import http.server
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.dashboard.browser import chromium, missing_browser, served_dashboard, wait_for_overview
from tests.dashboard.conftest import Seeded
from tests.dashboard.seed import counts_by_country

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))


@pytest.mark.timeout(90)
def test_the_outage_banner_is_visible_in_a_real_browser(
    seeded: Callable[[str], Seeded], tmp_path: Path
) -> None:
    data = seeded("albania")
    down, total = {c: (d, t) for c, d, t in counts_by_country(data.seed)}["AL"]
    started = next(i.started_at for i in data.seed.incidents if i.country == "AL" and i.is_open)
    expected = (
        f"Albania: {down} of {total} services down since "
        f"{datetime.fromtimestamp(started, UTC):%H:%M} UTC — connection timeouts"
    )
    with served_dashboard(data.path, tmp_path / "streamlit.log") as url, chromium() as driver:
        driver.get(url)
        banner = wait_for_overview(driver, expected)
        assert banner.is_displayed()
        assert banner.location["y"] < 400  # at the top, not below the fold
        shot = tmp_path / "overview.png"
        assert driver.save_screenshot(str(shot))
        # A page opened by its URL runs through app.py's navigation too.
        outages = sum(i.is_open and i.scope.value != "target" for i in data.seed.incidents)
        driver.get(f"{url}/incidents")
        WebDriverWait(driver, 30, poll_frequency=0.2).until(
            lambda d: f"Open now: {outages} outage" in d.find_element(By.TAG_NAME, "body").text
        )
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@contextlib.contextmanager
def pixel_server() -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server that records every request: the browser must make none."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(90)
def test_strings_from_the_network_are_text_never_markup(
    seeded: Callable[[str], Seeded], tmp_path: Path
) -> None:
    """A certificate issuer shared by the failing targets goes into the outage banner: as
    Markdown it made the browser fetch a pixel and show a link."""
    data = seeded("albania")
    db = tmp_path / "hostile.sqlite3"
    with sqlite3.connect(data.path) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    with pixel_server() as (port, requests):
        evil = (
            f"![p](http://127.0.0.1:{port}/pixel.png) [click](http://127.0.0.1:{port}/x) "
            f"<img src=http://127.0.0.1:{port}/i.png> :red[alarm] $x$"
        )
        with sqlite3.connect(db) as conn:
            changed = conn.execute(
                "UPDATE incidents SET hint = ?, hint_text = ? "
                "WHERE scope = 'country' AND country = 'AL' AND ended_at IS NULL",
                (json.dumps([{"kind": "issuer", "values": [evil], "count": 3, "of": 3}]),
                 f"3 of 3 share certificate issuer {evil}"),
            ).rowcount  # fmt: skip
        assert changed == 1
        with served_dashboard(db, tmp_path / "streamlit.log") as url, chromium() as driver:
            driver.get(url)
            banner = wait_for_overview(driver, "Albania:")
            shown = banner.text.replace("\u2060", "")  # the invisible joiner that stops autolinks
            assert evil in shown
            for tag, attribute in (("img", "src"), ("a", "href")):
                for element in driver.find_elements(By.TAG_NAME, tag):
                    assert f":{port}/" not in (element.get_attribute(attribute) or "")
        assert requests == []
